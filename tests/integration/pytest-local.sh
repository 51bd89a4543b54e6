#!/usr/bin/env bash
# Debian's pytest runs the example suite (examples/hardware_tests/) against the simulated board in
# local mode; the client's errors and the Robot keywords are tested from pytest; the example Robot
# suite runs through robot_mini.py; read_until on a DUT whose jumpstarterd vanished raises promptly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-pytest.sh"

HERE=$SOURCE_ROOT/tests/integration/python

"$JMP" local start --config "$SOURCE_ROOT/.jumpstarter/local-config.yaml" --mountpoint "$MNT" > /dev/null ||
        fail "local mode did not start"

# The example suite, as a user runs it: no controller, no client config, no lease.
export JMP_CLIENT_CONFIG=$T/no-such-client.yaml
$PYTEST -v "$SOURCE_ROOT/examples/hardware_tests/" > "$T/examples.out" 2>&1 ||
        fail "the example suite failed in local mode: $(cat "$T/examples.out")"
grep -q "test_power_cycle PASSED" "$T/examples.out" || fail "test_power_cycle did not pass: $(cat "$T/examples.out")"
grep -q " 7 passed" "$T/examples.out" || fail "not all example tests passed: $(tail -n 3 "$T/examples.out")"

# The same file names one DUT when told to.
JMP_DUT=dut1 $PYTEST -q "$SOURCE_ROOT/examples/hardware_tests/" -k test_power_cycle > "$T/dut.out" 2>&1 ||
        fail "JMP_DUT=dut1: $(cat "$T/dut.out")"

# Errors of the client and the Robot keywords, against the same board.
$PYTEST -v "$HERE/test_local.py" > "$T/local.out" 2>&1 || fail "test_local.py failed: $(cat "$T/local.out")"
grep -q "test_robot_keywords PASSED" "$T/local.out" || fail "the Robot keywords were not tested: $(cat "$T/local.out")"

# A failing test is reported as such (the class still tears down), and the board is still usable.
cat > "$T/test_fails.py" <<'PY'
from jumpstarter_testing.pytest import JumpstarterTest
class TestFails(JumpstarterTest):
    exporter_selector = "vendor=acme"
    def test_fails(self):
        self.client.power.on()
        assert self.client.power.state == "off", "this test fails on purpose"
PY
if $PYTEST -q "$T/test_fails.py" > "$T/fails.out" 2>&1; then
        fail "a failing test passed: $(cat "$T/fails.out")"
fi
grep -q "this test fails on purpose" "$T/fails.out" || fail "the failure was not reported: $(cat "$T/fails.out")"

# The example Robot suite, keyword by keyword.
$PY "$HERE/robot_mini.py" "$SOURCE_ROOT/examples/hardware_tests/widget.robot" > "$T/robot.out" 2>&1 ||
        fail "the Robot suite failed: $(cat "$T/robot.out")"
grep -q "3 tests, 3 passed" "$T/robot.out" || fail "the Robot suite: $(cat "$T/robot.out")"

# jumpstarterd goes away while a test waits on the console: DutGoneError, not a timeout or a hang.
VANISH_PID=$(daemon_pid) $PYTEST -v -s "$HERE/test_vanish.py" > "$T/vanish.out" 2>&1 ||
        fail "the vanishing DUT: $(cat "$T/vanish.out")"
grep -q "raised: dut1: serial.log: Input/output error: the DUT is gone" "$T/vanish.out" ||
        fail "the vanishing DUT's error: $(cat "$T/vanish.out")"
echo "PASS"
