#!/usr/bin/env bash
# A remote DUT in direct mode on loopback (an exporter's data streams over TLS) versus local mode
# versus the peers: serial round trip by message size (1, 80, 1024 bytes) against a bare pty and
# ser2net, and storage throughput against dd to the backing file and socat over TLS.
. "$(dirname "$0")/lib.sh"
JUMPSTARTERD=$BUILD/jumpstarterd/jumpstarterd
MINT=$BUILD/tests/jmp-mint-token
MSG=$BUILD/bench/serial-msg
PY=/usr/bin/python3
MB=${MB:-1024}
COUNT=${COUNT:-2000}
for x in "$JUMPSTARTERD" "$MINT" "$MSG"; do [ -x "$x" ] || { echo "build first: $x is missing" >&2; exit 1; }; done
command -v ser2net >/dev/null && command -v socat >/dev/null || { echo "needs ser2net and socat" >&2; exit 1; }

PIDS=
trap 'set +e; for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null
      "$JMP" local stop --mountpoint "$MNT" >/dev/null 2>&1; umount -l "$MNT" 2>/dev/null; rm -rf "$T"' EXIT
bg() { "$@" & PIDS="$PIDS $!"; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 1 100); do [ -e "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; exit 1; }
wait_grep() { for _ in $(seq 1 100); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done; echo "no '$1' in $2" >&2; exit 1; }

# Echo boards: one pty each, echoed byte for byte; every path ends in one.
for b in bare local remote ser2net socat; do
        bg "$MSG" echo "$T/board-$b"
        wait_file "$T/board-$b"
done

# The exporter: an echo board on a tty serial driver, and a sim board for storage.
KR=$T/keyring
"$MINT" --keyring "$KR" --create --issuer lab --audience exporter/lab1 --dut echo --lease lease-echo > "$T/echo.token"
"$MINT" --keyring "$KR" --create --issuer lab --audience exporter/lab1 --dut disk --lease lease-disk > "$T/disk.token"
cat > "$T/exporter.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab1}
export:
  echo:
    serial: {type: tty, config: {path: $T/board-remote}}
  disk:
    type: sim
    config: {storage: $T/exporter.img, size: ${MB}MiB, boot_time: 100ms}
YAML
bg "$JUMPSTARTERD" --config "$T/exporter.yaml" --listen "$T/exporter.sock" --streams-listen 127.0.0.1:0 \
        --streams-keyring "$KR" --streams-issuer lab --streams-lease echo=lease-echo --streams-lease disk=lease-disk \
        > "$T/exporter.log" 2>&1
wait_grep "Serving data streams on" "$T/exporter.log"
ADDR=$(sed -n 's/.*Serving data streams on \([^,]*\), certificate \(sha256:[0-9a-f]*\).*/\1/p' "$T/exporter.log")
FP=$(sed -n 's/.*Serving data streams on \([^,]*\), certificate \(sha256:[0-9a-f]*\).*/\2/p' "$T/exporter.log")

# The client, in local mode: the same two boards local and remote.
cat > "$T/client.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: client}
export:
  local-echo:
    serial: {type: tty, config: {path: $T/board-local}}
  local-disk:
    type: sim
    config: {storage: $T/local.img, size: ${MB}MiB, boot_time: 100ms}
  remote-echo:
    type: remote
    config: {address: "$ADDR", dut: echo, fingerprint: "$FP", token_file: $T/echo.token}
  remote-disk:
    type: remote
    config: {address: "$ADDR", dut: disk, fingerprint: "$FP", token_file: $T/disk.token}
YAML
"$JMP" local start --config "$T/client.yaml" --mountpoint "$MNT" >/dev/null
CLIENT_LOG=$(ls "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log)
wait_grep "echo: Serial stream from .* opened" "$T/exporter.log"

# ser2net, tuned as ARCHITECTURE.md's peer figure: no character delay, TCP_NODELAY. One port is
# read by the benchmark over TCP, the other through a socat pty, as a terminal program would.
P1=$(free_port)
P2=$(free_port)
cat > "$T/ser2net.yaml" <<YAML
%YAML 1.1
---
connection: &direct
  accepter: tcp(nodelay),127.0.0.1,$P1
  connector: serialdev,$T/board-ser2net,115200n81,local
  options: {kickolduser: true, chardelay: false}
connection: &viapty
  accepter: tcp(nodelay),127.0.0.1,$P2
  connector: serialdev,$T/board-socat,115200n81,local
  options: {kickolduser: true, chardelay: false}
YAML
bg ser2net -n -d -c "$T/ser2net.yaml" > "$T/ser2net.log" 2>&1
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$P2") 2>/dev/null && break; sleep 0.1; done
bg socat pty,raw,echo=0,link="$T/socat-pty" "tcp:127.0.0.1:$P2,nodelay"
wait_file "$T/socat-pty"

run_serial() {
        echo "== serial"
        "$MSG" rtt "$COUNT" bare-pty="$T/board-bare" local="$MNT/local-echo/serial" remote="$MNT/remote-echo/serial" \
                ser2net-tcp="tcp:127.0.0.1:$P1" ser2net+socat-pty="$T/socat-pty" 2> "$T/p50" || {
                cat "$T/p50" >&2
                exit 1
        }
        awk '$1 == "p50" { p[$2 " " $3] = $4 }
        END {
                printf "  remote p50 against the 150 us target:"
                for (s = 0; s < 3; s++) {
                        size = (s == 0) ? 1 : (s == 1) ? 80 : 1024
                        v = p["remote " size] / 1000
                        printf "  %d B %.0f us (%s)", size, v, v <= 150 ? "met" : "missed"
                }
                printf "\n  ratios remote/local, remote/ser2net+socat-pty:"
                for (s = 0; s < 3; s++) {
                        size = (s == 0) ? 1 : (s == 1) ? 80 : 1024
                        printf "  %d B %.2f, %.2f", size, p["remote " size] / p["local " size],
                               p["remote " size] / p["ser2net+socat-pty " size]
                }
                printf "\n"
        }' "$T/p50"
}
[ -n "${NO_SERIAL:-}" ] || run_serial

echo "== storage"
head -c $((MB << 20)) /dev/urandom > "$T/src"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/tls.key" -out "$T/tls.pem" \
        -days 2 -subj /CN=bench 2>/dev/null
rate() { # bytes/s of MB MiB in SECONDS, as GB/s
        awk -v s="$1" -v b=$((MB << 20)) 'BEGIN { printf "%.3f", b / s / 1e9 }'
}
dd_rate() { # dd's time from its last line
        sed -n 's/.* copied, \([0-9.]*\) s, .*/\1/p' | { read -r s; rate "$s"; }
}
# The stand-in for `ssh host dd`: socat over TLS 1.3 into a dd that writes and fsyncs the file.
socat_tls() {
        local port t0 t1 server
        port=$(free_port)
        socat -u "OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,cert=$T/tls.pem,key=$T/tls.key,verify=0" \
                "SYSTEM:dd of=$T/socat.img bs=4M iflag=fullblock conv=fsync status=none" &
        server=$!
        for _ in $(seq 1 100); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.05; done
        t0=$(date +%s.%N)
        socat -u "OPEN:$T/src" "OPENSSL:127.0.0.1:$port,verify=0"
        wait "$server"
        t1=$(date +%s.%N)
        rate "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
}
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a) ? b : a }'; }
b_file=0 b_local=0 b_remote=0 b_socat=0
for i in 1 2 3; do
        f=$(dd if="$T/src" of="$T/local.img" bs=4M conv=fsync,notrunc 2>&1 | dd_rate)
        l=$(dd if="$T/src" of="$MNT/local-disk/storage" bs=4M conv=fsync 2>&1 | dd_rate)
        r=$(dd if="$T/src" of="$MNT/remote-disk/storage" bs=4M conv=fsync 2>&1 | dd_rate)
        s=$(socat_tls)
        echo "run $i: dd to the backing file $f, local $l, remote $r, socat over TLS $s GB/s"
        b_file=$(best "$b_file" "$f") b_local=$(best "$b_local" "$l") b_remote=$(best "$b_remote" "$r")
        b_socat=$(best "$b_socat" "$s")
done
cmp "$T/src" "$T/exporter.img" || { echo "the exporter's image does not hold what was written" >&2; exit 1; }
cmp "$T/src" "$T/socat.img" || { echo "socat's copy does not hold what was written" >&2; exit 1; }
awk -v f="$b_file" -v l="$b_local" -v r="$b_remote" -v s="$b_socat" -v mb="$MB" 'BEGIN {
        printf "storage write, %d MiB, bs=4M, conv=fsync (best of 3)\n", mb
        printf "  dd to the backing file:              %.2f GB/s\n", f
        printf "  dd to /jmp/local-disk/storage:       %.2f GB/s  (%.2f of the file)\n", l, l / f
        printf "  dd to /jmp/remote-disk/storage:      %.2f GB/s  (%.2f of the file, %.2f of local)\n", r, r / f, r / l
        printf "  socat over TLS into dd conv=fsync:   %.2f GB/s\n", s
        printf "  remote against the target >= 2x ssh dd: %.2fx the published ssh dd (0.40 GB/s): %s; %.2fx socat over TLS here: %s\n",
               r / 0.40, (r >= 0.80) ? "met" : "missed", r / s, (r >= 2 * s) ? "met" : "missed" }'
