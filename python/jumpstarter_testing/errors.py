"""The exceptions of jumpstarter_testing, and how errors of the file view map to them."""

import errno
import os

__all__ = ["JumpstarterError", "DutGoneError", "DutBusyError", "LeaseError", "SerialTimeout"]


class JumpstarterError(Exception):
    """Anything that went wrong talking to a DUT or the controller."""


class DutGoneError(JumpstarterError):
    """The DUT is no longer there: its lease ended, its exporter or jumpstarterd went away."""


class DutBusyError(JumpstarterError):
    """The DUT refused an operation for now (EBUSY): power on while storage is being written, say."""


class LeaseError(JumpstarterError):
    """A lease could not be taken or given back; `reason` is the controller's reason when it said one."""

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason


class SerialTimeout(JumpstarterError, TimeoutError):
    """The console did not print what was awaited in time; `tail` is the end of what it printed."""

    def __init__(self, message, tail=""):
        super().__init__(message)
        self.tail = tail


_BUSY_HINTS = {
    "power": "storage is open for writing (flash first, then power on)",
    "storage": "the DUT is powered on (power it off before flashing)",
}


def file_error(dut, what, exc):
    """The exception to raise for an OSError `exc` from the DUT's file `what` (power, serial.log, ...)."""
    e = exc.errno
    text = os.strerror(e) if e else str(exc)
    prefix = "%s: %s: %s" % (dut.name, what, text)
    if e == errno.EBUSY:
        hint = _BUSY_HINTS.get(what.split()[0])
        return DutBusyError(prefix + (": " + hint if hint else ""))
    if e == errno.ENOTCONN:
        return DutGoneError(prefix + ": jumpstarter-fuse has gone away from %s (run 'jmp local stop', then "
                            "start local mode again)" % dut.mountpoint)
    if e in (errno.ENOENT, errno.EIO):
        if what == "serial.log" or not _dut_alive(dut):
            return DutGoneError(prefix + ": the DUT is gone from %s (its lease ended, or its exporter or "
                                "jumpstarterd went away)" % dut.mountpoint)
        if e == errno.EIO:
            return JumpstarterError(prefix + ": the device failed")
    return JumpstarterError(prefix)


def _dut_alive(dut):
    """Whether the DUT still answers: its labels come from jumpstarterd, not from the device."""
    try:
        with open(os.path.join(dut.path, "labels"), "rb") as f:
            f.read()
        return True
    except OSError:
        return False
