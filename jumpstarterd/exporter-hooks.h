/* Lease hooks and health checks: configured commands at a lease's edges and on a schedule, reported to the controller */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"
#include "exporter-link.h"

/* For the DUTs of config with "hooks:" or "health:" (docs/policy.md): beforeLease when a lease
 * begins on the DUT, afterLease when it ends, the health check every interval between leases and
 * after a failed hook; each result goes to the journal and, through the link, to the controller.
 * config and link must outlive it. Logs. */
typedef struct ExporterHooks ExporterHooks;
int exporter_hooks_new(sd_event *event, const ExporterConfig *config, ExporterLink *link, ExporterHooks **ret);
/* Kills what still runs. */
ExporterHooks *exporter_hooks_free(ExporterHooks *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(ExporterHooks *, exporter_hooks_free);
