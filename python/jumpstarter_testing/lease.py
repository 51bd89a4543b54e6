"""Leases through the `jmp` command line: taken with `jmp lease create`, given back with `jmp lease
release`, and given back no matter how the test process ends.

Three layers make sure a lease is released: the caller's own release (teardown), an atexit hook and
a SIGTERM handler in this process, and a guard process (_guard.py) that releases the lease when this
process dies without saying it did (SIGKILL, a crash).
"""

import atexit
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading

from .errors import LeaseError

__all__ = ["Lease", "jmp_command", "lease_name_for"]

_live = set()
_live_lock = threading.Lock()
_hooks_installed = False
_previous_sigterm = None


def jmp_command():
    """The `jmp` to run: $JMP when set (a build tree), else the one on PATH."""
    return os.environ.get("JMP") or "jmp"


def lease_name_for(hint):
    """A fresh lease name (and so the directory name under the mount point) that says who took it."""
    base = re.sub(r"[^a-z0-9]+", "-", (hint or "test").lower()).strip("-") or "test"
    return "%s-%s" % (base[:45].rstrip("-"), secrets.token_hex(4))


def _release_all():
    with _live_lock:
        leases = list(_live)
    for lease in leases:
        try:
            lease.release()
        except LeaseError as e:
            print("jumpstarter_testing: %s" % e, file=sys.stderr)


def _on_sigterm(signum, frame):
    _release_all()
    # Then die of the signal as asked (or let whoever handled it before decide).
    prev = _previous_sigterm
    if callable(prev):
        prev(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_hooks():
    global _hooks_installed, _previous_sigterm
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_release_all)
    if threading.current_thread() is threading.main_thread():
        prev = signal.getsignal(signal.SIGTERM)
        if prev in (signal.SIG_DFL, None) or callable(prev):
            _previous_sigterm = prev if callable(prev) else None
            signal.signal(signal.SIGTERM, _on_sigterm)


def _jmp_message(stderr):
    """The last 'jmp: ...' message, without the prefix, and the controller's reason in it if any."""
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    msgs = [l[len("jmp: "):] for l in lines if l.startswith("jmp: ")]
    text = msgs[0] if msgs else (lines[-1] if lines else "jmp failed without a message")
    if len(msgs) > 1:
        text = "; ".join(msgs)
    m = re.search(r":\s+([A-Z][A-Za-z]+):\s", text)
    return text, (m.group(1) if m else None)


class Lease:
    """A lease held at the controller. `data` is the lease object (docs/protocol.md)."""

    def __init__(self, name, selector, data, guard):
        self.name = name
        self.selector = selector
        self.data = data
        self._guard = guard
        self._released = False
        # Reentrant: the SIGTERM handler may release while the main thread is releasing.
        self._lock = threading.RLock()

    @property
    def exporter(self):
        return self.data.get("exporter")

    @property
    def dut(self):
        return self.data.get("dut")

    @property
    def released(self):
        return self._released

    @classmethod
    def create(cls, selector, duration="30m", wait="10m", name=None, hint=None, fail_without_match=True):
        """Leases a DUT matching `selector`, waiting up to `wait` for one to be free.

        When no registered exporter matches at all (the controller says NoMatchingExporter), this
        fails at once with that reason instead of waiting, unless fail_without_match is false.
        """
        _install_hooks()
        name = name or lease_name_for(hint)
        jmp = jmp_command()
        guard = _start_guard(jmp, name)
        lease = cls(name, selector, {}, guard)
        with _live_lock:
            _live.add(lease)
        argv = [jmp, "lease", "create", "--selector", selector, "--duration", str(duration),
                "--name", name, "-o", "json"]
        if wait:
            argv += ["--wait", str(wait)]
        try:
            lease.data = _run_create(argv, name, selector, fail_without_match)
        except BaseException:
            # Nothing to hand over: make sure nothing stays queued or held (jmp releases on its
            # own failures and on Ctrl-C; a release of an ended lease is a no-op).
            try:
                lease.release()
            except LeaseError as e:
                print("jumpstarter_testing: %s" % e, file=sys.stderr)
            raise
        return lease

    def release(self):
        """Gives the lease back (idempotent). A lease that ended already counts as released."""
        with self._lock:
            if self._released:
                return
            try:
                r = subprocess.run([jmp_command(), "lease", "release", self.name], stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True, check=False)
            except OSError as e:
                raise LeaseError("cannot run %s to release lease %s: %s" % (jmp_command(), self.name, e))
            if r.returncode != 0:
                text, reason = _jmp_message(r.stderr)
                if reason not in ("NotFound", "Expired"):
                    # The guard stays: it tries again when this process exits.
                    raise LeaseError("releasing lease %s failed: %s" % (self.name, text), reason)
            self._released = True
            _stop_guard(self._guard)
            self._guard = None
        with _live_lock:
            _live.discard(self)


def _start_guard(jmp, name):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_guard.py")
    try:
        return subprocess.Popen([sys.executable, script, jmp, name], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError as e:
        raise LeaseError("cannot start the lease guard (%s): %s" % (script, e))


def _stop_guard(guard):
    if guard is None:
        return
    try:
        guard.stdin.write(b"released\n")
        guard.stdin.close()
    except OSError:
        pass
    guard.wait()


def _run_create(argv, name, selector, fail_without_match):
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    except OSError as e:
        raise LeaseError("cannot run %s: %s (install jumpstarter, or set $JMP to the jmp binary)" % (argv[0], e))
    stderr = []
    no_match = None
    try:
        # jmp prints "waiting: REASON, position N in queue" on each change while it waits; stdout is
        # one small JSON object, read after.
        for line in proc.stderr:
            stderr.append(line)
            if fail_without_match and no_match is None and line.startswith("waiting: NoMatchingExporter"):
                no_match = line[len("waiting: "):].strip()
                proc.send_signal(signal.SIGINT)  # jmp releases the pending lease and exits
        out = proc.stdout.read()
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            # Interrupted here (Ctrl-C, SIGTERM): jmp withdraws the lease request on SIGINT.
            proc.send_signal(signal.SIGINT)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    if no_match is not None:
        raise LeaseError("no exporter matches selector %r: the controller says NoMatchingExporter (%s); "
                         "the lease request %s was withdrawn" % (selector, no_match, name), "NoMatchingExporter")
    if rc != 0:
        text, reason = _jmp_message("".join(stderr))
        raise LeaseError("leasing a DUT with selector %r failed: %s" % (selector, text), reason)
    try:
        data = json.loads(out)
    except ValueError:
        raise LeaseError("jmp lease create printed no lease: %r" % out[:200])
    if data.get("state") != "active":
        raise LeaseError("lease %s is %s, not active (%s)" % (name, data.get("state"), data.get("reason")),
                         data.get("reason"))
    return data
