"""Hardware tests for the widget board; as shipped, the simulated one of .jumpstarter/local-config.yaml.

Local mode:  jmp local start --config=./.jumpstarter/local-config.yaml && pytest examples/hardware_tests/
Lab (lease): jmp local start --config client.yaml && pytest examples/hardware_tests/
"""

import os
import re

import pytest

from jumpstarter_testing import DutBusyError
from jumpstarter_testing.pytest import JumpstarterTest

PROMPT = re.compile(r"\S+:~# ")


class TestMyDevice(JumpstarterTest):
    exporter_selector = "vendor=acme,model=widget-v2"

    def test_power_cycle(self):
        self.client.power.on()
        assert self.client.serial.read_until("boot complete") is not None
        self.client.power.off()

    def test_power_state(self):
        self.client.power.on()
        assert self.client.power.state == "on"
        self.client.power.off()
        assert self.client.power.state == "off"

    def test_boot_log(self):
        self.client.power.on()
        log = self.client.serial.read_until("boot complete", timeout=30)
        assert "Starting kernel" in log
        # A regex: the kernel's version line, anywhere in what came before.
        assert re.search(r"Linux version \S+", log)
        self.client.power.off()

    def test_cycle_boots_again(self):
        self.client.power.on()
        self.client.serial.read_until("boot complete")
        self.client.power.cycle()
        assert self.client.power.state == "on"
        # Only output printed after the first boot counts: a fresh boot log.
        assert "U-Boot" in self.client.serial.read_until("boot complete")
        self.client.power.off()

    def test_console_command(self):
        self.client.power.on()
        self.client.serial.read_until("boot complete")
        self.client.serial.read_until(PROMPT)
        self.client.serial.sendline("uname -a")
        index = self.client.serial.expect([re.compile(r"Linux \S+ (\S+) .*GNU/Linux"), "not found"])
        assert index == 0, self.client.serial.before
        assert self.client.serial.match.group(1) == "6.1.0-sim"
        self.client.power.off()


class TestWidgetStorage(JumpstarterTest):
    selector = "vendor=acme,model=widget-v2"

    def test_flash_and_dump(self, tmp_path):
        self.client.power.off()
        image = tmp_path / "image.bin"
        data = os.urandom(256 * 1024)
        image.write_bytes(data)
        assert self.client.storage.flash(str(image)) == len(data)
        copy = tmp_path / "dump.bin"
        assert self.client.storage.dump(str(copy), size=len(data)) == len(data)
        assert copy.read_bytes() == data

    def test_flash_refused_while_powered(self, tmp_path):
        image = tmp_path / "image.bin"
        image.write_bytes(b"\0" * 4096)
        self.client.power.on()
        try:
            with pytest.raises(DutBusyError, match="power it off"):
                self.client.storage.flash(str(image))
        finally:
            self.client.power.off()
