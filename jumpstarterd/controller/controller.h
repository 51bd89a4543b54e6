/* Controller role of jumpstarterd: the API server, the lease scheduler and the store, on one loop */
#pragma once

#include <systemd/sd-event.h>

#include "controller-config.h"
#include "macro.h"

/* What the controller keeps where, and how it starts, is in docs/controller.md. */
typedef struct Controller Controller;

/* Opens the store and keyring under config->state_directory (creating them, and the admin
 * ClientConfig, on first start), restores exporters and live leases, and starts serving the API.
 * Logs its errors. config must outlive the controller. */
int controller_new(sd_event *event, const ControllerConfig *config, Controller **ret);
/* Stops serving; leases live on in the store. */
Controller *controller_free(Controller *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Controller *, controller_free);

/* The address generated configs point at ("127.0.0.1:8443"). */
const char *controller_get_endpoint(Controller *c);
