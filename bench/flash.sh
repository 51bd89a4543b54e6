#!/usr/bin/env bash
# Flashing a sparse image: jmp storage flash through /jmp/dut1/storage with and without the block
# map, against bmaptool copy into the same file view and dd straight to the backing file, same run.
. "$(dirname "$0")/lib.sh"
MB=${MB:-1024}       # image size
DATA_MB=${DATA_MB:-64}
start_bench_dut "${MB}MiB"
S=$MNT/dut1/storage

# Data in 16 places, holes between them.
truncate -s $((MB << 20)) "$T/sparse.img"
for i in $(seq 0 15); do
        dd if=/dev/urandom of="$T/sparse.img" bs=1M count=$((DATA_MB / 16)) seek=$((i * MB / 16)) \
           conv=notrunc status=none
done
bmaptool -q create -o "$T/sparse.bmap" "$T/sparse.img"

secs() { # COMMAND...: wall time in seconds
        local t0 t1
        t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; t1=$(date +%s.%N)
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == 0 || b < a) ? b : a }'; }

dd_direct=0 dd_fuse=0 bmaptool_t=0 flash_bmap=0 flash_bmap_nv=0 flash_all_nv=0
for i in 1 2 3; do
        dd_direct=$(best $dd_direct "$(secs dd if="$T/sparse.img" of="$T/dut1.img" bs=4M conv=fsync,notrunc)")
        dd_fuse=$(best $dd_fuse "$(secs dd if="$T/sparse.img" of="$S" bs=4M conv=fsync)")
        bmaptool_t=$(best $bmaptool_t "$(secs bmaptool -q copy --bmap "$T/sparse.bmap" "$T/sparse.img" "$S")")
        flash_bmap=$(best $flash_bmap "$(secs "$JMP" storage flash dut1 "$T/sparse.img" --bmap "$T/sparse.bmap" --mountpoint "$MNT")")
        flash_bmap_nv=$(best $flash_bmap_nv "$(secs "$JMP" storage flash dut1 "$T/sparse.img" --bmap "$T/sparse.bmap" --no-verify --mountpoint "$MNT")")
        flash_all_nv=$(best $flash_all_nv "$(secs "$JMP" storage flash dut1 "$T/sparse.img" --no-verify --mountpoint "$MNT")")
        echo "run $i: dd direct ${dd_direct}s, dd view ${dd_fuse}s, bmaptool ${bmaptool_t}s, flash+bmap ${flash_bmap}s, flash+bmap --no-verify ${flash_bmap_nv}s, flash without bmap --no-verify ${flash_all_nv}s (best so far)"
done
cmp "$T/sparse.img" "$S" || { echo "storage does not hold the image" >&2; exit 1; }
awk -v mb="$MB" -v d="$dd_direct" -v f="$dd_fuse" -v b="$bmaptool_t" -v fb="$flash_bmap" -v fbn="$flash_bmap_nv" -v fa="$flash_all_nv" '
function gbs(t) { return mb / 1024 * 1.073741824 / t }
BEGIN {
        printf "sparse image, %d MiB with %d MiB of data (best of 3, logical GB/s = image size / time)\n", mb, '"$DATA_MB"'
        printf "  dd to the backing file:                 %6.3f s  %5.2f GB/s\n", d, gbs(d)
        printf "  dd to /jmp/dut1/storage:                %6.3f s  %5.2f GB/s\n", f, gbs(f)
        printf "  bmaptool copy to /jmp/dut1/storage:     %6.3f s  %5.2f GB/s\n", b, gbs(b)
        printf "  jmp storage flash --bmap:               %6.3f s  %5.2f GB/s (verified)\n", fb, gbs(fb)
        printf "  jmp storage flash --bmap --no-verify:   %6.3f s  %5.2f GB/s\n", fbn, gbs(fbn)
        printf "  jmp storage flash --no-verify (no map): %6.3f s  %5.2f GB/s\n", fa, gbs(fa)
        printf "  flash --bmap vs bmaptool: %.2fx (target >= 1: %s); verified: %.2fx\n", b / fbn, (b / fbn >= 1) ? "met" : "missed", b / fb
        printf "  flash without map vs dd to the backing file: %.2f (target >= 0.70: %s)\n", d / fa, (d / fa >= 0.70) ? "met" : "missed"
}'
