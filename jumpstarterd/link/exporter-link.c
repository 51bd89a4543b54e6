/* Exporter link: registers this exporter's DUTs with the controller and follows its leases and keys */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "curl-glue.h"
#include "daemon-util.h"
#include "exporter-link.h"
#include "link-util.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "version.h"

/* docs/protocol.md "Exporter link": no line on the watch for this long and the link is lost. The controller
 * pings every 3 s. */
#define LINK_SILENCE_USEC (10 * USEC_PER_SEC)
/* Connecting, and each request but the watch, may take this long. */
#define LINK_REQUEST_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* Until the controller says otherwise in its answer to PUT status. */
#define LINK_HEARTBEAT_DEFAULT_USEC (3 * USEC_PER_SEC)
/* An error body is for a message; more than this is not read. */
#define LINK_BODY_MAX (64 * 1024)
#define LINK_CA_FILE_MAX (1024 * 1024)
#define LINK_REPORTS_MAX 1024
#define LINK_REPORT_RETRY_USEC (2 * USEC_PER_SEC)

typedef enum LinkPhase {
        LINK_IDLE,        /* not started */
        LINK_WAITING,     /* the retry timer runs */
        LINK_PROBING,     /* GET /v1/healthz, to learn our address as the controller sees it */
        LINK_REGISTERING, /* PUT status */
        LINK_WATCHING,    /* the watch is open (connected once a line came) */
} LinkPhase;

typedef struct LinkBuffer {
        char *data;
        size_t size;
        bool truncated;
} LinkBuffer;

/* The lease that holds one DUT. By name: DUTs may come and go while the exporter runs (SIGHUP). */
typedef struct LeaseSlot {
        char *dut;
        char *lease; /* NULL: none now */
        uint64_t end_usec;
} LeaseSlot;

struct ExporterLink {
        sd_event *event;
        const ExporterConfig *config;
        Exporter *exporter;
        CurlGlue *glue;

        char *url_base;           /* https://ENDPOINT/v1 */
        char *name;               /* the exporter's name in URLs, escaped */
        struct curl_slist *headers;
        char *ca_pem;
        size_t ca_size;

        char *streams_address, *streams_fingerprint;
        char *local_ip;
        char *issuer;

        LinkPhase phase;
        bool connected;
        unsigned attempt;
        uint64_t heartbeat_usec;

        CURL *request; /* the probe or PUT status */
        LinkBuffer request_body;
        char *sending_status;    /* the body of the PUT status in flight */
        char *registered_status; /* ... and of the last one the controller took */
        CURL *watch;
        long watch_status;
        NdjsonSplitter splitter;
        LinkBuffer watch_body; /* an error answer */
        char *watch_problem;   /* why we stopped reading the watch */
        CURL *heartbeat;
        LinkBuffer heartbeat_body;

        sd_event_source *retry_timer, *silence_timer, *heartbeat_timer, *expiry_timer;

        LeaseSlot *slots;
        size_t n_slots;
        Keyring *keyring;

        void (*lease_changed)(const char *dut, const char *lease, void *u);
        void *lease_changed_userdata;
        void (*dial)(const char *id, const char *router, const char *token, void *u);
        void *dial_userdata;

        /* exporter-hooks.c: lease edges for the hooks, and its reports, sent one at a time in order */
        void (*lease_edge)(const char *dut, const char *lease, bool begins, void *u);
        void *lease_edge_userdata;
        char **reports; /* "PATH\nBODY" each */
        size_t n_reports;
        CURL *report;
        LinkBuffer report_body;
        sd_event_source *report_timer;
};

static void link_buffer_done(LinkBuffer *b) {
        free(b->data);
        *b = (LinkBuffer) {};
}

static size_t link_buffer_append(LinkBuffer *b, const char *p, size_t n) {
        size_t take = MIN(n, LINK_BODY_MAX - b->size);
        char *d;

        if (take < n)
                b->truncated = true;
        if (take == 0)
                return n;
        d = realloc(b->data, b->size + take + 1);
        if (!d)
                return 0;
        memcpy(d + b->size, p, take);
        b->data = d;
        b->size += take;
        b->data[b->size] = 0;
        return n;
}

static size_t link_on_body(char *p, size_t size, size_t n, void *userdata) {
        return link_buffer_append(userdata, p, size * n);
}

static const char *format_realtime(char *buf, size_t size, uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(buf, size, "@%" PRIu64, usec / USEC_PER_SEC);
        return buf;
}

/* base64url without padding, as JWTs write their parts. */
static int base64url_decode(const char *s, size_t len, char **ret) {
        char *out = malloc(len * 3 / 4 + 2);
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t n = 0;

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                const char *c = strchr(alphabet, s[i]);

                if (!c || !s[i]) {
                        free(out);
                        return -EINVAL;
                }
                acc = (acc << 6) | (uint32_t) (c - alphabet);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (char) ((acc >> bits) & 0xff);
                }
        }
        out[n] = 0;
        *ret = out;
        return (int) n;
}

/* The "iss" of our own token: the controller's name, until a "keys" line says it. Unverified, and used only to
 * verify others' tokens against keys that the controller itself sent. */
static char *token_issuer(const char *token) {
        const char *dot1 = strchr(token, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
        _cleanup_free_ char *payload = NULL;
        char *iss = NULL;
        json_t *j;
        int n;

        if (!dot2)
                return NULL;
        n = base64url_decode(dot1 + 1, (size_t) (dot2 - dot1 - 1), &payload);
        if (n < 0)
                return NULL;
        j = json_loadb(payload, (size_t) n, 0, NULL);
        if (json_is_string(json_object_get(j, "iss")))
                iss = strdup(json_string_value(json_object_get(j, "iss")));
        json_decref(j);
        return iss;
}

/* "HTTP 401 Unauthorized: The bearer token was refused: expired", from an error body of docs/protocol.md. */
static char *http_problem(long status, const LinkBuffer *body) {
        json_t *j = body->data ? json_loadb(body->data, body->size, 0, NULL) : NULL;
        const char *reason = json_string_value(json_object_get(j, "reason"));
        const char *message = json_string_value(json_object_get(j, "message"));
        char *s = NULL;

        if (asprintf(&s, "HTTP %ld%s%s%s%s", status, reason ? " " : "", strempty(reason), message ? ": " : "",
                     strempty(message)) < 0)
                s = NULL;
        json_decref(j);
        return s;
}

static void link_stop_transfers(ExporterLink *l) {
        if (l->request) {
                curl_glue_remove(l->glue, l->request);
                curl_easy_cleanup(l->request);
                l->request = NULL;
        }
        if (l->watch) {
                curl_glue_remove(l->glue, l->watch);
                curl_easy_cleanup(l->watch);
                l->watch = NULL;
        }
        if (l->heartbeat) {
                curl_glue_remove(l->glue, l->heartbeat);
                curl_easy_cleanup(l->heartbeat);
                l->heartbeat = NULL;
        }
        link_buffer_done(&l->request_body);
        link_buffer_done(&l->watch_body);
        link_buffer_done(&l->heartbeat_body);
        ndjson_splitter_reset(&l->splitter);
        free(l->watch_problem);
        l->watch_problem = NULL;
        (void) sd_event_source_set_enabled(l->silence_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(l->heartbeat_timer, SD_EVENT_OFF);
}

static void link_on_powered_off(Dut *d, int r, void *userdata) {
        if (r < 0 && r != -ECANCELED)
                log_dut_prefix(LOG_WARNING, r, dut_get_name(d), "Failed to power off after its lease ended: %m");
        else if (r >= 0)
                log_dut_prefix(LOG_INFO, 0, dut_get_name(d), "Powered off after its lease ended");
}

/* The next holder of a DUT starts from a known state: off. */
static void link_power_off(ExporterLink *l, Dut *d) {
        int r = dut_set_power(d, POWER_ACTION_OFF, link_on_powered_off, NULL);

        if (r > 0)
                link_on_powered_off(d, 0, NULL);
        else if (r < 0 && r != -EOPNOTSUPP)
                log_dut_prefix(LOG_WARNING, r, dut_get_name(d), "Failed to power off after its lease ended: %m");
}

static LeaseSlot *link_find_slot(ExporterLink *l, const char *dut) {
        for (size_t i = 0; i < l->n_slots; i++)
                if (streq(l->slots[i].dut, dut))
                        return &l->slots[i];
        return NULL;
}

/* Sets the lease of a DUT (lease NULL: none), with the log lines, the callback and the power off that a change
 * brings. */
static void link_set_lease(ExporterLink *l, const char *dut, const char *lease, uint64_t end_usec, const char *why) {
        LeaseSlot *s = link_find_slot(l, dut);
        char when[64];
        Dut *d;

        if (!s) {
                LeaseSlot *a;

                if (!lease)
                        return;
                a = realloc(l->slots, (l->n_slots + 1) * sizeof(LeaseSlot));
                if (!a) {
                        log_oom();
                        return;
                }
                l->slots = a;
                s = &l->slots[l->n_slots];
                *s = (LeaseSlot) { .dut = strdup(dut) };
                if (!s->dut) {
                        log_oom();
                        return;
                }
                l->n_slots++;
                dut = s->dut;
        }

        if (streq_ptr(s->lease, lease)) {
                if (lease && s->end_usec != end_usec) {
                        s->end_usec = end_usec;
                        log_dut_prefix(LOG_INFO, 0, dut, "Lease %s now ends %s", lease,
                                       format_realtime(when, sizeof when, end_usec));
                }
                return;
        }

        if (s->lease) {
                _cleanup_free_ char *old = s->lease;

                s->lease = NULL;
                s->end_usec = 0;
                log_dut_prefix(LOG_INFO, 0, dut, "Lease %s ended%s%s", old, why ? " " : "", strempty(why));
                if (l->lease_changed)
                        l->lease_changed(dut, NULL, l->lease_changed_userdata);
                if (l->lease_edge)
                        l->lease_edge(dut, old, false, l->lease_edge_userdata);
                d = exporter_find_dut(l->exporter, dut);
                if (d)
                        link_power_off(l, d);
        }
        if (lease) {
                s->lease = strdup(lease);
                if (!s->lease) {
                        /* Without the name no stream token can match: the DUT stays unleased here. */
                        log_oom();
                        return;
                }
                s->end_usec = end_usec;
                log_dut_prefix(LOG_INFO, 0, dut, "Lease %s began, ends %s", lease,
                               format_realtime(when, sizeof when, end_usec));
                if (l->lease_changed)
                        l->lease_changed(dut, lease, l->lease_changed_userdata);
                if (l->lease_edge)
                        l->lease_edge(dut, s->lease, true, l->lease_edge_userdata);
        }
}

/* While the link is down, the leases we knew run until their end and then stop here too. While it is up, the
 * controller says when they end. */
static void link_update_expiry(ExporterLink *l) {
        uint64_t next = UINT64_MAX;
        int r;

        if (!l->connected)
                for (size_t i = 0; i < l->n_slots; i++)
                        if (l->slots[i].lease)
                                next = MIN(next, l->slots[i].end_usec);
        if (next == UINT64_MAX) {
                (void) sd_event_source_set_enabled(l->expiry_timer, SD_EVENT_OFF);
                return;
        }
        r = sd_event_source_set_time(l->expiry_timer, next);
        if (r >= 0)
                r = sd_event_source_set_enabled(l->expiry_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the lease expiry timer: %m");
}

static int link_on_expiry(sd_event_source *s, uint64_t usec, void *userdata) {
        ExporterLink *l = userdata;
        uint64_t now = now_usec(CLOCK_REALTIME);

        for (size_t i = 0; i < l->n_slots; i++)
                if (l->slots[i].lease && l->slots[i].end_usec <= now)
                        link_set_lease(l, l->slots[i].dut, NULL, 0,
                                       "at its end time while the link to the controller is down");
        link_update_expiry(l);
        return 0;
}

static void link_schedule_retry(ExporterLink *l, bool at_max, const char *problem) {
        uint64_t delay;
        char buf[32];
        int r;

        link_stop_transfers(l);
        if (l->connected)
                log_warning("Link to controller %s lost: %s", l->config->endpoint, problem);
        else
                log_warning("Cannot link up with controller %s: %s", l->config->endpoint, problem);
        l->connected = false;
        link_update_expiry(l);

        if (at_max)
                l->attempt = LINK_BACKOFF_ATTEMPT_MAX;
        delay = link_backoff_usec(l->attempt, arc4random());
        if (l->attempt < LINK_BACKOFF_ATTEMPT_MAX)
                l->attempt++;

        l->phase = LINK_WAITING;
        r = sd_event_source_set_time_relative(l->retry_timer, delay);
        if (r >= 0)
                r = sd_event_source_set_enabled(l->retry_timer, SD_EVENT_ONESHOT);
        if (r < 0) {
                log_error_errno(r, "Failed to arm the reconnect timer, the link stays down: %m");
                return;
        }
        log_info("Reconnecting to controller %s in %s", l->config->endpoint, format_duration(buf, sizeof buf, delay));
}

/* An error answer. A refused token or another answer that waiting will not change backs off to the maximum at
 * once: an exporter with a bad token must not hammer its controller. */
static void link_http_failed(ExporterLink *l, const char *what, long status, const LinkBuffer *body) {
        _cleanup_free_ char *p = http_problem(status, body), *msg = NULL;
        bool at_max = status >= 400 && status < 500 && status != 408 && status != 429;

        if (status == 401)
                log_error("The controller %s refused the exporter's token (%s): check \"token\" in %s, or make a new "
                          "one with jmp admin create exporter %s",
                          l->config->endpoint, strna(p), l->config->path, l->config->name);
        if (asprintf(&msg, "%s: %s", what, strna(p)) < 0)
                msg = NULL;
        link_schedule_retry(l, at_max, msg ?: what);
}

static void link_transfer_failed(ExporterLink *l, const char *what, CURLcode result) {
        _cleanup_free_ char *msg = NULL;

        if (asprintf(&msg, "%s: %s", what, curl_easy_strerror(result)) < 0)
                msg = NULL;
        link_schedule_retry(l, false, msg ?: what);
}

static int link_easy_new(ExporterLink *l, const char *path, LinkBuffer *sink, bool long_lived, CURL **ret) {
        _cleanup_free_ char *url = NULL;
        CURL *easy;
        bool ok;

        if (asprintf(&url, "%s%s", l->url_base, path) < 0)
                return -ENOMEM;
        easy = curl_easy_init();
        if (!easy)
                return -ENOMEM;
        ok = curl_easy_setopt(easy, CURLOPT_URL, url) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_USERAGENT, "jumpstarterd/" PACKAGE_VERSION) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_HTTPHEADER, l->headers) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) (LINK_REQUEST_TIMEOUT_USEC / USEC_PER_MSEC)) ==
                     CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, link_on_body) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_WRITEDATA, sink) == CURLE_OK;
        /* The watch lasts as long as the link; its silence timer stands in for a timeout. */
        if (ok && !long_lived)
                ok = curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) (LINK_REQUEST_TIMEOUT_USEC / USEC_PER_MSEC)) ==
                     CURLE_OK;
        if (ok && l->ca_pem) {
                struct curl_blob blob = { .data = l->ca_pem, .len = l->ca_size, .flags = CURL_BLOB_COPY };

                ok = curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &blob) == CURLE_OK;
        }
        if (ok && l->config->tls_insecure)
                ok = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK &&
                     curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
        if (!ok) {
                curl_easy_cleanup(easy);
                return -EIO;
        }
        *ret = easy;
        return 0;
}

static int link_start_transfer(ExporterLink *l, CURL *easy, CurlGlueDoneFunc done) {
        int r = curl_glue_add(l->glue, easy, done, l);

        if (r < 0)
                curl_easy_cleanup(easy);
        return r;
}

static void link_connect(ExporterLink *l);
static void link_register_full(ExporterLink *l, bool update, char *body);

static int link_on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        link_connect(userdata);
        return 0;
}

static int link_on_silence(sd_event_source *s, uint64_t usec, void *userdata) {
        ExporterLink *l = userdata;

        link_schedule_retry(l, false, l->connected ? "no line from the controller for 10s"
                                                   : "the controller did not answer the watch within 10s");
        return 0;
}

static bool link_listen_is_wildcard(const char *address, const char **ret_port) {
        const char *colon = strrchr(address, ':');
        size_t len;

        if (!colon)
                return false;
        *ret_port = colon + 1;
        len = (size_t) (colon - address);
        return len == 0 || (len == 7 && strncmp(address, "0.0.0.0", 7) == 0) ||
               (len == 4 && strncmp(address, "[::]", 4) == 0) || (len == 2 && strncmp(address, "::", 2) == 0);
}

/* The address clients dial: see exporter_link_set_streams(). */
static int link_advertised_address(ExporterLink *l, char **ret) {
        const char *adv = l->config->streams_advertise, *port = NULL;
        bool wildcard = link_listen_is_wildcard(l->streams_address, &port);
        char *s = NULL;
        int r;

        if (adv) {
                /* With a port of its own ("IP:PORT", "[V6]:PORT") it is used as it is. */
                const char *close = strchr(adv, ']');
                size_t colons = 0;

                for (const char *c = adv; *c; c++)
                        colons += *c == ':';
                if ((adv[0] == '[' && close && close[1] == ':') || (adv[0] != '[' && colons == 1))
                        r = asprintf(&s, "%s", adv);
                else if (adv[0] == '[' || colons == 0)
                        r = asprintf(&s, "%s:%s", adv, strempty(port));
                else
                        r = asprintf(&s, "[%s]:%s", adv, strempty(port));
        } else if (wildcard && l->local_ip)
                r = asprintf(&s, strchr(l->local_ip, ':') ? "[%s]:%s" : "%s:%s", l->local_ip, port);
        else
                r = asprintf(&s, "%s", l->streams_address);
        if (r < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int link_status_body(ExporterLink *l, char **ret) {
        json_t *duts = json_array(), *body = json_object();
        int r = -ENOMEM;

        if (!duts || !body)
                goto finish;
        for (size_t i = 0; i < exporter_n_duts(l->exporter); i++) {
                Dut *d = exporter_get_dut(l->exporter, i);
                const DutConfig *dc = dut_get_config(d);
                json_t *labels = json_object(), *classes = json_array(), *o;

                for (size_t k = 0; labels && k < dc->n_labels; k++)
                        if (json_object_set_new(labels, dc->labels[k].key, json_string(dc->labels[k].value)) < 0) {
                                json_decref(labels);
                                labels = NULL;
                        }
                for (DriverClass c = 0; classes && c < _DRIVER_CLASS_MAX; c++)
                        if ((dut_get_classes(d) & (1U << c)) &&
                            json_array_append_new(classes, json_string(driver_class_to_string(c))) < 0) {
                                json_decref(classes);
                                classes = NULL;
                        }
                o = labels && classes ? json_pack("{s:s, s:o, s:o}", "name", dut_get_name(d), "labels", labels,
                                                  "classes", classes)
                                      : NULL;
                if (!o) {
                        if (labels)
                                json_decref(labels);
                        if (classes)
                                json_decref(classes);
                        goto finish;
                }
                if (json_array_append_new(duts, o) < 0)
                        goto finish;
        }
        if (json_object_set(body, "duts", duts) < 0)
                goto finish;
        if (l->streams_address) {
                _cleanup_free_ char *address = NULL;
                json_t *streams;

                r = link_advertised_address(l, &address);
                if (r < 0)
                        goto finish;
                r = -ENOMEM;
                streams = json_pack("{s:s, s:s?}", "address", address, "fingerprint", l->streams_fingerprint);
                if (!streams || json_object_set_new(body, "streams", streams) < 0)
                        goto finish;
        }
        *ret = json_dumps(body, JSON_COMPACT);
        r = *ret ? 0 : -ENOMEM;
finish:
        json_decref(duts);
        json_decref(body);
        return r;
}

static void link_on_heartbeat_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        ExporterLink *l = userdata;
        long status = 0;

        assert(easy == l->heartbeat);
        l->heartbeat = NULL;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(easy);

        if (result != CURLE_OK)
                link_transfer_failed(l, "heartbeat failed", result);
        else if (status != 204 && status != 200)
                link_http_failed(l, "heartbeat refused", status, &l->heartbeat_body);
        else
                link_buffer_done(&l->heartbeat_body);
}

static int link_on_heartbeat_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ExporterLink *l = userdata;
        _cleanup_free_ char *path = NULL;
        CURL *easy = NULL;
        int r;

        (void) sd_event_source_set_time_relative(s, l->heartbeat_usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);

        /* DUTs that came or went since (a reload) are registered anew; the watch stands. */
        if (!l->request) {
                _cleanup_free_ char *body = NULL;

                if (link_status_body(l, &body) >= 0 && !streq_ptr(body, l->registered_status)) {
                        log_info("The exporter's DUTs changed, registering them with controller %s again",
                                 l->config->endpoint);
                        link_register_full(l, true, TAKE_PTR(body));
                        if (!l->watch)
                                return 0; /* that failed, and the link is down now */
                }
        }

        /* One at a time; a heartbeat that hangs fails by its own timeout. */
        if (l->heartbeat)
                return 0;

        link_buffer_done(&l->heartbeat_body);
        if (asprintf(&path, "/exporters/%s/heartbeat", l->name) < 0)
                return log_oom(), 0;
        r = link_easy_new(l, path, &l->heartbeat_body, false, &easy);
        if (r >= 0 && (curl_easy_setopt(easy, CURLOPT_POST, 1L) != CURLE_OK ||
                       curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, 0L) != CURLE_OK ||
                       curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "") != CURLE_OK)) {
                curl_easy_cleanup(easy);
                r = -EIO;
        }
        if (r >= 0)
                r = link_start_transfer(l, easy, link_on_heartbeat_done);
        if (r < 0) {
                log_warning_errno(r, "Failed to send a heartbeat: %m");
                return 0;
        }
        l->heartbeat = easy;
        return 0;
}

static void link_apply_keys(ExporterLink *l, const LinkLine *line) {
        _cleanup_(keyring_freep) Keyring *k = NULL;
        size_t i;
        json_t *key;
        int r;

        r = keyring_new(&k);
        if (r < 0) {
                log_warning_errno(r, "Failed to take the controller's keys, keeping the old ones: %m");
                return;
        }
        json_array_foreach(line->keys, i, key) {
                const char *kid = json_string_value(json_object_get(key, "kid"));
                const char *pem = json_string_value(json_object_get(key, "publicKey"));
                KeyState state = key_state_from_string(json_string_value(json_object_get(key, "state")));
                const char *got = NULL;

                if (!kid || !pem || state < 0) {
                        log_warning("The controller sent a key without kid, publicKey or a known state, ignoring it");
                        continue;
                }
                /* We hold public halves only: the active key verifies here like any other. */
                if (state == KEY_ACTIVE)
                        state = KEY_VERIFY_ONLY;
                r = keyring_add_pem(k, pem, strlen(pem), state, &got);
                if (r < 0) {
                        log_warning_errno(r, "The controller's key %s does not load, ignoring it: %m", kid);
                        continue;
                }
                if (!streq(got, kid))
                        log_warning("The controller's key %s is key %s by its contents: tokens name it so", kid, got);
        }
        keyring_free(l->keyring);
        l->keyring = TAKE_PTR(k);
        log_info("Got %zu key%s from the controller", l->keyring->n_keys, l->keyring->n_keys == 1 ? "" : "s");

        if (line->issuer && !streq_ptr(line->issuer, l->issuer)) {
                char *s = strdup(line->issuer);

                if (s) {
                        free(l->issuer);
                        l->issuer = s;
                }
        }
}

/* A lease for one of our DUTs, as we have them now. */
static bool link_lease_is_ours(ExporterLink *l, const LinkLease *lease) {
        if (lease->exporter && !streq(lease->exporter, l->config->name))
                return false;
        return exporter_find_dut(l->exporter, lease->dut) != NULL;
}

static int link_on_line(const char *text, size_t len, void *userdata) {
        ExporterLink *l = userdata;
        _cleanup_(link_line_done) LinkLine line = {};
        _cleanup_free_ char *error = NULL;
        int r;

        r = link_line_parse(text, len, &line, &error);
        if (r < 0) {
                if (asprintf(&l->watch_problem, "the controller sent a line that does not parse (%s): %.200s",
                             strna(error), text) < 0)
                        l->watch_problem = NULL;
                return r;
        }

        (void) sd_event_source_set_time_relative(l->silence_timer, LINK_SILENCE_USEC);
        (void) sd_event_source_set_enabled(l->silence_timer, SD_EVENT_ONESHOT);

        if (!l->connected) {
                l->connected = true;
                l->attempt = 0;
                log_info("Linked up with controller %s as exporter %s", l->config->endpoint, l->config->name);
        }

        switch (line.type) {
        case LINK_LINE_LEASES:
                /* The controller's list replaces ours: first what is gone, then what is there. */
                for (size_t i = 0; i < l->n_slots; i++) {
                        bool listed = false;

                        if (!l->slots[i].lease)
                                continue;
                        for (size_t k = 0; k < line.n_leases && !listed; k++)
                                listed = link_lease_is_ours(l, &line.leases[k]) &&
                                         streq(line.leases[k].dut, l->slots[i].dut) &&
                                         streq(line.leases[k].name, l->slots[i].lease);
                        if (!listed)
                                link_set_lease(l, l->slots[i].dut, NULL, 0, "(the controller no longer lists it)");
                }
                for (size_t k = 0; k < line.n_leases; k++)
                        if (link_lease_is_ours(l, &line.leases[k]))
                                link_set_lease(l, line.leases[k].dut, line.leases[k].name, line.leases[k].end_usec,
                                               NULL);
                break;

        case LINK_LINE_LEASE: {
                const LinkLease *lease = &line.leases[0];
                LeaseSlot *slot;

                if (!link_lease_is_ours(l, lease)) {
                        log_debug("Lease %s is for DUT %s, which is not ours, ignoring it", lease->name, lease->dut);
                        break;
                }
                slot = link_find_slot(l, lease->dut);
                if (line.event == LINK_LEASE_ENDED) {
                        if (slot && streq_ptr(slot->lease, lease->name))
                                link_set_lease(l, lease->dut, NULL, 0, NULL);
                } else
                        link_set_lease(l, lease->dut, lease->name, lease->end_usec, NULL);
                break;
        }

        case LINK_LINE_KEYS:
                link_apply_keys(l, &line);
                break;

        case LINK_LINE_DIAL:
                if (l->dial)
                        l->dial(line.dial_id, line.dial_router, line.dial_token, l->dial_userdata);
                else
                        log_warning("The controller asked for a routed stream (%s), which this exporter does not serve",
                                    line.dial_id);
                break;

        case LINK_LINE_PING:
        case LINK_LINE_OTHER:
        default:
                break;
        }
        link_update_expiry(l);
        return 0;
}

static size_t link_on_watch_data(char *p, size_t size, size_t n, void *userdata) {
        ExporterLink *l = userdata;
        size_t total = size * n;

        if (l->watch_status == 0)
                (void) curl_easy_getinfo(l->watch, CURLINFO_RESPONSE_CODE, &l->watch_status);
        if (l->watch_status != 200)
                return link_buffer_append(&l->watch_body, p, total);

        /* Returning short makes curl end the transfer; the done callback then says why. */
        if (ndjson_splitter_feed(&l->splitter, p, total, link_on_line, l) < 0) {
                if (!l->watch_problem && asprintf(&l->watch_problem, "a line longer than %u bytes",
                                                  (unsigned) LINK_LINE_MAX) < 0)
                        l->watch_problem = NULL;
                return 0;
        }
        return total;
}

static void link_on_watch_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        ExporterLink *l = userdata;
        _cleanup_free_ char *problem = TAKE_PTR(l->watch_problem);
        long status = l->watch_status;

        assert(easy == l->watch);
        l->watch = NULL;
        if (status == 0)
                (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(easy);

        if (problem)
                link_schedule_retry(l, false, problem);
        else if (status != 0 && status != 200)
                link_http_failed(l, "watch refused", status, &l->watch_body);
        else if (result != CURLE_OK)
                link_transfer_failed(l, "the watch broke off", result);
        else
                link_schedule_retry(l, false, "the controller ended the watch");
}

static void link_start_watch(ExporterLink *l) {
        _cleanup_free_ char *path = NULL;
        CURL *easy = NULL;
        int r;

        if (asprintf(&path, "/exporters/%s/watch", l->name) < 0) {
                link_schedule_retry(l, false, "out of memory");
                return;
        }
        r = link_easy_new(l, path, NULL, true, &easy);
        if (r >= 0 && (curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, link_on_watch_data) != CURLE_OK ||
                       curl_easy_setopt(easy, CURLOPT_WRITEDATA, l) != CURLE_OK)) {
                curl_easy_cleanup(easy);
                r = -EIO;
        }
        if (r >= 0)
                r = link_start_transfer(l, easy, link_on_watch_done);
        if (r < 0) {
                link_schedule_retry(l, false, "cannot start the watch");
                return;
        }
        l->watch = easy;
        l->watch_status = 0;
        l->phase = LINK_WATCHING;

        (void) sd_event_source_set_time_relative(l->silence_timer, LINK_SILENCE_USEC);
        (void) sd_event_source_set_enabled(l->silence_timer, SD_EVENT_ONESHOT);
        (void) sd_event_source_set_time_relative(l->heartbeat_timer, l->heartbeat_usec);
        (void) sd_event_source_set_enabled(l->heartbeat_timer, SD_EVENT_ONESHOT);
}

static void link_on_status_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        ExporterLink *l = userdata;
        long status = 0;
        json_t *j, *hb;

        assert(easy == l->request);
        l->request = NULL;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(easy);

        if (result != CURLE_OK) {
                link_transfer_failed(l, "registering failed", result);
                return;
        }
        if (status != 200) {
                link_http_failed(l, "registering refused", status, &l->request_body);
                return;
        }

        j = json_loadb(strempty(l->request_body.data), l->request_body.size, 0, NULL);
        hb = json_object_get(j, "heartbeatSeconds");
        l->heartbeat_usec = LINK_HEARTBEAT_DEFAULT_USEC;
        /* Within 1..timeout: a heartbeat at the controller's own timeout would come too late. */
        if (json_is_integer(hb) && json_integer_value(hb) >= 1 && json_integer_value(hb) < 10)
                l->heartbeat_usec = (uint64_t) json_integer_value(hb) * USEC_PER_SEC;
        json_decref(j);
        link_buffer_done(&l->request_body);
        free(l->registered_status);
        l->registered_status = TAKE_PTR(l->sending_status);

        log_debug("Registered %zu DUT%s with controller %s, heartbeat every %" PRIu64 "s",
                  exporter_n_duts(l->exporter), exporter_n_duts(l->exporter) == 1 ? "" : "s", l->config->endpoint,
                  l->heartbeat_usec / USEC_PER_SEC);
        /* An update of a standing link (its DUTs changed) keeps its watch. */
        if (l->phase == LINK_REGISTERING)
                link_start_watch(l);
}

/* PUT status: the first step of linking up, or (update) the DUTs changed while the link stands. */
static void link_register_full(ExporterLink *l, bool update, char *body) {
        _cleanup_free_ char *path = NULL;
        CURL *easy = NULL;
        int r = 0;

        if (!body)
                r = link_status_body(l, &body);
        if (r >= 0 && asprintf(&path, "/exporters/%s/status", l->name) < 0)
                r = -ENOMEM;
        if (r >= 0)
                r = link_easy_new(l, path, &l->request_body, false, &easy);
        if (r >= 0 && (curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PUT") != CURLE_OK ||
                       curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(body)) != CURLE_OK ||
                       curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK)) {
                curl_easy_cleanup(easy);
                r = -EIO;
        }
        if (r >= 0)
                r = link_start_transfer(l, easy, link_on_status_done);
        if (r < 0) {
                free(body);
                link_schedule_retry(l, false, "cannot send the status");
                return;
        }
        free(l->sending_status);
        l->sending_status = body;
        l->request = easy;
        if (!update)
                l->phase = LINK_REGISTERING;
}

static void link_register(ExporterLink *l) {
        link_register_full(l, false, NULL);
}

static void link_on_probe_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        ExporterLink *l = userdata;
        char *ip = NULL;

        assert(easy == l->request);
        l->request = NULL;
        if (result == CURLE_OK)
                (void) curl_easy_getinfo(easy, CURLINFO_LOCAL_IP, &ip);
        if (ip && *ip) {
                char *s = strdup(ip);

                if (s) {
                        free(l->local_ip);
                        l->local_ip = s;
                }
        }
        curl_easy_cleanup(easy);
        link_buffer_done(&l->request_body);

        if (result != CURLE_OK) {
                link_transfer_failed(l, "the controller is not reachable", result);
                return;
        }
        link_register(l);
}

static void link_connect(ExporterLink *l) {
        const char *port;
        CURL *easy = NULL;
        int r;

        /* Which local address reaches the controller is known once a connection stands; the status must carry
         * it, so a public request comes first (its connection is then reused). */
        if (!l->streams_address || l->config->streams_advertise ||
            !link_listen_is_wildcard(l->streams_address, &port)) {
                link_register(l);
                return;
        }

        r = link_easy_new(l, "/healthz", &l->request_body, false, &easy);
        if (r >= 0)
                r = link_start_transfer(l, easy, link_on_probe_done);
        if (r < 0) {
                link_schedule_retry(l, false, "cannot reach the controller");
                return;
        }
        l->request = easy;
        l->phase = LINK_PROBING;
}

static int link_read_ca(ExporterLink *l) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0;

        if (l->config->tls_ca) {
                l->ca_pem = strdup(l->config->tls_ca);
                if (!l->ca_pem)
                        return log_oom();
                l->ca_size = strlen(l->ca_pem);
                return 0;
        }
        if (!l->config->tls_ca_path)
                return 0; /* the system's CAs */

        /* At start, before the loop runs: a small local file. */
        fd = open(l->config->tls_ca_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(errno, "Cannot read tls.ca %s of %s: %m", l->config->tls_ca_path, l->config->path);
        buf = malloc(LINK_CA_FILE_MAX + 1);
        if (!buf)
                return log_oom();
        for (;;) {
                ssize_t k = read(fd, buf + n, LINK_CA_FILE_MAX + 1 - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return log_error_errno(errno, "Cannot read tls.ca %s of %s: %m", l->config->tls_ca_path,
                                               l->config->path);
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > LINK_CA_FILE_MAX)
                        return log_error_errno(EFBIG, "tls.ca %s of %s is larger than 1 MiB", l->config->tls_ca_path,
                                               l->config->path);
        }
        buf[n] = 0;
        if (!strstr(buf, "-----BEGIN CERTIFICATE-----"))
                return log_error_errno(EBADMSG, "tls.ca %s of %s holds no PEM certificate", l->config->tls_ca_path,
                                       l->config->path);
        l->ca_size = n;
        l->ca_pem = TAKE_PTR(buf);
        return 0;
}

int exporter_link_new(sd_event *e, const ExporterConfig *c, Exporter *exporter, ExporterLink **ret) {
        _cleanup_(exporter_link_freep) ExporterLink *l = NULL;
        _cleanup_free_ char *auth = NULL;
        char *escaped;
        int r;

        assert(e);
        assert(c);
        assert(c->endpoint);
        assert(c->token);
        assert(exporter);
        assert(ret);

        l = calloc(1, sizeof *l);
        if (!l)
                return log_oom();
        l->event = sd_event_ref(e);
        l->config = c;
        l->exporter = exporter;
        l->heartbeat_usec = LINK_HEARTBEAT_DEFAULT_USEC;
        ndjson_splitter_init(&l->splitter, LINK_LINE_MAX);

        r = link_read_ca(l);
        if (r < 0)
                return r;
        if (c->tls_insecure)
                log_warning("tls.insecure is set in %s: the controller's certificate is not verified, anyone on the "
                            "path can pose as the controller", c->path);

        r = curl_glue_new(e, &l->glue);
        if (r < 0)
                return log_error_errno(r, "Failed to set up libcurl: %m");

        escaped = curl_easy_escape(NULL, c->name, 0);
        if (!escaped)
                return log_oom();
        l->name = strdup(escaped);
        curl_free(escaped);
        if (!l->name || asprintf(&l->url_base, "https://%s/v1", c->endpoint) < 0 ||
            asprintf(&auth, "Authorization: Bearer %s", c->token) < 0)
                return log_oom();
        l->headers = curl_slist_append(NULL, auth);
        if (l->headers)
                l->headers = curl_slist_append(l->headers, "Content-Type: application/json");
        if (l->headers)
                /* No "Expect: 100-continue" round trip for a small body. */
                l->headers = curl_slist_append(l->headers, "Expect:");
        if (!l->headers)
                return log_oom();
        l->issuer = token_issuer(c->token);

        r = sd_event_add_time(e, &l->retry_timer, CLOCK_MONOTONIC, 0, 0, link_on_retry, l);
        if (r >= 0)
                r = sd_event_add_time(e, &l->silence_timer, CLOCK_MONOTONIC, 0, 0, link_on_silence, l);
        if (r >= 0)
                r = sd_event_add_time(e, &l->heartbeat_timer, CLOCK_MONOTONIC, 0, 0, link_on_heartbeat_timer, l);
        if (r >= 0)
                r = sd_event_add_time(e, &l->expiry_timer, CLOCK_REALTIME, 0, 0, link_on_expiry, l);
        if (r < 0)
                return log_error_errno(r, "Failed to add the link's timers: %m");
        (void) sd_event_source_set_enabled(l->retry_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(l->silence_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(l->heartbeat_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(l->expiry_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(l->retry_timer, "link-retry");
        (void) sd_event_source_set_description(l->silence_timer, "link-silence");
        (void) sd_event_source_set_description(l->heartbeat_timer, "link-heartbeat");
        (void) sd_event_source_set_description(l->expiry_timer, "link-lease-expiry");

        *ret = TAKE_PTR(l);
        return 0;
}

ExporterLink *exporter_link_free(ExporterLink *l) {
        if (!l)
                return NULL;
        if (l->report) {
                curl_glue_remove(l->glue, l->report);
                curl_easy_cleanup(l->report);
        }
        link_buffer_done(&l->report_body);
        sd_event_source_disable_unref(l->report_timer);
        for (size_t i = 0; i < l->n_reports; i++)
                free(l->reports[i]);
        free(l->reports);
        if (l->glue)
                link_stop_transfers(l);
        curl_glue_free(l->glue);
        sd_event_source_disable_unref(l->retry_timer);
        sd_event_source_disable_unref(l->silence_timer);
        sd_event_source_disable_unref(l->heartbeat_timer);
        sd_event_source_disable_unref(l->expiry_timer);
        for (size_t i = 0; i < l->n_slots; i++) {
                free(l->slots[i].dut);
                free(l->slots[i].lease);
        }
        free(l->slots);
        free(l->sending_status);
        free(l->registered_status);
        keyring_free(l->keyring);
        ndjson_splitter_done(&l->splitter);
        curl_slist_free_all(l->headers);
        free(l->url_base);
        free(l->name);
        free(l->ca_pem);
        free(l->streams_address);
        free(l->streams_fingerprint);
        free(l->local_ip);
        free(l->issuer);
        sd_event_unref(l->event);
        free(l);
        return NULL;
}

void exporter_link_set_streams(ExporterLink *l, const char *address, const char *fingerprint) {
        char *a = NULL, *f = NULL;

        assert(l);
        if ((address && !(a = strdup(address))) || (fingerprint && !(f = strdup(fingerprint)))) {
                free(a);
                log_oom();
                return;
        }
        free(l->streams_address);
        free(l->streams_fingerprint);
        l->streams_address = a;
        l->streams_fingerprint = f;
}

int exporter_link_start(ExporterLink *l) {
        assert(l);

        if (l->phase != LINK_IDLE)
                return -EALREADY;
        log_info("Linking up with controller %s as exporter %s", l->config->endpoint, l->config->name);
        link_connect(l);
        return 0;
}

const char *exporter_link_get_lease(ExporterLink *l, const char *dut, uint64_t *ret_end_usec) {
        assert(l);

        if (dut) {
                LeaseSlot *s = link_find_slot(l, dut);

                if (s && s->lease) {
                        if (ret_end_usec)
                                *ret_end_usec = s->end_usec;
                        return s->lease;
                }
        }
        if (ret_end_usec)
                *ret_end_usec = 0;
        return NULL;
}

Keyring *exporter_link_get_keyring(ExporterLink *l) {
        assert(l);
        return l->keyring;
}

const char *exporter_link_get_issuer(ExporterLink *l) {
        assert(l);
        return l->issuer;
}

void exporter_link_set_lease_changed(ExporterLink *l, void (*cb)(const char *dut, const char *lease, void *u),
                                     void *u) {
        assert(l);
        l->lease_changed = cb;
        l->lease_changed_userdata = u;
}

void exporter_link_set_dial(ExporterLink *l, void (*cb)(const char *id, const char *router, const char *token, void *u),
                            void *u) {
        assert(l);
        l->dial = cb;
        l->dial_userdata = u;
}

const char *exporter_link_get_ca(ExporterLink *l, bool *ret_insecure) {
        assert(l);
        if (ret_insecure)
                *ret_insecure = l->config->tls_insecure;
        return l->ca_pem;
}

bool exporter_link_is_connected(ExporterLink *l) {
        assert(l);
        return l->connected;
}

/* Reports (exporter-hooks.c) */

static void link_send_report(ExporterLink *l);

static int link_on_report_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        link_send_report(userdata);
        return 0;
}

static void link_on_report_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        ExporterLink *l = userdata;
        long status = 0;

        assert(easy == l->report);
        l->report = NULL;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(easy);
        if (result != CURLE_OK || (status != 204 && status != 200)) {
                _cleanup_free_ char *problem = result != CURLE_OK ? strdup(curl_easy_strerror(result))
                                                                  : http_problem(status, &l->report_body);

                /* Kept for the next try: the controller must hear of a failed hook or check. */
                log_warning("Failed to report to controller %s, trying again: %s", l->config->endpoint, strna(problem));
                link_buffer_done(&l->report_body);
                if (l->report_timer)
                        (void) (sd_event_source_set_time_relative(l->report_timer, LINK_REPORT_RETRY_USEC) >= 0 &&
                                sd_event_source_set_enabled(l->report_timer, SD_EVENT_ONESHOT) >= 0);
                else
                        (void) sd_event_add_time_relative(l->event, &l->report_timer, CLOCK_MONOTONIC,
                                                          LINK_REPORT_RETRY_USEC, 0, link_on_report_retry, l);
                return;
        }
        link_buffer_done(&l->report_body);
        free(l->reports[0]);
        memmove(l->reports, l->reports + 1, (l->n_reports - 1) * sizeof(char *));
        l->n_reports--;
        link_send_report(l);
}

static void link_send_report(ExporterLink *l) {
        _cleanup_free_ char *path = NULL;
        const char *nl;
        CURL *easy = NULL;
        int r;

        if (l->report || l->n_reports == 0)
                return;
        nl = strchr(l->reports[0], '\n');
        path = strndup(l->reports[0], (size_t) (nl - l->reports[0]));
        if (!path)
                return (void) log_oom();
        r = link_easy_new(l, path, &l->report_body, false, &easy);
        if (r >= 0 && (curl_easy_setopt(easy, CURLOPT_POST, 1L) != CURLE_OK ||
                       curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, nl + 1) != CURLE_OK)) {
                curl_easy_cleanup(easy);
                r = -EIO;
        }
        if (r >= 0)
                r = link_start_transfer(l, easy, link_on_report_done);
        if (r < 0) {
                log_warning_errno(r, "Failed to send a report to the controller: %m");
                return;
        }
        l->report = easy;
}

int exporter_link_report(ExporterLink *l, const char *what, json_t *body) {
        _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT), *entry = NULL;
        char **a;

        if (!text || asprintf(&entry, "/exporters/%s/%s\n%s", l->name, what, text) < 0)
                return -ENOMEM;
        if (l->n_reports >= LINK_REPORTS_MAX)
                return -ENOBUFS;
        a = realloc(l->reports, (l->n_reports + 1) * sizeof(char *));
        if (!a)
                return -ENOMEM;
        l->reports = a;
        l->reports[l->n_reports++] = TAKE_PTR(entry);
        link_send_report(l);
        return 0;
}

void exporter_link_set_lease_edge(ExporterLink *l, void (*cb)(const char *dut, const char *lease, bool begins, void *u),
                                  void *u) {
        l->lease_edge = cb;
        l->lease_edge_userdata = u;
}
