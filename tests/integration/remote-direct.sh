#!/usr/bin/env bash
# Direct mode: a client's DUT of type remote drives an exporter's sim DUT over TLS data streams, with
# stream tokens minted from a keyring (no controller): power, serial.log, the serial terminal,
# storage round trip, the exporter's rules (EBUSY, ENOSPC), refused tokens and certificates, and an
# exporter that dies mid-stream.
. "$(dirname "$0")/lib.sh"
: "${JUMPSTARTERD:?}" "${JMP_MINT_TOKEN:?}"

KR=$T/keyring
mint() {
        "$JMP_MINT_TOKEN" --keyring "$KR" --create --issuer lab --audience exporter/lab1 --dut dut1 --lease lease1 "$@"
}
TOKEN=$(mint)
EXPIRED=$(mint --expired)
NO_STORAGE=$(mint --verbs "power serial")

SIZE=$((16 << 20))
IMG=$T/exporter.img
cat > "$T/exporter.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: lab1
export:
  dut1:
    type: sim
    config:
      storage: $IMG
      size: 16MiB
      boot_time: 200ms
YAML

start_exporter() {
        [ -e "$T/exporter.log" ] && cat "$T/exporter.log" >> "$T/exporters.log"
        : > "$T/exporter.log"
        "$JUMPSTARTERD" --config "$T/exporter.yaml" --listen "$T/exporter.sock" --streams-listen "${1:-127.0.0.1:0}" \
                --streams-keyring "$KR" --streams-issuer lab --streams-lease dut1=lease1 >> "$T/exporter.log" 2>&1 &
        EXPORTER=$!
        TEST_PIDS="${TEST_PIDS:-} $EXPORTER"
        wait_for grep -q "Serving data streams on" "$T/exporter.log" || { cat "$T/exporter.log"; fail "no stream listener"; }
}
start_exporter
ADDR=$(sed -n 's/.*Serving data streams on \([^,]*\), certificate \(sha256:[0-9a-f]*\).*/\1/p' "$T/exporter.log")
FP=$(sed -n 's/.*Serving data streams on \([^,]*\), certificate \(sha256:[0-9a-f]*\).*/\2/p' "$T/exporter.log")
[ -n "$ADDR" ] && [ -n "$FP" ] || fail "no address or fingerprint in the exporter's log"
OTHER_FP=sha256:$(printf '%064d' 0)

# The client: dut1 is the exporter's dut1; dut2 has an expired token, dut3 pins another certificate,
# dut4 has a token without the storage verb.
remote() { # NAME TOKEN FINGERPRINT
        cat <<YAML
  $1:
    type: remote
    config:
      address: "$ADDR"
      dut: dut1
      fingerprint: "$3"
      token: "$2"
YAML
}
{
        cat <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: client
export:
YAML
        remote dut1 "$TOKEN" "$FP"
        remote dut2 "$EXPIRED" "$FP"
        remote dut3 "$TOKEN" "$OTHER_FP"
        remote dut4 "$NO_STORAGE" "$FP"
} > "$T/client.yaml"
start_local "$T/client.yaml" >/dev/null
CLIENT_LOG=$(ls "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log)

# Connected: power reads what the exporter says.
wait_for grep -qx off "$MNT/dut1/power" || fail "power of the remote DUT never became known: $(cat "$MNT/dut1/power")"

# Power switches the exporter's DUT; serial.log shows its boot.
echo on > "$MNT/dut1/power"
[ "$(cat "$MNT/dut1/power")" = on ] || fail "power did not read back on"
wait_for grep -q "dut1: Powered on" "$T/exporter.log" || fail "the exporter's DUT did not power on"
wait_for grep -q 'boot complete' "$MNT/dut1/serial.log" || fail "serial.log never showed the boot"
grep -m1 'boot complete' "$MNT/dut1/serial.log" >/dev/null

# The terminal round-trips keystrokes through the exporter's shell.
timeout 30 "$PY" - "$MNT/dut1/serial" <<'PY' || fail "serial terminal round trip failed"
import serial, sys
s = serial.Serial(sys.argv[1], 115200, timeout=20)
s.write(b"\r")
s.read_until(b"# ")
s.write(b"echo hello over tls\r")
line = s.read_until(b"hello over tls\r\n")
assert line.endswith(b"hello over tls\r\n"), line
s.write(b"cat /etc/hostname\r")
got = s.read_until(b"dut1\r\n")
assert got.endswith(b"dut1\r\n"), got
print("pyserial ok")
PY

# The exporter's rules come back: storage is busy while powered.
expect_error "Device or resource busy" dd if=/dev/zero of="$MNT/dut1/storage" bs=4k count=1 conv=notrunc status=none
echo off > "$MNT/dut1/power"
wait_for grep -q "dut1: Powered off" "$T/exporter.log" || fail "the exporter's DUT did not power off"

# Storage round trip: dd into the remote DUT, cmp against the exporter's image.
# Reads stop at the exporter's size. (stat shows the size the mount was told when it described the
# DUT: 0 if that came before the first connection, so it is not checked here.)
[ "$(cat "$MNT/dut1/storage" | wc -c)" = $SIZE ] || fail "remote storage does not read $SIZE bytes"
head -c $((5 << 20)) /dev/urandom > "$T/image"
dd if="$T/image" of="$MNT/dut1/storage" bs=4M conv=fsync status=none || fail "dd into remote storage failed"
cmp -n $((5 << 20)) "$T/image" "$IMG" || fail "the exporter's image differs from what dd wrote"
cmp -n $((5 << 20)) "$T/image" "$MNT/dut1/storage" || fail "remote storage does not read back what dd wrote"
# Writes are answered once sent (several in flight), but close waits for the exporter's answers:
# without fsync, what dd wrote is in the exporter's image once dd returns.
head -c $((3 << 20)) /dev/urandom > "$T/image2"
dd if="$T/image2" of="$MNT/dut1/storage" bs=64k seek=1 conv=notrunc status=none || fail "dd without fsync failed"
cmp -n $((3 << 20)) "$T/image2" "$IMG" 0 $((64 << 10)) || fail "close returned before the exporter had the writes"

# Past the end: ENOSPC; straddling it: what fits lands. Powering on while open for writing: EBUSY.
expect_error "No space left on device" \
        dd if=/dev/zero of="$MNT/dut1/storage" bs=4096 count=1 seek=$((SIZE / 4096)) conv=notrunc status=none
"$PY" - "$MNT/dut1/storage" "$MNT/dut1/power" "$SIZE" <<'PY' || fail "short writes or EBUSY on power failed"
import errno, os, sys
dev, power, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(dev, os.O_RDWR)
assert os.pwrite(fd, b"x" * 100, size - 10) == 10
try:
    os.pwrite(fd, b"y", size)
    raise SystemExit("a write at the end did not fail")
except OSError as e:
    assert e.errno == errno.ENOSPC, e
try:
    with open(power, "w") as f:
        f.write("on\n")
    raise SystemExit("power on while storage is open for writing succeeded")
except OSError as e:
    assert e.errno == errno.EBUSY, e
os.fsync(fd)
os.close(fd)
print("edges ok")
PY
[ "$(tail -c 10 "$IMG")" = xxxxxxxxxx ] || fail "the straddling write did not land on the exporter"

# Refusals are clear: an expired token, a certificate that is not the pinned one, a missing verb.
expect_error "Key was rejected" dd if=/dev/zero of="$MNT/dut2/storage" bs=4k count=1 conv=notrunc status=none
grep -q "dut2: storage stream: the exporter at $ADDR refused it: Unauthorized: The stream token was refused: expired" \
        "$CLIENT_LOG" || fail "no clear message for the expired token"
expect_error "Host is down" bash -c "echo on > $MNT/dut2/power"
expect_error "Key was rejected" dd if="$MNT/dut3/storage" of=/dev/null bs=4k count=1 status=none
grep -q "dut3: .*presented certificate $FP, not the pinned $OTHER_FP" "$CLIENT_LOG" ||
        fail "no clear message for the certificate mismatch"
expect_error "Permission denied" dd if="$MNT/dut4/storage" of=/dev/null bs=4k count=1 status=none
grep -q "dut4: storage stream: .*Forbidden: The stream token does not allow 'storage'" "$CLIENT_LOG" ||
        fail "no clear message for the missing verb"
[ "$(cat "$MNT/dut1/power")" = off ] || fail "refused streams disturbed dut1"

# The exporter dies mid-stream: open files fail promptly, nothing hangs.
rm -f "$T/opened" "$T/go"
"$PY" - "$MNT/dut1/storage" "$T/opened" "$T/go" > "$T/writer.out" 2>&1 <<'PY' &
import errno, os, sys, time
dev, opened, go = sys.argv[1:]
fd = os.open(dev, os.O_RDWR)
assert os.pwrite(fd, b"a" * 4096, 0) == 4096
open(opened, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
try:
    os.pwrite(fd, b"b" * 4096, 4096)
    os.fsync(fd)
    print("no error")
except OSError as e:
    print("errno", e.errno)
PY
writer=$!
TEST_PIDS="$TEST_PIDS $writer"
wait_for test -e "$T/opened" || fail "the writer did not open storage"
kill -9 "$EXPORTER"
wait "$EXPORTER" 2>/dev/null || true
touch "$T/go"
timeout 20 tail --pid="$writer" -f /dev/null || fail "the writer hung after the exporter died"
wait "$writer" || true
grep -qx "errno 5" "$T/writer.out" || fail "the write after the exporter died said: $(cat "$T/writer.out")"
wait_for expect_error "Host is down" timeout 10 bash -c "echo on > $MNT/dut1/power" ||
        fail "power did not fail with EHOSTDOWN after the exporter died"
[ "$(timeout 10 cat "$MNT/dut1/power")" = unknown ] || fail "power of a lost exporter does not read unknown"
expect_error "Host is down" timeout 10 dd if="$MNT/dut1/storage" of=/dev/null bs=4k count=1 status=none

# It comes back on the same address: the client reconnects by itself.
start_exporter "$ADDR"
ADDR2=$(sed -n 's/.*Serving data streams on \([^,]*\), certificate.*/\1/p' "$T/exporter.log")
[ "$ADDR2" = "$ADDR" ] || fail "the exporter came back on $ADDR2"
FP2=$(sed -n 's/.*certificate \(sha256:[0-9a-f]*\).*/\1/p' "$T/exporter.log")
# A restarted exporter has a new certificate: the old pin refuses it, clearly.
wait_for grep -q "dut1: control stream: the exporter at $ADDR presented certificate $FP2, not the pinned $FP" \
        "$CLIENT_LOG" || fail "the new certificate was not refused"
expect_error "Host is down" bash -c "echo on > $MNT/dut1/power"

# Daemons built with sanitizers report into their logs.
cat "$T/exporter.log" >> "$T/exporters.log"
if grep -E 'ERROR: AddressSanitizer|ERROR: LeakSanitizer: detected|runtime error:' "$T/exporters.log"; then
        fail "sanitizer reports in the exporter's log"
fi
echo PASS
