#!/usr/bin/env bash
# serial is a real terminal: isatty, tcsetattr, pyserial as an IDE opens it, picocom and tio attach.
. "$(dirname "$0")/lib.sh"

start_local >/dev/null
S=$MNT/dut1/serial
[ -L "$S" ] || fail "serial is not a symlink to a terminal"

"$PY" - "$S" "$MNT/dut1/power" <<'PY'
import os, sys, termios, time
import serial   # Debian's pyserial
tty, power = sys.argv[1], sys.argv[2]

fd = os.open(tty, os.O_RDWR | os.O_NOCTTY)
assert os.isatty(fd), "serial is not a tty"
attrs = termios.tcgetattr(fd)
attrs[4] = attrs[5] = termios.B9600
termios.tcsetattr(fd, termios.TCSANOW, attrs)
assert termios.tcgetattr(fd)[4] == termios.B9600, "speed change did not stick"
os.close(fd)

s = serial.Serial(tty, 115200, timeout=20)
with open(power, "w") as f:
    f.write("on\n")
got = s.read_until(b"boot complete")
assert got.endswith(b"boot complete"), got
s.read_until(b"# ")
s.write(b"echo hello from pyserial\r")
line = s.read_until(b"hello from pyserial\r\n")
assert line.endswith(b"hello from pyserial\r\n"), line
s.write(b"cat /etc/hostname\r")
assert b"dut1" in s.read_until(b"dut1\r\n")
s.write(b"frobnicate\r")
assert b"not found" in s.read_until(b"not found")
s.close()
print("pyserial ok")
PY

echo off > "$MNT/dut1/power"
( sleep 1; echo on > "$MNT/dut1/power"; sleep 3 ) | picocom -q -b 115200 "$S" > "$T/picocom.out" 2>&1 || true
grep -q 'boot complete' "$T/picocom.out" || fail "picocom saw no boot: $(head -c 500 "$T/picocom.out")"

echo off > "$MNT/dut1/power"
( sleep 1; echo on > "$MNT/dut1/power"; sleep 3 ) | tio -b 115200 "$S" > "$T/tio.out" 2>&1 || true
grep -q 'boot complete' "$T/tio.out" || fail "tio saw no boot: $(head -c 500 "$T/tio.out")"
echo PASS
