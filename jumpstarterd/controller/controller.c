/* Controller role of jumpstarterd: the API server, the lease scheduler and the store, on one loop */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "client-config.h"
#include "controller-internal.h"
#include "device-admin.h"
#include "policy.h"
#include "metrics.h"
#include "file-util.h"
#include "log.h"
#include "macro.h"
#include "token.h"

/* Compact the store's log once it holds this much since the last compaction. */
#define STORE_COMPACT_LOG_SIZE (64U * 1024U * 1024U)
#define CA_SIZE_MAX (1024U * 1024U)

/* Time and JSON helpers */

uint64_t now_realtime_usec(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                abort(); /* only with a bad clock id, a programmer error */
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

json_t *json_timestamp(uint64_t usec) {
        char buf[sizeof("YYYY-MM-DDTHH:MM:SSZ") + 16];
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return json_null();
        return json_string(buf);
}

json_t *json_string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

static int random_hex(size_t n_bytes, char **ret) {
        uint8_t b[32];
        char *s;

        assert(n_bytes <= sizeof b);
        if (getrandom(b, n_bytes, 0) != (ssize_t) n_bytes)
                return negative_errno();
        s = malloc(n_bytes * 2 + 1);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < n_bytes; i++)
                sprintf(s + 2 * i, "%02x", b[i]);
        *ret = s;
        return 0;
}

static void labels_free(Label *l, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(l[i].key);
                free(l[i].value);
        }
        free(l);
}

/* {"k": "v"} objects merged, later ones winning, into a Label array. */
static int labels_from_json(json_t *const *objects, size_t n_objects, Label **ret, size_t *ret_n) {
        _cleanup_(json_decrefp) json_t *merged = json_object();
        const char *key;
        json_t *v;
        Label *l;
        size_t n = 0;

        if (!merged)
                return -ENOMEM;
        for (size_t i = 0; i < n_objects; i++)
                if (json_is_object(objects[i]) && json_object_update(merged, objects[i]) < 0)
                        return -ENOMEM;
        l = calloc(MAX(json_object_size(merged), (size_t) 1), sizeof(Label));
        if (!l)
                return -ENOMEM;
        json_object_foreach(merged, key, v) {
                l[n].key = strdup(key);
                l[n].value = strdup(strempty(json_string_value(v)));
                n++;
                if (!l[n - 1].key || !l[n - 1].value) {
                        labels_free(l, n);
                        return -ENOMEM;
                }
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

json_t *labels_to_json(const Label *l, size_t n) {
        json_t *o = json_object();

        for (size_t i = 0; o && i < n; i++)
                if (json_object_set_new(o, l[i].key, json_string(l[i].value)) < 0) {
                        json_decref(o);
                        return NULL;
                }
        return o;
}

/* "EXPORTER/DUT" -> the two parts (copies). */
static int device_split(const char *device, char **ret_exporter, char **ret_dut) {
        const char *slash = device ? strchr(device, '/') : NULL;

        if (!slash) {
                *ret_exporter = device ? strdup(device) : NULL;
                *ret_dut = NULL;
                return 0;
        }
        *ret_exporter = strndup(device, (size_t) (slash - device));
        *ret_dut = strdup(slash + 1);
        if (!*ret_exporter || !*ret_dut) {
                free(*ret_exporter);
                free(*ret_dut);
                return -ENOMEM;
        }
        return 0;
}

/* Leases as JSON */

json_t *controller_lease_to_json(Controller *c, const Lease *l) {
        _cleanup_free_ char *exporter = NULL, *dut = NULL;
        _cleanup_(json_decrefp) json_t *o = NULL;
        json_t *reason = json_null(), *position = json_null();
        size_t pos;

        if (device_split(l->exporter, &exporter, &dut) < 0)
                return NULL;
        if (l->state == LEASE_PENDING) {
                reason = json_string_or_null(lease_pending_reason_to_string(
                                lease_scheduler_pending_reason(c->scheduler, l)));
                if (lease_scheduler_queue_position(c->scheduler, l, &pos) >= 0)
                        position = json_integer((json_int_t) pos);
        } else if (l->state == LEASE_ENDED)
                reason = json_string_or_null(lease_end_reason_to_string(l->end_reason));

        o = json_object();
        if (!o ||
            json_object_set_new(o, "name", json_string(l->name)) < 0 ||
            json_object_set_new(o, "client", json_string(l->client)) < 0 ||
            json_object_set_new(o, "selector", json_string(l->selector_text)) < 0 ||
            json_object_set_new(o, "state", json_string(lease_state_to_string(l->state))) < 0 ||
            json_object_set_new(o, "reason", reason) < 0 ||
            json_object_set_new(o, "exporter", json_string_or_null(exporter)) < 0 ||
            json_object_set_new(o, "dut", json_string_or_null(dut)) < 0 ||
            json_object_set_new(o, "priority", json_integer(l->priority)) < 0 ||
            json_object_set_new(o, "metadata", labels_to_json(l->metadata, l->n_metadata)) < 0 ||
            json_object_set_new(o, "durationSeconds", json_integer((json_int_t) (l->duration_usec / USEC_PER_SEC))) < 0 ||
            json_object_set_new(o, "created", json_timestamp(l->created_usec)) < 0 ||
            json_object_set_new(o, "begin", json_timestamp(l->begin_usec)) < 0 ||
            json_object_set_new(o, "end", json_timestamp(l->state == LEASE_PENDING ? 0 : l->end_usec)) < 0 ||
            json_object_set_new(o, "queuePosition", position) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* The store's form of a live lease: what lease_scheduler_restore() needs, in microseconds. */
static json_t *lease_to_record(const Lease *l) {
        return json_pack("{s:s, s:s, s:s, s:i, s:o, s:I, s:I, s:I, s:I, s:s, s:o, s:I, s:I}",
                         "name", l->name,
                         "client", l->client,
                         "selector", l->selector_text,
                         "priority", l->priority,
                         "metadata", labels_to_json(l->metadata, l->n_metadata),
                         "durationUsec", (json_int_t) l->duration_usec,
                         "waitUsec", (json_int_t) l->wait_usec,
                         "createdUsec", (json_int_t) l->created_usec,
                         "seq", (json_int_t) l->seq,
                         "state", lease_state_to_string(l->state),
                         "exporter", json_string_or_null(l->exporter),
                         "beginUsec", (json_int_t) l->begin_usec,
                         "endUsec", (json_int_t) l->end_usec);
}

static void lease_change_done(LeaseChange *ch) {
        free(ch->name);
        free(ch->client);
        free(ch->device);
        json_decref(ch->record);
        json_decref(ch->api);
}

static void changes_clear(Controller *c) {
        for (size_t i = 0; i < c->n_changes; i++)
                lease_change_done(&c->changes[i]);
        free(c->changes);
        c->changes = NULL;
        c->n_changes = 0;
}

static int controller_flush(Controller *c);
static void group_begin(Controller *c);

/* The scheduler reports every change here, from a request or from a timer. Nothing is shown to
 * anyone until the group commit that holds it is durable. */
static void on_lease_change(LeaseScheduler *s, const Lease *l, LeaseEvent event, void *userdata) {
        Controller *c = userdata;
        LeaseChange *a, ch = { .event = event };

        ch.name = strdup(l->name);
        ch.client = strdup(l->client);
        ch.device = l->exporter ? strdup(l->exporter) : NULL;
        ch.api = controller_lease_to_json(c, l);
        if (event != LEASE_EVENT_ENDED)
                ch.record = lease_to_record(l);
        a = reallocarray(c->changes, c->n_changes + 1, sizeof(LeaseChange));
        if (!ch.name || !ch.client || (l->exporter && !ch.device) || !ch.api ||
            (event != LEASE_EVENT_ENDED && !ch.record) || !a) {
                /* The scheduler has changed and cannot take it back; neither can we persist it. */
                if (a)
                        c->changes = a;
                lease_change_done(&ch);
                log_oom();
                c->broken = true;
                (void) sd_event_exit(c->event, -ENOMEM);
                return;
        }
        c->changes = a;
        c->changes[c->n_changes++] = ch;
        /* Committed with the next group: after the requests that are ready now, or right after
         * the timer that caused it. */
        group_begin(c);
}

static int on_flush(sd_event_source *s, void *userdata) {
        Controller *c = userdata;

        (void) controller_flush(c);
        return 0;
}

/* Watches */

static void watch_free(Watch *w) {
        Controller *c;

        if (!w)
                return;
        c = w->controller;
        if (w->prev)
                w->prev->next = w->next;
        else if (c->watches == w)
                c->watches = w->next;
        if (w->next)
                w->next->prev = w->prev;
        http_request_set_cancel_callback(w->req, NULL, NULL);
        http_request_unref(w->req);
        free(w->client);
        free(w->name);
        free(w);
}

static void watch_on_cancel(HttpRequest *req, void *userdata) {
        watch_free(userdata);
}

int controller_watch_new(Controller *c, HttpRequest *req, WatchType type, const char *client, const char *name,
                         Watch **ret) {
        Watch *w;

        w = calloc(1, sizeof(Watch));
        if (!w)
                return -ENOMEM;
        w->controller = c;
        w->type = type;
        w->client = client ? strdup(client) : NULL;
        w->name = name ? strdup(name) : NULL;
        if ((client && !w->client) || (name && !w->name)) {
                free(w->client);
                free(w->name);
                free(w);
                return -ENOMEM;
        }
        w->req = http_request_ref(req);
        http_request_set_cancel_callback(req, watch_on_cancel, w);
        w->next = c->watches;
        if (c->watches)
                c->watches->prev = w;
        c->watches = w;
        if (ret)
                *ret = w;
        return 0;
}

void controller_watch_end(Watch *w) {
        (void) http_request_stream_end(w->req);
        watch_free(w);
}

int controller_watch_send(Watch *w, json_t *line) {
        int r;

        r = http_request_stream_json(w->req, line);
        /* A client that reads too slowly is cut off by the server; the cancel callback follows. */
        if (r < 0 && r != -ENOBUFS && r != -ECONNRESET)
                log_debug_errno(r, "Failed to stream to a watcher of %s: %m", http_request_get_path(w->req));
        return r;
}

static bool device_of_exporter(const char *device, const char *exporter) {
        size_t n = strlen(exporter);

        return device && strncmp(device, exporter, n) == 0 && device[n] == '/';
}

static void broadcast_change(Controller *c, const LeaseChange *ch) {
        _cleanup_(json_decrefp) json_t *line = NULL;
        Watch *next;

        line = json_pack("{s:s, s:s, s:O}", "type", "lease", "event", lease_event_to_string(ch->event), "lease",
                         ch->api);
        if (!line) {
                log_oom();
                return;
        }
        for (Watch *w = c->watches; w; w = next) {
                next = w->next;
                switch (w->type) {
                case WATCH_LEASES:
                        if (!w->client || streq(w->client, ch->client))
                                (void) controller_watch_send(w, line);
                        break;
                case WATCH_LEASE:
                        if (!streq(w->name, ch->name) || (w->client && !streq(w->client, ch->client)))
                                break;
                        (void) controller_watch_send(w, line);
                        if (ch->event == LEASE_EVENT_ENDED)
                                controller_watch_end(w);
                        break;
                case WATCH_EXPORTER:
                        /* The exporter hears of leases on its DUTs once they hold one. */
                        if (ch->event != LEASE_EVENT_CREATED && device_of_exporter(ch->device, w->name))
                                (void) controller_watch_send(w, line);
                        break;
                }
        }
        if (ch->event == LEASE_EVENT_ENDED)
                router_cut_lease(c->router, ch->name);
}

void controller_broadcast_keys(Controller *c) {
        _cleanup_(json_decrefp) json_t *line = NULL;
        Watch *next;

        _cleanup_(json_decrefp) json_t *keys = controller_keys_to_json(c);

        line = keys ? json_pack("{s:s, s:O}", "type", "keys", "keys", json_object_get(keys, "keys")) : NULL;
        if (!line) {
                log_oom();
                return;
        }
        for (Watch *w = c->watches; w; w = next) {
                next = w->next;
                if (w->type == WATCH_EXPORTER)
                        (void) controller_watch_send(w, line);
        }
}

static int on_ping(sd_event_source *s, uint64_t usec, void *userdata) {
        _cleanup_(json_decrefp) json_t *line = json_pack("{s:s}", "type", "ping");
        Controller *c = userdata;
        Watch *next;

        for (Watch *w = c->watches; line && w; w = next) {
                next = w->next;
                (void) controller_watch_send(w, line);
        }
        return sd_event_source_set_time_relative(s, WATCH_PING_USEC);
}

/* Persistence: group commit */

static void staged_clear(Controller *c) {
        for (size_t i = 0; i < c->n_staged; i++)
                store_txn_free(c->staged[i]);
        c->n_staged = 0;
}

/* The leases' part of the group: the last change of each lease says what the store holds of it,
 * and every change is a history entry. Goes last: the requests' transactions touch no lease. */
static int changes_to_txn(Controller *c, StoreTxn *t) {
        int r;

        for (size_t i = c->n_changes; i > 0; i--) {
                const LeaseChange *ch = &c->changes[i - 1];
                bool later = false;

                for (size_t j = i; j < c->n_changes && !later; j++)
                        later = streq(c->changes[j].name, ch->name);
                if (later)
                        continue;
                if (ch->record)
                        r = store_txn_put(t, COLLECTION_LEASES, ch->name, ch->record, STORE_REVISION_ANY);
                else if (store_get(c->store, COLLECTION_LEASES, ch->name, NULL, NULL) >= 0)
                        r = store_txn_delete(t, COLLECTION_LEASES, ch->name, STORE_REVISION_ANY);
                else
                        r = 0; /* created and ended before its first commit */
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < c->n_changes; i++) {
                _cleanup_(json_decrefp) json_t *entry = NULL;

                entry = json_pack("{s:s, s:O}", "event", lease_event_to_string(c->changes[i].event), "lease",
                                  c->changes[i].api);
                if (!entry)
                        return -ENOMEM;
                r = store_txn_append_history(t, entry);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void controller_fail(Controller *c, int r) {
        /* The scheduler has moved on and the store could not follow: stop, so that a restart
         * starts again from what the store holds. The held replies never go out: their clients
         * see the connection close, as with a crash. */
        log_error_errno(r, "Failed to commit to the store, exiting: %m");
        c->broken = true;
        changes_clear(c);
        staged_clear(c);
        (void) sd_event_exit(c->event, r);
}

/* Commits everything staged and every lease change since the last commit as one group (one write,
 * one fdatasync()), then streams the changes to the watchers and lets the held replies go. */
static int controller_flush(Controller *c) {
        _cleanup_(store_txn_freep) StoreTxn *leases = NULL;
        _cleanup_free_ int *results = NULL;
        HttpRequest **held;
        StoreStatus status;
        size_t n, n_held;
        int r;

        if (c->broken) {
                changes_clear(c);
                staged_clear(c);
                return -EIO;
        }

        if (c->n_changes > 0) {
                r = store_txn_new(&leases);
                if (r >= 0)
                        r = changes_to_txn(c, leases);
                if (r < 0) {
                        controller_fail(c, r);
                        return r;
                }
                r = controller_stage(c, TAKE_PTR(leases));
                if (r < 0)
                        return r;
        }
        if (c->n_staged > 0) {
                results = calloc(c->n_staged, sizeof(int));
                if (!results) {
                        controller_fail(c, -ENOMEM);
                        return -ENOMEM;
                }
                r = store_commit_group(c->store, (const StoreTxn *const *) c->staged, c->n_staged, results, NULL);
                /* The controller checked each against what was staged before it: a conflict is a bug,
                 * and memory is ahead of the store. */
                for (size_t i = 0; r >= 0 && i < c->n_staged; i++)
                        r = results[i];
                if (r < 0) {
                        controller_fail(c, r);
                        return r;
                }
                staged_clear(c);
        }

        (void) sd_event_source_set_enabled(c->flush_source, SD_EVENT_OFF);

        /* Durable: now watchers may see it. Broadcasting cannot add changes. */
        n = c->n_changes;
        for (size_t i = 0; i < n; i++) {
                broadcast_change(c, &c->changes[i]);
                controller_metrics_lease_change(c->metrics, &c->changes[i]); /* metrics.c: counters, journal */
        }
        changes_clear(c);

        /* And the requests whose answers showed it may have them. */
        held = TAKE_PTR(c->held);
        n_held = c->n_held;
        c->n_held = c->n_held_allocated = 0;
        for (size_t i = 0; i < n_held; i++) {
                http_request_release(held[i]);
                http_request_unref(held[i]);
        }
        free(held);

        store_status(c->store, &status);
        if (status.log_size > STORE_COMPACT_LOG_SIZE) {
                r = store_compact(c->store, 0);
                if (r < 0)
                        log_warning_errno(r, "Failed to compact the store, ignoring: %m");
        }
        return 0;
}

static bool controller_pending(Controller *c) {
        return c->n_staged > 0 || c->n_changes > 0;
}

/* Something waits for the next group commit: it runs after the current pass. */
static void group_begin(Controller *c) {
        (void) sd_event_source_set_enabled(c->flush_source, SD_EVENT_ONESHOT);
}

int controller_stage(Controller *c, StoreTxn *t) {
        StoreTxn **a;

        if (c->broken) {
                store_txn_free(t);
                return -EIO;
        }
        if (t) {
                if (c->n_staged >= c->n_staged_allocated) {
                        size_t k = MAX(c->n_staged_allocated * 2, (size_t) 16);

                        a = reallocarray(c->staged, k, sizeof(StoreTxn *));
                        if (!a) {
                                store_txn_free(t);
                                controller_fail(c, -ENOMEM);
                                return -ENOMEM;
                        }
                        c->staged = a;
                        c->n_staged_allocated = k;
                }
                c->staged[c->n_staged++] = t;
        }
        if (controller_pending(c))
                group_begin(c);
        return 0;
}

int controller_commit(Controller *c, StoreTxn *t) {
        int r;

        r = controller_stage(c, t);
        if (r < 0)
                return r;
        return controller_flush(c);
}

void controller_hold_reply(Controller *c, HttpRequest *req) {
        HttpRequest **a;

        if (!controller_pending(c)) {
                http_request_release(req);
                return;
        }
        if (c->n_held >= c->n_held_allocated) {
                size_t k = MAX(c->n_held_allocated * 2, (size_t) 64);

                a = reallocarray(c->held, k, sizeof(HttpRequest *));
                if (!a) {
                        /* Cannot wait for the group: commit it now. */
                        if (controller_flush(c) >= 0)
                                http_request_release(req);
                        return;
                }
                c->held = a;
                c->n_held_allocated = k;
        }
        c->held[c->n_held++] = http_request_ref(req);
}

bool controller_store_exists(Controller *c, const char *collection, const char *name) {
        /* The last staged write to it wins over the store. */
        for (size_t i = c->n_staged; i > 0; i--) {
                const StoreTxn *t = c->staged[i - 1];

                for (size_t j = 0; j < t->n_ops; j++) {
                        const StoreOp *op = t->ops + j;

                        if ((op->type == STORE_OP_PUT || op->type == STORE_OP_DELETE) &&
                            streq(op->collection, collection) && streq(op->name, name))
                                return op->type == STORE_OP_PUT;
                }
        }
        return store_get(c->store, collection, name, NULL, NULL) >= 0;
}

/* Exporters */

static ssize_t exporter_index(Controller *c, const char *name) {
        size_t lo = 0, hi = c->n_exporters;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int k = strcmp(name, c->exporters[mid]->name);

                if (k == 0)
                        return (ssize_t) mid;
                if (k < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return ~(ssize_t) lo;
}

CtlExporter *controller_find_exporter(Controller *c, const char *name) {
        ssize_t i;

        if (!name)
                return NULL;
        i = exporter_index(c, name);
        return i >= 0 ? c->exporters[i] : NULL;
}

static void exporter_free(CtlExporter *e) {
        if (!e)
                return;
        sd_event_source_disable_unref(e->timeout);
        json_decref(e->record);
        for (size_t i = 0; i < e->n_devices; i++)
                free(e->devices[i]);
        free(e->devices);
        free(e->name);
        free(e);
}

int controller_exporter_new(Controller *c, const char *name, json_t *record, CtlExporter **ret) {
        CtlExporter **a, *e;
        ssize_t i;

        i = exporter_index(c, name);
        if (i >= 0)
                return -EEXIST;
        i = ~i;
        a = reallocarray(c->exporters, c->n_exporters + 1, sizeof(CtlExporter *));
        if (!a)
                return -ENOMEM;
        c->exporters = a;
        e = calloc(1, sizeof(CtlExporter));
        if (!e)
                return -ENOMEM;
        e->controller = c;
        e->name = strdup(name);
        if (!e->name) {
                free(e);
                return -ENOMEM;
        }
        e->record = json_incref(record);
        memmove(c->exporters + i + 1, c->exporters + i, (c->n_exporters - (size_t) i) * sizeof(CtlExporter *));
        c->exporters[i] = e;
        c->n_exporters++;
        if (ret)
                *ret = e;
        return 0;
}

void controller_exporter_remove(Controller *c, CtlExporter *e) {
        ssize_t i = exporter_index(c, e->name);
        Watch *next;

        for (size_t k = 0; k < e->n_devices; k++)
                (void) lease_scheduler_remove_exporter(c->scheduler, e->devices[k]);
        for (Watch *w = c->watches; w; w = next) {
                next = w->next;
                if (w->type == WATCH_EXPORTER && streq(w->name, e->name))
                        controller_watch_end(w);
        }
        assert(i >= 0);
        memmove(c->exporters + i, c->exporters + i + 1, (c->n_exporters - (size_t) i - 1) * sizeof(CtlExporter *));
        c->n_exporters--;
        exporter_free(e);
}

static bool exporter_registered(CtlExporter *e) {
        return json_is_true(json_object_get(e->record, "registered"));
}

int controller_exporter_sync(Controller *c, CtlExporter *e) {
        json_t *duts = json_object_get(e->record, "duts"), *labels = json_object_get(e->record, "labels"), *d;
        ExporterState state = e->online ? EXPORTER_ONLINE : EXPORTER_OFFLINE;
        char **devices = NULL;
        size_t n = 0, i;
        int r = 0;

        devices = calloc(MAX(json_array_size(duts), (size_t) 1), sizeof(char *));
        if (!devices)
                return -ENOMEM;
        json_array_foreach(duts, i, d) {
                Label *l = NULL;
                size_t n_l = 0;
                json_t *sources[2] = { labels, json_object_get(d, "labels") };

                if (asprintf(&devices[n], "%s/%s", e->name, json_string_value(json_object_get(d, "name"))) < 0) {
                        devices[n] = NULL;
                        r = -ENOMEM;
                        goto finish;
                }
                n++;
                r = labels_from_json(sources, ELEMENTSOF(sources), &l, &n_l);
                if (r < 0)
                        goto finish;
                /* device-admin.c: disabled by an admin or by a failed health check */
                state = controller_device_state(e, devices[n - 1], e->online);
                if (lease_scheduler_get_exporter(c->scheduler, devices[n - 1], NULL) >= 0) {
                        r = lease_scheduler_update_exporter_labels(c->scheduler, devices[n - 1], l, n_l);
                        if (r >= 0)
                                r = lease_scheduler_set_exporter_state(c->scheduler, devices[n - 1], state);
                } else
                        r = lease_scheduler_add_exporter(c->scheduler, devices[n - 1], l, n_l, state);
                labels_free(l, n_l);
                if (r < 0)
                        goto finish;
        }

        /* DUTs that are gone: their leases end ExporterGone. */
        for (size_t k = 0; k < e->n_devices; k++) {
                bool keep = false;

                for (size_t j = 0; j < n && !keep; j++)
                        keep = streq(devices[j], e->devices[k]);
                if (!keep)
                        (void) lease_scheduler_remove_exporter(c->scheduler, e->devices[k]);
        }

finish:
        for (size_t k = 0; k < e->n_devices; k++)
                free(e->devices[k]);
        free(e->devices);
        /* On failure, the list still names every entry that may be in the scheduler. */
        e->devices = devices;
        e->n_devices = n;
        return r;
}

static int exporter_set_state(Controller *c, CtlExporter *e, bool online, StoreTxn *t) {
        int r;

        e->online = online;
        for (size_t k = 0; k < e->n_devices; k++) {
                r = lease_scheduler_set_exporter_state(c->scheduler, e->devices[k],
                                                       controller_device_state(e, e->devices[k], online));
                if (r < 0)
                        return r;
        }
        if (json_object_set_new(e->record, "state", json_string(online ? "online" : "offline")) < 0 ||
            json_object_set_new(e->record, "lastSeen", json_timestamp(e->last_seen_usec)) < 0)
                return -ENOMEM;
        return t ? store_txn_put(t, COLLECTION_EXPORTERS, e->name, e->record, STORE_REVISION_ANY) : 0;
}

static int exporter_timeout_fired(sd_event_source *s, uint64_t usec, void *userdata);

static int exporter_arm_timeout(Controller *c, CtlExporter *e) {
        int r;

        if (e->timeout)
                return sd_event_source_set_time_relative(e->timeout, EXPORTER_TIMEOUT_SEC * USEC_PER_SEC) < 0
                               ? -EIO
                               : sd_event_source_set_enabled(e->timeout, SD_EVENT_ONESHOT);
        r = sd_event_add_time_relative(c->event, &e->timeout, CLOCK_BOOTTIME, EXPORTER_TIMEOUT_SEC * USEC_PER_SEC,
                                       USEC_PER_MSEC * 10, exporter_timeout_fired, e);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(e->timeout, "exporter-timeout");
        return 0;
}

int controller_exporter_heard(Controller *c, CtlExporter *e, StoreTxn *t) {
        int r;

        e->last_seen_usec = now_realtime_usec();
        r = exporter_arm_timeout(c, e);
        if (r < 0)
                return r;
        if (e->online || !exporter_registered(e))
                return 0;
        log_info("Exporter %s is online again.", e->name);
        return exporter_set_state(c, e, true, t);
}

static int exporter_timeout_fired(sd_event_source *s, uint64_t usec, void *userdata) {
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        CtlExporter *e = userdata;
        Controller *c = e->controller;
        int r;

        if (!e->online)
                return 0;
        log_warning("Exporter %s is offline: nothing heard from it for %us; its leases end.", e->name,
                    EXPORTER_TIMEOUT_SEC);
        r = store_txn_new(&t);
        if (r >= 0)
                r = exporter_set_state(c, e, false, t);
        if (r < 0) {
                log_error_errno(r, "Failed to mark exporter %s offline, exiting: %m", e->name);
                c->broken = true;
                return sd_event_exit(c->event, r);
        }
        /* Committed with the next group; a failed commit stops the loop itself. */
        (void) controller_stage(c, TAKE_PTR(t));
        return 0;
}

json_t *controller_exporter_to_json(Controller *c, CtlExporter *e) {
        _cleanup_(json_decrefp) json_t *o = NULL, *duts = NULL;
        json_t *labels = json_object_get(e->record, "labels"), *d, *streams;
        const char *state;
        size_t i;

        duts = json_array();
        if (!duts)
                return NULL;
        json_array_foreach(json_object_get(e->record, "duts"), i, d) {
                _cleanup_free_ char *device = NULL;
                _cleanup_(json_decrefp) json_t *merged = json_object();
                const Exporter *x = NULL;
                const char *dstate = "offline";

                if (!merged || asprintf(&device, "%s/%s", e->name, json_string_value(json_object_get(d, "name"))) < 0)
                        return NULL;
                if (json_is_object(labels) && json_object_update(merged, labels) < 0)
                        return NULL;
                if (json_is_object(json_object_get(d, "labels")) &&
                    json_object_update(merged, json_object_get(d, "labels")) < 0)
                        return NULL;
                if (lease_scheduler_get_exporter(c->scheduler, device, &x) >= 0)
                        dstate = exporter_state_to_string(x->state);
                if (json_array_append_new(duts, json_pack("{s:O, s:O, s:O, s:s, s:o}",
                                                          "name", json_object_get(d, "name"),
                                                          "labels", merged,
                                                          "classes", json_object_get(d, "classes") ?: json_null(),
                                                          "state", dstate,
                                                          "lease", json_string_or_null(x && x->lease ? x->lease->name : NULL))) < 0)
                        return NULL;
                /* device-admin.c: "disabled" (by an admin), "unhealthy" (why, or null) */
                if (json_object_update_new(json_array_get(duts, json_array_size(duts) - 1),
                                           controller_device_marks_to_json(e, json_string_value(json_object_get(d, "name")))) < 0)
                        return NULL;
        }

        if (!exporter_registered(e))
                state = "registered";
        else
                state = e->online ? "online" : "offline";
        streams = json_object_get(e->record, "streams");
        o = json_pack("{s:s, s:O, s:s, s:o, s:O, s:O}",
                      "name", e->name,
                      "labels", labels ?: json_null(),
                      "state", state,
                      "lastSeen", e->last_seen_usec > 0 ? json_timestamp(e->last_seen_usec)
                                                        : json_incref(json_object_get(e->record, "lastSeen") ?: json_null()),
                      "streams", streams ?: json_null(),
                      "duts", duts);
        return TAKE_PTR(o);
}

/* Keys and tokens */

json_t *controller_keys_to_json(Controller *c) {
        _cleanup_(json_decrefp) json_t *keys = json_array();

        if (!keys)
                return NULL;
        for (size_t i = 0; i < c->keyring->n_keys; i++) {
                const KeyringKey *k = c->keyring->keys[i];
                _cleanup_free_ char *pem = NULL;

                if (k->state == KEY_RETIRED)
                        continue;
                if (keyring_export_public(c->keyring, k->kid, &pem) < 0)
                        return NULL;
                if (json_array_append_new(keys, json_pack("{s:s, s:s, s:s}", "kid", k->kid, "state",
                                                          key_state_to_string(k->state), "publicKey", pem)) < 0)
                        return NULL;
        }
        return json_pack("{s:s, s:O}", "issuer", c->config->name, "keys", keys);
}

int controller_issue_api_token(Controller *c, const char *kind, const char *name, uint64_t lifetime_usec,
                               char **ret_token, char **ret_jti, uint64_t *ret_expires) {
        _cleanup_free_ char *jti = NULL;
        uint64_t now = now_realtime_usec();
        TokenClaims claims = {};
        int r;

        r = random_hex(16, &jti);
        if (r < 0)
                return r;
        if (lifetime_usec > UINT64_MAX / 4)
                return -ERANGE;
        claims = (TokenClaims) {
                .iss = (char *) c->config->name,
                .sub = (char *) name,
                .aud = (char *) CONTROLLER_API_AUDIENCE,
                .iat_usec = now,
                .exp_usec = now + lifetime_usec,
                .jti = jti,
                .kind = (char *) kind,
        };
        r = token_issue(c->keyring, &claims, ret_token);
        if (r < 0)
                return r;
        *ret_jti = TAKE_PTR(jti);
        /* The token carries whole seconds. */
        *ret_expires = claims.exp_usec / USEC_PER_SEC * USEC_PER_SEC;
        return 0;
}

/* Bootstrap */

/* A first start: the "admin" client, and a ClientConfig for it that only root can read. */
static int controller_bootstrap_admin(Controller *c) {
        _cleanup_free_ char *token = NULL, *jti = NULL, *path = NULL;
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        ClientConfig admin;
        _cleanup_(json_decrefp) json_t *record = NULL;
        uint64_t expires;
        int r;

        r = controller_issue_api_token(c, TOKEN_KIND_CLIENT, "admin", c->config->token_lifetime_usec, &token, &jti,
                                       &expires);
        if (r < 0)
                return log_error_errno(r, "Failed to issue the admin token: %m");
        record = json_pack("{s:s, s:{}, s:b, s:s, s:o, s:o}", "name", "admin", "labels", "admin", 1, "jti", jti,
                           "tokenExpires", json_timestamp(expires), "created", json_timestamp(now_realtime_usec()));
        if (!record)
                return log_oom();
        r = store_txn_new(&t);
        if (r < 0)
                return log_oom();
        r = store_txn_put(t, COLLECTION_CLIENTS, "admin", record, STORE_REVISION_ANY);
        if (r < 0)
                return log_error_errno(r, "Failed to prepare the admin client: %m");
        r = controller_commit(c, TAKE_PTR(t));
        if (r < 0)
                return r;

        admin = (ClientConfig) {
                .name = (char *) "admin",
                .namespace = (char *) "default",
                .endpoint = c->endpoint,
                .ca_pem = c->ca_pem,
                .token = token,
        };
        if (asprintf(&path, "%s/admin-client.yaml", c->config->state_directory) < 0)
                return log_oom();
        r = client_config_write(&admin, path);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", path);
        log_notice("Created the keyring and the admin client; its ClientConfig is %s", path);
        return 0;
}

/* Restore */

static int lease_seq_compare(const void *a, const void *b) {
        json_int_t x = json_integer_value(json_object_get(((const StoreObject *) a)->value, "seq"));
        json_int_t y = json_integer_value(json_object_get(((const StoreObject *) b)->value, "seq"));

        return x < y ? -1 : x > y;
}

static uint64_t record_u64(json_t *record, const char *key) {
        json_int_t v = json_integer_value(json_object_get(record, key));

        return v > 0 ? (uint64_t) v : 0;
}

/* A stored lease that cannot be put back (its DUT is gone): it ends ExporterGone, in the store too. */
static int lease_drop(Controller *c, StoreTxn *t, const char *name, json_t *record) {
        _cleanup_free_ char *exporter = NULL, *dut = NULL;
        _cleanup_(json_decrefp) json_t *api = NULL, *entry = NULL;
        int r;

        r = device_split(json_string_value(json_object_get(record, "exporter")), &exporter, &dut);
        if (r < 0)
                return r;
        api = json_pack("{s:s, s:O, s:O, s:s, s:s, s:o, s:o, s:O, s:O, s:I, s:o, s:o, s:o, s:n}",
                        "name", name,
                        "client", json_object_get(record, "client") ?: json_null(),
                        "selector", json_object_get(record, "selector") ?: json_null(),
                        "state", "ended",
                        "reason", "ExporterGone",
                        "exporter", json_string_or_null(exporter),
                        "dut", json_string_or_null(dut),
                        "priority", json_object_get(record, "priority") ?: json_null(),
                        "metadata", json_object_get(record, "metadata") ?: json_null(),
                        "durationSeconds", (json_int_t) (record_u64(record, "durationUsec") / USEC_PER_SEC),
                        "created", json_timestamp(record_u64(record, "createdUsec")),
                        "begin", json_timestamp(record_u64(record, "beginUsec")),
                        "end", json_timestamp(now_realtime_usec()),
                        "queuePosition");
        entry = api ? json_pack("{s:s, s:O}", "event", "ended", "lease", api) : NULL;
        if (!entry)
                return -ENOMEM;
        r = store_txn_delete(t, COLLECTION_LEASES, name, STORE_REVISION_ANY);
        if (r < 0)
                return r;
        return store_txn_append_history(t, entry);
}

static int controller_restore(Controller *c) {
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        StoreObject *o = NULL;
        size_t n = 0, n_restored = 0;
        int r;

        r = store_list(c->store, COLLECTION_EXPORTERS, &o, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to read the exporters from the store: %m");
        for (size_t i = 0; i < n; i++) {
                CtlExporter *e;

                r = controller_exporter_new(c, o[i].name, o[i].value, &e);
                if (r < 0)
                        break;
                /* An exporter that was online gets the usual timeout from now to call back: a
                 * controller restart is a blip, like a short link loss. */
                e->online = exporter_registered(e) &&
                            streq_ptr(json_string_value(json_object_get(e->record, "state")), "online");
                r = controller_exporter_sync(c, e);
                if (r >= 0 && e->online)
                        r = exporter_arm_timeout(c, e);
                if (r < 0)
                        break;
        }
        store_objects_free(o, n);
        if (r < 0)
                return log_error_errno(r, "Failed to restore the exporters: %m");

        r = store_txn_new(&t);
        if (r < 0)
                return log_oom();

        r = store_list(c->store, COLLECTION_LEASES, &o, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to read the leases from the store: %m");
        /* Creation order, so that the queue keeps its order among equal priorities. */
        if (n > 0)
                qsort(o, n, sizeof(StoreObject), lease_seq_compare);
        for (size_t i = 0; i < n; i++) {
                json_t *v = o[i].value;
                _cleanup_free_ char *error = NULL;
                json_t *metadata = json_object_get(v, "metadata");
                Label *l = NULL;
                size_t n_l = 0;
                LeaseRestore req;

                r = labels_from_json(&metadata, 1, &l, &n_l);
                if (r < 0)
                        break;
                req = (LeaseRestore) {
                        .name = o[i].name,
                        .client = json_string_value(json_object_get(v, "client")),
                        .selector = json_string_value(json_object_get(v, "selector")),
                        .priority = (int) json_integer_value(json_object_get(v, "priority")),
                        .metadata = l,
                        .n_metadata = n_l,
                        .duration_usec = record_u64(v, "durationUsec"),
                        .wait_usec = record_u64(v, "waitUsec"),
                        .created_usec = record_u64(v, "createdUsec"),
                        .state = lease_state_from_string(json_string_value(json_object_get(v, "state"))),
                        .exporter = json_string_value(json_object_get(v, "exporter")),
                        .begin_usec = record_u64(v, "beginUsec"),
                        .end_usec = record_u64(v, "endUsec"),
                };
                r = lease_scheduler_restore(c->scheduler, &req, &error);
                labels_free(l, n_l);
                if (r == -ENOMEM)
                        break;
                if (r < 0) {
                        log_warning_errno(r, "Lease %s cannot be restored (%s), ending it: %m", o[i].name,
                                          strna(error));
                        r = lease_drop(c, t, o[i].name, v);
                        if (r < 0)
                                break;
                        continue;
                }
                n_restored++;
        }
        store_objects_free(o, n);
        if (r < 0)
                return log_error_errno(r, "Failed to restore the leases: %m");

        /* Leases that ran out while the controller was down end from the loop, at once. */
        lease_scheduler_restore_done(c->scheduler);
        r = controller_commit(c, TAKE_PTR(t));
        if (r < 0)
                return r;
        log_info("Restored %zu exporter%s and %zu lease%s from the store.", c->n_exporters,
                 c->n_exporters == 1 ? "" : "s", n_restored, n_restored == 1 ? "" : "s");
        return 0;
}

/* The endpoint with the port the kernel picked, for "port 0" without an endpoint. */
static int controller_resolve_endpoint(Controller *c) {
        const char *colon = strrchr(c->config->endpoint, ':');

        if (c->config->endpoint_set || !colon || !streq(colon, ":0")) {
                c->endpoint = strdup(c->config->endpoint);
                return c->endpoint ? 0 : -ENOMEM;
        }
        if (asprintf(&c->endpoint, "%.*s:%u", (int) (colon - c->config->endpoint), c->config->endpoint,
                     http_server_get_port(c->server)) < 0) {
                c->endpoint = NULL;
                return -ENOMEM;
        }
        return 0;
}

int controller_new(sd_event *event, const ControllerConfig *config, Controller **ret) {
        _cleanup_(controller_freep) Controller *c = NULL;
        _cleanup_free_ char *store_dir = NULL, *error = NULL;
        bool bootstrap = false;
        int r;

        assert(event && config && ret);

        c = calloc(1, sizeof(Controller));
        if (!c)
                return log_oom();
        c->event = sd_event_ref(event);
        c->config = config;

        r = read_file_bounded(config->ca, CA_SIZE_MAX, &c->ca_pem);
        if (r < 0)
                return log_error_errno(r, "Failed to read the CA certificate %s: %m", config->ca);
        if (!strstr(c->ca_pem, "-----BEGIN CERTIFICATE-----"))
                return log_error_errno(EBADMSG, "%s holds no PEM certificate.", config->ca);

        if (mkdir(config->state_directory, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create the state directory %s: %m", config->state_directory);
        if (asprintf(&store_dir, "%s/store", config->state_directory) < 0 ||
            asprintf(&c->keyring_dir, "%s/keyring", config->state_directory) < 0)
                return log_oom();

        r = store_log_open(store_dir, &c->store, &error);
        if (r == -EBUSY)
                return log_error_errno(r, "The store %s is in use by another process.", store_dir);
        if (r < 0)
                return log_error_errno(r, "Failed to open the store %s: %s", store_dir, error ?: strerror(-r));
        {
                StoreStatus status;

                store_status(c->store, &status);
                if (status.recovered_bytes > 0)
                        log_notice("The store %s dropped %" PRIu64 " bytes of an interrupted write.", store_dir,
                                   status.recovered_bytes);
        }

        free(error);
        error = NULL;
        r = keyring_load(c->keyring_dir, &c->keyring, &error);
        if (r == -ENOENT) {
                r = keyring_new(&c->keyring);
                if (r < 0)
                        return log_oom();
        } else if (r < 0)
                return log_error_errno(r, "Failed to load the keyring: %s", error ?: strerror(-r));
        if (c->keyring->n_keys == 0) {
                r = keyring_rotate(c->keyring, NULL);
                if (r < 0)
                        return log_error_errno(r, "Failed to create a signing key: %m");
                r = keyring_save(c->keyring, c->keyring_dir);
                if (r < 0)
                        return log_error_errno(r, "Failed to save the keyring in %s: %m", c->keyring_dir);
                bootstrap = true;
        }

        r = lease_scheduler_new(event, on_lease_change, c, &c->scheduler);
        if (r < 0)
                return log_oom();
        r = sd_event_add_defer(event, &c->flush_source, on_flush, c);
        if (r < 0)
                return log_error_errno(r, "Failed to add the store flush: %m");
        (void) sd_event_source_set_enabled(c->flush_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(c->flush_source, "controller-flush");
        /* Group commit: the requests that one pass of the HTTP server handled (every connection
         * that was ready) are committed together, with one fdatasync(), right after that pass and
         * before the loop polls for more: a defer source enabled during the pass is older than
         * the events of the next poll, and sd-event runs the older first among equal priorities. */
        (void) sd_event_source_set_priority(c->flush_source, SD_EVENT_PRIORITY_NORMAL);

        r = controller_policy_new(c, &c->policy); /* policy.c: before the leases come back */
        if (r < 0)
                return r;
        r = controller_restore(c);
        if (r < 0)
                return r;

        r = http_server_new(event,
                            &(HttpServerConfig) {
                                    .listen = config->listen,
                                    .certificate_file = config->certificate,
                                    .key_file = config->key,
                                    .authenticate = controller_authenticate,
                                    .userdata = c,
                            },
                            &c->server);
        if (r < 0)
                return r;
        r = controller_resolve_endpoint(c);
        if (r < 0)
                return log_oom();
        r = controller_api_register(c);
        if (r < 0)
                return log_error_errno(r, "Failed to register the API routes: %m");
        r = controller_policy_register_routes(c); /* policy.c, device-admin.c */
        if (r < 0)
                return r;
        r = controller_metrics_new(c, &c->metrics); /* metrics.c: /metrics, /v1/admin/usage, retention */
        if (r < 0)
                return r;
        if (config->router_listen) {
                r = router_new(c, &c->router);
                if (r < 0)
                        return r;
        }

        r = sd_event_add_time_relative(event, &c->ping_timer, CLOCK_MONOTONIC, WATCH_PING_USEC, USEC_PER_MSEC * 50,
                                       on_ping, c);
        if (r < 0)
                return log_error_errno(r, "Failed to add the watch ping timer: %m");
        (void) sd_event_source_set_enabled(c->ping_timer, SD_EVENT_ON);

        if (bootstrap) {
                r = controller_bootstrap_admin(c);
                if (r < 0)
                        return r;
        }

        log_info("Controller %s serving on %s (endpoint %s, state in %s).", config->name, config->listen,
                 c->endpoint, config->state_directory);
        *ret = TAKE_PTR(c);
        return 0;
}

Controller *controller_free(Controller *c) {
        if (!c)
                return NULL;
        if (c->store && controller_pending(c))
                (void) controller_flush(c);
        c->router = router_free(c->router);
        /* Cancels every request: watches free themselves. */
        c->server = http_server_free(c->server);
        c->metrics = controller_metrics_free(c->metrics); /* its routes went with the server */
        while (c->watches)
                watch_free(c->watches);
        sd_event_source_disable_unref(c->ping_timer);
        sd_event_source_disable_unref(c->flush_source);
        for (size_t i = 0; i < c->n_exporters; i++)
                exporter_free(c->exporters[i]);
        free(c->exporters);
        if (c->scheduler)
                lease_scheduler_free(c->scheduler);
        c->policy = controller_policy_free(c->policy);
        changes_clear(c);
        staged_clear(c);
        free(c->staged);
        for (size_t i = 0; i < c->n_held; i++)
                http_request_unref(c->held[i]);
        free(c->held);
        keyring_free(c->keyring);
        store_close(c->store);
        free(c->api_bindings);
        free(c->keyring_dir);
        free(c->endpoint);
        free(c->ca_pem);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

const char *controller_get_endpoint(Controller *c) {
        return c ? c->endpoint : NULL;
}
