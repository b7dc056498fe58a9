# shellcheck shell=bash
# Shared helpers for the comparison scripts in benches/ (sourced, not run).
#
#   . "$(dirname "$0")/lib.sh"
#   bench_init "$@"          # cd to the repository, pick or build kiln ($KILN)
#
# Environment:
#   KILN_BENCH_TOOLS     builders to run, any of "kiln docker buildah"
#                        (default: all three; a missing one is skipped)
#   KILN_BENCH_REGISTRY  HOST:PORT of a registry already serving
#                        library/debian:bookworm and library/busybox:latest
#                        (compare.sh starts one and passes it on)
#   KILN_CONFORMANCE_REGISTRY  the Distribution registry storage to serve
#                        otherwise (default ../shared/conformance/registry)
#   KILN_BENCH_RESULTS   file to which bench_record appends
#                        "workload<TAB>tool<TAB>seconds" lines (compare.sh)
#   KILN_BENCH_KEEP_LOGS set to keep the per-build logs (the work dir is
#                        otherwise removed at exit)
#   KILN_BENCH_KILN_FLAGS extra flags for every `kiln build`, split on
#                        spaces (e.g. "--scratch memory")
#   KILN_BENCH_SETTLE    seconds to wait at most for the disk to settle
#                        before timing (default 420; see bench_settle)
#
# Every helper that starts something registers its cleanup with
# bench_on_exit; one EXIT trap runs them in reverse order.

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DOCKER=/usr/bin/docker
bench_cleanups=()

bench_on_exit() { bench_cleanups+=("$1"); }
bench_cleanup() {
    local i
    for ((i = ${#bench_cleanups[@]} - 1; i >= 0; i--)); do
        eval "${bench_cleanups[i]}" || true
    done
}
trap bench_cleanup EXIT
# An interrupted run still cleans up: bash runs the EXIT trap when a trapped
# signal's handler exits, not when the signal kills it.
trap 'exit 130' INT
trap 'exit 143' TERM HUP
trap 'exit 141' PIPE

# cd to the repository; $KILN is the binary given as $1, else a release
# build of the working tree.
bench_init() {
    cd "$BENCH_REPO" || exit 1
    KILN=${1:-}
    if [ -z "$KILN" ]; then
        cargo build -q --release -p builder-cli
        KILN="${CARGO_TARGET_DIR:-$BENCH_REPO/target}/release/kiln"
    fi
    KILN=$(realpath "$KILN")
    [ -x "$KILN" ] || { echo "bench: $KILN is not executable" >&2; exit 1; }
}

# bench_workdir VAR NAME: a new directory under /tmp, removed at exit, in
# $VAR (not printed: a command substitution's subshell could not register
# the cleanup).
bench_workdir() { bench_tempdir "$1" /tmp "$2"; }

# bench_tempdir VAR BASE NAME: a new directory BASE/kiln-bench-NAME.XXXXXX
# in $VAR, removed at exit unless KILN_BENCH_KEEP_LOGS is set.
bench_tempdir() {
    local _bt_dir
    _bt_dir=$(mktemp -d "$2/kiln-bench-$3.XXXXXX")
    if [ -n "${KILN_BENCH_KEEP_LOGS:-}" ]; then
        bench_on_exit "echo 'bench: kept $_bt_dir' >&2"
    else
        bench_on_exit "rm -rf '$_bt_dir'"
    fi
    printf -v "$1" '%s' "$_bt_dir"
}

# bench_store_dir VAR NAME: a new directory for a builder's store, removed
# at exit, in $VAR. It goes where an installation keeps its store (/var/lib
# as root, else $XDG_DATA_HOME or ~/.local/share; $KILN_BENCH_STORE_BASE
# overrides), as docker's lives in /var/lib/docker: not under /tmp with the
# benches' work dirs, whose clean-ups free hundreds of thousands of inodes.
# On a journal-less ext4 creating files in block groups freed minutes ago is
# several times slower, and a store under /tmp had its RUN steps there.
bench_store_dir() {
    local base
    if [ -n "${KILN_BENCH_STORE_BASE:-}" ]; then
        base=$KILN_BENCH_STORE_BASE
    elif [ "$(id -u)" = 0 ]; then
        base=/var/lib
    else
        base=${XDG_DATA_HOME:-$HOME/.local/share}
    fi
    mkdir -p "$base"
    bench_tempdir "$1" "$base" "$2"
}

bench_now() { date +%s.%N; }

# Seconds "$@" took (2 decimals), or "failed". Output goes to $BENCH_LOG
# (default /dev/null; `BENCH_LOG=f bench_secs …`); on failure its tail is
# shown on stderr.
bench_secs() {
    local s e log=${BENCH_LOG:-/dev/null}
    s=$(bench_now)
    if ! "$@" >"$log" 2>&1; then
        echo "bench: failed: $*" >&2
        [ "$log" != /dev/null ] && tail -n 15 "$log" >&2
        echo failed
        return
    fi
    e=$(bench_now)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'
}

# a / b to 2 decimals, or "-" when either is missing or failed.
bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "-"
        else printf "%.2f", a / b }'
}

# The largest / smallest of the arguments that are numbers ("failed" if
# none is): the longest stage, the best of several runs.
bench_max() {
    printf '%s\n' "$@" | awk '/^[0-9.]+$/ { if (!n++ || $1 > m) m = $1 }
        END { if (n) printf "%.2f", m; else print "failed" }'
}
bench_min() {
    printf '%s\n' "$@" | awk '/^[0-9.]+$/ { if (!n++ || $1 < m) m = $1 }
        END { if (n) printf "%.2f", m; else print "failed" }'
}

# Append one result for compare.sh.
bench_record() {
    if [ -n "${KILN_BENCH_RESULTS:-}" ]; then
        printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$KILN_BENCH_RESULTS"
    fi
}

# True when the user asked for this builder.
bench_wants() {
    [[ " ${KILN_BENCH_TOOLS:-kiln docker buildah} " == *" $1 "* ]]
}

# True when docker was asked for and a daemon answers. As root, a missing
# daemon is started (`dockerd --bridge=none --iptables=false`, the setup
# these machines support) and stopped again at exit, its build cache
# pruned; one that was already running is left alone.
bench_docker_ready() {
    bench_wants docker || return 1
    [ -x "$BENCH_DOCKER" ] || return 1
    "$BENCH_DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ] || ! command -v dockerd >/dev/null; then
        echo "bench: docker skipped (no daemon running)" >&2
        return 1
    fi
    local log pid
    log=$(mktemp /tmp/kiln-bench-dockerd.XXXXXX)
    dockerd --bridge=none --iptables=false >"$log" 2>&1 &
    pid=$!
    bench_on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f '$log'"
    for _ in $(seq 300); do
        if "$BENCH_DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
            # Our own daemon: its build cache is only ours (gigabytes after
            # a few runs), dropped before it stops.
            bench_on_exit "'$BENCH_DOCKER' builder prune -af >/dev/null 2>&1"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: docker skipped (dockerd did not start, see below)" >&2
    tail -n 5 "$log" >&2
    return 1
}

# `DOCKER_BUILDKIT=1 docker …` with Debian's client (the other docker on
# PATH may want buildx).
bench_docker() { DOCKER_BUILDKIT=1 "$BENCH_DOCKER" "$@"; }

# At exit, remove the images whose ids the builds wrote with --iidfile into
# DIR/*.iid (one id per file, no newline: awk adds it).
bench_docker_rmi_at_exit() {
    bench_on_exit "awk 1 '$1'/*.iid 2>/dev/null | sort -u | xargs -r '$BENCH_DOCKER' rmi -f >/dev/null 2>&1"
}

# True when buildah was asked for and is installed.
bench_buildah_ready() {
    bench_wants buildah && command -v buildah >/dev/null
}

# buildah with a store of its own under DIR (fresh stores keep runs
# independent of each other and of the machine's images): sets the array
# BENCH_BUILDAH to the command prefix.
bench_buildah_store() {
    BENCH_BUILDAH=(buildah --root "$1/root" --runroot "$1/run")
    bench_on_exit "buildah --root '$1/root' --runroot '$1/run' rm --all >/dev/null 2>&1; umount -R '$1/root/overlay' 2>/dev/null"
}

# A Distribution registry on 127.0.0.1 serving a copy of the conformance
# storage (debian:bookworm, busybox:latest); sets REGISTRY=127.0.0.1:PORT.
# Reuses $KILN_BENCH_REGISTRY when set.
bench_registry() {
    if [ -n "${KILN_BENCH_REGISTRY:-}" ]; then
        REGISTRY=$KILN_BENCH_REGISTRY
        return
    fi
    local storage=${KILN_CONFORMANCE_REGISTRY:-} c dir port pid
    for c in "$BENCH_REPO/../shared/conformance/registry" /work/shared/conformance/registry; do
        [ -z "$storage" ] && [ -d "$c/docker" ] && storage=$c
    done
    [ -n "$storage" ] || { echo "bench: conformance registry storage not found (set KILN_CONFORMANCE_REGISTRY)" >&2; exit 1; }
    command -v docker-registry >/dev/null || { echo "bench: needs docker-registry (apt-get install docker-registry)" >&2; exit 1; }
    bench_workdir dir registry
    cp -a "$storage" "$dir/data"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
YML
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    pid=$!
    bench_on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    for _ in $(seq 100); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; then
            REGISTRY=127.0.0.1:$port
            return
        fi
        sleep 0.1
    done
    echo "bench: the registry did not start" >&2
    cat "$dir/log" >&2
    exit 1
}

# Pull IMAGE (a name on $REGISTRY) once into every builder's store, so the
# timed builds measure the build and not the download. Uses $KILN_ROOT and
# $BENCH_BUILDAH when those builders run.
bench_pull_base() {
    local image=$REGISTRY/$1
    if bench_wants kiln; then
        "$KILN" --root "$KILN_ROOT" pull -q "$image" >/dev/null
    fi
    if [ -n "${BENCH_DOCKER_OK:-}" ]; then
        bench_docker pull -q "$image" >/dev/null
        # The name carries this run's port: untag it (the layers stay while
        # anything else uses them).
        bench_on_exit "'$BENCH_DOCKER' rmi '$image' >/dev/null 2>&1"
    fi
    if [ -n "${BENCH_BUILDAH_OK:-}" ]; then
        "${BENCH_BUILDAH[@]}" pull -q --tls-verify=false "$image" >/dev/null
    fi
}

# Detect the builders once: sets BENCH_DOCKER_OK / BENCH_BUILDAH_OK.
bench_detect() {
    BENCH_DOCKER_OK='' BENCH_BUILDAH_OK=''
    if bench_docker_ready; then BENCH_DOCKER_OK=1; fi
    if bench_buildah_ready; then BENCH_BUILDAH_OK=1; fi
}

# kiln build's flags that this binary knows: --progress=quiet, then the
# words of $KILN_BENCH_KILN_FLAGS (e.g. "--scratch memory").
# shellcheck disable=SC2034 # used by the scripts that source this file
bench_kiln_quiet() {
    BENCH_KILN_QUIET=()
    if "$KILN" build --help | grep -q -- '--progress'; then BENCH_KILN_QUIET=(--progress=quiet); fi
    local extra=()
    read -r -a extra <<< "${KILN_BENCH_KILN_FLAGS:-}"
    BENCH_KILN_QUIET+=("${extra[@]}")
}

# Seconds to create 2,000 empty files in the new directory $1.
bench_create_secs() {
    python3 -c 'import os, sys, time
d = sys.argv[1]
os.mkdir(d)
t = time.perf_counter()
for i in range(2000):
    open(os.path.join(d, "f%d" % i), "w").close()
print("%.3f" % (time.perf_counter() - t))' "$1"
}

# bench_settle DIR...: waits until creating files in each DIR is about as
# quick as on tmpfs (at most 3x, or 30 ms more), for at most
# $KILN_BENCH_SETTLE seconds (default 420).
# Why: on an ext4 without a journal (these VMs), the allocator passes over
# inodes freed in the last 60 s (6 min while their inode table block is
# not yet written back), so creating files in a block group where a tree
# was just deleted (the previous run's store, a big rm) costs up to 10x.
# Whose directories land in such a group is luck, and it moved a 1 s build
# by a second or more. A sync first lets the wait end after a minute.
# The probe files stay until exit: deleting them would start it again.
bench_settle() {
    local limit=${KILN_BENCH_SETTLE:-420} start dir probe mem mem_secs disk slow n=0
    local probes=()
    for dir in "$@"; do
        probe=$(mktemp -d "$dir/.kiln-bench-settle.XXXXXX")
        bench_on_exit "rm -rf '$probe'"
        probes+=("$probe")
    done
    sync
    start=$(date +%s)
    while :; do
        n=$((n + 1))
        slow=
        for probe in "${probes[@]}"; do
            mem=$(mktemp -d /dev/shm/kiln-bench-settle.XXXXXX)
            mem_secs=$(bench_create_secs "$mem/p")
            rm -rf "$mem"
            disk=$(bench_create_secs "$probe/p$n")
            if ! awk -v d="$disk" -v m="$mem_secs" 'BEGIN { exit !(d <= 3 * m || d <= m + 0.03) }'; then
                slow+=" ${probe%/*} (${disk}s, tmpfs ${mem_secs}s)"
            fi
        done
        [ -z "$slow" ] && return 0
        if (($(date +%s) - start >= limit)); then
            echo "bench: creating files is still slow after ${limit}s in$slow; timing anyway" >&2
            return 0
        fi
        [ "$n" = 1 ] && echo "bench: waiting for the disk to settle: creating files is slow in$slow" >&2
        sleep 15
    done
}

# The setup four_stages.sh and run_heavy.sh share: a work dir in $work with
# ctx/ and logs/, kiln's store in $KILN_ROOT (see bench_store_dir), the
# registry, the builders detected (a fresh buildah store when there is one),
# quiet kiln progress, and $base, the registry's IMAGE pulled into every
# builder's store; then it waits for the disk to settle (bench_settle).
#   bench_workload NAME IMAGE
bench_workload() {
    work=
    bench_workdir work "$1"
    KILN_ROOT=
    bench_store_dir KILN_ROOT "$1"
    mkdir -p "$work/ctx" "$work/logs"
    bench_registry
    # shellcheck disable=SC2034 # read by the calling script
    base=$REGISTRY/$2
    bench_detect
    if [ -n "$BENCH_BUILDAH_OK" ]; then
        local buildah_dir
        bench_store_dir buildah_dir "$1-buildah"
        bench_buildah_store "$buildah_dir"
    fi
    bench_kiln_quiet
    bench_pull_base "$2"
    local settle=("$KILN_ROOT")
    if [ -n "$BENCH_DOCKER_OK" ] && [ -w /var/lib/docker ]; then settle+=(/var/lib/docker); fi
    bench_settle "${settle[@]}"
}
