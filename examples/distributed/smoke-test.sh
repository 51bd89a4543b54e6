#!/bin/sh
# A board test that uses nothing but a DUT's files, so that it runs unchanged against a DUT of
# local mode (/jmp/dut1) and a leased one (/jmp/<lease>):
#
#   sh smoke-test.sh /jmp/my-lease
#
# It writes a pattern to the storage and reads it back (with the board off: a powered board's
# storage is busy), powers the board on, waits for "boot complete" on its console, and powers it
# off again. Exit 0 and "PASS" when all went well.
set -eu
dut=${1:?usage: smoke-test.sh DUT-DIRECTORY}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# wait_until TEXT COMMAND...: polls for up to a minute.
wait_until() {
        what=$1
        shift
        i=0
        until "$@"; do
                i=$((i + 1))
                if [ "$i" -gt 600 ]; then
                        echo "FAIL: $dut: $what" >&2
                        exit 1
                fi
                sleep 0.1
        done
}

# A leased DUT connects to its exporter in the background: its power reads "unknown" until then.
power_known() { grep -qx -e on -e off "$dut/power"; }
wait_until "no answer from the board's power" power_known

echo off > "$dut/power"
head -c 1048576 /dev/urandom > "$tmp"
dd if="$tmp" of="$dut/storage" bs=65536 conv=notrunc,fsync status=none
cmp -n 1048576 "$tmp" "$dut/storage"

# serial.log may hold earlier boots: wait for one more "boot complete" than before.
boots=$(grep -c 'boot complete' "$dut/serial.log" || true)
echo on > "$dut/power"
booted() { [ "$(grep -c 'boot complete' "$dut/serial.log" || true)" -gt "$boots" ]; }
wait_until "no 'boot complete' on the console" booted
[ "$(cat "$dut/power")" = on ]

echo off > "$dut/power"
[ "$(cat "$dut/power")" = off ]
echo PASS
