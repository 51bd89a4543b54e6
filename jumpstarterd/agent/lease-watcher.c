/* Agent role: follows the client's leases at the controller and turns each active one into a DUT */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api-error.h"
#include "curl-glue.h"
#include "daemon-util.h"
#include "lease-watcher.h"
#include "log.h"
#include "macro.h"

/* docs/protocol.md "Streaming": the controller pings every 3 s; a watch silent for longer than this
 * is dead even if TCP does not know it yet. */
#define WATCH_IDLE_USEC (10 * USEC_PER_SEC)
#define BACKOFF_MIN_USEC (500 * USEC_PER_MSEC)
#define BACKOFF_MAX_USEC (30 * USEC_PER_SEC)
#define REQUEST_TIMEOUT_SEC 30L
#define CONNECT_TIMEOUT_SEC 10L
/* A token refresh that failed is retried after this long (while the old token still works). */
#define TOKEN_RETRY_USEC (5 * USEC_PER_SEC)
/* The stream token is refreshed when this share of its remaining life has passed... */
#define TOKEN_REFRESH_MIN_USEC (5 * USEC_PER_SEC)
/* One NDJSON line or one answer; the controller's lines are a few hundred bytes. */
#define BODY_MAX (1024 * 1024)

typedef struct LeaseWatcher LeaseWatcher;
typedef struct Lease Lease;
typedef struct Request Request;

typedef enum RequestKind {
        REQUEST_WATCH,
        REQUEST_TOKEN,
        REQUEST_RELEASE,
} RequestKind;

struct Request {
        LeaseWatcher *w;
        RequestKind kind;
        CURL *easy;
        struct curl_slist *headers;
        char *body;             /* the answer; for the watch, what is left of an unfinished line */
        size_t body_size;
        bool body_too_large;
        char *lease;            /* token, release: the lease's name */
        ExporterReleaseDoneFunc done; /* release */
        void *done_userdata;
        Request *prev, *next;
};

struct Lease {
        LeaseWatcher *w;
        char *name;
        bool seen;              /* listed since the watch (re)connected */
        bool has_dut;
        bool failed;            /* adding its DUT failed: not retried until the lease changes */
        Request *token_request;
        sd_event_source *refresh_timer;
        char *token_path;
        Lease *prev, *next;
};

struct LeaseWatcher {
        sd_event *event;
        Exporter *exporter;
        char *base_url;         /* https://ENDPOINT/v1 */
        char *ca_pem;
        bool insecure;
        char *authorization;    /* the header */
        char *client_name;
        char *token_dir;
        bool token_dir_made;

        CurlGlue *glue;
        Request *requests;
        Request *watch;
        bool synced;
        uint64_t backoff_usec;
        sd_event_source *reconnect_timer;
        sd_event_source *idle_timer;
        /* Handles the watch's lines from the loop, not from libcurl's write callback: what a line
         * does may start or end transfers, and libcurl refuses that from within its callbacks. */
        sd_event_source *lines_event;

        Lease *leases;
};

static void watch_schedule_reconnect(LeaseWatcher *w);
static int token_request_start(Lease *l);
static void on_transfer_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata);


/* Requests */

static Request *request_free(Request *q) {
        if (!q)
                return NULL;
        if (q->easy) {
                curl_glue_remove(q->w->glue, q->easy);
                curl_easy_cleanup(q->easy);
        }
        curl_slist_free_all(q->headers);
        if (q->prev)
                q->prev->next = q->next;
        else if (q->w->requests == q)
                q->w->requests = q->next;
        if (q->next)
                q->next->prev = q->prev;
        free(q->body);
        free(q->lease);
        free(q);
        return NULL;
}

static size_t request_on_body(char *ptr, size_t size, size_t nmemb, void *userdata);

static Request *request_new(LeaseWatcher *w, RequestKind kind, const char *method, const char *path,
                            const char *json_body) {
        _cleanup_free_ char *url = NULL;
        Request *q;

        q = calloc(1, sizeof *q);
        if (!q)
                return NULL;
        q->w = w;
        q->kind = kind;
        q->next = w->requests;
        if (q->next)
                q->next->prev = q;
        w->requests = q;

        if (asprintf(&url, "%s%s", w->base_url, path) < 0)
                return request_free(q);
        q->easy = curl_easy_init();
        if (!q->easy)
                return request_free(q);
        q->headers = curl_slist_append(NULL, w->authorization);
        if (q->headers && json_body)
                q->headers = curl_slist_append(q->headers, "Content-Type: application/json");
        if (!q->headers)
                return request_free(q);

        if (curl_easy_setopt(q->easy, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(q->easy, CURLOPT_HTTPHEADER, q->headers) != CURLE_OK ||
            curl_easy_setopt(q->easy, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
            curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, request_on_body) != CURLE_OK ||
            curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q) != CURLE_OK ||
            curl_easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(q->easy, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
            curl_easy_setopt(q->easy, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_SEC) != CURLE_OK ||
            curl_easy_setopt(q->easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK)
                return request_free(q);
        /* The watch lasts as long as it lasts; its silence is watched by the idle timer. */
        if (kind != REQUEST_WATCH && curl_easy_setopt(q->easy, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_SEC) != CURLE_OK)
                return request_free(q);
        if (json_body && (curl_easy_setopt(q->easy, CURLOPT_POSTFIELDSIZE, (long) strlen(json_body)) != CURLE_OK ||
                          curl_easy_setopt(q->easy, CURLOPT_COPYPOSTFIELDS, json_body) != CURLE_OK))
                return request_free(q);
        if (w->ca_pem) {
                struct curl_blob blob = {
                        .data = w->ca_pem,
                        .len = strlen(w->ca_pem),
                        .flags = CURL_BLOB_COPY,
                };

                if (curl_easy_setopt(q->easy, CURLOPT_CAINFO_BLOB, &blob) != CURLE_OK)
                        return request_free(q);
        }
        if (w->insecure && (curl_easy_setopt(q->easy, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK ||
                            curl_easy_setopt(q->easy, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK))
                return request_free(q);
        return q;
}

/* The errno of a failed answer: the reason of its JSON error body, else the HTTP status, with the
 * message for the log in *ret_message (a new string). */
static int request_error(Request *q, CURLcode result, char **ret_message) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        const char *message = NULL;
        ApiError e = _API_ERROR_INVALID;
        long status = 0;

        *ret_message = NULL;
        if (result != CURLE_OK) {
                *ret_message = strdup(curl_easy_strerror(result));
                switch (result) {
                case CURLE_OPERATION_TIMEDOUT:
                        return -ETIMEDOUT;
                case CURLE_PEER_FAILED_VERIFICATION:
                case CURLE_SSL_CACERT_BADFILE:
                        return -EKEYREJECTED;
                default:
                        return -EHOSTDOWN;
                }
        }
        (void) curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
        if (q->body && !q->body_too_large)
                body = json_loadb(q->body, q->body_size, 0, NULL);
        if (body)
                (void) api_error_from_json(body, &e, &message, NULL);
        if (e < 0)
                e = api_error_from_http_status((unsigned) status);
        if (asprintf(ret_message, "HTTP %ld %s: %s", status, strna(api_error_to_string(e)),
                     message ?: "(no message)") < 0)
                *ret_message = NULL;
        return -api_error_to_errno(e);
}

static long request_status(Request *q) {
        long status = 0;

        (void) curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
        return status;
}

/* Leases */

static Lease *lease_find(LeaseWatcher *w, const char *name) {
        for (Lease *l = w->leases; l; l = l->next)
                if (streq(l->name, name))
                        return l;
        return NULL;
}

static Lease *lease_new(LeaseWatcher *w, const char *name) {
        Lease *l;

        l = calloc(1, sizeof *l);
        if (!l)
                return NULL;
        l->w = w;
        l->name = strdup(name);
        if (!l->name || asprintf(&l->token_path, "%s/%s.token", w->token_dir, name) < 0) {
                free(l->name);
                free(l);
                return NULL;
        }
        l->next = w->leases;
        if (l->next)
                l->next->prev = l;
        w->leases = l;
        return l;
}

/* Forgets the lease: its DUT goes, with its token. */
static void lease_free(Lease *l) {
        LeaseWatcher *w = l->w;

        if (l->has_dut)
                (void) exporter_remove_dut(w->exporter, l->name);
        if (l->token_request) {
                l->token_request = request_free(l->token_request);
        }
        sd_event_source_disable_unref(l->refresh_timer);
        if (unlink(l->token_path) < 0 && errno != ENOENT)
                log_debug_errno(errno, "Failed to remove %s: %m", l->token_path);

        if (l->prev)
                l->prev->next = l->next;
        else
                w->leases = l->next;
        if (l->next)
                l->next->prev = l->prev;
        free(l->token_path);
        free(l->name);
        free(l);
}

static int release_hook(Exporter *e, const char *dut, ExporterReleaseDoneFunc done, void *done_userdata,
                        void *userdata);

static char *yaml_quote_or_null(const char *s) {
        return s ? yaml_quote_string(s) : NULL;
}

/* The DUT of an active lease: one remote DUT, named after the lease, that streams from the
 * exporter's DUT with the token in token_path. */
static int lease_add_dut(Lease *l, const char *exporter, const char *dut, const char *address,
                         const char *fingerprint, const char *router, json_t *labels) {
        LeaseWatcher *w = l->w;
        _cleanup_free_ char *yaml = NULL, *q_exporter = NULL, *q_dut = NULL, *q_address = NULL,
                            *q_fingerprint = NULL, *q_path = NULL, *q_client = NULL, *error = NULL, *path = NULL,
                            *routed = NULL, *q_router = NULL, *q_ca = NULL, *device_labels = NULL;
        ExporterConfig *config = NULL;
        const char *key;
        json_t *value;
        int r;

        q_exporter = yaml_quote_or_null(exporter);
        q_dut = yaml_quote_or_null(dut);
        q_address = yaml_quote_or_null(address);
        q_fingerprint = yaml_quote_or_null(fingerprint);
        q_path = yaml_quote_or_null(l->token_path);
        q_client = yaml_quote_or_null(w->client_name);
        if (!q_exporter || !q_dut || !q_address || !q_fingerprint || !q_path || !q_client)
                return log_oom();
        /* The device's labels, as the controller matched them (the exporter and DUT labels below win). */
        json_object_foreach(labels, key, value) {
                _cleanup_free_ char *q_key = NULL, *q_value = NULL;
                char *joined;

                if (!json_is_string(value) || streq(key, "exporter") || streq(key, "dut"))
                        continue;
                q_key = yaml_quote_or_null(key);
                q_value = yaml_quote_or_null(json_string_value(value));
                if (!q_key || !q_value ||
                    asprintf(&joined, "%s      %s: %s\n", strempty(device_labels), q_key, q_value) < 0)
                        return log_oom();
                free(device_labels);
                device_labels = joined;
        }
        /* The controller's router, for an exporter this host cannot reach: its certificate is the
         * controller's, vouched for by the CA of the ClientConfig (none: the system's CAs). */
        if (router) {
                q_router = yaml_quote_or_null(router);
                q_ca = w->ca_pem ? yaml_quote_or_null(w->ca_pem) : NULL;
                if (!q_router || (w->ca_pem && !q_ca))
                        return log_oom();
                if (asprintf(&routed, "      router: %s\n%s%s%s", q_router, q_ca ? "      router_ca: " : "",
                             strempty(q_ca), q_ca ? "\n" : "") < 0)
                        return log_oom();
        }

        if (asprintf(&yaml,
                     "apiVersion: jumpstarter.dev/v1alpha1\n"
                     "kind: ExporterConfig\n"
                     "metadata:\n"
                     "  name: %s\n"
                     "export:\n"
                     "  %s:\n"
                     "    type: remote\n"
                     "    labels:\n"
                     "%s"
                     "      exporter: %s\n"
                     "      dut: %s\n"
                     "    config:\n"
                     "      address: %s\n"
                     "      dut: %s\n"
                     "      fingerprint: %s\n"
                     "      token_file: %s\n"
                     "%s",
                     q_client, l->name, strempty(device_labels), q_exporter, q_dut, q_address, q_dut, q_fingerprint, q_path,
                     strempty(routed)) < 0)
                return log_oom();
        if (asprintf(&path, "%s/%s.yaml", w->token_dir, l->name) < 0)
                return log_oom();

        r = exporter_config_parse(path, yaml, strlen(yaml), &config, &error);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, l->name, "The lease's DUT %s/%s cannot be added: %s", exporter,
                                      dut, strna(error));
        r = exporter_add_dut(w->exporter, config, l->name, release_hook, w);
        if (r < 0)
                return r;
        l->has_dut = true;
        log_dut_prefix(LOG_INFO, 0, l->name, "Lease active: DUT %s/%s at %s", exporter, dut, address);
        return 0;
}

static int on_refresh_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Lease *l = userdata;

        if (!l->token_request)
                (void) token_request_start(l);
        return 0;
}

static void lease_schedule_refresh(Lease *l, uint64_t in_usec) {
        int r;

        if (l->refresh_timer)
                r = sd_event_source_set_time_relative(l->refresh_timer, in_usec);
        else
                r = sd_event_add_time_relative(l->w->event, &l->refresh_timer, CLOCK_MONOTONIC, in_usec,
                                               USEC_PER_SEC, on_refresh_timer, l);
        if (r >= 0)
                r = sd_event_source_set_enabled(l->refresh_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_dut_prefix(LOG_WARNING, r, l->name, "Failed to schedule the stream token refresh: %m");
}

/* "2026-11-29T10:00:00Z" to CLOCK_REALTIME usec. */
static int parse_timestamp(const char *s, uint64_t *ret) {
        struct tm tm = {};
        const char *end;
        time_t t;

        if (!s)
                return -EINVAL;
        end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!end)
                return -EINVAL;
        if (*end == '.')
                for (end++; *end >= '0' && *end <= '9'; end++)
                        ;
        if (!streq(end, "Z"))
                return -EINVAL;
        t = timegm(&tm);
        if (t < 0)
                return -ERANGE;
        *ret = (uint64_t) t * USEC_PER_SEC;
        return 0;
}

static void on_token_done(Lease *l, Request *q, CURLcode result) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_free_ char *message = NULL;
        const char *token, *expires, *exporter, *dut, *address, *fingerprint, *router = NULL;
        json_t *labels = NULL;
        uint64_t expires_usec, now, left;
        int r;

        if (result != CURLE_OK || request_status(q) != 201) {
                r = request_error(q, result, &message);
                /* The lease ended meanwhile, or is not active (yet): the watch says what next. */
                if (r == -ENOENT || r == -ETIME || r == -EEXIST) {
                        log_dut_prefix(LOG_INFO, 0, l->name, "No stream token for the lease: %s", strna(message));
                        return;
                }
                log_dut_prefix(LOG_WARNING, r, l->name, "Failed to get a stream token, retrying: %s", strna(message));
                return lease_schedule_refresh(l, TOKEN_RETRY_USEC);
        }

        body = q->body_too_large ? NULL : json_loadb(q->body ?: "", q->body_size, 0, NULL);
        if (json_unpack(body, "{s:s, s:s, s:s, s:s, s:s, s:s, s?:s, s?:o}", "token", &token, "expires", &expires,
                        "exporter", &exporter, "dut", &dut, "address", &address, "fingerprint", &fingerprint,
                        "router", &router, "labels", &labels) < 0 ||
            parse_timestamp(expires, &expires_usec) < 0) {
                log_dut_prefix(LOG_WARNING, EBADMSG, l->name, "The controller's stream token answer does not parse, "
                               "retrying");
                return lease_schedule_refresh(l, TOKEN_RETRY_USEC);
        }

        /* The remote driver reads the file at every (re)connect: a new token takes effect there. */
        r = write_file_atomic(l->token_path, token, strlen(token), 0600);
        if (r < 0) {
                log_dut_prefix(LOG_ERR, r, l->name, "Failed to write %s, retrying: %m", l->token_path);
                return lease_schedule_refresh(l, TOKEN_RETRY_USEC);
        }

        if (!l->has_dut && !l->failed) {
                r = lease_add_dut(l, exporter, dut, address, fingerprint, router, labels);
                if (r < 0) {
                        /* Not retried: it would fail the same way until something changes. */
                        l->failed = true;
                        return;
                }
        }

        /* Refresh when half of its life is left: time enough to retry while the old one works. */
        now = now_usec(CLOCK_REALTIME);
        left = expires_usec > now ? expires_usec - now : 0;
        lease_schedule_refresh(l, MAX(left / 2, TOKEN_REFRESH_MIN_USEC));
}

static int token_request_start(Lease *l) {
        _cleanup_free_ char *path = NULL;
        Request *q;
        int r;

        if (asprintf(&path, "/leases/%s/token", l->name) < 0)
                return log_oom();
        q = request_new(l->w, REQUEST_TOKEN, "POST", path, "{}");
        if (!q)
                return log_oom();
        q->lease = strdup(l->name);
        if (!q->lease) {
                request_free(q);
                return log_oom();
        }
        r = curl_glue_add(l->w->glue, q->easy, on_transfer_done, q);
        if (r < 0) {
                request_free(q);
                log_dut_prefix(LOG_WARNING, r, l->name, "Failed to ask for a stream token, retrying: %m");
                lease_schedule_refresh(l, TOKEN_RETRY_USEC);
                return r;
        }
        l->token_request = q;
        return 0;
}

/* The lease is no more: its DUT goes. */
static void lease_ended(LeaseWatcher *w, const char *name, const char *why) {
        Lease *l = lease_find(w, name);

        if (!l)
                return;
        log_dut_prefix(LOG_INFO, 0, name, "Lease ended%s%s", why ? ": " : "", strempty(why));
        lease_free(l);
}

/* Release: DELETE /v1/leases/NAME. */

static void on_release_done(LeaseWatcher *w, Request *q, CURLcode result) {
        _cleanup_free_ char *message = NULL;
        ExporterReleaseDoneFunc done = q->done;
        void *done_userdata = q->done_userdata;
        int r = 0;

        q->done = NULL;
        if (result != CURLE_OK || request_status(q) != 200) {
                r = request_error(q, result, &message);
                /* Gone already: what the caller wanted. */
                if (r == -ENOENT || r == -ETIME)
                        r = 0;
                else
                        log_dut_prefix(LOG_WARNING, r, q->lease, "Failed to release the lease: %s", strna(message));
        }
        if (r >= 0)
                lease_ended(w, q->lease, "released");
        done(r, done_userdata);
}

static int release_hook(Exporter *e, const char *dut, ExporterReleaseDoneFunc done, void *done_userdata,
                        void *userdata) {
        LeaseWatcher *w = userdata;
        _cleanup_free_ char *path = NULL;
        Request *q;
        int r;

        if (asprintf(&path, "/leases/%s", dut) < 0)
                return -ENOMEM;
        q = request_new(w, REQUEST_RELEASE, "DELETE", path, NULL);
        if (!q)
                return -ENOMEM;
        q->lease = strdup(dut);
        if (!q->lease) {
                request_free(q);
                return -ENOMEM;
        }
        r = curl_glue_add(w->glue, q->easy, on_transfer_done, q);
        if (r < 0) {
                request_free(q);
                return r;
        }
        q->done = done;
        q->done_userdata = done_userdata;
        return 0;
}

/* The watch */

static void watch_on_lease(LeaseWatcher *w, const char *event, json_t *lease) {
        const char *name = NULL, *state = NULL, *reason = NULL;
        Lease *l;

        if (json_unpack(lease, "{s:s, s:s}", "name", &name, "state", &state) < 0 || !dut_name_is_valid(name)) {
                log_warning("Ignoring a lease line without a valid name and state");
                return;
        }
        (void) json_unpack(lease, "{s?s}", "reason", &reason);
        /* The DUT's lease file: kept while active (the DUT may come later), updated on extend. */
        (void) exporter_set_lease(w->exporter, name, streq(state, "active") && !streq(event, "ended") ? lease : NULL);

        if (streq(event, "ended") || streq(state, "ended"))
                return lease_ended(w, name, reason);

        l = lease_find(w, name);
        if (!streq(state, "active")) {
                if (l)
                        l->seen = true;
                return;
        }
        if (!l) {
                l = lease_new(w, name);
                if (!l) {
                        log_oom();
                        return;
                }
        }
        l->seen = true;
        /* Something changed: a DUT that could not be added may be addable now. */
        if (!streq(event, "existing"))
                l->failed = false;
        if (!l->has_dut && !l->token_request && !l->failed)
                (void) token_request_start(l);
}

static void watch_on_line(LeaseWatcher *w, const char *line, size_t size) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *type = NULL, *event = NULL;
        json_t *lease = NULL;

        j = json_loadb(line, size, 0, NULL);
        if (!j || json_unpack(j, "{s:s}", "type", &type) < 0) {
                log_warning("Ignoring a watch line that is not a JSON object with a type");
                return;
        }
        if (streq(type, "ping"))
                return;
        if (streq(type, "synced")) {
                size_t n = 0;

                w->synced = true;
                w->backoff_usec = 0;
                /* Leases that were not listed ended while the watch was away. */
                for (Lease *l = w->leases, *next; l; l = next) {
                        next = l->next;
                        if (!l->seen)
                                lease_ended(w, l->name, "not live any more");
                        else
                                n++;
                }
                log_info("Lease watch synced: %zu lease%s", n, n == 1 ? "" : "s");
                return;
        }
        if (streq(type, "lease") && json_unpack(j, "{s:s, s:o}", "event", &event, "lease", &lease) >= 0)
                return watch_on_lease(w, event, lease);
        log_debug("Ignoring a watch line of type %s", type);
}

static size_t request_on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Request *q = userdata;
        size_t n = size * nmemb;
        char *b;

        if (q->body_size + n > BODY_MAX) {
                q->body_too_large = true;
                /* Aborts the transfer (CURLE_WRITE_ERROR). */
                return 0;
        }
        b = realloc(q->body, q->body_size + n + 1);
        if (!b)
                return 0;
        q->body = b;
        memcpy(q->body + q->body_size, ptr, n);
        q->body_size += n;
        q->body[q->body_size] = '\0';

        if (q->kind != REQUEST_WATCH || request_status(q) != 200)
                return n;

        (void) sd_event_source_set_time_relative(q->w->idle_timer, WATCH_IDLE_USEC);
        if (memchr(ptr, '\n', n))
                (void) sd_event_source_set_enabled(q->w->lines_event, SD_EVENT_ONESHOT);
        return n;
}

static int on_lines_event(sd_event_source *s, void *userdata) {
        LeaseWatcher *w = userdata;
        Request *q;
        char *nl;

        /* Each line is a JSON object; chunk boundaries mean nothing. A line may end the watch (a
         * revoked client): stop then. */
        while ((q = w->watch) && (nl = memchr(q->body, '\n', q->body_size))) {
                _cleanup_free_ char *line = strndup(q->body, (size_t) (nl - q->body));
                size_t len = (size_t) (nl - q->body);

                if (!line)
                        return log_oom();
                memmove(q->body, nl + 1, q->body_size - len - 1);
                q->body_size -= len + 1;
                q->body[q->body_size] = '\0';
                if (len > 0)
                        watch_on_line(w, line, len);
        }
        return 0;
}

static void watch_stop(LeaseWatcher *w) {
        w->watch = request_free(w->watch);
        (void) sd_event_source_set_enabled(w->idle_timer, SD_EVENT_OFF);
}

static int on_lines_event(sd_event_source *s, void *userdata);

static void on_watch_done(LeaseWatcher *w, Request *q, CURLcode result) {
        _cleanup_free_ char *message = NULL;
        int r;

        /* The last lines may have come with the end of the watch (the leases of a client that was
         * just deleted end, then its watch): handle them before the watch goes. */
        if (w->watch == q && request_status(q) == 200)
                (void) on_lines_event(NULL, w);

        if (result == CURLE_OK && request_status(q) == 200)
                log_info("The controller ended the lease watch; reconnecting");
        else {
                r = request_error(q, result, &message);
                log_full_errno(r == -EKEYREJECTED ? LOG_ERR : LOG_WARNING, r, "Lease watch at %s failed: %s",
                               w->base_url, strna(message));
                /* The controller no longer takes this client's token (deleted, or its key retired): its
                 * leases cannot be followed or their streams renewed, so their DUTs go now. */
                if (r == -EKEYREJECTED)
                        for (Lease *l = w->leases, *next; l; l = next) {
                                next = l->next;
                                lease_ended(w, l->name, "the controller refused this client's token");
                        }
        }
        watch_stop(w);
        watch_schedule_reconnect(w);
}

static int on_idle_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        LeaseWatcher *w = userdata;

        log_warning("No word from the controller for %" PRIu64 "s, reconnecting the lease watch",
                    WATCH_IDLE_USEC / USEC_PER_SEC);
        watch_stop(w);
        watch_schedule_reconnect(w);
        return 0;
}

static int watch_start(LeaseWatcher *w) {
        int r;

        assert(!w->watch);
        w->watch = request_new(w, REQUEST_WATCH, "GET", "/leases?watch=true", NULL);
        if (!w->watch)
                return log_oom();
        r = curl_glue_add(w->glue, w->watch->easy, on_transfer_done, w->watch);
        if (r < 0) {
                w->watch = request_free(w->watch);
                return log_error_errno(r, "Failed to start the lease watch: %m");
        }
        w->synced = false;
        for (Lease *l = w->leases; l; l = l->next)
                l->seen = false;
        r = sd_event_source_set_time_relative(w->idle_timer, WATCH_IDLE_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(w->idle_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                return log_error_errno(r, "Failed to arm the lease watch timer: %m");
        log_debug("Lease watch started at %s", w->base_url);
        return 0;
}

static int on_reconnect_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        LeaseWatcher *w = userdata;

        if (!w->watch && watch_start(w) < 0)
                watch_schedule_reconnect(w);
        return 0;
}

static void watch_schedule_reconnect(LeaseWatcher *w) {
        uint64_t jitter = 0, delay;
        int r;

        /* 0.5 s doubling to 30 s, plus up to a quarter more, so that agents do not come in step. */
        w->backoff_usec = w->backoff_usec == 0 ? BACKOFF_MIN_USEC : MIN(w->backoff_usec * 2, BACKOFF_MAX_USEC);
        (void) getrandom(&jitter, sizeof jitter, GRND_NONBLOCK);
        delay = w->backoff_usec + jitter % (w->backoff_usec / 4 + 1);

        r = sd_event_source_set_time_relative(w->reconnect_timer, delay);
        if (r >= 0)
                r = sd_event_source_set_enabled(w->reconnect_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Failed to schedule the lease watch reconnect: %m");
}

/* Every transfer ends here; which one it was says what to do. */
static void on_transfer_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        Request *q = userdata;
        LeaseWatcher *w = q->w;
        Lease *l;

        /* The glue has let go of it. */
        switch (q->kind) {
        case REQUEST_WATCH:
                on_watch_done(w, q, result);
                return;
        case REQUEST_TOKEN:
                l = lease_find(w, q->lease);
                if (l && l->token_request == q) {
                        l->token_request = NULL;
                        on_token_done(l, q, result);
                }
                break;
        case REQUEST_RELEASE:
                on_release_done(w, q, result);
                break;
        }
        request_free(q);
}

int lease_watcher_new(sd_event *event, Exporter *exporter, const ClientConfig *config, const char *token_dir,
                      LeaseWatcher **ret) {
        _cleanup_(lease_watcher_freep) LeaseWatcher *w = NULL;
        int r;

        assert(event);
        assert(exporter);
        assert(config);
        assert(token_dir);
        assert(ret);

        w = calloc(1, sizeof *w);
        if (!w)
                return log_oom();
        w->event = sd_event_ref(event);
        w->exporter = exporter;
        w->insecure = config->insecure;
        if (asprintf(&w->base_url, "https://%s/v1", config->endpoint) < 0 ||
            asprintf(&w->authorization, "Authorization: Bearer %s", config->token) < 0 ||
            !(w->client_name = strdup(config->name)) || !(w->token_dir = strdup(token_dir)) ||
            (config->ca_pem && !(w->ca_pem = strdup(config->ca_pem))))
                return log_oom();
        if (w->insecure)
                log_warning("tls.insecure is set: the controller's certificate is not verified");

        if (mkdir(token_dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create %s: %m", token_dir);
        w->token_dir_made = true;

        r = curl_glue_new(event, &w->glue);
        if (r < 0)
                return log_error_errno(r, "Failed to set up libcurl: %m");
        r = sd_event_add_time_relative(event, &w->reconnect_timer, CLOCK_MONOTONIC, 0, 0, on_reconnect_timer, w);
        if (r >= 0)
                r = sd_event_source_set_enabled(w->reconnect_timer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(event, &w->idle_timer, CLOCK_MONOTONIC, WATCH_IDLE_USEC, 0,
                                               on_idle_timer, w);
        if (r >= 0)
                r = sd_event_source_set_enabled(w->idle_timer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_defer(event, &w->lines_event, on_lines_event, w);
        if (r >= 0)
                r = sd_event_source_set_enabled(w->lines_event, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the lease watch timers: %m");

        r = watch_start(w);
        if (r < 0)
                return r;

        log_info("Following the leases of %s at %s", w->client_name, config->endpoint);
        *ret = TAKE_PTR(w);
        return 0;
}

LeaseWatcher *lease_watcher_free(LeaseWatcher *w) {
        if (!w)
                return NULL;

        while (w->leases)
                lease_free(w->leases);
        w->watch = NULL;
        while (w->requests) {
                Request *q = w->requests;

                if (q->kind == REQUEST_RELEASE && q->done) {
                        ExporterReleaseDoneFunc done = q->done;

                        q->done = NULL;
                        done(-ECANCELED, q->done_userdata);
                }
                request_free(q);
        }
        sd_event_source_disable_unref(w->reconnect_timer);
        sd_event_source_disable_unref(w->idle_timer);
        sd_event_source_disable_unref(w->lines_event);
        curl_glue_free(w->glue);
        if (w->token_dir_made && rmdir(w->token_dir) < 0 && errno != ENOENT)
                log_debug_errno(errno, "Failed to remove %s: %m", w->token_dir);

        sd_event_unref(w->event);
        free(w->base_url);
        free(w->ca_pem);
        if (w->authorization)
                explicit_bzero(w->authorization, strlen(w->authorization));
        free(w->authorization);
        free(w->client_name);
        free(w->token_dir);
        free(w);
        return NULL;
}
