#!/bin/bash
# The D-Bus API on a system bus under polkit, and per-user access to the file view (docs/dbus.md):
# a private system-type dbus-daemon, a real polkitd, users alice and bob made here.
# shellcheck disable=SC2016
source "$(dirname "$0")/lib.sh"

: "${JUMPSTARTERD:?}" "${JUMPSTARTER_FUSE:?}"
for p in dbus-daemon busctl useradd userdel groupadd runuser /usr/lib/polkit-1/polkitd; do
        command -v "$p" >/dev/null || fail "$p is missing (install dbus, polkitd, systemd, passwd, util-linux)"
done
for u in alice bob; do
        if id "$u" >/dev/null 2>&1; then fail "a user $u exists already; this test makes and removes its own"; fi
done

ID="$$-$RANDOM"
POLICY=/usr/share/polkit-1/actions/dev.jumpstarter.test-$ID.policy
RULES=/etc/polkit-1/rules.d/50-jumpstarter-test-$ID.rules
RULES_BOB=/etc/polkit-1/rules.d/49-jumpstarter-test-bob-$ID.rules
BUSDIR=$(mktemp -d /tmp/jmp-bus.XXXXXX)
MADE_GROUP=
MADE_USERS=

dbus_cleanup() {
        local rc=$?
        set +e
        for p in ${TEST_PIDS:-}; do kill "$p" 2>/dev/null; done
        for p in ${TEST_PIDS:-}; do wait "$p" 2>/dev/null; done
        TEST_PIDS=
        rm -f "$POLICY" "$RULES" "$RULES_BOB"
        for u in $MADE_USERS; do userdel "$u" 2>/dev/null; done
        [ -n "$MADE_GROUP" ] && groupdel jumpstarter 2>/dev/null
        umount -l "$MNT" 2>/dev/null
        if [ "$rc" -ne 0 ]; then
                for l in "$BUSDIR"/*.log; do [ -e "$l" ] && { echo "--- $l"; tail -n 40 "$l"; }; done
        fi
        rm -rf "$BUSDIR"
        return "$rc"
}
trap 'dbus_cleanup; cleanup' EXIT

# Users and group: alice is in jumpstarter, bob is not.
if ! getent group jumpstarter >/dev/null; then
        groupadd --system jumpstarter
        MADE_GROUP=1
fi
useradd --no-create-home --shell /bin/sh -G jumpstarter alice && MADE_USERS="alice"
useradd --no-create-home --shell /bin/sh bob && MADE_USERS="$MADE_USERS bob"
ALICE_UID=$(id -u alice)

# The users reach the mount point and the bus socket, nothing else of ours.
chmod 0711 "$T" "$BUSDIR"

# A private system bus with the system's policy for polkitd and ours for jumpstarterd.
mkdir "$BUSDIR/system.d"
cp /usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf "$BUSDIR/system.d/"
cp "$SOURCE_ROOT/polkit/dev.jumpstarter.Jumpstarter1.conf" "$BUSDIR/system.d/"
cat > "$BUSDIR/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$BUSDIR/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <includedir>$BUSDIR/system.d</includedir>
</busconfig>
EOF
dbus-daemon --config-file="$BUSDIR/bus.conf" --nofork --nopidfile >"$BUSDIR/dbus.log" 2>&1 &
TEST_PIDS="$!"
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$BUSDIR/system_bus_socket"
wait_for test -S "$BUSDIR/system_bus_socket" || fail "dbus-daemon did not start"

# polkit: the project's actions and example rules, installed where polkitd reads them.
cp "$SOURCE_ROOT/polkit/dev.jumpstarter.policy" "$POLICY"
cp "$SOURCE_ROOT/polkit/50-jumpstarter.rules" "$RULES"
/usr/lib/polkit-1/polkitd --no-debug >"$BUSDIR/polkitd.log" 2>&1 &
TEST_PIDS="$TEST_PIDS $!"
wait_for busctl --system status org.freedesktop.PolicyKit1 || fail "polkitd did not take its name"

# jumpstarterd and jumpstarter-fuse as their units run them, plus the system bus.
write_config "$T/config.yaml" "  dut2:
    type: sim
    labels:
      vendor: acme
      model: widget-v3
    config:
      size: 1MiB
      boot_time: 200ms"
start_daemon() {
        "$JUMPSTARTERD" --config "$T/config.yaml" --listen "$T/agent.sock" --system-bus >>"$T/jumpstarterd.log" 2>&1 &
        DAEMON=$!
        TEST_PIDS="$TEST_PIDS $DAEMON"
        wait_for busctl --system status dev.jumpstarter.Jumpstarter1 || fail "jumpstarterd did not take its name"
}
start_daemon
mkdir "$MNT"
"$JUMPSTARTER_FUSE" --connect "$T/agent.sock" -o allow_other "$MNT" >"$T/fuse.log" 2>&1 &
FUSE=$!
TEST_PIDS="$TEST_PIDS $FUSE"
wait_for test -e "$MNT/dut1/power" || fail "the file view did not come up"

as() { local u=$1; shift; runuser -u "$u" -- env -u JMP_RUNTIME_DIR "$@"; }
call() { local u=$1; shift; as "$u" busctl --system call dev.jumpstarter.Jumpstarter1 /dev/jumpstarter/agent "$@"; }
owner() { stat -c %U "$1"; }

echo "busctl introspect shows the API"
out=$(busctl --system introspect dev.jumpstarter.Jumpstarter1 /dev/jumpstarter/agent)
for m in CreateLease ReleaseLease ExtendLease ListLeases SetPower OpenSerialLog OpenStorage LeaseEnded; do
        grep -q "\.$m " <<<"$out" || fail "introspection lacks $m: $out"
done
out=$(busctl --system introspect dev.jumpstarter.Jumpstarter1 /dev/jumpstarter/dut/dut1 dev.jumpstarter.Dut1)
for p in Power Holder HolderUid Lease LeaseEnd; do
        grep -q "\.$p .*emits-change" <<<"$out" || fail "dut1's object lacks property $p: $out"
done
busctl --system tree dev.jumpstarter.Jumpstarter1 | grep -q /dev/jumpstarter/dut/dut2 || fail "no object for dut2"

echo "unleased DUTs belong to root"
[ "$(owner "$MNT/dut1")" = root ] || fail "unleased dut1 belongs to $(owner "$MNT/dut1")"
expect_error "Permission denied" as alice cat "$MNT/dut1/power"

echo "alice leases dut1 through jmp and uses its files"
out=$(as alice "$JMP" lease create --selector dut1 --duration 10m) || fail "alice's lease failed: $out"
grep -q "lease-1 .*dut1 .*alice" <<<"$out" || fail "unexpected lease: $out"
wait_for test "$(owner "$MNT/dut1")" = alice || fail "dut1 did not become alice's"
[ "$(stat -c %a "$MNT/dut1")" = 700 ] || fail "dut1 is mode $(stat -c %a "$MNT/dut1")"
[ "$(stat -c %a%U "$MNT/dut1/power")" = 600alice ] || fail "power is $(stat -c %a%U "$MNT/dut1/power")"
[ "$(stat -c %a "$MNT/dut1/serial.log")" = 400 ] || fail "serial.log is mode $(stat -c %a "$MNT/dut1/serial.log")"
grep -q "holder=alice" "$MNT/dut1/lease" || fail "lease file: $(cat "$MNT/dut1/lease")"
[ "$(busctl --system get-property dev.jumpstarter.Jumpstarter1 /dev/jumpstarter/dut/dut1 dev.jumpstarter.Dut1 HolderUid)" = "u $ALICE_UID" ] ||
        fail "HolderUid is not alice's"
as alice sh -c "echo on > $MNT/dut1/power" || fail "alice cannot power her DUT"
[ "$(as alice cat "$MNT/dut1/power")" = on ] || fail "dut1 is not on"
wait_for as alice grep -q 'boot complete' "$MNT/dut1/serial.log" || fail "alice cannot read the console"
PTY=$(readlink "$MNT/dut1/serial")
[ "$(owner "$PTY")" = alice ] || fail "the terminal $PTY belongs to $(owner "$PTY")"
as alice "$JMP" power off dut1 || fail "jmp power (system bus) failed for alice"
[ "$(as alice "$JMP" power status dut1)" = off ] || fail "dut1 is not off"
as alice dd if=/dev/zero of="$MNT/dut1/storage" bs=4096 count=4 conv=notrunc status=none || fail "alice cannot flash"
as alice "$JMP" lease list | grep -q "lease-1 .*dut1 .*alice" || fail "jmp lease list lacks alice's lease"

echo "bob reaches none of it"
for f in power serial.log storage lease; do
        expect_error "Permission denied" as bob cat "$MNT/dut1/$f"
done
expect_error "Permission denied" as bob ls "$MNT/dut1"
expect_error "Permission denied" as bob sh -c "echo off > $MNT/dut1/serial"
expect_error "dev.jumpstarter.power" call bob dev.jumpstarter.Agent1 SetPower ss dut2 on
[ "$(busctl --system call dev.jumpstarter.Jumpstarter1 /dev/jumpstarter/agent dev.jumpstarter.Agent1 GetPower s dut2)" = 's "off"' ] ||
        fail "a refused SetPower changed dut2"
expect_error "dev.jumpstarter.lease" as bob "$JMP" lease create --selector dut2 --duration 5m
expect_error "dev.jumpstarter.serial" call bob dev.jumpstarter.Agent1 OpenSerialLog s dut2
expect_error "leased by alice" call bob dev.jumpstarter.Agent1 SetPower ss dut1 on
expect_error "leased by alice" call bob dev.jumpstarter.Agent1 OpenSerialLog s dut1
expect_error "dev.jumpstarter.admin" call bob dev.jumpstarter.Leases1 ReleaseLease s lease-1
expect_error "Only root" call bob dev.jumpstarter.Agent1 SetPowerAs uss "$(id -u bob)" dut1 on

echo "a rule grants bob, without a restart"
cat > "$RULES_BOB" <<'EOF'
polkit.addRule(function(action, subject) {
        if (action.id.indexOf("dev.jumpstarter.") == 0 && action.id != "dev.jumpstarter.admin" && subject.user == "bob")
                return polkit.Result.YES;
});
EOF
wait_for call bob dev.jumpstarter.Agent1 SetPower ss dut2 on || fail "bob is still refused after the rule"
[ "$(as bob "$JMP" power status dut2)" = on ] || fail "bob's SetPower did not power dut2"
expect_error "leased by alice" call bob dev.jumpstarter.Agent1 SetPower ss dut1 off
expect_error "leased by alice" as bob "$JMP" power off dut1
expect_error "leased by alice" as bob "$JMP" lease create --selector dut1 --duration 5m
expect_error "Permission denied" as bob cat "$MNT/dut1/power"
[ "$(as alice cat "$MNT/dut1/power")" = off ] || fail "bob changed alice's DUT"

echo "a passed fd stops working when its lease ends"
as bob "$JMP" power off dut2
out=$(as bob "$JMP" lease create --selector 'model=widget-v3' --duration 10m) || fail "bob's lease failed: $out"
grep -q "dut2 .*bob" <<<"$out" || fail "bob did not get dut2: $out"
wait_for test "$(owner "$MNT/dut2")" = bob || fail "dut2 did not become bob's"
# bob holds serial.log open and reads again after his lease ended and alice took the DUT.
X=$BUSDIR/bob
mkdir -m 0700 "$X" && chown bob "$X"
as bob bash -c "exec 3<$MNT/dut2/serial.log; cat <&3 >/dev/null; touch $X/opened; \
        while [ ! -e $X/taken ]; do sleep 0.1; done; if cat <&3 >$X/late 2>$X/late.err; then echo READ; else echo FAILED; fi" \
        >"$T/reader.out" 2>&1 &
READER=$!
TEST_PIDS="$TEST_PIDS $READER"
wait_for test -e "$X/opened" || fail "bob's reader did not open serial.log"
# And a storage fd that bob got over D-Bus himself (not through the mount): it works while he holds
# the lease, and not after.
mkfifo "$X/go"
chown bob "$X/go"
as bob bash -c "exec '$JMP_BUS_STORAGE' dut2 < '$X/go' > '$X/storage.out' 2>&1" &
HOLDER=$!
TEST_PIDS="$TEST_PIDS $HOLDER"
exec 8> "$X/go"
wait_for grep -q . "$X/storage.out" || fail "bob's storage fd: no answer"
[ "$(head -n 1 "$X/storage.out")" = ok ] || fail "bob cannot write his DUT's storage over D-Bus: $(cat "$X/storage.out")"
as bob "$JMP" lease release dut2 >/dev/null || fail "bob could not release"
echo go >&8
exec 8>&-
wait "$HOLDER" || true
echo "bob's storage fd after the lease: $(sed -n 2p "$X/storage.out")"
[ "$(sed -n 2p "$X/storage.out")" != ok ] || fail "bob's storage fd still writes after his lease ended"
[ -n "$(sed -n 2p "$X/storage.out")" ] || fail "bob's storage fd: no answer after the lease ended: $(cat "$X/storage.out")"
as alice "$JMP" lease create --selector dut2 --duration 5m >/dev/null || fail "alice could not lease dut2"
wait_for test "$(owner "$MNT/dut2")" = alice || fail "dut2 did not become alice's"
as alice sh -c "echo on > $MNT/dut2/power"
wait_for as alice grep -q 'boot complete' "$MNT/dut2/serial.log" || fail "dut2 did not boot for alice"
touch "$X/taken"
wait "$READER"
grep -q FAILED "$T/reader.out" || fail "bob's old fd still reads: $(cat "$T/reader.out") $(head -c 200 "$X/late")"
[ ! -s "$X/late" ] || fail "bob's old fd read alice's console"
expect_error "Permission denied" as bob cat "$MNT/dut2/serial.log"

echo "root sees all; a release gives the DUT back to root"
[ "$(cat "$MNT/dut2/power")" = on ] || fail "root cannot read alice's DUT"
as alice "$JMP" lease release dut2 >/dev/null || fail "alice could not release dut2"
wait_for test "$(owner "$MNT/dut2")" = root || fail "dut2 did not go back to root"
as alice "$JMP" lease list | grep -q dut2 && fail "dut2's lease is still listed"

echo "jumpstarterd restarted under load"
as alice "$PY" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("OPEN", flush=True)
try:
    while True:
        os.pread(fd, 65536, 0)
except OSError as e:
    print("ENDED", e.strerror, flush=True)
' "$MNT/dut1/storage" >"$T/load.out" 2>&1 &
LOAD=$!
TEST_PIDS="$TEST_PIDS $LOAD"
wait_for grep -q OPEN "$T/load.out" || fail "the load did not start"
kill -9 "$DAEMON"
wait "$DAEMON" 2>/dev/null || true
wait_for grep -q ENDED "$T/load.out" || fail "an open file hangs after jumpstarterd died"
wait "$LOAD"
start_daemon
wait_for cat "$MNT/dut1/labels" || fail "jumpstarter-fuse did not reconnect"
alive "$FUSE" || fail "jumpstarter-fuse died"
# Leases live in jumpstarterd: the restart ended alice's.
wait_for test "$(owner "$MNT/dut1")" = root || fail "dut1 is still $(owner "$MNT/dut1")'s after the restart"

echo "OK"
