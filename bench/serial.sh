#!/usr/bin/env bash
# Serial round trip through /jmp/dut1/serial and the simulated board versus a bare pty pair.
. "$(dirname "$0")/lib.sh"
start_bench_dut 16MiB
echo on > "$MNT/dut1/power"
for _ in $(seq 1 100); do grep -q 'boot complete' "$MNT/dut1/serial.log" && break; sleep 0.1; done
sleep 0.2
dpid=$(cut -d' ' -f1 "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.pid)
# The echoing peer (jumpstarterd, or the bare pty's echo process) on one CPU, the client on the
# other, then all on one: wakeups across CPUs and on one CPU cost differently, and unpinned runs
# wander between the two.
if [ "$(nproc)" -ge 2 ]; then
        echo "== peer on CPU 1, client on CPU 0"
        taskset -pc 1 "$dpid" >/dev/null
        PEER_CPU=1 taskset -c 0 "$BUILD/bench/serial-rtt" "$MNT/dut1/serial" "${COUNT:-5000}"
fi
echo "== all on CPU 0"
taskset -pc 0 "$dpid" >/dev/null
PEER_CPU=0 taskset -c 0 "$BUILD/bench/serial-rtt" "$MNT/dut1/serial" "${COUNT:-5000}"
