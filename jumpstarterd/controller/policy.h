/* Access policy in the controller: loading and SIGHUP reload, the scheduler's filter, the API's checks */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "http-server.h"
#include "lease-scheduler.h"

typedef struct Controller Controller;
typedef struct ControllerPolicy ControllerPolicy;

/* Loads config->policy (if any: without one, everything is allowed, as before policies existed),
 * sets the scheduler's filter and reloads on SIGHUP. Call before the leases are restored. Logs. */
int controller_policy_new(Controller *c, ControllerPolicy **ret);
ControllerPolicy *controller_policy_free(ControllerPolicy *p);

/* Re-reads the file; a file with an error is refused and the policy in force stays. Logs. */
int controller_policy_reload(Controller *c);

/* The checks of the API, for a client that is not an admin (admins are not bound by the policy).
 * Each one replies 403 NoAccess with the reason, and returns -EPERM, when the policy says no. */

/* Before a lease is created: roles, duration, the client's and the team's limits; sets *priority
 * to the roles' priority when the request named none, or caps it to it. */
int controller_policy_check_lease(Controller *c, HttpRequest *req, const char *client, const char *selector,
                                  uint64_t duration_usec, bool priority_given, int *priority);
int controller_policy_check_extend(Controller *c, HttpRequest *req, const Lease *l, uint64_t by_usec);
/* The verbs of a stream token: requested (NULL: all the device's roles grant) checked against the
 * grant. *ret NULL: a token without verbs (only the control stream's reading ops). */
int controller_policy_stream_verbs(Controller *c, HttpRequest *req, const Lease *l, const char *requested,
                                   char **ret);

/* The verbs the roles of the client grant on device "EXPORTER/DUT" (every verb without a policy, or
 * for an admin). */
unsigned controller_policy_device_verbs(Controller *c, const char *client, const char *device);
/* The routes of device-admin.c, after the API's. Logs. */
int controller_policy_register_routes(Controller *c);
