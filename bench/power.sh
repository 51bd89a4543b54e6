#!/usr/bin/env bash
# Power command latency: open + write "on"/"off" + close on /jmp/dut1/power (what `echo on > power`
# does, without the shell's fork) against the same on a plain file in /tmp, alternating.
. "$(dirname "$0")/lib.sh"
start_bench_dut 16MiB
/usr/bin/python3 - "$MNT/dut1/power" "$T/plain" "${COUNT:-2000}" <<'PY'
import os, sys, time
power, plain, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def once(path, word):
    t0 = time.perf_counter_ns()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, word)
    os.close(fd)
    return time.perf_counter_ns() - t0
ours, base = [], []
for i in range(n):
    w = b"on\n" if i % 2 == 0 else b"off\n"
    ours.append(once(power, w))
    base.append(once(plain, w))
ours.sort(); base.sort()
p = lambda v, q: v[int(len(v) * q)] / 1e3
print("power command, open+write+close, %d each, alternating on/off" % n)
print("  plain file in /tmp:     p50 %7.1f us  p99 %7.1f us" % (p(base, .5), p(base, .99)))
print("  /jmp/dut1/power (sim):  p50 %7.1f us  p99 %7.1f us" % (p(ours, .5), p(ours, .99)))
print("  p50 %.3f ms against the 1 ms limit: %s" % (p(ours, .5) / 1e3, "met" if p(ours, .5) <= 1000 else "missed"))
PY
