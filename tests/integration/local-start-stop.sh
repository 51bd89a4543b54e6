#!/usr/bin/env bash
# jmp local start/status/stop: DUTs appear as directories, a second start is refused, stop cleans
# up even with files open.
. "$(dirname "$0")/lib.sh"

write_config "$T/config.yaml"
cat >> "$T/config.yaml" <<'YAML'
  dut2:
    type: sim
    labels: {vendor: acme, model: widget-v3}
YAML

out=$(start_local "$T/config.yaml")
echo "$out"
[[ "$out" == *"dut1 dut2"* ]] || fail "start did not list the DUTs: $out"
[ -d "$MNT/dut1" ] && [ -d "$MNT/dut2" ] || fail "DUT directories missing"
[ "$(ls "$MNT")" = "$(printf 'dut1\ndut2')" ] || fail "unexpected entries: $(ls "$MNT")"
for f in power serial serial.log storage labels lease; do
        [ -e "$MNT/dut1/$f" ] || fail "$MNT/dut1/$f missing"
done
grep -qx 'model=widget-v3' "$MNT/dut2/labels" || fail "dut2 labels wrong: $(cat "$MNT/dut2/labels")"
grep -qx 'site=test' "$MNT/dut1/labels" || fail "metadata labels not merged"
grep -q '^holder=' "$MNT/dut1/lease" || fail "lease file lacks the holder"

"$JMP" local status --mountpoint "$MNT" > "$T/status" || fail "status did not exit 0"
grep -q 'jumpstarterd: *running' "$T/status" || fail "status: $(cat "$T/status")"
grep -q 'dut2 .*power=off' "$T/status" || fail "status lacks DUT power: $(cat "$T/status")"

dpid=$(daemon_pid)
fpid=$(fuse_pid)

# A second start on the same mount point is refused and changes nothing.
expect_error "already running" "$JMP" local start --config "$T/config.yaml" --mountpoint "$MNT"
[ "$(daemon_pid)" = "$dpid" ] || fail "second start replaced the daemon"
alive "$dpid" || fail "daemon gone after a refused second start"

# Power on, keep files open, then stop: DUTs powered off, unmounted, processes gone.
echo on > "$MNT/dut1/power"
exec 3< "$MNT/dut1/serial.log"
exec 4< "$MNT/dut1/storage"
"$JMP" local stop --mountpoint "$MNT" || fail "stop failed with files open"
grep -qs " $MNT " /proc/self/mountinfo && fail "still mounted after stop"
alive "$dpid" && fail "jumpstarterd $dpid still runs"
alive "$fpid" && fail "jumpstarter-fuse $fpid still runs"
grep -q "Powered off" "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log || fail "dut1 was not powered off at stop"
exec 3<&- 4<&-

"$JMP" local status --mountpoint "$MNT" && fail "status exits 0 when stopped"
# Start again after stop works.
start_local "$T/config.yaml" >/dev/null
[ "$(cat "$MNT/dut1/power")" = off ] || fail "a fresh start is not powered off"
"$JMP" local stop --mountpoint "$MNT"
echo PASS
