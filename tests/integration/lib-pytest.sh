# Shared set-up for the pytest, Robot and CI example tests: the package on PYTHONPATH, Debian's
# pytest, and (pytest_lab) a real controller over TLS with one exporter serving a simulated board
# and a client's ClientConfig, as agent-leases.sh has them on one machine.
# shellcheck shell=bash

PYTEST=/usr/bin/pytest
[ -x "$PYTEST" ] || fail "Debian's pytest is not installed (apt-get install python3-pytest)"
export PYTHONPATH=$SOURCE_ROOT/python${PYTHONPATH:+:$PYTHONPATH}
# No caches in the source tree.
export PYTHONDONTWRITEBYTECODE=1
export PYTEST_ADDOPTS="-p no:cacheprovider ${PYTEST_ADDOPTS:-}"
export JMP_MOUNTPOINT=$MNT

: "${JUMPSTARTERD:?JUMPSTARTERD must name the jumpstarterd binary (meson test sets it)}"

# pytest_lab: the controller, exporter lab1 with dut1 (vendor=acme, model=widget-v2) on its own
# mount $T/emnt, and client alice's ClientConfig in $T/alice.yaml (exported as JMP_CLIENT_CONFIG).
pytest_lab() {
        PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        API=https://127.0.0.1:$PORT/v1
        STATE=$T/controller-state
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=controller \
                -addext subjectAltName=IP:127.0.0.1 -keyout "$T/controller.key" -out "$T/controller.pem" \
                2>/dev/null || fail "openssl could not make the controller's certificate"
        cat > "$T/controller.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ControllerConfig
metadata:
  name: lab
listen: "127.0.0.1:$PORT"
tls:
  certificate: controller.pem
  key: controller.key
stateDirectory: $STATE
YAML
        "$JUMPSTARTERD" --config "$T/controller.yaml" >> "$T/controller.log" 2>&1 &
        CONTROLLER_PID=$!
        TEST_PIDS="${TEST_PIDS:-} $CONTROLLER_PID"
        wait_for curl -sf --cacert "$T/controller.pem" "$API/healthz" ||
                fail "the controller did not start: $(tail "$T/controller.log")"

        ADMIN=$(sed -n 's/^token: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$STATE/admin-client.yaml")
        [ -n "$ADMIN" ] || fail "no admin token"
        local exporter_token alice
        exporter_token=$(lab_api POST /exporters '{"name": "lab1", "labels": {"site": "t"}}' | lab_json 'd["token"]')
        [ -n "$exporter_token" ] || fail "creating the exporter failed"
        alice=$(lab_api POST /clients '{"name": "alice"}' | lab_json 'd["token"]')
        [ -n "$alice" ] || fail "creating the client failed"

        cat > "$T/exporter.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: lab1
endpoint: "127.0.0.1:$PORT"
token: "$exporter_token"
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
        trap pytest_lab_cleanup EXIT
        "$JMP" local start --config "$T/exporter.yaml" --mountpoint "$T/emnt" >/dev/null ||
                fail "the exporter did not start"
        ELOG=$(echo "$JMP_RUNTIME_DIR"/local/*-emnt/jumpstarterd.log)
        wait_for grep -q 'Linked up with controller' "$ELOG" || fail "the exporter did not link up: $(tail "$ELOG")"

        cat > "$T/alice.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ClientConfig
metadata: {name: alice, namespace: default}
endpoint: "127.0.0.1:$PORT"
tls: {ca: controller.pem, insecure: false}
token: "$alice"
YAML
        chmod 600 "$T/alice.yaml"
        export JMP_CLIENT_CONFIG=$T/alice.yaml
}

pytest_lab_cleanup() {
        local rc=$?
        set +e
        "$JMP" local stop --mountpoint "$T/emnt" >/dev/null 2>&1
        (exit "$rc")
        cleanup
}

# lab_api METHOD PATH [BODY]: the admin's call; prints the body.
lab_api() {
        local method=$1 path=$2 body=${3:-}
        curl -s --cacert "$T/controller.pem" -H "Authorization: Bearer $ADMIN" -X "$method" \
             ${body:+-H "Content-Type: application/json" --data "$body"} "$API$path"
}
lab_json() { $PY -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }

# live_leases: the names of alice's live leases, one a line (jmp lease list, as a user checks).
live_leases() {
        "$JMP" lease list -o json 2>/dev/null | $PY -c 'import json, sys; [print(l["name"]) for l in json.load(sys.stdin)]'
}
