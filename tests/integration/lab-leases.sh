#!/usr/bin/env bash
# Leases in a lab of network namespaces, as users run it: a controller host, two exporter hosts
# (jumpstarterd with ExporterConfigs made by `jmp admin create exporter` and the DUTs of
# examples/distributed/), and two client hosts running the agent (`jmp local start --config
# client.yaml`), all over real TLS with keys made here. Pool choice, queue order, handoff,
# expiry, extension, revocation, exporter loss, a controller kill -9, and one board test run
# unchanged against a local DUT and a leased one.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-lab.sh"

unset JMP_CLIENT_CONFIG XDG_CONFIG_HOME
export HOME=$T/home
mkdir -p "$HOME"
EX=$SOURCE_ROOT/examples/distributed
NET=10.77.0

lab_net lan
lab_host ctl
lab_host exp1
lab_host exp2
lab_host alice
lab_host bob
lab_link ctl lan $NET.1
lab_link exp1 lan $NET.11
lab_link exp2 lan $NET.12
lab_link alice lan $NET.21
lab_link bob lan $NET.22

# --- the controller, and the users an admin makes ---------------------------------------------------
lab_controller ctl $NET.1 "$T/ctl"
ADMIN=$T/ctl/state/admin-client.yaml
# `as HOST CONFIG jmp-args...`: jmp run by a user on HOST.
as() {
        local host=$1 cfg=$2
        shift 2
        on "$host" "$JMP" --client-config "$cfg" "$@"
}
as ctl "$ADMIN" admin create client alice -o "$T/alice.yaml" >/dev/null || fail "creating client alice"
as ctl "$ADMIN" admin create client bob -o "$T/bob.yaml" >/dev/null || fail "creating client bob"
as ctl "$ADMIN" admin create client carol -o "$T/carol.yaml" >/dev/null || fail "creating client carol"

# --- the exporters: the config jmp writes, with the example DUTs in place of `export: {}` -------------
make_exporter() {
        local name=$1 rack=$2
        as ctl "$ADMIN" admin create exporter "$name" --label "rack=$rack" -o "$T/$name.yaml" >/dev/null ||
                fail "creating exporter $name"
        sed -i '/^export: {}$/d' "$T/$name.yaml"
        cat "$EX/$name-duts.yaml" >> "$T/$name.yaml"
}
make_exporter lab1 r1
make_exporter lab2 r2
declare -A EXP_PID
start_exporter() {
        local name=$1 host=$2
        lab_bg "$host" "$T/$name.log" "$JUMPSTARTERD" --config "$T/$name.yaml" --listen "$T/$name.sock"
        EXP_PID[$name]=$LAB_PID
        lab_wait grep -q 'Linked up with controller' "$T/$name.log" ||
                fail "exporter $name did not link up: $(tail "$T/$name.log")"
}
# `jmp get exporters` column of a device: state_of lab1/dut1 → online
device_state() { as ctl "$ADMIN" get exporters | awk -v d="$1" '$1 == d { print $2 }'; }
device_is() { [ "$(device_state "$1")" = "$2" ]; }
start_exporter lab1 exp1
start_exporter lab2 exp2
for d in lab1/dut1 lab1/dut2 lab2/dut1; do
        lab_wait device_is $d online || fail "$d is not online: $(as ctl "$ADMIN" get exporters 2>&1)"
done
# The stream listeners are advertised on the exporters' own addresses, reached across the lab.
as ctl "$ADMIN" get exporters -o json | $PY -c '
import json, sys
e = {x["name"]: x["streams"]["address"] for x in json.load(sys.stdin)}
assert e["lab1"].startswith("10.77.0.11:") and e["lab2"].startswith("10.77.0.12:"), e' ||
        fail "stream addresses: $(as ctl "$ADMIN" get exporters -o json)"

# --- the clients' agents: each on its own host, with its own mount ------------------------------------
AMNT=$MNT
BMNT=$T/bob-jmp
on alice "$JMP" local start --config "$T/alice.yaml" --mountpoint "$AMNT" >/dev/null || fail "alice's agent did not start"
on bob "$JMP" local start --config "$T/bob.yaml" --mountpoint "$BMNT" >/dev/null || fail "bob's agent did not start"
lab_leases_cleanup() {
        local rc=$?
        set +e
        "$JMP" local stop --mountpoint "$BMNT" >/dev/null 2>&1
        (exit "$rc")
        cleanup
}
trap lab_leases_cleanup EXIT
ALOG=$(echo "$JMP_RUNTIME_DIR"/local/*-jmp/jumpstarterd.log)
BLOG=$(echo "$JMP_RUNTIME_DIR"/local/*-bob-jmp/jumpstarterd.log)
[ -z "$(ls "$AMNT")" ] || fail "alice sees DUTs before any lease: $(ls "$AMNT")"

# lease_json CONFIG NAME: the lease as `jmp lease list -o json` shows it (live leases only).
field() {
        local host=$1 cfg=$2 name=$3 key=$4
        as "$host" "$cfg" lease list -o json | $PY -c '
import json, sys
l = [l for l in json.load(sys.stdin) if l["name"] == sys.argv[1]]
print(l[0][sys.argv[2]] if l else "<gone>")' "$name" "$key"
}
# ended NAME: the lease's end reason, from the admin's history.
ended_reason() {
        as ctl "$ADMIN" get leases --history -o json | $PY -c '
import json, sys
l = [l for l in json.load(sys.stdin) if l["name"] == sys.argv[1] and l["state"] == "ended"]
print(l[-1]["reason"] if l else "")' "$1"
}
ended_is() { [ "$(ended_reason "$1")" = "$2" ]; }
alice() { as alice "$T/alice.yaml" "$@"; }
bob() { as bob "$T/bob.yaml" "$@"; }
carol() { as ctl "$T/carol.yaml" "$@"; }
device_of() { field alice "$T/alice.yaml" "$1" exporter | tr -d '\n'; printf /; field alice "$T/alice.yaml" "$1" dut; }

echo "--- pool choice: any free matching device, least recently leased first"
# Never leased: by name. Then each release puts its device at the back of the pool.
alice lease create --selector model=widget --duration 10m --name p1 >/dev/null || fail "lease p1"
[ "$(device_of p1)" = lab1/dut1 ] || fail "p1 got $(device_of p1), expected lab1/dut1 (never leased, first by name)"
alice lease release p1 >/dev/null
alice lease create --selector model=widget --duration 10m --name p2 >/dev/null || fail "lease p2"
[ "$(device_of p2)" = lab1/dut2 ] || fail "p2 got $(device_of p2), expected lab1/dut2 (never leased)"
alice lease release p2 >/dev/null
alice lease create --selector model=widget --duration 10m --name p3 >/dev/null || fail "lease p3"
[ "$(device_of p3)" = lab2/dut1 ] || fail "p3 got $(device_of p3), expected lab2/dut1 (never leased)"
alice lease release p3 >/dev/null
alice lease create --selector model=widget --duration 10m --name p4 >/dev/null || fail "lease p4"
[ "$(device_of p4)" = lab1/dut1 ] || fail "p4 got $(device_of p4), expected lab1/dut1 (least recently leased)"
# Busy devices are skipped: the next two go to the other free ones, in the same order.
alice lease create --selector model=widget --duration 10m --name p5 >/dev/null || fail "lease p5"
[ "$(device_of p5)" = lab1/dut2 ] || fail "p5 got $(device_of p5), expected lab1/dut2"
# A selector picks within the pool: rack=r2 is lab2's only board.
alice lease create --selector 'model=widget,rack=r2' --duration 10m --name p6 >/dev/null || fail "lease p6"
[ "$(device_of p6)" = lab2/dut1 ] || fail "p6 got $(device_of p6), expected lab2/dut1"
for l in p4 p5 p6; do
        lab_wait test -d "$AMNT/$l" || fail "/jmp/$l did not appear: $(tail "$ALOG")"
done
# (A leased DUT's labels are the device's, and name the device it streams from.)
grep -qx 'exporter=lab2' "$AMNT/p6/labels" || fail "p6's labels: $(cat "$AMNT/p6/labels")"
grep -qx 'rack=r2' "$AMNT/p6/labels" || fail "p6's labels lack the device's: $(cat "$AMNT/p6/labels")"
grep -qx 'model=widget' "$AMNT/p6/labels" || fail "p6's labels lack the device's: $(cat "$AMNT/p6/labels")"
for l in p4 p5 p6; do alice lease release $l >/dev/null || fail "release $l"; done
for l in p4 p5 p6; do lab_wait test ! -e "$AMNT/$l" || fail "/jmp/$l stayed after release"; done

# queue_positions: "NAME:POSITION ..." of the pending leases, in queue order (the admin's view).
queue_positions() {
        as ctl "$ADMIN" get leases -o json | $PY -c '
import json, sys
p = sorted((l["queuePosition"], l["name"]) for l in json.load(sys.stdin) if l["state"] == "pending")
print(" ".join("%s:%s" % (n, q) for q, n in p))'
}
active_on() { [ "$(as ctl "$ADMIN" get leases -o json | $PY -c '
import json, sys
print(" ".join(l["name"] for l in json.load(sys.stdin) if l["state"] == "active" and l["exporter"] + "/" + l["dut"] == sys.argv[1]))' "$1")" = "$2" ]; }

echo "--- queue: priority, then age; handoff on rmdir and on jmp lease release"
# rack=r2 is one board (lab2/dut1): alice holds it; three waiters of two clients queue for it.
alice lease create --selector rack=r2 --duration 30m --name q-hold >/dev/null || fail "lease q-hold"
bob lease create --selector rack=r2 --duration 10m --name q-old >/dev/null || fail "lease q-old"
carol lease create --selector rack=r2 --duration 10m --name q-young >/dev/null || fail "lease q-young"
out=$(bob lease create --selector rack=r2 --duration 10m --name q-high --priority 5) || fail "lease q-high: $out"
echo "$out" | grep -Eq '^q-high +pending .*ExportersBusy, position 1 in queue' || fail "q-high: $out"
[ "$(queue_positions)" = "q-high:0 q-old:1 q-young:2" ] || fail "queue order: $(queue_positions)"
lab_wait test -d "$AMNT/q-hold" || fail "/jmp/q-hold did not appear: $(tail "$ALOG")"
# alice gives the board back with rmdir: the highest priority gets it, on bob's host.
rmdir "$AMNT/q-hold" || fail "rmdir /jmp/q-hold"
[ "$(ended_reason q-hold)" = Released ] || fail "q-hold after rmdir: $(ended_reason q-hold)"
active_on lab2/dut1 q-high || fail "q-high did not get lab2/dut1: $(as ctl "$ADMIN" get leases)"
lab_wait test -d "$BMNT/q-high" || fail "bob's /jmp/q-high did not appear: $(tail "$BLOG")"
[ "$(queue_positions)" = "q-old:0 q-young:1" ] || fail "queue after the first handoff: $(queue_positions)"
# bob releases it with jmp: the oldest of the rest gets it.
bob lease release q-high | grep -q "Lease q-high released" || fail "release q-high"
active_on lab2/dut1 q-old || fail "q-old did not get lab2/dut1: $(as ctl "$ADMIN" get leases)"
lab_wait test ! -e "$BMNT/q-high" || fail "bob's /jmp/q-high stayed"
lab_wait test -d "$BMNT/q-old" || fail "bob's /jmp/q-old did not appear: $(tail "$BLOG")"
rmdir "$BMNT/q-old" || fail "rmdir bob's /jmp/q-old"
active_on lab2/dut1 q-young || fail "q-young did not get lab2/dut1: $(as ctl "$ADMIN" get leases)"
[ -z "$(queue_positions)" ] || fail "leases still queued: $(queue_positions)"
carol lease release q-young >/dev/null || fail "release q-young"

echo "--- expiry: a short lease ends, its directory goes, the exporter cuts its streams"
# stream_conns HOST PORT FROM: established connections to HOST's stream listener from FROM.
LAB1_PORT=$(as ctl "$ADMIN" get exporters -o json | $PY -c '
import json, sys
print([e for e in json.load(sys.stdin) if e["name"] == "lab1"][0]["streams"]["address"].rsplit(":", 1)[1])')
stream_conns() {
        on "$1" ss -tnH state established "( sport = :$2 )" | grep -c " $3:" || true
}
alice lease create --selector board=w1 --duration 8s --name short >/dev/null || fail "lease short"
lab_wait test -d "$AMNT/short" || fail "/jmp/short did not appear: $(tail "$ALOG")"
lab_wait bash -c "echo on > '$AMNT/short/power'" || fail "powering /jmp/short on: $(tail "$ALOG")"
two_streams() { [ "$(stream_conns exp1 "$LAB1_PORT" $NET.21)" -ge 2 ]; }
lab_wait two_streams || fail "no control and serial streams from alice to lab1"
exec 7< "$AMNT/short/labels"
lab_wait test ! -e "$AMNT/short" || fail "/jmp/short outlived its lease"
[ "$(ended_reason short)" = Expired ] || fail "short ended $(ended_reason short)"
lab_wait grep -q 'dut1: Lease ended, closing [1-9]' "$T/lab1.log" || fail "lab1 did not cut the streams: $(tail "$T/lab1.log")"
lab_wait grep -q 'dut1: Powered off after its lease ended' "$T/lab1.log" || fail "lab1 left dut1 on"
no_streams() { [ "$(stream_conns exp1 "$LAB1_PORT" $NET.21)" = 0 ]; }
lab_wait no_streams || fail "streams from alice to lab1 are still open: $(on exp1 ss -tn)"
expect_error "Input/output error" cat <&7
exec 7<&-

echo "--- extension: jmp lease extend moves the end, and the lease outlives its first end"
alice lease create --selector board=w2 --duration 8s --name ext >/dev/null || fail "lease ext"
end0=$(field alice "$T/alice.yaml" ext end)
lab_wait test -d "$AMNT/ext" || fail "/jmp/ext did not appear: $(tail "$ALOG")"
alice lease extend ext --by 10m | grep -q "Lease ext now ends at" || fail "extend ext"
end1=$(field alice "$T/alice.yaml" ext end)
$PY -c '
import sys, datetime
f = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
assert (f(sys.argv[2]) - f(sys.argv[1])).total_seconds() == 600' "$end0" "$end1" ||
        fail "extend moved the end from $end0 to $end1"
# Once the first end is past (by 2 s), the lease, its directory and its streams are still there.
past() { [ "$(date -u +%s)" -gt $(( $(date -u -d "$1" +%s) + 2 )) ]; }
lab_wait past "$end0" || fail "the clock did not pass $end0"
[ "$(field alice "$T/alice.yaml" ext state)" = active ] || fail "ext ended at its first end"
[ -d "$AMNT/ext" ] || fail "/jmp/ext went at its first end"
lab_wait bash -c "echo on > '$AMNT/ext/power'" || fail "/jmp/ext/power after the first end: $(tail "$ALOG")"
[ "$(cat "$AMNT/ext/power")" = on ] || fail "/jmp/ext is $(cat "$AMNT/ext/power")"
grep -q 'Lease ext ended' "$T/lab1.log" && fail "lab1 ended ext at its first end"
alice lease release ext >/dev/null || fail "release ext"
lab_wait test ! -e "$AMNT/ext" || fail "/jmp/ext stayed after release"

echo "--- revocation: an admin deletes a client; its leases end, its files go"
bob lease create --selector board=w1 --duration 30m --name rev1 >/dev/null || fail "lease rev1"
bob lease create --selector rack=r2 --duration 30m --name rev2 >/dev/null || fail "lease rev2"
lab_wait test -d "$BMNT/rev1" || fail "bob's /jmp/rev1 did not appear: $(tail "$BLOG")"
lab_wait test -d "$BMNT/rev2" || fail "bob's /jmp/rev2 did not appear: $(tail "$BLOG")"
as ctl "$ADMIN" admin delete client bob | grep -q "Client bob deleted" || fail "delete bob"
[ "$(ended_reason rev1)" = Revoked ] || fail "rev1 ended $(ended_reason rev1)"
[ "$(ended_reason rev2)" = Revoked ] || fail "rev2 ended $(ended_reason rev2)"
lab_wait test ! -e "$BMNT/rev1" || fail "bob's /jmp/rev1 stayed after bob was deleted: $(tail "$BLOG")"
lab_wait test ! -e "$BMNT/rev2" || fail "bob's /jmp/rev2 stayed after bob was deleted"
expect_error "revoked" bob lease list
# The devices are free for others at once.
alice lease create --selector rack=r2 --duration 5m --name after-rev | grep -Eq '^after-rev +active +lab2/dut1' ||
        fail "lab2/dut1 not free after the revocation"
alice lease release after-rev >/dev/null

echo "--- exporter loss: kill -9 of an exporter mid-lease, then its restart"
alice lease create --selector rack=r2 --duration 30m --name loss >/dev/null || fail "lease loss"
lab_wait test -d "$AMNT/loss" || fail "/jmp/loss did not appear: $(tail "$ALOG")"
lab_wait bash -c "echo on > '$AMNT/loss/power'" || fail "powering /jmp/loss on: $(tail "$ALOG")"
exec 7< "$AMNT/loss/labels"
kill -9 "${EXP_PID[lab2]}"
wait "${EXP_PID[lab2]}" 2>/dev/null || true
# At once, without waiting for the controller: power says it does not know, and switching fails.
power_unknown() { [ "$(cat "$AMNT/loss/power")" = unknown ]; }
wait_for power_unknown || fail "/jmp/loss/power reads $(cat "$AMNT/loss/power") with its exporter dead"
expect_error "Host is down" bash -c "echo off > '$AMNT/loss/power'"
# The controller notices (its exporter timeout): the lease ends ExporterGone and the directory goes.
lab_wait ended_is loss ExporterGone || fail "loss ended '$(ended_reason loss)', expected ExporterGone"
device_is lab2/dut1 offline || fail "lab2/dut1 is $(device_state lab2/dut1) with its exporter dead"
lab_wait test ! -e "$AMNT/loss" || fail "/jmp/loss stayed after its exporter went"
expect_error "Input/output error" cat <&7
exec 7<&-
# A lease for it now waits; the restarted exporter serves it.
out=$(alice lease create --selector rack=r2 --duration 30m --name back) || fail "lease back: $out"
echo "$out" | grep -Eq '^back +pending .*ExportersUnavailable' || fail "lease back while lab2 is down: $out"
start_exporter lab2 exp2
lab_wait device_is lab2/dut1 online || fail "lab2/dut1 is $(device_state lab2/dut1) after the restart"
lab_wait active_on lab2/dut1 back || fail "back did not get lab2/dut1: $(as ctl "$ADMIN" get leases)"
lab_wait test -d "$AMNT/back" || fail "/jmp/back did not appear: $(tail "$ALOG")"
lab_wait bash -c "echo on > '$AMNT/back/power'" || fail "powering /jmp/back on: $(tail "$ALOG")"
[ "$(cat "$AMNT/back/power")" = on ] || fail "/jmp/back is $(cat "$AMNT/back/power")"
rmdir "$AMNT/back" || fail "rmdir /jmp/back"

echo "--- controller kill -9: nothing acknowledged is lost, the queue keeps its order"
alice lease create --selector rack=r2 --duration 30m --name cr-hold >/dev/null || fail "lease cr-hold"
carol lease create --selector rack=r2 --duration 10m --name cr-a >/dev/null || fail "lease cr-a"
alice lease create --selector rack=r2 --duration 10m --name cr-b --priority 3 >/dev/null || fail "lease cr-b"
carol lease create --selector rack=r2 --duration 10m --name cr-c >/dev/null || fail "lease cr-c"
alice lease create --selector board=w1 --duration 30m --name cr-other >/dev/null || fail "lease cr-other"
alice lease extend cr-other --by 1h >/dev/null || fail "extend cr-other"
lab_wait test -d "$AMNT/cr-hold" || fail "/jmp/cr-hold did not appear: $(tail "$ALOG")"
snapshot() {
        as ctl "$ADMIN" get leases -o json | $PY -c '
import json, sys
keys = ("name", "client", "state", "exporter", "dut", "selector", "priority", "created", "begin", "end", "queuePosition", "durationSeconds")
for l in sorted(json.load(sys.stdin), key=lambda l: l["name"]):
    print(" ".join(str(l.get(k)) for k in keys))'
}
snapshot > "$T/before"
[ "$(queue_positions)" = "cr-b:0 cr-a:1 cr-c:2" ] || fail "queue before the kill: $(queue_positions)"
kill -9 "$LAB_CTL_PID"
wait "$LAB_CTL_PID" 2>/dev/null || true
lab_controller ctl $NET.1 "$T/ctl"
snapshot > "$T/after"
diff "$T/before" "$T/after" >&2 || fail "the leases changed over a controller kill -9"
[ "$(queue_positions)" = "cr-b:0 cr-a:1 cr-c:2" ] || fail "queue after the restart: $(queue_positions)"
# The exporters link up again by themselves; alice's directories stayed.
lab_wait device_is lab2/dut1 online || fail "lab2 did not come back after the controller restart"
lab_wait device_is lab1/dut1 online || fail "lab1 did not come back after the controller restart"
[ -d "$AMNT/cr-hold" ] && [ -d "$AMNT/cr-other" ] || fail "alice's directories went over the restart: $(ls "$AMNT")"
# Handoffs in the queue's order.
rmdir "$AMNT/cr-hold" || fail "rmdir /jmp/cr-hold after the restart: $(tail "$ALOG")"
active_on lab2/dut1 cr-b || fail "cr-b did not get lab2/dut1: $(as ctl "$ADMIN" get leases)"
lab_wait test -d "$AMNT/cr-b" || fail "/jmp/cr-b did not appear"
alice lease release cr-b >/dev/null || fail "release cr-b"
active_on lab2/dut1 cr-a || fail "cr-a did not get lab2/dut1: $(as ctl "$ADMIN" get leases)"
carol lease release cr-a >/dev/null || fail "release cr-a"
active_on lab2/dut1 cr-c || fail "cr-c did not get lab2/dut1: $(as ctl "$ADMIN" get leases)"
carol lease release cr-c >/dev/null || fail "release cr-c"
alice lease release cr-other >/dev/null || fail "release cr-other"

echo "--- one board test, unchanged, against a local DUT and a leased one"
write_config "$T/local.yaml"
on alice "$JMP" local start --config "$T/local.yaml" --mountpoint "$T/local" >/dev/null || fail "local mode did not start"
out=$(on alice sh "$EX/smoke-test.sh" "$T/local/dut1" 2>&1) || fail "the board test on a local DUT: $out"
[ "$out" = PASS ] || fail "the board test on a local DUT said: $out"
"$JMP" local stop --mountpoint "$T/local" >/dev/null || fail "local stop"
alice lease create --selector model=widget --duration 10m --name smoke >/dev/null || fail "lease smoke"
lab_wait test -d "$AMNT/smoke" || fail "/jmp/smoke did not appear: $(tail "$ALOG")"
out=$(on alice sh "$EX/smoke-test.sh" "$AMNT/smoke" 2>&1) || fail "the board test on a leased DUT: $out"
[ "$out" = PASS ] || fail "the board test on a leased DUT said: $out"
rmdir "$AMNT/smoke" || fail "rmdir /jmp/smoke"

# Every daemon is still up.
for p in "${EXP_PID[@]}" "$LAB_CTL_PID" "$(daemon_pid | head -n 1)"; do
        alive "$p" || fail "process $p died"
done
echo PASS
