#!/usr/bin/env bash
# DUTs that come and go at run time, through the real mount: a reload (SIGHUP) of the ExporterConfig
# adds and removes DUTs; directories appear and go; open files of a DUT that went fail with EIO at
# once; the name can come back; rmdir of a configured DUT is EPERM and changes nothing.
. "$(dirname "$0")/lib.sh"

CFG=$T/config.yaml
DUT2="  dut2:
    type: sim
    labels:
      vendor: other
    config:
      size: 8MiB
      boot_time: 100ms"

write_config "$CFG"
start_local "$CFG" >/dev/null
LOG=$(echo "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log)
[ -d "$MNT/dut1" ] || fail "dut1 is not there after start"
[ ! -e "$MNT/dut2" ] || fail "dut2 is there before it was added"

reload() {
        kill -HUP "$(daemon_pid)"
}

# Added by a reload: the directory appears, with working files. (dut2 was looked up above: a
# negative entry the kernel may have cached must not hide it.)
write_config "$CFG" "$DUT2"
reload
wait_for test -d "$MNT/dut2" || fail "dut2 did not appear after the reload"
[ "$(ls "$MNT" | tr '\n' ' ')" = "dut1 dut2 " ] || fail "ls shows '$(ls "$MNT" | tr '\n' ' ')'"
grep -qx "vendor=other" "$MNT/dut2/labels" || fail "dut2's labels: $(cat "$MNT/dut2/labels")"
[ "$(stat -c %s "$MNT/dut2/storage")" = $((8 << 20)) ] || fail "dut2's storage size"
echo on > "$MNT/dut2/power"
[ "$(cat "$MNT/dut2/power")" = on ] || fail "dut2 did not power on"
wait_for grep -q 'boot complete' "$MNT/dut2/serial.log" || fail "dut2 did not boot"
echo off > "$MNT/dut2/power"

# Open files of a DUT that goes: serial.log and storage (open for writing) fail with EIO, promptly.
"$PY" - "$MNT" "$T/opened" "$T/result" <<'PY' &
import errno, os, sys, time
mnt, opened, result = sys.argv[1:]
log = os.open(mnt + "/dut2/serial.log", os.O_RDONLY)
storage = os.open(mnt + "/dut2/storage", os.O_RDWR)
power = os.open(mnt + "/dut2/power", os.O_RDWR)
os.pwrite(storage, b"x" * 4096, 0)
open(opened, "w").close()
deadline = time.monotonic() + 20
while os.path.exists(mnt + "/dut2") and time.monotonic() < deadline:
    time.sleep(0.05)
out = []
for name, op in (("serial.log", lambda: os.read(log, 4096)),
                 ("storage-write", lambda: os.pwrite(storage, b"y" * 4096, 0)),
                 ("storage-read", lambda: os.pread(storage, 4096, 0)),
                 ("power", lambda: os.write(power, b"on\n"))):
    try:
        op()
        out.append(name + "=ok")
    except OSError as e:
        out.append(name + "=" + errno.errorcode[e.errno])
with open(result, "w") as f:
    f.write(" ".join(out) + "\n")
PY
TEST_PIDS="${TEST_PIDS:-} $!"
pypid=$!
wait_for test -e "$T/opened" || fail "the files of dut2 could not be opened"

write_config "$CFG"
reload
wait_for test ! -e "$MNT/dut2" || fail "dut2 did not go after the reload"
wait "$pypid" || fail "the reader of dut2's files failed"
[ "$(cat "$T/result")" = "serial.log=EIO storage-write=EIO storage-read=EIO power=EIO" ] ||
        fail "open files of the removed DUT: $(cat "$T/result")"
[ "$(ls "$MNT" | tr '\n' ' ')" = "dut1 " ] || fail "ls shows '$(ls "$MNT" | tr '\n' ' ')' after removal"
expect_error "No such file or directory" cat "$MNT/dut2/power"
expect_error "No such file or directory" cat "$MNT/dut2/labels"

# The other DUT did not notice.
echo on > "$MNT/dut1/power"
[ "$(cat "$MNT/dut1/power")" = on ] || fail "dut1 stopped working"
echo off > "$MNT/dut1/power"

# rmdir gives back leased DUTs only: a DUT of the config stays (EPERM), an unknown name is ENOENT,
# and nothing else in the view can be removed.
expect_error "Operation not permitted" rmdir "$MNT/dut1"
[ -d "$MNT/dut1" ] || fail "dut1 went away after a refused rmdir"
expect_error "No such file or directory" rmdir "$MNT/nope"
expect_error "Permission denied" rm -f "$MNT/dut1/labels"

# A config that does not parse changes nothing, and the log says why.
cp "$CFG" "$T/good.yaml"
printf 'apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: t}\nexport:\n  dut1: {type: nonsense}\n' > "$CFG"
reload
wait_for grep -q 'Not reloading: .*unknown driver type "nonsense"' "$LOG" || fail "a bad reload was not reported"
[ "$(ls "$MNT" | tr '\n' ' ')" = "dut1 " ] || fail "a bad reload changed the DUTs"
[ "$(cat "$MNT/dut1/power")" = off ] || fail "dut1 after a bad reload"

# The name comes back, as a new DUT: new opens work, with the new settings.
write_config "$CFG" "${DUT2/8MiB/4MiB}"
reload
wait_for test -d "$MNT/dut2" || fail "dut2 did not come back"
# (The kernel may hold the old DUT's attributes of the same inode until the invalidation lands.)
wait_for bash -c "[ \$(stat -c %s '$MNT/dut2/storage') = $((4 << 20)) ]" ||
        fail "dut2 came back with the old size: $(stat -c %s "$MNT/dut2/storage")"
[ "$(cat "$MNT/dut2/power")" = off ] || fail "the new dut2's power"
head -c 65536 /dev/urandom > "$T/chunk"
dd if="$T/chunk" of="$MNT/dut2/storage" conv=notrunc,fsync status=none || fail "writing the new dut2's storage"
cmp -n 65536 "$T/chunk" "$MNT/dut2/storage" || fail "the new dut2's storage does not read back"

# Both daemons are still up.
alive "$(daemon_pid)" || fail "jumpstarterd died"
alive "$(fuse_pid)" || fail "jumpstarter-fuse died"
echo "PASS"
