#!/usr/bin/env bash
# Serial round trip through /jmp/dut1/serial and the simulated board versus a bare pty pair.
. "$(dirname "$0")/lib.sh"
start_bench_dut 16MiB
echo on > "$MNT/dut1/power"
for _ in $(seq 1 100); do grep -q 'boot complete' "$MNT/dut1/serial.log" && break; sleep 0.1; done
sleep 0.2
"$BUILD/bench/serial-rtt" "$MNT/dut1/serial" "${COUNT:-5000}"
