/* Agent D-Bus API served peer to peer on a private UNIX socket */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

#include "exporter.h"

typedef struct Agent Agent;

/* Listens on socket_path (mode 0600; a stale socket that nobody answers on is replaced). */
int agent_new(sd_event *event, Exporter *exporter, const char *socket_path, Agent **ret);
/* Closes every client connection and removes the socket file. */
Agent *agent_free(Agent *a);

size_t agent_n_connections(const Agent *a);

static inline void agent_freep(Agent **a) {
        agent_free(*a);
}
