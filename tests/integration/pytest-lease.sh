#!/usr/bin/env bash
# Debian's pytest runs the example suite through a lease in distributed mode (a real controller over
# TLS, an exporter and the agent on one machine, as in agent-leases.sh): JumpstarterTest leases with
# `jmp lease create` and releases at the end of each class, also when a test fails, is interrupted or
# the process is killed; a selector nothing matches fails the class setup with the controller's
# reason; read_until on a DUT whose exporter vanished raises promptly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-pytest.sh"

HERE=$SOURCE_ROOT/tests/integration/python
pytest_lab
"$JMP" local start --config "$T/alice.yaml" --mountpoint "$MNT" > /dev/null || fail "the agent did not start"

no_live_leases() { [ -z "$(live_leases)" ]; }
# ended_released NAME: the controller's history has lease NAME ended Released.
ended_released() {
        [ "$(lab_api GET "/leases?history=true" |
             lab_json "[l['state'] + '/' + str(l['reason']) for l in d['items'] if l['name'] == '$1'][0]")" = ended/Released ]
}
history_names() { lab_api GET "/leases?history=true" | lab_json "' '.join(l['name'] for l in d['items'])"; }

# The example suite, as the lab's CI runs it: each class leases the board and gives it back.
$PYTEST -v "$SOURCE_ROOT/examples/hardware_tests/" > "$T/examples.out" 2>&1 ||
        fail "the example suite failed through a lease: $(cat "$T/examples.out")"
grep -q " 7 passed" "$T/examples.out" || fail "not all example tests passed: $(tail -n 3 "$T/examples.out")"
no_live_leases || fail "leases left after the example suite: $(live_leases)"
for prefix in testmydevice- testwidgetstorage-; do
        name=$(history_names | tr ' ' '\n' | grep "^$prefix" | head -n 1)
        [ -n "$name" ] || fail "no lease $prefix* was taken: $(history_names)"
        ended_released "$name" || fail "lease $name did not end Released: $(lab_api GET "/leases?history=true")"
done

# The Robot keywords and the example Robot suite, through a lease.
CASE=robot $PYTEST -v "$HERE/test_lease.py" > "$T/robot.out" 2>&1 || fail "Robot keywords: $(cat "$T/robot.out")"
grep -q "2 passed" "$T/robot.out" || fail "Robot keywords: $(cat "$T/robot.out")"
$PY "$HERE/robot_mini.py" "$SOURCE_ROOT/examples/hardware_tests/widget.robot" > "$T/robot-suite.out" 2>&1 ||
        fail "the Robot suite through a lease: $(cat "$T/robot-suite.out")"
no_live_leases || fail "leases left after the Robot tests: $(live_leases)"

# A selector nothing matches: the class setup fails with the controller's reason, at once.
if CASE=nomatch $PYTEST -v "$HERE/test_lease.py" > "$T/nomatch.out" 2>&1; then
        fail "a selector nothing matches passed: $(cat "$T/nomatch.out")"
fi
grep -q "ERROR at setup of TestNoMatch.test_never_runs" "$T/nomatch.out" || fail "no setup error: $(cat "$T/nomatch.out")"
grep -q "no exporter matches selector 'vendor=nobody': the controller says NoMatchingExporter" "$T/nomatch.out" ||
        fail "the reason is missing: $(cat "$T/nomatch.out")"
if CASE=nomatch NOMATCH_SELECTOR='a=1,a=2' $PYTEST -v "$HERE/test_lease.py" > "$T/unsat.out" 2>&1; then
        fail "an unsatisfiable selector passed: $(cat "$T/unsat.out")"
fi
grep -q "Unsatisfiable: selector \"a=1,a=2\" can never match" "$T/unsat.out" || fail "the reason is missing: $(cat "$T/unsat.out")"
no_live_leases || fail "leases left after the selectors that match nothing: $(live_leases)"

# A test that crashes still releases its lease: an exception, Ctrl-C, SIGTERM, SIGKILL.
for how in exception interrupt sigterm sigkill; do
        rm -f "$T/lease-name"
        if CASE=crash CRASH=$how LEASE_FILE=$T/lease-name $PYTEST -v "$HERE/test_lease.py" > "$T/crash.out" 2>&1; then
                fail "the crashing test ($how) passed: $(cat "$T/crash.out")"
        fi
        name=$(cat "$T/lease-name") || fail "the crashing test ($how) took no lease: $(cat "$T/crash.out")"
        # After SIGKILL the guard process releases it, once it sees its parent gone.
        wait_for no_live_leases || fail "lease $name left after a crash ($how): $(live_leases)"
        ended_released "$name" || fail "lease $name did not end Released after a crash ($how)"
done

# The exporter goes away while a test waits on the console: DutGoneError, long before the timeout.
VANISH_PID=$(cut -d' ' -f1 "$JMP_RUNTIME_DIR"/local/*-emnt/jumpstarterd.pid) \
        $PYTEST -v -s "$HERE/test_vanish.py" > "$T/vanish.out" 2>&1 || fail "the vanishing exporter: $(cat "$T/vanish.out")"
grep -q "raised: .*: serial.log: Input/output error: the DUT is gone" "$T/vanish.out" ||
        fail "the vanishing exporter's error: $(cat "$T/vanish.out")"
no_live_leases || fail "leases left after the exporter vanished: $(live_leases)"
echo "PASS"
