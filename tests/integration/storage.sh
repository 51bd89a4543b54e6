#!/usr/bin/env bash
# storage: dd + cmp round trip, EBUSY while powered (nothing written), ENOSPC past the end, short and
# unaligned writes land exactly.
. "$(dirname "$0")/lib.sh"

IMG=$T/dut1.img
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
echo PASS
