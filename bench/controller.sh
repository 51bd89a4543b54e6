#!/usr/bin/env bash
# Controller under load: a real controller over TLS in a temp state dir, 1,000 simulated exporters
# (status PUT + heartbeats) and 100 clients cycling leases (bench/controller-load.c).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
JUMPSTARTERD=$BUILD/jumpstarterd/jumpstarterd
LOAD=$BUILD/bench/controller-load
[ -x "$JUMPSTARTERD" ] && [ -x "$LOAD" ] || { echo "build first: meson setup build && meson compile -C build" >&2; exit 1; }

T=$(mktemp -d /var/tmp/jmp-bench-controller.XXXXXX)
CTL=
cleanup() {
        set +e
        [ -n "$CTL" ] && { kill "$CTL" 2>/dev/null; wait "$CTL" 2>/dev/null || true; }
        rm -rf "$T"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/controller.key" \
        -out "$T/controller.pem" -days 2 -subj /CN=jumpstarter-bench -addext subjectAltName=IP:127.0.0.1 2>/dev/null
cat > "$T/controller.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ControllerConfig
metadata:
  name: bench
listen: "127.0.0.1:0"
tls:
  certificate: controller.pem
  key: controller.key
stateDirectory: state
YAML
"$JUMPSTARTERD" --config "$T/controller.yaml" > "$T/controller.log" 2>&1 &
CTL=$!
for _ in $(seq 1 100); do [ -s "$T/state/admin-client.yaml" ] && break; sleep 0.1; done
ENDPOINT=$(sed -n 's/^endpoint: "\(.*\)"$/\1/p' "$T/state/admin-client.yaml")
ADMIN=$(sed -n 's/^token: "\(.*\)"$/\1/p' "$T/state/admin-client.yaml")
[ -n "$ENDPOINT" ] && [ -n "$ADMIN" ] || { cat "$T/controller.log" >&2; echo "the controller did not start" >&2; exit 1; }
for _ in $(seq 1 100); do curl -sf --cacert "$T/controller.pem" "https://$ENDPOINT/v1/healthz" >/dev/null && break; sleep 0.1; done

echo "controller at https://$ENDPOINT (state in $T/state, $(nproc) CPUs)"
"$LOAD" "$@" "https://$ENDPOINT" "$T/controller.pem" "$ADMIN" || {
        tail -n 30 "$T/controller.log" >&2
        exit 1
}
echo "controller: $(ps -o cputime= -p "$CTL" | tr -d ' ') CPU time, $(awk '/VmHWM/ { print $2 / 1024 " MiB" }' "/proc/$CTL/status") peak RSS, store log $(du -h "$T/state/store/log" | cut -f1)"
