#!/usr/bin/env bash
# Times `kiln pull` of debian:bookworm from a loopback Distribution registry
# into an empty store against `skopeo copy` of the same image into an OCI
# directory, and prints the ratio (target: kiln/skopeo <= 1.5).
# Needs: docker-registry, skopeo, and the conformance registry storage
# (../shared/conformance/registry or $KILN_CONFORMANCE_REGISTRY).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
storage=${KILN_CONFORMANCE_REGISTRY:-}
for c in "$root/../shared/conformance/registry" /work/shared/conformance/registry; do
    [ -z "$storage" ] && [ -d "$c/docker" ] && storage=$c
done
[ -n "$storage" ] || { echo "pull.sh: conformance registry storage not found" >&2; exit 1; }
runs=${RUNS:-5}

cargo build --release -q -p builder-cli
target=${CARGO_TARGET_DIR:-$root/target}
kiln="$target/release/kiln"

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
cp -a "$storage" "$tmp/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $tmp/data
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$tmp/config.yml" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
    sleep 0.1
done

now() { date +%s.%N; }
best() { sort -g | head -1; }
kiln_times=() skopeo_times=()
for i in $(seq "$runs"); do
    rm -rf "$tmp/k" "$tmp/s"
    t0=$(now)
    "$kiln" --root "$tmp/k" --registry-mirror "docker.io=127.0.0.1:$port" pull -q debian:bookworm >/dev/null
    t1=$(now)
    skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$port/library/debian:bookworm" "oci:$tmp/s:bookworm" >/dev/null
    t2=$(now)
    kiln_times+=("$(python3 -c "print($t1 - $t0)")")
    skopeo_times+=("$(python3 -c "print($t2 - $t1)")")
done
k=$(printf '%s\n' "${kiln_times[@]}" | best)
s=$(printf '%s\n' "${skopeo_times[@]}" | best)
printf 'kiln   pull debian:bookworm: %.3f s (best of %d)\n' "$k" "$runs"
printf 'skopeo copy debian:bookworm: %.3f s (best of %d)\n' "$s" "$runs"
printf 'ratio kiln/skopeo: %.2f (target <= 1.5)\n' "$(python3 -c "print($k / $s)")"
