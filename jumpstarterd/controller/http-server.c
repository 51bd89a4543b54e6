/* Controller HTTPS + JSON API server: libmicrohttpd on the sd-event loop */
#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "http-server.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"

/* libmicrohttpd runs in "external polling" mode with epoll, as systemd-journal-remote runs it:
 * MHD keeps its own epoll fd, which this loop watches for EPOLLIN; MHD_get_timeout() drives one
 * timer; either wakes MHD_run(), which never blocks. Requests whose answer takes time (a lease
 * that waits for a device, a driver call on an exporter) keep their connection suspended until
 * the handler replies, so one slow request never holds up another. */

#define PEM_FILE_SIZE_MAX ((size_t) 1024 * 1024)
#define STREAM_BLOCK_SIZE ((size_t) 16 * 1024)
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define AUTH_REALM "Bearer realm=\"jumpstarter\""

/* What the router keeps for each route. */
typedef struct HttpServerRoute {
        HttpRouteFlags flags;
        HttpHandlerFunc handler;
        void *userdata;
} HttpServerRoute;

struct HttpServer {
        sd_event *event;
        struct MHD_Daemon *daemon;
        sd_event_source *io_source;
        sd_event_source *timer_source;
        uint16_t port;

        /* GnuTLS copies them while the daemon starts; freed (the key wiped) right after. */
        char *certificate_pem;
        char *key_pem;

        size_t body_max;
        size_t stream_buffer_max;
        HttpAuthenticateFunc authenticate;
        void *userdata;

        HttpRouter *router;

        HttpRequest *requests; /* every live request, to count them and to detach them on free */
        unsigned n_requests;

        bool in_run;   /* inside MHD_run() */
        bool kicked;   /* a connection was resumed: MHD_run() again soon */
        bool stopping;
};

typedef enum RequestState {
        REQUEST_RECEIVING, /* routed and authenticated; the body comes in */
        REQUEST_HANDLING,  /* the handler has it; no reply yet */
        REQUEST_REPLIED,   /* a reply is ready or handed to MHD */
} RequestState;

struct HttpRequest {
        unsigned n_ref;
        HttpServer *server;                 /* NULL once the server is gone */
        struct MHD_Connection *connection;  /* NULL once MHD is done with the request */
        HttpRequest *prev, *next;

        RequestState state;
        HttpMethod method;
        char *path;
        char **params; /* name, value, name, value, ..., NULL */
        HttpHandlerFunc handler;
        void *handler_userdata;

        char *body;
        size_t body_size, body_allocated, body_discarded;
        bool body_too_large;
        json_t *json;

        void *identity;
        void (*identity_free)(void *);

        HttpRequestCancelFunc cancel;
        void *cancel_userdata;
        bool cancelled;       /* no reply can reach the client any more */
        bool cancel_notified;

        char **headers;       /* extra reply headers: name, value, ..., NULL */
        struct MHD_Response *response; /* ready, not yet handed to MHD */
        unsigned status;
        bool replied;
        bool queued;

        bool suspended;
        bool held;            /* a reply or stream waits for http_request_release() */
        sd_event_source *hangup_source;

        bool streaming;
        bool stream_ended;
        bool stream_failed;
        char *stream_buffer;
        size_t stream_offset, stream_size, stream_allocated;
};

/* ---- The event loop glue ---- */

static void http_server_kick(HttpServer *s) {
        /* A resumed connection is handled by the next MHD_run(). MHD's ITC wakes its epoll fd for
         * it, but arming the timer as well costs nothing and does not depend on that. */
        s->kicked = true;
        if (s->in_run || s->stopping || !s->timer_source)
                return;
        (void) sd_event_source_set_time(s->timer_source, 1);
        (void) sd_event_source_set_enabled(s->timer_source, SD_EVENT_ONESHOT);
}

static int http_server_process(HttpServer *s) {
        MHD_UNSIGNED_LONG_LONG timeout_ms = 0;
        uint64_t until = 1;
        int r;

        s->in_run = true;
        s->kicked = false;
        if (MHD_run(s->daemon) == MHD_NO)
                log_warning("libmicrohttpd failed to process events.");
        s->in_run = false;

        if (!s->kicked) {
                if (MHD_get_timeout(s->daemon, &timeout_ms) == MHD_NO)
                        return sd_event_source_set_enabled(s->timer_source, SD_EVENT_OFF);

                /* MHD_get_timeout() is relative and in milliseconds; the timer is absolute. */
                r = sd_event_now(s->event, CLOCK_MONOTONIC, &until);
                if (r < 0)
                        return r;
                if (timeout_ms > (UINT64_MAX - until) / USEC_PER_MSEC)
                        until = UINT64_MAX;
                else
                        until += timeout_ms * USEC_PER_MSEC;
        }

        r = sd_event_source_set_time(s->timer_source, until);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s->timer_source, SD_EVENT_ONESHOT);
}

static int http_server_on_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        HttpServer *s = userdata;
        int r;

        r = http_server_process(s);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the HTTP server's timer, connections may stall: %m");
        return 0;
}

static int http_server_on_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        return http_server_on_io(es, -EBADF, 0, userdata);
}

_printf_(2, 0)
static void http_server_on_mhd_log(void *cls, const char *format, va_list ap) {
        _cleanup_free_ char *m = NULL;
        size_t n;

        if (vasprintf(&m, format, ap) < 0)
                return;
        n = strlen(m);
        while (n > 0 && m[n - 1] == '\n')
                m[--n] = 0;
        /* Client mistakes (a failed TLS handshake, a bad request line) are no news for the journal. */
        log_debug("libmicrohttpd: %s", m);
}

/* ---- Requests ---- */

static void request_free(HttpRequest *req) {
        HttpServer *s = req->server;

        assert(!req->suspended);
        assert(!req->hangup_source);

        if (s) {
                if (req->prev)
                        req->prev->next = req->next;
                else
                        s->requests = req->next;
                if (req->next)
                        req->next->prev = req->prev;
                s->n_requests--;
        }

        if (req->response)
                MHD_destroy_response(req->response);
        if (req->identity_free)
                req->identity_free(req->identity);
        json_decref(req->json);
        http_params_free(req->params);
        http_params_free(req->headers);
        free(req->body);
        free(req->stream_buffer);
        free(req->path);
        free(req);
}

HttpRequest *http_request_ref(HttpRequest *req) {
        if (!req)
                return NULL;
        assert(req->n_ref > 0);
        req->n_ref++;
        return req;
}

HttpRequest *http_request_unref(HttpRequest *req) {
        if (!req)
                return NULL;
        assert(req->n_ref > 0);
        if (--req->n_ref == 0)
                request_free(req);
        return NULL;
}

static int request_new(HttpServer *s, struct MHD_Connection *connection, const char *url, HttpRequest **ret) {
        HttpRequest *req;

        req = calloc(1, sizeof(HttpRequest));
        if (!req)
                return -ENOMEM;
        req->path = strdup(url);
        if (!req->path) {
                free(req);
                return -ENOMEM;
        }
        req->n_ref = 1;
        req->server = s;
        req->connection = connection;
        req->method = _HTTP_METHOD_INVALID;

        req->next = s->requests;
        if (s->requests)
                s->requests->prev = req;
        s->requests = req;
        s->n_requests++;

        *ret = req;
        return 0;
}

static bool request_is_finished(HttpRequest *req) {
        return req->replied && (!req->streaming || req->stream_ended) && !req->stream_failed;
}

/* Marks the request as beyond reach and tells its handler, once. */
static void request_cancel(HttpRequest *req) {
        req->cancelled = true;
        if (req->cancel_notified || request_is_finished(req))
                return;
        req->cancel_notified = true;
        if (req->cancel)
                req->cancel(req, req->cancel_userdata);
}

static void request_resume(HttpRequest *req) {
        /* A held reply stays parked; a cancellation still goes through. */
        if (!req->suspended || (req->held && !req->cancelled))
                return;
        req->hangup_source = sd_event_source_disable_unref(req->hangup_source);
        req->suspended = false;
        MHD_resume_connection(req->connection);
        if (req->server)
                http_server_kick(req->server);
}

static int request_on_hangup(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        _cleanup_(http_request_unrefp) HttpRequest *req = http_request_ref(userdata);

        log_debug("HTTP client of %s %s hung up.", strna(http_method_to_string(req->method)), req->path);
        req->hangup_source = sd_event_source_disable_unref(req->hangup_source);
        request_cancel(req);
        /* MHD then sees the cancelled request, closes the connection and completes it. */
        request_resume(req);
        return 0;
}

/* Parks the connection until the handler replies or the stream has more to send. Only from MHD's
 * access handler or content reader (MHD's rule). */
static void request_suspend(HttpRequest *req) {
        const union MHD_ConnectionInfo *info;
        int r;

        assert(!req->suspended);

        MHD_suspend_connection(req->connection);
        req->suspended = true;

        /* MHD does not notice a client that goes away while its connection is suspended; a lease
         * wait or a watch must, to let go of what it holds. So watch for the hangup here. Without
         * the watch the request still works; it only lingers until it is answered. */
        info = MHD_get_connection_info(req->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info) {
                log_warning("libmicrohttpd did not tell the fd of a connection, hangups go unnoticed.");
                return;
        }
        r = sd_event_add_io(req->server->event, &req->hangup_source, info->connect_fd, EPOLLRDHUP,
                            request_on_hangup, req);
        if (r < 0) {
                log_warning_errno(r, "Failed to watch an HTTP connection for hangups: %m");
                return;
        }
        (void) sd_event_source_set_description(req->hangup_source, "http-hangup");
}

static int request_set_response(HttpRequest *req, unsigned status, struct MHD_Response *response) {
        if (status < 100 || status > 599) {
                MHD_destroy_response(response);
                return -EINVAL;
        }
        for (size_t i = 0; req->headers && req->headers[i] && req->headers[i + 1]; i += 2)
                if (MHD_add_response_header(response, req->headers[i], req->headers[i + 1]) == MHD_NO) {
                        MHD_destroy_response(response);
                        return -ENOMEM;
                }

        req->response = response;
        req->status = status;
        req->replied = true;
        req->state = REQUEST_REPLIED;
        request_resume(req);
        return 0;
}

static int request_check_reply(HttpRequest *req) {
        if (!req)
                return -EINVAL;
        if (req->replied)
                return -EALREADY;
        if (req->cancelled || !req->connection)
                return -ECONNRESET;
        return 0;
}

void http_request_hold(HttpRequest *req) {
        if (req)
                req->held = true;
}

void http_request_release(HttpRequest *req) {
        if (!req || !req->held)
                return;
        req->held = false;
        /* MHD calls the access handler again, which queues the reply. */
        if (req->replied)
                request_resume(req);
}

int http_request_add_header(HttpRequest *req, const char *name, const char *value) {
        if (!req || !name || !value || strpbrk(name, ":\r\n") || strpbrk(value, "\r\n"))
                return -EINVAL;
        if (req->replied)
                return -EALREADY;
        return http_params_append(&req->headers, name, value);
}

int http_request_reply(HttpRequest *req, unsigned status, const char *content_type, const void *body, size_t size) {
        struct MHD_Response *response;
        int r;

        r = request_check_reply(req);
        if (r < 0)
                return r;

        response = MHD_create_response_from_buffer(size, (void *) (body ?: ""), MHD_RESPMEM_MUST_COPY);
        if (!response)
                return -ENOMEM;
        if (content_type && MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_NO) {
                MHD_destroy_response(response);
                return -ENOMEM;
        }
        return request_set_response(req, status, response);
}

int http_request_reply_json(HttpRequest *req, unsigned status, json_t *body) {
        struct MHD_Response *response;
        char *text;
        size_t n;
        int r;

        r = request_check_reply(req);
        if (r < 0)
                return r;
        if (!body)
                return -EINVAL;

        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text)
                return -ENOMEM;
        /* json_dumps() leaves no room for the newline that makes curl output readable. */
        n = strlen(text);
        {
                char *t = realloc(text, n + 2);
                if (!t) {
                        free(text);
                        return -ENOMEM;
                }
                text = t;
        }
        text[n++] = '\n';
        text[n] = 0;

        response = MHD_create_response_from_buffer_with_free_callback(n, text, free);
        if (!response) {
                free(text);
                return -ENOMEM;
        }
        if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") == MHD_NO) {
                MHD_destroy_response(response);
                return -ENOMEM;
        }
        return request_set_response(req, status, response);
}

_printf_(4, 0)
static int request_reply_error_va(HttpRequest *req, ApiError error, const char *detail, const char *format,
                                  va_list ap) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_free_ char *message = NULL;
        int r;

        r = request_check_reply(req);
        if (r < 0)
                return r;

        if (format && vasprintf(&message, format, ap) < 0)
                return -ENOMEM;
        body = api_error_to_json(error, message, detail);
        if (!body)
                return -ENOMEM;
        if (error == API_ERROR_UNAUTHORIZED && !http_params_get(req->headers, MHD_HTTP_HEADER_WWW_AUTHENTICATE)) {
                r = http_request_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, AUTH_REALM);
                if (r < 0)
                        return r;
        }
        return http_request_reply_json(req, api_error_to_http_status(error), body);
}

int http_request_reply_error(HttpRequest *req, ApiError error, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = request_reply_error_va(req, error, NULL, format, ap);
        va_end(ap);
        return r;
}

_printf_(4, 5)
static int request_reply_error_detail(HttpRequest *req, ApiError error, const char *detail, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = request_reply_error_va(req, error, detail, format, ap);
        va_end(ap);
        return r;
}

int http_request_reply_errno(HttpRequest *req, int error, const char *format, ...) {
        va_list ap;
        int r;

        if (!format)
                return http_request_reply_error(req, api_error_from_errno(error), "%s", strerror(abs(error)));

        va_start(ap, format);
        r = request_reply_error_va(req, api_error_from_errno(error), NULL, format, ap);
        va_end(ap);
        return r;
}

/* ---- Streams ---- */

static ssize_t request_stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
        HttpRequest *req = cls;
        size_t n;

        /* Only called while the connection is alive, which holds a reference on req. */
        if (req->cancelled || req->stream_failed)
                return MHD_CONTENT_READER_END_WITH_ERROR;

        n = MIN(max, req->stream_size - req->stream_offset);
        if (n > 0) {
                memcpy(buf, req->stream_buffer + req->stream_offset, n);
                req->stream_offset += n;
                if (req->stream_offset == req->stream_size)
                        req->stream_offset = req->stream_size = 0;
                return (ssize_t) n;
        }
        if (req->stream_ended)
                return MHD_CONTENT_READER_END_OF_STREAM;

        /* Nothing to send: returning 0 alone would make MHD poll us in a busy loop. */
        request_suspend(req);
        return 0;
}

int http_request_reply_stream(HttpRequest *req, unsigned status) {
        struct MHD_Response *response;
        int r;

        r = request_check_reply(req);
        if (r < 0)
                return r;

        /* No free callback: the reader runs only while the connection (and its reference on req)
         * lives, while MHD may destroy the response after the request is gone. */
        response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE,
                                                     request_stream_read, req, NULL);
        if (!response)
                return -ENOMEM;
        if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, HTTP_STREAM_CONTENT_TYPE) == MHD_NO ||
            MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") == MHD_NO) {
                MHD_destroy_response(response);
                return -ENOMEM;
        }

        req->streaming = true;
        return request_set_response(req, status, response);
}

static int request_check_stream(HttpRequest *req) {
        if (!req || !req->streaming)
                return -EINVAL;
        if (req->stream_ended)
                return -EALREADY;
        if (req->cancelled || req->stream_failed || !req->connection)
                return -ECONNRESET;
        return 0;
}

int http_request_stream_json(HttpRequest *req, json_t *line) {
        _cleanup_free_ char *text = NULL;
        size_t n, max;
        int r;

        r = request_check_stream(req);
        if (r < 0)
                return r;
        if (!line)
                return -EINVAL;

        text = json_dumps(line, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text)
                return -ENOMEM;
        n = strlen(text);

        max = req->server ? req->server->stream_buffer_max : HTTP_SERVER_STREAM_BUFFER_MAX_DEFAULT;
        if (req->stream_size - req->stream_offset + n + 1 > max) {
                /* A client that does not read must not make the controller hold an ever-growing
                 * backlog: cut it off; it reconnects and resynchronizes. */
                log_debug("HTTP stream %s: client too slow, %zu bytes queued; cutting it off.",
                          req->path, req->stream_size - req->stream_offset);
                req->stream_failed = true;
                request_resume(req);
                return -ENOBUFS;
        }

        if (req->stream_offset > 0) {
                memmove(req->stream_buffer, req->stream_buffer + req->stream_offset,
                        req->stream_size - req->stream_offset);
                req->stream_size -= req->stream_offset;
                req->stream_offset = 0;
        }
        if (req->stream_size + n + 1 > req->stream_allocated) {
                size_t a = MAX(req->stream_size + n + 1, MAX(req->stream_allocated * 2, (size_t) 4096));
                char *b = realloc(req->stream_buffer, a);

                if (!b)
                        return -ENOMEM;
                req->stream_buffer = b;
                req->stream_allocated = a;
        }
        memcpy(req->stream_buffer + req->stream_size, text, n);
        req->stream_buffer[req->stream_size + n] = '\n';
        req->stream_size += n + 1;

        request_resume(req);
        return 0;
}

int http_request_stream_end(HttpRequest *req) {
        int r;

        r = request_check_stream(req);
        if (r < 0)
                return r;
        req->stream_ended = true;
        request_resume(req);
        return 0;
}

/* ---- Accessors ---- */

HttpServer *http_request_get_server(HttpRequest *req) {
        return req ? req->server : NULL;
}

HttpMethod http_request_get_method(HttpRequest *req) {
        return req ? req->method : _HTTP_METHOD_INVALID;
}

const char *http_request_get_path(HttpRequest *req) {
        return req ? req->path : NULL;
}

const char *http_request_get_param(HttpRequest *req, const char *name) {
        return req && name ? http_params_get(req->params, name) : NULL;
}

const char *http_request_get_query(HttpRequest *req, const char *key) {
        if (!req || !key || !req->connection)
                return NULL;
        return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_request_get_header(HttpRequest *req, const char *name) {
        if (!req || !name || !req->connection)
                return NULL;
        return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

int http_request_get_local_address(HttpRequest *req, struct sockaddr_storage *ret, socklen_t *ret_len) {
        const union MHD_ConnectionInfo *info;
        socklen_t len = sizeof *ret;

        if (!req || !req->connection)
                return -ENOTCONN;
        info = MHD_get_connection_info(req->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info)
                return -ENOTCONN;
        if (getsockname(info->connect_fd, (struct sockaddr *) ret, &len) < 0)
                return -errno;
        *ret_len = len;
        return 0;
}

json_t *http_request_get_json(HttpRequest *req) {
        return req ? req->json : NULL;
}

void http_request_set_identity(HttpRequest *req, void *identity, void (*free_func)(void *)) {
        if (!req)
                return;
        if (req->identity_free)
                req->identity_free(req->identity);
        req->identity = identity;
        req->identity_free = free_func;
}

void *http_request_get_identity(HttpRequest *req) {
        return req ? req->identity : NULL;
}

void http_request_set_cancel_callback(HttpRequest *req, HttpRequestCancelFunc callback, void *userdata) {
        if (!req)
                return;
        req->cancel = callback;
        req->cancel_userdata = userdata;
}

bool http_request_is_cancelled(HttpRequest *req) {
        return !req || req->cancelled || !req->connection;
}

int http_server_add_route(HttpServer *s, HttpMethod method, const char *pattern, HttpRouteFlags flags,
                          HttpHandlerFunc handler, void *userdata) {
        _cleanup_free_ HttpServerRoute *route = NULL;
        int r;

        if (!s || !handler)
                return -EINVAL;

        route = malloc(sizeof(HttpServerRoute));
        if (!route)
                return -ENOMEM;
        *route = (HttpServerRoute) { .flags = flags, .handler = handler, .userdata = userdata };
        r = http_router_add(s->router, method, pattern, route);
        if (r < 0)
                return r;
        TAKE_PTR(route);
        return 0;
}

/* ---- Request processing ---- */

const char *http_bearer_parse(const char *header) {
        const char *t;

        if (!header)
                return NULL;
        header += strspn(header, " \t");
        if (strncasecmp(header, "Bearer", 6) != 0 || !strchr(" \t", header[6]) || header[6] == 0)
                return NULL;
        t = header + 6 + strspn(header + 6, " \t");
        if (*t == 0 || strcspn(t, " \t\r\n,\"") != strlen(t))
                return NULL;
        return t;
}

static int request_authenticate(HttpRequest *req) {
        HttpServer *s = req->server;
        _cleanup_free_ char *detail = NULL;
        const char *token;
        int r;

        token = http_bearer_parse(MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                              MHD_HTTP_HEADER_AUTHORIZATION));
        if (!token)
                return http_request_reply_error(req, API_ERROR_UNAUTHORIZED,
                                                "This needs an \"Authorization: Bearer <token>\" header");
        if (!s->authenticate)
                return http_request_reply_error(req, API_ERROR_UNAUTHORIZED, "This server accepts no tokens");

        r = s->authenticate(req, token, &detail, s->userdata);
        if (r == -ENOMEM)
                return http_request_reply_error(req, API_ERROR_INTERNAL, "Out of memory");
        if (r < 0) {
                log_debug_errno(r, "HTTP %s %s: bearer token refused (%s): %m", strna(http_method_to_string(req->method)),
                                req->path, strna(detail));
                r = http_request_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                            AUTH_REALM ", error=\"invalid_token\"");
                if (r < 0)
                        return r;
                if (detail)
                        return request_reply_error_detail(req, API_ERROR_UNAUTHORIZED, detail,
                                                          "The bearer token was refused: %s", detail);
                return http_request_reply_error(req, API_ERROR_UNAUTHORIZED, "The bearer token was refused");
        }
        return 0;
}

/* The headers are in: route, authenticate, check the announced size. Replies on failure. */
static int request_begin(HttpRequest *req, const char *method) {
        HttpServer *s = req->server;
        HttpServerRoute *route;
        unsigned allow = 0;
        const char *length;
        void *data = NULL;
        int r;

        req->method = http_method_from_string(method);
        r = http_router_find(s->router, req->method, req->path, &data, &req->params, &allow);
        if (r == -ENOENT)
                return http_request_reply_error(req, API_ERROR_NOT_FOUND, "No such resource: %s", req->path);
        if (r == -EOPNOTSUPP) {
                _cleanup_free_ char *list = http_methods_format(allow);

                if (!list)
                        return -ENOMEM;
                r = http_request_add_header(req, MHD_HTTP_HEADER_ALLOW, list);
                if (r < 0)
                        return r;
                return http_request_reply_error(req, API_ERROR_METHOD_NOT_ALLOWED, "%s takes %s, not %s",
                                                req->path, list, method);
        }
        if (r < 0)
                return r;
        route = data;
        req->handler = route->handler;
        req->handler_userdata = route->userdata;

        if (!(route->flags & HTTP_ROUTE_PUBLIC)) {
                r = request_authenticate(req);
                if (r < 0 || req->replied)
                        return r;
        }

        /* Refuse a body that is announced too large before it is sent (curl waits for "100
         * Continue" on large bodies). Chunked bodies are counted as they come. */
        length = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length) {
                uint64_t n;

                if (parse_uint64(length, &n) < 0)
                        return http_request_reply_error(req, API_ERROR_BAD_REQUEST, "Invalid Content-Length");
                if (n > s->body_max)
                        return http_request_reply_error(req, API_ERROR_PAYLOAD_TOO_LARGE,
                                                        "The request body of %" PRIu64 " bytes exceeds the limit of %zu bytes",
                                                        n, s->body_max);
        }

        req->state = REQUEST_RECEIVING;
        return 0;
}

static enum MHD_Result request_receive(HttpRequest *req, const char *data, size_t *size) {
        HttpServer *s = req->server;
        size_t n = *size;

        *size = 0;
        if (req->state != REQUEST_RECEIVING)
                return MHD_YES; /* already answered: drop it */

        if (req->body_too_large || n > s->body_max - req->body_size) {
                /* Read on (up to a point) to answer with a proper 413 rather than a reset. */
                req->body_too_large = true;
                req->body_discarded += n;
                if (req->body_discarded > s->body_max * 4 + 64 * 1024)
                        return MHD_NO;
                return MHD_YES;
        }

        if (req->body_size + n + 1 > req->body_allocated) {
                size_t a = MIN(MAX(req->body_allocated * 2, req->body_size + n + 1), s->body_max + 1);
                char *b = realloc(req->body, a);

                if (!b)
                        return MHD_NO;
                req->body = b;
                req->body_allocated = a;
        }
        memcpy(req->body + req->body_size, data, n);
        req->body_size += n;
        return MHD_YES;
}

/* The whole request is in: parse the body and hand it to the handler. */
static int request_dispatch(HttpRequest *req) {
        int r;

        if (req->body_too_large)
                return http_request_reply_error(req, API_ERROR_PAYLOAD_TOO_LARGE,
                                                "The request body exceeds the limit of %zu bytes",
                                                req->server->body_max);

        if (req->body_size > 0) {
                json_error_t error;

                req->json = json_loadb(req->body, req->body_size, JSON_REJECT_DUPLICATES, &error);
                if (!req->json)
                        return http_request_reply_error(req, API_ERROR_MALFORMED_JSON,
                                                        "Malformed JSON at line %d, column %d: %s",
                                                        error.line, error.column, error.text);
        }
        free(req->body);
        req->body = NULL;
        req->body_size = req->body_allocated = 0;

        req->state = REQUEST_HANDLING;
        r = req->handler(req, req->handler_userdata);
        if (r < 0 && !req->replied) {
                log_debug_errno(r, "HTTP %s %s failed: %m", http_method_to_string(req->method), req->path);
                return http_request_reply_errno(req, r, NULL);
        }
        if (r < 0)
                log_debug_errno(r, "HTTP %s %s failed after replying, ignoring: %m",
                                http_method_to_string(req->method), req->path);
        return 0;
}

static enum MHD_Result request_queue(HttpRequest *req) {
        struct MHD_Response *response = TAKE_PTR(req->response);
        enum MHD_Result ret;

        log_debug("HTTP %s %s -> %u%s", strna(http_method_to_string(req->method)), req->path, req->status,
                  req->streaming ? " (stream)" : "");
        ret = MHD_queue_response(req->connection, req->status, response);
        MHD_destroy_response(response);
        if (ret == MHD_NO)
                log_warning("Failed to queue the HTTP reply to %s %s.", strna(http_method_to_string(req->method)),
                            req->path);
        req->queued = true;
        return ret;
}

/* MHD calls this once when the headers are in, once per piece of body, once when the body is
 * complete, and again after each resume until a reply is queued. */
static enum MHD_Result http_server_on_access(void *cls, struct MHD_Connection *connection, const char *url,
                                             const char *method, const char *version, const char *upload_data,
                                             size_t *upload_data_size, void **con_cls) {
        HttpServer *s = cls;
        HttpRequest *req = *con_cls;
        int r;

        if (!req) {
                if (s->stopping)
                        return MHD_NO;
                r = request_new(s, connection, url, &req);
                if (r < 0) {
                        log_oom();
                        return MHD_NO;
                }
                *con_cls = req;

                r = request_begin(req, method);
                if (r < 0) {
                        log_warning_errno(r, "Failed to process HTTP %s %s: %m", method, url);
                        if (!req->replied && http_request_reply_errno(req, r, NULL) < 0)
                                return MHD_NO;
                }
                return req->replied ? request_queue(req) : MHD_YES;
        }

        if (*upload_data_size > 0)
                return request_receive(req, upload_data, upload_data_size);

        if (req->cancelled)
                return MHD_NO; /* the client is gone, or the server stops: close */
        if (req->queued)
                return MHD_YES;

        if (req->state == REQUEST_RECEIVING) {
                r = request_dispatch(req);
                if (r < 0) {
                        log_warning_errno(r, "Failed to process HTTP %s %s: %m", method, url);
                        if (!req->replied && http_request_reply_errno(req, r, NULL) < 0)
                                return MHD_NO;
                }
        }

        if (req->replied && !req->held)
                return request_queue(req);

        /* The handler replies later, or its reply is held: park the connection, the loop goes on
         * with the others. */
        if (!req->suspended)
                request_suspend(req);
        return MHD_YES;
}

static void http_server_on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                                     enum MHD_RequestTerminationCode toe) {
        HttpRequest *req = *con_cls;

        if (!req)
                return;
        *con_cls = NULL;

        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
                log_debug("HTTP %s %s ended early (%d).", strna(http_method_to_string(req->method)), req->path,
                          (int) toe);

        assert(!req->suspended);
        req->hangup_source = sd_event_source_disable_unref(req->hangup_source);
        req->connection = NULL;
        request_cancel(req);
        http_request_unref(req);
}

/* ---- The server ---- */

static int read_pem_file(const char *path, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if ((uint64_t) st.st_size > PEM_FILE_SIZE_MAX)
                return -EFBIG;

        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = 0;
        if (strlen(buf) != n || !strstr(buf, "-----BEGIN "))
                return -EBADMSG;

        *ret = TAKE_PTR(buf);
        return 0;
}

static int no_password(char *buf, int size, int rwflag, void *userdata) {
        return -1; /* never prompt on a terminal: an encrypted key is an error */
}

/* Checks what GnuTLS will be given, for a message that says what is wrong (above all a key that is
 * not the certificate's), and because GnuTLS 3.7 leaks memory on a certificate it cannot parse.
 * -EBADMSG for something that is no PEM certificate or key, -EKEYREJECTED for a mismatch. */
static int check_certificate_and_key(const char *certificate_pem, const char *key_pem) {
        BIO *b;
        X509 *x = NULL;
        EVP_PKEY *k = NULL;
        int r = 0;

        b = BIO_new_mem_buf(certificate_pem, -1);
        if (!b)
                return -ENOMEM;
        x = PEM_read_bio_X509(b, NULL, no_password, NULL);
        BIO_free(b);
        if (!x) {
                r = -EBADMSG;
                goto finish;
        }

        b = BIO_new_mem_buf(key_pem, -1);
        if (!b) {
                r = -ENOMEM;
                goto finish;
        }
        k = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
        BIO_free(b);
        if (!k) {
                r = -ENOKEY;
                goto finish;
        }
        if (X509_check_private_key(x, k) != 1)
                r = -EKEYREJECTED;

finish:
        ERR_clear_error();
        EVP_PKEY_free(k);
        X509_free(x);
        return r;
}

static char *erase_and_free(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
        return NULL;
}

/* "host:port", "[v6]:port" or ":port" into a bound, listening socket. */
static int http_server_listen(const char *listen_address, int *ret_fd, uint16_t *ret_port) {
        _cleanup_free_ char *host = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *colon, *port_str;
        struct sockaddr_storage ss = {};
        socklen_t sslen;
        uint64_t port;
        int r, one = 1;

        if (!listen_address)
                return -EINVAL;
        if (listen_address[0] == '[') {
                const char *end = strchr(listen_address, ']');

                if (!end || end[1] != ':')
                        return -EINVAL;
                host = strndup(listen_address + 1, end - listen_address - 1);
                port_str = end + 2;
        } else {
                colon = strrchr(listen_address, ':');
                if (!colon || memchr(listen_address, ':', colon - listen_address))
                        return -EINVAL; /* an IPv6 address needs brackets */
                if (colon > listen_address)
                        host = strndup(listen_address, colon - listen_address);
                port_str = colon + 1;
        }
        if ((listen_address[0] == '[' || listen_address[0] != ':') && !host)
                return -ENOMEM;
        if (parse_uint64(port_str, &port) < 0 || port > UINT16_MAX)
                return -EINVAL;

        if (host) {
                struct addrinfo hints = {
                        .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
                        .ai_socktype = SOCK_STREAM,
                };
                struct addrinfo *ai = NULL;

                /* Numeric only: no name lookup blocks the loop, and a controller is reached by the
                 * address it listens on. */
                r = getaddrinfo(host, port_str, &hints, &ai);
                if (r != 0)
                        return r == EAI_MEMORY ? -ENOMEM : -EINVAL;
                memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
                sslen = ai->ai_addrlen;
                freeaddrinfo(ai);

                fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
                if (fd < 0)
                        return negative_errno();
        } else {
                /* Every address: one IPv6 socket that takes IPv4 too, or IPv4 alone without IPv6. */
                struct sockaddr_in6 *sa6 = (struct sockaddr_in6 *) &ss;
                int zero = 0;

                fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
                if (fd >= 0) {
                        sa6->sin6_family = AF_INET6;
                        sa6->sin6_addr = in6addr_any;
                        sa6->sin6_port = htons((uint16_t) port);
                        sslen = sizeof(struct sockaddr_in6);
                        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0)
                                return negative_errno();
                } else if (errno == EAFNOSUPPORT) {
                        struct sockaddr_in *sa4 = (struct sockaddr_in *) &ss;

                        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
                        if (fd < 0)
                                return negative_errno();
                        sa4->sin_family = AF_INET;
                        sa4->sin_addr.s_addr = htonl(INADDR_ANY);
                        sa4->sin_port = htons((uint16_t) port);
                        sslen = sizeof(struct sockaddr_in);
                } else
                        return negative_errno();
        }

        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return negative_errno();
        if (bind(fd, (struct sockaddr *) &ss, sslen) < 0)
                return negative_errno();
        if (listen(fd, SOMAXCONN) < 0)
                return negative_errno();

        sslen = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *) &ss, &sslen) < 0)
                return negative_errno();
        *ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                                                   : ((struct sockaddr_in *) &ss)->sin_port);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int http_server_new(sd_event *event, const HttpServerConfig *config, HttpServer **ret) {
        _cleanup_(http_server_freep) HttpServer *s = NULL;
        const union MHD_DaemonInfo *info;
        unsigned flags;
        int fd = -EBADF, r;

        if (!event || !config || !ret)
                return -EINVAL;

        if (config->plain_http) {
                if (config->certificate_file || config->key_file)
                        return log_error_errno(EINVAL, "Plain HTTP and a TLS certificate exclude each other.");
        } else if (!config->certificate_file || !config->key_file)
                return log_error_errno(EINVAL, "HTTPS needs a certificate and a key file.");

        s = calloc(1, sizeof(HttpServer));
        if (!s)
                return log_oom();
        s->event = sd_event_ref(event);
        s->body_max = config->body_max ?: HTTP_SERVER_BODY_MAX_DEFAULT;
        s->stream_buffer_max = config->stream_buffer_max ?: HTTP_SERVER_STREAM_BUFFER_MAX_DEFAULT;
        s->authenticate = config->authenticate;
        s->userdata = config->userdata;

        r = http_router_new(&s->router);
        if (r < 0)
                return log_oom();

        if (!config->plain_http) {
                r = read_pem_file(config->certificate_file, &s->certificate_pem);
                if (r < 0)
                        return log_error_errno(r, "Failed to read the TLS certificate %s: %m", config->certificate_file);
                r = read_pem_file(config->key_file, &s->key_pem);
                if (r < 0)
                        return log_error_errno(r, "Failed to read the TLS key %s: %m", config->key_file);

                r = check_certificate_and_key(s->certificate_pem, s->key_pem);
                if (r == -EBADMSG)
                        return log_error_errno(r, "%s holds no PEM certificate.", config->certificate_file);
                if (r == -ENOKEY)
                        return log_error_errno(r, "%s holds no unencrypted PEM private key.", config->key_file);
                if (r == -EKEYREJECTED)
                        return log_error_errno(r, "The key in %s is not the key of the certificate in %s.",
                                               config->key_file, config->certificate_file);
                if (r < 0)
                        return log_error_errno(r, "Failed to check the TLS certificate and key: %m");
        } else
                log_warning("The controller API serves plain HTTP on %s: for tests only.", strna(config->listen));

        r = http_server_listen(config->listen, &fd, &s->port);
        if (r < 0)
                return log_error_errno(r, "Failed to listen on %s: %m", strna(config->listen));

        struct MHD_OptionItem tls[] = {
                { MHD_OPTION_HTTPS_MEM_CERT, 0, s->certificate_pem },
                { MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem },
                { MHD_OPTION_HTTPS_PRIORITIES, 0, (void *) TLS_PRIORITIES },
                { MHD_OPTION_END, 0, NULL },
        };
        /* MHD_ALLOW_SUSPEND_RESUME brings MHD's ITC: a resume wakes the epoll fd that the loop watches. */
        flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        if (!config->plain_http)
                flags |= MHD_USE_TLS;

        s->daemon = MHD_start_daemon(
                        flags, 0, NULL, NULL, http_server_on_access, s,
                        MHD_OPTION_LISTEN_SOCKET, fd,
                        MHD_OPTION_NOTIFY_COMPLETED, http_server_on_completed, s,
                        MHD_OPTION_EXTERNAL_LOGGER, http_server_on_mhd_log, NULL,
                        MHD_OPTION_CONNECTION_TIMEOUT,
                        (unsigned) (config->idle_timeout_sec ?: HTTP_SERVER_IDLE_TIMEOUT_SEC_DEFAULT),
                        MHD_OPTION_STRICT_FOR_CLIENT, 1,
                        MHD_OPTION_ARRAY, config->plain_http ? &tls[ELEMENTSOF(tls) - 1] : tls,
                        MHD_OPTION_END);
        if (!s->daemon) {
                /* MHD owns the listening socket from the call on and closes it on most failures, but
                 * not on all. The daemon opens fds on this thread only: the number is still ours. */
                if (fcntl(fd, F_GETFD) >= 0)
                        safe_close(fd);
                return log_error_errno(EINVAL, "Failed to start the HTTP server on %s (a bad certificate or key?).",
                                       config->listen);
        }

        /* Not needed once GnuTLS holds its own copy. */
        s->key_pem = erase_and_free(s->key_pem);
        free(s->certificate_pem);
        s->certificate_pem = NULL;

        info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info || info->epoll_fd < 0)
                return log_error_errno(EOPNOTSUPP, "libmicrohttpd has no epoll fd.");

        r = sd_event_add_io(event, &s->io_source, info->epoll_fd, EPOLLIN, http_server_on_io, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the HTTP server: %m");
        (void) sd_event_source_set_description(s->io_source, "http-server");

        /* Accuracy 1 usec, not sd-event's default of 250 ms: MHD's "run again now" must not wait. */
        r = sd_event_add_time(event, &s->timer_source, CLOCK_MONOTONIC, UINT64_MAX, 1, http_server_on_timer, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the HTTP server's timer: %m");
        (void) sd_event_source_set_description(s->timer_source, "http-server-timer");

        r = http_server_process(s);
        if (r < 0)
                return log_error_errno(r, "Failed to arm the HTTP server's timer: %m");

        log_debug("Controller API listening on %s (port %u, %s).", config->listen, s->port,
                  config->plain_http ? "plain HTTP" : "HTTPS");
        *ret = TAKE_PTR(s);
        return 0;
}

HttpServer *http_server_free(HttpServer *s) {
        if (!s)
                return NULL;

        s->stopping = true;
        if (s->daemon) {
                /* MHD must not be stopped with suspended connections. Resumed and cancelled, they
                 * are closed by MHD_stop_daemon(), whose completion callbacks tell the handlers. */
                for (HttpRequest *req = s->requests; req; req = req->next)
                        if (req->suspended) {
                                req->cancelled = true;
                                request_resume(req);
                        }
                MHD_stop_daemon(s->daemon);
        }

        /* Requests that handlers still hold outlive the server, detached. */
        while (s->requests) {
                HttpRequest *req = s->requests;

                s->requests = req->next;
                req->prev = req->next = NULL;
                req->server = NULL;
        }

        sd_event_source_disable_unref(s->io_source);
        sd_event_source_disable_unref(s->timer_source);
        http_router_free(s->router);
        erase_and_free(s->key_pem);
        free(s->certificate_pem);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

uint16_t http_server_get_port(HttpServer *s) {
        return s ? s->port : 0;
}

unsigned http_server_get_n_requests(HttpServer *s) {
        return s ? s->n_requests : 0;
}
