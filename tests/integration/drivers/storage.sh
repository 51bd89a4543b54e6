#!/usr/bin/env bash
# Storage drivers: a block device (loop) that is mounted is never written, also through a
# partition; muxes (usbsdmux, sdwire, mux-command) switch to the DUT when the daemon starts, to the
# host for every open and back to the DUT after the last close, and a failing or hanging mux fails
# the open with EIO and writes nothing (mux-gpio is in gpio.sh, whose daemon has the fake chip);
# bmaptool copy into the file view; jmp storage flash with and without a block map, from
# compressed images and a pipe, with a corrupt map, while powered, interrupted and too large.
. "$(dirname "$0")/../lib.sh"

# Stand-ins for the mux tools (hardware): they record their arguments, and fail while asked to.
mkdir -p "$T/bin"
for tool in usbsdmux sd-mux-ctrl; do
        cat > "$T/bin/$tool" <<SH
#!/bin/sh
echo "$tool \$*" >> "$T/calls"
[ -e "$T/mux-fail" ] && { echo "$tool: cannot reach the mux" >&2; exit 1; }
exit 0
SH
        chmod +x "$T/bin/$tool"
done
touch "$T/calls"

# A loop device for the block device checks, with one partition (MBR written by hand).
LOOP=
if truncate -s 32M "$T/disk.img" && "$PY" - "$T/disk.img" <<'PY' && LOOP=$(losetup -f --show -P "$T/disk.img" 2>/dev/null); then
import struct, sys
with open(sys.argv[1], "r+b") as f:
    entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, 16384)
    f.seek(446); f.write(entry)
    f.seek(510); f.write(b"\x55\xaa")
PY
        echo "loop device: $LOOP"
        cleanup_loop() { umount -l "$T/mnt-loop" 2>/dev/null || true; losetup -d "$LOOP" 2>/dev/null || true; }
        trap 'rc=$?; cleanup_loop; (exit $rc); cleanup' EXIT
else
        echo "SKIP (part): losetup does not work here; the mount check is covered by its unit test only"
fi
[ -n "$LOOP" ] && DISK=$LOOP || DISK=$T/disk.img

cat > "$T/config.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: test
export:
  blk:
    type: sim
    config: { boot_time: 50ms }
    storage:
      type: file
      config: { path: $DISK }
  usb:
    type: sim
    config: { boot_time: 50ms }
    storage:
      type: usbsdmux
      config: { path: $T/card-usb.img, size: 16MiB, device: /dev/sg-test, command: $T/bin/usbsdmux }
  sdw:
    type: sim
    config: { boot_time: 50ms }
    storage:
      type: sdwire
      config: { path: $T/card-sdw.img, size: 8MiB, serial: sdw-1234, command: $T/bin/sd-mux-ctrl }
  hang:
    storage:
      type: mux-command
      config:
        path: $T/card-hang.img
        size: 1MiB
        host: [sleep, "100"]
        dut: ["true"]
        timeout: 300ms
  img:
    type: sim
    config: { boot_time: 50ms }
    storage:
      type: file
      config: { path: $T/img.img, size: 48MiB }
YAML
# Cards behind a mux are there only while the host has them: the drivers never create them.
truncate -s 16M "$T/card-usb.img"
truncate -s 8M "$T/card-sdw.img"
truncate -s 1M "$T/card-hang.img"
start_local >/dev/null

# Every mux goes to the DUT at start: a card that a crash left with the host goes back.
wait_for grep -q "usbsdmux /dev/sg-test dut" "$T/calls" || fail "usbsdmux not switched to the DUT at start"
wait_for grep -q -- "--dut" "$T/calls" || fail "sdwire not switched to the DUT at start"
[ "$(LC_ALL=C sort "$T/calls")" = "sd-mux-ctrl --device-serial=sdw-1234 --dut
usbsdmux /dev/sg-test dut" ] || fail "mux calls at start: $(cat "$T/calls")"
: > "$T/calls"

# --- Block device: written while unmounted, refused while it or a partition is mounted.
head -c 1M /dev/urandom > "$T/r1"
dd if="$T/r1" of="$MNT/blk/storage" bs=1M conv=fsync,notrunc status=none || fail "writing the block device failed"
cmp -n 1M "$T/r1" "$DISK" || fail "block device does not hold what was written"
if [ -n "$LOOP" ]; then
        # A partition when this kernel reads partition tables (this one may not: then the whole
        # device, and partitions are covered by the unit test of the sysfs matching).
        PART=$LOOP
        if [ -e "${LOOP}p1" ]; then PART=${LOOP}p1; else echo "no partition support: mounting the whole $LOOP"; fi
        mkdir -p "$T/mnt-loop"
        # Read-only and without journal replay, so that the file system itself writes nothing to the
        # device while the test compares it (ext4 initialises tables lazily after a writable mount).
        mkfs.ext4 -q -F "$PART" && mount -o ro,noload "$PART" "$T/mnt-loop" || fail "could not mount $PART"
        before=$(sha256sum < "$LOOP")
        expect_error "Device or resource busy" dd if=/dev/zero of="$MNT/blk/storage" bs=4k count=1 conv=notrunc status=none
        expect_error "Device or resource busy" "$JMP" storage flash blk "$T/r1" --mountpoint "$MNT"
        [ "$(sha256sum < "$LOOP")" = "$before" ] || fail "a refused write changed the mounted device"
        cmp -n 1M "$LOOP" "$MNT/blk/storage" || fail "reading a mounted block device failed"
        grep -q "is mounted at $T/mnt-loop" "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log || fail "no log of the mount"
        umount "$T/mnt-loop"
        dd if=/dev/zero of="$MNT/blk/storage" bs=4k count=1 conv=notrunc,fsync status=none || fail "write after umount failed"
        echo "block device checks ok"
fi

# --- usbsdmux: every open switches to the host first and back to the DUT after the last close.
head -c 3M /dev/urandom > "$T/r3"
dd if="$T/r3" of="$MNT/usb/storage" bs=1M conv=fsync status=none || fail "writing through usbsdmux failed"
wait_for grep -q "usbsdmux /dev/sg-test dut" "$T/calls" || fail "mux not switched back to the DUT"
[ "$(cat "$T/calls")" = "usbsdmux /dev/sg-test host
usbsdmux /dev/sg-test dut" ] || fail "mux calls: $(cat "$T/calls")"
cmp -n 3M "$T/r3" "$T/card-usb.img" || fail "card does not hold what was written"
: > "$T/calls"
cmp -n 3M "$T/r3" "$MNT/usb/storage" || fail "reading through the mux failed"
wait_for grep -q "dut" "$T/calls" || fail "mux not switched back after a read"
[ "$(wc -l < "$T/calls")" = 2 ] || fail "a read made calls: $(cat "$T/calls")"

# Two opens at once: one switch each way.
: > "$T/calls"
exec 5< "$MNT/usb/storage"
exec 6<> "$MNT/usb/storage"
exec 5<&- 6>&-
wait_for grep -q "dut" "$T/calls" || fail "mux not switched back after two opens"
[ "$(cat "$T/calls")" = "usbsdmux /dev/sg-test host
usbsdmux /dev/sg-test dut" ] || fail "two opens made calls: $(cat "$T/calls")"

# While powered the card is with the DUT: even reads fail; while open, power on fails.
echo on > "$MNT/usb/power"
: > "$T/calls"
expect_error "Device or resource busy" cat "$MNT/usb/storage"
[ ! -s "$T/calls" ] || fail "mux switched while powered: $(cat "$T/calls")"
echo off > "$MNT/usb/power"
exec 5< "$MNT/usb/storage"
expect_error "Device or resource busy" bash -c "echo on > $MNT/usb/power"
exec 5<&-
# Power on right after the close waits for the card to be back with the DUT.
echo on > "$MNT/usb/power" || fail "power on after close failed"
[ "$(tail -n1 "$T/calls")" = "usbsdmux /dev/sg-test dut" ] || fail "powered on before the card went back"
echo off > "$MNT/usb/power"

# A failing mux: EIO at open, nothing written.
: > "$T/calls"
touch "$T/mux-fail"
before=$(sha256sum < "$T/card-usb.img")
expect_error "Input/output error" dd if=/dev/zero of="$MNT/usb/storage" bs=4k count=1 conv=notrunc status=none
[ "$(sha256sum < "$T/card-usb.img")" = "$before" ] || fail "a failed switch let a write through"
grep -q "cannot reach the mux" "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log || fail "the tool's message is not in the log"
rm "$T/mux-fail"
: > "$T/calls"
dd if=/dev/zero of="$MNT/usb/storage" bs=4k count=1 conv=notrunc status=none || fail "write after the mux recovered failed"
wait_for grep -q "usbsdmux /dev/sg-test dut" "$T/calls" || fail "mux not switched back after recovering"

# sdwire: its own command line.
: > "$T/calls"
head -c 4096 /dev/urandom > "$T/r4"
dd if="$T/r4" of="$MNT/sdw/storage" conv=notrunc,fsync status=none || fail "writing through sdwire failed"
wait_for grep -q -- "--dut" "$T/calls" || fail "sdwire not switched back"
[ "$(cat "$T/calls")" = "sd-mux-ctrl --device-serial=sdw-1234 --ts
sd-mux-ctrl --device-serial=sdw-1234 --dut" ] || fail "sdwire calls: $(cat "$T/calls")"
cmp -n 4096 "$T/r4" "$T/card-sdw.img" || fail "sdwire card differs"

# A mux command that hangs is killed after its timeout: EIO, and the daemon still answers.
expect_error "Input/output error" dd if=/dev/zero of="$MNT/hang/storage" bs=1 count=1 conv=notrunc status=none
grep -q "did not finish in 300 ms" "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log || fail "no timeout in the log"
cat "$MNT/usb/lease" >/dev/null || fail "daemon stuck after a hanging mux"
echo "mux checks ok"

# --- bmaptool copy into the file view.
S=$MNT/img/storage
SIZE=$((32 << 20))
make_sparse() { # FILE: 32 MiB with data at a few places, holes elsewhere
        rm -f "$1"; truncate -s $SIZE "$1"
        dd if=/dev/urandom of="$1" bs=64k count=3 seek=1 conv=notrunc status=none
        dd if=/dev/urandom of="$1" bs=4k count=100 seek=3000 conv=notrunc status=none
        dd if=/dev/urandom of="$1" bs=4k count=1 seek=$((SIZE / 4096 - 1)) conv=notrunc status=none
}
zero_storage() { dd if=/dev/zero of="$S" bs=4M count=12 conv=fsync,notrunc status=none; }
head -c 48M /dev/zero | tr '\0' '\377' > "$T/ff"
fill_storage() { dd if="$T/ff" of="$S" bs=4M conv=fsync,notrunc status=none; }
make_sparse "$T/sparse.img"
bmaptool -q create -o "$T/sparse.bmap" "$T/sparse.img"
zero_storage
bmaptool -q copy --bmap "$T/sparse.bmap" "$T/sparse.img" "$S" || fail "bmaptool copy into the file view failed"
cmp -n $SIZE "$T/sparse.img" "$S" || fail "bmaptool copy: storage differs"
echo "bmaptool copy ok"

# --- jmp storage flash.
flash() { "$JMP" storage flash img "$@" --mountpoint "$MNT"; }
fill_storage
flash "$T/sparse.img" 2> "$T/out" || { cat "$T/out"; fail "flash without a block map failed"; }
grep -q "verified" "$T/out" || fail "flash did not say it verified: $(cat "$T/out")"
cmp -n $SIZE "$T/sparse.img" "$S" || fail "flash without bmap: storage differs"
zero_storage
flash "$T/sparse.img" --bmap "$T/sparse.bmap" 2> "$T/out" || { cat "$T/out"; fail "flash with a block map failed"; }
grep -q "mapped blocks" "$T/out" || fail "flash with bmap wrote everything: $(cat "$T/out")"
cmp -n $SIZE "$T/sparse.img" "$S" || fail "flash with bmap: storage differs"
gzip -c "$T/sparse.img" > "$T/sparse.img.gz"
xz -T1 -c "$T/sparse.img" > "$T/sparse.img.xz"
zstd -q -c "$T/sparse.img" > "$T/sparse.img.zst"
for z in gz xz zst; do
        fill_storage
        flash "$T/sparse.img.$z" 2> "$T/out" || { cat "$T/out"; fail "flash of .$z failed"; }
        cmp -n $SIZE "$T/sparse.img" "$S" || fail "flash of .$z: storage differs"
        zero_storage
        flash "$T/sparse.img.$z" --bmap "$T/sparse.bmap" --no-verify 2> "$T/out" || { cat "$T/out"; fail "flash of .$z with bmap failed"; }
        cmp -n $SIZE "$T/sparse.img" "$S" || fail "flash of .$z with bmap: storage differs"
done
fill_storage
xz -dc "$T/sparse.img.xz" | flash /dev/stdin 2> "$T/out" || { cat "$T/out"; fail "flash from a pipe failed"; }
cmp -n $SIZE "$T/sparse.img" "$S" || fail "flash from a pipe: storage differs"
echo "flash ok"

# A corrupt block map: its own checksum catches it; without that, the range's checksum does.
first=$(grep -o 'chksum="[0-9a-f]' "$T/sparse.bmap" | head -n1 | cut -c9)
[ "$first" = 0 ] && other=1 || other=0
sed "0,/chksum=\"$first/s//chksum=\"$other/" "$T/sparse.bmap" > "$T/bad.bmap"
expect_error "is corrupt" flash "$T/sparse.img" --bmap "$T/bad.bmap"
grep -v BmapFileChecksum "$T/bad.bmap" > "$T/bad2.bmap"
expect_error "Checksum mismatch" flash "$T/sparse.img" --bmap "$T/bad2.bmap"
expect_error "flashing img failed" flash "$T/sparse.img" --bmap "$T/bad2.bmap"
printf '<bmap><ImageSize>1' > "$T/bad3.bmap"
expect_error "bad3.bmap:line 1" flash "$T/sparse.img" --bmap "$T/bad3.bmap"

# While powered: EBUSY with a reason, nothing written.
echo on > "$MNT/img/power"
before=$(sha256sum < "$T/img.img")
expect_error "must be powered off" flash "$T/r1"
[ "$(sha256sum < "$T/img.img")" = "$before" ] || fail "a flash while powered changed the storage"
echo off > "$MNT/img/power"

# Larger than the storage: known before writing for a file, at the end for a pipe.
truncate -s 64M "$T/big.img"
expect_error "larger than the storage" flash "$T/big.img"
expect_error "does not fit" bash -c "head -c 64M /dev/zero | \"$JMP\" storage flash img /dev/stdin --mountpoint \"$MNT\""

# Interrupted halfway (the image comes from a pipe that stalls): failure, never success.
mkfifo "$T/fifo"
head -c 2M /dev/urandom > "$T/r2"
sh -c 'cat "$1"; exec sleep 600' sh "$T/r2" > "$T/fifo" &
feeder=$!
TEST_PIDS="${TEST_PIDS:-} $feeder"
fill_storage
"$JMP" storage flash img "$T/fifo" --no-verify --mountpoint "$MNT" 2> "$T/out" &
flasher=$!
TEST_PIDS="$TEST_PIDS $flasher"
wait_for cmp -n 2M "$T/r2" "$T/img.img" || fail "the flash did not get going"
kill -INT $flasher
rc=0; wait $flasher || rc=$?
[ $rc -ne 0 ] || fail "an interrupted flash exited 0"
grep -q "interrupted" "$T/out" || fail "an interrupted flash did not say so: $(cat "$T/out")"
kill $feeder 2>/dev/null || true
# The storage is free again afterwards.
echo on > "$MNT/img/power" && echo off > "$MNT/img/power" || fail "storage still held after an interrupted flash"
echo PASS
