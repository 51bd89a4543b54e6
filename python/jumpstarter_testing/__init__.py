"""Jumpstarter test helpers: a client for a DUT of the file view, pytest's JumpstarterTest
(jumpstarter_testing.pytest) and Robot Framework's JumpstarterLibrary (jumpstarter_testing.robot).
Standard library only."""

from .client import Client, Power, Serial, Storage, connect, list_duts
from .errors import DutBusyError, DutGoneError, JumpstarterError, LeaseError, SerialTimeout
from .lease import Lease
from .selector import SelectorError, parse_selector, selector_matches

__version__ = "0.1.0"

__all__ = ["Client", "Power", "Serial", "Storage", "connect", "list_duts", "Lease", "JumpstarterError",
           "DutGoneError", "DutBusyError", "LeaseError", "SerialTimeout", "SelectorError", "parse_selector",
           "selector_matches"]
