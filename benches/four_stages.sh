#!/usr/bin/env bash
# Issue 7's parallel-stages workload: four independent CPU-bound stages on
# busybox (each `sha256sum` over $FOUR_STAGES_MB MB of zeros, one core,
# a few seconds) copied into a final stage. Prints the whole cold build,
# each stage built alone (--target), the longest of those and the ratio
# whole/longest, for kiln and, when installed, `docker build` (BuildKit)
# and `buildah bud --jobs`. Target: whole/longest <= 1.10, i.e. the stages
# run side by side. That needs a core per stage: on C < 4 cores the best
# any builder can do is about 4/C, printed as the floor.
#
#   benches/four_stages.sh [KILN_BINARY]
#
# KILN_BENCH_TOOLS="kiln docker buildah" picks the builders; RUNS=N keeps
# the best of N for every build (default 1). JOBS (default
# 4, one per stage) is passed as --jobs to buildah, and to kiln when its
# `build --help` has the flag (a kiln without it builds the stages one
# after another: the script works either way). FOUR_STAGES_MB sets the work
# per stage (default 800, about 4 s with the image's busybox sha256sum on
# one core of the project's machine). Every build is cold (--no-cache and a
# fresh nonce in each stage) with the base image already pulled and one
# untimed build first (kiln unpacks base layers at their first use, docker
# and buildah when pulling).
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init "${1:-}"
jobs=${JOBS:-4}
runs=${RUNS:-1}
mb=${FOUR_STAGES_MB:-800}

bench_workload four-stages library/busybox:latest
kiln_jobs=()
if "$KILN" build --help | grep -q -- '--jobs'; then kiln_jobs=(--jobs "$jobs"); fi

# A Dockerfile with a fresh nonce in each stage, so no cache (an earlier
# run's, or BuildKit merging identical stages into one) can skip the work.
dockerfile() {
    local nonce k
    nonce=$(date +%s%N)
    {
        echo 'ARG BASE'
        for k in 1 2 3 4; do
            echo "FROM \${BASE} AS s$k"
            echo "RUN echo $nonce-$k > /id && dd if=/dev/zero bs=1048576 count=$mb 2>/dev/null | sha256sum > /out"
        done
        echo "FROM \${BASE}"
        for k in 1 2 3 4; do echo "COPY --from=s$k /out /s$k"; done
    } > "$work/ctx/Dockerfile"
}

# build TOOL LABEL [FLAGS…]: one cold build, logged as logs/TOOL.LABEL.log;
# prints its seconds.
build() {
    local tool=$1 log=$work/logs/$1.$2.log
    shift 2
    dockerfile
    export BENCH_LOG=$log
    case $tool in
    kiln) bench_secs "$KILN" --root "$KILN_ROOT" build "${BENCH_KILN_QUIET[@]}" "${kiln_jobs[@]}" \
        --network none --no-cache --build-arg "BASE=$base" -t bench/four-stages "$@" "$work/ctx" ;;
    docker) bench_secs bench_docker build -q --network=none --no-cache --iidfile "$log.iid" \
        --build-arg "BASE=$base" -t bench/four-stages "$@" "$work/ctx" ;;
    buildah) bench_secs "${BENCH_BUILDAH[@]}" bud -q --layers --jobs "$jobs" --runtime runc \
        --tls-verify=false --network none --pull=false --no-cache --build-arg "BASE=$base" \
        -t bench/four-stages "$@" "$work/ctx" ;;
    esac
}
if [ -n "$BENCH_DOCKER_OK" ]; then
    bench_docker_rmi_at_exit "$work/logs"
fi

# best TOOL LABEL [FLAGS…]: the best of $runs builds.
best() {
    local tool=$1 label=$2 r s=()
    shift 2
    for ((r = 0; r < runs; r++)); do s+=("$(build "$tool" "$label.$r" "$@")"); done
    bench_min "${s[@]}"
}

declare -A t
tools=()
measure() {
    local tool=$1 k
    tools+=("$tool")
    build "$tool" warmup --target s1 >/dev/null
    t[$tool,whole]=$(best "$tool" whole)
    for k in 1 2 3 4; do
        t[$tool,$k]=$(best "$tool" "s$k" --target "s$k")
    done
    t[$tool,longest]=$(bench_max "${t[$tool,1]}" "${t[$tool,2]}" "${t[$tool,3]}" "${t[$tool,4]}")
    t[$tool,ratio]=$(bench_ratio "${t[$tool,whole]}" "${t[$tool,longest]}")
}

bench_wants kiln && measure kiln
[ -n "$BENCH_DOCKER_OK" ] && measure docker
[ -n "$BENCH_BUILDAH_OK" ] && measure buildah

cores=$(nproc)
floor=$(awk -v c="$cores" 'BEGIN { printf "%.2f", (c >= 4 ? 1 : 4 / c) }')
echo "four_stages: $base, 4 stages x sha256sum of $mb MB, $cores cores, kiln ${kiln_jobs[*]:-(no --jobs flag)}, buildah --jobs $jobs; seconds, best of $runs"
cols=(whole s1 s2 s3 s4 longest)
keys=(whole 1 2 3 4 longest)
printf '%-16s' ""
for c in "${cols[@]}"; do printf '%9s' "$c"; done
printf '  %s' "whole/longest"
echo
for tool in "${tools[@]}"; do
    printf '%-16s' "$tool"
    for key in "${keys[@]}"; do printf '%9s' "${t[$tool,$key]}"; done
    printf '%15s\n' "${t[$tool,ratio]}"
done
for pair in docker:BuildKit buildah:Buildah; do
    other=${pair%%:*}
    [[ " ${tools[*]} " == *" kiln "* && " ${tools[*]} " == *" $other "* ]] || continue
    printf '%-16s' "kiln/${pair#*:}"
    for key in "${keys[@]}"; do printf '%9s' "$(bench_ratio "${t[kiln,$key]}" "${t[$other,$key]}")"; done
    printf '%15s\n' "$(bench_ratio "${t[kiln,ratio]}" "${t[$other,ratio]}")"
done
if [[ " ${tools[*]} " == *" kiln "* ]]; then
    verdict=$(awk -v r="${t[kiln,ratio]}" 'BEGIN { print (r != "-" && r <= 1.10) ? "met" : "not met" }')
    echo "target kiln whole/longest <= 1.10: ${t[kiln,ratio]} ($verdict; floor on $cores cores: $floor)"
fi
for tool in "${tools[@]}"; do
    bench_record "four_stages whole" "$tool" "${t[$tool,whole]}"
    bench_record "four_stages longest stage" "$tool" "${t[$tool,longest]}"
    bench_record "four_stages whole/longest (ratio)" "$tool" "${t[$tool,ratio]}"
done
