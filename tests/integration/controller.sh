#!/bin/bash
# The controller role of jumpstarterd over real TLS, driven with curl: bootstrap, clients and exporters,
# the exporter link (status, heartbeat, watch, offline), leases (pool, queue, handoff, expiry, extension,
# isolation), token refusals, bad input, and kill -9 + restart without losing an acknowledged lease.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-controller.sh"

fail() {
        echo "FAIL: $*" >&2
        [ -e "$CTL_LOG" ] && { echo "--- $CTL_LOG"; tail -n 80 "$CTL_LOG"; } >&2
        exit 1
}

write_controller_config "tokens:
  streamLifetime: 5m"

# api TOKEN METHOD PATH [BODY]: sets STATUS and BODY.
api() {
        local args=(-sS --cacert "$CERT" -o "$T/body" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $1")
        [ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
        STATUS=$(curl "${args[@]}" "$URL$3") || fail "curl $2 $3"
        BODY=$(cat "$T/body")
}

# jf EXPR [JSON]: a Python expression over the JSON d (default: $BODY).
jf() {
        $PY -c 'import json,sys; d=json.loads(sys.argv[2]); v=eval(sys.argv[1]); print(json.dumps(v) if isinstance(v,(dict,list)) else v)' \
                "$1" "${2:-$BODY}"
}

# expect STATUS [REASON [DETAIL]] for the last api call.
expect() {
        [ "$STATUS" = "$1" ] || fail "expected HTTP $1, got $STATUS: $BODY"
        if [ $# -ge 2 ]; then
                [ "$(jf 'd["reason"]')" = "$2" ] || fail "expected reason $2: $BODY"
        fi
        if [ $# -ge 3 ]; then
                [ "$(jf 'd["detail"]')" = "$3" ] || fail "expected detail $3: $BODY"
        fi
}

lease_field() { # lease_field TOKEN NAME EXPR
        api "$1" GET "/v1/leases/$2"
        expect 200
        jf "$3"
}

# Leases as one line per live lease (name state exporter/dut queuePosition begin end), as admin sees them.
lease_table() {
        api "$ADMIN" GET /v1/leases
        expect 200
        jf '"\n".join("%s %s %s/%s %s %s %s" % (l["name"], l["state"], l["exporter"], l["dut"], l["queuePosition"], l["begin"], l["end"]) for l in sorted(d["items"], key=lambda l: l["name"]))'
}

n_leases() {
        api "$ADMIN" GET '/v1/leases?history=true'
        expect 200
        jf 'len(d["items"])'
}

# ---- Start and admin bootstrap

start_controller
[ -f "$STATE/admin-client.yaml" ] || fail "no admin-client.yaml"
[ "$(stat -c %a "$STATE/admin-client.yaml")" = 600 ] || fail "admin-client.yaml is not mode 0600"
grep -q '^kind: ClientConfig$' "$STATE/admin-client.yaml" || fail "admin-client.yaml is no ClientConfig"
grep -q "^endpoint: \"127.0.0.1:$PORT\"$" "$STATE/admin-client.yaml" || fail "admin-client.yaml has the wrong endpoint"
grep -q 'ca: "-----BEGIN CERTIFICATE-----\\n' "$STATE/admin-client.yaml" || fail "admin-client.yaml has no inline CA"
grep -q "admin-client.yaml" "$CTL_LOG" || fail "the log does not name admin-client.yaml"
ADMIN=$(sed -n 's/^token: "\(.*\)"$/\1/p' "$STATE/admin-client.yaml")
[ -n "$ADMIN" ] || fail "no admin token"
# The written CA is what curl can verify the controller with.
$PY - "$STATE/admin-client.yaml" "$T/ca-from-config.pem" <<'EOF' || fail "cannot read the CA from admin-client.yaml"
import sys, json
for line in open(sys.argv[1]):
    if line.startswith("  ca: "):
        open(sys.argv[2], "w").write(json.loads(line[len("  ca: "):]))
EOF
curl -sf --cacert "$T/ca-from-config.pem" "$URL/v1/healthz" >/dev/null || fail "the config's CA does not verify the controller"
[ -f "$STATE/keyring/keyring.json" ] && [ -f "$STATE/store/log" ] || fail "no keyring or store under stateDirectory"

api "" GET /v1/healthz
expect 200
[ "$(jf 'd["status"]')" = ok ] || fail "healthz: $BODY"
api "" GET /v1/keys
expect 200
[ "$(jf 'd["issuer"]')" = lab ] && [ "$(jf 'len(d["keys"])')" = 1 ] || fail "keys: $BODY"
KID=$(jf 'd["keys"][0]["kid"]')

# No token: 401 with the Bearer challenge, and nothing is read.
code=$(curl -sS --cacert "$CERT" -o "$T/body" -D "$T/headers" -w '%{http_code}' "$URL/v1/leases")
[ "$code" = 401 ] || fail "no token: HTTP $code"
grep -qi '^WWW-Authenticate: Bearer realm="jumpstarter"' "$T/headers" || fail "no WWW-Authenticate header"

# ---- Clients and exporters

create() { # create VAR KIND BODY: sets VAR to the new token
        api "$ADMIN" POST "/v1/$2" "$3"
        expect 201
        printf -v "$1" '%s' "$(jf 'd["token"]')"
}
create ALICE clients '{"name": "alice", "labels": {"team": "a"}}'
create BOB clients '{"name": "bob"}'
create CAROL clients '{"name": "carol", "lifetime": "1h"}'
create EXP1 exporters '{"name": "exp1", "labels": {"site": "lab", "model": "generic"}}'
[ "$(jf 'd["endpoint"]')" = "127.0.0.1:$PORT" ] || fail "exporter answer: wrong endpoint: $BODY"
[ "$(jf 'd["ca"].startswith("-----BEGIN CERTIFICATE-----")')" = True ] || fail "exporter answer: no CA"
create EXP2 exporters '{"name": "exp2", "labels": {"site": "lab"}}'

api "$ADMIN" POST /v1/clients '{"name": "alice"}'
expect 409 Conflict
api "$ADMIN" POST /v1/clients '{"name": "Not_A_Name"}'
expect 400 BadRequest
api "$ADMIN" POST /v1/clients '{"name": "dave", "admin": "yes"}'
expect 400 BadRequest
api "$ALICE" POST /v1/clients '{"name": "eve"}'
expect 403 Forbidden
api "$ADMIN" GET /v1/clients
expect 200
[ "$(jf '",".join(c["name"] for c in d["items"])')" = admin,alice,bob,carol ] || fail "clients: $BODY"

api "$ALICE" GET /v1/exporters/exp1
expect 200
[ "$(jf 'd["state"]')" = registered ] || fail "a new exporter is not 'registered': $BODY"

# ---- The exporter link

status_body='{"duts": [{"name": "d1", "labels": {"model": "w"}, "classes": ["power", "serial"]},
                       {"name": "d2", "labels": {"model": "w"}, "classes": ["power"]}],
              "streams": {"address": "127.0.0.1:7001", "fingerprint": "sha256:00ff"}}'
api "$ALICE" PUT /v1/exporters/exp1/status "$status_body"
expect 403 Forbidden
api "$EXP2" PUT /v1/exporters/exp1/status "$status_body"
expect 403 Forbidden
api "$EXP1" PUT /v1/exporters/exp1/status '{"duts": [{"name": "d1"}, {"name": "d1"}]}'
expect 400 BadRequest
api "$EXP1" PUT /v1/exporters/exp1/status "$status_body"
expect 200
[ "$(jf 'd["heartbeatSeconds"]')" = 3 ] && [ "$(jf 'd["timeoutSeconds"]')" = 10 ] || fail "status answer: $BODY"
api "$EXP2" PUT /v1/exporters/exp2/status '{"duts": [{"name": "d1", "labels": {"model": "w"}}]}'
expect 200

heartbeat_loop() { # heartbeat_loop TOKEN NAME
        while true; do
                curl -s --cacert "$CERT" -X POST -H "Authorization: Bearer $1" "$URL/v1/exporters/$2/heartbeat" >/dev/null
                sleep 1
        done
}
heartbeat_loop "$EXP1" exp1 &
HB1=$!
heartbeat_loop "$EXP2" exp2 &
HB2=$!
TEST_PIDS="$TEST_PIDS $HB1 $HB2"

curl -sN --cacert "$CERT" -H "Authorization: Bearer $EXP1" "$URL/v1/exporters/exp1/watch" > "$T/watch1" &
W1=$!
curl -sN --cacert "$CERT" -H "Authorization: Bearer $EXP2" "$URL/v1/exporters/exp2/watch" > "$T/watch2" &
W2=$!
TEST_PIDS="$TEST_PIDS $W1 $W2"
wait_for grep -q '"type":"keys"' "$T/watch1" || fail "exporter watch: no keys line"
head -n1 "$T/watch1" | grep -q '^{"type":"leases","leases":\[\]}$' || fail "exporter watch: first line: $(head -n1 "$T/watch1")"

api "$ALICE" GET /v1/exporters
expect 200
[ "$(jf '",".join(e["name"] + ":" + e["state"] for e in d["items"])')" = exp1:online,exp2:online ] || fail "exporters: $BODY"
[ "$(jf '[x["labels"] for x in d["items"][0]["duts"]][0]')" = '{"site": "lab", "model": "w"}' ] || fail "DUT labels are not merged (the DUT's win): $BODY"
[ "$(jf 'd["items"][0]["streams"]["address"]')" = 127.0.0.1:7001 ] || fail "streams: $BODY"

# ---- Pool choice: least recently leased, then by name

create_lease() { # create_lease TOKEN BODY -> sets BODY
        api "$1" POST /v1/leases "$2"
        expect 201
}
create_lease "$ALICE" '{"name": "l1", "selector": "model=w", "duration": "30m", "metadata": {"team": "a"}}'
[ "$(jf 'd["state"] + " " + d["exporter"] + "/" + d["dut"]')" = "active exp1/d1" ] || fail "l1: $BODY"
[ "$(jf 'd["durationSeconds"]')" = 1800 ] && [ "$(jf 'd["metadata"]["team"]')" = a ] || fail "l1: $BODY"
create_lease "$ALICE" '{"name": "l2", "selector": "model=w", "duration": 1800}'
[ "$(jf 'd["exporter"] + "/" + d["dut"]')" = exp1/d2 ] || fail "l2: $BODY"
create_lease "$ALICE" '{"name": "l3", "selector": "model=w", "duration": "30m"}'
[ "$(jf 'd["exporter"] + "/" + d["dut"]')" = exp2/d1 ] || fail "l3: $BODY"
wait_for grep -q '"event":"assigned".*"name":"l1"' "$T/watch1" || fail "exporter watch: no assigned line for l1"
grep -q '"name":"l3"' "$T/watch1" && fail "exp1's watch shows exp2's lease"

# ---- The queue: priority, then age

create_lease "$ALICE" '{"name": "l4", "selector": "model=w", "duration": "30m"}'
[ "$(jf 'd["state"] + " " + d["reason"] + " " + str(d["queuePosition"])')" = "pending ExportersBusy 0" ] || fail "l4: $BODY"
create_lease "$BOB" '{"name": "l5", "selector": "model=w", "duration": "30m"}'
[ "$(jf 'd["queuePosition"]')" = 1 ] || fail "l5: $BODY"
create_lease "$BOB" '{"name": "l6", "selector": "model=w", "duration": "30m", "priority": 5}'
[ "$(jf 'd["queuePosition"]')" = 0 ] || fail "l6: $BODY"
create_lease "$ALICE" '{"name": "nomatch", "selector": "model=nothing", "duration": "30m"}'
[ "$(jf 'd["reason"]')" = NoMatchingExporter ] || fail "nomatch: $BODY"
[ "$(lease_field "$ALICE" l4 'd["queuePosition"]')" = 1 ] || fail "l4 did not move behind l6"

# Handoff on release: the exporter goes to the first waiter in the same request.
api "$ALICE" DELETE /v1/leases/l1
expect 200
[ "$(jf 'd["state"] + " " + d["reason"]')" = "ended Released" ] || fail "release l1: $BODY"
[ "$(lease_field "$BOB" l6 'd["state"] + " " + d["exporter"] + "/" + d["dut"]')" = "active exp1/d1" ] || fail "l6 did not get exp1/d1"
api "$ALICE" DELETE /v1/leases/l2
expect 200
[ "$(lease_field "$ALICE" l4 'd["state"] + " " + d["exporter"] + "/" + d["dut"]')" = "active exp1/d2" ] || fail "l4 did not get exp1/d2"
[ "$(lease_field "$BOB" l5 'd["queuePosition"]')" = 0 ] || fail "l5 is not at the head of the queue"
wait_for grep -q '"event":"ended".*"name":"l1".*"reason":"Released"' "$T/watch1" || fail "exporter watch: no ended line for l1"

# ---- One client cannot see, extend or release another's lease

api "$BOB" GET /v1/leases/l4
expect 404 NotFound
api "$BOB" POST /v1/leases/l4/extend '{"by": "15m"}'
expect 404 NotFound
api "$BOB" DELETE /v1/leases/l4
expect 404 NotFound
api "$BOB" POST /v1/leases/l4/token
expect 404 NotFound
api "$BOB" GET /v1/leases
expect 200
[ "$(jf '",".join(sorted(l["name"] for l in d["items"]))')" = l5,l6 ] || fail "bob sees: $BODY"
api "$ADMIN" GET /v1/leases
[ "$(jf 'len(d["items"])')" = 5 ] || fail "admin sees: $BODY"
api "$EXP1" GET /v1/leases
expect 403 Forbidden

# ---- Extension

end_before=$(lease_field "$ALICE" l4 'd["end"]')
api "$ALICE" POST /v1/leases/l4/extend '{"by": "15m"}'
expect 200
[ "$(jf 'd["durationSeconds"]')" = 2700 ] || fail "extend: $BODY"
[ "$(jf 'd["end"]')" != "$end_before" ] || fail "extend did not move the end"
api "$BOB" POST /v1/leases/l5/extend '{"by": "15m"}'
expect 409 Conflict
api "$ALICE" POST /v1/leases/l4/extend '{"by": "soon"}'
expect 400 BadRequest
wait_for grep -q '"event":"extended".*"name":"l4"' "$T/watch1" || fail "exporter watch: no extended line"

# ---- Stream tokens

api "$ALICE" POST /v1/leases/l4/token '{"verbs": "serial power"}'
expect 201
[ "$(jf 'd["exporter"] + "/" + d["dut"] + " " + d["address"] + " " + d["fingerprint"]')" = "exp1/d2 127.0.0.1:7001 sha256:00ff" ] || fail "token: $BODY"
claims=$(jf 'd["token"]' | $PY -c 'import sys,base64,json; p=sys.stdin.read().strip().split(".")[1]; print(base64.urlsafe_b64decode(p+"="*(-len(p)%4)).decode())')
[ "$(jf '" ".join([d["kind"], d["aud"], d["sub"], d["lease"], d["dut"], d["verbs"], d["iss"], str(d["exp"]-d["iat"])])' "$claims")" = \
        "stream exporter/exp1 alice l4 d2 serial power lab 300" ] || fail "stream token claims: $claims"
api "$BOB" POST /v1/leases/l5/token
expect 409 Conflict
api "$ALICE" POST /v1/leases/l4/token '{"verbs": "root"}'
expect 400 BadRequest

# ---- Expiry

api "$ALICE" DELETE /v1/leases/nomatch
expect 200
api "$BOB" DELETE /v1/leases/l6
expect 200
[ "$(lease_field "$BOB" l5 'd["state"] + " " + d["exporter"] + "/" + d["dut"]')" = "active exp1/d1" ] || fail "l5 did not get exp1/d1"
api "$ALICE" DELETE /v1/leases/l3
expect 200
create_lease "$ALICE" '{"name": "short", "selector": "model=w", "duration": "2s"}'
[ "$(jf 'd["state"] + " " + d["exporter"]')" = "active exp2" ] || fail "short: $BODY"
short_ended() { [ "$(lease_field "$ALICE" short 'd["state"] + " " + d["reason"]')" = "ended Expired" ]; }
wait_for short_ended || fail "the 2 s lease did not expire"
wait_for grep -q '"event":"ended".*"name":"short".*"reason":"Expired"' "$T/watch2" || fail "exp2's watch: no expiry"
api "$ALICE" DELETE /v1/leases/short
expect 410 Expired
api "$ALICE" GET '/v1/leases?history=true'
expect 200
[ "$(jf '",".join(l["name"] + ":" + l["reason"] for l in d["items"] if l["state"] == "ended")')" = \
        l1:Released,l2:Released,nomatch:Released,l3:Released,short:Expired ] || fail "history: $BODY"

# ---- Bad input: a clear error, and nothing changes

before=$(n_leases)
api "$ALICE" POST /v1/leases '{"selector": "model=w", "duration": "30m",'
expect 400 MalformedJSON
head -c 1100000 /dev/zero | tr '\0' ' ' > "$T/big.json"
code=$(curl -sS --cacert "$CERT" -o "$T/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $ALICE" \
        -H 'Content-Type: application/json' --data-binary @"$T/big.json" "$URL/v1/leases")
[ "$code" = 413 ] && grep -q '"reason":"PayloadTooLarge"' "$T/body" || fail "oversized body: $code $(cat "$T/body")"
api "$ALICE" POST /v1/leases '{"selector": "model in x", "duration": "30m"}'
expect 400 InvalidSelector
api "$ALICE" POST /v1/leases '{"selector": "a=1,a=2", "duration": "30m"}'
expect 422 Unsatisfiable
api "$ALICE" POST /v1/leases '{"selector": "model=w", "duration": "forever"}'
expect 400 BadRequest
api "$ALICE" POST /v1/leases '{"selector": "model=w", "duration": 0}'
expect 400 BadRequest
api "$ALICE" POST /v1/leases '{"selector": "model=w"}'
expect 400 BadRequest
api "$ALICE" POST /v1/leases '{"selector": "model=w", "duration": "1m", "colour": "red"}'
expect 400 BadRequest
api "$ALICE" POST /v1/leases '{"selector": "model=w", "duration": "1m", "name": "l4"}'
expect 409 Conflict
api "$ALICE" POST /v1/leases '{"selector": "model=w", "duration": "1m", "name": "Bad Name"}'
expect 400 BadRequest
api "$ALICE" POST /v1/leases '["selector"]'
expect 400 BadRequest
api "$ALICE" GET /v1/leases/nosuch
expect 404 NotFound
api "$ALICE" GET /v1/exporters/nosuch
expect 404 NotFound
api "$ADMIN" DELETE /v1/clients/nosuch
expect 404 NotFound
api "$ALICE" GET /v1/leases/
expect 404 NotFound
api "$ALICE" PATCH /v1/leases
expect 405 MethodNotAllowed
[ "$(n_leases)" = "$before" ] || fail "bad input changed the leases"

# ---- Refused tokens: 401 with the reason, and nothing changes

cat > "$T/mint.py" <<'EOF'
# mint.py KEYFILE|- KID BASE_TOKEN CHANGES_JSON [ALG]: a token with BASE_TOKEN's claims updated by CHANGES_JSON,
# signed with KEYFILE's P-256 key (or a fresh one for "-"), or unsigned for ALG "none".
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

keyfile, kid, base, changes = sys.argv[1:5]
alg = sys.argv[5] if len(sys.argv) > 5 else "ES256"
p = base.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
claims.update(json.loads(changes))
header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}, separators=(",", ":")).encode())
payload = b64(json.dumps(claims, separators=(",", ":")).encode())
signing_input = (header + "." + payload).encode()
if alg == "none":
    print(header + "." + payload + ".")
    sys.exit(0)
if alg == "HS256":
    # The classic confusion: an HMAC keyed with the public key's PEM, which every verifier has.
    import hmac, hashlib
    key = serialization.load_pem_private_key(open(keyfile, "rb").read(), password=None)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    print(header + "." + payload + "." + b64(hmac.new(pem, signing_input, hashlib.sha256).digest()))
    sys.exit(0)
if keyfile == "-":
    key = ec.generate_private_key(ec.SECP256R1())
else:
    key = serialization.load_pem_private_key(open(keyfile, "rb").read(), password=None)
r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
print(header + "." + payload + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big")))
EOF
mint() { $PY "$T/mint.py" "$@" || fail "mint.py $*"; }
REAL_KEY=$STATE/keyring/$KID.pem

# The minting itself is right: the real key with no change gives a token that works.
same=$(mint "$REAL_KEY" "$KID" "$ALICE" '{}')
api "$same" GET /v1/leases
expect 200

before=$(n_leases)
try_token() { # try_token TOKEN DETAIL
        api "$1" POST /v1/leases '{"selector": "model=w", "duration": "30m", "name": "sneaky"}'
        expect 401 Unauthorized "$2"
        api "$1" GET /v1/leases
        expect 401 Unauthorized "$2"
}
try_token "$(mint - "$KID" "$ALICE" '{}')" bad-signature
try_token "$(mint "$REAL_KEY" "$KID" "$ALICE" '{"exp": 1000000000, "iat": 999990000, "nbf": 999990000}')" expired
try_token "$(mint "$REAL_KEY" "$KID" "$ALICE" '{}' none)" unsupported-algorithm
try_token "$(mint "$REAL_KEY" "$KID" "$ALICE" '{}' HS256)" unsupported-algorithm
try_token "$(mint "$REAL_KEY" "$KID" "$ALICE" "{\"nbf\": $(( $(date +%s) + 3600 ))}")" not-yet-valid
try_token "$(mint "$REAL_KEY" "$KID" "$ALICE" '{"aud": "exporter/exp1"}')" wrong-audience
try_token "$(mint "$REAL_KEY" "$KID" "$ALICE" '{"iss": "other-lab"}')" wrong-issuer
try_token "$(mint "$REAL_KEY" "$KID" "$ALICE" '{"sub": "mallory"}')" revoked
try_token "$(mint "$REAL_KEY" "$KID" "$ALICE" '{"jti": "00000000000000000000000000000000"}')" revoked
try_token "$(mint "$REAL_KEY" "0123456789abcdef" "$ALICE" '{}')" unknown-key
try_token "garbage" malformed
# A stream token is no API token.
api "$ALICE" POST /v1/leases/l4/token
expect 201
try_token "$(jf 'd["token"]')" wrong-audience
# A deleted client's token stops working at once.
api "$CAROL" GET /v1/leases
expect 200
api "$ADMIN" DELETE /v1/clients/carol
expect 204
try_token "$CAROL" revoked
[ "$(n_leases)" = "$before" ] || fail "a refused token changed the leases"

# ---- Liveness: a short blip keeps the lease, 10 s of silence ends it ExporterGone

create_lease "$ALICE" '{"name": "on-exp2", "selector": "model=w", "duration": "30m"}'
[ "$(jf 'd["state"] + " " + d["exporter"]')" = "active exp2" ] || fail "on-exp2: $BODY"
kill "$HB2"
sleep 3
api "$ALICE" GET /v1/exporters/exp2
[ "$(jf 'd["state"]')" = online ] || fail "exp2 went offline after a 3 s blip"
[ "$(lease_field "$ALICE" on-exp2 'd["state"]')" = active ] || fail "a 3 s blip ended the lease"
heartbeat_loop "$EXP2" exp2 &
HB2=$!
TEST_PIDS="$TEST_PIDS $HB2"
sleep 2
kill "$HB2"
# Its watch stays open: a hung exporter keeps its TCP connection, only heartbeats prove it lives.
on_exp2_gone() { [ "$(lease_field "$ALICE" on-exp2 'd["state"] + " " + d["reason"]')" = "ended ExporterGone" ]; }
wait_for on_exp2_gone || fail "the lease on a silent exporter did not end ExporterGone"
api "$ALICE" GET /v1/exporters/exp2
[ "$(jf 'd["state"] + " " + d["duts"][0]["state"]')" = "offline offline" ] || fail "exp2 is not offline: $BODY"
grep -q '"event":"ended".*"name":"on-exp2".*"reason":"ExporterGone"' "$T/watch2" || fail "exp2's watch: no ExporterGone"
grep -q "Exporter exp2 is offline" "$CTL_LOG" || fail "the log does not say exp2 went offline"

# ---- kill -9 and restart: no acknowledged lease is lost, the queue keeps its order

create_lease "$BOB" '{"name": "q-old", "selector": "model=w", "duration": "30m"}'
create_lease "$ALICE" '{"name": "q-new", "selector": "model=w", "duration": "30m"}'
create_lease "$ALICE" '{"name": "q-high", "selector": "model=w", "duration": "30m", "priority": 1, "wait": "1h"}'
[ "$(jf 'd["queuePosition"]')" = 0 ] || fail "q-high: $BODY"
table_before=$(lease_table)
history_before=$(n_leases)

kill -9 "$CTL_PID"
wait "$CTL_PID" 2>/dev/null || true
start_controller
grep -q "Restored 2 exporters and 5 leases" "$CTL_LOG" || fail "restart: $(grep Restored "$CTL_LOG")"
[ "$(lease_table)" = "$table_before" ] || fail "restart changed the leases:
before: $table_before
after:  $(lease_table)"
[ "$(n_leases)" = "$history_before" ] || fail "restart changed the history"

# exp1 keeps heartbeating through the restart: online, its leases run on.
sleep 1
api "$ALICE" GET /v1/exporters/exp1
[ "$(jf 'd["state"]')" = online ] || fail "exp1 is not online after the restart: $BODY"

# The queue order survived: the priority waiter first, then the older one.
api "$ALICE" DELETE /v1/leases/l4
expect 200
[ "$(lease_field "$ALICE" q-high 'd["state"] + " " + d["exporter"] + "/" + d["dut"]')" = "active exp1/d2" ] || fail "q-high was not first"
api "$BOB" DELETE /v1/leases/l5
expect 200
[ "$(lease_field "$BOB" q-old 'd["state"] + " " + d["exporter"] + "/" + d["dut"]')" = "active exp1/d1" ] || fail "q-old was not next"
[ "$(lease_field "$ALICE" q-new 'd["queuePosition"]')" = 0 ] || fail "q-new is not at the head"

# Deleting an exporter ends its leases ExporterGone, and its token stops working.
api "$ADMIN" DELETE /v1/exporters/exp1
expect 204
[ "$(lease_field "$BOB" q-old 'd["state"] + " " + d["reason"]')" = "ended ExporterGone" ] || fail "q-old did not end"
api "$EXP1" POST /v1/exporters/exp1/heartbeat
expect 401 Unauthorized revoked

# Key rotation: old tokens still work, retiring the old key stops them.
api "$ADMIN" POST /v1/admin/rotate-key
expect 200
[ "$(jf 'd["previous"]')" = "$KID" ] || fail "rotate: $BODY"
NEWKID=$(jf 'd["kid"]')
api "$ADMIN" POST "/v1/admin/keys/$NEWKID/retire"
expect 409 Conflict
api "$ALICE" GET /v1/leases
expect 200
api "$ADMIN" POST "/v1/admin/keys/$KID/retire"
expect 200
api "$ALICE" GET /v1/leases
expect 401 Unauthorized retired-key

# SIGTERM: a clean exit.
kill -TERM "$CTL_PID"
wait "$CTL_PID" || fail "the controller did not exit cleanly on SIGTERM"
if grep -E 'ERROR: AddressSanitizer|ERROR: LeakSanitizer: detected|runtime error:' "$CTL_LOG"; then
        fail "sanitizer reports in the controller's log"
fi
echo "PASS"
