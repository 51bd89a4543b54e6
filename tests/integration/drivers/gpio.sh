#!/usr/bin/env bash
# GPIO drivers end to end: gpio/<line> files, a gpio-relay power switch and a mux-gpio storage mux,
# against the fake chip (this kernel has no GPIO): jumpstarterd-fakegpio keeps line levels in
# $JMP_FAKE_GPIO_DIR.
. "$(dirname "$0")/../lib.sh"

: "${JUMPSTARTERD:?JUMPSTARTERD must name the jumpstarterd binary (meson test sets it)}"
export JMP_JUMPSTARTERD=${JMP_JUMPSTARTERD_FAKEGPIO:-$(dirname "$JUMPSTARTERD")/drivers/gpio/fake/jumpstarterd-fakegpio}
[ -x "$JMP_JUMPSTARTERD" ] || fail "no test daemon at $JMP_JUMPSTARTERD (build jumpstarterd-fakegpio)"

export JMP_FAKE_GPIO_DIR=$T/gpio
CHIP=$JMP_FAKE_GPIO_DIR/gpiochip0
mkdir -p "$CHIP"
# The "hardware": physical levels before the daemon starts.
for i in 0 1 2 3; do echo 0 > "$CHIP/$i"; done
echo 1 > "$CHIP/1"

# level N: the physical level of line N. set_level N V: the hardware changes it (whole, as the fake writes).
level() { cat "$CHIP/$1"; }
set_level() { echo "$2" > "$CHIP/$1.new" && mv "$CHIP/$1.new" "$CHIP/$1"; }

cat > "$T/config.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: test
export:
  dut1:
    type: sim
    config:
      boot_time: 100ms
    power:
      type: gpio-relay
      config: { chip: gpiochip0, line: 0, cycle_delay: 200ms }
    gpio:
      reset:
        type: gpio
        config: { chip: gpiochip0, line: 1, active_low: true }
      boot:
        type: gpio
        config: { chip: "0", line: 2, initial: 1 }
YAML
start_local >/dev/null
G=$MNT/dut1/gpio
LOG=$(echo "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log)

# Start: initial drives its line, the others are left as they were.
[ "$(level 2)" = 1 ] || fail "initial: 1 did not drive line 2"
[ "$(level 1)" = 1 ] || fail "line 1 changed at start"
[ "$(level 0)" = 0 ] || fail "the relay changed at start"

# The directory lists the lines; the files are regular 0644 files.
[ "$(ls "$G" | tr '\n' ' ')" = "boot reset " ] || fail "gpio/ lists '$(ls "$G")'"
[ "$(stat -c %A "$G")" = drwxr-xr-x ] || fail "gpio/ is $(stat -c %A "$G")"
[ "$(stat -c %A "$G/reset")" = -rw-r--r-- ] || fail "gpio/reset is $(stat -c %A "$G/reset")"
ls "$MNT/dut1" | grep -qx gpio || fail "gpio/ missing from the DUT directory listing"

# Read: logical values, active_low inverted.
[ "$(cat "$G/reset")" = 0 ] || fail "reset reads '$(cat "$G/reset")' with line 1 high and active_low"
[ "$(cat "$G/boot")" = 1 ] || fail "boot reads '$(cat "$G/boot")'"
[ "$(od -An -c "$G/boot" | tr -d ' ')" = '1\n' ] || fail "a read is not '1' and a newline"

# Write: reaches the hardware (active_low drives it low), with or without a newline.
echo 1 > "$G/reset"
[ "$(level 1)" = 0 ] || fail "echo 1 > reset left line 1 at $(level 1)"
[ "$(cat "$G/reset")" = 1 ] || fail "reset does not read back 1"
printf 0 > "$G/reset"
[ "$(level 1)" = 1 ] || fail "printf 0 > reset left line 1 at $(level 1)"
echo 0 > "$G/boot"
[ "$(level 2)" = 0 ] || fail "echo 0 > boot left line 2 at $(level 2)"
printf '1\n' > "$G/boot"
[ "$(level 2)" = 1 ] || fail "printf '1\\n' > boot left line 2 at $(level 2)"

# The hardware changes under us: reads say so.
set_level 2 0
[ "$(cat "$G/boot")" = 0 ] || fail "boot does not follow the hardware"

# Bad values: EINVAL and nothing changes. dd makes each one a single write().
for bad in 2 on "1\n\n" 01 " 1" 10 "1\r\n" x "0 1"; do
        expect_error "Invalid argument" bash -c "printf '$bad' | dd of=$G/reset bs=64 count=1 status=none"
        [ "$(level 1)" = 1 ] || fail "'$bad' changed line 1"
done
expect_error "Invalid argument" bash -c "echo 2 > $G/reset"
[ "$(level 1)" = 1 ] || fail "echo 2 changed line 1"
[ "$(cat "$G/reset")" = 0 ] || fail "echo 2 changed reset"

# Unknown lines and names: ENOENT. Nothing can be created.
expect_error "No such file" cat "$G/nope"
expect_error "No such file" bash -c "echo 1 | dd of=$G/nope conv=nocreat status=none"
# A shell's > creates what is missing, and nothing can be created (as everywhere in the view).
expect_error "Permission denied" bash -c "echo 1 > $G/nope"
expect_error "No such file" cat "$G/Reset"
expect_error "Permission denied" touch "$G/newline"
expect_error "Not a directory" ls "$G/reset/"

# The relay: power on/off drive line 0, and the power file reads the line back.
[ "$(cat "$MNT/dut1/power")" = off ] || fail "power reads '$(cat "$MNT/dut1/power")' with the relay open"
echo on > "$MNT/dut1/power"
[ "$(level 0)" = 1 ] || fail "power on left line 0 at $(level 0)"
[ "$(cat "$MNT/dut1/power")" = on ] || fail "power does not read on"
echo off > "$MNT/dut1/power"
[ "$(level 0)" = 0 ] || fail "power off left line 0 at $(level 0)"
[ "$(cat "$MNT/dut1/power")" = off ] || fail "power does not read off"
set_level 0 1
[ "$(cat "$MNT/dut1/power")" = on ] || fail "power does not read back the line switched by someone else"

# cycle: off, then on again; the write returns when it is back on.
offs=$(grep -c "Powered off" "$LOG" || true)
ons=$(grep -c "Powered on" "$LOG" || true)
echo cycle > "$MNT/dut1/power"
[ "$(level 0)" = 1 ] || fail "after cycle line 0 is $(level 0)"
[ "$(cat "$MNT/dut1/power")" = on ] || fail "after cycle power reads '$(cat "$MNT/dut1/power")'"
[ "$(grep -c "Powered off" "$LOG")" -gt "$offs" ] || fail "cycle did not switch the relay off"
[ "$(grep -c "Powered on" "$LOG")" -gt "$ons" ] || fail "cycle did not switch the relay on again"
expect_error "Invalid argument" bash -c "echo sideways > $MNT/dut1/power"
[ "$(level 0)" = 1 ] || fail "a bad power word changed line 0"

# The hardware fails: a read fails with EIO, and works again when the hardware is back.
: > "$CHIP/2"
expect_error "Input/output error" cat "$G/boot"
set_level 2 0
[ "$(cat "$G/boot")" = 0 ] || fail "boot does not read again after the hardware is back"

"$JMP" local stop --mountpoint "$MNT" >/dev/null

# --- A storage mux on a GPIO line (mux-gpio): line 3 at host_value (1) gives the card to the host.
cat > "$T/mux.yaml" <<YAML
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: test
export:
  dut1:
    power:
      type: gpio-relay
      config: { chip: gpiochip0, line: 0 }
    storage:
      type: mux-gpio
      config: { chip: gpiochip0, line: 3, path: $T/card.img, timeout: 2s }
YAML
truncate -s 4M "$T/card.img"
line_is() { [ "$(level "$1")" = "$2" ]; }
set_level 0 0
# A card that a crash left with the host: the daemon gives it back to the DUT when it starts.
set_level 3 1
start_local "$T/mux.yaml" >/dev/null
LOG=$(echo "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log)
wait_for line_is 3 0 || fail "the mux was not switched to the DUT at start"
hosts=$(grep -c "Storage switched to the host" "$LOG" || true)
duts=$(grep -c "Storage switched to the dut" "$LOG" || true)
# Flashing: the host has the card for the flash, the DUT again after it.
head -c 1M /dev/urandom > "$T/image"
"$JMP" storage flash dut1 "$T/image" --mountpoint "$MNT" 2> "$T/out" || { cat "$T/out"; fail "flash through mux-gpio failed"; }
cmp -n 1M "$T/image" "$T/card.img" || fail "the card does not hold the flashed image"
[ "$(grep -c "Storage switched to the host" "$LOG")" -gt "$hosts" ] || fail "the flash did not switch the mux to the host"
wait_for line_is 3 0 || fail "the mux did not go back to the DUT after the flash"
[ "$(grep -c "Storage switched to the dut" "$LOG")" -gt "$duts" ] || fail "no switch back to the DUT in the log"
grep "Storage switched" "$LOG" | tail -n1 | grep -q "to the dut" || fail "the last switch was not to the DUT"
# An open storage is the host's; power on after the close finds the card with the DUT.
exec 5< "$MNT/dut1/storage"
[ "$(level 3)" = 1 ] || fail "an open storage left line 3 at $(level 3)"
expect_error "Device or resource busy" bash -c "echo on > $MNT/dut1/power"
exec 5<&-
echo on > "$MNT/dut1/power" || fail "power on after the close failed"
[ "$(level 3)" = 0 ] && [ "$(level 0)" = 1 ] || fail "powered on with line 3 at $(level 3), line 0 at $(level 0)"
expect_error "Device or resource busy" cat "$MNT/dut1/storage"
echo off > "$MNT/dut1/power"
"$JMP" local stop --mountpoint "$MNT" >/dev/null

# At start: a missing chip and a busy line are clear errors that name the DUT and the chip.
sed -i 's/chip: "0", line: 2/chip: gpiochip9, line: 2/' "$T/config.yaml"
expect_error "dut1: GPIO chip gpiochip9 not found" start_local
sed -i 's/chip: gpiochip9, line: 2/chip: gpiochip0, line: 1/' "$T/config.yaml"
expect_error "dut1: Line 1 of GPIO chip gpiochip0 is in use" start_local
[ ! -e "$MNT/dut1" ] || fail "a failed start left the DUT mounted"
echo PASS
