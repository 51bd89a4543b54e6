#!/usr/bin/env bash
# Runs the shell steps of each CI example (examples/ci/) in order, as its runner would, in a copy of
# the checkout: the GitHub Actions workflow in local mode, the GitHub Actions workflow, GitLab CI job
# and Tekton Task that lease from a controller (a real one, with an exporter, on this machine). Each
# runs once as shipped (it passes) and once with a failing test added: the pipeline fails, its
# cleanup step still runs, and local mode or the agent is stopped afterwards, no lease left.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-pytest.sh"

RUNNER=$SOURCE_ROOT/tests/integration/python/ci_runner.py
CI=$SOURCE_ROOT/examples/ci

# What the runner's machine has installed: jmp and pytest on PATH (jmp finds the daemons beside it).
mkdir -p "$T/bin"
ln -s "$JMP" "$T/bin/jmp"
ln -s "$PYTEST" "$T/bin/pytest"
JMP_BIN=$JMP
export -n JMP  # the tests' own helpers keep using it; the pipelines find jmp on PATH
unset JMP_MOUNTPOINT
export PATH=$T/bin:$PATH

# The examples use the default mount point, /jmp (a mount private to this test's namespace).
[ -d /jmp ] || { mkdir /jmp; CREATED_JMP=1; }
ci_cleanup() {
        local rc=$?
        set +e
        "$JMP_BIN" local stop >/dev/null 2>&1
        [ -n "${CREATED_JMP:-}" ] && rmdir /jmp 2>/dev/null
        (exit "$rc")
        if declare -F pytest_lab_cleanup >/dev/null && [ -n "${LAB:-}" ]; then pytest_lab_cleanup; else cleanup; fi
}
trap ci_cleanup EXIT

# workspace [fail]: a fresh checkout; with "fail", one more test, which fails.
workspace() {
        rm -rf "$T/ws"
        mkdir -p "$T/ws"
        cp -r "$SOURCE_ROOT/.jumpstarter" "$SOURCE_ROOT/examples" "$T/ws/"
        if [ "${1:-}" = fail ]; then
                cat > "$T/ws/examples/hardware_tests/test_zz_fails.py" <<'PY'
from jumpstarter_testing.pytest import JumpstarterTest
class TestFails(JumpstarterTest):
    exporter_selector = "vendor=acme,model=widget-v2"
    def test_fails(self):
        assert False, "a test that fails on purpose"
PY
        fi
}

# pipeline KIND FILE pass|fail [NAME=VALUE...]: runs it; checks the outcome and the cleanup.
pipeline() {
        local kind=$1 file=$2 want=$3 out
        shift 3
        out=$T/$(basename "$file" .yml)-$want.out
        workspace "$want"
        if (cd "$T/ws" && $PY "$RUNNER" "$kind" "$CI/$file" "$@") > "$out" 2>&1; then
                [ "$want" = pass ] || fail "$file with a failing test succeeded: $(cat "$out")"
        else
                [ "$want" = fail ] || fail "$file failed: $(cat "$out")"
                grep -q "a test that fails on purpose" "$out" || fail "$file failed otherwise: $(cat "$out")"
        fi
        grep -Eq "passed|failed" "$out" || fail "$file ran no tests: $(cat "$out")"
        [ -s "$T/ws/hardware-tests.xml" ] || fail "$file wrote no JUnit report"
        ! mountpoint -q /jmp || fail "$file left /jmp mounted: $(cat "$out")"
        [ -z "$(ls "$JMP_RUNTIME_DIR"/local/*-jmp/*.pid 2>/dev/null)" ] || fail "$file left daemons running"
        echo "$out"
}

# Local mode: the board on the runner's desk (.jumpstarter/local-config.yaml).
out=$(pipeline github github-local.yml pass)
grep -q "^RUN Stop local mode" "$out" || fail "the cleanup step did not run: $(cat "$out")"
grep -q " 7 passed" "$out" || fail "github-local.yml: $(cat "$out")"
out=$(pipeline github github-local.yml fail)
grep -q "^FAIL Run the hardware tests" "$out" || fail "the test step did not fail: $(cat "$out")"
grep -q "^RUN Stop local mode" "$out" || fail "the cleanup step did not run after the failure: $(cat "$out")"

# Distributed mode: a lab with a controller; the CI's client config has its CA inline.
pytest_lab
LAB=1
trap ci_cleanup EXIT
$PY - "$T/alice.yaml" "$T/controller.pem" > "$T/ci-client.yaml" <<'PY'
import json, sys
cfg, ca = open(sys.argv[1]).read(), open(sys.argv[2]).read()
print(cfg.replace("tls: {ca: controller.pem, insecure: false}", "tls:\n  ca: %s" % json.dumps(ca)))
PY
chmod 600 "$T/ci-client.yaml"
unset JMP_CLIENT_CONFIG
no_live_leases() { [ -z "$(JMP_CLIENT_CONFIG=$T/ci-client.yaml live_leases)" ]; }
mkdir -p "$T/secret"
cp "$T/ci-client.yaml" "$T/secret/client.yaml"

for want in pass fail; do
        out=$(pipeline github github-lease.yml $want "JUMPSTARTER_CLIENT_CONFIG=$(cat "$T/ci-client.yaml")")
        grep -q "^RUN Stop the agent" "$out" || fail "the cleanup step did not run: $(cat "$out")"
        no_live_leases || fail "github-lease.yml ($want) left leases"

        out=$(pipeline gitlab gitlab-ci.yml $want "JUMPSTARTER_CLIENT_CONFIG=$T/ci-client.yaml")
        grep -q "^RUN hardware-tests: after_script" "$out" || fail "after_script did not run: $(cat "$out")"
        no_live_leases || fail "gitlab-ci.yml ($want) left leases"

        out=$(pipeline tekton tekton-task.yml $want "params.image=unused" "workspaces.source.path=$T/ws" \
              "workspaces.jumpstarter-client.path=$T/secret")
        no_live_leases || fail "tekton-task.yml ($want) left leases"
done
grep -q " 7 passed" "$T/tekton-task-pass.out" || fail "tekton-task.yml: $(cat "$T/tekton-task-pass.out")"
grep -q "^FAIL Run the hardware tests" "$T/github-lease-fail.out" || fail "github-lease.yml did not fail the test step"
echo "PASS"
