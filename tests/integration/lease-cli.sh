#!/usr/bin/env bash
# jmp lease / get / admin against a real controller (jumpstarterd with a ControllerConfig) over
# real TLS, as a user runs them: every verb, and the errors a user meets.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-controller.sh"

# No ambient config may leak in: every command names its config or relies on the variables below.
unset JMP_CLIENT_CONFIG XDG_CONFIG_HOME
export HOME=$T/home
mkdir -p "$HOME"

# --- the controller (lib-controller.sh), and another CA ------------------------------------------
# Another CA, that did not sign the controller's certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=other" \
        -keyout "$T/other.key" -out "$T/other.pem" 2>/dev/null

start_controller
ADMIN=$STATE/admin-client.yaml
wait_for test -s "$ADMIN" || fail "no admin bootstrap config"

# jmp as a user: `as FILE jmp-args...`
as() {
        local cfg=$1
        shift
        "$JMP" --client-config "$cfg" "$@"
}
# rc EXPECTED COMMAND...: the exit code is EXPECTED.
rc() {
        local want=$1 got=0
        shift
        "$@" >/dev/null 2>&1 || got=$?
        [ "$got" = "$want" ] || fail "'$*' exited $got, expected $want"
}

# --- usage errors: exit 2, nothing sent ------------------------------------------------------------
for cmd in "lease" "lease create" "lease list" "lease release" "lease extend" "get" "admin" "admin create" \
           "admin create client" "admin delete" "admin rotate-key" "admin retire-key" "admin get"; do
        # shellcheck disable=SC2086
        "$JMP" $cmd --help | grep -q Usage || fail "jmp $cmd --help"
done
rc 2 "$JMP" lease create --duration 30m
rc 2 "$JMP" lease create --selector a=b
rc 2 "$JMP" lease create --selector a=b --duration soon
rc 2 "$JMP" lease create --selector a=b --duration 30m --name Bad_Name
rc 2 "$JMP" lease create --selector a=b --duration 30m --meta novalue
rc 2 "$JMP" lease create --selector a=b --duration 30m --priority high
rc 2 "$JMP" lease create --selector a=b --duration 30m -o yaml
rc 2 "$JMP" lease extend l1
rc 2 "$JMP" lease release
rc 2 "$JMP" get things
rc 2 "$JMP" get exporters --history
rc 2 "$JMP" admin create robot r1
rc 2 "$JMP" admin create exporter e1 --admin
rc 2 "$JMP" admin retire-key not-a-kid
rc 2 "$JMP" admin delete client
expect_error "write KEY=VALUE" "$JMP" lease create --selector a=b --duration 30m --meta novalue

# --- finding the client config ---------------------------------------------------------------------
expect_error "no client config at $HOME/.config/jumpstarter/clients/default.yaml" "$JMP" lease list
rc 1 "$JMP" lease list
out=$(XDG_CONFIG_HOME=$T/xdg "$JMP" lease list 2>&1) && fail "lease list without config succeeded"
[[ "$out" == *"$T/xdg/jumpstarter/clients/default.yaml"* ]] || fail "XDG_CONFIG_HOME not used: $out"
expect_error "$T/missing.yaml: cannot read: No such file or directory" \
        env JMP_CLIENT_CONFIG="$T/missing.yaml" "$JMP" lease list
# A broken config: the file, line, column and key.
sed 's/^token: .*/token: "not a token"/' "$ADMIN" > "$T/broken.yaml"
expect_error "$T/broken.yaml:" as "$T/broken.yaml" lease list
expect_error "token: invalid token" as "$T/broken.yaml" lease list
# The default place, and $JMP_CLIENT_CONFIG.
mkdir -p "$HOME/.config/jumpstarter/clients"
cp "$ADMIN" "$HOME/.config/jumpstarter/clients/default.yaml"
"$JMP" admin get clients | grep -q '^admin  *yes' || fail "default config not used"
JMP_CLIENT_CONFIG=$ADMIN "$JMP" admin get clients >/dev/null || fail "JMP_CLIENT_CONFIG not used"
rm "$HOME/.config/jumpstarter/clients/default.yaml"

# --- admin: clients and exporters ------------------------------------------------------------------
as "$ADMIN" admin create client alice --label team=platform -o "$T/alice.yaml" | grep -q "Client alice created" ||
        fail "create alice"
[ "$(stat -c %a "$T/alice.yaml")" = 600 ] || fail "alice.yaml is not mode 0600"
grep -q '^kind: ClientConfig' "$T/alice.yaml" || fail "alice.yaml is no ClientConfig"
# To standard output, then used as it is.
as "$ADMIN" admin create client bob > "$T/bob.yaml" || fail "create bob"
chmod 600 "$T/bob.yaml"
as "$ADMIN" admin create client root2 --admin --lifetime 30d -o "$T/root2.yaml" >/dev/null || fail "create root2"
expect_error "Conflict" as "$ADMIN" admin create client alice -o "$T/alice2.yaml"
[ ! -e "$T/alice2.yaml" ] || fail "a refused create wrote a file"
# An output path that cannot be written: refused before the controller is asked.
expect_error "cannot write to $T/nodir" as "$ADMIN" admin create client carol -o "$T/nodir/carol.yaml"
as "$ADMIN" admin get clients | grep -q '^carol' && fail "carol was created although her file could not be written"

out=$(as "$ADMIN" admin get clients)
echo "$out" | grep -q '^NAME  *ADMIN  *LABELS  *TOKEN-EXPIRES' || fail "clients table header: $out"
echo "$out" | grep -Eq '^alice +no +team=platform +20' || fail "alice in clients table: $out"
echo "$out" | grep -Eq '^root2 +yes ' || fail "root2 in clients table: $out"
as "$ADMIN" admin get clients -o json |
        $PY -c 'import json,sys; n = sorted(c["name"] for c in json.load(sys.stdin)); assert n == ["admin","alice","bob","root2"], n' ||
        fail "clients -o json"
# Only admins manage.
expect_error "Forbidden" as "$T/alice.yaml" admin create client mallory
expect_error "Forbidden" as "$T/alice.yaml" admin get clients

out=$(as "$ADMIN" admin create exporter lab1 --label site=lab --label vendor=acme -o "$T/lab1.yaml" 2>&1) ||
        fail "create exporter: $out"
[[ "$out" == *"Exporter lab1 created"* && "$out" != *warning* ]] || fail "create exporter said: $out"
[ "$(stat -c %a "$T/lab1.yaml")" = 600 ] || fail "lab1.yaml is not mode 0600"
for key in '^kind: ExporterConfig' '^  name: "lab1"' '"site": "lab"' '^endpoint: "127.0.0.1:' '^  insecure: false' \
           '^token: "' '^export: {}' '^#     type: sim'; do
        grep -q "$key" "$T/lab1.yaml" || fail "lab1.yaml lacks $key"
done
as "$ADMIN" get exporters | grep -Eq '^lab1 +registered +site=lab,vendor=acme' || fail "registered exporter not shown"

# --- an exporter comes online: its DUTs, registered with its own token ----------------------------
EXP_TOKEN=$(sed -n 's/^token: "\(.*\)"$/\1/p' "$T/lab1.yaml")
api() {
        curl -sS --fail-with-body --cacert "$CERT" -H "Authorization: Bearer $EXP_TOKEN" \
                -H 'Content-Type: application/json' "$@"
}
register_exporter() {
        api -X PUT "https://127.0.0.1:$PORT/v1/exporters/lab1/status" -d '{
                "duts": [{"name": "dut1", "labels": {"model": "widget"}, "classes": ["power", "serial"]},
                         {"name": "dut2", "labels": {"model": "widget", "vendor": "other"}, "classes": ["power"]}],
                "streams": {"address": "127.0.0.1:1", "fingerprint": "sha256:00"}}' >/dev/null ||
                fail "exporter status"
        # Its watch held open keeps it online.
        : > "$T/exporter-watch.log"
        api -N "https://127.0.0.1:$PORT/v1/exporters/lab1/watch" > "$T/exporter-watch.log" 2>&1 &
        TEST_PIDS="$TEST_PIDS $!"
        wait_for grep -q '"type"' "$T/exporter-watch.log" || fail "exporter watch"
}
register_exporter
# And heartbeats, as the exporter link sends them (every heartbeatSeconds, 3 s; 2 s here).
( while sleep 2; do api -X POST "https://127.0.0.1:$PORT/v1/exporters/lab1/heartbeat" >/dev/null 2>&1 || true; done ) &
TEST_PIDS="$TEST_PIDS $!"

out=$(as "$T/alice.yaml" get exporters)
echo "$out" | grep -q '^NAME  *STATE  *LABELS  *CLASSES  *LEASE' || fail "exporters header: $out"
echo "$out" | grep -Eq '^lab1/dut1 +online +model=widget,site=lab,vendor=acme +power,serial +<none>' ||
        fail "dut1 row: $out"
# The DUT's labels win over the exporter's.
echo "$out" | grep -Eq '^lab1/dut2 +online +model=widget,site=lab,vendor=other ' || fail "dut2 row: $out"
as "$T/alice.yaml" get exporters -o json | $PY -c 'import json,sys; e = json.load(sys.stdin); assert e[0]["name"] == "lab1"' ||
        fail "exporters -o json"

# --- leases -----------------------------------------------------------------------------------------
out=$(as "$T/alice.yaml" lease create --selector model=widget --duration 30m --name l1 --meta ci=42) ||
        fail "lease create: $out"
echo "$out" | grep -q '^NAME  *STATE  *EXPORTER/DUT  *SELECTOR  *BEGIN  *END  *REASON' || fail "lease header: $out"
echo "$out" | grep -Eq '^l1 +active +lab1/dut[12] +model=widget +20' || fail "lease row: $out"
as "$T/alice.yaml" lease create --selector model=widget --duration 30m -o json > "$T/l2.json" || fail "second lease"
L2=$($PY -c 'import json,sys; l = json.load(open(sys.argv[1])); assert l["state"] == "active"; print(l["name"])' "$T/l2.json") ||
        fail "lease -o json"
as "$T/alice.yaml" lease list | grep -Eq "^$L2 +active" || fail "lease list"
as "$T/alice.yaml" lease list -o json > "$T/list.json"
$PY -c "import json,sys; assert len(json.load(open(sys.argv[1]))) == 2" "$T/list.json" || fail "list json: $(cat "$T/list.json")"
as "$T/alice.yaml" get exporters | grep -Eq '^lab1/dut1 .* (l1|'"$L2"')$' || fail "LEASE column"

expect_error "Conflict" as "$T/alice.yaml" lease create --selector model=widget --duration 5m --name l1
expect_error "Unsatisfiable" as "$T/alice.yaml" lease create --selector 'a=1,a=2' --duration 5m
expect_error "InvalidSelector" as "$T/alice.yaml" lease create --selector 'a in x' --duration 5m
rc 1 as "$T/alice.yaml" lease create --selector 'a=1,a=2' --duration 5m

old_end=$(as "$T/alice.yaml" lease list -o json | $PY -c 'import json,sys; print([l["end"] for l in json.load(sys.stdin) if l["name"] == "l1"][0])')
as "$T/alice.yaml" lease extend l1 --by 15m | grep -q "Lease l1 now ends at" || fail "extend"
new_end=$(as "$T/alice.yaml" lease list -o json | $PY -c 'import json,sys; print([l["end"] for l in json.load(sys.stdin) if l["name"] == "l1"][0])')
[[ "$new_end" > "$old_end" ]] || fail "extend did not move the end: $old_end -> $new_end"

# Another client sees nothing of alice's, and cannot touch it.
expect_error "NotFound" as "$T/bob.yaml" lease release l1
expect_error "NotFound" as "$T/bob.yaml" lease extend l1 --by 5m
as "$T/bob.yaml" lease list 2>&1 | grep -q "No leases" || fail "bob sees leases"
expect_error "NotFound" as "$T/alice.yaml" lease release nosuch

# A pending lease, without --wait: printed, queued, not an error.
out=$(as "$T/bob.yaml" lease create --selector model=widget --duration 5m --name p1 2>&1) || fail "pending create: $out"
echo "$out" | grep -Eq '^p1 +pending .*ExportersBusy, position 1 in queue' || fail "pending row: $out"
expect_error "Conflict" as "$T/bob.yaml" lease extend p1 --by 5m
as "$T/bob.yaml" lease release p1 | grep -q "Lease p1 released" || fail "release pending"

# --wait: progress while pending, then the lease once a DUT is free.
# (jmp itself in the background, not a function's subshell: the signals below go to it.)
"$JMP" --client-config "$T/bob.yaml" lease create --selector model=widget --duration 5m --name w1 --wait 5m \
        > "$T/w1.out" 2> "$T/w1.err" &
W1=$!
TEST_PIDS="$TEST_PIDS $W1"
wait_for grep -q "waiting: ExportersBusy, position 1 in queue" "$T/w1.err" || fail "no progress: $(cat "$T/w1.err")"
alive "$W1" || fail "lease create --wait returned while pending"
as "$T/alice.yaml" lease release l1 | grep -q "Lease l1 released" || fail "release l1"
rc=0; wait "$W1" || rc=$?
[ "$rc" = 0 ] || fail "lease create --wait exited $rc: $(cat "$T/w1.err")"
grep -Eq '^w1 +active +lab1/dut' "$T/w1.out" || fail "waited lease: $(cat "$T/w1.out")"

# --wait that runs out: the lease is released, and the command fails saying so.
out=$(as "$T/bob.yaml" lease create --selector model=widget --duration 5m --name w2 --wait 1s 2>&1) &&
        fail "--wait 1s succeeded: $out"
[[ "$out" == *"no DUT for lease w2 within 1s (ExportersBusy, position 1 in queue)"* ]] || fail "wait ran out: $out"
as "$ADMIN" get leases -o json | $PY -c 'import json,sys; assert "w2" not in [l["name"] for l in json.load(sys.stdin)]' ||
        fail "w2 still queued"

# Ctrl-C while waiting releases the pending lease.
"$JMP" --client-config "$T/bob.yaml" lease create --selector model=widget --duration 5m --name w3 --wait 5m \
        > /dev/null 2> "$T/w3.err" &
W3=$!
TEST_PIDS="$TEST_PIDS $W3"
wait_for grep -q "waiting:" "$T/w3.err" || fail "w3 not waiting: $(cat "$T/w3.err")"
kill -INT "$W3"
rc=0; wait "$W3" || rc=$?
[ "$rc" = 1 ] || fail "interrupted lease create exited $rc"
grep -q "interrupted; released the pending lease w3" "$T/w3.err" || fail "w3: $(cat "$T/w3.err")"
as "$ADMIN" get leases -o json | $PY -c 'import json,sys; assert "w3" not in [l["name"] for l in json.load(sys.stdin)]' ||
        fail "w3 still queued"

# An admin sees everyone's leases, with the client and metadata.
out=$(as "$ADMIN" get leases)
echo "$out" | grep -q '^NAME  *CLIENT  *STATE  *EXPORTER/DUT  *SELECTOR  *BEGIN  *END  *REASON  *METADATA' ||
        fail "get leases header: $out"
echo "$out" | grep -Eq "^$L2 +alice +active " || fail "alice's lease in get leases: $out"
echo "$out" | grep -Eq '^w1 +bob +active ' || fail "bob's lease in get leases: $out"
as "$ADMIN" get leases --history | grep -Eq '^l1 +alice +ended .* Released +ci=42' || fail "history"
# An admin ending another client's lease revokes it.
as "$ADMIN" lease release w1 | grep -q "Lease w1 revoked" || fail "admin release"

# --wait across a controller restart (kill -9): jmp follows the lease again when the controller is
# back, and gets it once a DUT is free.
as "$T/alice.yaml" lease create --selector model=widget --duration 30m --name l3 >/dev/null || fail "l3"
"$JMP" --client-config "$T/bob.yaml" lease create --selector model=widget --duration 5m --name w4 --wait 5m \
        > "$T/w4.out" 2> "$T/w4.err" &
W4=$!
TEST_PIDS="$TEST_PIDS $W4"
wait_for grep -q "waiting: ExportersBusy" "$T/w4.err" || fail "w4 not waiting: $(cat "$T/w4.err")"
kill -9 "$CTL_PID"
wait "$CTL_PID" 2>/dev/null || true
start_controller
register_exporter
alive "$W4" || fail "lease create --wait gave up when the controller went away: $(cat "$T/w4.err")"
as "$T/alice.yaml" lease release l3 >/dev/null || fail "release l3 after the restart"
rc=0; wait "$W4" || rc=$?
[ "$rc" = 0 ] || fail "lease create --wait across a restart exited $rc: $(cat "$T/w4.err")"
grep -Eq '^w4 +active +lab1/dut' "$T/w4.out" || fail "w4: $(cat "$T/w4.out")"

# --- transport errors -------------------------------------------------------------------------------
$PY - "$T/alice.yaml" "$T/other.pem" "$T/alice-wrongca.yaml" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
pem = open(sys.argv[2]).read().replace("\n", "\\n")
out = [('  ca: "%s"' % pem) if l.startswith("  ca: ") else l for l in lines]
open(sys.argv[3], "w").write("\n".join(out) + "\n")
EOF
expect_error "cannot reach the controller at https://127.0.0.1:$PORT/v1" as "$T/alice-wrongca.yaml" lease list

# --- tokens: deleted clients and retired keys -------------------------------------------------------
as "$ADMIN" admin delete client bob | grep -q "Client bob deleted" || fail "delete bob"
out=$(as "$T/bob.yaml" lease list 2>&1) && fail "a deleted client's token still works"
[[ "$out" == *"Unauthorized"* && "$out" == *"revoked"* ]] || fail "deleted client: $out"
expect_error "NotFound" as "$ADMIN" admin delete client bob

out=$(as "$ADMIN" admin rotate-key) || fail "rotate-key: $out"
NEW_KID=$(echo "$out" | sed -n 's/^Signing key \([0-9a-f]\{16\}\) is active.$/\1/p')
OLD_KID=$(echo "$out" | sed -n "s/^Key \([0-9a-f]\{16\}\) verifies .*/\1/p")
[ -n "$NEW_KID" ] && [ -n "$OLD_KID" ] || fail "rotate-key said: $out"
expect_error "Conflict" as "$ADMIN" admin retire-key "$NEW_KID"
# Tokens of the old key still work until it is retired; a new admin gets a token of the new key.
as "$T/alice.yaml" lease list >/dev/null || fail "old key's token refused before retirement"
as "$ADMIN" admin create client admin2 --admin -o "$T/admin2.yaml" >/dev/null || fail "admin2"
as "$T/admin2.yaml" admin retire-key "$OLD_KID" | grep -q "Key $OLD_KID is retired" || fail "retire-key"
out=$(as "$T/alice.yaml" lease list 2>&1) && fail "a retired key's token still works"
[[ "$out" == *"Unauthorized"* && "$out" == *"retired-key"* ]] || fail "retired key: $out"

# --- exporters go ----------------------------------------------------------------------------------
as "$T/admin2.yaml" admin delete exporter lab1 | grep -q "Exporter lab1 deleted" || fail "delete exporter"
as "$T/admin2.yaml" get exporters 2>&1 | grep -q "No exporters" || fail "exporter still listed"

# --- the controller is gone ------------------------------------------------------------------------
kill "$CTL_PID"
wait "$CTL_PID" 2>/dev/null || true
expect_error "cannot reach the controller at https://127.0.0.1:$PORT/v1" as "$T/admin2.yaml" lease list
rc 1 as "$T/admin2.yaml" lease list

echo PASS
