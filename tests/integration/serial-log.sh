#!/usr/bin/env bash
# serial.log: grep after power on, tail -f follows, poll() wakes up, a reader that never reads does
# not hold back another one.
. "$(dirname "$0")/lib.sh"

start_local >/dev/null
L=$MNT/dut1/serial.log

[ "$(stat -c %s "$L")" = 0 ] || fail "log not empty before power on"
tail -n +1 -f "$L" > "$T/tail.out" 2>/dev/null &
TEST_PIDS="$!"
echo on > "$MNT/dut1/power"
wait_for grep -q 'boot complete' "$L" || fail "no 'boot complete' in serial.log"
grep -m1 'boot complete' "$L"
[ "$(stat -c %s "$L")" -gt 0 ] || fail "st_size does not grow"
wait_for grep -q 'boot complete' "$T/tail.out" || fail "tail -f did not follow: $(cat "$T/tail.out")"

# poll() on serial.log: not readable once drained, readable when the board prints.
"$PY" - "$L" "$MNT/dut1/serial" <<'PY'
import os, select, sys, time
log, tty = sys.argv[1], sys.argv[2]
fd = os.open(log, os.O_RDONLY)
while os.read(fd, 65536):
    pass
p = select.poll()
p.register(fd, select.POLLIN)
assert p.poll(0) == [], "readable while drained"
t = os.open(tty, os.O_RDWR | os.O_NOCTTY)
os.write(t, b"echo polled-marker\r")
ev = p.poll(20000)
assert ev and ev[0][1] & select.POLLIN, "poll did not wake up"
data = b""
deadline = time.time() + 20
while b"polled-marker" not in data and time.time() < deadline:
    p.poll(1000)
    data += os.read(fd, 65536)
assert b"polled-marker" in data, data
print("poll ok")
PY

# Two readers: A opens and never reads; B reads everything of a large burst of output.
"$PY" - "$L" "$MNT/dut1/serial" <<'PY'
import os, sys, time, re
log, tty = sys.argv[1], sys.argv[2]
a = os.open(log, os.O_RDONLY)          # never read
b = os.open(log, os.O_RDONLY)
while os.read(b, 1 << 20):
    pass                               # B catches up with the past
t = os.open(tty, os.O_RDWR | os.O_NOCTTY)
N = 8000                               # about 0.5 MiB: within the ring, far beyond A's socket buffer
os.write(t, b"flood %d\r" % N)
buf = b""
deadline = time.time() + 60
while time.time() < deadline:
    chunk = os.read(b, 1 << 20)
    if chunk:
        buf += chunk
        if b"flood %06d" % N in buf:
            break
    else:
        time.sleep(0.01)
nums = [int(m) for m in re.findall(rb"flood (\d{6})", buf)]
assert nums == list(range(1, N + 1)), "B missed lines: got %d, last %s" % (len(nums), nums[-1:] )
os.close(a)
print("reader B got all %d lines while A never read" % N)
PY
echo PASS
