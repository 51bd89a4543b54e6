"""Releases a lease when the test process that holds it is gone.

Started by lease.py as a process of its own (its own session, so that a Ctrl-C meant for the test
run does not reach it), with a pipe on standard input. The test process writes "released" when it
gave the lease back itself; end of file without that means it died (SIGKILL, a crash, os._exit):
then this process runs `jmp lease release NAME`. Standard library only, no package imports, so it
runs from any path.
"""

import signal
import subprocess
import sys


def main():
    if len(sys.argv) != 3:
        print("usage: _guard.py JMP LEASE", file=sys.stderr)
        return 2
    jmp, name = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    data = b""
    while True:
        try:
            chunk = sys.stdin.buffer.read1(4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    if b"released" in data:
        return 0
    r = subprocess.run([jmp, "lease", "release", name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, check=False)
    err = r.stderr.strip()
    if r.returncode == 0:
        print("jumpstarter_testing: the test process went away; released lease %s." % name, file=sys.stderr)
    elif "NotFound" in err or "Expired" in err:
        return 0  # it had ended already
    else:
        print("jumpstarter_testing: the test process went away; releasing lease %s failed: %s" % (name, err),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
