/* Usage reports: device time per team, client or exporter over a period, from lease records */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The rules are written down in docs/metrics.md ("Usage reports"). Times are data here: the
 * functions take "now" and read the leases' own timestamps, so that month edges are testable
 * without waiting for them. */

typedef enum UsageGroupBy {
        USAGE_BY_TEAM,
        USAGE_BY_CLIENT,
        USAGE_BY_EXPORTER,
        _USAGE_BY_MAX,
        _USAGE_BY_INVALID = -EINVAL,
} UsageGroupBy;

const char *usage_by_to_string(UsageGroupBy b);
UsageGroupBy usage_by_from_string(const char *s);

/* "2026-11-01" (midnight UTC) or RFC 3339 "2026-11-01T10:00:00Z" / "...+02:00" -> CLOCK_REALTIME
 * usec. -EINVAL for anything else (including dates that do not exist, such as 2026-02-30). */
int usage_parse_time(const char *s, uint64_t *ret_usec);

/* The team of a lease object of the API: metadata.team, or "" for none. */
const char *usage_lease_team(json_t *lease);

/* A lease object's timestamp member in whole seconds since the epoch; 0 when null or missing. */
uint64_t usage_lease_time_sec(json_t *lease, const char *key);

/* Seconds that the lease held its device: for an ended lease end - begin, for an active one
 * now - begin (whole seconds, as the API's timestamps have them); 0 if it never held one. */
uint64_t usage_lease_held_sec(json_t *lease, uint64_t now_sec);

/* Builds the report over [from, to) from lease objects of the API (ended ones as the history has
 * them, live ones as GET /v1/leases shows them). Each lease's held time [begin, end) (an active
 * lease: [begin, now)) is cut at the period's edges. *ret:
 *   {"from", "to", "by", "items": [{"group", "leases", "deviceSeconds", "deviceHours",
 *    "waitSeconds", "unserved"}], "total": {...}}
 * with items sorted by group. -EINVAL if from >= to, -ENOMEM. */
int usage_report(json_t *leases, uint64_t from_usec, uint64_t to_usec, UsageGroupBy by, uint64_t now_usec,
                 json_t **ret);
