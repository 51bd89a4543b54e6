#!/usr/bin/env bash
# The access policy in a lab of network namespaces: two teams, three roles and a pool of simulated
# boards on two exporter hosts. Who may lease what (403 NoAccess with the rule needed), maxDuration,
# the per-client and per-team limits under a burst of parallel requests, the verbs of a grant in
# the stream tokens and on the exporter's streams, and the SIGHUP reload (a broken file is refused,
# the policy in force stays).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-lab.sh"

unset JMP_CLIENT_CONFIG XDG_CONFIG_HOME
export HOME=$T/home
mkdir -p "$HOME"
EX=$SOURCE_ROOT/examples/distributed
NET=10.78.0

lab_net lan
lab_host ctl
lab_host exp1
lab_host exp2
lab_host users
lab_link ctl lan $NET.1
lab_link exp1 lan $NET.11
lab_link exp2 lan $NET.12
lab_link users lan $NET.21

# --- the controller, with a policy ------------------------------------------------------------------
C=$T/ctl
mkdir -p "$C"
lab_certs "$C" controller $NET.1
cat > "$C/controller.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ControllerConfig
metadata:
  name: lab
listen: "$NET.1:8443"
tls:
  certificate: controller.pem
  key: controller.key
stateDirectory: state
policy: policy.yaml
YAML
cat > "$C/policy.yaml" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: AccessPolicy
roles:
  # The platform team: its own boards, everything but gpio, up to 1h.
  - name: platform-dev
    clients: team=platform
    exporters: team=platform
    verbs: [lease, power, serial, storage]
    maxDuration: 1h
    maxLeasesPerClient: 2
    maxLeasesPerTeam: 3
    priority: 5
  # QA may watch the platform boards' consoles, briefly.
  - name: qa-serial
    clients: team=qa
    exporters: team=platform
    verbs: [lease, serial]
    maxDuration: 10m
  # QA's own board.
  - name: qa-own
    clients: team=qa
    exporters: team=qa
    verbs: [lease, power, serial, storage]
YAML
cp "$C/policy.yaml" "$C/policy-good.yaml"
lab_controller ctl $NET.1 "$C"
ADMIN=$C/state/admin-client.yaml
grep -q 'Access policy .*policy.yaml: 3 roles' "$C/controller.log" || fail "the policy was not loaded: $(tail "$C/controller.log")"

as() {
        local host=$1 cfg=$2
        shift 2
        on "$host" "$JMP" --client-config "$cfg" "$@"
}
mkclient() {
        as ctl "$ADMIN" admin create client "$1" --label "team=$2" -o "$T/$1.yaml" >/dev/null || fail "creating client $1"
        sed -n 's/^token: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$T/$1.yaml" > "$T/$1.token"
        [ -s "$T/$1.token" ] || fail "no token in $T/$1.yaml"
}
mkclient alice platform
mkclient pat platform
mkclient quinn qa
mkclient otto ops
sed -n 's/^token: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ADMIN" > "$T/admin.token"

make_exporter() {
        local name=$1 team=$2
        as ctl "$ADMIN" admin create exporter "$name" --label "team=$team" -o "$T/$name.yaml" >/dev/null ||
                fail "creating exporter $name"
        sed -i '/^export: {}$/d' "$T/$name.yaml"
}
# The example boards, with lease hooks (lab1) and a health check (lab2). dut3 is for the hook
# tests only: no role's exporters selector matches its team.
make_exporter lab1 platform
cat >> "$T/lab1.yaml" <<YAML
export:
  dut1:
    type: sim
    labels: {vendor: acme, model: widget, board: w1}
    config: {size: 16MiB, boot_time: 300ms}
    hooks:
      beforeLease: {command: [touch, "$T/before-w1"], timeout: 10s}
      afterLease: {command: [touch, "$T/after-w1"], timeout: 10s, onFailure: disable}
  dut2:
    type: sim
    labels: {vendor: acme, model: widget, board: w2}
    config: {size: 16MiB, boot_time: 300ms}
  dut3:
    type: sim
    labels: {vendor: acme, model: gadget, board: g1, team: hooks}
    config: {size: 16MiB, boot_time: 300ms}
    hooks:
      beforeLease: {command: [sleep, "61.25"], timeout: 1s, onFailure: endLease}
YAML
make_exporter lab2 qa
touch "$T/healthy"
cat >> "$T/lab2.yaml" <<YAML
export:
  dut1:
    type: sim
    labels: {vendor: acme, model: widget, board: w3}
    config: {size: 16MiB, boot_time: 300ms}
    health: {command: [test, -e, "$T/healthy"], interval: 1s, timeout: 5s}
YAML
lab_bg exp1 "$T/lab1.log" "$JUMPSTARTERD" --config "$T/lab1.yaml" --listen "$T/lab1.sock"
lab_bg exp2 "$T/lab2.log" "$JUMPSTARTERD" --config "$T/lab2.yaml" --listen "$T/lab2.sock"
LAB2_PID=$LAB_PID
device_state() { as ctl "$ADMIN" get exporters | awk -v d="$1" '$1 == d { print $2 }'; }
device_is() { [ "$(device_state "$1")" = "$2" ]; }
for d in lab1/dut1 lab1/dut2 lab1/dut3 lab2/dut1; do
        lab_wait device_is $d online || fail "$d is not online: $(as ctl "$ADMIN" get exporters 2>&1)"
done

# api USER METHOD PATH [BODY]: from the users' host; body to stdout, status to $T/status.
api() {
        local user=$1 method=$2 path=$3 body=${4:-}
        on users curl -s --cacert "$C/controller.pem" -H "Authorization: Bearer $(cat "$T/$user.token")" \
                -X "$method" ${body:+-H "Content-Type: application/json" --data "$body"} -o "$T/body.$BASHPID" \
                -w '%{http_code}' "https://$NET.1:8443/v1$path" > "$T/status.$BASHPID"
        cat "$T/body.$BASHPID"
        cp "$T/status.$BASHPID" "$T/status"
}
status() { cat "$T/status"; }
json() { $PY -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }
# denied USER BODY TEXT: POST /v1/leases is 403 NoAccess with TEXT in its message.
denied() {
        local out
        out=$(api "$1" POST /leases "$2")
        [ "$(status)" = 403 ] || fail "$1 $2: expected 403, got $(status) $out"
        [ "$(echo "$out" | json 'd["reason"]')" = NoAccess ] || fail "$1 $2: reason: $out"
        echo "$out" | json 'd["message"]' | grep -qF "$3" || fail "$1 $2: message lacks '$3': $out"
}
release() { api "$1" DELETE "/leases/$2" >/dev/null; [ "$(status)" = 200 ] || fail "release $2: $(status)"; }

echo "--- who may lease what"
denied otto '{"selector": "", "duration": "5m"}' "Client 'otto' (labels: team=ops) is in no role"
denied alice '{"selector": "team=qa", "duration": "5m"}' 'grants '"'"'lease'"'"' on exporters matching "team=qa"'
denied alice '{"selector": "model=widget", "duration": "2h"}' "longer than role 'platform-dev' allows (maxDuration: 1h)"
denied quinn '{"selector": "team=platform", "duration": "30m"}' "role 'qa-serial' allows (maxDuration: 10min)"
# Nothing was queued by the refusals.
[ "$(as ctl "$ADMIN" get leases -o json | json 'len(d)')" = 0 ] || fail "refused requests left leases: $(as ctl "$ADMIN" get leases)"

# model=widget is all three boards: alice only ever gets lab1's, and her role's priority.
out=$(api alice POST /leases '{"selector": "model=widget", "duration": "30m", "name": "a1"}')
[ "$(status)" = 201 ] || fail "a1: $(status) $out"
[ "$(echo "$out" | json 'd["exporter"], d["state"], d["priority"]')" = "('lab1', 'active', 5)" ] || fail "a1: $out"
out=$(api alice POST /leases '{"selector": "model=widget", "duration": "30m", "name": "a2", "priority": 100}')
[ "$(echo "$out" | json 'd["exporter"], d["state"], d["priority"]')" = "('lab1', 'active', 5)" ] || fail "a2 (priority capped): $out"
release alice a1
release alice a2
# quinn: 5m on a platform board (serial only), or its own board.
out=$(api quinn POST /leases '{"selector": "board=w2", "duration": "5m", "name": "q1"}')
[ "$(echo "$out" | json 'd["exporter"], d["dut"], d["state"]')" = "('lab1', 'dut2', 'active')" ] || fail "q1: $(status) $out"
out=$(api quinn POST /leases '{"selector": "team=qa", "duration": "3h", "name": "q2"}')
[ "$(echo "$out" | json 'd["exporter"], d["state"]')" = "('lab2', 'active')" ] || fail "q2: $(status) $out"
# A model=widget lease of quinn's for longer than 10m may only wait for lab2/dut1, never take lab1's.
out=$(api quinn POST /leases '{"selector": "model=widget", "duration": "1h", "name": "q3"}')
[ "$(echo "$out" | json 'd["state"]')" = pending ] || fail "q3 should wait for lab2/dut1 (lab1's are free but 10m only): $out"
release quinn q2
out=$(api quinn GET /leases/q3)
[ "$(echo "$out" | json 'd["exporter"], d["state"]')" = "('lab2', 'active')" ] || fail "q3 after q2: $out"
release quinn q3

echo "--- extension past maxDuration"
out=$(api quinn POST /leases/q1/extend '{"by": "4m"}')
[ "$(status)" = 200 ] || fail "extend q1 by 4m: $(status) $out"
out=$(api quinn POST /leases/q1/extend '{"by": "2m"}')
[ "$(status)" = 403 ] && echo "$out" | grep -q "maxDuration" || fail "extend q1 past 10m: $(status) $out"

echo "--- verbs: the grant in the stream token, enforced by the exporter"
out=$(api quinn POST /leases/q1/token '{"verbs": "power serial"}')
[ "$(status)" = 403 ] || fail "quinn asked for power on lab1: $(status) $out"
echo "$out" | json 'd["message"]' | grep -qF "grants 'power' on lab1/dut2" || fail "power refusal: $out"
api quinn POST /leases/q1/token '' > "$T/q1.token.json"
[ "$(status)" = 201 ] || fail "q1 token: $(status) $(cat "$T/q1.token.json")"
$PY - "$T/q1.token.json" <<'PY' || fail "the q1 token's verbs"
import base64, json, sys
t = json.load(open(sys.argv[1]))["token"].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))
assert claims["verbs"] == "serial", claims
PY
# stream TOKEN_JSON STREAM [OP-LINE]: the exporter's first answer, then the op's.
cat > "$T/stream.py" <<'PY'
import json, socket, ssl, sys
t = json.load(open(sys.argv[1]))
host, port = t["address"].rsplit(":", 1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20))
s.sendall((json.dumps({"token": t["token"], "dut": t["dut"], "stream": sys.argv[2]}) + "\n").encode())
f = s.makefile("rb")
print(f.readline().decode().strip())
if len(sys.argv) > 3:
    s.sendall((sys.argv[3] + "\n").encode())
    print(f.readline().decode().strip())
PY
out=$(on users $PY "$T/stream.py" "$T/q1.token.json" control '{"id": 1, "op": "power.set", "action": "on"}')
echo "$out" | head -n 1 | grep -q '"ok": *true' || fail "quinn's control stream: $out"
echo "$out" | tail -n 1 | grep -q '"reason": *"Forbidden"' || fail "quinn switched power with a serial grant: $out"
out=$(on users $PY "$T/stream.py" "$T/q1.token.json" control '{"id": 2, "op": "power.get"}')
echo "$out" | tail -n 1 | grep -q '"state"' || fail "quinn's power.get: $out"
out=$(on users $PY "$T/stream.py" "$T/q1.token.json" serial)
echo "$out" | grep -q '"ok": *true' || fail "quinn's serial stream: $out"
out=$(on users $PY "$T/stream.py" "$T/q1.token.json" storage)
echo "$out" | grep -q '"reason": *"Forbidden"' || fail "quinn opened storage: $out"
release quinn q1
# alice's grant switches power.
api alice POST /leases '{"selector": "board=w1", "duration": "10m", "name": "a3"}' >/dev/null
api alice POST /leases/a3/token '' > "$T/a3.token.json"
$PY -c 'import json,sys,base64; t=json.load(open(sys.argv[1]))["token"].split(".")[1]; c=json.loads(base64.urlsafe_b64decode(t+"="*(-len(t)%4))); assert c["verbs"]=="power serial storage", c' \
        "$T/a3.token.json" || fail "a3's verbs"
out=$(on users $PY "$T/stream.py" "$T/a3.token.json" control '{"id": 1, "op": "power.set", "action": "on"}')
echo "$out" | tail -n 1 | grep -q '"state": *"on"' || fail "alice could not switch power: $out"
api alice POST /leases/a3/token '{"verbs": "gpio"}' >/dev/null
[ "$(status)" = 403 ] || fail "alice got a gpio token: $(status)"
release alice a3

echo "--- limits hold under a burst of parallel requests"
burst() {
        local user=$1 n=$2 i pids=""
        for i in $(seq 1 "$n"); do
                on users curl -s --cacert "$C/controller.pem" -H "Authorization: Bearer $(cat "$T/$user.token")" \
                        -X POST -H "Content-Type: application/json" \
                        --data '{"selector": "team=platform", "duration": "10m"}' -o /dev/null -w '%{http_code}\n' \
                        "https://$NET.1:8443/v1/leases" > "$T/burst.$user.$i" 2>&1 &
                pids="$pids $!"
        done
        for i in $pids; do wait "$i" || true; done
        cat "$T/burst.$user".* > "$T/burst.$user"
}
burst alice 8
[ "$(grep -c 201 "$T/burst.alice")" = 2 ] || fail "alice's burst: $(sort "$T/burst.alice" | uniq -c)"
[ "$(grep -c 403 "$T/burst.alice")" = 6 ] || fail "alice's burst: $(sort "$T/burst.alice" | uniq -c)"
denied alice '{"selector": "team=platform", "duration": "10m"}' "maxLeasesPerClient: 2"
# Two of the team's three: pat gets one more (pending: lab1 has two boards), then the team is full.
burst pat 5
[ "$(grep -c 201 "$T/burst.pat")" = 1 ] || fail "pat's burst: $(sort "$T/burst.pat" | uniq -c)"
denied pat '{"selector": "team=platform", "duration": "10m"}' "Team 'platform' holds 3 leases"
[ "$(as ctl "$ADMIN" get leases -o json | json 'len(d)')" = 3 ] || fail "leases after the bursts: $(as ctl "$ADMIN" get leases)"
for l in $(as ctl "$ADMIN" get leases -o json | json '" ".join(l["name"] for l in d)'); do
        as ctl "$ADMIN" lease release "$l" >/dev/null || fail "releasing $l"
done

echo "--- reload on SIGHUP: a broken file is refused, the policy in force stays"
cat > "$C/policy.yaml" <<'YAML'
apiVersion: jumpstarter.dev/v1alpha1
kind: AccessPolicy
roles:
  - name: everyone
    clients: ""
    exporters: ""
    verbs: [lease, fly]
YAML
kill -HUP "$LAB_CTL_PID"
lab_wait grep -q "Refusing the access policy, the one in force stays: .*policy.yaml:7:.*unknown verb \"fly\"" "$C/controller.log" ||
        fail "the broken policy was not refused: $(tail "$C/controller.log")"
alive "$LAB_CTL_PID" || fail "the controller died of a broken policy"
denied otto '{"selector": "", "duration": "5m"}' "is in no role"
out=$(api alice POST /leases '{"selector": "board=w1", "duration": "10m", "name": "a4"}')
[ "$(status)" = 201 ] || fail "alice after the refused reload: $(status) $out"
release alice a4
# A good file takes effect: ops may lease the qa board now.
cp "$C/policy-good.yaml" "$C/policy.yaml"
cat >> "$C/policy.yaml" <<'YAML'
  - name: ops
    clients: team=ops
    exporters: team=qa
    verbs: [lease, serial]
YAML
kill -HUP "$LAB_CTL_PID"
lab_wait grep -q "Access policy .*policy.yaml in force: 4 roles" "$C/controller.log" ||
        fail "the new policy did not load: $(tail "$C/controller.log")"
out=$(api otto POST /leases '{"selector": "", "duration": "5m", "name": "o1"}')
[ "$(echo "$out" | json 'd["exporter"], d["state"]')" = "('lab2', 'active')" ] || fail "otto after the reload: $(status) $out"
release otto o1

echo "--- lease hooks on both edges; a hook that hangs is killed at its timeout"
# a3 (alice, lab1/dut1) ran both of dut1's hooks.
lab_wait test -e "$T/before-w1" || fail "dut1's beforeLease hook did not run: $(grep -i hook "$T/lab1.log")"
lab_wait test -e "$T/after-w1" || fail "dut1's afterLease hook did not run: $(grep -i hook "$T/lab1.log")"
lab_wait grep -q "Lease a3: afterLease of lab1/dut1 succeeded" "$C/controller.log" ||
        fail "the controller did not hear of a3's afterLease hook: $(grep -i hook "$C/controller.log")"
# dut3's beforeLease sleeps: killed after 1s, and onFailure: endLease ends the lease.
out=$(api admin POST /leases '{"selector": "board=g1", "duration": "10m", "name": "h1"}')
[ "$(echo "$out" | json 'd["state"]')" = active ] || fail "h1: $(status) $out"
lab_wait grep -q "dut3: beforeLease hook of lease h1 failed: timed out after 1s and was killed" "$T/lab1.log" ||
        fail "the hanging hook was not killed: $(grep -i hook "$T/lab1.log")"
ended_reason() { api admin GET "/leases/$1" | json 'd["state"] + " " + str(d["reason"])'; }
ended_is() { [ "$(ended_reason "$1")" = "$2" ]; }
lab_wait ended_is h1 "ended Revoked" || fail "h1 after its hook failed: $(ended_reason h1)"
grep -q "Ending lease h1: its beforeLease failed" "$C/controller.log" || fail "controller log: $(tail "$C/controller.log")"
pgrep -fx "sleep 61.25" >/dev/null && fail "the hung hook's sleep is still running"

echo "--- admin: disable and enable a DUT"
as ctl "$ADMIN" admin exporter disable lab1/dut1 | grep -q "lab1/dut1: disabled" || fail "disable lab1/dut1"
device_is lab1/dut1 disabled || fail "lab1/dut1 is $(device_state lab1/dut1)"
out=$(api alice POST /leases '{"selector": "board=w1", "duration": "10m", "name": "a5"}')
[ "$(echo "$out" | json 'd["state"], d["reason"]')" = "('pending', 'ExportersUnavailable')" ] || fail "a5 on a disabled DUT: $out"
as ctl "$ADMIN" admin exporter enable lab1/dut1 | grep -q "lab1/dut1: online" || fail "enable lab1/dut1"
[ "$(api alice GET /leases/a5 | json 'd["state"]')" = active ] || fail "a5 after enable: $(api alice GET /leases/a5)"
release alice a5
# Only admins (or a role with the verb admin on the DUT).
expect_error "Forbidden" as users "$T/alice.yaml" admin exporter disable lab1/dut1

echo "--- health checks: a failing DUT leaves the pool, an admin puts it back, a pass does too"
rm "$T/healthy"
lab_wait device_is lab2/dut1 disabled || fail "lab2/dut1 stayed $(device_state lab2/dut1) with a failing check"
as ctl "$ADMIN" get exporters -o json | $PY -c '
import json, sys
d = [d for e in json.load(sys.stdin) for d in e["duts"] if e["name"] == "lab2"][0]
assert d["unhealthy"].startswith("exit status 1"), d' || fail "lab2/dut1's health mark: $(as ctl "$ADMIN" get exporters -o json)"
out=$(api quinn POST /leases '{"selector": "team=qa", "duration": "10m", "name": "q4"}')
[ "$(echo "$out" | json 'd["state"]')" = pending ] || fail "q4 got an unhealthy DUT: $out"
as ctl "$ADMIN" admin exporter clear lab2/dut1 >/dev/null || fail "clear lab2/dut1"
[ "$(api quinn GET /leases/q4 | json 'd["state"], d["exporter"]')" = "('active', 'lab2')" ] || fail "q4 after clear: $(api quinn GET /leases/q4)"
release quinn q4
lab_wait device_is lab2/dut1 disabled || fail "lab2/dut1 was not checked again between leases"
touch "$T/healthy"
lab_wait device_is lab2/dut1 online || fail "lab2/dut1 did not come back after passing: $(device_state lab2/dut1)"

echo "--- token hygiene: rotation with a grace, expiry shown"
old=$(cat "$T/quinn.token")
as users "$T/quinn.yaml" auth rotate | grep -q "Rotated the token of quinn" || fail "jmp auth rotate"
new=$(sed -n 's/^token: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$T/quinn.yaml")
[ -n "$new" ] && [ "$new" != "$old" ] || fail "the config kept its token"
api quinn GET /leases >/dev/null; [ "$(status)" = 200 ] || fail "the old token stopped at once: $(status)"
echo "$new" > "$T/quinn.token"
api quinn GET /leases >/dev/null; [ "$(status)" = 200 ] || fail "the new token does not work: $(status)"
as users "$T/quinn.yaml" auth rotate --grace 0 | grep -q "The old one no longer works" || fail "rotate --grace 0"
out=$(api quinn GET /leases); [ "$(status)" = 401 ] && echo "$out" | grep -q revoked || fail "the replaced token still works: $(status) $out"
as users "$T/quinn.yaml" lease list >/dev/null || fail "the rotated config does not work"
sed -n 's/^token: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$T/quinn.yaml" > "$T/quinn.token"
# An exporter: its link goes on across the rotation, and it restarts on the new token.
as ctl "$ADMIN" admin create client shorty --label team=qa --lifetime 7d -o "$T/shorty.yaml" >/dev/null
as ctl "$ADMIN" admin get clients | grep -E '^shorty .* \(soon\)' >/dev/null || fail "no expiry warning: $(as ctl "$ADMIN" admin get clients)"
as ctl "$ADMIN" admin get clients | grep -E '^quinn .*\(soon\)' >/dev/null && fail "quinn's token is not close to expiry"
sed -n 's/^token: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$T/lab2.yaml" > "$T/lab2-old.token"
on exp2 "$JMP" auth rotate --exporter-config "$T/lab2.yaml" | grep -q "Rotated the token of lab2" || fail "rotating lab2's token"
sed -n 's/^token: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$T/lab2.yaml" > "$T/lab2-new.token"
cmp -s "$T/lab2-old.token" "$T/lab2-new.token" && fail "lab2.yaml kept its token"
# The running exporter's heartbeats (on the old token) go on within the grace, and so does the new token.
api lab2-old POST /exporters/lab2/heartbeat >/dev/null; [ "$(status)" = 204 ] || fail "lab2's old token in its grace: $(status)"
api lab2-new POST /exporters/lab2/heartbeat >/dev/null; [ "$(status)" = 204 ] || fail "lab2's new token: $(status)"
device_is lab2/dut1 online || fail "lab2 went down on the rotation: $(device_state lab2/dut1)"
kill "$LAB2_PID"; wait "$LAB2_PID" 2>/dev/null || true
lab_bg exp2 "$T/lab2.log" "$JUMPSTARTERD" --config "$T/lab2.yaml" --listen "$T/lab2.sock"
lab_wait grep -c 'Linked up with controller' "$T/lab2.log" || fail "lab2 did not link up on its new token"
out=$(api quinn POST /leases '{"selector": "team=qa", "duration": "5m", "name": "q5"}')
q5_active() { [ "$(api quinn GET /leases/q5 | json 'd["state"]')" = active ]; }
lab_wait q5_active || fail "q5 on the restarted lab2: $out $(api quinn GET /leases/q5)"

alive "$LAB_CTL_PID" || fail "the controller died"
# A clean stop, so that a sanitizer build reports what it found (lib.sh reads only $T/*.log).
kill -TERM "$LAB_CTL_PID"
wait "$LAB_CTL_PID" 2>/dev/null || true
if grep -E 'ERROR: AddressSanitizer|ERROR: LeakSanitizer: detected|runtime error:' "$C/controller.log"; then
        fail "sanitizer reports in the controller's log"
fi
echo PASS
