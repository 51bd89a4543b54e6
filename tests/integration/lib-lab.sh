# A lab on one machine for the multi-host tests: network namespaces for the hosts, TLS
# certificates, and helpers to run a controller, exporters and client hosts in them.
# Source after lib.sh.
# shellcheck shell=bash

: "${JUMPSTARTERD:?JUMPSTARTERD must name the jumpstarterd binary (meson test sets it)}"

if ! ip netns add "jmp-probe-$$" 2>/dev/null; then
        echo "SKIP: this kernel cannot make network namespaces"
        exit 77
fi
ip netns delete "jmp-probe-$$"

# Namespace names carry the test's pid, so that parallel runs and leftovers never collide.
LAB=jl$$
LAB_NETNS=""
LAB_PIDS=""
LAB_LOGS=""

lab_cleanup() {
        local p ns l
        for p in $LAB_PIDS; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
        for ns in $LAB_NETNS; do ip netns delete "$ns" 2>/dev/null; done
        # lib.sh's cleanup() calls this with its exit code in $rc: on failure, the hosts' logs.
        if [ "${rc:-0}" -ne 0 ] && [ "${rc:-0}" -ne 77 ]; then
                for l in $LAB_LOGS; do
                        [ -e "$l" ] && { echo "--- $l"; tail -n 60 "$l"; }
                done
        fi
}

# lab_net NAME SUBNET: a switch (a bridge in its own namespace) for 10.SUBNET.0.0/24.
lab_net() {
        local ns=$LAB-$1
        ip netns add "$ns"
        LAB_NETNS="$LAB_NETNS $ns"
        ip -n "$ns" link add br0 type bridge
        ip -n "$ns" link set br0 up
        ip -n "$ns" link set lo up
}

# lab_host NAME: a host (a namespace with only loopback so far).
lab_host() {
        local ns=$LAB-$1
        ip netns add "$ns"
        LAB_NETNS="$LAB_NETNS $ns"
        ip -n "$ns" link set lo up
}

# lab_link HOST NET ADDRESS: plugs HOST into NET's switch with ADDRESS/24.
lab_link() {
        local host=$LAB-$1 net=$LAB-$2 addr=$3 dev n
        n=$(ip -n "$host" -o link 2>/dev/null | grep -c ' eth') || true
        dev=eth$n
        ip link add "$LAB-v$$" type veth peer name "$dev" netns "$host"
        ip link set "$LAB-v$$" netns "$net"
        ip -n "$net" link set "$LAB-v$$" name "p-$1" master br0 up
        ip -n "$host" addr add "$addr/24" dev "$dev"
        ip -n "$host" link set "$dev" up
}

# on HOST COMMAND...: runs COMMAND in HOST's network namespace only (nsenter, not "ip netns exec":
# that one also makes a new mount namespace, which would hide a FUSE mount made there).
on() {
        local host=$1
        shift
        nsenter --net="/run/netns/$LAB-$host" "$@"
}

# lab_bg HOST LOG COMMAND...: starts COMMAND in HOST in the background, output to LOG; sets
# LAB_PID and remembers it for cleanup.
lab_bg() {
        local host=$1 log=$2
        shift 2
        nsenter --net="/run/netns/$LAB-$host" "$@" >"$log" 2>&1 &
        LAB_PID=$!
        LAB_PIDS="$LAB_PIDS $LAB_PID"
        case " $LAB_LOGS " in *" $log "*) ;; *) LAB_LOGS="$LAB_LOGS $log" ;; esac
}

# lab_certs DIR NAME IP...: a self-signed certificate for NAME valid for the given IPs:
# DIR/NAME.pem, DIR/NAME.key.
lab_certs() {
        local dir=$1 name=$2 san="" ip
        shift 2
        for ip in "$@"; do san="${san:+$san,}IP:$ip"; done
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
                -subj "/CN=$name" -addext "subjectAltName=$san" \
                -keyout "$dir/$name.key" -out "$dir/$name.pem" 2>/dev/null
        chmod 600 "$dir/$name.key"
}

# lab_wait COMMAND...: wait_for with a bound of 60 s, for what waits on the controller's exporter
# timeout (10 s) or a reconnect backoff. A guard against hanging, not a timing test.
lab_wait() {
        for _ in $(seq 1 600); do
                if "$@" >/dev/null 2>&1; then
                        return 0
                fi
                sleep 0.1
        done
        return 1
}

# lab_answers HOST CA URL PID: URL answers from HOST; if PID died, stops a lab_wait at once (exit).
lab_answers() {
        alive "$4" || fail "process $4 is gone"
        on "$1" curl -sf --cacert "$2" "$3"
}

# lab_controller HOST ADDRESS DIR: a controller on HOST listening on ADDRESS:8443 with a certificate
# for ADDRESS made here (DIR/controller.pem), its ControllerConfig DIR/controller.yaml and its state
# in DIR/state; waits until it answers. Sets LAB_CTL_PID; the first admin's ClientConfig is
# DIR/state/admin-client.yaml. Run again (after a kill) to restart it on the same state.
lab_controller() {
        local host=$1 addr=$2 dir=$3
        if [ ! -e "$dir/controller.yaml" ]; then
                mkdir -p "$dir"
                lab_certs "$dir" controller "$addr"
                cat > "$dir/controller.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ControllerConfig
metadata:
  name: lab
listen: "$addr:8443"
tls:
  certificate: controller.pem
  key: controller.key
stateDirectory: state
YAML
        fi
        nsenter --net="/run/netns/$LAB-$host" "$JUMPSTARTERD" --config "$dir/controller.yaml" >>"$dir/controller.log" 2>&1 &
        LAB_CTL_PID=$!
        LAB_PIDS="$LAB_PIDS $LAB_CTL_PID"
        case " $LAB_LOGS " in *" $dir/controller.log "*) ;; *) LAB_LOGS="$LAB_LOGS $dir/controller.log" ;; esac
        lab_wait lab_answers "$host" "$dir/controller.pem" "https://$addr:8443/v1/healthz" "$LAB_CTL_PID" ||
                fail "the controller on $host did not come up: $(tail "$dir/controller.log")"
}
