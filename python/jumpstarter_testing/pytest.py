"""pytest: JumpstarterTest, a base class whose tests get `self.client`, a DUT held for the class.

    from jumpstarter_testing.pytest import JumpstarterTest

    class TestMyDevice(JumpstarterTest):
        exporter_selector = "vendor=acme,model=widget-v2"

        def test_power_cycle(self):
            self.client.power.on()
            assert self.client.serial.read_until("boot complete") is not None
            self.client.power.off()

Works with plain pytest, no plugin: setup_class() finds or leases the DUT, teardown_class() gives
it back (a class that defines its own must call super()'s). See docs/testing.md.
"""

import os

from .client import connect

__all__ = ["JumpstarterTest"]


class JumpstarterTest:
    """Base class for pytest test classes that use one DUT.

    Which DUT: $JMP_DUT names one under the mount point ($JMP_MOUNTPOINT, default /jmp); else a DUT
    there whose labels match the selector (local mode); else a lease taken with `jmp lease create`
    for the class, released at its end even when its tests fail or the run is interrupted.
    """

    #: Label selector of the DUT (docs/selectors.md); `selector` is the same, as Jumpstarter spells it.
    exporter_selector = None
    selector = None
    #: How long the lease lasts at most, and how long to wait for a busy DUT ($JMP_LEASE_DURATION,
    #: $JMP_LEASE_WAIT override them).
    lease_duration = "30m"
    lease_wait = "10m"
    #: The DUT's client, set for the class's tests.
    client = None

    @classmethod
    def jumpstarter_selector(cls):
        a, b = cls.exporter_selector, cls.selector
        if a is not None and b is not None and a != b:
            raise ValueError("%s sets both exporter_selector (%r) and selector (%r): set one"
                             % (cls.__name__, a, b))
        return a if a is not None else (b or "")

    @classmethod
    def setup_class(cls):
        cls.client = None
        cls.client = connect(selector=cls.jumpstarter_selector(),
                             duration=os.environ.get("JMP_LEASE_DURATION") or cls.lease_duration,
                             wait=os.environ.get("JMP_LEASE_WAIT") or cls.lease_wait,
                             hint=cls.__name__)

    @classmethod
    def teardown_class(cls):
        client, cls.client = cls.client, None
        if client is not None:
            client.close()
