/* A DUT of another exporter, reached over TLS data streams (control, serial, storage) */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "api-error.h"
#include "daemon-util.h"
#include "log.h"
#include "remote-internal.h"
#include "remote.h"
#include "token.h"

/* Reconnects of the control and serial streams: 0.5 s doubling to 10 s, with jitter. A refused
 * token or DUT waits the longest: trying again changes nothing until the token does. */
#define BACKOFF_MIN_USEC (500 * USEC_PER_MSEC)
#define BACKOFF_MAX_USEC (10 * USEC_PER_SEC)
#define CONNECT_TIMEOUT_DEFAULT_USEC (5 * USEC_PER_SEC)
/* With a router to fall back on, a direct connection that is not up by then goes through the router. */
#define DIRECT_TIMEOUT_WITH_ROUTER_USEC (2 * USEC_PER_SEC)
/* Through the router, the exporter first has to dial in: the router waits up to 10 s for that. */
#define ROUTER_DIAL_WAIT_USEC (10 * USEC_PER_SEC)
#define ROUTER_CA_MAX (1024 * 1024)
#define ANSWER_LINE_MAX (64U * 1024U)

typedef struct RemoteCall RemoteCall;
typedef void (*RemoteCallFunc)(Remote *r, int error, json_t *result, void *userdata);

struct RemoteCall {
        uint64_t id;
        RemoteCallFunc done;
        void *userdata;
        RemoteCall *next;
};

/* The control or the serial stream: connected, or waiting to reconnect. */
typedef struct RemoteLink {
        Remote *remote;
        StreamKind kind;
        TlsConn *conn;
        RemoteAttempt attempt;
        bool answered;
        char *buf;
        size_t buf_len;
        sd_event_source *retry;
        uint64_t backoff_usec;
        char *last_problem; /* the same problem is logged once, then at debug level */
} RemoteLink;

typedef struct RemoteLinks {
        RemoteLink control, serial;
        PowerState state;       /* POWER_UNKNOWN while the control stream is down */
        bool can_read;
        uint64_t next_id;
        RemoteCall *calls;
} RemoteLinks;

#define LINKS(r) ((RemoteLinks *) (r)->links)

static void remote_link_schedule(RemoteLink *l, bool refused);
static void remote_link_connect(RemoteLink *l);
static const TlsConnOps remote_link_ops;

int remote_get_token(Remote *r, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        char buf[TOKEN_SIZE_MAX + 2];
        ssize_t n;

        if (!r->token_file) {
                *ret = strdup(r->token);
                return *ret ? 0 : log_oom();
        }
        /* A small local file, read at each connection so that whoever renews the token only has
         * to replace it. */
        fd = open(r->token_file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return log_dut_prefix(LOG_ERR, errno, r->name, "Failed to open the token file %s: %m", r->token_file);
        n = read(fd, buf, sizeof buf - 1);
        if (n < 0)
                return log_dut_prefix(LOG_ERR, errno, r->name, "Failed to read the token file %s: %m", r->token_file);
        if ((size_t) n > TOKEN_SIZE_MAX)
                return log_dut_prefix(LOG_ERR, EMSGSIZE, r->name, "The token file %s is larger than a token",
                                      r->token_file);
        buf[n] = 0;
        buf[strcspn(buf, " \t\r\n")] = 0;
        if (!buf[0])
                return log_dut_prefix(LOG_ERR, ENOKEY, r->name, "The token file %s is empty", r->token_file);
        *ret = strdup(buf);
        return *ret ? 0 : log_oom();
}

char *remote_request_line(Remote *r, const char *token, StreamKind kind, bool writable, bool route) {
        _cleanup_free_ char *s = NULL;
        json_t *v;
        char *line;

        v = json_pack("{sssssssb}", "token", token, "dut", r->dut, "stream", stream_kind_to_string(kind), "writable",
                      writable);
        if (!v)
                return NULL;
        if (route && json_object_set_new(v, "route", json_true()) < 0) {
                json_decref(v);
                return NULL;
        }
        s = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        if (!s || asprintf(&line, "%s\n", s) < 0)
                return NULL;
        return line;
}

int remote_parse_answer(const char *line, size_t n, json_t **ret, char **ret_message) {
        json_t *v;
        ApiError e;
        const char *message = NULL;

        *ret_message = NULL;
        v = json_loadb(line, n, 0, NULL);
        if (!v || !json_is_object(v)) {
                json_decref(v);
                *ret_message = strdup("the exporter's answer is not a JSON object");
                return -EBADMSG;
        }
        if (json_is_true(json_object_get(v, "ok"))) {
                *ret = v;
                return 0;
        }
        if (api_error_from_json(v, &e, &message, NULL) < 0) {
                json_decref(v);
                *ret_message = strdup("the exporter's answer is neither ok nor an error");
                return -EBADMSG;
        }
        if (asprintf(ret_message, "%s: %s", strna(json_string_value(json_object_get(v, "reason"))),
                     strna(message)) < 0)
                *ret_message = NULL;
        json_decref(v);
        return e >= 0 ? -api_error_to_errno(e) : -EIO;
}

const char *remote_way(Remote *r, const RemoteAttempt *a, char *buf, size_t size) {
        if (a && a->routed)
                (void) snprintf(buf, size, "the exporter at %s via the router at %s", r->address, r->router);
        else
                (void) snprintf(buf, size, "the exporter at %s", r->address);
        return buf;
}

static int remote_connect_way(Remote *r, bool routed, const TlsConnOps *ops, void *userdata, TlsConn **ret) {
        if (routed)
                return tls_conn_connect(r->ctx.event, r->router_tls, r->router, NULL,
                                        r->connect_timeout_usec + ROUTER_DIAL_WAIT_USEC, ops, userdata, ret);
        return tls_conn_connect(r->ctx.event, r->tls, r->address, r->fingerprint,
                                r->router ? MIN(r->connect_timeout_usec, DIRECT_TIMEOUT_WITH_ROUTER_USEC)
                                          : r->connect_timeout_usec,
                                ops, userdata, ret);
}

/* What says that the way itself is closed, rather than that the exporter turned the stream down. */
static bool error_is_unreachable(int error) {
        return error == -ECONNREFUSED || error == -ENETUNREACH || error == -EHOSTUNREACH || error == -ENETDOWN ||
               error == -EHOSTDOWN || error == -ETIMEDOUT;
}

int remote_fall_back(Remote *r, RemoteAttempt *a, int error, const TlsConnOps *ops, void *userdata, TlsConn **ret) {
        char way[REMOTE_WAY_MAX];
        int k;

        if (!r->router || a->fell_back || !error_is_unreachable(error))
                return 0;
        log_dut_prefix(LOG_DEBUG, 0, r->name, "cannot reach %s (%s), trying %s", remote_way(r, a, way, sizeof way),
                       error == -ETIMEDOUT ? "timed out" : strerror(-error),
                       a->routed ? "directly" : "through the router");
        a->fell_back = true;
        a->routed = !a->routed;
        k = remote_connect_way(r, a->routed, ops, userdata, ret);
        return k < 0 ? k : 1;
}

int remote_connect(Remote *r, RemoteAttempt *a, const TlsConnOps *ops, void *userdata, TlsConn **ret) {
        int k, f;

        *a = (RemoteAttempt) { .routed = r->router && r->routed };
        k = remote_connect_way(r, a->routed, ops, userdata, ret);
        if (k >= 0)
                return 0;
        f = remote_fall_back(r, a, k, ops, userdata, ret);
        return f > 0 ? 0 : f < 0 ? f : k;
}

void remote_attempt_ready(Remote *r, RemoteAttempt *a, TlsConn *c) {
        if (!a->routed && r->router)
                (void) tls_conn_set_timeout(c, r->connect_timeout_usec);
}

void remote_attempt_worked(Remote *r, RemoteAttempt *a) {
        if (!r->router || r->routed == a->routed)
                return;
        r->routed = a->routed;
        if (a->routed)
                log_dut_prefix(LOG_INFO, 0, r->name, "The exporter at %s cannot be reached directly; its streams go "
                               "through the router at %s", r->address, r->router);
        else
                log_dut_prefix(LOG_INFO, 0, r->name, "The exporter at %s is reached directly again", r->address);
}

int remote_connect_error(Remote *r, const RemoteAttempt *a, TlsConn *c, int error, char **ret_message) {
        const char *seen = c ? tls_conn_get_peer_fingerprint(c) : NULL;
        char way[REMOTE_WAY_MAX];

        if (a && a->routed) {
                const char *why = c ? tls_conn_get_verify_error(c) : NULL;

                if (error == -EPERM && why) {
                        if (asprintf(ret_message, "the router at %s presented a certificate that router_ca does not "
                                     "vouch for: %s", r->router, why) < 0)
                                *ret_message = NULL;
                        return -EKEYREJECTED;
                }
                if (asprintf(ret_message, "cannot reach %s: %s", remote_way(r, a, way, sizeof way),
                             error == -ETIMEDOUT ? "timed out" : strerror(-error)) < 0)
                        *ret_message = NULL;
                return -EHOSTDOWN;
        }
        if (error == -EPERM && seen) {
                if (asprintf(ret_message, "the exporter at %s presented certificate %s, not the pinned %s", r->address,
                             seen, r->fingerprint) < 0)
                        *ret_message = NULL;
                return -EKEYREJECTED;
        }
        if (asprintf(ret_message, "cannot reach the exporter at %s: %s", r->address,
                     error == -ETIMEDOUT ? "timed out" : strerror(-error)) < 0)
                *ret_message = NULL;
        return -EHOSTDOWN;
}

static void remote_link_problem(RemoteLink *l, int level, const char *message) {
        Remote *r = l->remote;

        if (l->last_problem && streq(l->last_problem, message))
                level = LOG_DEBUG;
        else {
                free(l->last_problem);
                l->last_problem = strdup(message);
        }
        log_dut_prefix(level, 0, r->name, "%s stream: %s", stream_kind_to_string(l->kind), message);
}

static void remote_calls_fail(Remote *r, int error) {
        RemoteLinks *ls = LINKS(r);

        while (ls->calls) {
                RemoteCall *c = ls->calls;

                ls->calls = c->next;
                c->done(r, error, NULL, c->userdata);
                free(c);
        }
}

/* The connection ended or failed: forget it and try again later. */
static void remote_link_down(RemoteLink *l, bool refused) {
        Remote *r = l->remote;
        bool was_up = l->answered;

        l->conn = tls_conn_free(l->conn);
        l->answered = false;
        l->buf_len = 0;
        if (l->kind == STREAM_CONTROL) {
                LINKS(r)->state = POWER_UNKNOWN;
                /* Nothing will answer them: fail them now rather than let a power write hang. */
                remote_calls_fail(r, -EHOSTDOWN);
        }
        if (was_up)
                l->backoff_usec = 0;
        remote_link_schedule(l, refused);
}

static int remote_call(Remote *r, const char *op, json_t *args, RemoteCallFunc done, void *userdata) {
        RemoteLinks *ls = LINKS(r);
        _cleanup_free_ char *s = NULL, *line = NULL;
        RemoteCall *c;
        json_t *v;
        int n;

        if (!ls->control.answered) {
                json_decref(args);
                return -EHOSTDOWN;
        }
        v = args ?: json_object();
        if (!v || json_object_set_new(v, "id", json_integer((json_int_t) ++ls->next_id)) < 0 ||
            json_object_set_new(v, "op", json_string(op)) < 0) {
                json_decref(v);
                return -ENOMEM;
        }
        s = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        if (!s)
                return -ENOMEM;
        n = asprintf(&line, "%s\n", s);
        if (n < 0)
                return -ENOMEM;
        c = malloc(sizeof *c);
        if (!c)
                return -ENOMEM;
        if (tls_conn_write(ls->control.conn, line, (size_t) n) < 0) {
                free(c);
                return -EHOSTDOWN;
        }
        *c = (RemoteCall) { .id = ls->next_id, .done = done, .userdata = userdata, .next = ls->calls };
        ls->calls = c;
        return 0;
}

static void remote_set_state(Remote *r, PowerState state) {
        RemoteLinks *ls = LINKS(r);

        if (ls->state == state)
                return;
        ls->state = state;
        if (state != POWER_UNKNOWN && r->ctx.power_changed)
                r->ctx.power_changed(r->ctx.userdata, state);
}

static PowerState power_state_from_json(json_t *v) {
        const char *s = json_string_value(v);

        if (s && streq(s, "on"))
                return POWER_ON;
        if (s && streq(s, "off"))
                return POWER_OFF;
        return POWER_UNKNOWN;
}

static void remote_on_describe(Remote *r, int error, json_t *result, void *userdata) {
        json_t *size;

        if (error < 0)
                return;
        size = json_object_get(result, "storageSize");
        if (json_is_integer(size) && json_integer_value(size) >= 0)
                r->storage_size = (uint64_t) json_integer_value(size);
        LINKS(r)->can_read = json_is_true(json_object_get(result, "powerReading"));
}

static void remote_on_power_get(Remote *r, int error, json_t *result, void *userdata) {
        if (error >= 0)
                remote_set_state(r, power_state_from_json(json_object_get(result, "state")));
}

static void remote_control_line(Remote *r, const char *line, size_t n) {
        RemoteLinks *ls = LINKS(r);
        json_t *v, *id, *error;
        json_int_t want;

        v = json_loadb(line, n, 0, NULL);
        if (!json_is_object(v)) {
                log_dut_prefix(LOG_WARNING, 0, r->name, "control stream: ignoring a line that is no JSON object");
                json_decref(v);
                return;
        }
        if (json_is_string(json_object_get(v, "event"))) {
                if (streq(json_string_value(json_object_get(v, "event")), "power"))
                        remote_set_state(r, power_state_from_json(json_object_get(v, "state")));
                json_decref(v);
                return;
        }
        id = json_object_get(v, "id");
        want = json_is_integer(id) ? json_integer_value(id) : -1;
        for (RemoteCall **link = &ls->calls; *link; link = &(*link)->next) {
                RemoteCall *c = *link;
                ApiError e;
                const char *message = NULL;

                if ((json_int_t) c->id != want)
                        continue;
                *link = c->next;
                error = json_object_get(v, "error");
                if (error) {
                        int k = api_error_from_json(error, &e, &message, NULL) >= 0 && e >= 0 ? -api_error_to_errno(e)
                                                                                              : -EIO;
                        log_dut_prefix(LOG_DEBUG, 0, r->name, "control: the exporter said %s: %s",
                                       strna(json_string_value(json_object_get(error, "reason"))), strna(message));
                        c->done(r, k, NULL, c->userdata);
                } else
                        c->done(r, 0, json_object_get(v, "result"), c->userdata);
                free(c);
                break;
        }
        json_decref(v);
}

/* Splits what came into lines; the first is the exporter's answer to the request. */
static void remote_link_on_data(TlsConn *c, const void *data, size_t n, void *userdata) {
        RemoteLink *l = userdata;
        Remote *r = l->remote;
        const char *p = data;

        if (l->answered && l->kind == STREAM_SERIAL) {
                if (r->ctx.serial_output)
                        r->ctx.serial_output(r->ctx.userdata, data, n);
                return;
        }

        while (n > 0) {
                const char *nl = memchr(p, '\n', n);
                size_t k = nl ? (size_t) (nl - p) : n;
                char *b;

                if (l->buf_len + k > ANSWER_LINE_MAX) {
                        remote_link_problem(l, LOG_WARNING, "the exporter sent an overlong line");
                        return remote_link_down(l, false);
                }
                b = realloc(l->buf, l->buf_len + k + 1);
                if (!b)
                        return remote_link_down(l, false);
                l->buf = b;
                memcpy(l->buf + l->buf_len, p, k);
                l->buf_len += k;
                if (!nl)
                        return;
                p += k + 1;
                n -= k + 1;

                if (!l->answered) {
                        _cleanup_free_ char *message = NULL;
                        json_t *answer = NULL;
                        int e;

                        e = remote_parse_answer(l->buf, l->buf_len, &answer, &message);
                        l->buf_len = 0;
                        json_decref(answer);
                        if (e < 0) {
                                _cleanup_free_ char *text = NULL;

                                char way[REMOTE_WAY_MAX];

                                if (asprintf(&text, "%s refused it: %s", remote_way(r, &l->attempt, way, sizeof way),
                                             strna(message)) < 0)
                                        text = NULL;
                                remote_link_problem(l, LOG_WARNING, strna(text));
                                return remote_link_down(l, e != -EHOSTDOWN && e != -EBADMSG);
                        }
                        l->answered = true;
                        l->backoff_usec = 0;
                        (void) tls_conn_set_timeout(c, 0);
                        remote_attempt_worked(r, &l->attempt);
                        if (l->last_problem || l->kind == STREAM_CONTROL)
                                log_dut_prefix(LOG_INFO, 0, r->name, "%s stream to %s/%s connected%s%s",
                                               stream_kind_to_string(l->kind), r->address, r->dut,
                                               l->attempt.routed ? " via the router at " : "",
                                               l->attempt.routed ? r->router : "");
                        free(l->last_problem);
                        l->last_problem = NULL;
                        if (l->kind == STREAM_CONTROL) {
                                (void) remote_call(r, "describe", NULL, remote_on_describe, NULL);
                                (void) remote_call(r, "power.get", NULL, remote_on_power_get, NULL);
                        } else {
                                if (n > 0 && r->ctx.serial_output)
                                        r->ctx.serial_output(r->ctx.userdata, p, n);
                                return;
                        }
                        continue;
                }

                /* A line of the control stream. */
                {
                        _cleanup_free_ char *line = TAKE_PTR(l->buf);
                        size_t len = l->buf_len;

                        l->buf_len = 0;
                        remote_control_line(r, line, len);
                        /* The call's callback may have brought the link down. */
                        if (l->conn != c)
                                return;
                }
        }
}

static void remote_link_on_ready(TlsConn *c, void *userdata) {
        RemoteLink *l = userdata;
        Remote *r = l->remote;
        _cleanup_free_ char *token = NULL, *line = NULL;

        if (remote_get_token(r, &token) < 0)
                return remote_link_down(l, true);
        remote_attempt_ready(r, &l->attempt, c);
        line = remote_request_line(r, token, l->kind, false, l->attempt.routed);
        if (!line || tls_conn_write(c, line, strlen(line)) < 0)
                return remote_link_down(l, false);
}

static void remote_link_on_closed(TlsConn *c, int error, void *userdata) {
        RemoteLink *l = userdata;
        Remote *r = l->remote;
        _cleanup_free_ char *message = NULL;
        int k;

        if (l->answered) {
                (void) asprintf(&message, "the connection to %s was lost%s%s", r->address, error < 0 ? ": " : "",
                                error < 0 ? strerror(-error) : "");
                remote_link_problem(l, LOG_WARNING, strna(message));
                return remote_link_down(l, false);
        }
        {
                TlsConn *next = NULL;
                int f = remote_fall_back(r, &l->attempt, error, &remote_link_ops, l, &next);

                if (f > 0) {
                        tls_conn_free(c);
                        l->conn = next;
                        return;
                }
                if (f < 0)
                        error = f;
        }
        k = remote_connect_error(r, &l->attempt, c, error == 0 ? -ECONNRESET : error, &message);
        remote_link_problem(l, k == -EKEYREJECTED ? LOG_ERR : LOG_WARNING, strna(message));
        remote_link_down(l, k == -EKEYREJECTED);
}

static const TlsConnOps remote_link_ops = {
        .ready = remote_link_on_ready,
        .data = remote_link_on_data,
        .closed = remote_link_on_closed,
};

static void remote_link_connect(RemoteLink *l) {
        Remote *r = l->remote;
        int k;

        k = remote_connect(r, &l->attempt, &remote_link_ops, l, &l->conn);
        if (k < 0) {
                _cleanup_free_ char *message = NULL;

                (void) remote_connect_error(r, &l->attempt, NULL, k, &message);
                remote_link_problem(l, LOG_WARNING, strna(message));
                remote_link_schedule(l, false);
        }
}

static int remote_link_on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        RemoteLink *l = userdata;

        l->retry = sd_event_source_disable_unref(l->retry);
        remote_link_connect(l);
        return 0;
}

static void remote_link_schedule(RemoteLink *l, bool refused) {
        uint64_t delay;
        int k;

        if (refused)
                l->backoff_usec = BACKOFF_MAX_USEC;
        else if (l->backoff_usec == 0)
                l->backoff_usec = BACKOFF_MIN_USEC;
        else
                l->backoff_usec = MIN(l->backoff_usec * 2, BACKOFF_MAX_USEC);
        /* Up to a quarter less, so that many clients of one exporter do not come back in step. */
        delay = l->backoff_usec - (uint64_t) random() % (l->backoff_usec / 4 + 1);

        l->retry = sd_event_source_disable_unref(l->retry);
        k = sd_event_add_time_relative(l->remote->ctx.event, &l->retry, CLOCK_MONOTONIC, delay, 0,
                                       remote_link_on_retry, l);
        if (k < 0)
                log_dut_prefix(LOG_ERR, k, l->remote->name, "Failed to schedule a reconnect: %m");
}

int remote_set_token(void *instance, const char *token) {
        Remote *r = instance;
        RemoteLinks *ls = LINKS(r);
        char *t;

        if (!token || !*token || strlen(token) > TOKEN_SIZE_MAX || strpbrk(token, " \t\r\n"))
                return -EINVAL;
        if (r->token_file)
                return -EOPNOTSUPP; /* its file is the token's home */
        t = strdup(token);
        if (!t)
                return -ENOMEM;
        free(r->token);
        r->token = t;

        /* A stream that waits to retry goes now: the refusal may have been the old token's. */
        for (RemoteLink *l = &ls->control; l <= &ls->serial; l++)
                if (l->retry) {
                        l->retry = sd_event_source_disable_unref(l->retry);
                        l->backoff_usec = 0;
                        remote_link_connect(l);
                }
        return 0;
}

/* Power: the exporter's DUT switches; its answer (or the loss of the stream) ends the action. */
typedef struct PowerCall {
        PowerDoneFunc done;
        void *userdata;
} PowerCall;

static void remote_on_power_set(Remote *r, int error, json_t *result, void *userdata) {
        PowerCall *p = userdata;

        if (error >= 0)
                remote_set_state(r, power_state_from_json(json_object_get(result, "state")));
        p->done(error < 0 ? error : 0, p->userdata);
        free(p);
}

static int remote_power_set(void *instance, PowerAction action, PowerDoneFunc done, void *userdata) {
        Remote *r = instance;
        PowerCall *p;
        int k;

        p = malloc(sizeof *p);
        if (!p)
                return -ENOMEM;
        *p = (PowerCall) { .done = done, .userdata = userdata };
        k = remote_call(r, "power.set", json_pack("{ss}", "action", power_action_to_string(action)),
                        remote_on_power_set, p);
        if (k < 0) {
                free(p);
                return k;
        }
        return 0;
}

static PowerState remote_power_get(void *instance) {
        Remote *r = instance;
        return LINKS(r)->state;
}

static bool remote_can_read(void *instance) {
        Remote *r = instance;
        return LINKS(r)->can_read;
}

typedef struct ReadingCall {
        PowerReadingFunc done;
        void *userdata;
} ReadingCall;

static void remote_on_reading(Remote *r, int error, json_t *result, void *userdata) {
        ReadingCall *p = userdata;
        json_t *w = json_object_get(result, "watts");

        if (error >= 0 && !json_is_number(w))
                error = -EBADMSG;
        p->done(error < 0 ? error : 0, error < 0 ? 0.0 : json_number_value(w), p->userdata);
        free(p);
}

static int remote_power_read(void *instance, PowerReadingFunc done, void *userdata) {
        Remote *r = instance;
        ReadingCall *p;
        int k;

        p = malloc(sizeof *p);
        if (!p)
                return -ENOMEM;
        *p = (ReadingCall) { .done = done, .userdata = userdata };
        k = remote_call(r, "power.reading", NULL, remote_on_reading, p);
        if (k < 0) {
                free(p);
                return k;
        }
        return 0;
}

static void remote_serial_input(void *instance, const void *data, size_t n) {
        Remote *r = instance;
        RemoteLink *l = &LINKS(r)->serial;

        /* Keystrokes while the console is away are lost, as on a UART with nobody at the other end. */
        if (l->answered)
                (void) tls_conn_write(l->conn, data, n);
}

static void remote_link_done(RemoteLink *l) {
        l->conn = tls_conn_free(l->conn);
        l->retry = sd_event_source_disable_unref(l->retry);
        free(l->buf);
        free(l->last_problem);
}

static void *remote_free(void *instance) {
        Remote *r = instance;

        if (!r)
                return NULL;
        remote_storage_free_all(r);
        if (r->links) {
                RemoteLinks *ls = LINKS(r);

                remote_link_done(&ls->control);
                remote_link_done(&ls->serial);
                /* Drivers call nothing back once freed: the DUT cancels what it waits for. */
                while (ls->calls) {
                        RemoteCall *c = ls->calls;

                        ls->calls = c->next;
                        free(c->userdata); /* a PowerCall, a ReadingCall, or NULL */
                        free(c);
                }
                free(ls);
        }
        SSL_CTX_free(r->tls);
        SSL_CTX_free(r->router_tls);
        free(r->router);
        sd_event_unref(r->ctx.event);
        free(r->name);
        free(r->address);
        free(r->dut);
        free(r->fingerprint);
        if (r->token)
                explicit_bzero(r->token, strlen(r->token));
        free(r->token);
        free(r->token_file);
        free(r);
        return NULL;
}

static inline void remote_freep(Remote **r) {
        remote_free(*r);
}

/* router_ca: PEM text, or the absolute path of a PEM file (a small local file, read once at start). */
static int remote_router_tls(Remote *r, const char *router_ca) {
        _cleanup_free_ char *pem = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0;
        int k;

        if (router_ca && !strstr(router_ca, "-----BEGIN")) {
                fd = open(router_ca, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return log_dut_prefix(LOG_ERR, errno, r->name, "Cannot read router_ca %s: %m", router_ca);
                pem = malloc(ROUTER_CA_MAX + 1);
                if (!pem)
                        return log_oom();
                for (;;) {
                        ssize_t m = read(fd, pem + n, ROUTER_CA_MAX + 1 - n);

                        if (m < 0 && errno == EINTR)
                                continue;
                        if (m < 0)
                                return log_dut_prefix(LOG_ERR, errno, r->name, "Cannot read router_ca %s: %m",
                                                      router_ca);
                        if (m == 0)
                                break;
                        n += (size_t) m;
                        if (n > ROUTER_CA_MAX)
                                return log_dut_prefix(LOG_ERR, EFBIG, r->name, "router_ca %s is larger than 1 MiB",
                                                      router_ca);
                }
                pem[n] = 0;
                router_ca = pem;
        }
        k = tls_client_ctx_new_ca(router_ca, &r->router_tls);
        if (k == -EBADMSG)
                return log_dut_prefix(LOG_ERR, k, r->name, "router_ca holds no PEM certificate");
        if (k < 0)
                return log_dut_prefix(LOG_ERR, k, r->name, "Failed to set up TLS for the router: %m");
        return 0;
}

static int remote_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        _cleanup_(remote_freep) Remote *r = NULL;
        RemoteLinks *ls;
        const char *dut;
        int k;

        r = calloc(1, sizeof *r);
        if (!r)
                return log_oom();
        r->ctx = *ctx;
        sd_event_ref(r->ctx.event);
        r->name = strdup(ctx->dut_name);
        dut = driver_config_get_string(config, "dut");
        r->dut = strdup(dut ? dut : ctx->dut_name);
        r->address = strdup(driver_config_get_string(config, "address"));
        r->fingerprint = strdup(driver_config_get_string(config, "fingerprint"));
        if (!r->name || !r->dut || !r->address || !r->fingerprint)
                return log_oom();
        r->ctx.dut_name = r->name;
        if (driver_config_get_string(config, "token")) {
                r->token = strdup(driver_config_get_string(config, "token"));
                if (!r->token)
                        return log_oom();
        } else {
                r->token_file = strdup(driver_config_get_string(config, "token_file"));
                if (!r->token_file)
                        return log_oom();
        }
        r->connect_timeout_usec = driver_config_get_u64(config, "connect_timeout", CONNECT_TIMEOUT_DEFAULT_USEC);
        if (!tls_fingerprint_is_valid(r->fingerprint))
                return log_dut_prefix(LOG_ERR, EINVAL, r->name, "Invalid fingerprint %s", r->fingerprint);

        k = tls_client_ctx_new(&r->tls);
        if (k < 0)
                return log_dut_prefix(LOG_ERR, k, r->name, "Failed to set up TLS: %m");
        if (driver_config_get_string(config, "router")) {
                r->router = strdup(driver_config_get_string(config, "router"));
                if (!r->router)
                        return log_oom();
                k = remote_router_tls(r, driver_config_get_string(config, "router_ca"));
                if (k < 0)
                        return k;
        }

        ls = calloc(1, sizeof *ls);
        if (!ls)
                return log_oom();
        r->links = ls;
        ls->state = POWER_UNKNOWN;
        ls->control = (RemoteLink) { .remote = r, .kind = STREAM_CONTROL };
        ls->serial = (RemoteLink) { .remote = r, .kind = STREAM_SERIAL };

        /* Both connect in the background; until then power is unknown and its actions fail. */
        remote_link_connect(&ls->control);
        remote_link_connect(&ls->serial);

        *ret = TAKE_PTR(r);
        return 0;
}

static const PowerDriverOps remote_power_ops = {
        .set = remote_power_set,
        .get = remote_power_get,
        .can_read = remote_can_read,
        .read = remote_power_read,
};

static const SerialDriverOps remote_serial_ops = {
        .input = remote_serial_input,
};

static const StorageDriverOps remote_storage_ops = {
        .size = remote_storage_size,
        .open_async = remote_storage_open,
        .cancel_open = remote_storage_cancel_open,
};

const Driver driver_remote = {
        .name = "remote",
        .new = remote_new,
        .free = remote_free,
        .power = &remote_power_ops,
        .serial = &remote_serial_ops,
        .storage = &remote_storage_ops,
};
