#!/usr/bin/env bash
# The power file and jmp power: on, off, cycle, status; bad words fail with EINVAL and change nothing.
. "$(dirname "$0")/lib.sh"

start_local >/dev/null
P=$MNT/dut1/power

[ "$(cat "$P")" = off ] || fail "initial state: $(cat "$P")"
echo on > "$P"
[ "$(cat "$P")" = on ] || fail "after on: $(cat "$P")"
printf off > "$P"   # no newline
[ "$(cat "$P")" = off ] || fail "after off: $(cat "$P")"

# Bad words: EINVAL, state unchanged, in both states. dd makes each one a single write().
for bad in bogus "on off" " on" "ON" "on\n\n" "on\r\n" "cycle2" "offf"; do
        expect_error "Invalid argument" bash -c "printf '$bad' | dd of=$P bs=64 count=1 iflag=fullblock status=none"
        [ "$(cat "$P")" = off ] || fail "'$bad' changed the state"
done
echo on > "$P"
expect_error "Invalid argument" bash -c "echo bogus > $P"
[ "$(cat "$P")" = on ] || fail "bogus changed the state while on"

# cycle: returns powered on, and the console shows a second boot.
wait_for grep -q 'boot complete' "$MNT/dut1/serial.log" || fail "no boot after on"
echo cycle > "$P"
[ "$(cat "$P")" = on ] || fail "after cycle: $(cat "$P")"
wait_for sh -c "[ \$(grep -c 'boot complete' $MNT/dut1/serial.log) -ge 2 ]" || fail "no second boot after cycle"

# jmp power speaks to the same daemon.
"$JMP" power off dut1 --mountpoint "$MNT"
[ "$("$JMP" power status dut1 --mountpoint "$MNT")" = off ] || fail "jmp power status"
[ "$(cat "$P")" = off ] || fail "jmp power off not seen in the file"
"$JMP" power on dut1   # the only instance running: no --mountpoint needed
[ "$(cat "$P")" = on ] || fail "jmp power on"
expect_error "No DUT named" "$JMP" power on nosuchdut
expect_error "unknown power action" "$JMP" power sideways dut1

# Unknown DUTs and read-only files.
expect_error "No such file" ls "$MNT/nope"
expect_error "No such file" bash -c "echo on > $MNT/nope/power"
expect_error "No such file" cat "$MNT/dut1/nofile"
for ro in labels lease serial.log; do
        expect_error "Permission denied" bash -c "echo x > $MNT/dut1/$ro"
done
expect_error "Permission denied" touch "$MNT/dut1/newfile"
expect_error "" mkdir "$MNT/dut1/d"
echo PASS
