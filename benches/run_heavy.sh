#!/usr/bin/env bash
# Issue 6's RUN-heavy workload on debian:bookworm: four RUN steps that
#   1. copy /usr (cp -a /usr /usr2),
#   2. change every shared library in the copy (append a byte to each *.so*),
#   3. delete a large part of the copy (/usr2/share),
#   4. create 5,000 small files,
# built with kiln and, when installed, `docker build` (BuildKit) and
# `buildah bud`. Prints each step's time, a no-op rebuild (the fixed cost
# every step's time includes) and the whole cold build, and kiln's ratio to
# each (target: kiln's whole build <= 0.5 x BuildKit's).
#
#   benches/run_heavy.sh [KILN_BINARY]
#
# KILN_BENCH_TOOLS="kiln docker buildah" picks the builders; RUNS=N keeps
# the best of N cold whole builds per builder (default 3), the builders
# taking turns. The base image comes from a loopback registry (see lib.sh)
# and is pulled into each builder's store before anything is timed. Every
# RUN uses --network none.
#
# Step k's time is a build of the Dockerfile cut after step k whose earlier
# steps are cache hits from the build of step k-1: the step itself, its
# layer (BuildKit diffs lazily at export, so its own per-step DONE times
# leave the layer out) and one build's fixed cost (the no-op column). The
# first RUN writes a fresh nonce so no earlier run's cache can answer. One
# untimed build comes first: kiln unpacks base layers at their first use,
# docker and buildah when pulling.
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init "${1:-}"
runs=${RUNS:-3}

bench_workload run-heavy library/debian:bookworm

step_names=("copy /usr" "change .so" "delete" "5000 files")
# Writes Dockerfile.K (the first K steps) for nonce $1 into the context.
dockerfiles() {
    local steps=(
        "RUN echo $1 > /.bench-nonce && cp -a /usr /usr2"
        "RUN find /usr2 -name '*.so*' -type f -exec sh -c 'for f; do printf x >> \"\$f\"; done' sh {} +"
        "RUN rm -rf /usr2/share"
        "RUN mkdir /small && cd /small && seq 5000 | while read -r i; do echo \"\$i\" > \"f\$i\"; done"
    )
    local k i head=('ARG BASE' "FROM \${BASE}")
    printf '%s\n' "${head[@]}" "RUN echo $1 > /.bench-warmup" > "$work/ctx/Dockerfile.0"
    for k in 1 2 3 4; do
        {
            printf '%s\n' "${head[@]}"
            for ((i = 0; i < k; i++)); do printf '%s\n' "${steps[i]}"; done
        } > "$work/ctx/Dockerfile.$k"
    done
}

# build TOOL LABEL K [FLAGS…]: one build of Dockerfile.K, logged as
# logs/TOOL.LABEL.log; prints its seconds.
build() {
    local tool=$1 n=$1.$2 k=$3
    shift 3
    local f=$work/ctx/Dockerfile.$k
    export BENCH_LOG=$work/logs/$n.log
    case $tool in
    kiln) bench_secs "$KILN" --root "$KILN_ROOT" build "${BENCH_KILN_QUIET[@]}" --network none \
        -f "$f" --build-arg "BASE=$base" -t bench/run-heavy "$@" "$work/ctx" ;;
    docker) bench_secs bench_docker build -q --network=none --iidfile "$work/logs/$n.iid" \
        -f "$f" --build-arg "BASE=$base" -t bench/run-heavy "$@" "$work/ctx" ;;
    buildah) bench_secs "${BENCH_BUILDAH[@]}" bud -q --layers --runtime runc --tls-verify=false \
        --network none --pull=false -f "$f" --build-arg "BASE=$base" -t bench/run-heavy "$@" "$work/ctx" ;;
    esac
}
if [ -n "$BENCH_DOCKER_OK" ]; then
    # The images this run made.
    bench_docker_rmi_at_exit "$work/logs"
fi

declare -A t
tools=()
bench_wants kiln && tools+=(kiln)
[ -n "$BENCH_DOCKER_OK" ] && tools+=(docker)
[ -n "$BENCH_BUILDAH_OK" ] && tools+=(buildah)

# The cold builds of the builders take turns (kiln, docker, buildah, kiln,
# ...), so each sees the disk in the same state. On this VM's ext4 (no
# journal) inodes freed in the last minutes are skipped when new ones are
# allocated, so whoever creates files right after a mass deletion (a
# step's `rm -rf`, the previous run's clean-up) pays up to a second more;
# builder after builder, the first one paid it every time.
dockerfiles "warmup-$(date +%s%N)"
for tool in "${tools[@]}"; do build "$tool" warmup 0 >/dev/null; done
declare -A cold
for ((r = 0; r < runs; r++)); do
    for tool in "${tools[@]}"; do
        dockerfiles "cold-$r-$tool-$(date +%s%N)"
        cold[$tool]+=" $(build "$tool" "whole$r" 4 --no-cache)"
    done
done
for tool in "${tools[@]}"; do
    # shellcheck disable=SC2086 # the list of times, one per word
    t[$tool,whole]=$(bench_min ${cold[$tool]})
    dockerfiles "steps-$tool-$(date +%s%N)"
    for k in 1 2 3 4; do
        t[$tool,$k]=$(build "$tool" "step$k" "$k")
    done
    t[$tool,noop]=$(build "$tool" noop 4)
done

echo "run_heavy: $base, 4 RUN steps, $(nproc) cores; seconds (whole: best of $runs cold builds)"
cols=("${step_names[@]}" "no-op" "whole")
keys=(1 2 3 4 noop whole)
printf '%-16s' ""
for c in "${cols[@]}"; do printf '%11s' "$c"; done
echo
for tool in "${tools[@]}"; do
    printf '%-16s' "$tool"
    for key in "${keys[@]}"; do printf '%11s' "${t[$tool,$key]}"; done
    echo
done
for pair in docker:BuildKit buildah:Buildah; do
    other=${pair%%:*}
    [[ " ${tools[*]} " == *" kiln "* && " ${tools[*]} " == *" $other "* ]] || continue
    printf '%-16s' "kiln/${pair#*:}"
    for key in "${keys[@]}"; do printf '%11s' "$(bench_ratio "${t[kiln,$key]}" "${t[$other,$key]}")"; done
    echo
done
if [[ " ${tools[*]} " == *" kiln "* && " ${tools[*]} " == *" docker "* ]]; then
    r=$(bench_ratio "${t[kiln,whole]}" "${t[docker,whole]}")
    verdict=$(awk -v r="$r" 'BEGIN { print (r != "-" && r <= 0.5) ? "met" : "not met" }')
    echo "target kiln/BuildKit whole <= 0.50: $r ($verdict)"
fi
for tool in "${tools[@]}"; do
    for k in 1 2 3 4; do bench_record "run_heavy ${step_names[k - 1]}" "$tool" "${t[$tool,$k]}"; done
    bench_record "run_heavy whole" "$tool" "${t[$tool,whole]}"
done
