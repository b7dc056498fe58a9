#!/usr/bin/env bash
# Issue 7's first workload: the machine's Python standard library copied
# into an image. Cold build, no-op rebuild, rebuild after one changed file,
# with kiln and (when installed) `docker build` and `buildah bud`; prints
# the times and kiln's ratio to BuildKit's reference numbers from the issue
# (22.8 s / 1.36 s / 12.9 s on this kind of 2-core machine).
#
#   benches/build_cache.sh [KILN_BINARY]
#
# KILN_BENCH_TOOLS="kiln docker buildah" picks the builders to run.
#
# The no-op rebuild is a cache hit (context walk through the stat cache, one
# lookup, the image stored again); the one-file rebuild redoes the COPY.
set -euo pipefail
cd "$(dirname "$0")/.."
kiln=${1:-}
if [ -z "$kiln" ]; then
    cargo build -q --release -p builder-cli
    kiln="${CARGO_TARGET_DIR:-target}/release/kiln"
fi
stdlib=$(python3 -c "import sysconfig;print(sysconfig.get_paths()['stdlib'])")
work=$(mktemp -d /tmp/kiln-bench-cache.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx"
cp -a "$stdlib/." "$work/ctx/lib/"
printf 'FROM scratch\nCOPY . /app\n' > "$work/ctx/Dockerfile"
files=$(find "$work/ctx" -type f | wc -l)
size=$(du -sh "$work/ctx" | cut -f1)
echo "context: $files files, $size"

# Seconds a command took, or "failed".
secs() {
    local s e
    s=$(date +%s.%N)
    if ! "$@" >/dev/null 2>&1; then echo failed; return; fi
    e=$(date +%s.%N)
    printf '%.2f' "$(echo "$e - $s" | bc)"
}
change() { echo "# $(date +%s%N)" >> "$work/ctx/lib/os.py"; }

run_tool() {
    local name=$1; shift
    local cold noop one
    cold=$(secs "$@")
    noop=$(secs "$@")
    change
    one=$(secs "$@")
    printf '%-8s cold %7ss  no-op %7ss  one-file %7ss\n' "$name" "$cold" "$noop" "$one"
    case "$name $cold $noop $one" in
    kiln*failed*|docker*|buildah*) ;;
    *) printf '%-8s vs BuildKit reference: cold x%.1f  no-op x%.1f  one-file x%.1f (higher is faster)\n' \
            "" "$(echo "22.8 / $cold" | bc -l)" "$(echo "1.36 / $noop" | bc -l)" "$(echo "12.9 / $one" | bc -l)" ;;
    esac
}

quiet=()
if "$kiln" build --help | grep -q -- '--progress'; then quiet=(--progress=quiet); fi
run_tool kiln "$kiln" --root "$work/store" build "${quiet[@]}" -t bench/stdlib "$work/ctx"
tools=" ${KILN_BENCH_TOOLS:-kiln docker buildah} "
if [[ $tools == *" docker "* ]] && command -v docker >/dev/null \
    && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    DOCKER_BUILDKIT=1 run_tool docker docker build -q -t bench/stdlib "$work/ctx"
fi
if [[ $tools == *" buildah "* ]] && command -v buildah >/dev/null; then
    run_tool buildah buildah bud -q --layers -t bench/stdlib "$work/ctx"
fi
