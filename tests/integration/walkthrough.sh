#!/usr/bin/env bash
# docs/distributed.md stays true: its ```sh blocks, extracted in order, run as one bash script
# (set -euo pipefail) with the built binaries, in a network namespace of its own (the walkthrough
# uses fixed ports on loopback) and a temp dir; any command that fails fails the test.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-lab.sh"

DOC=$SOURCE_ROOT/docs/distributed.md
BUILD=$(cd "$(dirname "$JMP")/.." && pwd)
[ -x "$BUILD/jumpstarterd/jumpstarterd" ] || fail "no jumpstarterd beside $JMP"

# The blocks, in order.
awk '/^```sh$/ { on = 1; next } /^```/ { on = 0 } on' "$DOC" > "$T/walkthrough.sh"
[ "$(grep -c '^```sh$' "$DOC")" -ge 10 ] || fail "docs/distributed.md has too few sh blocks"
grep -q 'jmp lease create' "$T/walkthrough.sh" || fail "no lease in the extracted walkthrough"

# "From the top of the source tree, after meson compile -C build": a tree whose build/ is this
# test's build directory.
mkdir -p "$T/src"
for f in "$SOURCE_ROOT"/*; do ln -s "$f" "$T/src/$(basename "$f")"; done
rm -f "$T/src/build"
ln -s "$BUILD" "$T/src/build"

# A user's shell: no config of ours leaks in; mktemp makes the lab directory under $T.
unset JMP_CLIENT_CONFIG XDG_CONFIG_HOME
export HOME=$T/home TMPDIR=$T/tmp
mkdir -p "$HOME" "$TMPDIR"

lab_host walk
walk_cleanup() {
        local rc=$? p
        set +e
        # Whatever the walkthrough left running (when it failed half-way), by the namespace's pids.
        for p in $(ip netns pids "$LAB-walk" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        for m in "$TMPDIR"/*/jmp; do umount -l "$m" 2>/dev/null; done
        (exit "$rc")
        cleanup
}
trap walk_cleanup EXIT

rc=0
(cd "$T/src" && on walk timeout 240 bash -euo pipefail "$T/walkthrough.sh") > "$T/walkthrough.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
        tail -n 40 "$T/walkthrough.log" >&2
        for l in "$TMPDIR"/*/*.log; do
                [ -e "$l" ] && { echo "--- $l" >&2; tail -n 20 "$l" >&2; }
        done
        fail "the walkthrough of docs/distributed.md failed (exit $rc; the last lines of its output are above)"
fi
# It ran to its end, which removes the lab directory.
grep -q '^PASS$' "$T/walkthrough.log" || fail "the board test did not pass: $(cat "$T/walkthrough.log")"
[ -z "$(ls "$TMPDIR")" ] || fail "the walkthrough left $(ls "$TMPDIR")"
echo PASS
