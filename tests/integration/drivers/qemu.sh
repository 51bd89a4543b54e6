#!/usr/bin/env bash
# qemu: a real Debian kernel in QEMU (TCG) as the DUT. Power on starts QEMU and returns when it runs,
# the console reaches serial.log and the serial terminal (a command runs in the guest), storage is the
# VM's virtio disk (EBUSY while on, written by the guest, flushed at power off), power off stops the
# process, cycle boots again, a guest that powers itself off reads as off, a QEMU that cannot start
# fails the power write, broken options stop the daemon from starting, and no QEMU outlives the test.
. "$(dirname "$0")/../lib.sh"

VM=$T/vm
bash "$SOURCE_ROOT/tests/integration/drivers/make-qemu-dut.sh" "$VM" || fail "could not build the test kernel and initramfs"

DISK=$T/disk.img
cat > "$T/config.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: test
export:
  dut1:
    type: qemu
    config:
      kernel: $VM/vmlinuz
      initrd: $VM/initramfs.gz
      append: console=ttyS0 panic=-1 quiet
      disk: $DISK
      disk_size: 8MiB
      memory: 256MiB
      stop_timeout: 3s
  dut2:
    type: qemu
    config:
      binary: /bin/false
      kernel: $VM/vmlinuz
YAML

# The QEMU processes of the daemon (its children named qemu-system-*), recorded for the cleanup.
qemu_pids() {
        local d
        d=$(daemon_pid)
        pgrep -P "$d" -f qemu-system || true
}
record_qemu() {
        local p
        p=$(qemu_pids)
        [ -n "$p" ] || fail "no QEMU process after power on"
        [ "$(echo "$p" | wc -l)" = 1 ] || fail "more than one QEMU: $p"
        TEST_PIDS="${TEST_PIDS:-} $p"
        echo "$p"
}
# Bounded waits for the guest: TCG boots in about 5 s; 90 s turns a hang into a failure.
wait_long() {
        local i
        for i in $(seq 1 900); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        return 1
}
booted_twice() {
        [ "$(grep -c 'boot complete' "$MNT/dut1/serial.log")" -ge 2 ]
}

start_local "$T/config.yaml" >/dev/null
P=$MNT/dut1/power
S=$MNT/dut1/storage

[ "$(cat "$P")" = off ] || fail "a fresh VM is not off"
[ "$(stat -c %s "$S")" = $((8 << 20)) ] || fail "storage size $(stat -c %s "$S") is not disk_size"
[ "$(stat -c %s "$DISK")" = $((8 << 20)) ] || fail "disk image not created with disk_size"
[ -z "$(qemu_pids)" ] || fail "QEMU runs before power on"

# While off the storage is the host's: a marker for the guest to read.
printf 'JMPMARK1' | dd of="$S" conv=notrunc status=none || fail "writing storage while off failed"

expect_error "Invalid argument" bash -c "echo sideways > $P"
[ -z "$(qemu_pids)" ] || fail "a refused power write started QEMU"

echo on > "$P" || fail "power on failed"
[ "$(cat "$P")" = on ] || fail "power reads $(cat "$P") after on"
pid=$(record_qemu)
grep -qz -- '-accel' "/proc/$pid/cmdline" || fail "QEMU runs without -accel tcg"
echo on > "$P" || fail "a second power on failed"
[ "$(qemu_pids)" = "$pid" ] || fail "a second power on started another QEMU"

# The disk is the guest's while it runs.
expect_error "Device or resource busy" dd if=/dev/zero of="$S" bs=512 count=1 conv=notrunc status=none

wait_long grep -q 'boot complete' "$MNT/dut1/serial.log" || fail "no 'boot complete' in serial.log within 90 s"
grep -q 'Linux version 6.1' "$MNT/dut1/serial.log" && fail "quiet was not passed to the kernel"

# A command through the terminal: the answer is computed in the guest, and it reads the marker off
# its disk and writes its own.
"$PY" - "$MNT/dut1/serial" <<'PY' || fail "the guest shell did not answer on the serial terminal"
import sys, time, serial
port = serial.Serial(sys.argv[1], 115200, timeout=0.5)
port.write(b"echo R$((6*7)); echo M$(head -c 8 /dev/vda); echo GUESTWROTE | dd of=/dev/vda bs=512 seek=1 conv=notrunc; sync\n")
got = b""
deadline = time.monotonic() + 60
while not (b"R42" in got and b"MJMPMARK1" in got and b"records out" in got):
    if time.monotonic() > deadline:
        sys.exit("no answer; got %r" % got[-500:])
    got += port.read(4096)
print("guest answered")
PY

# Off: QEMU is gone, the guest's write reached the image, the storage is writable again.
echo off > "$P" || fail "power off failed"
[ "$(cat "$P")" = off ] || fail "power reads $(cat "$P") after off"
alive "$pid" && fail "QEMU $pid still runs after power off"
[ "$(dd if="$S" bs=512 skip=1 count=1 status=none | head -c 10)" = GUESTWROTE ] || fail "the guest's disk write is not in the storage"
printf 'JMPMARK2' | dd of="$S" conv=notrunc status=none || fail "writing storage after power off failed"
grep -q 'VM stopped' "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log || fail "the daemon did not log the stop"

# Cycle boots a new QEMU that sees the new disk contents.
echo on > "$P"
pid=$(record_qemu)
echo cycle > "$P" || fail "power cycle failed"
pid2=$(record_qemu)
[ "$pid2" != "$pid" ] || fail "cycle did not restart QEMU"
alive "$pid" && fail "the QEMU before the cycle still runs"
wait_long booted_twice || fail "no second boot after cycle"

# The guest powering itself off reads as off, and its QEMU is gone.
"$PY" - "$MNT/dut1/serial" <<'PY' || fail "the guest did not read its disk after the cycle"
import sys, time, serial
port = serial.Serial(sys.argv[1], 115200, timeout=0.5)
port.write(b"echo M$(head -c 8 /dev/vda)\n")
got, deadline = b"", time.monotonic() + 60
while b"MJMPMARK2" not in got:
    if time.monotonic() > deadline:
        sys.exit("no answer; got %r" % got[-500:])
    got += port.read(4096)
port.write(b"poweroff -f\n")
PY
wait_long grep -qx off "$P" || fail "power does not read off after the guest powered off"
wait_long bash -c "! kill -0 $pid2 2>/dev/null || [ \"\$(awk '{print \$3}' /proc/$pid2/stat)\" = Z ]" ||
        fail "QEMU $pid2 still runs after the guest powered off"
grep -q 'VM exited by itself' "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log || fail "the daemon did not log the guest's power off"

# A QEMU that fails to start fails the power write with EIO and leaves the DUT off.
expect_error "Input/output error" bash -c "echo on > $MNT/dut2/power"
[ "$(cat "$MNT/dut2/power")" = off ] || fail "dut2 is not off after a failed start"
grep -q 'dut2: QEMU exited while starting' "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log ||
        fail "the daemon did not say why dut2 did not start"

# Stopping local mode with the VM on leaves no QEMU behind.
echo on > "$P"
pid=$(record_qemu)
"$JMP" local stop --mountpoint "$MNT" >/dev/null || fail "local stop failed"
alive "$pid" && fail "QEMU $pid outlived local stop"

# Bad options: the daemon does not start, and jmp says why.
bad() {
        local want=$1 out
        cat > "$T/bad.yaml"
        if out=$("$JMP" local start --config "$T/bad.yaml" --mountpoint "$MNT" 2>&1); then
                "$JMP" local stop --mountpoint "$MNT" >/dev/null 2>&1
                fail "a bad qemu config started"
        fi
        case "$out" in
        *"$want"*) ;;
        *) fail "expected '$want' in: $out" ;;
        esac
}
bad "kernel $T/missing cannot be read" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test}
export:
  dut1: {type: qemu, config: {kernel: $T/missing}}
YAML
# The parser refuses what it can see, at the value's line and column.
line="  dut1: {type: qemu, config: {kernel: $VM/vmlinuz, cpus: "
bad "$T/bad.yaml:5:$((${#line} + 1)): export.dut1.config.cpus: 0 is out of range 1..64" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test}
export:
  dut1: {type: qemu, config: {kernel: $VM/vmlinuz, cpus: 0}}
YAML
bad "$T/bad.yaml:5:30: export.dut1.config: nothing to boot: set kernel or disk" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test}
export:
  dut1: {type: qemu, config: {memory: 512MiB}}
YAML
bad "extra_args" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: test}
export:
  dut1: {type: qemu, config: {kernel: $VM/vmlinuz, extra_args: "-device foo"}}
YAML
echo PASS
