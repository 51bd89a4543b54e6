"""Robot Framework: the JumpstarterLibrary keywords, on the same client as the pytest class.

    *** Settings ***
    Library    JumpstarterLibrary

    *** Test Cases ***
    Boot
        Connect To Exporter    selector=vendor=acme,model=widget-v2
        Power On
        ${output}=    Read Serial Until    boot complete
        Power Off
        [Teardown]    Release

`Library    JumpstarterLibrary` imports the module JumpstarterLibrary (python/JumpstarterLibrary.py,
installed beside this package), which is this class.
"""

import re

from .client import connect, parse_timeout
from .errors import JumpstarterError

__all__ = ["JumpstarterLibrary"]


def _bool(value):
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "off", "0", "none")
    return bool(value)


class _Listener:
    """Gives the lease back when Robot is done with the library (its scope ends)."""

    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self, library):
        self._library = library

    def close(self):
        self._library.release()


class JumpstarterLibrary:
    """Keywords for a DUT of Jumpstarter: power, console and storage through the file view.

    `Connect To Exporter` picks the DUT as the pytest class does: `dut=` (or $JMP_DUT) names one
    under the mount point; else one there whose labels match `selector` (local mode); else a lease
    through `jmp lease create`, given back by `Release` or when the suite ends.
    """

    ROBOT_LIBRARY_SCOPE = "SUITE"
    ROBOT_LIBRARY_VERSION = "0.1.0"
    ROBOT_LIBRARY_DOC_FORMAT = "reST"

    def __init__(self, mountpoint=None, duration="30m", wait="10m"):
        self._mountpoint = mountpoint or None
        self._duration = duration
        self._wait = wait
        self._client = None
        self.ROBOT_LIBRARY_LISTENER = _Listener(self)

    @property
    def client(self):
        if self._client is None:
            raise JumpstarterError("no DUT: call 'Connect To Exporter' first")
        return self._client

    def connect_to_exporter(self, selector=None, dut=None, duration=None, wait=None):
        """Takes a DUT matching `selector` (or the DUT named `dut`); returns its name.
        A DUT this library held before is released first."""
        self.release()
        self._client = connect(selector=selector or "", dut=dut or None, mountpoint=self._mountpoint,
                               duration=duration or self._duration, wait=wait or self._wait, hint="robot")
        return self._client.name

    def power_on(self):
        self.client.power.on()

    def power_off(self):
        self.client.power.off()

    def power_cycle(self):
        self.client.power.cycle()

    def get_power_state(self):
        """Returns on, off or unknown."""
        return self.client.power.state

    def read_serial_until(self, pattern, timeout="30s", regexp=False):
        """Reads the console until `pattern` appears (literally; a regular expression with
        `regexp=True`) and returns the text up to and including it. Fails after `timeout`, showing
        the end of what the console printed."""
        if _bool(regexp):
            pattern = re.compile(pattern)
        return self.client.serial.read_until(pattern, timeout=parse_timeout(timeout))

    def write_serial(self, text, newline=False):
        """Types `text` on the console (and Enter with `newline=True`)."""
        self.client.serial.write(text + ("\r" if _bool(newline) else ""))

    def flash_storage(self, image):
        """Writes the image file to the DUT's storage; the DUT must be powered off. Returns the byte count."""
        return self.client.storage.flash(image)

    def dump_storage(self, path, size=None):
        """Copies the DUT's storage (or its first `size` bytes) to `path`."""
        return self.client.storage.dump(path, None if size in (None, "") else int(size))

    def release(self):
        """Gives the DUT back: releases its lease if this library took one."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
