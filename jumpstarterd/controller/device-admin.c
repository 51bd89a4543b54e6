/* Device health and admin states, hook reports, and token rotation: the routes of docs/policy.md */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller-internal.h"
#include "device-admin.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "policy-config.h"
#include "policy.h"
#include "time-util.h"
#include "token.h"

#define MESSAGE_MAX 4096
#define ROTATE_GRACE_DEFAULT_USEC (5 * 60 * USEC_PER_SEC)

/* record["disabled"][dut] = {"admin": true, "unhealthy": "why"}: what keeps a device out of the pool
 * while its exporter is online. */
static json_t *device_marks(CtlExporter *e, const char *dut) {
        return json_object_get(json_object_get(e->record, "disabled"), dut);
}

ExporterState controller_device_state(CtlExporter *e, const char *device, bool online) {
        const char *slash = device ? strchr(device, '/') : NULL;
        json_t *m;

        if (!online)
                return EXPORTER_OFFLINE;
        m = slash ? device_marks(e, slash + 1) : NULL;
        if (json_is_true(json_object_get(m, "admin")) || json_is_string(json_object_get(m, "unhealthy")))
                return EXPORTER_DISABLED;
        return EXPORTER_ONLINE;
}

json_t *controller_device_marks_to_json(CtlExporter *e, const char *dut) {
        json_t *m = device_marks(e, dut);

        return json_pack("{s:b, s:O}", "disabled", json_is_true(json_object_get(m, "admin")), "unhealthy",
                         json_object_get(m, "unhealthy") ?: json_null());
}

/* Sets (value not NULL) or clears a mark, and the device's state in the scheduler. */
static int device_mark(Controller *c, CtlExporter *e, const char *dut, const char *key, json_t *value) {
        _cleanup_free_ char *device = NULL;
        json_t *all = json_object_get(e->record, "disabled"), *m;

        if (!json_is_object(all)) {
                all = json_object();
                if (!all || json_object_set_new(e->record, "disabled", all) < 0)
                        return -ENOMEM;
        }
        m = json_object_get(all, dut);
        if (!json_is_object(m)) {
                m = json_object();
                if (!m || json_object_set_new(all, dut, m) < 0)
                        return -ENOMEM;
        }
        if (value) {
                if (json_object_set_new(m, key, value) < 0)
                        return -ENOMEM;
        } else
                (void) json_object_del(m, key);
        if (json_object_size(m) == 0)
                (void) json_object_del(all, dut);

        if (asprintf(&device, "%s/%s", e->name, dut) < 0)
                return -ENOMEM;
        if (lease_scheduler_get_exporter(c->scheduler, device, NULL) < 0)
                return 0; /* not registered (yet): the mark applies when it is */
        /* Disabling lets the lease that holds it run to its end; enabling hands it to the best waiter. */
        return lease_scheduler_set_exporter_state(c->scheduler, device, controller_device_state(e, device, e->online));
}

static bool exporter_has_dut(CtlExporter *e, const char *dut) {
        json_t *d;
        size_t i;

        json_array_foreach(json_object_get(e->record, "duts"), i, d)
                if (streq_ptr(json_string_value(json_object_get(d, "name")), dut))
                        return true;
        return false;
}

static int stage_record(Controller *c, HttpRequest *req, CtlExporter *e) {
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        int r;

        r = store_txn_new(&t);
        if (r >= 0)
                r = store_txn_put(t, COLLECTION_EXPORTERS, e->name, e->record, STORE_REVISION_ANY);
        if (r >= 0)
                r = controller_stage(c, TAKE_PTR(t));
        if (r < 0)
                http_request_reply_error(req, API_ERROR_INTERNAL, "The change could not be stored");
        return r;
}

static int bad_request(HttpRequest *req, const char *msg) {
        http_request_reply_error(req, API_ERROR_BAD_REQUEST, "%s", msg);
        return -EINVAL;
}

/* Members of an optional body object: only those in known. */
static int body_check(HttpRequest *req, bool required, const char *const *known, json_t **ret) {
        json_t *body = http_request_get_json(req), *v;
        const char *k;

        *ret = body;
        if (!body)
                return required ? bad_request(req, "This needs a JSON object as the request body") : 0;
        if (!json_is_object(body))
                return bad_request(req, "The request body must be a JSON object");
        json_object_foreach(body, k, v) {
                bool found = false;

                for (size_t i = 0; known[i] && !found; i++)
                        found = streq(known[i], k);
                if (!found) {
                        http_request_reply_error(req, API_ERROR_BAD_REQUEST, "Unknown member \"%s\" in the request body",
                                                 k);
                        return -EINVAL;
                }
        }
        return 0;
}

static const char *body_string(json_t *body, const char *key, bool *ret_bad) {
        json_t *v = json_object_get(body, key);

        if (!v || json_is_null(v))
                return NULL;
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            json_string_length(v) > MESSAGE_MAX) {
                *ret_bad = true;
                return NULL;
        }
        return json_string_value(v);
}

/* Admins, or a client whose roles grant "admin" on every device it names (docs/policy.md). */
static bool may_administer(Controller *c, HttpRequest *req, CtlExporter *e, const char *only_dut) {
        Identity *id = http_request_get_identity(req);
        json_t *d;
        size_t i;

        if (id->admin)
                return true;
        if (id->exporter)
                return false;
        json_array_foreach(json_object_get(e->record, "duts"), i, d) {
                _cleanup_free_ char *device = NULL;
                const char *dut = json_string_value(json_object_get(d, "name"));

                if (only_dut && !streq_ptr(dut, only_dut))
                        continue;
                if (asprintf(&device, "%s/%s", e->name, dut) < 0 ||
                    !(controller_policy_device_verbs(c, id->name, device) & POLICY_VERB_BIT(POLICY_VERB_ADMIN)))
                        return false;
        }
        return true;
}

typedef enum DeviceAction {
        DEVICE_ENABLE,
        DEVICE_DISABLE,
        DEVICE_CLEAR,
} DeviceAction;

/* POST /v1/admin/exporters/{name}/enable|disable|clear, body {"dut"?} */
static int device_action(Controller *c, HttpRequest *req, DeviceAction action) {
        static const char *const known[] = { "dut", NULL };
        const char *name = http_request_get_param(req, "name"), *dut;
        CtlExporter *e;
        json_t *body, *d;
        bool bad = false;
        size_t i, n = 0;
        int r;

        r = body_check(req, false, known, &body);
        if (r < 0)
                return r;
        dut = body_string(body, "dut", &bad);
        if (bad)
                return bad_request(req, "\"dut\" must be a DUT name");
        e = controller_find_exporter(c, name);
        if (!e)
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "No exporter named '%s'", name);
        if (dut && !exporter_has_dut(e, dut))
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "Exporter '%s' has no DUT named '%.64s'",
                                                name, dut);
        if (!may_administer(c, req, e, dut))
                return http_request_reply_error(req, API_ERROR_FORBIDDEN,
                                                "This needs an admin client, or a role with the verb 'admin' on the "
                                                "device");

        json_array_foreach(json_object_get(e->record, "duts"), i, d) {
                const char *x = json_string_value(json_object_get(d, "name"));

                if (dut && !streq_ptr(x, dut))
                        continue;
                if (action == DEVICE_DISABLE)
                        r = device_mark(c, e, x, "admin", json_true());
                else
                        r = device_mark(c, e, x, action == DEVICE_ENABLE ? "admin" : "unhealthy", NULL);
                if (r < 0)
                        return r;
                n++;
        }
        r = stage_record(c, req, e);
        if (r < 0)
                return r;
        log_notice("%s %s%s%s by %s.",
                   action == DEVICE_DISABLE ? "Disabled" : action == DEVICE_ENABLE ? "Enabled" : "Cleared the health "
                                                                                              "mark of",
                   name, dut ? "/" : "", strempty(dut), ((Identity *) http_request_get_identity(req))->name);
        {
                _cleanup_(json_decrefp) json_t *answer = controller_exporter_to_json(c, e);

                return answer ? http_request_reply_json(req, 200, answer) : -ENOMEM;
        }
}

static int on_enable(HttpRequest *req, void *userdata) {
        return device_action(userdata, req, DEVICE_ENABLE);
}

static int on_disable(HttpRequest *req, void *userdata) {
        return device_action(userdata, req, DEVICE_DISABLE);
}

static int on_clear(HttpRequest *req, void *userdata) {
        return device_action(userdata, req, DEVICE_CLEAR);
}

/* Only the exporter itself. */
static CtlExporter *own_exporter(Controller *c, HttpRequest *req) {
        const char *name = http_request_get_param(req, "name");
        Identity *id = http_request_get_identity(req);
        CtlExporter *e;

        if (!id->exporter || !streq(id->name, name)) {
                http_request_reply_error(req, API_ERROR_FORBIDDEN, "Only exporter '%s' itself may do this", name);
                return NULL;
        }
        e = controller_find_exporter(c, name);
        if (!e)
                http_request_reply_error(req, API_ERROR_NOT_FOUND, "No exporter named '%s'", name);
        return e;
}

/* POST /v1/exporters/{name}/health, body {"dut", "healthy", "message"?} */
static int on_health(HttpRequest *req, void *userdata) {
        static const char *const known[] = { "dut", "healthy", "message", NULL };
        Controller *c = userdata;
        const char *dut, *message;
        json_t *body, *healthy, *was;
        bool bad = false, changed;
        CtlExporter *e;
        int r;

        e = own_exporter(c, req);
        if (!e)
                return -EACCES;
        r = body_check(req, true, known, &body);
        if (r < 0)
                return r;
        dut = body_string(body, "dut", &bad);
        message = body_string(body, "message", &bad);
        healthy = json_object_get(body, "healthy");
        if (bad || !dut || !json_is_boolean(healthy))
                return bad_request(req, "This needs {\"dut\": NAME, \"healthy\": true|false, \"message\"?: TEXT}");
        if (!exporter_has_dut(e, dut))
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "Exporter '%s' has no DUT named '%.64s'",
                                                e->name, dut);
        was = json_object_get(device_marks(e, dut), "unhealthy");
        /* A passing check clears the mark; a failing one sets it. */
        changed = json_is_true(healthy) ? was != NULL : !json_is_string(was);
        if (changed) {
                r = device_mark(c, e, dut, "unhealthy",
                                json_is_true(healthy) ? NULL : json_string(message ?: "health check failed"));
                if (r < 0)
                        return r;
                r = stage_record(c, req, e);
                if (r < 0)
                        return r;
                if (json_is_true(healthy))
                        log_notice("%s/%s passed its health check: back in the pool.", e->name, dut);
                else
                        log_warning("%s/%s failed its health check, out of the pool until it passes or an admin "
                                    "clears it: %s", e->name, dut, message ?: "health check failed");
        }
        return http_request_reply(req, 204, NULL, NULL, 0);
}

/* POST /v1/exporters/{name}/hooks, body {"dut", "lease", "hook", "ok", "message"?, "onFailure"?} */
static int on_hook(HttpRequest *req, void *userdata) {
        static const char *const known[] = { "dut", "lease", "hook", "ok", "message", "onFailure", NULL };
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        _cleanup_(json_decrefp) json_t *entry = NULL;
        _cleanup_free_ char *device = NULL;
        Controller *c = userdata;
        const char *dut, *lease, *hook, *message, *on_failure;
        const Exporter *x = NULL;
        json_t *body, *ok;
        bool bad = false;
        CtlExporter *e;
        int r;

        e = own_exporter(c, req);
        if (!e)
                return -EACCES;
        r = body_check(req, true, known, &body);
        if (r < 0)
                return r;
        dut = body_string(body, "dut", &bad);
        lease = body_string(body, "lease", &bad);
        hook = body_string(body, "hook", &bad);
        message = body_string(body, "message", &bad);
        on_failure = body_string(body, "onFailure", &bad);
        ok = json_object_get(body, "ok");
        if (bad || !dut || !lease || !hook || !STR_IN_SET(hook, "beforeLease", "afterLease") || !json_is_boolean(ok) ||
            (on_failure && !STR_IN_SET(on_failure, "warn", "endLease", "disable")))
                return bad_request(req, "This needs {\"dut\", \"lease\", \"hook\": \"beforeLease\"|\"afterLease\", "
                                   "\"ok\": BOOL, \"message\"?, \"onFailure\"?: \"warn\"|\"endLease\"|\"disable\"}");
        if (!exporter_has_dut(e, dut))
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "Exporter '%s' has no DUT named '%.64s'",
                                                e->name, dut);
        if (asprintf(&device, "%s/%s", e->name, dut) < 0)
                return -ENOMEM;

        /* Into the lease's history, beside its created/assigned/ended entries. */
        entry = json_pack("{s:s, s:{s:s, s:s, s:s}, s:s, s:b, s:s, s:s, s:o}", "event", "hook", "lease", "name", lease,
                          "exporter", e->name, "dut", dut, "hook", hook, "ok", json_is_true(ok), "message",
                          message ?: "", "onFailure", on_failure ?: "warn", "time", json_timestamp(now_realtime_usec()));
        if (!entry)
                return -ENOMEM;
        r = store_txn_new(&t);
        if (r >= 0)
                r = store_txn_append_history(t, entry);
        if (r < 0)
                return r;

        if (json_is_true(ok))
                log_info("Lease %s: %s of %s succeeded.", lease, hook, device);
        else {
                log_warning("Lease %s: %s of %s failed (onFailure: %s): %s", lease, hook, device,
                            on_failure ?: "warn", message ?: "");
                if (streq_ptr(on_failure, "disable")) {
                        r = device_mark(c, e, dut, "unhealthy", json_pack("s+", hook, " failed"));
                        if (r < 0)
                                return r;
                        r = store_txn_put(t, COLLECTION_EXPORTERS, e->name, e->record, STORE_REVISION_ANY);
                        if (r < 0)
                                return r;
                }
                /* endLease: the lease that holds the device now, if it is the one the hook ran for. disable
                 * after beforeLease ends it too: the device is not fit to serve it. */
                if ((streq_ptr(on_failure, "endLease") || (streq_ptr(on_failure, "disable") &&
                                                           streq(hook, "beforeLease"))) &&
                    lease_scheduler_get_exporter(c->scheduler, device, &x) >= 0 && x->lease &&
                    streq(x->lease->name, lease)) {
                        log_notice("Ending lease %s: its %s failed.", lease, hook);
                        (void) lease_scheduler_revoke(c->scheduler, lease);
                }
        }
        r = controller_stage(c, TAKE_PTR(t));
        if (r < 0) {
                http_request_reply_error(req, API_ERROR_INTERNAL, "The change could not be stored");
                return r;
        }
        return http_request_reply(req, 204, NULL, NULL, 0);
}

/* POST /v1/auth/rotate, body {"lifetime"?, "grace"?}: a new token for the caller itself. The old one
 * keeps working for the grace (default 5 min; "0" ends it at once), so that a running exporter or
 * agent can switch without a gap. */
static int on_rotate(HttpRequest *req, void *userdata) {
        static const char *const known[] = { "lifetime", "grace", NULL };
        _cleanup_(json_decrefp) json_t *record = NULL, *answer = NULL;
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        _cleanup_free_ char *token = NULL, *jti = NULL;
        Identity *id = http_request_get_identity(req);
        Controller *c = userdata;
        const char *collection = id->exporter ? COLLECTION_EXPORTERS : COLLECTION_CLIENTS;
        uint64_t lifetime = c->config->token_lifetime_usec, grace = ROTATE_GRACE_DEFAULT_USEC, expires, now;
        const char *s;
        json_t *body, *v;
        bool bad = false;
        int r;

        r = body_check(req, false, known, &body);
        if (r < 0)
                return r;
        s = body_string(body, "lifetime", &bad);
        if (bad || (s && (parse_duration(s, &lifetime) < 0 || lifetime == 0 || lifetime > UINT64_MAX / 4)))
                return bad_request(req, "\"lifetime\" must be a duration above zero such as \"365d\"");
        v = json_object_get(body, "grace");
        if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < 366 * 86400)
                grace = (uint64_t) json_integer_value(v) * USEC_PER_SEC;
        else if (v && !json_is_null(v)) {
                s = body_string(body, "grace", &bad);
                if (bad || !s || parse_duration(s, &grace) < 0 || grace > UINT64_MAX / 4)
                        return bad_request(req, "\"grace\" must be a duration such as \"5m\" or \"0\"");
        }

        r = store_get(c->store, collection, id->name, &record, NULL);
        if (r == -ENOENT)
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "No %s named '%s'",
                                                id->exporter ? "exporter" : "client", id->name);
        if (r < 0)
                return r;
        r = controller_issue_api_token(c, id->exporter ? TOKEN_KIND_EXPORTER : TOKEN_KIND_CLIENT, id->name, lifetime,
                                       &token, &jti, &expires);
        if (r < 0)
                return r;
        now = now_realtime_usec();
        if (grace > 0) {
                if (json_object_set(record, "previousJti", json_object_get(record, "jti")) < 0 ||
                    json_object_set_new(record, "previousUntil", json_timestamp(now + grace)) < 0)
                        return -ENOMEM;
        } else {
                (void) json_object_del(record, "previousJti");
                (void) json_object_del(record, "previousUntil");
        }
        if (json_object_set_new(record, "jti", json_string(jti)) < 0 ||
            json_object_set_new(record, "tokenExpires", json_timestamp(expires)) < 0)
                return -ENOMEM;

        if (id->exporter) {
                CtlExporter *e = controller_find_exporter(c, id->name);

                /* The in-memory record is what the exporter's next status writes back. */
                if (e && (json_object_set(e->record, "jti", json_object_get(record, "jti")) < 0 ||
                          json_object_set(e->record, "tokenExpires", json_object_get(record, "tokenExpires")) < 0 ||
                          (grace > 0 && (json_object_set(e->record, "previousJti", json_object_get(record, "previousJti")) < 0 ||
                                         json_object_set(e->record, "previousUntil",
                                                         json_object_get(record, "previousUntil")) < 0))))
                        return -ENOMEM;
                if (e && grace == 0) {
                        (void) json_object_del(e->record, "previousJti");
                        (void) json_object_del(e->record, "previousUntil");
                }
        }
        r = store_txn_new(&t);
        if (r >= 0) {
                CtlExporter *e = id->exporter ? controller_find_exporter(c, id->name) : NULL;

                /* An exporter's record in memory may hold changes not committed yet: it is the one to store. */
                r = store_txn_put(t, collection, id->name, e ? e->record : record, STORE_REVISION_ANY);
        }
        if (r < 0)
                return r;
        /* Committed now: the next request, with either token, is judged by it. */
        r = controller_commit(c, TAKE_PTR(t));
        if (r < 0) {
                http_request_reply_error(req, API_ERROR_INTERNAL, "The change could not be stored");
                return r;
        }
        log_notice("Rotated the token of %s %s; the old one works %s.", id->exporter ? "exporter" : "client", id->name,
                   grace > 0 ? "for its grace" : "no more");
        answer = json_pack("{s:s, s:s, s:o, s:o}", "name", id->name, "token", token, "tokenExpires",
                           json_timestamp(expires), "previousValidUntil",
                           grace > 0 ? json_timestamp(now + grace) : json_null());
        return answer ? http_request_reply_json(req, 200, answer) : -ENOMEM;
}

/* Routes, dispatched as controller-api.c does: the reply waits for the commit of what it shows. */

typedef struct DeviceRoute {
        HttpMethod method;
        const char *pattern;
        HttpHandlerFunc handler;
} DeviceRoute;

static const DeviceRoute routes[] = {
        { HTTP_METHOD_POST, "/v1/admin/exporters/{name}/enable", on_enable },
        { HTTP_METHOD_POST, "/v1/admin/exporters/{name}/disable", on_disable },
        { HTTP_METHOD_POST, "/v1/admin/exporters/{name}/clear", on_clear },
        { HTTP_METHOD_POST, "/v1/exporters/{name}/health", on_health },
        { HTTP_METHOD_POST, "/v1/exporters/{name}/hooks", on_hook },
        { HTTP_METHOD_POST, "/v1/auth/rotate", on_rotate },
};

typedef struct DeviceBinding {
        Controller *controller;
        const DeviceRoute *route;
} DeviceBinding;

static int device_dispatch(HttpRequest *req, void *userdata) {
        DeviceBinding *b = userdata;
        Controller *c = b->controller;
        int r;

        if (c->broken)
                return http_request_reply_error(req, API_ERROR_UNAVAILABLE, "The controller is shutting down");
        http_request_hold(req);
        r = b->route->handler(req, c);
        if (r < 0)
                (void) http_request_reply_errno(req, r, NULL);
        controller_hold_reply(c, req);
        return r;
}

int controller_device_admin_register(Controller *c, void **ret_bindings) {
        DeviceBinding *b;
        int r;

        b = calloc(ELEMENTSOF(routes), sizeof(DeviceBinding));
        if (!b)
                return -ENOMEM;
        *ret_bindings = b;
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                b[i] = (DeviceBinding) { .controller = c, .route = &routes[i] };
                r = http_server_add_route(c->server, routes[i].method, routes[i].pattern, 0, device_dispatch, &b[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool controller_token_in_grace(json_t *record, const char *jti) {
        uint64_t until;

        if (!jti || !streq_ptr(json_string_value(json_object_get(record, "previousJti")), jti))
                return false;
        if (parse_timestamp(json_string_value(json_object_get(record, "previousUntil")) ?: "", &until) < 0)
                return false;
        return now_realtime_usec() < until;
}

bool controller_token_expires_soon(json_t *record) {
        uint64_t expires;

        if (parse_timestamp(json_string_value(json_object_get(record, "tokenExpires")) ?: "", &expires) < 0)
                return false;
        return expires < now_realtime_usec() + TOKEN_EXPIRES_SOON_USEC;
}
