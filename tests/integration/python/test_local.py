"""Against local mode (pytest-local.sh starts it at $JMP_MOUNTPOINT): the client's errors, and the
Robot keywords called from pytest."""

import errno
import os
import re
import signal

import pytest

from jumpstarter_testing import (DutBusyError, DutGoneError, JumpstarterError, SelectorError, SerialTimeout,
                                 connect)
from jumpstarter_testing.pytest import JumpstarterTest
from jumpstarter_testing.robot import JumpstarterLibrary

SELECTOR = "vendor=acme,model=widget-v2"
MNT = os.environ["JMP_MOUNTPOINT"]


def test_local_dut_is_used_without_a_lease(monkeypatch):
    # No jmp at all: a lease attempt would fail.
    monkeypatch.setenv("JMP", "/nonexistent/jmp")
    with connect(selector=SELECTOR) as client:
        assert client.name == "dut1"
        assert client.lease is None
        assert client.labels["vendor"] == "acme"


def test_no_local_match_and_no_controller(monkeypatch, tmp_path):
    monkeypatch.setenv("JMP_CLIENT_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(JumpstarterError, match=r"no DUT under .* matches selector 'vendor=nobody' \(DUTs there: dut1\), "
                       r"and leasing a DUT .* failed: .*missing.yaml: cannot read"):
        connect(selector="vendor=nobody")


def test_bad_selector_fails_before_anything():
    with pytest.raises(SelectorError, match="column 10"):
        connect(selector="board in rpi4")


def test_dut_named_in_environment(monkeypatch):
    monkeypatch.setenv("JMP_DUT", "dut1")
    with connect(selector="vendor=nobody") as client:
        assert client.name == "dut1"
    monkeypatch.setenv("JMP_DUT", "nope")
    with pytest.raises(DutGoneError, match=r"no DUT nope under .* \(DUTs there: dut1\)"):
        connect()


class TestSerial(JumpstarterTest):
    exporter_selector = SELECTOR

    def test_read_until_timeout_shows_tail(self):
        self.client.power.on()
        self.client.serial.read_until("boot complete")
        self.client.serial.sendline("echo marker-1234")
        self.client.serial.read_until("marker-1234")  # the echo of the command line
        with pytest.raises(SerialTimeout) as e:
            self.client.serial.read_until("never printed", timeout=0.5)
        assert "'never printed' did not appear on the console within 0.5s" in str(e.value)
        assert "marker-1234" in e.value.tail  # the command's output, unconsumed
        assert isinstance(e.value, TimeoutError)
        # Nothing was consumed by the failed wait.
        assert "marker-1234" in self.client.serial.read_until(re.compile(r"marker-\d+\r\n"))
        self.client.power.off()

    def test_read_until_returns_text_up_to_match(self):
        self.client.power.on()
        text = self.client.serial.read_until("Starting kernel")
        assert text.endswith("Starting kernel")
        assert "U-Boot" in text
        rest = self.client.serial.read_until("boot complete")
        assert "Starting kernel" not in rest
        self.client.power.off()

    def test_bad_pattern(self):
        with pytest.raises(TypeError):
            self.client.serial.read_until("")
        with pytest.raises(ValueError):
            self.client.serial.read_until("x", timeout="soon")

    def test_power_refused_while_storage_written(self):
        self.client.power.off()
        fd = os.open(os.path.join(self.client.path, "storage"), os.O_WRONLY)
        try:
            with pytest.raises(DutBusyError, match="storage is open for writing"):
                self.client.power.on()
        finally:
            os.close(fd)
        assert self.client.power.state == "off"

    def test_image_larger_than_storage(self, tmp_path):
        self.client.power.off()
        size = self.client.storage.size
        image = tmp_path / "big.img"
        with open(image, "wb") as f:
            f.truncate(size + 4096)
        with pytest.raises(JumpstarterError, match="larger than the storage"):
            self.client.storage.flash(str(image))

    def test_compressed_image(self, tmp_path):
        import gzip
        self.client.power.off()
        data = os.urandom(65536)
        with gzip.open(tmp_path / "img.gz", "wb") as f:
            f.write(data)
        assert self.client.storage.flash(str(tmp_path / "img.gz")) == len(data)
        self.client.storage.dump(str(tmp_path / "out"), size=len(data))
        assert (tmp_path / "out").read_bytes() == data


class TestSelectorSpelling(JumpstarterTest):
    selector = SELECTOR

    def test_selector_attribute(self):
        assert self.client.name == "dut1"


def test_both_selectors_conflict():
    class Both(JumpstarterTest):
        exporter_selector = "a=1"
        selector = "a=2"
    with pytest.raises(ValueError, match="set one"):
        Both.setup_class()


def test_robot_keywords():
    lib = JumpstarterLibrary()
    with pytest.raises(JumpstarterError, match="Connect To Exporter"):
        lib.power_on()
    assert lib.connect_to_exporter(selector=SELECTOR) == "dut1"
    lib.power_on()
    assert lib.get_power_state() == "on"
    out = lib.read_serial_until("boot complete", timeout="30s")
    assert "U-Boot" in out
    lib.read_serial_until(":~# ")
    lib.write_serial("uname -n", newline="True")
    assert lib.read_serial_until(r"\r\ndut\d+\r\n", regexp=True).endswith("\r\ndut1\r\n")
    lib.power_cycle()
    assert "U-Boot" in lib.read_serial_until("boot complete", timeout="1 min")
    with pytest.raises(SerialTimeout):
        lib.read_serial_until("never printed", timeout="200ms")
    lib.power_off()
    lib.release()
    with pytest.raises(JumpstarterError, match="Connect To Exporter"):
        lib.power_off()


def test_robot_keywords_storage(tmp_path):
    lib = JumpstarterLibrary()
    lib.connect_to_exporter(dut="dut1")
    lib.power_off()
    (tmp_path / "img").write_bytes(b"jumpstarter" * 1000)
    assert lib.flash_storage(str(tmp_path / "img")) == 11000
    assert lib.dump_storage(str(tmp_path / "out"), size="11000") == 11000
    assert (tmp_path / "out").read_bytes() == b"jumpstarter" * 1000
    lib.power_on()
    with pytest.raises(DutBusyError):
        lib.flash_storage(str(tmp_path / "img"))
    lib.power_off()
    lib.release()
    lib.release()  # twice is fine
