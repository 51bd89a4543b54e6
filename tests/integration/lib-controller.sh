# Shared set-up for the tests that run a controller (jumpstarterd with a ControllerConfig) over real
# TLS. Source it after lib.sh. It sets:
#   PORT      a free port on 127.0.0.1; URL=https://127.0.0.1:$PORT, API=$URL/v1
#   CERT KEY  a self-signed certificate (and its key) for 127.0.0.1, made here
#   STATE     the controller's state directory; CTL_LOG its log; CTL_PID once started
# and writes $T/controller.yaml. Then: start_controller, stop_controller, admin_token, api, json.
# shellcheck shell=bash

: "${JUMPSTARTERD:?JUMPSTARTERD must name the jumpstarterd binary (meson test sets it)}"

# A free port: bind 0, read it, let go.
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=https://127.0.0.1:$PORT
API=$URL/v1
CERT=$T/controller.pem
KEY=$T/controller.key
STATE=$T/state
CTL_LOG=$T/controller.log
CTL_PID=

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=controller \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$KEY" -out "$CERT" 2>/dev/null \
        || fail "openssl could not make the controller's certificate"
chmod 600 "$KEY"

# write_controller_config [EXTRA_YAML]: $T/controller.yaml, with EXTRA_YAML (top-level keys) appended.
write_controller_config() {
        cat > "$T/controller.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ControllerConfig
metadata:
  name: lab
listen: "127.0.0.1:$PORT"
tls:
  certificate: $CERT
  key: $KEY
stateDirectory: $STATE
${1:-}
YAML
}
write_controller_config

start_controller() {
        "$JUMPSTARTERD" --config "$T/controller.yaml" >> "$CTL_LOG" 2>&1 &
        CTL_PID=$!
        TEST_PIDS="${TEST_PIDS:-} $CTL_PID"
        wait_for curl -sf --cacert "$CERT" "$API/healthz" ||
                fail "the controller did not start: $(tail "$CTL_LOG")"
}

stop_controller() {
        kill "$CTL_PID"
        wait "$CTL_PID" 2>/dev/null || true
}

# The token of the admin client that the first start made (in $STATE/admin-client.yaml).
admin_token() {
        local t
        t=$(sed -n 's/^token: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$STATE/admin-client.yaml")
        [ -n "$t" ] || fail "no admin token in $STATE/admin-client.yaml"
        echo "$t"
}

# api TOKEN METHOD PATH [BODY]: prints the body; the status goes to $T/status (PATH below /v1).
api() {
        local token=$1 method=$2 path=$3 body=${4:-}
        curl -s --cacert "$CERT" -H "Authorization: Bearer $token" -X "$method" \
             ${body:+-H "Content-Type: application/json" --data "$body"} -o "$T/body" -w '%{http_code}' \
             "$API$path" > "$T/status"
        cat "$T/body"
}

# json EXPR: a Python expression over the JSON d read from stdin.
json() { $PY -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }
