#!/usr/bin/env bash
# Issue 7's first workload: the machine's Python standard library copied
# into an image. Cold build, no-op rebuild, rebuild after one changed file,
# with kiln and (when installed) `docker build` and `buildah bud`; prints
# the times, kiln's ratio to each, and kiln's ratio to BuildKit's reference
# numbers from the issue (22.8 s / 1.36 s / 12.9 s on this kind of 2-core
# machine).
#
#   benches/build_cache.sh [KILN_BINARY]
#
# KILN_BENCH_TOOLS="kiln docker buildah" picks the builders to run.
#
# The no-op rebuild is a cache hit (context walk through the stat cache, one
# lookup, the image stored again); the one-file rebuild redoes the COPY.
# A nonce file in the context keeps an earlier run's cache (docker's is the
# daemon's) from answering the cold build; kiln and buildah get fresh stores.
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init "${1:-}"
stdlib=$(python3 -c "import sysconfig;print(sysconfig.get_paths()['stdlib'])")
work=
bench_workdir work cache
mkdir -p "$work/ctx" "$work/logs"
cp -a "$stdlib/." "$work/ctx/lib/"
date +%s%N > "$work/ctx/.bench-nonce"
printf 'FROM scratch\nCOPY . /app\n' > "$work/ctx/Dockerfile"
files=$(find "$work/ctx" -type f | wc -l)
size=$(du -sh "$work/ctx" | cut -f1)
echo "context: $files files, $size"

change() { echo "# $(date +%s%N)" >> "$work/ctx/lib/os.py"; }

declare -A t
tools=()
run_tool() {
    local name=$1
    shift
    tools+=("$name")
    t[$name,cold]=$(BENCH_LOG=$work/logs/$name.cold.log bench_secs "$@")
    t[$name,noop]=$(BENCH_LOG=$work/logs/$name.noop.log bench_secs "$@")
    change
    t[$name,one]=$(BENCH_LOG=$work/logs/$name.one.log bench_secs "$@")
    printf '%-8s cold %7ss  no-op %7ss  one-file %7ss\n' "$name" "${t[$name,cold]}" "${t[$name,noop]}" "${t[$name,one]}"
    bench_record "stdlib cold" "$name" "${t[$name,cold]}"
    bench_record "stdlib no-op" "$name" "${t[$name,noop]}"
    bench_record "stdlib one-file" "$name" "${t[$name,one]}"
}

bench_detect
bench_kiln_quiet
if bench_wants kiln; then
    store=
    bench_store_dir store cache
    run_tool kiln "$KILN" --root "$store" build "${BENCH_KILN_QUIET[@]}" -t bench/stdlib "$work/ctx"
    case "${t[kiln,cold]} ${t[kiln,noop]} ${t[kiln,one]}" in
    *failed*) ;;
    *) printf '%-8s vs BuildKit reference: cold x%.1f  no-op x%.1f  one-file x%.1f (higher is faster)\n' \
            "" "$(bench_ratio 22.8 "${t[kiln,cold]}")" "$(bench_ratio 1.36 "${t[kiln,noop]}")" \
            "$(bench_ratio 12.9 "${t[kiln,one]}")" ;;
    esac
fi
if [ -n "$BENCH_DOCKER_OK" ]; then
    bench_docker_rmi_at_exit "$work/logs"
    docker_build() { bench_docker build -q --iidfile "$work/logs/docker.$(date +%s%N).iid" -t bench/stdlib "$work/ctx"; }
    run_tool docker docker_build
fi
if [ -n "$BENCH_BUILDAH_OK" ]; then
    buildah_dir=
    bench_store_dir buildah_dir cache-buildah
    bench_buildah_store "$buildah_dir"
    run_tool buildah "${BENCH_BUILDAH[@]}" bud -q --layers -t bench/stdlib "$work/ctx"
fi
for pair in docker:BuildKit buildah:Buildah; do
    other=${pair%%:*}
    [[ " ${tools[*]} " == *" kiln "* && " ${tools[*]} " == *" $other "* ]] || continue
    printf '%-8s cold %7s   no-op %7s   one-file %7s\n' "kiln/${pair#*:}" \
        "$(bench_ratio "${t[kiln,cold]}" "${t[$other,cold]}")" \
        "$(bench_ratio "${t[kiln,noop]}" "${t[$other,noop]}")" \
        "$(bench_ratio "${t[kiln,one]}" "${t[$other,one]}")"
done
