# Shared set-up for the integration tests: a private mount namespace, a temp dir, local mode.
# shellcheck shell=bash
set -euo pipefail

: "${JMP:?JMP must name the jmp binary (meson test sets it)}"
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PY=/usr/bin/python3

if [ ! -c /dev/fuse ]; then
        echo "SKIP: this kernel has no FUSE (/dev/fuse is missing)"
        exit 77
fi

# Every test runs in its own mount namespace, so its mounts are invisible to the rest of the
# machine and vanish with it.
if [ -z "${JMP_TEST_IN_NAMESPACE:-}" ]; then
        export JMP_TEST_IN_NAMESPACE=1
        exec unshare --mount --propagation private bash "$0" "$@"
fi

T=$(mktemp -d /tmp/jmp-test.XXXXXX)
export JMP_RUNTIME_DIR=$T/run
MNT=$T/jmp

cleanup() {
        local rc=$?
        set +e
        "$JMP" local stop --mountpoint "$MNT" >/dev/null 2>&1
        # Whatever the test itself started, and anything jmp could not stop, by recorded pid.
        for p in ${TEST_PIDS:-}; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
        # The multi-host tests' hosts (lib-lab.sh).
        if declare -F lab_cleanup >/dev/null; then lab_cleanup; fi
        for f in "$JMP_RUNTIME_DIR"/local/*/*.pid; do
                [ -e "$f" ] && kill -9 "$(cut -d' ' -f1 "$f")" 2>/dev/null
        done
        # Daemons built with sanitizers report into their logs when they exit.
        # ("LeakSanitizer has encountered a fatal error" is the checker failing to stop a process's
        # threads, not a finding; leaks and memory errors are.)
        if grep -lE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer: detected|runtime error:' \
                "$JMP_RUNTIME_DIR"/local/*/*.log "$T"/*.log 2>/dev/null; then
                echo "FAIL: sanitizer reports in the daemons' logs" >&2
                rc=1
        fi
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
                for l in "$JMP_RUNTIME_DIR"/local/*/*.log "$T"/*.log; do
                        [ -e "$l" ] && { echo "--- $l"; tail -n 60 "$l"; }
                done
        fi
        umount -l "$MNT" 2>/dev/null
        rm -rf "$T"
        exit "$rc"
}
trap cleanup EXIT

fail() {
        echo "FAIL: $*" >&2
        exit 1
}

# write_config FILE [extra YAML for dut1's config mapping]
write_config() {
        cat > "$1" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: test
  labels:
    site: test
export:
  dut1:
    type: sim
    labels:
      vendor: acme
      model: widget-v2
    config:
      size: 16MiB
      boot_time: 200ms
${2:-}
YAML
}

start_local() {
        local cfg=${1:-$T/config.yaml}
        [ -e "$cfg" ] || write_config "$cfg"
        "$JMP" local start --config "$cfg" --mountpoint "$MNT"
}

# wait_for COMMAND...: retries a check for up to 20 s (a guard against hanging, not a timing test).
wait_for() {
        local i
        for i in $(seq 1 200); do
                if "$@" >/dev/null 2>&1; then
                        return 0
                fi
                sleep 0.1
        done
        return 1
}

# expect_errno "Invalid argument" COMMAND...: the command fails and says so.
expect_error() {
        local want=$1 out
        shift
        if out=$("$@" 2>&1); then
                fail "'$*' succeeded, expected '$want'"
        fi
        case "$out" in
        *"$want"*) ;;
        *) fail "'$*' said '$out', expected '$want'" ;;
        esac
}

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
        local state
        state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
        [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

daemon_pid() {
        cut -d' ' -f1 "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.pid
}
fuse_pid() {
        cut -d' ' -f1 "$JMP_RUNTIME_DIR"/local/*/jumpstarter-fuse.pid
}
