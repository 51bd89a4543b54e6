#!/usr/bin/env bash
# Serial console drivers against real peers: tty on a socat pty pair, ser2net 4.3 serving a socat
# pty over raw TCP and RFC 2217; line settings made on /jmp/dut1/serial reach the port; a port
# that vanishes comes back without a restart.
. "$(dirname "$0")/../lib.sh"

command -v socat >/dev/null || fail "socat is not installed (tools/install-deps.sh)"
command -v ser2net >/dev/null || fail "ser2net is not installed (tools/install-deps.sh)"

S=$MNT/dut1/serial
LOG=$MNT/dut1/serial.log

# start_socat NAME: a pty pair $T/NAME (the driver's side) <-> $T/NAME.peer (the board's side).
start_socat() {
        rm -f "$T/$1" "$T/$1.peer"
        socat pty,raw,echo=0,link="$T/$1" pty,raw,echo=0,link="$T/$1.peer" 2>"$T/socat-$1.log" &
        TEST_PIDS="${TEST_PIDS:-} $!"
        eval "SOCAT_$1=$!"
        wait_for test -e "$T/$1" -a -e "$T/$1.peer" || fail "socat made no pty pair $1"
}

# config FILE SERIAL-ENTRY...: a DUT with nothing but a serial driver.
config() {
        local f=$1
        shift
        cat > "$f" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: test
export:
  dut1:
    serial: $*
YAML
}

# Reads from a terminal (or pty) until it saw TEXT; fails after 20 s.
expect_on() {
        "$PY" - "$1" "$2" <<'PY'
import os, select, sys, termios, time, tty
path, want = sys.argv[1], sys.argv[2].encode()
fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
got = b""
end = time.monotonic() + 20
while want not in got:
    left = end - time.monotonic()
    if left <= 0:
        sys.exit("%s: did not see %r, got %r" % (path, want, got[-300:]))
    if select.select([fd], [], [], left)[0]:
        try:
            got += os.read(fd, 4096)
        except BlockingIOError:
            pass
PY
}

# In the background: a reader that prints what arrives at PATH until TEXT comes.
expect_on_bg() {
        expect_on "$1" "$2" &
        BG=$!
        TEST_PIDS="${TEST_PIDS:-} $BG"
}

log_has() { grep -qF -- "$1" "$LOG"; }
speed_of() { stty -F "$1" speed; }
# For wait_for: the speed is read anew on each try ("wait_for test "$(speed_of X)" = N" would read it once).
speed_is() { [ "$(speed_of "$1")" = "$2" ]; }

# --- Bad line options are refused before anything starts, the parser naming FILE:LINE:COLUMN and the
# option; what only the port can tell is refused at start. Nothing keeps running either way.
refuse() {
        local want=$1 out
        shift
        config "$T/bad.yaml" "$@"
        if out=$("$JMP" local start --config "$T/bad.yaml" --mountpoint "$MNT" 2>&1); then
                fail "started with $*: $out"
        fi
        case "$out" in *"$want"*) ;; *) fail "expected '$want' for $*, got: $out" ;; esac
        ls "$JMP_RUNTIME_DIR"/local/*/*.pid 2>/dev/null && fail "something runs after refusing $*"
        grep -qs " $MNT " /proc/self/mountinfo && fail "mounted after refusing $*"
        echo "ok: refused $*"
}
# refuse_value OPTION MESSAGE SERIAL-ENTRY...: the config parser refuses OPTION's value, at its line
# (7, "serial:") and column.
refuse_value() {
        local option=$1 message=$2 line
        shift 2
        line="    serial: $*"
        line=${line%%"$option: "*}
        refuse "$T/bad.yaml:7:$((${#line} + ${#option} + 3)): export.dut1.serial.config.$option: $message" "$@"
}
start_socat A
refuse_value parity '"mark" is not one of none, even, odd' "{type: tty, config: {path: $T/A, parity: mark}}"
refuse_value flow '"hw" is not one of none, rts-cts, xon-xoff' "{type: tty, config: {path: $T/A, flow: hw}}"
refuse_value databits '9 is out of range 5..8' "{type: tty, config: {path: $T/A, databits: 9}}"
refuse_value stopbits '3 is not one of 1, 2' "{type: tty, config: {path: $T/A, stopbits: 3}}"
refuse_value baudrate '12345 is not one of 50, 75, 110, ' "{type: tty, config: {path: $T/A, baudrate: 12345}}"
refuse_value protocol '"ssh" is not one of raw, telnet, rfc2217' "{type: ser2net, config: {host: 127.0.0.1, port: 1, protocol: ssh}}"
refuse "$T/bad.yaml:7:20: export.dut1.serial.type: no port: set path, or usb_serial and/or usb_vid_pid" "{type: serialport}"
refuse "$T/bad.yaml is not a terminal device" "{type: tty, config: {path: $T/bad.yaml}}"
# Another program holds the port, as picocom does (flock).
"$PY" -c 'import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
fcntl.flock(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(600)' "$T/A" "$T/locked" &
LOCKER=$!
TEST_PIDS="${TEST_PIDS:-} $LOCKER"
wait_for test -e "$T/locked" || fail "could not lock $T/A"
refuse "is in use by another program" "{type: tty, config: {path: $T/A}}"
kill "$LOCKER"; wait "$LOCKER" 2>/dev/null || true

# --- tty: console output, keystrokes, line settings both ways.
config "$T/tty.yaml" "{type: tty, config: {path: $T/A, baudrate: 57600, log_size: 64KiB}}"
start_local "$T/tty.yaml" >/dev/null
[ -L "$S" ] || fail "serial is not a symlink"
[ "$(speed_of "$T/A")" = 57600 ] || fail "the port is not at 57600: $(stty -F "$T/A")"
[ "$(speed_of "$S")" = 57600 ] || fail "the DUT's terminal does not show 57600: $(stty -F "$S")"

expect_on_bg "$S" "hello from the board"
printf 'U-Boot\r\nhello from the board\r\n' > "$T/A.peer"
wait "$BG" || fail "output at the port did not reach $S"
wait_for log_has "hello from the board" || fail "serial.log lacks the output: $(cat "$LOG")"

expect_on_bg "$T/A.peer" "typed on the terminal"
printf 'typed on the terminal\r' > "$S"
wait "$BG" || fail "keystrokes on $S did not reach the port"

# A speed change on the DUT's terminal reaches the port (stty exits at once: the close counts).
stty -F "$S" 9600
wait_for speed_is "$T/A" 9600 || fail "the port did not follow to 9600: $(stty -F "$T/A")"
# pyserial as an IDE would: open, set 230400 and two stop bits, keep it open.
"$PY" - "$S" "$T/A" <<'PY'
import sys, time, termios, serial
s = serial.Serial(sys.argv[1], 230400, stopbits=2)
end = time.monotonic() + 20
while True:
    with open(sys.argv[2], "rb", buffering=0) as port:
        a = termios.tcgetattr(port.fileno())
    if a[4] == termios.B230400 and a[2] & termios.CSTOPB:
        break
    if time.monotonic() > end:
        sys.exit("the port did not follow pyserial's 230400 2 stop bits")
    time.sleep(0.05)
s.close()
PY
echo "ok: tty"

# --- tty: the port vanishes (socat dies: its link goes, reads give EIO) and comes back.
kill "$SOCAT_A"; wait "$SOCAT_A" 2>/dev/null || true
timeout 10 cat "$LOG" > /dev/null || fail "serial.log hangs while the port is gone"
timeout 10 stty -F "$S" >/dev/null || fail "the terminal hangs while the port is gone"
alive "$(daemon_pid)" || fail "jumpstarterd died with the port"
start_socat A
wait_for grep -q "Serial port $T/A is back" "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log ||
        fail "the port was not reopened"
printf 'after the comeback\r\n' > "$T/A.peer"
wait_for log_has "after the comeback" || fail "no output after the port came back"
# The settings made on the terminal survive the outage.
[ "$(speed_of "$T/A")" = 230400 ] || fail "the reopened port is not at 230400: $(stty -F "$T/A")"
"$JMP" local stop --mountpoint "$MNT" >/dev/null
echo "ok: tty comes back"

# --- ser2net: Debian's ser2net 4.3 serves a socat pty on 127.0.0.1.
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_ser2net ACCEPTER DEVICE: ser2net in the foreground, serving DEVICE.
start_ser2net() {
        cat > "$T/ser2net.yaml" <<YAML
%YAML 1.1
---
connection: &con
  accepter: $1
  connector: serialdev,$2,115200n81,local
  options:
    kickolduser: true
YAML
        ser2net -n -u -P "$T/ser2net.pid" -c "$T/ser2net.yaml" >>"$T/ser2net.log" 2>&1 &
        SER2NET=$!
        TEST_PIDS="${TEST_PIDS:-} $SER2NET"
}

in_daemon_log() { grep -qF -- "$1" "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log; }

start_socat B
P1=$(free_port)
start_ser2net "tcp,127.0.0.1,$P1" "$T/B"
config "$T/raw.yaml" "{type: ser2net, config: {host: 127.0.0.1, port: $P1}}"
start_local "$T/raw.yaml" >/dev/null
wait_for in_daemon_log "Connected to ser2net at 127.0.0.1:$P1" || fail "no connection to ser2net"

expect_on_bg "$S" "raw from the board"
printf 'raw from the board\r\n' > "$T/B.peer"
wait "$BG" || fail "output at ser2net's port did not reach $S"
wait_for log_has "raw from the board" || fail "serial.log lacks ser2net's output"
expect_on_bg "$T/B.peer" "typed over tcp"
printf 'typed over tcp\r' > "$S"
wait "$BG" || fail "keystrokes on $S did not reach ser2net's port"

# ser2net goes away and comes back on the same port.
kill "$SER2NET"; wait "$SER2NET" 2>/dev/null || true
wait_for in_daemon_log "Connection to ser2net at 127.0.0.1:$P1 lost" || fail "the lost connection went unnoticed"
timeout 10 cat "$LOG" > /dev/null || fail "serial.log hangs while ser2net is gone"
start_ser2net "tcp,127.0.0.1,$P1" "$T/B"
wait_for in_daemon_log "Connected to ser2net at 127.0.0.1:$P1 again" || fail "no reconnection to ser2net"
printf 'raw after the comeback\r\n' > "$T/B.peer"
wait_for log_has "raw after the comeback" || fail "no output after ser2net came back"
"$JMP" local stop --mountpoint "$MNT" >/dev/null
kill "$SER2NET"; wait "$SER2NET" 2>/dev/null || true
echo "ok: ser2net raw, and it comes back"

# --- ser2net with RFC 2217: telnet escaping both ways, line settings reach ser2net's port.
start_socat C
P2=$(free_port)
start_ser2net "telnet(rfc2217),tcp,127.0.0.1,$P2" "$T/C"
config "$T/rfc.yaml" "{type: ser2net, config: {host: 127.0.0.1, port: $P2, protocol: rfc2217, baudrate: 57600}}"
start_local "$T/rfc.yaml" >/dev/null
wait_for in_daemon_log "Connected to ser2net at 127.0.0.1:$P2" || fail "no connection to ser2net (rfc2217)"
# The configured speed went to ser2net's port over RFC 2217.
wait_for speed_is "$T/C" 57600 || fail "ser2net's port is not at 57600: $(stty -F "$T/C")"

# 0xff is telnet's IAC: it must arrive as one byte both ways.
printf 'telnet \377 byte\r\n' > "$T/C.peer"
wait_for grep -qa $'telnet \xff byte' "$LOG" || fail "0xff from the board was not unescaped: $(od -c "$LOG" | tail -5)"
"$PY" - "$T/C.peer" "$S" <<'PY'
import os, select, sys, time
peer = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
with open(sys.argv[2], "wb", buffering=0) as s:
    s.write(b"key \xff end\r")
got, end = b"", time.monotonic() + 20
while b"end\r" not in got and time.monotonic() < end:
    if select.select([peer], [], [], 1)[0]:
        got += os.read(peer, 100)
assert got == b"key \xff end\r", got
PY
stty -F "$S" 9600
wait_for speed_is "$T/C" 9600 || fail "ser2net's port did not follow to 9600: $(stty -F "$T/C")"
"$JMP" local stop --mountpoint "$MNT" >/dev/null
echo "ok: ser2net rfc2217"

echo PASS
