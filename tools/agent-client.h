/* Calls into jumpstarterd's agent API from the command line */
#pragma once

#include <systemd/sd-bus.h>

#include "local-instance.h"

/* Connects to the agent socket of a local instance (peer to peer). */
int agent_connect(const LocalInstance *i, sd_bus **ret);
/* Logs a failed call with the daemon's own message and returns the negative errno it carries. */
int agent_call_error(const char *what, const sd_bus_error *error, int r);
