#!/usr/bin/env bash
# Every comparison workload of issues 6 and 7 in one go, then one table of
# seconds with kiln's ratio to BuildKit (`docker build`) and to Buildah
# (below 1 means kiln is faster):
#   build_cache.sh   the Python stdlib COPY: cold, no-op, one changed file
#   four_stages.sh   four independent CPU-bound stages merged at the end
#   run_heavy.sh     RUN steps on debian:bookworm copying, changing and
#                    deleting files
#
#   benches/compare.sh [KILN_BINARY]
#
# KILN_BENCH_TOOLS="kiln docker buildah" picks the builders (see lib.sh for
# the other settings). One registry and, if needed, one dockerd serve all
# the scripts. Each script's own report is shown as it runs.
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init "${1:-}"
work=
bench_workdir work compare
export KILN_BENCH_RESULTS=$work/results.tsv
: > "$KILN_BENCH_RESULTS"
bench_registry
export KILN_BENCH_REGISTRY=$REGISTRY
bench_detect

failed=()
for script in build_cache four_stages run_heavy; do
    echo "== $script"
    if ! "$BENCH_REPO/benches/$script.sh" "$KILN"; then
        failed+=("$script")
        echo "compare: $script.sh failed" >&2
    fi
    echo
done

echo "== all workloads: seconds, kiln/other ratios (< 1: kiln faster); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
awk -F'\t' '
    !($1 in seen) { seen[$1] = 1; order[++n] = $1 }
    { v[$1, $2] = $3 }
    function cell(w, tool) { return ((w, tool) in v) ? v[w, tool] : "-" }
    function ratio(a, b) {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) return "-"
        return sprintf("%.2f", a / b)
    }
    END {
        printf "%-36s %9s %9s %9s %14s %13s\n", "workload", "kiln", "docker", "buildah", "kiln/BuildKit", "kiln/Buildah"
        for (i = 1; i <= n; i++) {
            w = order[i]
            k = cell(w, "kiln"); d = cell(w, "docker"); b = cell(w, "buildah")
            printf "%-36s %9s %9s %9s %14s %13s\n", w, k, d, b, ratio(k, d), ratio(k, b)
        }
    }' "$KILN_BENCH_RESULTS"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
