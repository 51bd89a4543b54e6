/* Controller HTTPS + JSON API server: libmicrohttpd on the sd-event loop */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "api-error.h"
#include "http-router.h"
#include "macro.h"

/* The conventions (JSON bodies, error bodies, the bearer token, streaming) are written down in
 * docs/protocol.md, "Controller HTTP conventions". */

#define HTTP_SERVER_BODY_MAX_DEFAULT ((size_t) 1024 * 1024)
#define HTTP_SERVER_STREAM_BUFFER_MAX_DEFAULT ((size_t) 4 * 1024 * 1024)
#define HTTP_SERVER_IDLE_TIMEOUT_SEC_DEFAULT 120U
#define HTTP_STREAM_CONTENT_TYPE "application/x-ndjson"

typedef struct HttpServer HttpServer;
typedef struct HttpRequest HttpRequest;

/* Checks the token of "Authorization: Bearer <token>". Returns 0 to accept (and may attach who it
 * is with http_request_set_identity()), or a negative errno to refuse: the client gets 401
 * Unauthorized, with *ret_detail (optional, malloc()ed) as the error's "detail", a stable word
 * for why (token_error_to_string()). -ENOMEM is a 500 instead. It runs before the body is read,
 * from the event loop: it must not block. */
/* The token of an "Authorization" header value "Bearer <token>" (RFC 6750), pointing into header, or
 * NULL. The scheme is matched case-insensitively; blanks (space, tab) may precede it and must
 * separate it from the token; the token is the rest of the header, non-empty, with no blank, CR,
 * LF, comma or double quote in it. */
const char *http_bearer_parse(const char *header);

typedef int (*HttpAuthenticateFunc)(HttpRequest *req, const char *token, char **ret_detail, void *userdata);

typedef struct HttpServerConfig {
        /* "127.0.0.1:8443", "[::1]:8443", "0.0.0.0:0", "[::]:8443", or ":8443" for every address
         * of both families. Port 0 lets the kernel pick one: see http_server_get_port(). */
        const char *listen;
        /* PEM files: the certificate (chain) and its unencrypted private key. Required, unless
         * plain_http is set. */
        const char *certificate_file;
        const char *key_file;
        /* Plain HTTP, for tests only; certificate_file and key_file must then be unset. */
        bool plain_http;
        size_t body_max;          /* 0: HTTP_SERVER_BODY_MAX_DEFAULT */
        size_t stream_buffer_max; /* per stream, 0: HTTP_SERVER_STREAM_BUFFER_MAX_DEFAULT */
        unsigned idle_timeout_sec; /* 0: HTTP_SERVER_IDLE_TIMEOUT_SEC_DEFAULT */
        /* NULL: every route that is not HTTP_ROUTE_PUBLIC is refused. */
        HttpAuthenticateFunc authenticate;
        void *userdata;
} HttpServerConfig;

int http_server_new(sd_event *event, const HttpServerConfig *config, HttpServer **ret);
/* Stops listening and closes every connection; requests still held by handlers get their cancel
 * callback and can no longer reply. */
HttpServer *http_server_free(HttpServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpServer *, http_server_free);

/* The port the server listens on (the one the kernel picked, for port 0). */
uint16_t http_server_get_port(HttpServer *s);
/* Requests alive: being received, handled, answered or streamed. */
unsigned http_server_get_n_requests(HttpServer *s);

typedef enum HttpRouteFlags {
        HTTP_ROUTE_PUBLIC = 1 << 0, /* no bearer token needed (/metrics, health checks) */
} HttpRouteFlags;

/* Called from the event loop once the whole request is in (routed, authenticated, body parsed).
 * Reply with one of the http_request_reply*() functions, now or later: to reply later, keep a
 * reference (http_request_ref()) and return 0; the connection waits, suspended, without holding
 * up anything else. A negative return without a reply answers with the error table's mapping of
 * that errno. It must not block. */
typedef int (*HttpHandlerFunc)(HttpRequest *req, void *userdata);

/* Registers a handler for method + path pattern (http-router.h): a segment "{name}" matches any
 * one non-empty segment, read back with http_request_get_param(). A path that no pattern matches
 * is 404 NotFound; one that matches only under other methods is 405 MethodNotAllowed with an
 * Allow header. -EINVAL for a bad pattern, -EEXIST if method + pattern is already registered. */
int http_server_add_route(HttpServer *s, HttpMethod method, const char *pattern, HttpRouteFlags flags,
                          HttpHandlerFunc handler, void *userdata);

/* A request is reference counted: the server holds one reference until the connection is done
 * with it, a handler that replies later holds another. */
HttpRequest *http_request_ref(HttpRequest *req);
HttpRequest *http_request_unref(HttpRequest *req);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpRequest *, http_request_unref);

HttpServer *http_request_get_server(HttpRequest *req);
HttpMethod http_request_get_method(HttpRequest *req);
const char *http_request_get_path(HttpRequest *req);
/* The segment that matched "{name}" in the route's pattern, or NULL. */
const char *http_request_get_param(HttpRequest *req, const char *name);
/* A query argument (?key=value) or a request header, or NULL; NULL once the client is gone. */
const char *http_request_get_query(HttpRequest *req, const char *key);
const char *http_request_get_header(HttpRequest *req, const char *name);
/* The address of ours that the client connected to (getsockname() of its connection); -ENOTCONN
 * once the connection is gone. */
int http_request_get_local_address(HttpRequest *req, struct sockaddr_storage *ret, socklen_t *ret_len);
/* The parsed body (borrowed), or NULL if the request had none. */
json_t *http_request_get_json(HttpRequest *req);

/* What the authenticate callback found out about the caller; freed with the request. */
void http_request_set_identity(HttpRequest *req, void *identity, void (*free_func)(void *));
void *http_request_get_identity(HttpRequest *req);

/* Called once if the request ends before the handler finished it: the client disconnected while
 * the reply was pending or a stream was open, a stream was cut, or the server is shutting down.
 * The request can no longer be answered; drop the reference kept for it. Not called after a
 * complete reply or http_request_stream_end(). */
typedef void (*HttpRequestCancelFunc)(HttpRequest *req, void *userdata);
void http_request_set_cancel_callback(HttpRequest *req, HttpRequestCancelFunc callback, void *userdata);
/* True once the client is gone or the request was cancelled. */
bool http_request_is_cancelled(HttpRequest *req);

/* Holds back whatever reply (or stream) the request gets until http_request_release(): the
 * connection stays parked meanwhile. For a reply that may go out only once something else has
 * happened, such as the commit that makes its change durable. Cancellation is not held up. */
void http_request_hold(HttpRequest *req);
void http_request_release(HttpRequest *req);

/* Adds a header to the reply (e.g. Location); before replying. */
int http_request_add_header(HttpRequest *req, const char *name, const char *value);

/* Replies. Each returns 0, -EALREADY if the request was already answered, -ECONNRESET if the
 * client is gone (the request was cancelled), or -ENOMEM. */
int http_request_reply(HttpRequest *req, unsigned status, const char *content_type, const void *body, size_t size);
/* The body as compact JSON and a newline; body is not stolen. */
int http_request_reply_json(HttpRequest *req, unsigned status, json_t *body);
/* An error body {"reason", "message"} with the reason's status; format NULL: the generic text. */
int http_request_reply_error(HttpRequest *req, ApiError error, const char *format, ...) _printf_(3, 4);
/* The same for an errno, positive or negative, through api_error_from_errno(). */
int http_request_reply_errno(HttpRequest *req, int error, const char *format, ...) _printf_(3, 4);

/* Starts a long-lived response: chunked, HTTP_STREAM_CONTENT_TYPE, one JSON value per line,
 * each line sent as soon as the connection can take it. Then http_request_stream_json() as
 * often as needed, and http_request_stream_end() (or a cancel callback) to finish. */
int http_request_reply_stream(HttpRequest *req, unsigned status);
/* Queues one line. -ENOBUFS when the client reads too slowly and more than stream_buffer_max
 * bytes wait: the stream is cut and the cancel callback follows. -ECONNRESET if it is gone. */
int http_request_stream_json(HttpRequest *req, json_t *line);
/* Ends the stream once the queued lines are out. */
int http_request_stream_end(HttpRequest *req);
