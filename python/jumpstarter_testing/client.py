"""The client: a DUT of the file view (/jmp/<dut>/, docs/files.md) as Python objects.

Everything goes through the files jumpstarter-fuse serves, so a test works the same against local
mode and against a DUT leased from a controller (the agent shows it as /jmp/<lease>/).
"""

import bz2
import codecs
import errno
import gzip
import lzma
import os
import re
import select
import shutil
import time

from .errors import DutGoneError, JumpstarterError, LeaseError, SerialTimeout, file_error
from .lease import Lease
from .selector import parse_selector, selector_matches

__all__ = ["Client", "Power", "Serial", "Storage", "connect", "default_mountpoint", "list_duts", "parse_timeout"]

DEFAULT_MOUNTPOINT = "/jmp"
_CHUNK = 1 << 20
_TAIL = 500
# How long to wait for a leased DUT's directory once the lease is active (the agent adds it when
# its lease watch reports the lease; normally well under a second).
APPEAR_TIMEOUT = 60.0


def default_mountpoint():
    return os.environ.get("JMP_MOUNTPOINT") or DEFAULT_MOUNTPOINT


_TIME_UNITS = {"ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001, "s": 1, "sec": 1, "secs": 1,
               "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
               "h": 3600, "hour": 3600, "hours": 3600}
_TIME_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*")


def parse_timeout(value):
    """Seconds from a number or a string such as "30", "30s", "1.5 min", "1m 30s", "500ms"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a timeout cannot be negative: %r" % value)
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("invalid timeout %r: write seconds, or a time such as '30s' or '2 min'" % (value,))
    total, pos, text = 0.0, 0, value.strip().lower()
    while pos < len(text):
        m = _TIME_RE.match(text, pos)
        if not m or m.end() == pos or (m.group(2) and m.group(2) not in _TIME_UNITS):
            raise ValueError("invalid timeout %r: write seconds, or a time such as '30s' or '2 min'" % value)
        total += float(m.group(1)) * _TIME_UNITS.get(m.group(2) or "s")
        pos = m.end()
    return total


def _read_labels(path):
    labels = {}
    with open(os.path.join(path, "labels"), encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                labels[k] = v
    return labels


def list_duts(mountpoint=None):
    """{name: labels} of the DUTs under the mount point ({} when it is not there)."""
    mountpoint = mountpoint or default_mountpoint()
    duts = {}
    try:
        names = sorted(os.listdir(mountpoint))
    except OSError:
        return duts
    for name in names:
        path = os.path.join(mountpoint, name)
        try:
            duts[name] = _read_labels(path)
        except OSError:
            continue  # not a DUT, or gone meanwhile
    return duts


class Power:
    """The DUT's `power` file: on(), off(), cycle() and state."""

    def __init__(self, client):
        self._client = client

    def _write(self, command):
        path = os.path.join(self._client.path, "power")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            raise file_error(self._client, "power", e) from None
        try:
            os.write(fd, command.encode() + b"\n")
        except OSError as e:
            raise file_error(self._client, "power %s" % command, e) from None
        finally:
            os.close(fd)

    def on(self):
        """Powers the DUT on; returns when the driver is done."""
        self._write("on")

    def off(self):
        self._write("off")

    def cycle(self):
        """Powers the DUT off and on again; returns once it is back on."""
        self._write("cycle")

    @property
    def state(self):
        """"on", "off" or "unknown"."""
        try:
            with open(os.path.join(self._client.path, "power"), encoding="ascii") as f:
                return f.read().strip()
        except OSError as e:
            raise file_error(self._client, "power", e) from None


class Serial:
    """The DUT's console: reads `serial.log` through one open reader with its own position (every
    open of serial.log starts at the oldest byte the ring holds), writes to the terminal `serial`.

    The reader starts where the console is when the client connects: read_until() and expect() see
    what the DUT prints from then on, each continuing where the previous match ended.
    """

    def __init__(self, client):
        self._client = client
        self._fd = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""          # received and not yet consumed by a match
        self._consumed_tail = ""  # the end of what was consumed, for error messages
        self.match = None
        self.before = ""
        self.after = ""

    def _open(self):
        path = os.path.join(self._client.path, "serial.log")
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            raise file_error(self._client, "serial.log", e) from None
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _pull(self):
        """Reads what has arrived; returns the number of bytes."""
        if self._fd is None:
            self._open()
        n = 0
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            except OSError as e:
                raise file_error(self._client, "serial.log", e) from None
            if not data:
                break
            n += len(data)
            self._buf += self._decoder.decode(data)
        return n

    def _wait(self, seconds):
        """Waits for new output (poll() on serial.log) up to `seconds`."""
        try:
            ready = self._poll.poll(max(0, int(seconds * 1000)))
        except InterruptedError:
            return
        if ready and ready[0][1] & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            self._pull()  # raises the error the file has
        if not ready:
            return
        # A file system that does not poll says "ready" at once: do not spin.
        time.sleep(0.02)

    def discard(self):
        """Forgets what the console printed so far: the next read_until() sees only newer output."""
        self._pull()
        self._consume(len(self._buf))

    def _consume(self, end):
        self._consumed_tail = (self._consumed_tail + self._buf[:end])[-_TAIL:]
        self._buf = self._buf[end:]

    @staticmethod
    def _compile(pattern):
        if isinstance(pattern, re.Pattern):
            return pattern
        if isinstance(pattern, bytes):
            pattern = pattern.decode()
        if not isinstance(pattern, str) or not pattern:
            raise TypeError("a pattern is a non-empty str (matched literally) or a compiled regex, not %r"
                            % (pattern,))
        return re.compile(re.escape(pattern))

    def _search(self, regexes, timeout):
        deadline = time.monotonic() + timeout
        while True:
            best = None
            for i, rx in enumerate(regexes):
                m = rx.search(self._buf)
                if m and (best is None or m.start() < best[1].start()):
                    best = (i, m)
            if best:
                return best
            left = deadline - time.monotonic()
            if left <= 0:
                self._pull()  # what arrived meanwhile counts; if it holds a match, take it
                if any(rx.search(self._buf) for rx in regexes):
                    continue
                tail = self._buf[-_TAIL:]
                shown = " or ".join(repr(p.pattern) if isinstance(p, re.Pattern) else repr(p)
                                    for p in self._patterns)
                seen = ("the last %d characters it printed:\n%s" % (len(tail), tail) if tail
                        else "it printed nothing since %s" % ("the last match" if self._consumed_tail
                                                              else "the client connected"))
                raise SerialTimeout("%s: %s did not appear on the console within %gs; %s"
                                    % (self._client.name, shown, timeout, seen), tail)
            if self._pull() == 0:
                self._wait(min(left, 1.0))

    def read_until(self, pattern, timeout=30):
        """Reads the console until `pattern` (a str, matched literally, or a compiled regex) appears;
        returns the text from where the last read ended up to and including the match. Raises
        SerialTimeout, showing the tail it saw, when it does not appear within `timeout` seconds."""
        self.expect(pattern, timeout)
        return self.before + self.after

    def expect(self, patterns, timeout=30):
        """Like pexpect: waits for the first of `patterns` (one pattern or a list) to appear; returns
        the index of the one that matched first in the output, and sets `match` (the re.Match),
        `before` (the text before it) and `after` (the matched text)."""
        single = not isinstance(patterns, (list, tuple))
        self._patterns = [patterns] if single else list(patterns)
        if not self._patterns:
            raise TypeError("expect() needs at least one pattern")
        regexes = [self._compile(p) for p in self._patterns]
        timeout = parse_timeout(timeout)
        self._pull()
        i, m = self._search(regexes, timeout)
        self.match = m
        self.before = self._buf[:m.start()]
        self.after = m.group(0)
        self._consume(m.end())
        return i

    def write(self, data):
        """Types `data` (str or bytes) on the console, through the terminal `serial`."""
        if isinstance(data, str):
            data = data.encode()
        path = os.path.join(self._client.path, "serial")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            raise file_error(self._client, "serial", e) from None
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except OSError as e:
            raise file_error(self._client, "serial", e) from None
        finally:
            os.close(fd)

    def sendline(self, line=""):
        """Types `line` and Enter."""
        self.write(line + "\r")


def _open_image(path):
    lower = path.lower()
    if lower.endswith(".gz"):
        return gzip.open(path, "rb")
    if lower.endswith(".xz"):
        return lzma.open(path, "rb")
    if lower.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


class Storage:
    """The DUT's `storage` file: flash() an image to it, dump() it to a file."""

    def __init__(self, client):
        self._client = client

    @property
    def path(self):
        return os.path.join(self._client.path, "storage")

    @property
    def size(self):
        try:
            return os.stat(self.path).st_size
        except OSError as e:
            raise file_error(self._client, "storage", e) from None

    def flash(self, image):
        """Writes the image (a raw file, or .gz, .xz, .bz2 compressed) from offset 0. The DUT must be
        powered off (DutBusyError otherwise). Returns the number of bytes written."""
        try:
            src = _open_image(image)
        except OSError as e:
            raise JumpstarterError("cannot open image %s: %s" % (image, e.strerror or e)) from None
        with src:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as e:
                raise file_error(self._client, "storage", e) from None
            written = 0
            try:
                while True:
                    try:
                        chunk = src.read(_CHUNK)
                    except (OSError, EOFError, lzma.LZMAError) as e:
                        raise JumpstarterError("cannot read image %s: %s" % (image, e)) from None
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        try:
                            n = os.write(fd, view)
                        except OSError as e:
                            if e.errno == errno.ENOSPC:
                                raise JumpstarterError("%s: image %s is larger than the storage (%d bytes)"
                                                       % (self._client.name, image, written)) from None
                            raise file_error(self._client, "storage", e) from None
                        view = view[n:]
                        written += n
                try:
                    os.fsync(fd)
                except OSError as e:
                    raise file_error(self._client, "storage", e) from None
            finally:
                try:
                    os.close(fd)
                except OSError as e:
                    raise file_error(self._client, "storage", e) from None
        return written

    def dump(self, path, size=None):
        """Copies the storage (or its first `size` bytes) to the file `path`; returns the byte count."""
        left = self.size if size is None else int(size)
        copied = 0
        try:
            src = open(self.path, "rb", buffering=0)
        except OSError as e:
            raise file_error(self._client, "storage", e) from None
        with src, open(path, "wb") as dst:
            while left > 0:
                try:
                    chunk = src.read(min(_CHUNK, left))
                except OSError as e:
                    raise file_error(self._client, "storage", e) from None
                if not chunk:
                    break
                dst.write(chunk)
                copied += len(chunk)
                left -= len(chunk)
        return copied


class Client:
    """One DUT under the mount point: `power`, `serial`, `storage`, `labels`; `lease` when this
    client took a lease for it (close() gives it back)."""

    def __init__(self, name, mountpoint=None, lease=None):
        self.name = name
        self.mountpoint = mountpoint or default_mountpoint()
        self.path = os.path.join(self.mountpoint, name)
        self.lease = lease
        if not os.path.isdir(self.path):
            raise DutGoneError("%s: no DUT %s under %s (DUTs there: %s)"
                               % (name, name, self.mountpoint, ", ".join(list_duts(self.mountpoint)) or "none"))
        self.power = Power(self)
        self.serial = Serial(self)
        self.storage = Storage(self)
        # The console from now on (see Serial).
        self.serial.discard()

    @property
    def labels(self):
        try:
            return _read_labels(self.path)
        except OSError as e:
            raise file_error(self, "labels", e) from None

    def close(self):
        """Closes the console reader and releases the lease this client took, if any."""
        self.serial.close()
        if self.lease is not None:
            self.lease.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<jumpstarter_testing.Client %s%s>" % (self.path, " lease %s" % self.lease.name if self.lease else "")


def _wait_for_directory(path, mountpoint, timeout):
    deadline = time.monotonic() + timeout
    while not os.path.isdir(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def connect(selector=None, dut=None, mountpoint=None, duration="30m", wait="10m", lease_name=None, hint=None):
    """A Client for a DUT:

    - `dut` (or $JMP_DUT): that DUT under the mount point, as it is;
    - else a DUT under the mount point whose labels match `selector` (local mode): used as it is;
    - else a lease taken through `jmp lease create` (the agent, `jmp local start --config
      CLIENT.yaml`, shows it under the mount point); client.close() releases it.
    """
    mountpoint = mountpoint or default_mountpoint()
    dut = dut or os.environ.get("JMP_DUT") or None
    if dut:
        return Client(dut, mountpoint)
    selector = selector or ""
    reqs = parse_selector(selector)  # a typo fails here, before anything is leased
    duts = list_duts(mountpoint)
    for name, labels in duts.items():
        if selector_matches(reqs, labels):
            return Client(name, mountpoint)

    try:
        lease = Lease.create(selector, duration=duration, wait=wait, name=lease_name, hint=hint)
    except LeaseError as e:
        raise LeaseError("no DUT under %s matches selector %r (DUTs there: %s), and %s"
                         % (mountpoint, selector, ", ".join(duts) or "none", e), e.reason) from None
    try:
        path = os.path.join(mountpoint, lease.name)
        if not os.path.ismount(mountpoint):
            raise LeaseError("leased %s/%s as %s, but %s is not mounted: start the agent with 'jmp local "
                             "start --config CLIENT.yaml' (with --mountpoint for another place than /jmp)"
                             % (lease.exporter, lease.dut, lease.name, mountpoint))
        if not _wait_for_directory(path, mountpoint, APPEAR_TIMEOUT):
            raise LeaseError("leased %s/%s as %s, but %s did not appear within %gs: is the agent at %s running "
                             "with this client's config?" % (lease.exporter, lease.dut, lease.name, path,
                                                              APPEAR_TIMEOUT, mountpoint))
        return Client(lease.name, mountpoint, lease=lease)
    except BaseException:
        lease.release()
        raise
