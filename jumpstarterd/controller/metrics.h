/* Controller observability: /metrics, the usage report, lease teams and lease journal fields */
#pragma once

#include "config.h"

typedef struct Controller Controller;
typedef struct ControllerMetrics ControllerMetrics;
typedef struct LeaseChange LeaseChange;

/* docs/metrics.md describes what this serves. Call once the store is restored: the lease counters
 * start from the totals in the store's history (so a restart keeps them), then follow the commits.
 * Registers GET /metrics (public) and GET /v1/admin/usage, and applies history.retention. */
int controller_metrics_new(Controller *c, ControllerMetrics **ret);
ControllerMetrics *controller_metrics_free(ControllerMetrics *m);

/* A lease change is durable (called after its group commit, in order): counts it and logs it with
 * the journal fields LEASE=, DUT=, EXPORTER=, CLIENT=, TEAM=. A no-op for m == NULL. */
void controller_metrics_lease_change(ControllerMetrics *m, const LeaseChange *ch);

/* A lease request without metadata "team" gets the client's "team" label, if it has one: appends
 * {"team", value} to *metadata (a calloc()ed array of borrowed labels, reallocated here), with the
 * value in *ret_team for the caller to free after the scheduler copied it. */
int controller_lease_team_default(Controller *c, const char *client, Label **metadata, size_t *n_metadata,
                                  char **ret_team);
