"""The DUT goes away while a test reads its console: read_until raises DutGoneError, long before its
timeout. $VANISH_PID is the process to kill (local mode: jumpstarterd; a lease: the exporter's)."""

import os
import signal

import pytest

from jumpstarter_testing import DutGoneError
from jumpstarter_testing.pytest import JumpstarterTest


class TestVanish(JumpstarterTest):
    exporter_selector = "vendor=acme,model=widget-v2"

    def test_read_until_raises_when_dut_vanishes(self):
        self.client.power.on()
        self.client.serial.read_until("boot complete")
        os.kill(int(os.environ["VANISH_PID"]), signal.SIGKILL)
        # The timeout is far beyond the test's own: only the DUT going away ends this wait.
        with pytest.raises(DutGoneError) as e:
            self.client.serial.read_until("never printed", timeout=3600)
        print("raised:", e.value)
        with pytest.raises(DutGoneError):
            self.client.power.on()
