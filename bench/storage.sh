#!/usr/bin/env bash
# Storage throughput: dd bs=4M into /jmp/dut1/storage versus dd into the same backing file, same run.
. "$(dirname "$0")/lib.sh"
MB=${MB:-1024}
start_bench_dut "${MB}MiB"
head -c $((MB << 20)) /dev/urandom > "$T/src"

rate() { # dd's bytes/s from its last line
        sed -n 's/.* copied, \([0-9.]*\) s, .*/\1/p' | awk -v b=$((MB << 20)) '{ printf "%.3f", b / $1 / 1e9 }'
}
best_direct=0 best_fuse=0
for i in 1 2 3; do
        d=$(dd if="$T/src" of="$T/dut1.img" bs=4M conv=fsync,notrunc 2>&1 | rate)
        f=$(dd if="$T/src" of="$MNT/dut1/storage" bs=4M conv=fsync 2>&1 | rate)
        echo "run $i: dd to the backing file $d GB/s, dd to /jmp/dut1/storage $f GB/s"
        best_direct=$(awk -v a="$best_direct" -v b="$d" 'BEGIN { print (b > a) ? b : a }')
        best_fuse=$(awk -v a="$best_fuse" -v b="$f" 'BEGIN { print (b > a) ? b : a }')
done
cmp "$T/src" "$MNT/dut1/storage" || { echo "storage does not hold what was written" >&2; exit 1; }
awk -v d="$best_direct" -v f="$best_fuse" 'BEGIN {
        r = f / d
        printf "storage write, %d MiB, bs=4M, conv=fsync (best of 3)\n", '"$MB"'
        printf "  dd to the backing file:   %.2f GB/s\n", d
        printf "  dd to /jmp/dut1/storage:  %.2f GB/s\n", f
        printf "  ratio: %.2f (target >= 0.70: %s)\n", r, (r >= 0.70) ? "met" : "missed" }'
