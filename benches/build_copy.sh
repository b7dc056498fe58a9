#!/usr/bin/env bash
# `kiln build` end to end: COPY of the Python standard library into an
# image exported as a gzip OCI archive (the engine, the layer writer and the
# exporter together). Prints seconds, MB/s and peak RSS. Usage:
#   benches/build_copy.sh [SRC_DIR]
# Reference (issue 4): BuildKit's build + `docker save` of ~700 MB takes
# about 32 s on the project's 2-core machine; target <= 16 s, < 100 MB RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["stdlib"])')}
cargo build --release -q -p builder-cli
kiln=${CARGO_TARGET_DIR:-target}/release/kiln
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'FROM scratch\nCOPY . /stdlib\n' > "$work/Dockerfile"
bytes=$(du -sb "$src" | cut -f1)
files=$(find "$src" | wc -l)
/usr/bin/time -v "$kiln" build --root "$work/store" -f "$work/Dockerfile" \
    -o "type=oci,dest=$work/out.tar" "$src" > /dev/null 2> "$work/time.txt"
secs=$(grep "Elapsed (wall clock)" "$work/time.txt" | awk '{print $NF}' \
    | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
rss=$(grep "Maximum resident" "$work/time.txt" | awk '{print $NF}')
echo "source: $src ($files entries, $((bytes / 1000000)) MB)"
echo "build + gzip OCI archive: ${secs} s, $(python3 -c "print(round($bytes/1e6/$secs, 1))") MB/s, peak RSS $((rss / 1024)) MB"
