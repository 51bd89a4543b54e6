#!/usr/bin/env bash
# storage: dd + cmp round trip, EBUSY while powered (nothing written), ENOSPC past the end, short and
# unaligned writes land exactly.
. "$(dirname "$0")/lib.sh"

# The image lives on a file system of its own (ext4 on a loop device) when the kernel offers one, so
# that the slow-storage check at the end can freeze it: a write to a frozen file system blocks until it
# is thawed, a deterministic stand-in for an SD card that takes seconds.
SLOW=$T/slow
mkdir -p "$SLOW"
if truncate -s 64M "$T/slow.ext4" && mkfs.ext4 -q -F "$T/slow.ext4" >/dev/null 2>&1 &&
   mount -o loop "$T/slow.ext4" "$SLOW" 2>/dev/null; then
        IMG=$SLOW/dut1.img
        slow_cleanup() {
                local rc=$?
                set +e
                fsfreeze -u "$SLOW" 2>/dev/null
                "$JMP" local stop --mountpoint "$MNT" >/dev/null 2>&1
                umount -l "$MNT" 2>/dev/null
                umount "$SLOW" 2>/dev/null || umount -l "$SLOW" 2>/dev/null
                (exit "$rc")
                cleanup
        }
        trap slow_cleanup EXIT
else
        IMG=$T/dut1.img
        SLOW=
fi
write_config "$T/config.yaml" "      storage: $IMG"
start_local >/dev/null
S=$MNT/dut1/storage
SIZE=$((16 << 20))

[ "$(stat -c %s "$S")" = $SIZE ] || fail "storage size $(stat -c %s "$S") != $SIZE"
[ "$(stat -c %s "$IMG")" = $SIZE ] || fail "image not created with the configured size"

# Round trip as users do it.
head -c $((5 << 20)) /dev/urandom > "$T/image"
dd if="$T/image" of="$S" bs=4M conv=fsync status=none || fail "dd into storage failed"
cmp -n $((5 << 20)) "$T/image" "$S" || fail "storage does not read back what dd wrote"
cmp -n $((5 << 20)) "$T/image" "$IMG" || fail "backing image differs"

# While powered: EBUSY at open, and nothing changes.
echo on > "$MNT/dut1/power"
before=$(sha256sum < "$IMG")
expect_error "Device or resource busy" dd if=/dev/zero of="$S" bs=4k count=1 conv=notrunc status=none
[ "$(sha256sum < "$IMG")" = "$before" ] || fail "a refused write changed the image"
cmp -n 4096 "$T/image" "$S" || fail "reading while powered failed"
# Powering on while storage is open for writing is refused too.
echo off > "$MNT/dut1/power"
exec 5<> "$S"
expect_error "Device or resource busy" bash -c "echo on > $MNT/dut1/power"
exec 5>&-
echo on > "$MNT/dut1/power"
echo off > "$MNT/dut1/power"

# Past the end: ENOSPC; straddling the end: what fits lands.
expect_error "No space left on device" dd if=/dev/zero of="$S" bs=4096 count=1 seek=$((SIZE / 4096)) conv=notrunc status=none
"$PY" - "$S" "$IMG" "$SIZE" <<'PY'
import os, sys, random
dev, img, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(dev, os.O_RDWR)
n = os.pwrite(fd, b"x" * 100, size - 10)
assert n == 10, "straddling write wrote %d" % n
try:
    os.pwrite(fd, b"y", size)
    raise SystemExit("write at the end did not fail")
except OSError as e:
    assert e.errno == 28, e   # ENOSPC
# Short and unaligned writes at odd offsets land exactly.
rnd = random.Random(7)
expect = bytearray(open(img, "rb").read())
for _ in range(200):
    off = rnd.randrange(0, size - 70000)
    data = bytes(rnd.getrandbits(8) for _ in range(rnd.choice([1, 3, 511, 4097, 65537])))
    assert os.pwrite(fd, data, off) == len(data)
    expect[off:off + len(data)] = data
os.fsync(fd)
os.close(fd)
assert open(img, "rb").read() == bytes(expect), "image differs after unaligned writes"
assert open(dev, "rb").read() == bytes(expect), "storage reads differ after unaligned writes"
print("unaligned writes ok")
PY

# dd without conv=notrunc truncates at open: a device ignores it and keeps its size and data.
dd if="$T/image" of="$S" bs=1M count=1 status=none || fail "dd with O_TRUNC failed"
[ "$(stat -c %s "$S")" = $SIZE ] || fail "O_TRUNC changed the size"

# A slow storage holds up nothing else: while a write waits for the (frozen) file system under the
# image, power still answers. With storage I/O on the event loop the power reads below hang and are
# killed, so this fails; it passes only when the write waits on a worker thread.
fuse_thread_in_d() { # some thread of jumpstarter-fuse sleeps uninterruptibly (in the write)
        local f
        for f in /proc/"$(fuse_pid)"/task/*/stat; do
                [ "$(sed 's/.*) //' "$f" 2>/dev/null | cut -d' ' -f1)" = D ] && return 0
        done
        return 1
}
if [ -n "$SLOW" ] && fsfreeze --help >/dev/null 2>&1; then
        head -c $((1 << 20)) /dev/urandom > "$T/slow-data"
        rm -f "$T/opened" "$T/go"
        "$PY" - "$S" "$T/slow-data" "$T/opened" "$T/go" <<'PY' &
import os, sys, time
dev, data, opened, go = sys.argv[1:]
fd = os.open(dev, os.O_WRONLY)
open(opened, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
buf = open(data, "rb").read()
assert os.pwrite(fd, buf, 0) == len(buf)
os.fsync(fd)
os.close(fd)
PY
        writer=$!
        TEST_PIDS="${TEST_PIDS:-} $writer"
        wait_for test -e "$T/opened" || fail "the writer did not open storage"
        fsfreeze -f "$SLOW" || fail "could not freeze the file system of the image"
        touch "$T/go"
        # Ordering, not timing: the write has reached the device (a thread of jumpstarter-fuse is
        # blocked in it, and cannot leave before the thaw) before power is read.
        wait_for fuse_thread_in_d || fail "the storage write never reached the frozen image"
        for i in 1 2 3 4 5; do
                state=$(timeout -s KILL 10 cat "$MNT/dut1/power") ||
                        fail "power read $i did not complete while a storage write was blocked"
                [ "$state" = off ] || fail "power read $i said '$state' while a storage write was blocked"
        done
        alive "$writer" || fail "the write finished while its file system was frozen"
        fsfreeze -u "$SLOW"
        wait "$writer" || fail "the blocked write failed after the thaw"
        cmp -n $((1 << 20)) "$T/slow-data" "$IMG" || fail "the blocked write did not land"
else
        echo "SKIP (slow-storage check only): no loop device or fsfreeze for a file system to freeze"
fi
echo PASS
