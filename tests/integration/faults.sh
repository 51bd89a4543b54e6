#!/usr/bin/env bash
# jumpstarterd killed while files are open: every access fails promptly with an error instead of
# hanging, and jmp local stop still cleans up. The same for jumpstarter-fuse.
. "$(dirname "$0")/lib.sh"

start_local >/dev/null
echo on > "$MNT/dut1/power"
exec 3< "$MNT/dut1/serial.log"
exec 4<> "$MNT/dut1/power"
exec 6< "$MNT/dut1/storage"
dpid=$(daemon_pid)
kill -9 "$dpid"
while alive "$dpid"; do sleep 0.05; done

# Each access must fail (EIO or ENOTCONN); `timeout` turns a hang into a failure instead of a stuck run.
for cmd in "cat $MNT/dut1/power" "echo off > $MNT/dut1/power" "cat <&3" "head -c 10 <&6" \
           "dd if=/dev/zero of=$MNT/dut1/storage bs=4k count=1 conv=notrunc" "readlink -v $MNT/dut1/serial" \
           "cat $MNT/dut1/serial.log"; do
        rc=0
        out=$(timeout 10 bash -c "$cmd" 2>&1) || rc=$?
        [ $rc -ne 124 ] || fail "'$cmd' hung after jumpstarterd died"
        [ $rc -ne 0 ] || fail "'$cmd' succeeded after jumpstarterd died: $out"
        case "$out" in
        *"Input/output error"*|*"not connected"*) ;;
        *) fail "'$cmd' failed with '$out', expected an I/O error" ;;
        esac
done
exec 3<&- 4<&- 6<&-
"$JMP" local status --mountpoint "$MNT" > "$T/status" && fail "status says healthy with the daemon dead"
grep -q 'jumpstarterd: *not running' "$T/status" || fail "status: $(cat "$T/status")"
"$JMP" local stop --mountpoint "$MNT" || fail "stop failed after the daemon died"
grep -qs " $MNT " /proc/self/mountinfo && fail "still mounted"

# jumpstarter-fuse killed: ENOTCONN, and stop cleans up the dead mount.
start_local >/dev/null
kill -9 "$(fuse_pid)"
rc=0; out=$(timeout 10 cat "$MNT/dut1/power" 2>&1) || rc=$?
[ $rc -ne 124 ] && [ $rc -ne 0 ] || fail "access after jumpstarter-fuse died: rc=$rc $out"
dpid=$(daemon_pid)
"$JMP" local stop --mountpoint "$MNT" || fail "stop failed after jumpstarter-fuse died"
grep -qs " $MNT " /proc/self/mountinfo && fail "dead mount left behind"
alive "$dpid" && fail "jumpstarterd still runs"
echo PASS
