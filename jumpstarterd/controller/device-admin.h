/* Device health and admin states, hook reports, and token rotation: the routes of docs/policy.md */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "lease-scheduler.h"

typedef struct Controller Controller;
typedef struct CtlExporter CtlExporter;

/* The scheduler state of device "EXPORTER/DUT" of e: offline when e is, disabled while an admin
 * disabled it or its health check failed, else online. */
ExporterState controller_device_state(CtlExporter *e, const char *device, bool online);
/* {"disabled": bool, "unhealthy": "why" or null} of one DUT of e (a new reference, NULL on OOM). */
json_t *controller_device_marks_to_json(CtlExporter *e, const char *dut);
/* Whether jti is the previous token of this client or exporter record, still in its rotation grace. */
bool controller_token_in_grace(json_t *record, const char *jti);
/* The routes; *ret_bindings is the caller's to free. */
int controller_device_admin_register(Controller *c, void **ret_bindings);
/* Whether the record's token expires within TOKEN_EXPIRES_SOON_USEC (30 days), or has. */
#define TOKEN_EXPIRES_SOON_USEC (30ULL * 24 * 3600 * 1000000ULL)
bool controller_token_expires_soon(json_t *record);
