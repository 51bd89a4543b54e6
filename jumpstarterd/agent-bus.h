/* Agent D-Bus API: peer to peer on a private UNIX socket, and on the system bus under polkit */
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "exporter.h"

typedef struct Agent Agent;

/* Listens on socket_path (mode 0600; a stale socket that nobody answers on is replaced). */
int agent_new(sd_event *event, Exporter *exporter, const char *socket_path, Agent **ret);
/* Closes every client connection and removes the socket file. */
Agent *agent_free(Agent *a);

size_t agent_n_connections(const Agent *a);

/* Serves the API on bus (the system bus) too, under AGENT_BUS_NAME (docs/dbus.md): every caller
 * but root is checked by polkit and against the DUT's lease. Registers the objects, then takes the
 * name. Logs its errors. */
int agent_attach_system_bus(Agent *a, sd_bus *bus);
/* Members of gid share every leased DUT with its holder. */
void agent_set_share_group(Agent *a, gid_t gid);

static inline void agent_freep(Agent **a) {
        agent_free(*a);
}
