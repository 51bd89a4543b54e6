/* Asking polkit, asynchronously on the event loop, whether a bus caller may do something */
#pragma once

#include <systemd/sd-bus.h>

/* The polkit actions (polkit/dev.jumpstarter.policy): one per verb. */
#define POLKIT_ACTION_LEASE   "dev.jumpstarter.lease"
#define POLKIT_ACTION_POWER   "dev.jumpstarter.power"
#define POLKIT_ACTION_SERIAL  "dev.jumpstarter.serial"
#define POLKIT_ACTION_STORAGE "dev.jumpstarter.storage"
#define POLKIT_ACTION_ADMIN   "dev.jumpstarter.admin"

/* r is 1 when authorized, 0 when refused, a negative errno when polkit could not be asked (not
 * running, bad answer): the caller treats that as a refusal that says why. */
typedef void (*PolkitCheckFunc)(int r, void *userdata);

/* Asks org.freedesktop.PolicyKit1 CheckAuthorization for the sender of m (subject
 * system-bus-name), action, with details {"dut": dut} (dut may be NULL), without interaction.
 * Returns 0 and calls done later (never from within) unless *ret_slot is unreferenced first, or a
 * negative errno. */
int polkit_check_async(sd_bus_message *m, const char *action, const char *dut, PolkitCheckFunc done,
                       void *userdata, sd_bus_slot **ret_slot);
