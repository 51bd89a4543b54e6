#!/usr/bin/env bash
# The demo: local mode with the simulated DUT of .jumpstarter/local-config.yaml, driven through /jmp.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh build
JMP=build/tools/jmp

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step jmp local start --config=./.jumpstarter/local-config.yaml
$JMP local start --config=./.jumpstarter/local-config.yaml
trap '$JMP local stop >/dev/null 2>&1 || true' EXIT

step ls -l /jmp/dut1
ls -l /jmp/dut1
step cat /jmp/dut1/labels
cat /jmp/dut1/labels
step echo on \> /jmp/dut1/power
echo on > /jmp/dut1/power
step cat /jmp/dut1/power
cat /jmp/dut1/power
step "grep -m1 'boot complete' /jmp/dut1/serial.log   # again until the board has booted"
for _ in $(seq 1 100); do grep -m1 'boot complete' /jmp/dut1/serial.log && break; sleep 0.1; done
step cat /jmp/dut1/serial.log
cat /jmp/dut1/serial.log
echo
step "printf 'uname -a\\r' > /jmp/dut1/serial   # type at the DUT's console"
printf 'uname -a\r' > /jmp/dut1/serial
sleep 0.3
tail -n 2 /jmp/dut1/serial.log
echo
step echo off \> /jmp/dut1/power
echo off > /jmp/dut1/power
step dd if=/dev/urandom of=/tmp/jmp-demo.img bs=1M count=4
dd if=/dev/urandom of=/tmp/jmp-demo.img bs=1M count=4 status=none
step dd if=/tmp/jmp-demo.img of=/jmp/dut1/storage bs=4M conv=fsync
dd if=/tmp/jmp-demo.img of=/jmp/dut1/storage bs=4M conv=fsync
step cmp -n 4194304 /tmp/jmp-demo.img /jmp/dut1/storage
cmp -n 4194304 /tmp/jmp-demo.img /jmp/dut1/storage && echo "storage holds the image"
rm -f /tmp/jmp-demo.img
step jmp local status
$JMP local status
step jmp local stop
$JMP local stop
trap - EXIT
