/* Calls into jumpstarterd's agent API from the command line: its private socket, or the system bus */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "local-instance.h"

/* Connects to the agent socket of a local instance (peer to peer). */
int agent_connect(const LocalInstance *i, sd_bus **ret);
/* Connects to the system bus when there is one and jumpstarterd owns AGENT_BUS_NAME on it: 1 and
 * *ret, else 0 (quietly: then the caller falls back to local mode or the controller). */
int agent_connect_system(sd_bus **ret);
/* The destination of agent calls on bus: AGENT_BUS_NAME on the system bus, none peer to peer. */
const char *agent_destination(sd_bus *bus);
/* Logs a failed call with the daemon's own message and returns the negative errno it carries. */
int agent_call_error(const char *what, const sd_bus_error *error, int r);

/* jmp lease create/list/release/extend on the system bus (Leases1, docs/dbus.md) for leases of this
 * host's DUTs. Each prints the result and returns jmp's exit code. */
/* The system bus for jmp lease: 1 and *ret when no controller is meant (no --client-config, no
 * $JMP_CLIENT_CONFIG) and jumpstarterd is on the system bus, else 0. */
int bus_lease_open(sd_bus **ret);
int bus_lease_create(sd_bus *bus, const char *dut_or_selector, uint64_t duration_usec, bool json);
int bus_lease_list(sd_bus *bus, bool json);
int bus_lease_release(sd_bus *bus, const char *lease_or_dut);
int bus_lease_extend(sd_bus *bus, const char *lease_or_dut, uint64_t by_usec);
