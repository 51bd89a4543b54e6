/* The exporter's data stream listener: TLS, the request line, the token, then serial, control or storage */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "daemon-util.h"
#include "log.h"
#include "stream-internal.h"
#include "tls.h"

/* The handshake and the request line must come within this; a client that opens a connection and
 * says nothing holds nothing for long. */
#define STREAM_REQUEST_TIMEOUT_USEC (10 * USEC_PER_SEC)

struct StreamServer {
        sd_event *event;
        Exporter *exporter;
        char *exporter_name;
        StreamServerHooks hooks;
        void *userdata;

        TlsIdentity *identity;
        SSL_CTX *ctx;
        int fd;
        sd_event_source *listen_source;
        char address[SOCKET_ADDRESS_MAX];

        Stream *streams;
        size_t n_streams;
};

static void stream_unlink(Stream *st) {
        StreamServer *s = st->server;

        for (Stream **link = &s->streams; *link; link = &(*link)->next)
                if (*link == st) {
                        *link = st->next;
                        s->n_streams--;
                        return;
                }
}

void stream_free(Stream *st) {
        if (!st)
                return;
        stream_unlink(st);
        if (st->listening)
                dut_remove_listener(st->dut, st);
        if (st->opening)
                dut_cancel_storage_open(st->dut, st);
        stream_control_detach_ops(st);
        if (st->worker) {
                /* Only when the server goes away: the thread is cut and joined here. */
                st->worker = storage_worker_free(st->worker);
                dut_close_storage_session(st->dut, st->writable);
        }
        tls_conn_free(st->conn);
        free(st->buf);
        free(st->dut_name);
        free(st->lease);
        free(st->verbs);
        free(st);
}

int stream_send_json(Stream *st, json_t *v) {
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
        return tls_conn_write(st->conn, line, (size_t) n);
}

void stream_refuse(Stream *st, ApiError e, const char *message, const char *detail) {
        log_info("Stream from %s refused: %s: %s", st->peer, api_error_to_string(e), message);
        (void) stream_send_json(st, api_error_to_json(e, message, detail));
        /* The client reads the answer, then the close. */
        (void) tls_conn_set_reading(st->conn, false);
        (void) tls_conn_shutdown(st->conn);
        st->kind = _STREAM_KIND_INVALID;
}

static void stream_on_closed(TlsConn *c, int error, void *userdata) {
        Stream *st = userdata;

        if (error < 0 && error != -ECONNRESET)
                log_debug_errno(error, "Stream from %s ended: %m", st->peer);
        else
                log_debug("Stream from %s closed", st->peer);
        stream_free(st);
}

static void stream_on_serial_output(Dut *d, const void *data, size_t n, void *userdata) {
        Stream *st = userdata;

        if (tls_conn_get_queued(st->conn) + n > STREAM_SERIAL_QUEUE_MAX) {
                if (!st->dropping)
                        log_dut_prefix(LOG_WARNING, 0, dut_get_name(d),
                                       "Serial stream to %s does not keep up, dropping console output", st->peer);
                st->dropping = true;
                st->n_dropped += n;
                return;
        }
        st->dropping = false;
        (void) tls_conn_write(st->conn, data, n);
}

static void stream_control_feed(Stream *st, const uint8_t *data, size_t n) {
        while (n > 0) {
                const uint8_t *nl = memchr(data, '\n', n);
                size_t k = nl ? (size_t) (nl - data) : n;

                if (st->buf_len + k > STREAM_CONTROL_LINE_MAX) {
                        log_info("Control stream from %s sent a line longer than %u bytes, closing it", st->peer,
                                 STREAM_CONTROL_LINE_MAX);
                        (void) tls_conn_shutdown(st->conn);
                        st->kind = _STREAM_KIND_INVALID;
                        return;
                }
                if (!nl) {
                        char *b = realloc(st->buf, st->buf_len + k + 1);

                        if (!b) {
                                (void) tls_conn_shutdown(st->conn);
                                return;
                        }
                        st->buf = b;
                        memcpy(st->buf + st->buf_len, data, k);
                        st->buf_len += k;
                        return;
                }
                if (st->buf_len > 0) {
                        char *b = realloc(st->buf, st->buf_len + k + 1);

                        if (!b) {
                                (void) tls_conn_shutdown(st->conn);
                                return;
                        }
                        st->buf = b;
                        memcpy(st->buf + st->buf_len, data, k);
                        st->buf_len += k;
                        stream_control_line(st, st->buf, st->buf_len);
                        st->buf_len = 0;
                } else
                        stream_control_line(st, (const char *) data, k);
                if (st->kind != STREAM_CONTROL)
                        return;
                data += k + 1;
                n -= k + 1;
        }
}

static void stream_on_worker_done(StorageWorker *w, void *userdata) {
        Stream *st = userdata;

        st->worker = storage_worker_free(st->worker);
        dut_close_storage_session(st->dut, st->writable);
        log_dut_prefix(LOG_INFO, 0, st->dut_name, "Storage stream from %s closed", st->peer);
        stream_free(st);
}

/* The DUT's storage is open: the session moves to a worker thread, which answers the request. */
static void stream_storage_start(Stream *st, int storage_fd, uint64_t size) {
        SSL *ssl = NULL;
        int fd = -EBADF, r;

        r = tls_conn_detach(st->conn, &ssl, &fd);
        if (r < 0) {
                safe_close(storage_fd);
                dut_close_storage_session(st->dut, st->writable);
                log_dut_prefix(LOG_ERR, r, st->dut_name, "Failed to hand the storage stream to a worker: %m");
                return stream_free(st);
        }
        r = storage_worker_start(st->server->event, ssl, fd, storage_fd, size, st->writable, st->buf,
                                 st->buf_len, stream_on_worker_done, st, &st->worker);
        st->buf_len = 0;
        if (r < 0) {
                dut_close_storage_session(st->dut, st->writable);
                log_dut_prefix(LOG_ERR, r, st->dut_name, "Failed to start a storage worker: %m");
                return stream_free(st);
        }
        log_dut_prefix(LOG_INFO, 0, st->dut_name, "Storage stream from %s opened for %s", st->peer,
                       st->writable ? "writing" : "reading");
}

static void stream_storage_refuse(Stream *st, int r) {
        PowerState state = POWER_OFF;
        char *message = NULL;

        if (r == -EBUSY && dut_get_power(st->dut, &state) >= 0 && state != POWER_OFF)
                (void) asprintf(&message, "DUT %s is powered on; power it off before writing its storage",
                                st->dut_name);
        else if (r == -EBUSY)
                (void) asprintf(&message, "The storage of DUT %s is busy (a power action is under way, or the "
                                "storage is open elsewhere)", st->dut_name);
        else if (r == -EOPNOTSUPP)
                (void) asprintf(&message, "DUT %s has no storage", st->dut_name);
        else
                (void) asprintf(&message, "Failed to open the storage of DUT %s: %s", st->dut_name, strerror(-r));
        stream_refuse(st, api_error_from_errno(r), message ? message : "Failed to open the storage", NULL);
        free(message);
}

static void stream_on_storage_opened(Dut *d, int r, int fd, uint64_t size, void *userdata) {
        Stream *st = userdata;

        st->opening = false;
        if (r < 0)
                return stream_storage_refuse(st, r);
        stream_storage_start(st, fd, size);
}

static void stream_accept_request(Stream *st, const StreamRequest *req, const TokenClaims *claims) {
        const uint8_t *rest = (const uint8_t *) st->buf;
        size_t n_rest = st->buf_len;
        int fd = -EBADF, r;
        uint64_t size = 0;

        st->dut_name = strdup(req->dut);
        st->lease = strdup(claims->lease);
        st->verbs = claims->verbs ? strdup(claims->verbs) : strdup("");
        if (!st->dut_name || !st->lease || !st->verbs)
                return stream_refuse(st, API_ERROR_INTERNAL, "Out of memory", NULL);
        st->writable = req->writable;
        st->kind = req->kind;
        (void) tls_conn_set_timeout(st->conn, 0);

        switch (req->kind) {
        case STREAM_SERIAL:
                if (!(dut_get_classes(st->dut) & (1U << DRIVER_CLASS_SERIAL)))
                        return stream_refuse(st, API_ERROR_NOT_SUPPORTED, "The DUT has no serial console", NULL);
                r = dut_add_listener(st->dut, stream_on_serial_output, NULL, st);
                if (r < 0)
                        return stream_refuse(st, API_ERROR_INTERNAL, "Out of memory", NULL);
                st->listening = true;
                log_dut_prefix(LOG_INFO, 0, st->dut_name, "Serial stream from %s opened (lease %s)", st->peer,
                               st->lease);
                (void) stream_send_json(st, json_pack("{sb}", "ok", 1));
                st->buf_len = 0;
                if (n_rest > 0)
                        (void) dut_write_serial(st->dut, rest, n_rest);
                return;

        case STREAM_CONTROL:
                r = dut_add_listener(st->dut, NULL, stream_control_power_changed, st);
                if (r < 0)
                        return stream_refuse(st, API_ERROR_INTERNAL, "Out of memory", NULL);
                st->listening = true;
                log_dut_prefix(LOG_INFO, 0, st->dut_name, "Control stream from %s opened (lease %s)", st->peer,
                               st->lease);
                (void) stream_send_json(st, json_pack("{sb}", "ok", 1));
                if (n_rest > 0) {
                        _cleanup_free_ uint8_t *copy = malloc(n_rest);

                        st->buf_len = 0;
                        if (!copy)
                                return stream_refuse(st, API_ERROR_INTERNAL, "Out of memory", NULL);
                        memcpy(copy, rest, n_rest);
                        stream_control_feed(st, copy, n_rest);
                } else
                        st->buf_len = 0;
                return;

        case STREAM_STORAGE:
                /* Nothing is read until the worker has the session. */
                (void) tls_conn_set_reading(st->conn, false);
                r = dut_open_storage_session(st->dut, st->writable, stream_on_storage_opened, st, &fd, &size);
                if (r < 0)
                        return stream_storage_refuse(st, r);
                if (r == 0) {
                        st->opening = true; /* a mux switches the card to the host first */
                        return;
                }
                return stream_storage_start(st, fd, size);

        default:
                return stream_refuse(st, API_ERROR_BAD_REQUEST, "Unknown stream", NULL);
        }
}

static void stream_on_request_line(Stream *st, const char *line, size_t n) {
        StreamServer *s = st->server;
        _cleanup_(stream_request_done) StreamRequest req = { .kind = _STREAM_KIND_INVALID };
        _cleanup_(token_claims_freep) TokenClaims *claims = NULL;
        _cleanup_free_ char *message = NULL, *detail = NULL;
        ApiError e = API_ERROR_INTERNAL;
        StreamCheck check;
        int r;

        r = stream_request_parse(line, n, &req, &message);
        if (r < 0)
                return stream_refuse(st, r == -EBADMSG ? API_ERROR_MALFORMED_JSON :
                                     r == -ENOMEM ? API_ERROR_INTERNAL : API_ERROR_BAD_REQUEST,
                                     message ? message : "Out of memory", NULL);

        st->dut = exporter_find_dut(s->exporter, req.dut);
        check = (StreamCheck) {
                .keyring = s->hooks.keyring ? s->hooks.keyring(s->userdata) : NULL,
                .issuer = s->hooks.issuer ? s->hooks.issuer(s->userdata) : NULL,
                .exporter_name = s->exporter_name,
                .dut_exists = st->dut,
                .lease = st->dut && s->hooks.lease_of ? s->hooks.lease_of(req.dut, s->userdata) : NULL,
                .now_usec = now_usec(CLOCK_REALTIME),
        };
        r = stream_request_check(&req, &check, &claims, &e, &message, &detail);
        if (r < 0)
                return stream_refuse(st, r == -EACCES ? e : API_ERROR_INTERNAL, message ? message : "Out of memory",
                                     detail);

        stream_accept_request(st, &req, claims);
}

static void stream_on_data(TlsConn *c, const void *data, size_t n, void *userdata) {
        Stream *st = userdata;
        const uint8_t *nl;
        char *b;

        switch (st->kind) {
        case STREAM_SERIAL:
                (void) dut_write_serial(st->dut, data, n);
                return;
        case STREAM_CONTROL:
                return stream_control_feed(st, data, n);
        case STREAM_STORAGE:
                /* Reading is off until the worker takes over; keep what came early for it. */
                break;
        default:
                if (st->judged)
                        return; /* refused: the answer is on its way, ignore the rest */
                break;
        }

        b = realloc(st->buf, st->buf_len + n + 1);
        if (!b)
                return stream_refuse(st, API_ERROR_INTERNAL, "Out of memory", NULL);
        st->buf = b;
        memcpy(st->buf + st->buf_len, data, n);
        st->buf_len += n;
        if (st->kind == STREAM_STORAGE)
                return;

        nl = memchr(st->buf, '\n', st->buf_len);
        if (!nl) {
                if (st->buf_len > STREAM_REQUEST_MAX)
                        return stream_refuse(st, API_ERROR_PAYLOAD_TOO_LARGE, "The request line is too long", NULL);
                return;
        }
        {
                size_t len = (size_t) (nl - (const uint8_t *) st->buf);
                _cleanup_free_ char *line = strndup(st->buf, len);

                if (!line)
                        return stream_refuse(st, API_ERROR_INTERNAL, "Out of memory", NULL);
                /* What follows the line stays in buf for the stream. */
                memmove(st->buf, st->buf + len + 1, st->buf_len - len - 1);
                st->buf_len -= len + 1;
                st->judged = true;
                stream_on_request_line(st, line, len);
        }
}

static const TlsConnOps stream_conn_ops = {
        .data = stream_on_data,
        .closed = stream_on_closed,
};

static int stream_server_on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        StreamServer *s = userdata;
        char peer[SOCKET_ADDRESS_MAX];
        Stream *st;
        int cfd, r;

        cfd = socket_accept(fd, peer);
        if (cfd < 0) {
                if (cfd != -EAGAIN && cfd != -EINTR && cfd != -ECONNABORTED)
                        log_warning_errno(cfd, "Failed to accept a stream connection: %m");
                return 0;
        }

        st = calloc(1, sizeof *st);
        if (!st) {
                safe_close(cfd);
                return log_oom(), 0;
        }
        st->server = s;
        st->kind = _STREAM_KIND_INVALID;
        memcpy(st->peer, peer, sizeof peer);

        r = tls_conn_accept(s->event, s->ctx, cfd, STREAM_REQUEST_TIMEOUT_USEC, &stream_conn_ops, st, &st->conn);
        if (r < 0) {
                log_warning_errno(r, "Failed to set up a stream connection from %s: %m", st->peer);
                free(st);
                return 0;
        }
        st->next = s->streams;
        s->streams = st;
        s->n_streams++;
        log_debug("Stream connection from %s", st->peer);
        return 0;
}

int stream_server_adopt(StreamServer *s, TlsConn *conn, const char *peer) {
        Stream *st;
        int r;

        assert(s && conn);

        st = calloc(1, sizeof *st);
        if (!st) {
                tls_conn_free(conn);
                return -ENOMEM;
        }
        st->server = s;
        st->kind = _STREAM_KIND_INVALID;
        st->conn = conn;
        (void) snprintf(st->peer, sizeof st->peer, "%s", peer ?: tls_conn_get_peer(conn));
        tls_conn_set_userdata(conn, &stream_conn_ops, st);
        r = tls_conn_set_timeout(conn, STREAM_REQUEST_TIMEOUT_USEC);
        if (r < 0) {
                stream_free(st); /* not linked yet: unlinking finds nothing */
                return r;
        }
        st->next = s->streams;
        s->streams = st;
        s->n_streams++;
        log_debug("Stream connection from %s", st->peer);
        return 0;
}

int stream_server_new(sd_event *event, Exporter *exporter, const char *exporter_name, const char *listen_address,
                      const StreamServerHooks *hooks, void *userdata, StreamServer **ret) {
        _cleanup_(stream_server_freep) StreamServer *s = NULL;
        struct sockaddr_storage ss;
        socklen_t len;
        int r;

        assert(event && exporter && exporter_name && hooks && ret);

        s = calloc(1, sizeof *s);
        if (!s)
                return log_oom();
        s->event = sd_event_ref(event);
        s->exporter = exporter;
        s->hooks = *hooks;
        s->userdata = userdata;
        s->fd = -EBADF;
        s->exporter_name = strdup(exporter_name);
        if (!s->exporter_name)
                return log_oom();

        r = socket_address_parse(listen_address, true, &ss, &len);
        if (r < 0)
                return log_error_errno(r, "Invalid stream listen address '%s': expected IP:PORT, [IPv6]:PORT or :PORT",
                                       strna(listen_address));

        r = tls_identity_new(exporter_name, &s->identity);
        if (r < 0)
                return log_error_errno(r, "Failed to make the stream certificate: %m");
        r = tls_server_ctx_new(s->identity, &s->ctx);
        if (r < 0)
                return log_error_errno(r, "Failed to set up TLS for streams: %m");

        s->fd = socket_listen(&ss, len, &ss);
        if (s->fd < 0)
                return log_error_errno(s->fd, "Failed to listen for streams on %s: %m", listen_address);
        socket_address_format((struct sockaddr *) &ss, s->address);

        r = sd_event_add_io(event, &s->listen_source, s->fd, EPOLLIN, stream_server_on_accept, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the stream listener: %m");
        (void) sd_event_source_set_description(s->listen_source, "stream-listener");

        log_info("Serving data streams on %s, certificate %s", s->address, tls_identity_get_fingerprint(s->identity));
        *ret = TAKE_PTR(s);
        return 0;
}

StreamServer *stream_server_free(StreamServer *s) {
        if (!s)
                return NULL;
        while (s->streams)
                stream_free(s->streams);
        sd_event_source_disable_unref(s->listen_source);
        safe_close(s->fd);
        SSL_CTX_free(s->ctx);
        tls_identity_free(s->identity);
        free(s->exporter_name);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

const char *stream_server_get_address(const StreamServer *s) {
        return s->address;
}

const char *stream_server_get_fingerprint(const StreamServer *s) {
        return tls_identity_get_fingerprint(s->identity);
}

void stream_server_cut_lease(StreamServer *s, const char *dut) {
        unsigned n = 0;

        for (Stream *st = s->streams; st; st = st->next) {
                if (!st->dut || !streq(dut_get_name(st->dut), dut))
                        continue;
                n++;
                if (st->worker)
                        storage_worker_cut(st->worker); /* its end frees the stream */
                else if (st->conn && st->kind >= 0) {
                        st->kind = _STREAM_KIND_INVALID;
                        (void) tls_conn_set_reading(st->conn, false);
                        (void) tls_conn_shutdown(st->conn);
                }
        }
        if (n > 0)
                log_dut_prefix(LOG_INFO, 0, dut, "Lease ended, closing %u stream%s", n, n == 1 ? "" : "s");
}

void stream_server_drop_dut(StreamServer *s, Dut *d) {
        for (Stream *st = s->streams, *next; st; st = next) {
                next = st->next;
                /* Right now, not on the next iteration: the DUT is freed after this returns. A
                 * storage worker in the middle of a request is waited for. */
                if (st->dut == d)
                        stream_free(st);
        }
}

size_t stream_server_n_streams(const StreamServer *s) {
        return s->n_streams;
}
