#!/usr/bin/env bash
# Routed streams (docs/protocol.md "Routed streams"): the exporter is in the lab network, the client in
# the office network, and only the controller is in both. The client's agent cannot reach the exporter's
# stream listener, so its streams go through the controller's router: power, serial.log, the serial
# terminal and storage work through it; forged and expired tokens are refused at the router without a
# dial; the lease ending cuts the routed streams; an exporter that dies makes the files fail at once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-lab.sh"
: "${JMP_MINT_TOKEN:?}"

unset JMP_CLIENT_CONFIG XDG_CONFIG_HOME
export HOME=$T/home
mkdir -p "$HOME"

lab_net lab
lab_net office
lab_host ctl
lab_host exp
lab_host cli
lab_link ctl lab 10.1.0.1
lab_link exp lab 10.1.0.2
lab_link ctl office 10.2.0.1
lab_link cli office 10.2.0.3

# --- the controller, on both networks, with its router ---------------------------------------------
CTL=$T/ctl
mkdir -p "$CTL"
lab_certs "$CTL" controller 10.1.0.1 10.2.0.1
cat > "$CTL/controller.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ControllerConfig
metadata:
  name: lab
listen: "0.0.0.0:8443"
tls:
  certificate: controller.pem
  key: controller.key
stateDirectory: state
router:
  listen: "0.0.0.0:8444"
YAML
lab_bg ctl "$CTL/controller.log" "$JUMPSTARTERD" --config "$CTL/controller.yaml" --debug
CTL_PID=$LAB_PID
lab_wait on ctl curl -sf --cacert "$CTL/controller.pem" https://10.1.0.1:8443/v1/healthz ||
        fail "the controller did not come up: $(tail "$CTL/controller.log")"
grep -q 'Routing data streams on 0.0.0.0:8444' "$CTL/controller.log" || fail "no router: $(tail "$CTL/controller.log")"

ADMIN=$(sed -n 's/^token: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$CTL/state/admin-client.yaml")
[ -n "$ADMIN" ] || fail "no admin token"
# api HOST URL-BASE TOKEN METHOD PATH [BODY]: prints the body; the status goes to $T/status.
api() {
        local host=$1 base=$2 token=$3 method=$4 path=$5 body=${6:-}
        on "$host" curl -s --cacert "$CTL/controller.pem" -H "Authorization: Bearer $token" -X "$method" \
                ${body:+-H "Content-Type: application/json" --data "$body"} -o "$T/body" -w '%{http_code}' \
                "$base$path" > "$T/status"
        cat "$T/body"
}
json() { $PY -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }
EXPORTER_TOKEN=$(api ctl https://10.1.0.1:8443/v1 "$ADMIN" POST /exporters '{"name": "lab1"}' | json 'd["token"]')
[ "$(cat "$T/status")" = 201 ] || fail "creating the exporter: $(cat "$T/body")"
ALICE=$(api ctl https://10.1.0.1:8443/v1 "$ADMIN" POST /clients '{"name": "alice"}' | json 'd["token"]')
[ "$(cat "$T/status")" = 201 ] || fail "creating the client: $(cat "$T/body")"

# --- the exporter, in the lab ---------------------------------------------------------------------------
IMG=$T/exporter.img
cat > "$T/exporter.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: lab1
endpoint: "10.1.0.1:8443"
token: "$EXPORTER_TOKEN"
tls:
  ca: ctl/controller.pem
streams:
  listen: "10.1.0.2:0"
export:
  dut1:
    type: sim
    labels: {model: widget}
    config:
      storage: $IMG
      size: 4MiB
      boot_time: 200ms
YAML
lab_bg exp "$T/exporter.log" "$JUMPSTARTERD" --config "$T/exporter.yaml" --listen "$T/exporter.sock" --debug
EXP_PID=$LAB_PID
lab_wait grep -q 'Linked up with controller' "$T/exporter.log" || fail "the exporter did not link up: $(tail "$T/exporter.log")"
STREAMS=$(sed -n 's/.*Serving data streams on \([^,]*\),.*/\1/p' "$T/exporter.log")
[ -n "$STREAMS" ] || fail "no stream listener in the exporter's log"
# The premise: the client host cannot reach the exporter's stream listener.
if on cli timeout 5 bash -c "exec 3<>/dev/tcp/${STREAMS%:*}/${STREAMS##*:}" 2>/dev/null; then
        fail "the client host reaches the exporter at $STREAMS: the lab is wired wrong"
fi

# --- the client's agent, in the office --------------------------------------------------------------------
cat > "$T/alice.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ClientConfig
metadata: {name: alice, namespace: default}
endpoint: "10.2.0.1:8443"
tls: {ca: ctl/controller.pem, insecure: false}
token: "$ALICE"
YAML
on cli "$JMP" local start --config "$T/alice.yaml" --mountpoint "$MNT" >/dev/null || fail "the agent did not start"
LOG=$(echo "$JMP_RUNTIME_DIR"/local/*-jmp/jumpstarterd.log)
alice() { on cli "$JMP" --client-config "$T/alice.yaml" "$@"; }

echo "--- a lease taken on the client host shows up and its files work through the router"
alice lease create --selector model=widget --duration 30m --name board1 >/dev/null || fail "lease board1"
lab_wait test -d "$MNT/board1" || fail "/jmp/board1 did not appear: $(tail "$LOG")"
# The token answer names the router at the address the client reached the controller at.
api cli https://10.2.0.1:8443/v1 "$ALICE" POST /leases/board1/token '{}' | json 'd["router"]' > "$T/router"
[ "$(cat "$T/router")" = 10.2.0.1:8444 ] || fail "the token answer's router: $(cat "$T/body")"

lab_wait grep -qx off "$MNT/board1/power" || fail "board1's power never became known: $(tail "$LOG")"
grep -q "board1: The exporter at $STREAMS cannot be reached directly; its streams go through the router at 10.2.0.1:8444" \
        "$LOG" || fail "the agent did not say it went through the router: $(tail "$LOG")"
grep -q "Routed stream .* joined to exporter lab1 (10.1.0.2:[0-9]*), DUT dut1, lease board1" "$CTL/controller.log" ||
        fail "the controller joined no routed stream: $(tail "$CTL/controller.log")"
# The exporter dialed the router at the address it reached the controller at.
grep -q "Dialing the router at 10.1.0.1:8444" "$T/exporter.log" || fail "the exporter did not dial 10.1.0.1:8444"

echo on > "$MNT/board1/power" || fail "powering board1 on through the router"
[ "$(cat "$MNT/board1/power")" = on ] || fail "board1 is $(cat "$MNT/board1/power")"
lab_wait grep -q 'boot complete' "$MNT/board1/serial.log" || fail "board1's console: $(tail "$LOG")"

timeout 60 "$PY" - "$MNT/board1/serial" <<'PY' || fail "serial terminal round trip through the router failed"
import serial, sys
s = serial.Serial(sys.argv[1], 115200, timeout=20)
s.write(b"\r")
s.read_until(b"# ")
s.write(b"echo hello through the router\r")
line = s.read_until(b"hello through the router\r\n")
assert line.endswith(b"hello through the router\r\n"), line
print("pyserial ok")
PY

echo off > "$MNT/board1/power" || fail "powering board1 off"
head -c $((3 << 20)) /dev/urandom > "$T/image"
dd if="$T/image" of="$MNT/board1/storage" bs=1M conv=fsync,notrunc status=none || fail "dd through the router failed"
cmp -n $((3 << 20)) "$T/image" "$IMG" || fail "the exporter's image is not what dd wrote through the router"
cmp -n $((3 << 20)) "$T/image" "$MNT/board1/storage" || fail "storage does not read back through the router"
# The exporter's rules come back through the router: storage is busy while powered.
echo on > "$MNT/board1/power"
expect_error "Device or resource busy" dd if=/dev/zero of="$MNT/board1/storage" bs=4k count=1 conv=notrunc status=none
echo off > "$MNT/board1/power"

echo "--- forged and expired tokens are refused at the router, without a dial"
# route REQUEST-JSON: sends one request line to the router from the client host, prints the answer line.
route() {
        on cli timeout 20 "$PY" - "$CTL/controller.pem" "$1" <<'PY'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("10.2.0.1", 8444), timeout=15) as raw:
    with ctx.wrap_socket(raw, server_hostname="10.2.0.1") as s:
        s.sendall(sys.argv[2].encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        print(data.decode().strip())
PY
}
n_dials() { grep -c 'Dialing the router' "$T/exporter.log" || true; }
DIALS=$(n_dials)
FORGED=$("$JMP_MINT_TOKEN" --keyring "$T/other-keyring" --create --issuer lab --audience exporter/lab1 --dut dut1 \
        --lease board1)
EXPIRED=$("$JMP_MINT_TOKEN" --keyring "$CTL/state/keyring" --issuer lab --audience exporter/lab1 --subject alice \
        --kind stream --dut dut1 --lease board1 --verbs "power serial storage" --expired)
route "{\"token\": \"$FORGED\", \"dut\": \"dut1\", \"stream\": \"control\", \"route\": true}" > "$T/answer"
json 'd["reason"]' < "$T/answer" | grep -qx Unauthorized || fail "a forged token at the router: $(cat "$T/answer")"
route "{\"token\": \"$EXPIRED\", \"dut\": \"dut1\", \"stream\": \"control\", \"route\": true}" > "$T/answer"
json 'd["reason"], d["detail"]' < "$T/answer" | grep -qx "('Unauthorized', 'expired')" ||
        fail "an expired token at the router: $(cat "$T/answer")"
GOOD=$(cat "$JMP_RUNTIME_DIR"/local/*-jmp/leases/board1.token)
route "{\"token\": \"$GOOD\", \"dut\": \"dut1\", \"stream\": \"control\"}" > "$T/answer"
json 'd["reason"]' < "$T/answer" | grep -qx BadRequest || fail "a request without route at the router: $(cat "$T/answer")"
route "{\"token\": \"$GOOD\", \"dut\": \"dut2\", \"stream\": \"control\", \"route\": true}" > "$T/answer"
json 'd["reason"]' < "$T/answer" | grep -qx NotFound || fail "a token for another DUT at the router: $(cat "$T/answer")"
[ "$(n_dials)" = "$DIALS" ] || fail "the exporter was asked to dial for a refused request"
# ... while a good one is joined, and the exporter answers it end to end.
route "{\"token\": \"$GOOD\", \"dut\": \"dut1\", \"stream\": \"control\", \"route\": true}" > "$T/answer"
json 'd["ok"]' < "$T/answer" | grep -qx True || fail "a good routed request: $(cat "$T/answer")"

echo "--- the lease ending cuts its routed streams"
# A routed control stream held open, which reports when it is cut.
on cli timeout 60 "$PY" - "$CTL/controller.pem" \
        "{\"token\": \"$GOOD\", \"dut\": \"dut1\", \"stream\": \"control\", \"route\": true}" \
        > "$T/held" 2>&1 <<'PY' &
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("10.2.0.1", 8444), timeout=50) as raw:
    with ctx.wrap_socket(raw, server_hostname="10.2.0.1") as s:
        s.sendall(sys.argv[2].encode() + b"\n")
        f = s.makefile("rb")
        print(f.readline().decode().strip(), flush=True)
        try:
            while f.read(4096):
                pass
        except (ssl.SSLError, OSError):
            pass
        print("cut", flush=True)
PY
HELD=$!
TEST_PIDS="${TEST_PIDS:-} $HELD"
lab_wait grep -q '"ok": *true' "$T/held" || fail "the held routed stream was not answered: $(cat "$T/held")"
alice lease release board1 >/dev/null || fail "releasing board1"
lab_wait grep -qx cut "$T/held" || fail "the lease ended but its routed stream stayed open"
grep -q 'Lease board1 ended, closing [0-9]* routed stream' "$CTL/controller.log" ||
        fail "the router did not cut board1's streams: $(tail "$CTL/controller.log")"
lab_wait test ! -e "$MNT/board1" || fail "/jmp/board1 stayed after its lease ended"

echo "--- an exporter that goes away: the files fail at once, nothing hangs"
alice lease create --selector model=widget --duration 30m --name board2 >/dev/null || fail "lease board2"
lab_wait test -d "$MNT/board2" || fail "/jmp/board2 did not appear: $(tail "$LOG")"
lab_wait grep -qx off "$MNT/board2/power" || fail "board2's power never became known: $(tail "$LOG")"
echo on > "$MNT/board2/power" || fail "powering board2 on through the router"
# Stopped for good (SIGTERM: it powers its DUTs off and exits, closing every connection it had).
kill -TERM "$EXP_PID"
wait "$EXP_PID" || fail "the exporter exited with $?"
expect_error "Host is down" timeout 15 bash -c "echo off > '$MNT/board2/power'"
expect_error "Host is down" timeout 15 dd if="$MNT/board2/storage" of=/dev/null bs=4k count=1 status=none
grep -q "Routed stream from .* refused: Unavailable: Exporter lab1 is offline" "$CTL/controller.log" ||
        fail "the router did not refuse with Unavailable: $(tail "$CTL/controller.log")"

alive "$CTL_PID" || fail "the controller died"
alive "$(cut -d' ' -f1 "$JMP_RUNTIME_DIR"/local/*-jmp/jumpstarterd.pid)" || fail "the agent died"
# The controller stops cleanly (a sanitizer build reports what it leaked, here).
kill -TERM "$CTL_PID"
wait "$CTL_PID" || fail "the controller exited with $?"
if grep -E 'ERROR: AddressSanitizer|ERROR: LeakSanitizer: detected|runtime error:' "$CTL/controller.log" \
        "$T/exporter.log"; then
        fail "sanitizer reports in the controller's or the exporter's log"
fi
echo PASS
