/* Controller observability: /metrics, the usage report, lease teams and lease journal fields */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller-internal.h"
#include "log.h"
#include "macro.h"
#include "metrics-text.h"
#include "metrics.h"
#include "usage.h"

#define COLLECTION_METRICS "metrics"
#define METRICS_TOTALS "totals"
/* How often history.retention is applied (and once right after the start). */
#define RETENTION_INTERVAL_USEC (3600 * USEC_PER_SEC)

static const double wait_bounds[] = { 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 14400, 86400 };
static const double duration_bounds[] = { 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 604800 };

struct ControllerMetrics {
        Controller *controller;
        /* The lease counters, as one JSON object so that the part of them whose history entries
         * retention drops can be kept in the store ("metrics"/"totals"):
         *   {"throughSeq": N, "created": {TEAM: n}, "ended": {TEAM: {REASON: n}},
         *    "leaseSeconds": {TEAM: {EXPORTER: n}},
         *    "wait": {"counts": [...], "sum": n}, "duration": {"counts": [...], "sum": n}}
         * base is what the store holds; totals is base plus every history entry after it. */
        json_t *base, *totals;
        uint64_t start_usec;
        sd_event_source *retention_timer;
};

/* Counting */

static json_t *totals_new(void) {
        json_t *t = json_pack("{s:I, s:{}, s:{}, s:{}, s:{s:[], s:I}, s:{s:[], s:I}}", "throughSeq", (json_int_t) 0,
                              "created", "ended", "leaseSeconds", "wait", "counts", "sum", (json_int_t) 0,
                              "duration", "counts", "sum", (json_int_t) 0);

        for (size_t i = 0; t && i <= ELEMENTSOF(wait_bounds); i++)
                if (json_array_append_new(json_object_get(json_object_get(t, "wait"), "counts"), json_integer(0)) < 0)
                        return json_decref(t), NULL;
        for (size_t i = 0; t && i <= ELEMENTSOF(duration_bounds); i++)
                if (json_array_append_new(json_object_get(json_object_get(t, "duration"), "counts"), json_integer(0)) < 0)
                        return json_decref(t), NULL;
        return t;
}

/* o[k1][k2] += n (k2 NULL: o[k1] += n), creating what is missing. */
static int json_add(json_t *o, const char *k1, const char *k2, uint64_t n) {
        json_t *inner = o;

        if (k2) {
                inner = json_object_get(o, k1);
                if (!inner) {
                        inner = json_object();
                        if (!inner || json_object_set_new(o, k1, inner) < 0)
                                return -ENOMEM;
                }
                k1 = k2;
        }
        return json_object_set_new(inner, k1,
                                   json_integer(json_integer_value(json_object_get(inner, k1)) + (json_int_t) n));
}

static int observe(json_t *histogram, const double *bounds, size_t n_bounds, uint64_t value) {
        json_t *counts = json_object_get(histogram, "counts");
        size_t i = 0;

        while (i < n_bounds && (double) value > bounds[i])
                i++;
        if (json_array_size(counts) != n_bounds + 1)
                return -EINVAL; /* another build's buckets: keep the counts as they are */
        if (json_array_set_new(counts, i, json_integer(json_integer_value(json_array_get(counts, i)) + 1)) < 0)
                return -ENOMEM;
        return json_add(histogram, "sum", NULL, value);
}

/* One history entry, {"event", "lease"}, into the totals. */
static int totals_account(json_t *totals, json_t *entry) {
        const char *event = json_string_value(json_object_get(entry, "event"));
        json_t *lease = json_object_get(entry, "lease");
        const char *team = usage_lease_team(lease);
        uint64_t begin = usage_lease_time_sec(lease, "begin"), created = usage_lease_time_sec(lease, "created");
        int r = 0;

        if (streq_ptr(event, "created"))
                r = json_add(json_object_get(totals, "created"), team, NULL, 1);
        else if (streq_ptr(event, "assigned") && begin > 0)
                r = observe(json_object_get(totals, "wait"), wait_bounds, ELEMENTSOF(wait_bounds),
                            begin >= created ? begin - created : 0);
        else if (streq_ptr(event, "ended")) {
                const char *reason = json_string_value(json_object_get(lease, "reason")),
                           *exporter = json_string_value(json_object_get(lease, "exporter"));

                r = json_add(json_object_get(totals, "ended"), team, reason ?: "", 1);
                if (r >= 0 && begin > 0) {
                        uint64_t held = usage_lease_held_sec(lease, 0);

                        r = json_add(json_object_get(totals, "leaseSeconds"), team, exporter ?: "", held);
                        if (r >= 0)
                                r = observe(json_object_get(totals, "duration"), duration_bounds,
                                            ELEMENTSOF(duration_bounds), held);
                }
        }
        return r == -EINVAL ? 0 : r;
}

/* Journal fields of every lease event (docs/metrics.md "Journal"). */
static void log_lease_change(const LeaseChange *ch) {
        json_t *l = ch->api;
        const char *name = strempty(json_string_value(json_object_get(l, "name"))),
                   *client = strempty(json_string_value(json_object_get(l, "client"))),
                   *exporter = strempty(json_string_value(json_object_get(l, "exporter"))),
                   *dut = strempty(json_string_value(json_object_get(l, "dut"))), *team = usage_lease_team(l);
        const char *const fields[] = { "LEASE=", name, "DUT=", dut, "EXPORTER=", exporter, "CLIENT=", client,
                                       "TEAM=", team, NULL };

        switch (ch->event) {
        case LEASE_EVENT_CREATED:
                log_struct_internal(LOG_INFO, 0, __FILE__, __LINE__, __func__, fields,
                                    "Lease %s created by %s%s%s.", name, client, *team ? ", team " : "", team);
                break;
        case LEASE_EVENT_ASSIGNED:
                log_struct_internal(LOG_INFO, 0, __FILE__, __LINE__, __func__, fields, "Lease %s of %s holds %s/%s.",
                                    name, client, exporter, dut);
                break;
        case LEASE_EVENT_EXTENDED:
                log_struct_internal(LOG_INFO, 0, __FILE__, __LINE__, __func__, fields,
                                    "Lease %s of %s on %s/%s extended to %s.", name, client, exporter, dut,
                                    strna(json_string_value(json_object_get(l, "end"))));
                break;
        case LEASE_EVENT_ENDED:
                log_struct_internal(LOG_INFO, 0, __FILE__, __LINE__, __func__, fields, "Lease %s of %s ended (%s)%s%s%s%s.",
                                    name, client, strna(json_string_value(json_object_get(l, "reason"))),
                                    *exporter ? " on " : "", exporter, *dut ? "/" : "", dut);
                break;
        default:
                break;
        }
}

void controller_metrics_lease_change(ControllerMetrics *m, const LeaseChange *ch) {
        _cleanup_(json_decrefp) json_t *entry = NULL;

        if (!m)
                return;
        log_lease_change(ch);
        entry = json_pack("{s:s, s:O}", "event", lease_event_to_string(ch->event), "lease", ch->api);
        if (!entry || totals_account(m->totals, entry) < 0)
                log_oom();
}

/* Lease teams */

int controller_lease_team_default(Controller *c, const char *client, Label **metadata, size_t *n_metadata,
                                  char **ret_team) {
        _cleanup_(json_decrefp) json_t *record = NULL;
        const char *team;
        Label *a;

        *ret_team = NULL;
        for (size_t i = 0; i < *n_metadata; i++)
                if (streq((*metadata)[i].key, "team"))
                        return 0;
        if (store_get(c->store, COLLECTION_CLIENTS, client, &record, NULL) < 0)
                return 0;
        team = json_string_value(json_object_get(json_object_get(record, "labels"), "team"));
        if (!team)
                return 0;
        *ret_team = strdup(team);
        a = reallocarray(*metadata, *n_metadata + 1, sizeof(Label));
        if (!*ret_team || !a) {
                if (a)
                        *metadata = a;
                return -ENOMEM;
        }
        *metadata = a;
        a[(*n_metadata)++] = (Label) { .key = (char *) "team", .value = *ret_team };
        return 0;
}

/* GET /metrics */

static const char *lease_team(const Lease *l) {
        for (size_t i = 0; i < l->n_metadata; i++)
                if (streq(l->metadata[i].key, "team"))
                        return l->metadata[i].value;
        return "";
}

/* "EXPORTER/DUT" -> its exporter part, in buf. */
static const char *device_exporter(const char *device, char *buf, size_t size) {
        const char *slash = device ? strchr(device, '/') : NULL;

        snprintf(buf, size, "%.*s", slash ? (int) (slash - device) : (int) strlen(strempty(device)), strempty(device));
        return buf;
}

static void write_histogram(MetricsText *t, const char *name, const char *help, json_t *h, const double *bounds,
                            size_t n_bounds) {
        uint64_t counts[16] = {};
        json_t *c = json_object_get(h, "counts");

        assert(n_bounds < ELEMENTSOF(counts));
        for (size_t i = 0; i <= n_bounds; i++)
                counts[i] = (uint64_t) MAX(json_integer_value(json_array_get(c, i)), (json_int_t) 0);
        metrics_text_family(t, name, "histogram", help);
        metrics_text_histogram(t, name, bounds, counts, n_bounds, (double) json_integer_value(json_object_get(h, "sum")));
}

static void write_token_expiry(Controller *c, MetricsText *t, const char *collection, const char *kind) {
        StoreObject *o = NULL;
        size_t n = 0;

        if (store_list(c->store, collection, &o, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                uint64_t usec;

                if (usage_parse_time(json_string_value(json_object_get(o[i].value, "tokenExpires")), &usec) >= 0)
                        metrics_text_u64(t, "jumpstarter_token_expiry_timestamp_seconds",
                                         METRICS_LABELS("kind", kind, "name", o[i].name), usec / USEC_PER_SEC);
        }
        store_objects_free(o, n);
}

static int metrics_render(ControllerMetrics *m, char **ret, size_t *ret_size) {
        _cleanup_(json_decrefp) json_t *seconds = json_deep_copy(json_object_get(m->totals, "leaseSeconds")),
                                        *active = json_object(), *pending = json_object();
        _cleanup_free_ const Lease **leases = NULL;
        Controller *c = m->controller;
        uint64_t now = now_realtime_usec(), now_sec = now / USEC_PER_SEC, oldest = 0;
        uint64_t exporters[4] = {}, devices[4] = {};
        size_t n_leases = 0, queue = 0;
        const char *key, *key2;
        json_t *v, *v2;
        MetricsText t;
        StoreStatus status;
        int r;

        if (!seconds || !active || !pending)
                return -ENOMEM;
        r = lease_scheduler_list(c->scheduler, &leases, &n_leases);
        if (r < 0)
                return r;
        /* Lease-seconds count up while a lease holds its device, in whole seconds as the history
         * will have them once it ends: the counter never goes back. */
        for (size_t i = 0; i < n_leases; i++) {
                const Lease *l = leases[i];
                char exporter[128];

                if (l->state == LEASE_ACTIVE) {
                        uint64_t begin = l->begin_usec / USEC_PER_SEC;

                        r = json_add(active, lease_team(l), NULL, 1);
                        if (r >= 0)
                                r = json_add(seconds, lease_team(l),
                                             device_exporter(l->exporter, exporter, sizeof exporter),
                                             now_sec > begin ? now_sec - begin : 0);
                } else {
                        r = json_add(pending, lease_team(l), NULL, 1);
                        queue++;
                        if (oldest == 0 || l->created_usec < oldest)
                                oldest = l->created_usec;
                }
                if (r < 0)
                        return r;
        }
        /* Ends that wait for their commit: as if still held, until the history counts them. */
        for (size_t i = 0; i < c->n_changes; i++) {
                json_t *l = c->changes[i].api;

                if (c->changes[i].event == LEASE_EVENT_ENDED && usage_lease_time_sec(l, "begin") > 0) {
                        r = json_add(seconds, usage_lease_team(l), strempty(json_string_value(json_object_get(l, "exporter"))),
                                     usage_lease_held_sec(l, 0));
                        if (r < 0)
                                return r;
                }
        }

        r = metrics_text_begin(&t);
        if (r < 0)
                return r;

        metrics_text_family(&t, "jumpstarter_controller_start_time_seconds", "gauge",
                            "When the controller started, in seconds since the epoch.");
        metrics_text_u64(&t, "jumpstarter_controller_start_time_seconds", NULL, m->start_usec / USEC_PER_SEC);

        /* Exporters: registered (never connected), online, offline; "disabled" for a fixed label set. */
        metrics_text_family(&t, "jumpstarter_exporter_up", "gauge",
                            "Whether the exporter is online (1) or not (0: offline, or never connected).");
        for (size_t i = 0; i < c->n_exporters; i++) {
                CtlExporter *e = c->exporters[i];
                bool registered = json_is_true(json_object_get(e->record, "registered"));

                exporters[!registered ? 0 : e->online ? 1 : 2]++;
                metrics_text_u64(&t, "jumpstarter_exporter_up", METRICS_LABELS("exporter", e->name),
                                 registered && e->online);
        }
        metrics_text_family(&t, "jumpstarter_exporters", "gauge", "Exporters by state.");
        metrics_text_u64(&t, "jumpstarter_exporters", METRICS_LABELS("state", "registered"), exporters[0]);
        metrics_text_u64(&t, "jumpstarter_exporters", METRICS_LABELS("state", "online"), exporters[1]);
        metrics_text_u64(&t, "jumpstarter_exporters", METRICS_LABELS("state", "offline"), exporters[2]);
        metrics_text_u64(&t, "jumpstarter_exporters", METRICS_LABELS("state", "disabled"), exporters[3]);

        /* Devices (EXPORTER/DUT). */
        metrics_text_family(&t, "jumpstarter_device_available", "gauge",
                            "Whether the DUT can be leased: its exporter is online (1), or not (0).");
        for (size_t i = 0; i < lease_scheduler_n_exporters(c->scheduler); i++) {
                const Exporter *x = lease_scheduler_exporter_at(c->scheduler, i);
                const char *slash = strchr(x->name, '/');
                char exporter[128];

                devices[x->lease ? 1 : x->state == EXPORTER_ONLINE ? 0 : x->state == EXPORTER_OFFLINE ? 2 : 3]++;
                metrics_text_u64(&t, "jumpstarter_device_available",
                                 METRICS_LABELS("exporter", device_exporter(x->name, exporter, sizeof exporter), "dut",
                                                slash ? slash + 1 : x->name),
                                 x->state == EXPORTER_ONLINE);
        }
        metrics_text_family(&t, "jumpstarter_device_leased", "gauge", "Whether the DUT is held by an active lease.");
        for (size_t i = 0; i < lease_scheduler_n_exporters(c->scheduler); i++) {
                const Exporter *x = lease_scheduler_exporter_at(c->scheduler, i);
                const char *slash = strchr(x->name, '/');
                char exporter[128];

                metrics_text_u64(&t, "jumpstarter_device_leased",
                                 METRICS_LABELS("exporter", device_exporter(x->name, exporter, sizeof exporter), "dut",
                                                slash ? slash + 1 : x->name),
                                 x->lease != NULL);
        }
        metrics_text_family(&t, "jumpstarter_devices", "gauge",
                            "DUTs by state: available (online, free), leased, offline, disabled.");
        metrics_text_u64(&t, "jumpstarter_devices", METRICS_LABELS("state", "available"), devices[0]);
        metrics_text_u64(&t, "jumpstarter_devices", METRICS_LABELS("state", "leased"), devices[1]);
        metrics_text_u64(&t, "jumpstarter_devices", METRICS_LABELS("state", "offline"), devices[2]);
        metrics_text_u64(&t, "jumpstarter_devices", METRICS_LABELS("state", "disabled"), devices[3]);

        /* Leases now. */
        metrics_text_family(&t, "jumpstarter_leases_active", "gauge", "Leases that hold a DUT, by team.");
        json_object_foreach(active, key, v)
                metrics_text_u64(&t, "jumpstarter_leases_active", METRICS_LABELS("team", key),
                                 (uint64_t) json_integer_value(v));
        metrics_text_family(&t, "jumpstarter_leases_pending", "gauge", "Leases waiting in the queue, by team.");
        json_object_foreach(pending, key, v)
                metrics_text_u64(&t, "jumpstarter_leases_pending", METRICS_LABELS("team", key),
                                 (uint64_t) json_integer_value(v));
        metrics_text_family(&t, "jumpstarter_lease_queue_length", "gauge", "Leases waiting for a DUT.");
        metrics_text_u64(&t, "jumpstarter_lease_queue_length", NULL, queue);
        metrics_text_family(&t, "jumpstarter_lease_queue_oldest_wait_seconds", "gauge",
                            "How long the lease that waits longest has waited (0: none waits).");
        metrics_text_u64(&t, "jumpstarter_lease_queue_oldest_wait_seconds", NULL,
                         oldest > 0 && now > oldest ? (now - oldest) / USEC_PER_SEC : 0);

        /* Lease counters, from the history. */
        metrics_text_family(&t, "jumpstarter_leases_created_total", "counter", "Leases requested, by team.");
        json_object_foreach(json_object_get(m->totals, "created"), key, v)
                metrics_text_u64(&t, "jumpstarter_leases_created_total", METRICS_LABELS("team", key),
                                 (uint64_t) json_integer_value(v));
        metrics_text_family(&t, "jumpstarter_leases_ended_total", "counter",
                            "Leases ended, by team and reason (Released, Expired, Revoked, ExporterGone, WaitTimeout).");
        json_object_foreach(json_object_get(m->totals, "ended"), key, v)
                json_object_foreach(v, key2, v2)
                        metrics_text_u64(&t, "jumpstarter_leases_ended_total", METRICS_LABELS("team", key, "reason", key2),
                                         (uint64_t) json_integer_value(v2));
        metrics_text_family(&t, "jumpstarter_lease_seconds_total", "counter",
                            "Seconds that leases held DUTs, by team and exporter: the chargeback counter.");
        json_object_foreach(seconds, key, v)
                json_object_foreach(v, key2, v2)
                        metrics_text_u64(&t, "jumpstarter_lease_seconds_total", METRICS_LABELS("team", key, "exporter", key2),
                                         (uint64_t) json_integer_value(v2));
        write_histogram(&t, "jumpstarter_lease_wait_seconds", "How long leases waited for a DUT, once served.",
                        json_object_get(m->totals, "wait"), wait_bounds, ELEMENTSOF(wait_bounds));
        write_histogram(&t, "jumpstarter_lease_duration_seconds", "How long ended leases held their DUT.",
                        json_object_get(m->totals, "duration"), duration_bounds, ELEMENTSOF(duration_bounds));

        metrics_text_family(&t, "jumpstarter_token_expiry_timestamp_seconds", "gauge",
                            "When the current API token of a client or exporter expires, in seconds since the epoch.");
        write_token_expiry(c, &t, COLLECTION_CLIENTS, "client");
        write_token_expiry(c, &t, COLLECTION_EXPORTERS, "exporter");

        store_status(c->store, &status);
        metrics_text_family(&t, "jumpstarter_store_history_entries", "gauge", "Entries in the lease history.");
        metrics_text_u64(&t, "jumpstarter_store_history_entries", NULL, status.n_history);
        metrics_text_family(&t, "jumpstarter_store_log_bytes", "gauge", "Bytes of the store's log since its last compaction.");
        metrics_text_u64(&t, "jumpstarter_store_log_bytes", NULL, status.log_size);

        return metrics_text_end(&t, ret, ret_size);
}

static int on_metrics(HttpRequest *req, void *userdata) {
        ControllerMetrics *m = userdata;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        r = metrics_render(m, &text, &size);
        if (r < 0)
                return r;
        return http_request_reply(req, 200, METRICS_CONTENT_TYPE, text, size);
}

/* GET /v1/admin/usage */

static int usage_bad_request(HttpRequest *req, const char *key, const char *value) {
        return http_request_reply_error(req, API_ERROR_BAD_REQUEST,
                                        "Invalid ?%s=\"%.64s\": use a date such as 2026-11-01 (midnight UTC) or a time "
                                        "such as 2026-11-01T08:00:00Z",
                                        key, strempty(value));
}

static int on_usage(HttpRequest *req, void *userdata) {
        ControllerMetrics *m = userdata;
        Controller *c = m->controller;
        _cleanup_(json_decrefp) json_t *leases = json_array(), *answer = NULL;
        _cleanup_free_ const Lease **live = NULL;
        const char *from_s = http_request_get_query(req, "from"), *to_s = http_request_get_query(req, "to"),
                   *by_s = http_request_get_query(req, "by");
        Identity *id = http_request_get_identity(req);
        StoreHistoryEntry *h = NULL;
        uint64_t from, to;
        UsageGroupBy by = USAGE_BY_TEAM;
        size_t n = 0;
        int r;

        if (!id || !id->admin)
                return http_request_reply_error(req, API_ERROR_FORBIDDEN, "This needs an admin client");
        if (!from_s || usage_parse_time(from_s, &from) < 0)
                return usage_bad_request(req, "from", from_s);
        if (!to_s || usage_parse_time(to_s, &to) < 0)
                return usage_bad_request(req, "to", to_s);
        if (from >= to)
                return http_request_reply_error(req, API_ERROR_BAD_REQUEST, "?from= (%s) must be before ?to= (%s)",
                                                from_s, to_s);
        if (by_s) {
                by = usage_by_from_string(by_s);
                if (by < 0)
                        return http_request_reply_error(req, API_ERROR_BAD_REQUEST,
                                                        "Invalid ?by=\"%.64s\": use team, client or exporter", by_s);
        }
        if (!leases)
                return -ENOMEM;

        r = store_history(c->store, 0, 0, &h, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++)
                if (streq_ptr(json_string_value(json_object_get(h[i].value, "event")), "ended"))
                        r = json_array_append(leases, json_object_get(h[i].value, "lease"));
        store_history_free(h, n);
        for (size_t i = 0; i < c->n_changes && r >= 0; i++)
                if (c->changes[i].event == LEASE_EVENT_ENDED)
                        r = json_array_append(leases, c->changes[i].api);
        if (r < 0)
                return -ENOMEM;
        r = lease_scheduler_list(c->scheduler, &live, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(leases, controller_lease_to_json(c, live[i])) < 0)
                        return -ENOMEM;

        r = usage_report(leases, from, to, by, now_realtime_usec(), &answer);
        if (r < 0)
                return r;
        return http_request_reply_json(req, 200, answer);
}

/* Routes, dispatched as controller-api.c does: the reply waits for the commit of what it shows. */

typedef struct MetricsRoute {
        HttpMethod method;
        const char *pattern;
        HttpRouteFlags flags;
        HttpHandlerFunc handler;
} MetricsRoute;

static const MetricsRoute routes[] = {
        { HTTP_METHOD_GET, "/metrics", HTTP_ROUTE_PUBLIC, on_metrics },
        { HTTP_METHOD_GET, "/v1/admin/usage", 0, on_usage },
};

static int metrics_dispatch(HttpRequest *req, const MetricsRoute *route, ControllerMetrics *m) {
        Controller *c = m->controller;
        int r;

        if (c->broken)
                return http_request_reply_error(req, API_ERROR_UNAVAILABLE, "The controller is shutting down");
        http_request_hold(req);
        r = route->handler(req, m);
        if (r < 0)
                (void) http_request_reply_errno(req, r, NULL);
        controller_hold_reply(c, req);
        return r;
}

static int on_route_metrics(HttpRequest *req, void *userdata) {
        return metrics_dispatch(req, &routes[0], userdata);
}

static int on_route_usage(HttpRequest *req, void *userdata) {
        return metrics_dispatch(req, &routes[1], userdata);
}

/* History retention */

/* Drops the history entries older than history.retention. What they counted moves into the stored
 * base first, so that the counters survive the entries. */
static int metrics_apply_retention(ControllerMetrics *m) {
        Controller *c = m->controller;
        _cleanup_(json_decrefp) json_t *base = NULL;
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        uint64_t now = now_realtime_usec(), cutoff, before, through;
        StoreHistoryEntry *h = NULL;
        size_t n = 0;
        bool folding = true, drop = false;
        int r;

        if (c->config->history_retention_usec == 0 || now <= c->config->history_retention_usec)
                return 0;
        cutoff = before = now - c->config->history_retention_usec;

        base = json_deep_copy(m->base);
        if (!base)
                return -ENOMEM;
        through = (uint64_t) json_integer_value(json_object_get(base, "throughSeq"));
        r = store_history(c->store, 0, 0, &h, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++) {
                if (h[i].seq <= through) {
                        drop = drop || h[i].time_usec < cutoff;
                        continue;
                }
                if (folding && h[i].time_usec < cutoff) {
                        r = totals_account(base, h[i].value);
                        through = h[i].seq;
                        drop = true;
                        continue;
                }
                /* Kept: nothing at or after it may be dropped unless it was counted in the base (a
                 * clock that was set back can put older times after newer ones). */
                folding = false;
                before = MIN(before, h[i].time_usec);
        }
        store_history_free(h, n);
        if (r < 0)
                return r;
        if (!drop)
                return 0;

        if (through != (uint64_t) json_integer_value(json_object_get(m->base, "throughSeq"))) {
                if (json_object_set_new(base, "throughSeq", json_integer((json_int_t) through)) < 0)
                        return -ENOMEM;
                r = store_txn_new(&t);
                if (r >= 0)
                        r = store_txn_put(t, COLLECTION_METRICS, METRICS_TOTALS, base, STORE_REVISION_ANY);
                if (r < 0)
                        return r;
                r = controller_commit(c, TAKE_PTR(t));
                if (r < 0)
                        return r;
                json_decref(m->base);
                m->base = TAKE_PTR(base);
        }
        r = store_compact(c->store, before);
        if (r < 0)
                return log_warning_errno(r, "Failed to drop lease history older than the retention: %m");
        {
                _cleanup_(json_decrefp) json_t *ts = json_timestamp(before);

                log_info("Dropped lease history from before %s (history.retention).", strna(json_string_value(ts)));
        }
        return 0;
}

static int on_retention_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ControllerMetrics *m = userdata;
        int r;

        r = metrics_apply_retention(m);
        if (r < 0)
                log_warning_errno(r, "Failed to apply the history retention: %m");
        return sd_event_source_set_time_relative(s, RETENTION_INTERVAL_USEC) < 0
                       ? 0
                       : sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* Setup */

int controller_metrics_new(Controller *c, ControllerMetrics **ret) {
        ControllerMetrics *m;
        _cleanup_(json_decrefp) json_t *stored = NULL;
        StoreHistoryEntry *h = NULL;
        uint64_t through;
        size_t n = 0;
        int r;

        m = calloc(1, sizeof(ControllerMetrics));
        if (!m)
                return log_oom();
        m->controller = c;
        m->start_usec = now_realtime_usec();

        r = store_get(c->store, COLLECTION_METRICS, METRICS_TOTALS, &stored, NULL);
        if (r < 0 && r != -ENOENT) {
                controller_metrics_free(m);
                return log_error_errno(r, "Failed to read the lease totals from the store: %m");
        }
        m->base = r >= 0 ? json_incref(stored) : totals_new();
        m->totals = m->base ? json_deep_copy(m->base) : NULL;
        if (!m->totals) {
                controller_metrics_free(m);
                return log_oom();
        }
        through = (uint64_t) json_integer_value(json_object_get(m->base, "throughSeq"));
        r = store_history(c->store, through + 1, 0, &h, &n);
        for (size_t i = 0; i < n && r >= 0; i++)
                if (h[i].seq > through)
                        r = totals_account(m->totals, h[i].value);
        store_history_free(h, n);
        if (r < 0) {
                controller_metrics_free(m);
                return log_error_errno(r, "Failed to count the lease history: %m");
        }

        r = http_server_add_route(c->server, routes[0].method, routes[0].pattern, routes[0].flags, on_route_metrics, m);
        if (r >= 0)
                r = http_server_add_route(c->server, routes[1].method, routes[1].pattern, routes[1].flags, on_route_usage, m);
        if (r < 0) {
                controller_metrics_free(m);
                return log_error_errno(r, "Failed to register /metrics: %m");
        }

        if (c->config->history_retention_usec > 0) {
                r = sd_event_add_time_relative(c->event, &m->retention_timer, CLOCK_MONOTONIC, 0, USEC_PER_SEC,
                                               on_retention_timer, m);
                if (r < 0) {
                        controller_metrics_free(m);
                        return log_error_errno(r, "Failed to add the history retention timer: %m");
                }
                (void) sd_event_source_set_description(m->retention_timer, "history-retention");
        }
        *ret = m;
        return 0;
}

ControllerMetrics *controller_metrics_free(ControllerMetrics *m) {
        if (!m)
                return NULL;
        sd_event_source_disable_unref(m->retention_timer);
        json_decref(m->base);
        json_decref(m->totals);
        free(m);
        return NULL;
}
