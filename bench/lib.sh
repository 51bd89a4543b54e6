# Shared by the benchmarks: local mode in a private mount namespace with a file-backed sim DUT.
# shellcheck shell=bash
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
JMP=$BUILD/tools/jmp
[ -x "$JMP" ] || { echo "build first: meson setup build && meson compile -C build" >&2; exit 1; }
if [ -z "${JMP_BENCH_IN_NAMESPACE:-}" ]; then
        export JMP_BENCH_IN_NAMESPACE=1
        exec unshare --mount --propagation private bash "$0" "$@"
fi
T=$(mktemp -d /var/tmp/jmp-bench.XXXXXX)
export JMP_RUNTIME_DIR=$T/run
MNT=$T/jmp
trap 'set +e; "$JMP" local stop --mountpoint "$MNT" >/dev/null 2>&1; umount -l "$MNT" 2>/dev/null; rm -rf "$T"' EXIT

start_bench_dut() {
        cat > "$T/config.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: bench}
export:
  dut1:
    type: sim
    config: {storage: $T/dut1.img, size: ${1:-1GiB}, boot_time: 100ms}
YAML
        "$JMP" local start --config "$T/config.yaml" --mountpoint "$MNT" >/dev/null
}
