"""Robot Framework's `Library    JumpstarterLibrary`: the class of jumpstarter_testing.robot."""

from jumpstarter_testing.robot import JumpstarterLibrary

__all__ = ["JumpstarterLibrary"]
