/* A DUT of another exporter, reached over TLS data streams (control, serial, storage) */
#pragma once

#include "driver.h"

extern const Driver driver_remote;

/* Replaces the stream token for the next connections (the agent renews it before it expires); a
 * stream that was refused for its token is retried at once. */
int remote_set_token(void *instance, const char *token);
