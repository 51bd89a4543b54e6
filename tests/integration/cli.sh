#!/usr/bin/env bash
# --help on every command, --version, usage errors exit 2.
. "$(dirname "$0")/lib.sh"

"$JMP" --version | grep -Eq '^jmp [0-9]+\.[0-9]+' || fail "jmp --version"
for cmd in "" "local" "local start" "local stop" "local status" "power"; do
        # shellcheck disable=SC2086
        "$JMP" $cmd --help | grep -q Usage || fail "jmp $cmd --help"
done
for prog in "$JUMPSTARTERD" "$JUMPSTARTER_FUSE"; do
        "$prog" --help | grep -qi usage || fail "$prog --help"
        "$prog" --version | grep -Eq '[0-9]+\.[0-9]+' || fail "$prog --version"
done
rc=0; "$JMP" frobnicate 2>/dev/null || rc=$?; [ $rc = 2 ] || fail "unknown command exit $rc"
rc=0; "$JMP" local start 2>/dev/null || rc=$?; [ $rc = 2 ] || fail "start without --config exit $rc"
rc=0; "$JMP" power on 2>/dev/null || rc=$?; [ $rc = 2 ] || fail "power without DUT exit $rc"
# Not running: clear messages.
expect_error "not running" "$JMP" power on dut1
out=$("$JMP" local stop --mountpoint "$MNT" 2>&1) || fail "stop when not running should succeed"
[[ "$out" == *"not running"* ]] || fail "stop when not running: $out"
echo PASS
