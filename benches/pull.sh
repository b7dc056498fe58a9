#!/usr/bin/env bash
# Times `kiln pull` of debian:bookworm from a loopback Distribution registry
# into an empty store against `skopeo copy` of the same image into an OCI
# directory, and prints the ratio (target: kiln/skopeo <= 1.5).
# Needs: docker-registry, skopeo, and the conformance registry storage
# (../shared/conformance/registry or $KILN_CONFORMANCE_REGISTRY).
#
#   benches/pull.sh [KILN_BINARY]
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init "${1:-}"
runs=${RUNS:-5}
tmp=
bench_workdir tmp pull
bench_registry

best() { sort -g | head -1; }
kiln_times=() skopeo_times=()
for _ in $(seq "$runs"); do
    rm -rf "$tmp/k" "$tmp/s"
    t0=$(bench_now)
    "$KILN" --root "$tmp/k" --registry-mirror "docker.io=$REGISTRY" pull -q debian:bookworm >/dev/null
    t1=$(bench_now)
    skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/library/debian:bookworm" "oci:$tmp/s:bookworm" >/dev/null
    t2=$(bench_now)
    kiln_times+=("$(python3 -c "print($t1 - $t0)")")
    skopeo_times+=("$(python3 -c "print($t2 - $t1)")")
done
k=$(printf '%s\n' "${kiln_times[@]}" | best)
s=$(printf '%s\n' "${skopeo_times[@]}" | best)
printf 'kiln   pull debian:bookworm: %.3f s (best of %d)\n' "$k" "$runs"
printf 'skopeo copy debian:bookworm: %.3f s (best of %d)\n' "$s" "$runs"
printf 'ratio kiln/skopeo: %.2f (target <= 1.5)\n' "$(python3 -c "print($k / $s)")"
