#!/usr/bin/env bash
# Power drivers against real peers: Debian's pdudaemon (HTTP API, localcmdline PDU), a switch that
# speaks Shelly Gen2 and Tasmota (fake-switch.py: the hardware is what is mocked), and commands.
. "$(dirname "$0")/../lib.sh"

command -v pdudaemon >/dev/null || fail "pdudaemon is not installed (tools/install-deps.sh installs it)"
HERE=$(cd "$(dirname "$0")" && pwd)

# The switch: Shelly and Tasmota on one port, recording requests.
mkdir -p "$T/switch"
"$PY" "$HERE/fake-switch.py" "$T/switch" & TEST_PIDS="${TEST_PIDS:-} $!"
wait_for test -s "$T/switch/port" || fail "fake switch did not start"
SW=http://127.0.0.1:$(cat "$T/switch/port")
mode() { curl -fsS "$SW/_mode?m=$1" >/dev/null; }
nreq() { if [ -e "$T/switch/requests" ]; then wc -l < "$T/switch/requests"; else echo 0; fi; }

# pdudaemon in the foreground on a free port of 127.0.0.1, its PDU running local commands.
PDU_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$T/pdudaemon.conf" <<JSON
{
    "daemon": {"hostname": "127.0.0.1", "port": $PDU_PORT, "logging_level": "DEBUG", "listener": "http"},
    "pdus": {
        "lab-pdu": {
            "driver": "localcmdline",
            "cmd_on": "echo on %s >> $T/pdu-marker",
            "cmd_off": "echo off %s >> $T/pdu-marker"
        }
    }
}
JSON
pdudaemon --conf "$T/pdudaemon.conf" --loglevel DEBUG --logfile "$T/pdudaemon.log" & TEST_PIDS="$TEST_PIDS $!"
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$PDU_PORT" || fail "pdudaemon did not start"

# Command scripts: the state lives in a file; slow-on hangs with a child of its own.
cat > "$T/relay" <<'SH'
#!/bin/sh
# relay STATEFILE on|off|status|reading|slow
case "$2" in
on|off) echo "$2" > "$1"; echo "relay: $2" ;;
status) [ "$(cat "$1" 2>/dev/null)" = on ] && exit 0; [ "$(cat "$1" 2>/dev/null)" = off ] && exit 1; exit 3 ;;
reading) echo "7.5 W" ;;
slow) sleep 60 & echo "$$ $!" > "$1.pids"; wait ;;
fail) echo "relay: no such port" >&2; exit 2 ;;
esac
SH
chmod +x "$T/relay"
echo off > "$T/cmd-state"

cat > "$T/config.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: power-test
export:
  pdu:
    power:
      type: http
      config: {preset: pdudaemon, url: "http://127.0.0.1:$PDU_PORT", hostname: lab-pdu, port: 3, cycle_delay: 100ms}
  shelly:
    power:
      type: http
      config: {preset: shelly, url: "$SW/", channel: 1, timeout: 1s, retries: 2, cycle_delay: 100ms,
               username: admin, password: secret}
  tasmota:
    power:
      type: http
      config: {preset: tasmota, url: "$SW", timeout: 1s, retries: 0}
  cmd:
    power:
      type: command
      config:
        on: ["$T/relay", "$T/cmd-state", "on"]
        off: ["$T/relay", "$T/cmd-state", "off"]
        status: ["$T/relay", "$T/cmd-state", "status"]
        reading: ["$T/relay", "$T/cmd-state", "reading"]
        cycle_delay: 100ms
  slowcmd:
    power:
      type: command
      config:
        on: ["$T/relay", "$T/slow-state", "slow"]
        off: ["$T/relay", "$T/slow-state", "fail"]
        timeout: 1s
YAML
start_local "$T/config.yaml" >/dev/null
M=$MNT

# --- pdudaemon: no state query (unknown until the first command), no readings.
[ "$(cat $M/pdu/power)" = unknown ] || fail "pdu initial state: $(cat $M/pdu/power)"
[ ! -e $M/pdu/power.reading ] || fail "pdu has a power.reading"
ls $M/pdu | grep -q power.reading && fail "readdir shows power.reading for pdu"
echo on > $M/pdu/power
wait_for grep -qx "on 3" "$T/pdu-marker" || fail "pdudaemon did not run cmd_on for port 3"
[ "$(cat $M/pdu/power)" = on ] || fail "pdu after on: $(cat $M/pdu/power)"
echo off > $M/pdu/power
wait_for grep -qx "off 3" "$T/pdu-marker" || fail "pdudaemon did not run cmd_off"
[ "$(cat $M/pdu/power)" = off ] || fail "pdu after off"

# --- Shelly: the state comes from Switch.GetStatus at start; readings from apower.
[ "$(cat $M/shelly/power)" = off ] || fail "shelly initial state: $(cat $M/shelly/power)"
grep -q "^/rpc/Switch.GetStatus?id=1$" "$T/switch/requests" || fail "no status query at start"
echo on > $M/shelly/power
[ "$(cat $M/shelly/power)" = on ] || fail "shelly after on"
tail -n1 "$T/switch/requests" | grep -qx "/rpc/Switch.Set?id=1&on=true" || fail "shelly on request: $(tail -n1 $T/switch/requests)"
[ "$(cat $M/shelly/power.reading)" = "12.5 W" ] || fail "shelly reading: $(cat $M/shelly/power.reading)"
ls $M/shelly | grep -qx power.reading || fail "readdir lacks power.reading"
expect_error "Permission denied" bash -c "echo 1 > $M/shelly/power.reading"
n=$(nreq)
echo cycle > $M/shelly/power
[ "$(cat $M/shelly/power)" = on ] || fail "shelly after cycle"
[ "$(tail -n +$((n + 1)) "$T/switch/requests" | tr '\n' ' ')" = "/rpc/Switch.Set?id=1&on=false /rpc/Switch.Set?id=1&on=true " ] ||
        fail "cycle requests: $(tail -n +$((n + 1)) "$T/switch/requests" | tr '\n' ' ')"

# HTTP 500: EIO after 1 + retries requests, then the state is unknown.
mode 500
n=$(nreq)
expect_error "Input/output error" bash -c "echo off > $M/shelly/power"
[ $(( $(nreq) - n )) -eq 3 ] || fail "500: $(( $(nreq) - n )) requests, expected 3"
[ "$(cat $M/shelly/power)" = unknown ] || fail "after 500: $(cat $M/shelly/power)"
expect_error "Input/output error" cat $M/shelly/power.reading
# A switch that never answers: the same after the timeouts.
mode hang
n=$(nreq)
expect_error "Input/output error" bash -c "echo on > $M/shelly/power"
[ $(( $(nreq) - n )) -eq 3 ] || fail "hang: $(( $(nreq) - n )) requests, expected 3"
[ "$(cat $M/shelly/power)" = unknown ] || fail "after hang"
mode ok
echo off > $M/shelly/power
[ "$(cat $M/shelly/power)" = off ] || fail "shelly does not recover"
grep -q "relay fault\|HTTP status 500" "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log || fail "the 500 is not logged"
grep -q "Timeout" "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log || fail "the timeout is not logged"

# --- Tasmota: Power / Power On / Power Off, reading from Status 8; no retries configured.
[ "$(cat $M/tasmota/power)" = off ] || fail "tasmota initial state"
echo on > $M/tasmota/power
tail -n1 "$T/switch/requests" | grep -qx "/cm?cmnd=Power1%20On" || fail "tasmota on request"
[ "$(cat $M/tasmota/power)" = on ] || fail "tasmota after on"
[ "$(cat $M/tasmota/power.reading)" = "40.0 W" ] || fail "tasmota reading"
mode 500
n=$(nreq)
expect_error "Input/output error" bash -c "echo off > $M/tasmota/power"
[ $(( $(nreq) - n )) -eq 1 ] || fail "tasmota retried with retries: 0"
mode ok

# --- Commands: status at start, on/off/cycle, reading; output goes to the log.
[ "$(cat $M/cmd/power)" = off ] || fail "cmd initial state: $(cat $M/cmd/power)"
echo on > $M/cmd/power
[ "$(cat "$T/cmd-state")" = on ] && [ "$(cat $M/cmd/power)" = on ] || fail "cmd on"
echo cycle > $M/cmd/power
[ "$(cat "$T/cmd-state")" = on ] && [ "$(cat $M/cmd/power)" = on ] || fail "cmd cycle"
[ "$(cat $M/cmd/power.reading)" = "7.5 W" ] || fail "cmd reading: $(cat $M/cmd/power.reading)"
grep -q "relay: on" "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log || fail "command output is not logged"
# No status and no reading: unknown at start, no power.reading.
[ "$(cat $M/slowcmd/power)" = unknown ] || fail "slowcmd initial state"
[ ! -e $M/slowcmd/power.reading ] || fail "slowcmd has a power.reading"
# A failing command: EIO, unknown, its stderr in the log.
expect_error "Input/output error" bash -c "echo off > $M/slowcmd/power"
grep -q "no such port" "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log || fail "stderr of a failing command is not logged"
# A command past its timeout: EIO, and it is killed with its children.
expect_error "Input/output error" bash -c "echo on > $M/slowcmd/power"
read -r sh_pid sleep_pid < "$T/slow-state.pids"
! alive "$sh_pid" || fail "the timed-out command still runs"
! alive "$sleep_pid" || fail "the timed-out command's child still runs"
[ "$(cat $M/slowcmd/power)" = unknown ] || fail "slowcmd after timeout"

# Bad words change nothing here either.
expect_error "Invalid argument" bash -c "echo sideways > $M/cmd/power"
[ "$(cat $M/cmd/power)" = on ] || fail "a bad word changed the state"

alive "$(daemon_pid)" || fail "jumpstarterd died"
"$JMP" local stop --mountpoint "$MNT" >/dev/null
# The next start writes new logs: check these now (sanitizer builds report at exit).
! grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$JMP_RUNTIME_DIR"/local/*/*.log || fail "sanitizer reports"

# Configs that the http driver would refuse: the parser does first, at the line and column, and
# nothing starts.
sed -e 's/preset: tasmota/preset: sonoff/' "$T/config.yaml" > "$T/bad.yaml"
expect_error "$T/bad.yaml:18:24: export.tasmota.power.config.preset: \"sonoff\" is not one of pdudaemon, shelly, tasmota, template" \
        "$JMP" local start --config "$T/bad.yaml" --mountpoint "$MNT"
sed -e 's/hostname: lab-pdu, //' "$T/config.yaml" > "$T/bad.yaml"
expect_error "$T/bad.yaml:9:15: export.pdu.power.config: preset pdudaemon needs option \"hostname\"" \
        "$JMP" local start --config "$T/bad.yaml" --mountpoint "$MNT"
echo PASS
