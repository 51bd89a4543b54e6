"""Through a lease (pytest-lease.sh runs a controller, an exporter and the agent at $JMP_MOUNTPOINT;
$CASE picks what to run)."""

import os
import signal
import time

import pytest

from jumpstarter_testing import LeaseError
from jumpstarter_testing.pytest import JumpstarterTest
from jumpstarter_testing.robot import JumpstarterLibrary

SELECTOR = "vendor=acme,model=widget-v2"
CASE = os.environ.get("CASE", "")


@pytest.mark.skipif(CASE != "crash", reason="CASE=crash")
class TestCrash(JumpstarterTest):
    exporter_selector = SELECTOR

    def test_crash(self):
        with open(os.environ["LEASE_FILE"], "w") as f:
            f.write(self.client.lease.name)
        self.client.power.on()
        how = os.environ["CRASH"]
        if how == "exception":
            raise RuntimeError("crashed on purpose")
        if how == "interrupt":
            raise KeyboardInterrupt
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        elif how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        signal.pause()  # the signal ends the process before this returns


@pytest.mark.skipif(CASE != "nomatch", reason="CASE=nomatch")
class TestNoMatch(JumpstarterTest):
    exporter_selector = os.environ.get("NOMATCH_SELECTOR", "vendor=nobody")

    def test_never_runs(self):
        raise AssertionError("the class setup should have failed")


def gone_within(path, seconds):
    """Whether path disappears within seconds (a bound against hanging, not a timing check)."""
    deadline = time.monotonic() + seconds
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(CASE != "robot", reason="CASE=robot")
def test_robot_keywords_lease():
    lib = JumpstarterLibrary()
    name = lib.connect_to_exporter(selector=SELECTOR, duration="10m", wait="1m")
    assert name.startswith("robot-")
    assert lib.client.lease.exporter == "lab1" and lib.client.lease.dut == "dut1"
    lib.power_on()
    assert "U-Boot" in lib.read_serial_until("boot complete")
    lib.power_off()
    lib.release()
    # The agent removes the directory when the controller tells it the lease ended: moments later.
    assert gone_within(os.path.join(os.environ["JMP_MOUNTPOINT"], name), 20)


@pytest.mark.skipif(CASE != "robot", reason="CASE=robot")
def test_robot_connect_without_match():
    lib = JumpstarterLibrary()
    with pytest.raises(LeaseError) as e:
        lib.connect_to_exporter(selector="vendor=nobody")
    assert e.value.reason == "NoMatchingExporter"
