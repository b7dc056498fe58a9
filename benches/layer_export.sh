#!/usr/bin/env bash
# COPY of the Python standard library into a gzip layer + OCI archive export.
# Prints the benchmark's own numbers and peak RSS. Usage:
#   benches/layer_export.sh [SRC_DIR] [THREADS]
# Reference: BuildKit's COPY + `docker save` of the same tree takes about 32 s
# on the project's 2-core machine; the target is <= 16 s and < 100 MB RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["stdlib"])')}
threads=${2:-0}
cargo build --release -q -p kiln-benches --bin layer_export
bin=${CARGO_TARGET_DIR:-target}/release/layer_export
work=$(mktemp -d)
/usr/bin/time -v "$bin" "$src" "$work/run" "$threads" 2> "$work/time.txt"
grep -E "Maximum resident|Elapsed|Percent of CPU|User time|System time" "$work/time.txt"
rm -rf "$work"
