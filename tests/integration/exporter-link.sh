#!/usr/bin/env bash
# The exporter link against the real controller over TLS: registration, leases followed on the exporter, power
# off at a lease's end, offline after a long stop (lease ends ExporterGone), back online by itself, a short stop
# changes nothing, reconnect with backoff after a controller restart, and a refused token backs off to the maximum.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-controller.sh"

start_controller
ADMIN=$(admin_token)

EXPORTER_TOKEN=$(api "$ADMIN" POST /exporters '{"name": "lab1", "labels": {"site": "t"}}' | json 'd["token"]')
[ "$(cat "$T/status")" = 201 ] || fail "creating the exporter: $(cat "$T/body")"
ALICE=$(api "$ADMIN" POST /clients '{"name": "alice"}' | json 'd["token"]')
[ "$(cat "$T/status")" = 201 ] || fail "creating the client: $(cat "$T/body")"

cat > "$T/exporter.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: lab1
  labels:
    site: t
endpoint: "127.0.0.1:$PORT"
token: "$EXPORTER_TOKEN"
tls:
  ca: controller.pem
export:
  dut1:
    type: sim
    labels: {vendor: acme, model: widget-v2}
    config: {size: 1MiB, boot_time: 100ms}
YAML

start_local "$T/exporter.yaml" >/dev/null
LOG=$(echo "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log)
P=$MNT/dut1/power

# Registered: the exporter and its DUT, with the merged labels, are online at the controller.
exporter_state() { api "$ALICE" GET /exporters/lab1 | json "$1"; }
wait_for sh -c "grep -q 'Linked up with controller' '$LOG'" || fail "the exporter did not link up: $(tail "$LOG")"
online() { [ "$(exporter_state 'd["state"]')" = online ]; }
wait_for online || fail "the exporter is not online: $(cat "$T/body")"
api "$ALICE" GET /exporters | json '[(e["name"], x["name"], x["labels"]["model"], x["labels"]["site"], sorted(x["classes"])) for e in d["items"] for x in e["duts"]]' > "$T/duts"
grep -qF "('lab1', 'dut1', 'widget-v2', 't', ['power', 'serial', 'storage'])" "$T/duts" || fail "GET /v1/exporters: $(cat "$T/duts")"
grep -q 'Got [0-9]* key' "$LOG" || fail "the exporter got no keys: $(tail "$LOG")"

# A DUT added by a reload (SIGHUP) is registered while the link stands.
cat >> "$T/exporter.yaml" <<'YAML'
  dut2:
    type: sim
    labels: {vendor: acme, model: widget-v3}
YAML
kill -HUP "$(daemon_pid)"
has_dut2() { [ "$(exporter_state '[x["name"] for x in d["duts"]]')" = "['dut1', 'dut2']" ]; }
wait_for has_dut2 || fail "dut2 was not registered after a reload: $(cat "$T/body")"

# A lease made with curl shows in the exporter's log; at its end the DUT powers off.
api "$ALICE" POST /leases '{"name": "short1", "selector": "model=widget-v2", "duration": "3s"}' > /dev/null
[ "$(cat "$T/status")" = 201 ] || fail "creating lease short1: $(cat "$T/body")"
wait_for grep -q 'dut1: Lease short1 began' "$LOG" || fail "lease short1 not in the exporter's log: $(tail "$LOG")"
echo on > "$P"
[ "$(cat "$P")" = on ] || fail "dut1 did not power on"
wait_for grep -q 'dut1: Lease short1 ended' "$LOG" || fail "lease short1 did not end on the exporter"
wait_for grep -q 'dut1: Powered off after its lease ended' "$LOG" || fail "dut1 was not powered off: $(tail "$LOG")"
[ "$(cat "$P")" = off ] || fail "dut1 is still $(cat "$P") after its lease ended"

# kill -STOP for longer than the controller's timeout: offline, the lease ends ExporterGone.
api "$ALICE" POST /leases '{"name": "long1", "selector": "model=widget-v2", "duration": "10m"}' > /dev/null
[ "$(cat "$T/status")" = 201 ] || fail "creating lease long1: $(cat "$T/body")"
wait_for grep -q 'dut1: Lease long1 began' "$LOG" || fail "lease long1 not in the exporter's log"
DPID=$(daemon_pid)
kill -STOP "$DPID"
offline() { [ "$(exporter_state 'd["state"]')" = offline ]; }
wait_for offline || { kill -CONT "$DPID"; fail "the exporter did not go offline while stopped: $(cat "$T/body")"; }
lease_field() { api "$ALICE" GET "/leases?history=true" | json "[l[\"$2\"] for l in d[\"items\"] if l[\"name\"] == \"$1\"][0]"; }
gone() { [ "$(lease_field long1 reason)" = ExporterGone ]; }
wait_for gone || { kill -CONT "$DPID"; fail "lease long1 did not end ExporterGone: $(cat "$T/body")"; }
kill -CONT "$DPID"
# Back online by itself; the exporter learns that long1 is over.
wait_for online || fail "the exporter did not come back online: $(tail "$LOG")"
wait_for grep -q 'dut1: Lease long1 ended' "$LOG" || fail "the exporter still holds long1: $(tail "$LOG")"

# A blip shorter than the timeout changes nothing.
api "$ALICE" POST /leases '{"name": "blip1", "selector": "model=widget-v2", "duration": "10m"}' > /dev/null
[ "$(cat "$T/status")" = 201 ] || fail "creating lease blip1: $(cat "$T/body")"
wait_for grep -q 'dut1: Lease blip1 began' "$LOG" || fail "lease blip1 not in the exporter's log"
kill -STOP "$DPID"
sleep 2
kill -CONT "$DPID"
[ "$(lease_field blip1 state)" = active ] || fail "lease blip1 after a 2 s stop: $(cat "$T/body")"
online || fail "the exporter went offline after a 2 s stop"
grep -q 'dut1: Lease blip1 ended' "$LOG" && fail "the exporter dropped blip1 after a 2 s stop"

# Controller restart: the exporter notices, backs off while the controller is away, and reconnects by itself.
count() { grep -c "$1" "$LOG" || true; }
n_lost=$(count 'Link to controller .* lost')
n_failed=$(count 'Cannot link up with controller')
n_up=$(count 'Linked up with controller')
stop_controller
more() { [ "$(count "$1")" -gt "$2" ]; }
wait_for more 'Link to controller .* lost' "$n_lost" || fail "the exporter did not notice the controller go: $(tail "$LOG")"
wait_for more 'Cannot link up with controller' $((n_failed + 2)) || fail "no reconnect attempts: $(tail "$LOG")"
grep 'Reconnecting to controller' "$LOG" | tail -n 3 > "$T/backoff"
# Each delay at least the last one's (0.5 s doubling, less at most a fifth of jitter).
$PY - "$T/backoff" <<'PY' || fail "the backoff does not grow: $(cat "$T/backoff")"
import re, sys
units = {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60}
delays = []
for line in open(sys.argv[1]):
    m = re.search(r" in ([0-9.]+)(us|ms|s|min)$", line.strip())
    delays.append(float(m.group(1)) * units[m.group(2)])
assert len(delays) == 3 and all(b > a for a, b in zip(delays, delays[1:])), delays
PY
start_controller
wait_for more 'Linked up with controller' "$n_up" || fail "no new link after the controller restarted: $(tail "$LOG")"
wait_for online || fail "the exporter is not online after the controller restarted: $(cat "$T/body")"
[ "$(lease_field blip1 state)" = active ] || fail "lease blip1 after the controller restart: $(cat "$T/body")"

# A deleted exporter's token is refused: said clearly, and the next attempt waits the maximum (24..30 s).
api "$ADMIN" DELETE /exporters/lab1 > /dev/null
[ "$(cat "$T/status")" = 204 ] || fail "deleting the exporter: $(cat "$T/body")"
wait_for grep -q "refused the exporter's token" "$LOG" || fail "a refused token was not reported: $(tail "$LOG")"
# The first "Reconnecting" line after the first refusal.
after_refusal() { awk '/refused the exporter.s token/ { seen = 1 } seen && /Reconnecting to controller/ { print; exit }' "$LOG"; }
wait_for sh -c "[ -n \"\$(awk '/refused the exporter.s token/ { seen = 1 } seen && /Reconnecting to controller/ { print; exit }' '$LOG')\" ]" \
        || fail "no reconnect after the refusal: $(tail "$LOG")"
after_refusal | grep -Eq 'in (2[4-9](\.[0-9]+)?|30)s$' || fail "a refused token did not back off to the maximum: $(after_refusal)"

"$JMP" local stop --mountpoint "$MNT" > /dev/null
stop_controller
echo PASS
