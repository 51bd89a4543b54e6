#!/usr/bin/env bash
# The agent role against the real controller over TLS: `jmp local start` with a ClientConfig shows
# no DUT until a lease is active; each active lease becomes /jmp/<lease> (a remote DUT); it goes when
# the lease is released elsewhere, and `rmdir` releases it; a controller restart keeps it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-controller.sh"

start_controller
ADMIN=$(admin_token)
EXPORTER_TOKEN=$(api "$ADMIN" POST /exporters '{"name": "lab1", "labels": {"site": "t"}}' | json 'd["token"]')
[ "$(cat "$T/status")" = 201 ] || fail "creating the exporter: $(cat "$T/body")"
ALICE=$(api "$ADMIN" POST /clients '{"name": "alice"}' | json 'd["token"]')
[ "$(cat "$T/status")" = 201 ] || fail "creating the client: $(cat "$T/body")"

# The exporter: a sim DUT, linked to the controller, on a mount of its own.
cat > "$T/exporter.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: lab1
endpoint: "127.0.0.1:$PORT"
token: "$EXPORTER_TOKEN"
tls:
  ca: controller.pem
streams:
  listen: "127.0.0.1:0"
export:
  dut1:
    type: sim
    labels: {vendor: acme, model: widget-v2}
    config: {size: 1MiB, boot_time: 100ms}
YAML
agent_cleanup() {
        local rc=$?
        set +e
        "$JMP" local stop --mountpoint "$T/emnt" >/dev/null 2>&1
        (exit "$rc")
        cleanup
}
trap agent_cleanup EXIT
"$JMP" local start --config "$T/exporter.yaml" --mountpoint "$T/emnt" >/dev/null || fail "the exporter did not start"
ELOG=$(echo "$JMP_RUNTIME_DIR"/local/*-emnt/jumpstarterd.log)
wait_for grep -q 'Linked up with controller' "$ELOG" || fail "the exporter did not link up: $(tail "$ELOG")"

# The agent: alice's ClientConfig.
cat > "$T/alice.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ClientConfig
metadata: {name: alice, namespace: default}
endpoint: "127.0.0.1:$PORT"
tls: {ca: controller.pem, insecure: false}
token: "$ALICE"
YAML
start_local "$T/alice.yaml" > "$T/start.out" || fail "jmp local start with a ClientConfig failed"
grep -q "for client alice" "$T/start.out" || fail "jmp local start said: $(cat "$T/start.out")"
AGENT=$(echo "$JMP_RUNTIME_DIR"/local/*-jmp)
LOG=$AGENT/jumpstarterd.log
[ -z "$(ls "$MNT")" ] || fail "DUTs before any lease: $(ls "$MNT")"

lease_field() { api "$ALICE" GET "/leases?history=true" | json "[l[\"$2\"] for l in d[\"items\"] if l[\"name\"] == \"$1\"][0]"; }

# A lease becomes a directory named after it; its stream token sits in a private file.
api "$ALICE" POST /leases '{"name": "board1", "selector": "model=widget-v2", "duration": "30m"}' > /dev/null
[ "$(cat "$T/status")" = 201 ] || fail "creating lease board1: $(cat "$T/body")"
wait_for test -d "$MNT/board1" || fail "board1 did not appear: $(tail "$LOG")"
grep -qx "dut=dut1" "$MNT/board1/labels" || fail "board1's labels: $(cat "$MNT/board1/labels")"
grep -qx "model=widget-v2" "$MNT/board1/labels" || fail "board1 lacks the device's labels: $(cat "$MNT/board1/labels")"
# Its lease file shows the lease at the controller, and follows an extension.
lease_is() {
        printf 'name=board1\nholder=alice\nselector=%s\nbegin=%s\nend=%s\n' "$(lease_field board1 selector)" \
                "$(lease_field board1 begin)" "$(lease_field board1 end)" > "$T/want-lease"
        cmp -s "$T/want-lease" "$MNT/board1/lease"
}
lease_is || fail "board1's lease file: $(cat "$MNT/board1/lease"), expected $(cat "$T/want-lease")"
old_end=$(lease_field board1 end)
api "$ALICE" POST /leases/board1/extend '{"by": "15m"}' > /dev/null
[ "$(cat "$T/status")" = 200 ] || fail "extending board1: $(cat "$T/body")"
[ "$(lease_field board1 end)" != "$old_end" ] || fail "the extension did not move the end"
wait_for lease_is || fail "board1's lease file after the extension: $(cat "$MNT/board1/lease")"
# The storage size comes from the exporter once the remote DUT reached it: 1 MiB, not 0.
wait_for test "$(stat -c %s "$MNT/board1/storage")" = 1048576 ||
        fail "board1's storage is $(stat -c %s "$MNT/board1/storage") bytes"
TOKEN_FILE=$AGENT/leases/board1.token
[ "$(stat -c %a "$TOKEN_FILE")" = 600 ] || fail "the token file is mode $(stat -c %a "$TOKEN_FILE")"
# Its files reach the exporter's DUT with that token.
wait_for bash -c "echo on > '$MNT/board1/power'" || fail "powering board1 on: $(tail "$LOG")"
[ "$(cat "$MNT/board1/power")" = on ] || fail "board1 is $(cat "$MNT/board1/power")"
[ "$(cat "$T/emnt/dut1/power")" = on ] || fail "the exporter's dut1 is $(cat "$T/emnt/dut1/power")"
wait_for grep -q 'boot complete' "$MNT/board1/serial.log" || fail "board1's console: $(tail "$LOG")"

# Released elsewhere (jmp lease release, another terminal): the directory goes, and an open file of it
# fails with EIO.
exec 7< "$MNT/board1/labels"
api "$ALICE" DELETE /leases/board1 > /dev/null
[ "$(cat "$T/status")" = 200 ] || fail "releasing board1: $(cat "$T/body")"
wait_for test ! -e "$MNT/board1" || fail "board1 stayed after its lease was released"
[ ! -e "$TOKEN_FILE" ] || fail "board1's token file stayed"
expect_error "Input/output error" cat <&7
exec 7<&-

# rmdir releases: it returns once the lease has ended, and the directory is gone then.
api "$ALICE" POST /leases '{"name": "board2", "selector": "model=widget-v2", "duration": "30m"}' > /dev/null
[ "$(cat "$T/status")" = 201 ] || fail "creating lease board2: $(cat "$T/body")"
wait_for test -d "$MNT/board2" || fail "board2 did not appear: $(tail "$LOG")"
rmdir "$MNT/board2" || fail "rmdir of a leased DUT failed"
[ ! -e "$MNT/board2" ] || fail "board2 is still there after rmdir returned"
[ "$(lease_field board2 state)" = ended ] || fail "board2 after rmdir: $(cat "$T/body")"
[ "$(lease_field board2 reason)" = Released ] || fail "board2 after rmdir: $(cat "$T/body")"
expect_error "No such file or directory" rmdir "$MNT/board2"

# A controller restart is a blip: the lease survives it, and so does its directory.
api "$ALICE" POST /leases '{"name": "board3", "selector": "model=widget-v2", "duration": "30m"}' > /dev/null
[ "$(cat "$T/status")" = 201 ] || fail "creating lease board3: $(cat "$T/body")"
wait_for test -d "$MNT/board3" || fail "board3 did not appear"
n_synced=$(grep -c 'Lease watch synced' "$LOG" || true)
stop_controller
start_controller
more_synced() { [ "$(grep -c 'Lease watch synced' "$LOG" || true)" -gt "$n_synced" ]; }
wait_for more_synced || fail "the agent did not follow the leases again: $(tail "$LOG")"
[ -d "$MNT/board3" ] || fail "board3 went away over a controller restart"
# Released while the agent watches again.
rmdir "$MNT/board3" || fail "rmdir of board3 after the restart failed"
[ ! -e "$MNT/board3" ] || fail "board3 is still there"

# Both agent daemons are still up.
alive "$(cut -d' ' -f1 "$AGENT/jumpstarterd.pid")" || fail "jumpstarterd died"
alive "$(cut -d' ' -f1 "$AGENT/jumpstarter-fuse.pid")" || fail "jumpstarter-fuse died"
echo "PASS"
