/* Controller API, version 1: the routes of docs/protocol.md on the controller's state */
#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller-internal.h"
#include "metrics.h"
#include "device-admin.h"
#include "policy.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "token.h"

#define LABEL_KEY_MAX 253
#define LABEL_VALUE_MAX 253
#define LABELS_MAX 64
#define DUTS_MAX 256
#define STREAM_FIELD_MAX 256

/* Authentication */

static void identity_free(void *p) {
        Identity *id = p;

        if (!id)
                return;
        free(id->name);
        free(id);
}

static const char *kind_collection(const char *kind) {
        if (streq_ptr(kind, TOKEN_KIND_CLIENT))
                return COLLECTION_CLIENTS;
        if (streq_ptr(kind, TOKEN_KIND_EXPORTER))
                return COLLECTION_EXPORTERS;
        return NULL;
}

/* A token of a deleted client or exporter, or one that is no longer its current token. */
static int token_is_revoked(const TokenClaims *claims, void *userdata) {
        _cleanup_(json_decrefp) json_t *record = NULL;
        Controller *c = userdata;
        const char *collection = kind_collection(claims->kind);
        int r;

        if (!collection)
                return 0; /* refused as the wrong kind after verification */
        if (!store_name_is_valid(claims->sub))
                return 1;
        r = store_get(c->store, collection, claims->sub, &record, NULL);
        if (r == -ENOENT)
                return 1;
        if (r < 0)
                return r;
        /* device-admin.c: a token replaced by POST /v1/auth/rotate works until its grace ends. */
        return !streq_ptr(json_string_value(json_object_get(record, "jti")), claims->jti) &&
               !controller_token_in_grace(record, claims->jti);
}

int controller_authenticate(HttpRequest *req, const char *token, char **ret_detail, void *userdata) {
        _cleanup_(token_claims_freep) TokenClaims *claims = NULL;
        _cleanup_(json_decrefp) json_t *record = NULL;
        Controller *c = userdata;
        const TokenExpect expect = {
                .issuer = c->config->name,
                .audience = CONTROLLER_API_AUDIENCE,
                .leeway_usec = TOKEN_LEEWAY_DEFAULT_USEC,
                .is_revoked = token_is_revoked,
                .userdata = c,
        };
        Identity *id;
        int r;

        r = token_verify(c->keyring, token, &expect, now_realtime_usec(), &claims, ret_detail);
        if (r < 0)
                return r;
        if (!kind_collection(claims->kind)) {
                *ret_detail = strdup(token_error_to_string(TOKEN_WRONG_KIND));
                return *ret_detail ? -EACCES : -ENOMEM;
        }

        id = calloc(1, sizeof(Identity));
        if (!id)
                return -ENOMEM;
        id->name = strdup(claims->sub);
        if (!id->name) {
                free(id);
                return -ENOMEM;
        }
        id->exporter = streq(claims->kind, TOKEN_KIND_EXPORTER);
        if (!id->exporter && store_get(c->store, COLLECTION_CLIENTS, claims->sub, &record, NULL) >= 0)
                id->admin = json_is_true(json_object_get(record, "admin"));
        http_request_set_identity(req, id, identity_free);
        return 0;
}

static Identity *identity(HttpRequest *req) {
        Identity *id = http_request_get_identity(req);

        assert(id); /* every non-public route is authenticated */
        return id;
}

static int require_admin(HttpRequest *req) {
        if (identity(req)->admin)
                return 0;
        http_request_reply_error(req, API_ERROR_FORBIDDEN, "This needs an admin client");
        return -EACCES;
}

static int require_client(HttpRequest *req) {
        if (!identity(req)->exporter)
                return 0;
        http_request_reply_error(req, API_ERROR_FORBIDDEN, "Exporters hold no leases: this needs a client token");
        return -EACCES;
}

/* Only the exporter itself, with its own token. */
static int require_exporter(Controller *c, HttpRequest *req, CtlExporter **ret) {
        const char *name = http_request_get_param(req, "name");
        Identity *id = identity(req);

        if (!id->exporter || !streq(id->name, name)) {
                http_request_reply_error(req, API_ERROR_FORBIDDEN, "Only exporter '%s' itself may do this", name);
                return -EACCES;
        }
        *ret = controller_find_exporter(c, name);
        if (!*ret) {
                http_request_reply_error(req, API_ERROR_NOT_FOUND, "No exporter named '%s'", name);
                return -ENOENT;
        }
        return 0;
}

/* Request bodies. Each helper replies (400) and returns < 0 on bad input. */

static int bad_request(HttpRequest *req, const char *format, ...) _printf_(2, 3);
static int bad_request(HttpRequest *req, const char *format, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&msg, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        http_request_reply_error(req, API_ERROR_BAD_REQUEST, "%s", msg);
        return -EINVAL;
}

/* The body as an object; NULL (and 0) without a body when it is optional. */
static int body_object(HttpRequest *req, bool required, const char *const *known, json_t **ret) {
        json_t *body = http_request_get_json(req);
        const char *key;
        json_t *v;

        *ret = NULL;
        if (!body) {
                if (required)
                        return bad_request(req, "This needs a JSON object as the request body");
                return 0;
        }
        if (!json_is_object(body))
                return bad_request(req, "The request body must be a JSON object");
        json_object_foreach(body, key, v) {
                bool found = false;

                for (size_t i = 0; known[i] && !found; i++)
                        found = streq(known[i], key);
                if (!found)
                        return bad_request(req, "Unknown member \"%s\" in the request body", key);
        }
        *ret = body;
        return 0;
}

static int member_string(HttpRequest *req, json_t *body, const char *key, bool required, const char **ret) {
        json_t *v = json_object_get(body, key);

        *ret = NULL;
        if (!v || json_is_null(v)) {
                if (required)
                        return bad_request(req, "Missing member \"%s\"", key);
                return 0;
        }
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return bad_request(req, "\"%s\" must be a string", key);
        *ret = json_string_value(v);
        return 0;
}

static int member_name(HttpRequest *req, json_t *body, const char *key, bool required, const char **ret) {
        int r;

        r = member_string(req, body, key, required, ret);
        if (r < 0 || !*ret)
                return r;
        if (!dut_name_is_valid(*ret))
                return bad_request(req, "Invalid %s \"%.64s\": use 1-63 characters of [a-z0-9-], starting with a "
                                   "letter or digit", key, *ret);
        return 0;
}

/* A duration: a string in the config's syntax ("30m", "1.5h") or integer seconds; above zero. */
static int member_duration(HttpRequest *req, json_t *body, const char *key, bool required, uint64_t *ret) {
        json_t *v = json_object_get(body, key);
        uint64_t u;

        if (!v || json_is_null(v)) {
                if (required)
                        return bad_request(req, "Missing member \"%s\"", key);
                return 0;
        }
        if (json_is_integer(v)) {
                json_int_t i = json_integer_value(v);

                if (i <= 0 || (uint64_t) i > UINT64_MAX / 4 / USEC_PER_SEC)
                        return bad_request(req, "\"%s\" must be above zero and in range, got %" JSON_INTEGER_FORMAT,
                                           key, i);
                *ret = (uint64_t) i * USEC_PER_SEC;
                return 0;
        }
        if (!json_is_string(v) || parse_duration(json_string_value(v), &u) < 0 || u == 0 ||
            u > UINT64_MAX / 4)
                return bad_request(req, "\"%s\" must be a duration above zero such as \"30m\", \"1.5h\" or "
                                   "integer seconds", key);
        *ret = u;
        return 0;
}

static bool text_is_printable(const char *s, size_t max) {
        size_t n = 0;

        for (; *s; s++, n++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return n <= max;
}

/* {"key": "value"} with sane keys and values; ret is a borrowed reference (or NULL). */
static int member_labels(HttpRequest *req, json_t *body, const char *key, json_t **ret) {
        json_t *v = json_object_get(body, key), *x;
        const char *k;

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return bad_request(req, "\"%s\" must be an object of strings", key);
        if (json_object_size(v) > LABELS_MAX)
                return bad_request(req, "\"%s\" has more than %u entries", key, LABELS_MAX);
        json_object_foreach(v, k, x) {
                if (!*k || !text_is_printable(k, LABEL_KEY_MAX) || strchr(k, ' ') || strchr(k, ',') ||
                    strchr(k, '='))
                        return bad_request(req, "Invalid key \"%.64s\" in \"%s\"", k, key);
                if (!json_is_string(x) || strlen(json_string_value(x)) != json_string_length(x) ||
                    !text_is_printable(json_string_value(x), LABEL_VALUE_MAX))
                        return bad_request(req, "\"%s\".\"%.64s\" must be a string of printable characters", key, k);
        }
        *ret = v;
        return 0;
}

static int reply_created(HttpRequest *req, const char *location, json_t *body) {
        int r;

        r = http_request_add_header(req, "Location", location);
        if (r < 0)
                return r;
        return http_request_reply_json(req, 201, body);
}

static int reply_no_content(HttpRequest *req) {
        return http_request_reply(req, 204, NULL, NULL, 0);
}

/* Commits t (may be NULL; takes it) with everything staged, now: for changes that authentication reads
 * (clients and exporters created or deleted). A commit that failed ends the controller; the
 * request gets a 500. */
static int commit(Controller *c, HttpRequest *req, StoreTxn *t) {
        int r;

        r = controller_commit(c, t);
        if (r < 0)
                http_request_reply_error(req, API_ERROR_INTERNAL, "The change could not be stored");
        return r;
}

/* Stages t (may be NULL; takes it) for the next group commit. The reply that the handler then
 * builds is held by dispatch() until that commit is durable. */
static int stage(Controller *c, HttpRequest *req, StoreTxn *t) {
        int r;

        r = controller_stage(c, t);
        if (r < 0)
                http_request_reply_error(req, API_ERROR_INTERNAL, "The change could not be stored");
        return r;
}

/* Public */

static int on_healthz(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *o = json_pack("{s:s}", "status", "ok");

        return o ? http_request_reply_json(req, 200, o) : -ENOMEM;
}

static int on_keys(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *o = controller_keys_to_json(userdata);

        return o ? http_request_reply_json(req, 200, o) : -ENOMEM;
}

/* Clients and exporters (admin) */

static int create_identity(Controller *c, HttpRequest *req, bool exporter) {
        static const char *const known_client[] = { "name", "labels", "admin", "lifetime", NULL };
        static const char *const known_exporter[] = { "name", "labels", "lifetime", NULL };
        const char *collection = exporter ? COLLECTION_EXPORTERS : COLLECTION_CLIENTS;
        _cleanup_(json_decrefp) json_t *record = NULL, *answer = NULL;
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        _cleanup_free_ char *token = NULL, *jti = NULL, *location = NULL;
        uint64_t lifetime = c->config->token_lifetime_usec, expires;
        json_t *body, *labels, *admin;
        const char *name;
        int r;

        r = require_admin(req);
        if (r < 0)
                return r;
        r = body_object(req, true, exporter ? known_exporter : known_client, &body);
        if (r < 0)
                return r;
        r = member_name(req, body, "name", true, &name);
        if (r < 0)
                return r;
        r = member_labels(req, body, "labels", &labels);
        if (r < 0)
                return r;
        admin = json_object_get(body, "admin");
        if (admin && !json_is_boolean(admin))
                return bad_request(req, "\"admin\" must be true or false");
        r = member_duration(req, body, "lifetime", false, &lifetime);
        if (r < 0)
                return r;

        if (controller_store_exists(c, collection, name))
                return http_request_reply_error(req, API_ERROR_CONFLICT, "%s '%s' exists already",
                                                exporter ? "Exporter" : "Client", name);

        r = controller_issue_api_token(c, exporter ? TOKEN_KIND_EXPORTER : TOKEN_KIND_CLIENT, name, lifetime, &token,
                                       &jti, &expires);
        if (r < 0)
                return r;
        if (exporter)
                record = json_pack("{s:s, s:O, s:s, s:o, s:o, s:b, s:s, s:[], s:n, s:n}",
                                   "name", name, "labels", labels ?: json_object(), "jti", jti,
                                   "tokenExpires", json_timestamp(expires), "created", json_timestamp(now_realtime_usec()),
                                   "registered", 0, "state", "registered", "duts", "streams", "lastSeen");
        else
                record = json_pack("{s:s, s:O, s:b, s:s, s:o, s:o}",
                                   "name", name, "labels", labels ?: json_object(), "admin", json_is_true(admin),
                                   "jti", jti, "tokenExpires", json_timestamp(expires),
                                   "created", json_timestamp(now_realtime_usec()));
        if (!record)
                return -ENOMEM;
        /* json_pack() "O" of a fresh object took a second reference: drop the extra one. */
        if (!labels)
                json_decref(json_object_get(record, "labels"));

        r = store_txn_new(&t);
        if (r < 0)
                return r;
        r = store_txn_put(t, collection, name, record, STORE_REVISION_ABSENT);
        if (r < 0)
                return r;
        if (exporter) {
                r = controller_exporter_new(c, name, record, NULL);
                if (r < 0)
                        return r;
        }
        r = commit(c, req, TAKE_PTR(t));
        if (r < 0)
                return r;
        log_info("Created %s %s.", exporter ? "exporter" : "client", name);

        answer = json_pack("{s:s, s:O, s:s, s:o, s:s, s:s}", "name", name, "labels", json_object_get(record, "labels"),
                           "token", token, "tokenExpires", json_timestamp(expires), "endpoint", c->endpoint,
                           "ca", c->ca_pem);
        if (!answer)
                return -ENOMEM;
        if (!exporter && json_object_set_new(answer, "admin", json_boolean(json_is_true(admin))) < 0)
                return -ENOMEM;
        if (asprintf(&location, "/v1/%s/%s", collection, name) < 0)
                return -ENOMEM;
        return reply_created(req, location, answer);
}

static int on_create_client(HttpRequest *req, void *userdata) {
        return create_identity(userdata, req, false);
}

static int on_create_exporter(HttpRequest *req, void *userdata) {
        return create_identity(userdata, req, true);
}

static int on_list_clients(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *items = json_array(), *answer = NULL;
        Controller *c = userdata;
        StoreObject *o = NULL;
        size_t n = 0;
        int r;

        r = require_admin(req);
        if (r < 0)
                return r;
        if (!items)
                return -ENOMEM;
        r = store_list(c->store, COLLECTION_CLIENTS, &o, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++) {
                json_t *v = o[i].value;

                r = json_array_append_new(items, json_pack("{s:s, s:O, s:b, s:O, s:b}", "name", o[i].name,
                                                           "labels", json_object_get(v, "labels") ?: json_null(),
                                                           "admin", json_is_true(json_object_get(v, "admin")),
                                                           "tokenExpires", json_object_get(v, "tokenExpires") ?: json_null(),
                                                           "tokenExpiresSoon", controller_token_expires_soon(v)));
        }
        store_objects_free(o, n);
        if (r < 0)
                return -ENOMEM;
        answer = json_pack("{s:O}", "items", items);
        return answer ? http_request_reply_json(req, 200, answer) : -ENOMEM;
}

static int on_delete_client(HttpRequest *req, void *userdata) {
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        const char *name = http_request_get_param(req, "name");
        Controller *c = userdata;
        const Lease **leases = NULL;
        size_t n = 0;
        Watch *next;
        int r;

        r = require_admin(req);
        if (r < 0)
                return r;
        if (!store_name_is_valid(name) || !controller_store_exists(c, COLLECTION_CLIENTS, name))
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "No client named '%s'", name);

        r = store_txn_new(&t);
        if (r < 0)
                return r;
        r = store_txn_delete(t, COLLECTION_CLIENTS, name, STORE_REVISION_ANY);
        if (r < 0)
                return r;

        /* Nobody could release its leases any more: they end Revoked. */
        r = lease_scheduler_list(c->scheduler, &leases, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (streq(leases[i]->client, name)) {
                        _cleanup_free_ char *lease = strdup(leases[i]->name);

                        if (!lease) {
                                free(leases);
                                return -ENOMEM;
                        }
                        (void) lease_scheduler_revoke(c->scheduler, lease);
                        /* Revoking may hand exporters on and end nothing else, but list again to be safe. */
                        free(leases);
                        r = lease_scheduler_list(c->scheduler, &leases, &n);
                        if (r < 0)
                                return r;
                        i = (size_t) -1;
                }
        free(leases);

        r = commit(c, req, TAKE_PTR(t));
        if (r < 0)
                return r;
        for (Watch *w = c->watches; w; w = next) {
                next = w->next;
                if (w->type != WATCH_EXPORTER && streq_ptr(w->client, name))
                        controller_watch_end(w);
        }
        log_info("Deleted client %s.", name);
        return reply_no_content(req);
}

static int on_delete_exporter(HttpRequest *req, void *userdata) {
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        const char *name = http_request_get_param(req, "name");
        Controller *c = userdata;
        CtlExporter *e;
        int r;

        r = require_admin(req);
        if (r < 0)
                return r;
        e = controller_find_exporter(c, name);
        if (!e)
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "No exporter named '%s'", name);
        r = store_txn_new(&t);
        if (r < 0)
                return r;
        r = store_txn_delete(t, COLLECTION_EXPORTERS, name, STORE_REVISION_ANY);
        if (r < 0)
                return r;
        controller_exporter_remove(c, e);
        r = commit(c, req, TAKE_PTR(t));
        if (r < 0)
                return r;
        log_info("Deleted exporter %s.", name);
        return reply_no_content(req);
}

/* Keys (admin) */

static int keyring_changed(Controller *c, HttpRequest *req) {
        _cleanup_free_ char *error = NULL;
        Keyring *k = NULL;
        int r;

        r = keyring_save(c->keyring, c->keyring_dir);
        if (r >= 0) {
                controller_broadcast_keys(c);
                return 0;
        }
        log_error_errno(r, "Failed to save the keyring in %s: %m", c->keyring_dir);
        /* Go back to what is on disk, so that memory does not sign with a key a restart loses. */
        if (keyring_load(c->keyring_dir, &k, &error) >= 0) {
                keyring_free(c->keyring);
                c->keyring = k;
        } else
                log_error("Failed to reload the keyring: %s", strna(error));
        http_request_reply_error(req, API_ERROR_INTERNAL, "The keyring could not be saved");
        return r;
}

static int on_rotate_key(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *answer = NULL;
        _cleanup_free_ char *previous = NULL;
        Controller *c = userdata;
        const char *kid = NULL;
        int r;

        r = require_admin(req);
        if (r < 0)
                return r;
        if (keyring_active(c->keyring)) {
                previous = strdup(keyring_active(c->keyring)->kid);
                if (!previous)
                        return -ENOMEM;
        }
        r = keyring_rotate(c->keyring, &kid);
        if (r < 0)
                return r;
        answer = json_pack("{s:s, s:o}", "kid", kid, "previous", json_string_or_null(previous));
        if (!answer)
                return -ENOMEM;
        r = keyring_changed(c, req);
        if (r < 0)
                return r;
        log_notice("Rotated the signing key: %s is active, %s verifies only.", kid, strna(previous));
        return http_request_reply_json(req, 200, answer);
}

static int on_retire_key(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *answer = NULL;
        const char *kid = http_request_get_param(req, "kid");
        Controller *c = userdata;
        int r;

        r = require_admin(req);
        if (r < 0)
                return r;
        if (!keyring_find(c->keyring, kid))
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "No key with id '%s'", kid);
        r = keyring_retire(c->keyring, kid);
        if (r == -EBUSY)
                return http_request_reply_error(req, API_ERROR_CONFLICT,
                                                "Key %s is the active key: rotate first, then retire it", kid);
        if (r < 0)
                return r;
        r = keyring_changed(c, req);
        if (r < 0)
                return r;
        log_notice("Retired key %s: its tokens are refused from now on.", kid);
        answer = json_pack("{s:s, s:s}", "kid", kid, "state", "retired");
        return answer ? http_request_reply_json(req, 200, answer) : -ENOMEM;
}

/* Exporters */

static int on_list_exporters(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *items = json_array(), *answer = NULL;
        Controller *c = userdata;

        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_exporters; i++)
                if (json_array_append_new(items, controller_exporter_to_json(c, c->exporters[i])) < 0)
                        return -ENOMEM;
        answer = json_pack("{s:O}", "items", items);
        return answer ? http_request_reply_json(req, 200, answer) : -ENOMEM;
}

static int on_get_exporter(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *answer = NULL;
        const char *name = http_request_get_param(req, "name");
        Controller *c = userdata;
        CtlExporter *e;

        e = controller_find_exporter(c, name);
        if (!e)
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "No exporter named '%s'", name);
        answer = controller_exporter_to_json(c, e);
        return answer ? http_request_reply_json(req, 200, answer) : -ENOMEM;
}

static bool class_name_is_valid(const char *s) {
        size_t n = strlen(s);

        return n > 0 && n <= 32 && s[0] >= 'a' && s[0] <= 'z' && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* {"duts": [...], "streams": {...}} -> the normalized duts array and streams object (new references). */
static int parse_status(HttpRequest *req, json_t *body, json_t **ret_duts, json_t **ret_streams) {
        _cleanup_(json_decrefp) json_t *duts = json_array(), *streams = NULL;
        static const char *const known_dut[] = { "name", "labels", "classes" };
        json_t *in = json_object_get(body, "duts"), *d, *s;
        size_t i;
        int r;

        if (!duts)
                return -ENOMEM;
        if (!json_is_array(in))
                return bad_request(req, "\"duts\" must be an array");
        if (json_array_size(in) > DUTS_MAX)
                return bad_request(req, "More than %u DUTs", DUTS_MAX);
        json_array_foreach(in, i, d) {
                _cleanup_(json_decrefp) json_t *classes = json_array();
                json_t *labels, *cl, *x;
                const char *name, *key;
                size_t j;

                if (!classes)
                        return -ENOMEM;
                if (!json_is_object(d))
                        return bad_request(req, "\"duts\"[%zu] must be an object", i);
                json_object_foreach(d, key, x) {
                        bool found = false;

                        for (size_t k = 0; k < ELEMENTSOF(known_dut) && !found; k++)
                                found = streq(known_dut[k], key);
                        if (!found)
                                return bad_request(req, "Unknown member \"%s\" in \"duts\"[%zu]", key, i);
                }
                r = member_name(req, d, "name", true, &name);
                if (r < 0)
                        return r;
                for (size_t k = 0; k < json_array_size(duts); k++)
                        if (streq(name, json_string_value(json_object_get(json_array_get(duts, k), "name"))))
                                return bad_request(req, "DUT \"%s\" is listed twice", name);
                r = member_labels(req, d, "labels", &labels);
                if (r < 0)
                        return r;
                cl = json_object_get(d, "classes");
                if (cl && !json_is_null(cl) && !json_is_array(cl))
                        return bad_request(req, "\"duts\"[%zu].\"classes\" must be an array of strings", i);
                json_array_foreach(cl, j, x) {
                        if (!json_is_string(x) || !class_name_is_valid(json_string_value(x)))
                                return bad_request(req, "\"duts\"[%zu].\"classes\"[%zu] must be a class name such as "
                                                   "\"power\"", i, j);
                        if (json_array_append(classes, x) < 0)
                                return -ENOMEM;
                }
                if (json_array_append_new(duts, json_pack("{s:s, s:o, s:O}", "name", name, "labels",
                                                          labels ? json_deep_copy(labels) : json_object(),
                                                          "classes", classes)) < 0)
                        return -ENOMEM;
        }

        s = json_object_get(body, "streams");
        if (s && !json_is_null(s)) {
                static const char *const fields[] = { "address", "fingerprint" };
                const char *key;
                json_t *x;

                if (!json_is_object(s))
                        return bad_request(req, "\"streams\" must be an object with address and fingerprint");
                json_object_foreach(s, key, x) {
                        if (!streq(key, fields[0]) && !streq(key, fields[1]))
                                return bad_request(req, "Unknown member \"%s\" in \"streams\"", key);
                        if (!json_is_null(x) && (!json_is_string(x) ||
                                                 !text_is_printable(json_string_value(x), STREAM_FIELD_MAX) ||
                                                 strlen(json_string_value(x)) != json_string_length(x)))
                                return bad_request(req, "\"streams\".\"%s\" must be a string", key);
                }
                streams = json_pack("{s:O, s:O}", "address", json_object_get(s, "address") ?: json_null(),
                                    "fingerprint", json_object_get(s, "fingerprint") ?: json_null());
                if (!streams)
                        return -ENOMEM;
        }

        *ret_duts = TAKE_PTR(duts);
        *ret_streams = TAKE_PTR(streams);
        return 0;
}

static int on_put_status(HttpRequest *req, void *userdata) {
        static const char *const known[] = { "duts", "streams", NULL };
        _cleanup_(json_decrefp) json_t *duts = NULL, *streams = NULL, *answer = NULL;
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        Controller *c = userdata;
        CtlExporter *e;
        json_t *body;
        bool was_online;
        int r;

        r = require_exporter(c, req, &e);
        if (r < 0)
                return r;
        r = body_object(req, true, known, &body);
        if (r < 0)
                return r;
        r = parse_status(req, body, &duts, &streams);
        if (r < 0)
                return r;

        was_online = e->online && json_is_true(json_object_get(e->record, "registered"));
        e->last_seen_usec = now_realtime_usec();
        if (json_object_set(e->record, "duts", duts) < 0 ||
            json_object_set_new(e->record, "streams", streams ? json_incref(streams) : json_null()) < 0 ||
            json_object_set_new(e->record, "registered", json_true()) < 0 ||
            json_object_set_new(e->record, "state", json_string("online")) < 0 ||
            json_object_set_new(e->record, "lastSeen", json_timestamp(e->last_seen_usec)) < 0)
                return -ENOMEM;
        e->online = true;
        r = controller_exporter_sync(c, e);
        if (r < 0)
                return r;
        r = controller_exporter_heard(c, e, NULL);
        if (r < 0)
                return r;

        r = store_txn_new(&t);
        if (r < 0)
                return r;
        r = store_txn_put(t, COLLECTION_EXPORTERS, e->name, e->record, STORE_REVISION_ANY);
        if (r < 0)
                return r;
        r = stage(c, req, TAKE_PTR(t));
        if (r < 0)
                return r;
        if (!was_online)
                log_info("Exporter %s registered %zu DUT%s.", e->name, json_array_size(duts),
                         json_array_size(duts) == 1 ? "" : "s");

        answer = json_pack("{s:i, s:i}", "heartbeatSeconds", EXPORTER_HEARTBEAT_SEC, "timeoutSeconds",
                           EXPORTER_TIMEOUT_SEC);
        return answer ? http_request_reply_json(req, 200, answer) : -ENOMEM;
}

static int on_heartbeat(HttpRequest *req, void *userdata) {
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        Controller *c = userdata;
        CtlExporter *e;
        int r;

        r = require_exporter(c, req, &e);
        if (r < 0)
                return r;
        r = store_txn_new(&t);
        if (r < 0)
                return r;
        r = controller_exporter_heard(c, e, t);
        if (r < 0)
                return r;
        r = stage(c, req, t->n_ops > 0 ? TAKE_PTR(t) : NULL);
        if (r < 0)
                return r;
        return reply_no_content(req);
}

static int on_exporter_watch(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *leases = json_array(), *line = NULL, *keys = NULL;
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        Controller *c = userdata;
        Watch *w;
        CtlExporter *e;
        int r;

        r = require_exporter(c, req, &e);
        if (r < 0)
                return r;
        if (!leases)
                return -ENOMEM;
        r = store_txn_new(&t);
        if (r < 0)
                return r;
        r = controller_exporter_heard(c, e, t);
        if (r < 0)
                return r;
        r = stage(c, req, t->n_ops > 0 ? TAKE_PTR(t) : NULL);
        if (r < 0)
                return r;

        for (size_t i = 0; i < e->n_devices; i++) {
                const Exporter *x;

                if (lease_scheduler_get_exporter(c->scheduler, e->devices[i], &x) < 0 || !x->lease)
                        continue;
                if (json_array_append_new(leases, controller_lease_to_json(c, x->lease)) < 0)
                        return -ENOMEM;
        }
        keys = controller_keys_to_json(c);
        if (!keys)
                return -ENOMEM;

        r = http_request_reply_stream(req, 200);
        if (r < 0)
                return r;
        r = controller_watch_new(c, req, WATCH_EXPORTER, NULL, e->name, &w);
        if (r < 0)
                return r;
        line = json_pack("{s:s, s:O}", "type", "leases", "leases", leases);
        if (!line)
                return -ENOMEM;
        (void) controller_watch_send(w, line);
        json_decref(line);
        line = json_pack("{s:s, s:O}", "type", "keys", "keys", json_object_get(keys, "keys"));
        if (!line)
                return -ENOMEM;
        (void) controller_watch_send(w, line);
        return 0;
}

/* Leases */

static bool lease_visible(HttpRequest *req, const char *client) {
        Identity *id = identity(req);

        return id->admin || streq_ptr(id->name, client);
}

/* The caller's live lease of that name, or NULL. */
static const Lease *find_lease(Controller *c, HttpRequest *req, const char *name) {
        const Lease *l;

        if (lease_scheduler_get(c->scheduler, name, &l) < 0 || !lease_visible(req, l->client))
                return NULL;
        return l;
}

/* The caller's last ended lease of that name from the history (a new reference), or NULL. */
static json_t *find_ended_lease(Controller *c, HttpRequest *req, const char *name) {
        StoreHistoryEntry *h = NULL;
        json_t *found = NULL;
        size_t n = 0;

        /* An end that waits for the group commit: this reply waits with it. */
        for (size_t i = c->n_changes; i > 0; i--) {
                const LeaseChange *ch = &c->changes[i - 1];

                if (ch->event == LEASE_EVENT_ENDED && streq(ch->name, name) && lease_visible(req, ch->client))
                        return json_incref(ch->api);
        }
        if (store_history(c->store, 0, 0, &h, &n) < 0)
                return NULL;
        for (size_t i = n; i > 0 && !found; i--) {
                json_t *lease = json_object_get(h[i - 1].value, "lease");

                if (streq_ptr(json_string_value(json_object_get(h[i - 1].value, "event")), "ended") &&
                    streq_ptr(json_string_value(json_object_get(lease, "name")), name) &&
                    lease_visible(req, json_string_value(json_object_get(lease, "client"))))
                        found = json_incref(lease);
        }
        store_history_free(h, n);
        return found;
}

/* 404, or 410 Expired for a lease of the caller that ended. */
static int reply_no_lease(Controller *c, HttpRequest *req, const char *name) {
        _cleanup_(json_decrefp) json_t *ended = find_ended_lease(c, req, name);

        if (ended)
                return http_request_reply_error(req, API_ERROR_EXPIRED, "Lease '%s' has ended (%s)", name,
                                                strna(json_string_value(json_object_get(ended, "reason"))));
        return http_request_reply_error(req, API_ERROR_NOT_FOUND, "No lease named '%s'", name);
}

static int parse_metadata(HttpRequest *req, json_t *body, Label **ret, size_t *ret_n) {
        json_t *m = NULL, *v;
        const char *k;
        Label *l;
        size_t n = 0;
        int r;

        r = member_labels(req, body, "metadata", &m);
        if (r < 0)
                return r;
        l = calloc(MAX(json_object_size(m), (size_t) 1), sizeof(Label));
        if (!l)
                return -ENOMEM;
        json_object_foreach(m, k, v) {
                /* Borrowed: the body outlives the request to the scheduler, which copies. */
                l[n].key = (char *) k;
                l[n].value = (char *) json_string_value(v);
                n++;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

static int on_create_lease(HttpRequest *req, void *userdata) {
        static const char *const known[] = { "selector", "duration", "name", "metadata", "priority", "wait", NULL };
        _cleanup_(json_decrefp) json_t *answer = NULL;
        _cleanup_free_ char *error = NULL, *location = NULL;
        _cleanup_free_ Label *metadata = NULL;
        _cleanup_free_ char *team = NULL; /* the client's team label, borrowed by metadata */
        Controller *c = userdata;
        LeaseRequest lr = { .client = identity(req)->name };
        const Lease *l;
        json_t *body, *priority;
        int r;

        r = require_client(req);
        if (r < 0)
                return r;
        r = body_object(req, true, known, &body);
        if (r < 0)
                return r;
        r = member_string(req, body, "selector", true, &lr.selector);
        if (r < 0)
                return r;
        r = member_duration(req, body, "duration", true, &lr.duration_usec);
        if (r < 0)
                return r;
        r = member_name(req, body, "name", false, &lr.name);
        if (r < 0)
                return r;
        r = member_duration(req, body, "wait", false, &lr.wait_usec);
        if (r < 0)
                return r;
        priority = json_object_get(body, "priority");
        if (priority && !json_is_null(priority)) {
                if (!json_is_integer(priority) || json_integer_value(priority) < INT_MIN / 2 ||
                    json_integer_value(priority) > INT_MAX / 2)
                        return bad_request(req, "\"priority\" must be an integer");
                lr.priority = (int) json_integer_value(priority);
        }
        r = parse_metadata(req, body, &metadata, &lr.n_metadata);
        if (r < 0)
                return r;
        r = controller_lease_team_default(c, lr.client, &metadata, &lr.n_metadata, &team); /* metrics.c */
        if (r < 0)
                return r;
        lr.metadata = metadata;
        /* policy.c: roles, maxDuration, maxLeasesPerClient/PerTeam, priority (403 NoAccess) */
        r = controller_policy_check_lease(c, req, lr.client, lr.selector, lr.duration_usec,
                                          priority && !json_is_null(priority), &lr.priority);
        if (r < 0)
                return r;

        r = lease_scheduler_create(c->scheduler, &lr, &l, &error);
        if (r == -EINVAL && error)
                return http_request_reply_error(req, API_ERROR_INVALID_SELECTOR, "Invalid selector \"%.128s\": %s",
                                                lr.selector, error);
        if (r == -EDOM)
                return http_request_reply_error(req, API_ERROR_UNSATISFIABLE, "%s", strna(error));
        if (r == -EEXIST)
                return http_request_reply_error(req, API_ERROR_CONFLICT, "A lease named '%s' exists already", lr.name);
        if (r == -EINVAL || r == -ERANGE)
                return bad_request(req, "The lease request is invalid");
        if (r < 0)
                return r;

        r = stage(c, req, NULL);
        if (r < 0)
                return r;
        answer = controller_lease_to_json(c, l);
        if (!answer || asprintf(&location, "/v1/leases/%s", l->name) < 0)
                return -ENOMEM;
        log_info("Lease %s of %s: %s%s%s.", l->name, l->client, lease_state_to_string(l->state),
                 l->exporter ? " on " : "", strempty(l->exporter));
        return reply_created(req, location, answer);
}

static int reply_leases_watch(Controller *c, HttpRequest *req) {
        _cleanup_(json_decrefp) json_t *synced = json_pack("{s:s}", "type", "synced");
        _cleanup_free_ const Lease **leases = NULL;
        Identity *id = identity(req);
        size_t n = 0;
        Watch *w;
        int r;

        if (!synced)
                return -ENOMEM;
        r = lease_scheduler_list(c->scheduler, &leases, &n);
        if (r < 0)
                return r;
        r = http_request_reply_stream(req, 200);
        if (r < 0)
                return r;
        r = controller_watch_new(c, req, WATCH_LEASES, id->admin ? NULL : id->name, NULL, &w);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(json_decrefp) json_t *line = NULL;

                if (!lease_visible(req, leases[i]->client))
                        continue;
                line = json_pack("{s:s, s:s, s:o}", "type", "lease", "event", "existing", "lease",
                                 controller_lease_to_json(c, leases[i]));
                if (!line)
                        return -ENOMEM;
                (void) controller_watch_send(w, line);
        }
        (void) controller_watch_send(w, synced);
        return 0;
}

static int query_boolean(HttpRequest *req, const char *key, bool *ret) {
        const char *v = http_request_get_query(req, key);

        *ret = false;
        if (!v)
                return 0;
        if (parse_boolean(v, ret) < 0)
                return bad_request(req, "?%s= must be true or false", key);
        return 0;
}

static int on_list_leases(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *items = json_array(), *answer = NULL;
        _cleanup_free_ const Lease **leases = NULL;
        Controller *c = userdata;
        bool watch, history;
        size_t n = 0;
        int r;

        r = require_client(req);
        if (r < 0)
                return r;
        r = query_boolean(req, "watch", &watch);
        if (r < 0)
                return r;
        r = query_boolean(req, "history", &history);
        if (r < 0)
                return r;
        if (watch)
                return reply_leases_watch(c, req);

        if (!items)
                return -ENOMEM;
        r = lease_scheduler_list(c->scheduler, &leases, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (lease_visible(req, leases[i]->client) &&
                    json_array_append_new(items, controller_lease_to_json(c, leases[i])) < 0)
                        return -ENOMEM;

        if (history) {
                StoreHistoryEntry *h = NULL;
                size_t n_h = 0;

                r = store_history(c->store, 0, 0, &h, &n_h);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n_h && r >= 0; i++) {
                        json_t *lease = json_object_get(h[i].value, "lease");

                        if (streq_ptr(json_string_value(json_object_get(h[i].value, "event")), "ended") &&
                            lease_visible(req, json_string_value(json_object_get(lease, "client"))))
                                r = json_array_append(items, lease);
                }
                store_history_free(h, n_h);
                /* And the ends that wait for the group commit, as this reply does. */
                for (size_t i = 0; i < c->n_changes && r >= 0; i++)
                        if (c->changes[i].event == LEASE_EVENT_ENDED && lease_visible(req, c->changes[i].client))
                                r = json_array_append(items, c->changes[i].api);
                if (r < 0)
                        return -ENOMEM;
        }

        answer = json_pack("{s:O}", "items", items);
        return answer ? http_request_reply_json(req, 200, answer) : -ENOMEM;
}

static int on_get_lease(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *answer = NULL;
        const char *name = http_request_get_param(req, "name");
        Controller *c = userdata;
        const Lease *l;
        int r;

        r = require_client(req);
        if (r < 0)
                return r;
        l = find_lease(c, req, name);
        answer = l ? controller_lease_to_json(c, l) : find_ended_lease(c, req, name);
        if (!answer)
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "No lease named '%s'", name);
        return http_request_reply_json(req, 200, answer);
}

static int on_lease_watch(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *line = NULL, *ended = NULL;
        const char *name = http_request_get_param(req, "name");
        Controller *c = userdata;
        Identity *id = identity(req);
        const Lease *l;
        Watch *w;
        int r;

        r = require_client(req);
        if (r < 0)
                return r;
        l = find_lease(c, req, name);
        if (!l) {
                /* An ended lease: its end, and the stream ends. */
                ended = find_ended_lease(c, req, name);
                if (!ended)
                        return http_request_reply_error(req, API_ERROR_NOT_FOUND, "No lease named '%s'", name);
                line = json_pack("{s:s, s:s, s:O}", "type", "lease", "event", "ended", "lease", ended);
                if (!line)
                        return -ENOMEM;
                r = http_request_reply_stream(req, 200);
                if (r < 0)
                        return r;
                (void) http_request_stream_json(req, line);
                return http_request_stream_end(req);
        }

        line = json_pack("{s:s, s:s, s:o}", "type", "lease", "event", "existing", "lease",
                         controller_lease_to_json(c, l));
        if (!line)
                return -ENOMEM;
        r = http_request_reply_stream(req, 200);
        if (r < 0)
                return r;
        r = controller_watch_new(c, req, WATCH_LEASE, id->admin ? NULL : id->name, name, &w);
        if (r < 0)
                return r;
        (void) controller_watch_send(w, line);
        return 0;
}

static int on_extend_lease(HttpRequest *req, void *userdata) {
        static const char *const known[] = { "by", NULL };
        _cleanup_(json_decrefp) json_t *answer = NULL;
        const char *name = http_request_get_param(req, "name");
        Controller *c = userdata;
        const Lease *l;
        uint64_t by = 0;
        json_t *body;
        int r;

        r = require_client(req);
        if (r < 0)
                return r;
        r = body_object(req, true, known, &body);
        if (r < 0)
                return r;
        r = member_duration(req, body, "by", true, &by);
        if (r < 0)
                return r;
        l = find_lease(c, req, name);
        if (!l)
                return reply_no_lease(c, req, name);
        r = controller_policy_check_extend(c, req, l, by); /* policy.c: maxDuration */
        if (r < 0)
                return r;

        r = lease_scheduler_extend(c->scheduler, name, by);
        if (r == -EBUSY)
                return http_request_reply_error(req, API_ERROR_CONFLICT,
                                                "Lease '%s' is pending: its time starts when it is served", name);
        if (r == -ERANGE)
                return bad_request(req, "Extending lease '%s' by that much is out of range", name);
        if (r < 0)
                return r;
        r = stage(c, req, NULL);
        if (r < 0)
                return r;
        answer = controller_lease_to_json(c, l);
        return answer ? http_request_reply_json(req, 200, answer) : -ENOMEM;
}

static int on_delete_lease(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *answer = NULL;
        const char *name = http_request_get_param(req, "name");
        Controller *c = userdata;
        const Lease *l;
        bool own;
        int r;

        r = require_client(req);
        if (r < 0)
                return r;
        l = find_lease(c, req, name);
        if (!l)
                return reply_no_lease(c, req, name);
        own = streq(l->client, identity(req)->name);
        r = own ? lease_scheduler_release(c->scheduler, name) : lease_scheduler_revoke(c->scheduler, name);
        if (r < 0)
                return r;
        /* The lease is gone from memory; its last word is the ended change, kept until the commit. */
        for (size_t i = c->n_changes; i > 0 && !answer; i--)
                if (c->changes[i - 1].event == LEASE_EVENT_ENDED && streq(c->changes[i - 1].name, name))
                        answer = json_incref(c->changes[i - 1].api);
        r = stage(c, req, NULL);
        if (r < 0)
                return r;
        if (!answer)
                return -EIO;
        log_info("Lease %s %s by %s.", name, own ? "released" : "revoked", identity(req)->name);
        return http_request_reply_json(req, 200, answer);
}

static bool verbs_are_valid(const char *verbs) {
        _cleanup_free_ char *copy = strdup(verbs);
        char *save = NULL;
        size_t n = 0;

        if (!copy)
                return false;
        for (char *v = strtok_r(copy, " ", &save); v; v = strtok_r(NULL, " ", &save), n++)
                if (!STR_IN_SET(v, "power", "serial", "storage", "gpio"))
                        return false;
        return n > 0;
}

static int on_lease_token(HttpRequest *req, void *userdata) {
        static const char *const known[] = { "verbs", NULL };
        _cleanup_free_ char *token = NULL, *audience = NULL, *exporter = NULL, *dut = NULL, *location = NULL,
                            *router = NULL, *granted = NULL;
        _cleanup_(json_decrefp) json_t *answer = NULL;
        const char *name = http_request_get_param(req, "name"), *verbs = NULL, *slash;
        Controller *c = userdata;
        uint64_t now = now_realtime_usec();
        TokenClaims claims;
        const Exporter *device;
        const Lease *l;
        CtlExporter *e;
        json_t *body, *streams;
        int r;

        r = require_client(req);
        if (r < 0)
                return r;
        r = body_object(req, false, known, &body);
        if (r < 0)
                return r;
        r = member_string(req, body, "verbs", false, &verbs);
        if (r < 0)
                return r;
        if (verbs && !verbs_are_valid(verbs))
                return bad_request(req, "\"verbs\" must be space-separated words of power, serial, storage, gpio");

        l = find_lease(c, req, name);
        if (!l)
                return reply_no_lease(c, req, name);
        if (l->state != LEASE_ACTIVE)
                return http_request_reply_error(req, API_ERROR_CONFLICT, "Lease '%s' is pending: it holds no DUT yet",
                                                name);
        /* policy.c: the verbs the lease's grant allows on its device (all of them without a policy) */
        r = controller_policy_stream_verbs(c, req, l, verbs, &granted);
        if (r < 0)
                return r;
        slash = strchr(l->exporter, '/');
        assert(slash);
        exporter = strndup(l->exporter, (size_t) (slash - l->exporter));
        dut = strdup(slash + 1);
        if (!exporter || !dut || asprintf(&audience, "exporter/%s", exporter) < 0)
                return -ENOMEM;

        claims = (TokenClaims) {
                .iss = (char *) c->config->name,
                .sub = l->client,
                .aud = audience,
                .iat_usec = now,
                .exp_usec = now + c->config->stream_token_lifetime_usec,
                .kind = (char *) TOKEN_KIND_STREAM,
                .lease = l->name,
                .dut = dut,
                .verbs = granted,
        };
        r = token_issue(c->keyring, &claims, &token);
        if (r < 0)
                return r;

        e = controller_find_exporter(c, exporter);
        streams = e ? json_object_get(e->record, "streams") : NULL;
        answer = json_pack("{s:s, s:o, s:s, s:s, s:O, s:O}", "token", token,
                           "expires", json_timestamp(claims.exp_usec / USEC_PER_SEC * USEC_PER_SEC),
                           "exporter", exporter, "dut", dut,
                           "address", json_object_get(streams, "address") ?: json_null(),
                           "fingerprint", json_object_get(streams, "fingerprint") ?: json_null());
        if (!answer || asprintf(&location, "/v1/leases/%s", name) < 0)
                return -ENOMEM;
        /* The device's labels (the exporter's merged with the DUT's), for the DUT's labels file on the
         * client's host. */
        if (lease_scheduler_get_exporter(c->scheduler, l->exporter, &device) >= 0 &&
            json_object_set_new(answer, "labels", labels_to_json(device->labels, device->n_labels)) < 0)
                return -ENOMEM;
        /* Where the client's streams go when it cannot reach the exporter (docs/protocol.md "Routed
         * streams"). */
        if (c->router) {
                r = router_advertise_for(c->router, req, &router);
                if (r < 0)
                        log_warning_errno(r, "Cannot tell %s the router's address, leaving it out: %m",
                                          identity(req)->name);
                else if (json_object_set_new(answer, "router", json_string(router)) < 0)
                        return -ENOMEM;
        }
        return reply_created(req, location, answer);
}

/* Routes */

typedef struct Route {
        HttpMethod method;
        const char *pattern;
        HttpRouteFlags flags;
        HttpHandlerFunc handler;
} Route;

static const Route routes[] = {
        { HTTP_METHOD_GET, "/v1/healthz", HTTP_ROUTE_PUBLIC, on_healthz },
        { HTTP_METHOD_GET, "/v1/keys", HTTP_ROUTE_PUBLIC, on_keys },
        { HTTP_METHOD_POST, "/v1/clients", 0, on_create_client },
        { HTTP_METHOD_GET, "/v1/clients", 0, on_list_clients },
        { HTTP_METHOD_DELETE, "/v1/clients/{name}", 0, on_delete_client },
        { HTTP_METHOD_POST, "/v1/exporters", 0, on_create_exporter },
        { HTTP_METHOD_GET, "/v1/exporters", 0, on_list_exporters },
        { HTTP_METHOD_GET, "/v1/exporters/{name}", 0, on_get_exporter },
        { HTTP_METHOD_DELETE, "/v1/exporters/{name}", 0, on_delete_exporter },
        { HTTP_METHOD_PUT, "/v1/exporters/{name}/status", 0, on_put_status },
        { HTTP_METHOD_POST, "/v1/exporters/{name}/heartbeat", 0, on_heartbeat },
        { HTTP_METHOD_GET, "/v1/exporters/{name}/watch", 0, on_exporter_watch },
        { HTTP_METHOD_POST, "/v1/admin/rotate-key", 0, on_rotate_key },
        { HTTP_METHOD_POST, "/v1/admin/keys/{kid}/retire", 0, on_retire_key },
        { HTTP_METHOD_POST, "/v1/leases", 0, on_create_lease },
        { HTTP_METHOD_GET, "/v1/leases", 0, on_list_leases },
        { HTTP_METHOD_GET, "/v1/leases/{name}", 0, on_get_lease },
        { HTTP_METHOD_GET, "/v1/leases/{name}/watch", 0, on_lease_watch },
        { HTTP_METHOD_POST, "/v1/leases/{name}/extend", 0, on_extend_lease },
        { HTTP_METHOD_DELETE, "/v1/leases/{name}", 0, on_delete_lease },
        { HTTP_METHOD_POST, "/v1/leases/{name}/token", 0, on_lease_token },
};

typedef struct RouteBinding {
        Controller *controller;
        const Route *route;
} RouteBinding;

static int dispatch(HttpRequest *req, void *userdata) {
        RouteBinding *b = userdata;
        Controller *c = b->controller;
        int r;

        if (c->broken)
                return http_request_reply_error(req, API_ERROR_UNAVAILABLE, "The controller is shutting down");

        /* The handler reads and changes the state as earlier requests left it, committed or not
         * yet: so its reply, whatever it is, waits for the group commit that makes all of that
         * durable (at once, if nothing waits). */
        http_request_hold(req);
        r = b->route->handler(req, c);
        if (r < 0)
                /* -EALREADY if the handler replied. */
                (void) http_request_reply_errno(req, r, NULL);
        controller_hold_reply(c, req);
        return r;
}

int controller_api_register(Controller *c) {
        RouteBinding *b;
        int r;

        b = calloc(ELEMENTSOF(routes), sizeof(RouteBinding));
        if (!b)
                return -ENOMEM;
        c->api_bindings = b;
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                b[i] = (RouteBinding) { .controller = c, .route = &routes[i] };
                r = http_server_add_route(c->server, routes[i].method, routes[i].pattern, routes[i].flags, dispatch,
                                          &b[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}
