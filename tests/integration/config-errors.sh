#!/usr/bin/env bash
# A broken config is refused with FILE:LINE:COLUMN and nothing starts.
. "$(dirname "$0")/lib.sh"

check() {
        local want=$1 cfg=$T/bad.yaml out
        cat > "$cfg"
        if out=$("$JMP" local start --config "$cfg" --mountpoint "$MNT" 2>&1); then
                fail "a bad config started: $out"
        fi
        case "$out" in
        *"$cfg:$want"*) echo "ok: $out" ;;
        *) fail "expected '$cfg:$want' in: $out" ;;
        esac
        grep -qs " $MNT " /proc/self/mountinfo && fail "mounted after a config error"
        ls "$JMP_RUNTIME_DIR"/local/*/*.pid 2>/dev/null && fail "something started after a config error"
        pgrep -f "jumpstarterd --config $cfg" && fail "jumpstarterd runs after a config error"
        return 0
}

check "7:5: export.dut1.colour" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: test
export:
  dut1:
    colour: red
    type: sim
YAML

check "8:20: export.dut1.config.size" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: test
export:
  dut1:
    type: sim
    config: {size: huge}
YAML

check "5:3: export.Dut_1" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test}
export:
  Dut_1:
    type: sim
YAML

check "7:3: export.dut1" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test}
export:
  dut1:
    type: sim
  dut1:
    type: sim
YAML

check "6:11: export.dut1.type" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test}
export:
  dut1:
    type: simm
YAML

check "1:13: apiVersion" <<'YAML'
apiVersion: v2
kind: ExporterConfig
metadata: {name: test}
export:
  dut1: {type: sim}
YAML

# A value that is not one of those the option allows, and one outside its range.
check "7:44: export.dut1.serial.config.parity: \"mark\" is not one of none, even, odd" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test}
export:
  dut1:
    serial:
      config: {path: /dev/ttyUSB0, parity: mark}
      type: tty
YAML

check "6:31: export.dut1.config.cpus: 99 is out of range 1..64" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test}
export:
  dut1:
    config: {kernel: k, cpus: 99}
    type: qemu
YAML

# A rule of the driver type across its options: a missing one is pointed at its mapping.
check "8:15: export.dut1.power.config: preset template needs option \"off_url\"" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test}
export:
  dut1:
    power:
      type: http
      config: {preset: template, url: "http://relay", on_url: "http://relay/on"}
YAML

# A syntax error and a missing file.
check "4:" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test
export: [
YAML
expect_error "$T/missing.yaml" "$JMP" local start --config "$T/missing.yaml" --mountpoint "$MNT"

# Valid YAML that the daemon cannot bring up (an image in a directory that does not exist): start
# says why, with the daemon's own words, and leaves nothing behind.
write_config "$T/cfg-nodir.yaml" "      storage: $T/no/such/dir/dut1.img"
expect_error "$T/no/such/dir/dut1.img" "$JMP" local start --config "$T/cfg-nodir.yaml" --mountpoint "$MNT"
grep -qs " $MNT " /proc/self/mountinfo && fail "mounted after the daemon failed"
for f in "$JMP_RUNTIME_DIR"/local/*/*.pid; do
        [ -e "$f" ] && alive "$(cut -d' ' -f1 "$f")" && fail "left running: $f"
done

# A mount point that another file system already uses is refused.
mkdir -p "$MNT"
mount -t tmpfs none "$MNT"
expect_error "already a mount point" "$JMP" local start --config "$T/cfg-nodir.yaml" --mountpoint "$MNT"
umount "$MNT"
echo PASS
