/* A non-blocking TLS connection on sd-event: connect, handshake, reads, a write queue, close */
#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>

#include "parse-util.h"
#include "tls-conn.h"

/* Records are at most 16 KiB. Reads per wakeup are bounded so that one fast stream cannot starve
 * the rest of the loop; the remainder is picked up on the next iteration. */
#define READ_CHUNK (16U * 1024U)
#define READS_PER_WAKEUP 64

typedef enum TlsConnState {
        TLS_CONN_CONNECTING,
        TLS_CONN_HANDSHAKE,
        TLS_CONN_READY,
        TLS_CONN_SHUTDOWN, /* flushing, then close_notify */
        TLS_CONN_DEAD,
} TlsConnState;

struct TlsConn {
        unsigned n_ref;
        sd_event *event;
        const TlsConnOps *ops;
        void *userdata;

        TlsConnState state;
        int fd;
        SSL *ssl;
        sd_event_source *io, *timer, *defer;
        char *fingerprint; /* pinned, for a client */
        char peer_fingerprint[TLS_FINGERPRINT_LEN + 1];
        const char *verify_error; /* a CA-verified client: why the certificate was refused */
        char peer[SOCKET_ADDRESS_MAX];

        uint8_t *wbuf;
        size_t wstart, wend, walloc;
        bool write_wants_read, read_wants_write, write_blocked;
        bool reading;
        int pending_error; /* to report from the defer source, never from within a call */
};

static void tls_conn_unref(TlsConn *c) {
        assert(c->n_ref > 0);
        if (--c->n_ref > 0)
                return;
        free(c->wbuf);
        free(c->fingerprint);
        free(c);
}

static void tls_conn_release(TlsConn *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        c->defer = sd_event_source_disable_unref(c->defer);
        if (c->ssl) {
                SSL_free(c->ssl);
                c->ssl = NULL;
        }
        c->fd = safe_close(c->fd);
        c->event = sd_event_unref(c->event);
        c->state = TLS_CONN_DEAD;
}

TlsConn *tls_conn_free(TlsConn *c) {
        if (!c)
                return NULL;
        tls_conn_release(c);
        tls_conn_unref(c);
        return NULL;
}

/* Reports the end once; the owner usually frees the connection in its callback. */
static void tls_conn_fail(TlsConn *c, int error) {
        if (c->state == TLS_CONN_DEAD)
                return;
        tls_conn_release(c);
        ERR_clear_error();
        if (c->ops && c->ops->closed)
                c->ops->closed(c, error, c->userdata);
}

int socket_address_parse(const char *s, bool listen, struct sockaddr_storage *ret, socklen_t *ret_len) {
        struct addrinfo hints = {
                .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (listen ? AI_PASSIVE : 0),
                .ai_socktype = SOCK_STREAM,
        };
        _cleanup_free_ char *host = NULL;
        struct addrinfo *ai = NULL;
        const char *port;
        uint64_t p;
        int r;

        if (!s)
                return -EINVAL;
        if (s[0] == '[') {
                const char *end = strchr(s, ']');

                if (!end || end[1] != ':' || end == s + 1)
                        return -EINVAL;
                host = strndup(s + 1, (size_t) (end - s - 1));
                port = end + 2;
                hints.ai_family = AF_INET6;
        } else {
                const char *colon = strchr(s, ':');

                /* An IPv6 address needs brackets. */
                if (!colon || strchr(colon + 1, ':'))
                        return -EINVAL;
                if (colon > s)
                        host = strndup(s, (size_t) (colon - s));
                else if (!listen)
                        return -EINVAL;
                port = colon + 1;
                hints.ai_family = host ? AF_INET : AF_INET6;
        }
        if ((s[0] == '[' || s[0] != ':') && !host)
                return -ENOMEM;
        if (!*port || (port[0] == '0' && port[1]) || parse_uint64(port, &p) < 0 || p > 65535 || (!listen && p == 0))
                return -EINVAL;

        r = getaddrinfo(host, port, &hints, &ai);
        if (r != 0)
                return r == EAI_MEMORY ? -ENOMEM : -EINVAL;
        if (ai->ai_addrlen > sizeof *ret) {
                freeaddrinfo(ai);
                return -EINVAL;
        }
        memset(ret, 0, sizeof *ret);
        memcpy(ret, ai->ai_addr, ai->ai_addrlen);
        *ret_len = ai->ai_addrlen;
        freeaddrinfo(ai);
        return 0;
}

int socket_listen(const struct sockaddr_storage *ss, socklen_t len, struct sockaddr_storage *ret_bound) {
        _cleanup_close_ int fd = -EBADF;
        socklen_t bound_len = sizeof *ret_bound;
        int one = 1;

        fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ss->ss_family == AF_INET6) {
                int zero = 0;

                /* ":PORT" means both families. */
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        }
        if (bind(fd, (const struct sockaddr *) ss, len) < 0 || listen(fd, SOMAXCONN) < 0)
                return -errno;
        if (getsockname(fd, (struct sockaddr *) ret_bound, &bound_len) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int socket_accept(int fd, char *peer) {
        struct sockaddr_storage ss = {};
        socklen_t len = sizeof ss;
        int cfd;

        cfd = accept4(fd, (struct sockaddr *) &ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0)
                return -errno;
        socket_address_format((struct sockaddr *) &ss, peer);
        return cfd;
}

void socket_address_format(const struct sockaddr *sa, char *ret) {
        char host[INET6_ADDRSTRLEN] = "?";

        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;

                if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
                        (void) inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
                        snprintf(ret, SOCKET_ADDRESS_MAX, "%s:%u", host, ntohs(in6->sin6_port));
                } else {
                        (void) inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
                        snprintf(ret, SOCKET_ADDRESS_MAX, "[%s]:%u", host, ntohs(in6->sin6_port));
                }
        } else if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;

                (void) inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
                snprintf(ret, SOCKET_ADDRESS_MAX, "%s:%u", host, ntohs(in->sin_port));
        } else
                snprintf(ret, SOCKET_ADDRESS_MAX, "?");
}

int stream_socket_setup(int fd) {
        int one = 1, idle = 10, interval = 5, count = 3;
        unsigned user_timeout = 30000;

        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) < 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) < 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) < 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout) < 0)
                return -errno;
        return 0;
}

static void tls_conn_update_events(TlsConn *c) {
        uint32_t events = 0;

        if (!c->io)
                return;
        switch (c->state) {
        case TLS_CONN_CONNECTING:
                events = EPOLLOUT;
                break;
        case TLS_CONN_HANDSHAKE:
                events = c->write_blocked ? EPOLLOUT : EPOLLIN;
                break;
        case TLS_CONN_READY:
        case TLS_CONN_SHUTDOWN:
                if (c->reading || c->write_wants_read)
                        events |= EPOLLIN;
                if ((c->write_blocked && c->wend > c->wstart) || c->read_wants_write ||
                    (c->state == TLS_CONN_SHUTDOWN && c->write_blocked))
                        events |= EPOLLOUT;
                break;
        case TLS_CONN_DEAD:
                return;
        }
        (void) sd_event_source_set_io_events(c->io, events);
}

/* The error of a failed SSL call, as errno. */
static int tls_conn_ssl_error(TlsConn *c, int ret, int err) {
        unsigned long e;

        switch (err) {
        case SSL_ERROR_ZERO_RETURN:
                return 0;
        case SSL_ERROR_SYSCALL:
                if (ret < 0 && errno > 0)
                        return -errno;
                return -ECONNRESET; /* EOF without close_notify */
        case SSL_ERROR_SSL:
                e = ERR_peek_last_error();
                if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
                        return -ECONNRESET;
                if (c->ssl && tls_client_pin_mismatch(c->ssl, c->peer_fingerprint))
                        return -EPERM;
                if (c->ssl && !c->fingerprint && !SSL_is_server(c->ssl)) {
                        long v = SSL_get_verify_result(c->ssl);

                        if (v != X509_V_OK) {
                                c->verify_error = X509_verify_cert_error_string(v);
                                return -EPERM;
                        }
                }
                return -EPROTO;
        default:
                return -EPROTO;
        }
}

static void tls_conn_kick(TlsConn *c) {
        if (c->defer)
                (void) sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
}

/* Sends what the queue holds, as far as the socket takes it. Returns 0, or a negative errno. */
static int tls_conn_flush(TlsConn *c) {
        c->write_blocked = false;
        c->write_wants_read = false;
        while (c->wend > c->wstart) {
                size_t n = MIN(c->wend - c->wstart, (size_t) INT_MAX);
                int k, err;

                ERR_clear_error();
                k = SSL_write(c->ssl, c->wbuf + c->wstart, (int) n);
                if (k > 0) {
                        c->wstart += (size_t) k;
                        continue;
                }
                err = SSL_get_error(c->ssl, k);
                if (err == SSL_ERROR_WANT_WRITE) {
                        c->write_blocked = true;
                        return 0;
                }
                if (err == SSL_ERROR_WANT_READ) {
                        c->write_wants_read = true;
                        c->write_blocked = true;
                        return 0;
                }
                return tls_conn_ssl_error(c, k, err) ?: -ECONNRESET;
        }
        c->wstart = c->wend = 0;
        return 0;
}

/* Returns 1 when the connection went away under a callback (stop touching it), 0, or an errno. */
static int tls_conn_do_read(TlsConn *c) {
        uint8_t buf[READ_CHUNK];

        c->read_wants_write = false;
        for (unsigned i = 0; c->reading && c->state == TLS_CONN_READY; i++) {
                int k, err;

                if (i >= READS_PER_WAKEUP) {
                        /* Decrypted bytes inside OpenSSL wake nobody: come back for them. */
                        if (SSL_has_pending(c->ssl))
                                tls_conn_kick(c);
                        return 0;
                }
                ERR_clear_error();
                k = SSL_read(c->ssl, buf, sizeof buf);
                if (k > 0) {
                        if (c->ops->data)
                                c->ops->data(c, buf, (size_t) k, c->userdata);
                        if (c->state == TLS_CONN_DEAD)
                                return 1;
                        continue;
                }
                err = SSL_get_error(c->ssl, k);
                if (err == SSL_ERROR_WANT_READ)
                        return 0;
                if (err == SSL_ERROR_WANT_WRITE) {
                        c->read_wants_write = true;
                        return 0;
                }
                return tls_conn_ssl_error(c, k, err) ?: -ESHUTDOWN; /* -ESHUTDOWN: clean close */
        }
        return 0;
}

static void tls_conn_process(TlsConn *c);

static int tls_conn_handshake(TlsConn *c) {
        int k, err;

        ERR_clear_error();
        k = SSL_do_handshake(c->ssl);
        if (k == 1) {
                c->state = TLS_CONN_READY;
                c->write_blocked = false;
                return 1;
        }
        err = SSL_get_error(c->ssl, k);
        if (err == SSL_ERROR_WANT_READ) {
                c->write_blocked = false;
                return 0;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
                c->write_blocked = true;
                return 0;
        }
        k = tls_conn_ssl_error(c, k, err);
        return k < 0 ? k : -ECONNRESET;
}

/* Moves the connection along as far as it goes now. May report the end (and so lose c). */
static void tls_conn_process(TlsConn *c) {
        int r;

        c->n_ref++;

        if (c->state == TLS_CONN_CONNECTING) {
                int error = 0;
                socklen_t len = sizeof error;

                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error != 0) {
                        tls_conn_fail(c, -error);
                        goto finish;
                }
                c->state = TLS_CONN_HANDSHAKE;
        }

        if (c->state == TLS_CONN_HANDSHAKE) {
                r = tls_conn_handshake(c);
                if (r < 0) {
                        tls_conn_fail(c, r);
                        goto finish;
                }
                if (r == 0)
                        goto finish;
                if (c->ops->ready) {
                        c->ops->ready(c, c->userdata);
                        if (c->state == TLS_CONN_DEAD)
                                goto finish;
                }
        }

        if (c->pending_error != 0) {
                tls_conn_fail(c, c->pending_error);
                goto finish;
        }

        if (c->state == TLS_CONN_READY || c->state == TLS_CONN_SHUTDOWN) {
                bool had = c->wend > c->wstart;

                r = tls_conn_flush(c);
                if (r < 0) {
                        tls_conn_fail(c, r);
                        goto finish;
                }
                if (had && c->wend == c->wstart && c->ops->drained) {
                        c->ops->drained(c, c->userdata);
                        if (c->state == TLS_CONN_DEAD)
                                goto finish;
                }
        }

        if (c->state == TLS_CONN_READY) {
                r = tls_conn_do_read(c);
                if (r > 0)
                        goto finish;
                if (r == -ESHUTDOWN) {
                        tls_conn_fail(c, 0);
                        goto finish;
                }
                if (r < 0) {
                        tls_conn_fail(c, r);
                        goto finish;
                }
        }

        if (c->state == TLS_CONN_SHUTDOWN && c->wend == c->wstart) {
                int k;

                ERR_clear_error();
                k = SSL_shutdown(c->ssl);
                if (k < 0 && SSL_get_error(c->ssl, k) == SSL_ERROR_WANT_WRITE) {
                        c->write_blocked = true;
                        goto update;
                }
                /* Sent (or the peer is gone already): we do not wait for the peer's close_notify. */
                tls_conn_fail(c, 0);
                goto finish;
        }

update:
        tls_conn_update_events(c);
finish:
        tls_conn_unref(c);
}

static int tls_conn_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        TlsConn *c = userdata;

        /* A hang-up is reported whatever the mask says: while reading is off nothing would pick
         * it up, and the loop would spin. The peer is gone; so is the connection. */
        if ((revents & (EPOLLHUP | EPOLLERR)) && c->state == TLS_CONN_READY && !c->reading) {
                int error = 0;
                socklen_t len = sizeof error;

                (void) getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
                tls_conn_fail(c, error > 0 ? -error : -ECONNRESET);
                return 0;
        }
        tls_conn_process(c);
        return 0;
}

static int tls_conn_on_defer(sd_event_source *s, void *userdata) {
        tls_conn_process(userdata);
        return 0;
}

static int tls_conn_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        tls_conn_fail(userdata, -ETIMEDOUT);
        return 0;
}

int tls_conn_set_timeout(TlsConn *c, uint64_t usec) {
        int r;

        if (c->state == TLS_CONN_DEAD)
                return -ENOTCONN;
        if (usec == 0) {
                c->timer = sd_event_source_disable_unref(c->timer);
                return 0;
        }
        if (c->timer) {
                uint64_t now;

                r = sd_event_now(c->event, CLOCK_MONOTONIC, &now);
                if (r < 0)
                        return r;
                r = sd_event_source_set_time(c->timer, now + usec);
                if (r < 0)
                        return r;
                return sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        }
        return sd_event_add_time_relative(c->event, &c->timer, CLOCK_MONOTONIC, usec, 0, tls_conn_on_timer, c);
}

static int tls_conn_new(sd_event *event, SSL_CTX *ctx, int fd, bool client, uint64_t timeout_usec,
                        const TlsConnOps *ops, void *userdata, TlsConn **ret) {
        TlsConn *c;
        int r;

        assert(ops);
        assert(ops->closed);

        c = calloc(1, sizeof *c);
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        *c = (TlsConn) {
                .n_ref = 1,
                .event = sd_event_ref(event),
                .ops = ops,
                .userdata = userdata,
                .fd = fd,
                .reading = true,
                .state = client ? TLS_CONN_CONNECTING : TLS_CONN_HANDSHAKE,
        };

        c->ssl = SSL_new(ctx);
        if (!c->ssl) {
                r = -ENOMEM;
                goto fail;
        }
        if (SSL_set_fd(c->ssl, fd) != 1) {
                r = -EIO;
                goto fail;
        }
        if (client)
                SSL_set_connect_state(c->ssl);
        else
                SSL_set_accept_state(c->ssl);

        r = sd_event_add_io(event, &c->io, fd, client ? EPOLLOUT : EPOLLIN, tls_conn_on_io, c);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(c->io, "tls-conn");
        r = sd_event_add_defer(event, &c->defer, tls_conn_on_defer, c);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
        if (timeout_usec > 0) {
                r = tls_conn_set_timeout(c, timeout_usec);
                if (r < 0)
                        goto fail;
        }
        *ret = c;
        return 0;

fail:
        ERR_clear_error();
        tls_conn_free(c);
        return r;
}

int tls_conn_connect(sd_event *event, SSL_CTX *ctx, const char *address, const char *fingerprint,
                     uint64_t timeout_usec, const TlsConnOps *ops, void *userdata, TlsConn **ret) {
        struct sockaddr_storage ss;
        socklen_t len;
        TlsConn *c;
        int fd, r;

        r = socket_address_parse(address, false, &ss, &len);
        if (r < 0)
                return r;
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
        if (fd < 0)
                return -errno;
        r = stream_socket_setup(fd);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        if (connect(fd, (struct sockaddr *) &ss, len) < 0 && errno != EINPROGRESS) {
                r = -errno;
                safe_close(fd);
                return r;
        }

        r = tls_conn_new(event, ctx, fd, true, timeout_usec, ops, userdata, &c);
        if (r < 0)
                return r;
        socket_address_format((struct sockaddr *) &ss, c->peer);
        if (fingerprint) {
                c->fingerprint = strdup(fingerprint);
                if (!c->fingerprint || tls_client_pin(c->ssl, c->fingerprint) < 0) {
                        tls_conn_free(c);
                        return -ENOMEM;
                }
        } else {
                /* Verified by the context's CAs; the certificate must also name the address dialed
                 * (an IP address: we never look names up). */
                char ip[INET6_ADDRSTRLEN];
                const void *a = ss.ss_family == AF_INET6 ? (const void *) &((struct sockaddr_in6 *) &ss)->sin6_addr
                                                         : (const void *) &((struct sockaddr_in *) &ss)->sin_addr;

                if (!inet_ntop(ss.ss_family, a, ip, sizeof ip) ||
                    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), ip) != 1) {
                        ERR_clear_error();
                        tls_conn_free(c);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

int tls_conn_accept(sd_event *event, SSL_CTX *ctx, int fd, uint64_t timeout_usec, const TlsConnOps *ops,
                    void *userdata, TlsConn **ret) {
        struct sockaddr_storage ss = {};
        socklen_t len = sizeof ss;
        TlsConn *c;
        int r;

        r = stream_socket_setup(fd);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        r = tls_conn_new(event, ctx, fd, false, timeout_usec, ops, userdata, &c);
        if (r < 0)
                return r;
        if (getpeername(fd, (struct sockaddr *) &ss, &len) >= 0)
                socket_address_format((struct sockaddr *) &ss, c->peer);
        *ret = c;
        return 0;
}

void tls_conn_set_userdata(TlsConn *c, const TlsConnOps *ops, void *userdata) {
        assert(ops && ops->closed);
        c->ops = ops;
        c->userdata = userdata;
}

int tls_conn_write(TlsConn *c, const void *data, size_t n) {
        if (c->state == TLS_CONN_DEAD || c->state == TLS_CONN_SHUTDOWN || c->pending_error != 0)
                return -ENOTCONN;
        if (n == 0)
                return 0;

        if (c->wend + n > c->walloc) {
                if (c->wstart > 0) {
                        memmove(c->wbuf, c->wbuf + c->wstart, c->wend - c->wstart);
                        c->wend -= c->wstart;
                        c->wstart = 0;
                }
                if (c->wend + n > c->walloc) {
                        size_t want = MAX(c->walloc * 2, c->wend + n);
                        uint8_t *b = realloc(c->wbuf, want);

                        if (!b)
                                return -ENOMEM;
                        c->wbuf = b;
                        c->walloc = want;
                }
        }
        memcpy(c->wbuf + c->wend, data, n);
        c->wend += n;

        /* Out at once where the socket takes it: serial keystrokes must not wait for a batch. */
        if (c->state == TLS_CONN_READY && !c->write_blocked) {
                int r = tls_conn_flush(c);

                if (r < 0) {
                        /* Reported from the loop, not from within the caller's call. */
                        c->pending_error = r;
                        tls_conn_kick(c);
                        return 0;
                }
        }
        tls_conn_update_events(c);
        return 0;
}

size_t tls_conn_get_queued(const TlsConn *c) {
        return c->wend - c->wstart;
}

int tls_conn_set_reading(TlsConn *c, bool on) {
        if (c->state == TLS_CONN_DEAD)
                return -ENOTCONN;
        if (c->reading == on)
                return 0;
        c->reading = on;
        /* Bytes OpenSSL decrypted already wake no epoll: look at them from the loop. */
        if (on)
                tls_conn_kick(c);
        tls_conn_update_events(c);
        return 0;
}

int tls_conn_shutdown(TlsConn *c) {
        if (c->state == TLS_CONN_DEAD)
                return -ENOTCONN;
        if (c->state != TLS_CONN_READY) {
                /* Nothing to say goodbye to yet. */
                c->pending_error = -ECONNABORTED;
                tls_conn_kick(c);
                return 0;
        }
        c->state = TLS_CONN_SHUTDOWN;
        tls_conn_kick(c);
        return 0;
}

int tls_conn_detach(TlsConn *c, SSL **ret_ssl, int *ret_fd) {
        int flags;

        if (c->state != TLS_CONN_READY)
                return -ENOTCONN;
        if (c->wend > c->wstart)
                return -EBUSY;
        flags = fcntl(c->fd, F_GETFL);
        if (flags < 0 || fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return -errno;
        *ret_ssl = TAKE_PTR(c->ssl);
        *ret_fd = TAKE_FD(c->fd);
        tls_conn_release(c);
        return 0;
}

bool tls_conn_is_ready(const TlsConn *c) {
        return c->state == TLS_CONN_READY;
}

const char *tls_conn_get_peer_fingerprint(const TlsConn *c) {
        return c->peer_fingerprint[0] ? c->peer_fingerprint : NULL;
}

const char *tls_conn_get_verify_error(const TlsConn *c) {
        return c->verify_error;
}

const char *tls_conn_get_peer(const TlsConn *c) {
        return c->peer[0] ? c->peer : "?";
}
