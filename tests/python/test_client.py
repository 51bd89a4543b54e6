"""The parts of the client that need no DUT: timeouts, lease names, jmp's messages, the console
reader's matching (over a plain file that a thread appends to, as serial.log grows)."""

import os
import re
import threading

import pytest

from jumpstarter_testing import DutGoneError, SerialTimeout
from jumpstarter_testing.client import Client, parse_timeout
from jumpstarter_testing.lease import _jmp_message, lease_name_for
from jumpstarter_testing.pytest import JumpstarterTest


@pytest.mark.parametrize("text, seconds", [
    (30, 30.0), (0.5, 0.5), ("30", 30.0), ("30s", 30.0), ("1.5 min", 90.0), ("1m 30s", 90.0),
    ("500ms", 0.5), ("2 minutes", 120.0), ("1h", 3600.0),
])
def test_parse_timeout(text, seconds):
    assert parse_timeout(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "5 parsecs", "-1", -1, None, "1s x"])
def test_parse_timeout_refuses(bad):
    with pytest.raises(ValueError):
        parse_timeout(bad)


def test_lease_names():
    name = lease_name_for("TestMyDevice")
    assert re.fullmatch(r"testmydevice-[0-9a-f]{8}", name)
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", lease_name_for("X" * 200 + "_Ünïcode"))
    assert lease_name_for("T") != lease_name_for("T")


def test_jmp_messages():
    text, reason = _jmp_message("waiting: ExportersBusy, position 1 in queue\n"
                                "jmp: Failed to create a lease: Unsatisfiable: selector \"a=1,a=2\" can never "
                                "match any exporter\n")
    assert text.startswith("Failed to create a lease: Unsatisfiable")
    assert reason == "Unsatisfiable"
    assert _jmp_message("jmp: Failed to release lease l1: NotFound: No lease named 'l1'\n")[1] == "NotFound"
    assert _jmp_message("")[0] == "jmp failed without a message"


def test_selector_spellings():
    class A(JumpstarterTest):
        exporter_selector = "a=1"

    class B(JumpstarterTest):
        selector = "b=1"

    class C(JumpstarterTest):
        pass

    assert A.jumpstarter_selector() == "a=1"
    assert B.jumpstarter_selector() == "b=1"
    assert C.jumpstarter_selector() == ""


@pytest.fixture
def dut(tmp_path):
    d = tmp_path / "dut1"
    d.mkdir()
    (d / "labels").write_text("model=widget-v2\nvendor=acme\n")
    (d / "serial.log").write_text("old boot complete\n")
    return d


def test_reader_starts_at_connect_and_keeps_its_position(dut):
    client = Client("dut1", mountpoint=str(dut.parent))
    assert client.labels == {"model": "widget-v2", "vendor": "acme"}
    log = open(dut / "serial.log", "a")

    def later():
        log.write("U-Boot\nboot complete\nlogin:")
        log.flush()

    t = threading.Timer(0.1, later)
    t.start()
    # The old line does not count: the console is read from when the client connected.
    text = client.serial.read_until("boot complete", timeout=30)
    t.join()
    assert text == "U-Boot\nboot complete"
    assert client.serial.expect([re.compile(r"pass\w+:"), "login:"], timeout=5) == 1
    assert client.serial.before == "\n"
    with pytest.raises(SerialTimeout) as e:
        client.serial.read_until("never", timeout=0)
    assert "it printed nothing since the last match" in str(e.value)
    log.write("partial line")
    log.flush()
    with pytest.raises(SerialTimeout) as e:
        client.serial.read_until(re.compile("nev+er"), timeout=0.1)
    assert "'nev+er' did not appear on the console within 0.1s" in str(e.value)
    assert e.value.tail == "partial line"
    client.close()
    log.close()


def test_missing_dut(tmp_path, dut):
    with pytest.raises(DutGoneError, match=r"no DUT nope under .* \(DUTs there: dut1\)"):
        Client("nope", mountpoint=str(dut.parent))
    with pytest.raises(DutGoneError, match=r"DUTs there: none"):
        Client("nope", mountpoint=str(tmp_path / "empty"))
