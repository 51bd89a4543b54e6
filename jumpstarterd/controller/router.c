/* Routed streams: the controller's router joins a client's data stream to the exporter that dials in */
#include <assert.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "controller-internal.h"
#include "log.h"
#include "router.h"
#include "stream-request.h"
#include "tls-conn.h"
#include "tls.h"
#include "token.h"

/* The handshake and the first line (a stream request, or an exporter's dial) must come within this. */
#define ROUTER_FIRST_LINE_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* What a client sends after its request line while its exporter dials in is kept up to this; then
 * reading stops until the two are joined. */
#define ROUTER_EARLY_MAX (64U * 1024U)
/* Back-pressure: while more than this waits for one side, the other side is not read. */
#define ROUTER_QUEUE_HIGH (256U * 1024U)
/* Connections that have not been joined yet, at most: beyond that new ones are turned away. */
#define ROUTER_UNJOINED_MAX 1024

typedef enum RouterConnState {
        ROUTER_CONN_FIRST_LINE, /* handshake, then the first line */
        ROUTER_CONN_WAITING,    /* a client whose exporter was asked to dial in */
        ROUTER_CONN_JOINED,     /* bytes go to the other side and back */
        ROUTER_CONN_CLOSING,    /* refused, or its other side ended: flushing, then closed */
} RouterConnState;

typedef struct RouterConn RouterConn;
struct RouterConn {
        Router *router;
        RouterConn *prev, *next;
        TlsConn *conn;
        char peer[SOCKET_ADDRESS_MAX];
        RouterConnState state;
        bool is_client;
        bool paused; /* reading is off for back-pressure */
        bool unjoined; /* counted in n_unjoined */

        char *buf; /* the first line, then what a waiting client sent after it */
        size_t buf_len;

        /* A client: */
        char *forward;        /* its request line without "route", with the newline */
        char *dial_id, *dial_secret;
        char *exporter, *dut, *lease;
        sd_event_source *dial_timer;

        RouterConn *other;    /* once joined */
};

struct Router {
        Controller *controller;
        sd_event *event;
        SSL_CTX *ctx;
        int fd;
        sd_event_source *listen_source;
        char address[SOCKET_ADDRESS_MAX];
        struct sockaddr_storage bound;
        bool wildcard;
        uint16_t port;
        uint64_t n_dials;

        RouterConn *conns;
        size_t n_unjoined;
};

static void router_conn_free(RouterConn *rc) {
        Router *r;

        if (!rc)
                return;
        r = rc->router;
        if (rc->prev)
                rc->prev->next = rc->next;
        else if (r->conns == rc)
                r->conns = rc->next;
        if (rc->next)
                rc->next->prev = rc->prev;
        if (rc->unjoined)
                r->n_unjoined--;
        if (rc->other)
                rc->other->other = NULL;
        tls_conn_free(rc->conn);
        sd_event_source_disable_unref(rc->dial_timer);
        free(rc->buf);
        free(rc->forward);
        free(rc->dial_id);
        if (rc->dial_secret)
                explicit_bzero(rc->dial_secret, strlen(rc->dial_secret));
        free(rc->dial_secret);
        free(rc->exporter);
        free(rc->dut);
        free(rc->lease);
        free(rc);
}

static int send_line(RouterConn *rc, json_t *v) {
        _cleanup_free_ char *s = NULL, *line = NULL;
        int n;

        if (!v)
                return -ENOMEM;
        s = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        if (!s)
                return -ENOMEM;
        n = asprintf(&line, "%s\n", s);
        if (n < 0)
                return -ENOMEM;
        return tls_conn_write(rc->conn, line, (size_t) n);
}

/* Ends the connection after what is queued: an answer, or what the other side said last. */
static void router_conn_close(RouterConn *rc) {
        if (!rc->conn || rc->state == ROUTER_CONN_CLOSING)
                return;
        rc->state = ROUTER_CONN_CLOSING;
        rc->dial_timer = sd_event_source_disable_unref(rc->dial_timer);
        (void) tls_conn_set_reading(rc->conn, false);
        (void) tls_conn_shutdown(rc->conn);
}

/* The usual one-line error object of a refused stream, then the close. */
static void router_refuse(RouterConn *rc, ApiError e, const char *message, const char *detail) {
        log_info("Routed stream from %s refused: %s: %s", rc->peer, api_error_to_string(e), message);
        (void) send_line(rc, api_error_to_json(e, message, detail));
        router_conn_close(rc);
}

static void router_refusef(RouterConn *rc, ApiError e, const char *format, ...) _printf_(3, 4);
static void router_refusef(RouterConn *rc, ApiError e, const char *format, ...) {
        _cleanup_free_ char *message = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&message, format, ap) < 0)
                message = NULL;
        va_end(ap);
        router_refuse(rc, message ? e : API_ERROR_INTERNAL, message ?: "Out of memory", NULL);
}

static int random_hex(size_t n_bytes, char **ret) {
        uint8_t b[32];
        char *s;

        assert(n_bytes <= sizeof b);
        if (RAND_bytes(b, (int) n_bytes) != 1)
                return -EIO;
        s = malloc(n_bytes * 2 + 1);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < n_bytes; i++)
                sprintf(s + 2 * i, "%02x", b[i]);
        explicit_bzero(b, sizeof b);
        *ret = s;
        return 0;
}

/* ---- Joined: bytes both ways ---- */

static void router_on_data(TlsConn *c, const void *data, size_t n, void *userdata);

static void joined_forward(RouterConn *from, const void *data, size_t n) {
        RouterConn *to = from->other;

        if (!to || !to->conn || to->state != ROUTER_CONN_JOINED)
                return; /* the other side is going: what comes now has nowhere to go */
        if (tls_conn_write(to->conn, data, n) < 0)
                return router_conn_close(from);
        if (tls_conn_get_queued(to->conn) > ROUTER_QUEUE_HIGH && !from->paused) {
                from->paused = true;
                (void) tls_conn_set_reading(from->conn, false);
        }
}

static void router_on_drained(TlsConn *c, void *userdata) {
        RouterConn *rc = userdata;
        RouterConn *from = rc->other;

        if (from && from->paused && from->conn && from->state == ROUTER_CONN_JOINED) {
                from->paused = false;
                (void) tls_conn_set_reading(from->conn, true);
        }
}

/* The exporter dialed in with the right secret: the client's request goes to it, and from then on
 * the two are one stream. */
static void router_join(RouterConn *client, RouterConn *exporter) {
        Router *r = client->router;
        _cleanup_free_ char *early = NULL, *late = NULL;
        size_t n_early = client->buf_len, n_late = exporter->buf_len;

        client->dial_timer = sd_event_source_disable_unref(client->dial_timer);
        client->state = exporter->state = ROUTER_CONN_JOINED;
        client->other = exporter;
        exporter->other = client;
        client->unjoined = exporter->unjoined = false;
        r->n_unjoined -= 2;
        exporter->is_client = false;
        /* For messages only: the exporter's side is found through its client. */
        exporter->dial_id = strdup(client->dial_id);

        early = TAKE_PTR(client->buf);
        client->buf_len = 0;
        late = TAKE_PTR(exporter->buf);
        exporter->buf_len = 0;

        (void) tls_conn_set_timeout(client->conn, 0);
        (void) tls_conn_set_timeout(exporter->conn, 0);
        log_info("Routed stream %s: %s joined to exporter %s (%s), DUT %s, lease %s", client->dial_id, client->peer,
                 client->exporter, exporter->peer, client->dut, client->lease);

        if (tls_conn_write(exporter->conn, client->forward, strlen(client->forward)) < 0)
                return router_conn_close(client);
        client->paused = false;
        (void) tls_conn_set_reading(client->conn, true);
        if (n_early > 0)
                joined_forward(client, early, n_early);
        if (n_late > 0)
                joined_forward(exporter, late, n_late);
}

/* ---- A client's stream request ---- */

static Watch *exporter_watch(Controller *c, const char *exporter) {
        for (Watch *w = c->watches; w; w = w->next)
                if (w->type == WATCH_EXPORTER && streq_ptr(w->name, exporter) && !http_request_is_cancelled(w->req))
                        return w;
        return NULL;
}

static int on_dial_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        RouterConn *rc = userdata;

        rc->dial_timer = sd_event_source_disable_unref(rc->dial_timer);
        router_refusef(rc, API_ERROR_UNAVAILABLE, "Exporter %s did not connect to the router within %llus",
                       rc->exporter, (unsigned long long) (ROUTER_DIAL_TIMEOUT_USEC / USEC_PER_SEC));
        return 0;
}

/* Which exporter the token is for: each exporter that has a DUT of that name is tried with the
 * exporter's own rules (stream_request_check()); a token for another audience is not an answer. */
static int router_judge(Router *r, const StreamRequest *req, char **ret_exporter, char **ret_lease, ApiError *ret_error,
                        char **ret_message, char **ret_detail) {
        Controller *c = r->controller;
        StreamRequest plain = *req;
        StreamCheck check;
        int k;

        plain.route = false; /* the exporter's rules refuse "route" */
        for (size_t i = 0; i < c->n_exporters; i++) {
                CtlExporter *e = c->exporters[i];

                for (size_t j = 0; j < e->n_devices; j++) {
                        const char *slash = strchr(e->devices[j], '/');
                        const Exporter *x;
                        const char *lease = NULL;

                        if (!slash || !streq(slash + 1, req->dut))
                                continue;
                        if (lease_scheduler_get_exporter(c->scheduler, e->devices[j], &x) >= 0 && x->lease &&
                            x->lease->state == LEASE_ACTIVE)
                                lease = x->lease->name;
                        check = (StreamCheck) {
                                .keyring = c->keyring,
                                .issuer = c->config->name,
                                .exporter_name = e->name,
                                .dut_exists = true,
                                .lease = lease,
                                .now_usec = now_realtime_usec(),
                        };
                        k = stream_request_check(&plain, &check, NULL, ret_error, ret_message, ret_detail);
                        if (k == 0) {
                                *ret_exporter = strdup(e->name);
                                *ret_lease = strdup(lease);
                                return *ret_exporter && *ret_lease ? 0 : -ENOMEM;
                        }
                        if (k != -EACCES || !*ret_detail ||
                            !streq(*ret_detail, token_error_to_string(TOKEN_WRONG_AUDIENCE)))
                                return k;
                        free(*ret_message);
                        *ret_message = NULL;
                        free(*ret_detail);
                        *ret_detail = NULL;
                }
        }

        /* No exporter of ours has that DUT for this token: say why the token fails, if it does. */
        check = (StreamCheck) {
                .keyring = c->keyring,
                .issuer = c->config->name,
                .exporter_name = "",
                .dut_exists = false,
                .now_usec = now_realtime_usec(),
        };
        k = stream_request_check(&plain, &check, NULL, ret_error, ret_message, ret_detail);
        if (k == -EACCES && *ret_detail && streq(*ret_detail, token_error_to_string(TOKEN_WRONG_AUDIENCE))) {
                free(*ret_message);
                *ret_message = NULL;
                free(*ret_detail);
                *ret_detail = NULL;
                if (asprintf(ret_message, "No exporter of the token's has a DUT named '%s'", req->dut) < 0) {
                        *ret_message = NULL;
                        return -ENOMEM;
                }
                *ret_error = API_ERROR_NOT_FOUND;
                return -EACCES;
        }
        if (k == 0) { /* cannot be: no audience is "exporter/" */
                *ret_error = API_ERROR_FORBIDDEN;
                *ret_message = strdup("The stream token names no exporter");
                return *ret_message ? -EACCES : -ENOMEM;
        }
        return k;
}

/* The line without "route", as the exporter expects it. */
static char *forward_line(const char *line, size_t n) {
        _cleanup_free_ char *s = NULL;
        json_t *v;
        char *out;

        v = json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL);
        if (!v)
                return NULL;
        (void) json_object_del(v, "route");
        s = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        if (!s || asprintf(&out, "%s\n", s) < 0)
                return NULL;
        return out;
}

static void router_on_request(RouterConn *rc, const char *line, size_t n) {
        Router *r = rc->router;
        Controller *c = r->controller;
        _cleanup_(stream_request_done) StreamRequest req = { .kind = _STREAM_KIND_INVALID };
        _cleanup_free_ char *message = NULL, *detail = NULL, *router = NULL;
        _cleanup_(json_decrefp) json_t *dial = NULL;
        ApiError e = API_ERROR_INTERNAL;
        Watch *w;
        int k;

        k = stream_request_parse(line, n, &req, &message);
        if (k < 0)
                return router_refuse(rc, k == -EBADMSG ? API_ERROR_MALFORMED_JSON :
                                     k == -ENOMEM ? API_ERROR_INTERNAL : API_ERROR_BAD_REQUEST,
                                     message ?: "Out of memory", NULL);
        if (!req.route)
                return router_refuse(rc, API_ERROR_BAD_REQUEST,
                                     "This is the controller's router: a stream request here needs \"route\": true",
                                     NULL);

        k = router_judge(r, &req, &rc->exporter, &rc->lease, &e, &message, &detail);
        if (k < 0)
                return router_refuse(rc, k == -EACCES ? e : API_ERROR_INTERNAL, message ?: "Out of memory", detail);

        rc->dut = strdup(req.dut);
        rc->forward = forward_line(line, n);
        if (!rc->dut || !rc->forward)
                return router_refuse(rc, API_ERROR_INTERNAL, "Out of memory", NULL);

        /* Only an exporter with its watch open can be asked to dial in. */
        w = exporter_watch(c, rc->exporter);
        if (!w)
                return router_refusef(rc, API_ERROR_UNAVAILABLE, "Exporter %s is offline", rc->exporter);
        k = router_advertise_for(r, w->req, &router);
        if (k < 0)
                return router_refusef(rc, API_ERROR_INTERNAL, "Cannot tell exporter %s where the router is: %s",
                                      rc->exporter, strerror(-k));

        if (asprintf(&rc->dial_id, "%" PRIu64, ++r->n_dials) < 0) {
                rc->dial_id = NULL;
                return router_refuse(rc, API_ERROR_INTERNAL, "Out of memory", NULL);
        }
        /* The secret proves the dial: only the exporter's watch ever carries it. */
        k = random_hex(32, &rc->dial_secret);
        if (k < 0)
                return router_refuse(rc, API_ERROR_INTERNAL, "Failed to make a dial token", NULL);

        k = sd_event_add_time_relative(r->event, &rc->dial_timer, CLOCK_MONOTONIC, ROUTER_DIAL_TIMEOUT_USEC, 0,
                                       on_dial_timeout, rc);
        if (k < 0)
                return router_refuse(rc, API_ERROR_INTERNAL, "Failed to arm the dial timeout", NULL);
        (void) tls_conn_set_timeout(rc->conn, 0);

        dial = json_pack("{s:s, s:s, s:s, s:s}", "type", "dial", "id", rc->dial_id, "router", router, "token",
                         rc->dial_secret);
        if (!dial)
                return router_refuse(rc, API_ERROR_INTERNAL, "Out of memory", NULL);
        k = controller_watch_send(w, dial);
        if (k < 0)
                return router_refusef(rc, API_ERROR_UNAVAILABLE, "Exporter %s is offline", rc->exporter);

        rc->state = ROUTER_CONN_WAITING;
        rc->is_client = true;
        log_debug("Routed stream %s: %s asks for %s/%s (lease %s); asked the exporter to dial %s", rc->dial_id, rc->peer,
                  rc->exporter, rc->dut, rc->lease, router);
}

/* ---- An exporter dialing in ---- */

static void router_on_dial(RouterConn *rc, json_t *v) {
        Router *r = rc->router;
        const char *id = json_string_value(json_object_get(v, "dial"));
        const char *token = json_string_value(json_object_get(v, "token"));
        RouterConn *client = NULL;

        if (!id || !token || json_object_size(v) != 2) {
                log_warning("Dial from %s is not {\"dial\": ID, \"token\": TOKEN}, closing it", rc->peer);
                return router_conn_close(rc);
        }
        for (RouterConn *x = r->conns; x; x = x->next)
                if (x->state == ROUTER_CONN_WAITING && streq(x->dial_id, id)) {
                        client = x;
                        break;
                }
        if (!client || strlen(token) != strlen(client->dial_secret) ||
            CRYPTO_memcmp(token, client->dial_secret, strlen(token)) != 0) {
                log_warning("Dial %s from %s does not match a routed stream waiting for it (%s), closing it", id,
                            rc->peer, client ? "wrong token" : "no such dial, or it timed out");
                return router_conn_close(rc);
        }
        router_join(client, rc);
}

/* ---- The first line ---- */

static void router_on_first_line(RouterConn *rc, const char *line, size_t n) {
        json_t *v;

        /* A dial line is an object with "dial"; anything else is judged as a stream request. */
        v = json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL);
        if (json_is_object(v) && json_object_get(v, "dial")) {
                router_on_dial(rc, v);
                json_decref(v);
                return;
        }
        json_decref(v);
        router_on_request(rc, line, n);
}

static void router_on_data(TlsConn *c, const void *data, size_t n, void *userdata) {
        RouterConn *rc = userdata;
        const char *nl;
        char *b;

        switch (rc->state) {
        case ROUTER_CONN_JOINED:
                return joined_forward(rc, data, n);
        case ROUTER_CONN_CLOSING:
                return; /* refused: the answer is on its way */
        case ROUTER_CONN_WAITING:
        case ROUTER_CONN_FIRST_LINE:
                break;
        }

        b = realloc(rc->buf, rc->buf_len + n + 1);
        if (!b)
                return router_refuse(rc, API_ERROR_INTERNAL, "Out of memory", NULL);
        rc->buf = b;
        memcpy(rc->buf + rc->buf_len, data, n);
        rc->buf_len += n;

        if (rc->state == ROUTER_CONN_WAITING) {
                /* Kept for the exporter; a client that sends more before it is joined waits. */
                if (rc->buf_len > ROUTER_EARLY_MAX) {
                        rc->paused = true;
                        (void) tls_conn_set_reading(rc->conn, false);
                }
                return;
        }

        nl = memchr(rc->buf, '\n', rc->buf_len);
        if (!nl) {
                if (rc->buf_len > STREAM_REQUEST_MAX)
                        router_refuse(rc, API_ERROR_PAYLOAD_TOO_LARGE, "The request line is too long", NULL);
                return;
        }
        {
                size_t len = (size_t) (nl - rc->buf);
                _cleanup_free_ char *line = strndup(rc->buf, len);

                if (!line)
                        return router_refuse(rc, API_ERROR_INTERNAL, "Out of memory", NULL);
                /* What follows the line stays in buf for the other side. */
                memmove(rc->buf, rc->buf + len + 1, rc->buf_len - len - 1);
                rc->buf_len -= len + 1;
                router_on_first_line(rc, line, len);
        }
}

static void router_on_closed(TlsConn *c, int error, void *userdata) {
        RouterConn *rc = userdata;
        RouterConn *other = rc->other;

        if (rc->state == ROUTER_CONN_JOINED)
                log_debug("Routed stream %s: the %s side (%s) ended%s%s", strna(rc->dial_id),
                          rc->is_client ? "client" : "exporter", rc->peer, error < 0 ? ": " : "",
                          error < 0 ? strerror(-error) : "");
        else if (rc->state == ROUTER_CONN_WAITING)
                log_debug("Routed stream %s: the client %s went away before its exporter dialed in", rc->dial_id,
                          rc->peer);
        rc->conn = tls_conn_free(rc->conn);
        /* The other side says what it has left to say, then ends too. */
        if (other && other->conn)
                router_conn_close(other);
        router_conn_free(rc);
}

static const TlsConnOps router_conn_ops = {
        .data = router_on_data,
        .drained = router_on_drained,
        .closed = router_on_closed,
};

static int router_on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Router *r = userdata;
        char peer[SOCKET_ADDRESS_MAX];
        RouterConn *rc;
        int cfd, k;

        cfd = socket_accept(fd, peer);
        if (cfd < 0) {
                if (cfd != -EAGAIN && cfd != -EINTR && cfd != -ECONNABORTED)
                        log_warning_errno(cfd, "Failed to accept a router connection: %m");
                return 0;
        }
        if (r->n_unjoined >= ROUTER_UNJOINED_MAX) {
                log_warning("Too many router connections waiting to be joined, turning one away");
                safe_close(cfd);
                return 0;
        }

        rc = calloc(1, sizeof *rc);
        if (!rc) {
                safe_close(cfd);
                return log_oom(), 0;
        }
        rc->router = r;
        memcpy(rc->peer, peer, sizeof peer);
        k = tls_conn_accept(r->event, r->ctx, cfd, ROUTER_FIRST_LINE_TIMEOUT_USEC, &router_conn_ops, rc, &rc->conn);
        if (k < 0) {
                log_warning_errno(k, "Failed to set up a router connection from %s: %m", rc->peer);
                free(rc);
                return 0;
        }
        rc->next = r->conns;
        if (r->conns)
                r->conns->prev = rc;
        r->conns = rc;
        rc->unjoined = true;
        r->n_unjoined++;
        log_debug("Router connection from %s", rc->peer);
        return 0;
}

int router_new(Controller *c, Router **ret) {
        _cleanup_(router_freep) Router *r = NULL;
        const char *listen_address = c->config->router_listen;
        struct sockaddr_storage ss;
        socklen_t len;
        int k;

        assert(c && listen_address && ret);

        r = calloc(1, sizeof *r);
        if (!r)
                return log_oom();
        r->controller = c;
        r->event = sd_event_ref(c->event);
        r->fd = -EBADF;

        k = socket_address_parse(listen_address, true, &ss, &len);
        if (k < 0)
                return log_error_errno(k, "Invalid router.listen address '%s'", listen_address);
        if (c->config->router_advertise) {
                struct sockaddr_storage a;
                socklen_t alen;

                if (socket_address_parse(c->config->router_advertise, false, &a, &alen) < 0)
                        return log_error_errno(EINVAL, "Invalid router.advertise address '%s': use IP:PORT",
                                               c->config->router_advertise);
        }
        k = tls_server_ctx_new_files(c->config->certificate, c->config->key, &r->ctx);
        if (k < 0)
                return log_error_errno(k, "Failed to set up TLS for the router with %s and %s: %m",
                                       c->config->certificate, c->config->key);

        r->fd = socket_listen(&ss, len, &r->bound);
        if (r->fd < 0)
                return log_error_errno(r->fd, "Failed to listen for routed streams on %s: %m", listen_address);
        socket_address_format((struct sockaddr *) &r->bound, r->address);
        if (r->bound.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &r->bound;

                r->wildcard = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
                r->port = ntohs(in6->sin6_port);
        } else {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &r->bound;

                r->wildcard = in->sin_addr.s_addr == htonl(INADDR_ANY);
                r->port = ntohs(in->sin_port);
        }

        k = sd_event_add_io(r->event, &r->listen_source, r->fd, EPOLLIN, router_on_accept, r);
        if (k < 0)
                return log_error_errno(k, "Failed to watch the router's listener: %m");
        (void) sd_event_source_set_description(r->listen_source, "router-listener");

        log_info("Routing data streams on %s (advertised as %s).", r->address,
                 c->config->router_advertise ?: r->wildcard ? "the address each side reached the controller at"
                                                             : r->address);
        *ret = TAKE_PTR(r);
        return 0;
}

Router *router_free(Router *r) {
        if (!r)
                return NULL;
        while (r->conns)
                router_conn_free(r->conns);
        sd_event_source_disable_unref(r->listen_source);
        safe_close(r->fd);
        SSL_CTX_free(r->ctx);
        sd_event_unref(r->event);
        free(r);
        return NULL;
}

int router_advertise_for(Router *r, HttpRequest *req, char **ret) {
        struct sockaddr_storage ss;
        socklen_t len;
        char buf[SOCKET_ADDRESS_MAX];
        int k;

        assert(r && ret);

        if (r->controller->config->router_advertise) {
                *ret = strdup(r->controller->config->router_advertise);
                return *ret ? 0 : -ENOMEM;
        }
        if (!r->wildcard) {
                *ret = strdup(r->address);
                return *ret ? 0 : -ENOMEM;
        }
        /* Whoever reached the controller's API at an address reaches the router there too. */
        k = http_request_get_local_address(req, &ss, &len);
        if (k < 0)
                return k;
        if (ss.ss_family == AF_INET6)
                ((struct sockaddr_in6 *) &ss)->sin6_port = htons(r->port);
        else if (ss.ss_family == AF_INET)
                ((struct sockaddr_in *) &ss)->sin_port = htons(r->port);
        else
                return -EAFNOSUPPORT;
        socket_address_format((struct sockaddr *) &ss, buf);
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

void router_cut_lease(Router *r, const char *lease) {
        unsigned n = 0;

        if (!r || !lease)
                return;
        for (RouterConn *rc = r->conns, *next; rc; rc = next) {
                next = rc->next;
                if (!rc->is_client || !streq_ptr(rc->lease, lease))
                        continue;
                if (rc->state == ROUTER_CONN_WAITING) {
                        router_refusef(rc, API_ERROR_EXPIRED, "Lease '%s' ended", lease);
                        n++;
                } else if (rc->state == ROUTER_CONN_JOINED) {
                        if (rc->other && rc->other->conn)
                                router_conn_close(rc->other);
                        router_conn_close(rc);
                        n++;
                }
        }
        if (n > 0)
                log_info("Lease %s ended, closing %u routed stream%s", lease, n, n == 1 ? "" : "s");
}
