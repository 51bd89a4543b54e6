/* A DUT of another exporter: storage streams, each pumped between a local socket and TLS by a thread */
#include <assert.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "block-protocol.h"
#include "daemon-util.h"
#include "log.h"
#include "remote-internal.h"

/* An open connects a storage stream in the background (the loop never waits for the network) and
 * answers with one end of a socket pair that speaks the block protocol (docs/protocol.md): the
 * reader of that end (jumpstarter-fuse) sends requests, and a thread of ours streams them to the
 * exporter and its answers back. Several requests may be in flight (answers come in request order),
 * so the thread moves both directions at once: one SSL object cannot be read and written from two
 * threads, so it is one thread with non-blocking sockets and poll(). Bytes are forwarded as they
 * come, not a whole request at a time, so that encrypting here, decrypting on the exporter and its
 * pwrite() overlap. */
struct RemoteStorageOpen {
        Remote *remote;
        bool writable;
        StorageOpenFunc done;
        void *userdata;
        TlsConn *conn;
        RemoteAttempt attempt;
        char *buf;
        size_t buf_len;
        RemoteStorageOpen *next;
};

/* Each direction's buffer: big enough that one poll() round moves a good part of a 1 MiB request. */
#define PUMP_BUFFER_SIZE (512U * 1024U)
#define REMOTE_PUMP_SOCKET_BUFFER (4 * 1024 * 1024)

typedef struct PumpBuffer {
        uint8_t *data;
        size_t start, end;
} PumpBuffer;

struct RemotePump {
        pthread_t thread;
        SSL *ssl;
        int fd;      /* the TLS socket */
        int local;   /* our end of the socket pair */
        int stop_fd; /* an eventfd: remote_pump_free() wants the thread gone */
        PumpBuffer up, down; /* requests to the exporter, answers from it */
        /* Requests are checked as they pass: the header being read, and the payload still to skip. */
        uint8_t header[BLOCK_REQUEST_SIZE];
        size_t n_header;
        size_t skip;
        bool finished; /* set by the thread as it ends (atomic) */
        RemotePump *next;
};

static void remote_open_free(RemoteStorageOpen *o) {
        Remote *r = o->remote;

        for (RemoteStorageOpen **link = &r->opens; *link; link = &(*link)->next)
                if (*link == o) {
                        *link = o->next;
                        break;
                }
        tls_conn_free(o->conn);
        free(o->buf);
        free(o);
}

static void remote_open_finish(RemoteStorageOpen *o, int error, int fd, uint64_t size) {
        StorageOpenFunc done = o->done;
        void *userdata = o->userdata;

        remote_open_free(o);
        done(error, fd, size, userdata);
}

/* Only what speaks the protocol goes to the exporter: false at the first header that does not. */
static bool pump_check_requests(RemotePump *p, const uint8_t *data, size_t n) {
        while (n > 0) {
                BlockRequest q;
                size_t m;

                if (p->skip > 0) {
                        m = MIN(n, p->skip);
                        p->skip -= m;
                        data += m;
                        n -= m;
                        continue;
                }
                m = MIN(n, sizeof p->header - p->n_header);
                memcpy(p->header + p->n_header, data, m);
                p->n_header += m;
                data += m;
                n -= m;
                if (p->n_header < sizeof p->header)
                        break;
                p->n_header = 0;
                if (!block_request_decode(p->header, &q))
                        return false;
                if (q.op == BLOCK_OP_WRITE)
                        p->skip = q.length;
        }
        return true;
}

/* Room at the end of b, moving what is left to the front when that is little and makes more room.
 * (The SSL has SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: a write it wants repeated may come from the new
 * place.) */
static size_t pump_buffer_room(PumpBuffer *b) {
        if (b->start == b->end)
                b->start = b->end = 0;
        else if (b->start > 0 && PUMP_BUFFER_SIZE - b->end < PUMP_BUFFER_SIZE / 4 &&
                 b->end - b->start <= PUMP_BUFFER_SIZE / 8) {
                memmove(b->data, b->data + b->start, b->end - b->start);
                b->end -= b->start;
                b->start = 0;
        }
        return PUMP_BUFFER_SIZE - b->end;
}

static void pump_buffer_consume(PumpBuffer *b, size_t n) {
        b->start += n;
        if (b->start == b->end)
                b->start = b->end = 0;
}

/* What an SSL call that made no progress waits for: POLLIN or POLLOUT on the TLS socket, or -1 when
 * the connection is over (closed by the peer, or failed). */
static int pump_ssl_wants(SSL *ssl, int k) {
        switch (SSL_get_error(ssl, k)) {
        case SSL_ERROR_WANT_READ:
                return POLLIN;
        case SSL_ERROR_WANT_WRITE:
                return POLLOUT;
        default:
                return -1;
        }
}

static void *remote_pump_thread(void *userdata) {
        RemotePump *p = userdata;
        bool local_eof = false, shut_down = false;

        (void) SSL_set_mode(p->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

        for (;;) {
                short want_local, want_tls;
                bool progress;
                ssize_t k;
                int e;

                do {
                        progress = false;
                        want_local = want_tls = 0;

                        /* The local side's requests into the up buffer. */
                        if (!local_eof && pump_buffer_room(&p->up) > 0) {
                                k = recv(p->local, p->up.data + p->up.end, PUMP_BUFFER_SIZE - p->up.end,
                                         MSG_DONTWAIT);
                                if (k > 0) {
                                        if (!pump_check_requests(p, p->up.data + p->up.end, (size_t) k))
                                                goto finish;
                                        p->up.end += (size_t) k;
                                        progress = true;
                                } else if (k == 0) {
                                        /* The local side closed the storage: what it sent still goes
                                         * out, then a goodbye to the exporter, whose close_notify
                                         * comes once it did every request. */
                                        local_eof = true;
                                        progress = true;
                                } else if (errno == EAGAIN)
                                        want_local |= POLLIN;
                                else if (errno != EINTR)
                                        goto finish;
                        }

                        /* The up buffer to the exporter. */
                        if (p->up.end > p->up.start) {
                                ERR_clear_error();
                                e = SSL_write(p->ssl, p->up.data + p->up.start,
                                              (int) (p->up.end - p->up.start));
                                if (e > 0) {
                                        pump_buffer_consume(&p->up, (size_t) e);
                                        progress = true;
                                } else if ((e = pump_ssl_wants(p->ssl, e)) < 0)
                                        goto finish;
                                else
                                        want_tls |= (short) e;
                        } else if (local_eof && !shut_down) {
                                ERR_clear_error();
                                e = SSL_shutdown(p->ssl);
                                if (e >= 0) {
                                        shut_down = true;
                                        progress = true;
                                } else if ((e = pump_ssl_wants(p->ssl, e)) < 0)
                                        goto finish;
                                else
                                        want_tls |= (short) e;
                        }

                        /* The exporter's answers into the down buffer. */
                        if (pump_buffer_room(&p->down) > 0) {
                                ERR_clear_error();
                                e = SSL_read(p->ssl, p->down.data + p->down.end,
                                             (int) (PUMP_BUFFER_SIZE - p->down.end));
                                if (e > 0) {
                                        p->down.end += (size_t) e;
                                        progress = true;
                                } else if ((e = pump_ssl_wants(p->ssl, e)) < 0) {
                                        /* The exporter closed (the lease ended, or our goodbye was
                                         * answered) or the connection broke: answers that are here
                                         * still go to the local side if it takes them at once. */
                                        if (!local_eof && p->down.end > p->down.start)
                                                (void) send(p->local, p->down.data + p->down.start,
                                                            p->down.end - p->down.start,
                                                            MSG_DONTWAIT | MSG_NOSIGNAL);
                                        goto finish;
                                } else
                                        want_tls |= (short) e;
                        }

                        /* The down buffer to the local side. */
                        if (p->down.end > p->down.start) {
                                k = send(p->local, p->down.data + p->down.start, p->down.end - p->down.start,
                                         MSG_DONTWAIT | MSG_NOSIGNAL);
                                if (k > 0) {
                                        pump_buffer_consume(&p->down, (size_t) k);
                                        progress = true;
                                } else if (k < 0 && errno == EAGAIN)
                                        want_local |= POLLOUT;
                                else if (k < 0 && errno == EINTR)
                                        progress = true;
                                else if (local_eof) {
                                        /* Nobody reads the answers any more: they go nowhere. */
                                        p->down.start = p->down.end = 0;
                                        progress = true;
                                } else
                                        goto finish;
                        }
                } while (progress);

                /* A socket with nothing to wait for stays out of the poll set: its hangup would wake us
                 * in a loop. */
                struct pollfd fds[3] = {
                        { .fd = want_local ? p->local : -1, .events = want_local },
                        { .fd = want_tls ? p->fd : -1, .events = want_tls },
                        { .fd = p->stop_fd, .events = POLLIN },
                };
                if (poll(fds, ELEMENTSOF(fds), -1) < 0 && errno != EINTR)
                        goto finish;
                if (fds[2].revents != 0)
                        goto finish;
        }

finish:
        /* The local reader sees the end at once (EOF, which it reports as EIO), whatever broke. */
        (void) shutdown(p->local, SHUT_RDWR);
        ERR_clear_error();
        OPENSSL_thread_stop();
        __atomic_store_n(&p->finished, true, __ATOMIC_RELEASE);
        return NULL;
}

static void remote_pump_free(RemotePump *p) {
        uint64_t one = 1;

        /* Wakes the thread wherever it waits. */
        (void) write(p->stop_fd, &one, sizeof one);
        pthread_join(p->thread, NULL);
        SSL_free(p->ssl);
        safe_close(p->fd);
        safe_close(p->local);
        safe_close(p->stop_fd);
        free(p->up.data);
        free(p->down.data);
        free(p);
}

/* Joins the pumps that are over. */
static void remote_pumps_reap(Remote *r) {
        for (RemotePump **link = &r->pumps; *link;) {
                RemotePump *p = *link;

                if (!__atomic_load_n(&p->finished, __ATOMIC_ACQUIRE)) {
                        link = &p->next;
                        continue;
                }
                *link = p->next;
                remote_pump_free(p);
        }
}

static int remote_pump_start(Remote *r, SSL *ssl, int fd, int *ret_fd) {
        _cleanup_close_ int theirs = -EBADF;
        sigset_t all, saved;
        RemotePump *p;
        int pair[2], flags, k;

        p = calloc(1, sizeof *p);
        if (!p) {
                SSL_free(ssl);
                safe_close(fd);
                return -ENOMEM;
        }
        p->ssl = ssl;
        p->fd = fd;
        p->local = p->stop_fd = -EBADF;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
                k = -errno;
                goto fail;
        }
        p->local = pair[0];
        theirs = pair[1];
        /* A socket pair buffers ~200 KiB each way by default: a fifth of a request, so the sender and
         * the thread would take turns several times per request. Room for a few requests each way
         * lets them run side by side (best effort: without CAP_NET_ADMIN, wmem_max caps it). */
        for (size_t i = 0; i < 2; i++) {
                int size = REMOTE_PUMP_SOCKET_BUFFER;

                if (setsockopt(pair[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
                        (void) setsockopt(pair[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        }
        p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->stop_fd < 0) {
                k = -errno;
                goto fail;
        }
        /* tls_conn_detach() made the TLS socket blocking; the thread polls both sockets. */
        flags = fcntl(p->fd, F_GETFL);
        if (flags < 0 || fcntl(p->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                k = -errno;
                goto fail;
        }
        p->up.data = malloc(PUMP_BUFFER_SIZE);
        p->down.data = malloc(PUMP_BUFFER_SIZE);
        if (!p->up.data || !p->down.data) {
                k = -ENOMEM;
                goto fail;
        }

        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        k = -pthread_create(&p->thread, NULL, remote_pump_thread, p);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (k < 0)
                goto fail;
        p->next = r->pumps;
        r->pumps = p;
        *ret_fd = TAKE_FD(theirs);
        return 0;

fail:
        SSL_free(p->ssl);
        safe_close(p->fd);
        safe_close(p->local);
        safe_close(p->stop_fd);
        free(p->up.data);
        free(p->down.data);
        free(p);
        return k;
}

static const TlsConnOps remote_open_ops;

static void remote_open_on_ready(TlsConn *c, void *userdata) {
        RemoteStorageOpen *o = userdata;
        _cleanup_free_ char *token = NULL, *line = NULL;
        int k;

        k = remote_get_token(o->remote, &token);
        if (k < 0)
                return remote_open_finish(o, k, -EBADF, 0);
        remote_attempt_ready(o->remote, &o->attempt, c);
        line = remote_request_line(o->remote, token, STREAM_STORAGE, o->writable, o->attempt.routed);
        if (!line)
                return remote_open_finish(o, -ENOMEM, -EBADF, 0);
        if (tls_conn_write(c, line, strlen(line)) < 0)
                return remote_open_finish(o, -EHOSTDOWN, -EBADF, 0);
}

static void remote_open_on_data(TlsConn *c, const void *data, size_t n, void *userdata) {
        RemoteStorageOpen *o = userdata;
        Remote *r = o->remote;
        _cleanup_free_ char *message = NULL;
        json_t *answer = NULL, *size;
        const char *nl;
        SSL *ssl = NULL;
        uint64_t sz;
        int fd = -EBADF, local = -EBADF, k;
        char *b;

        b = realloc(o->buf, o->buf_len + n + 1);
        if (!b)
                return remote_open_finish(o, -ENOMEM, -EBADF, 0);
        o->buf = b;
        memcpy(o->buf + o->buf_len, data, n);
        o->buf_len += n;
        nl = memchr(o->buf, '\n', o->buf_len);
        if (!nl) {
                if (o->buf_len > 64 * 1024)
                        return remote_open_finish(o, -EBADMSG, -EBADF, 0);
                return;
        }
        /* The exporter says nothing after its answer until asked: the line is all there is. */
        if ((size_t) (nl - o->buf) + 1 != o->buf_len)
                return remote_open_finish(o, -EBADMSG, -EBADF, 0);

        k = remote_parse_answer(o->buf, (size_t) (nl - o->buf), &answer, &message);
        if (k < 0) {
                char way[REMOTE_WAY_MAX];

                log_dut_prefix(LOG_WARNING, 0, r->name, "storage stream: %s refused it: %s",
                               remote_way(r, &o->attempt, way, sizeof way), strna(message));
                return remote_open_finish(o, k, -EBADF, 0);
        }
        remote_attempt_worked(r, &o->attempt);
        size = json_object_get(answer, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0) {
                json_decref(answer);
                log_dut_prefix(LOG_WARNING, 0, r->name, "storage stream: the exporter's answer has no size");
                return remote_open_finish(o, -EBADMSG, -EBADF, 0);
        }
        sz = (uint64_t) json_integer_value(size);
        json_decref(answer);
        r->storage_size = sz;

        k = tls_conn_detach(c, &ssl, &fd);
        if (k < 0)
                return remote_open_finish(o, k, -EBADF, 0);
        remote_pumps_reap(r);
        k = remote_pump_start(r, ssl, fd, &local);
        if (k < 0)
                return remote_open_finish(o, k, -EBADF, 0);
        log_dut_prefix(LOG_DEBUG, 0, r->name, "storage stream to %s/%s open for %s%s", r->address, r->dut,
                       o->writable ? "writing" : "reading", o->attempt.routed ? " (via the router)" : "");
        remote_open_finish(o, 0, local, sz);
}

static void remote_open_on_closed(TlsConn *c, int error, void *userdata) {
        RemoteStorageOpen *o = userdata;
        _cleanup_free_ char *message = NULL;
        TlsConn *next = NULL;
        int k;

        k = remote_fall_back(o->remote, &o->attempt, error, &remote_open_ops, o, &next);
        if (k > 0) {
                tls_conn_free(c);
                o->conn = next;
                return;
        }
        if (k < 0)
                error = k;
        k = remote_connect_error(o->remote, &o->attempt, c, error == 0 ? -ECONNRESET : error, &message);
        log_dut_prefix(LOG_WARNING, 0, o->remote->name, "storage stream: %s", strna(message));
        remote_open_finish(o, k, -EBADF, 0);
}

static const TlsConnOps remote_open_ops = {
        .ready = remote_open_on_ready,
        .data = remote_open_on_data,
        .closed = remote_open_on_closed,
};

int remote_storage_open(void *instance, bool writable, StorageOpenFunc done, void *userdata) {
        Remote *r = instance;
        RemoteStorageOpen *o;
        int k;

        o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        *o = (RemoteStorageOpen) { .remote = r, .writable = writable, .done = done, .userdata = userdata };
        k = remote_connect(r, &o->attempt, &remote_open_ops, o, &o->conn);
        if (k < 0) {
                char way[REMOTE_WAY_MAX];

                log_dut_prefix(LOG_WARNING, k, r->name, "storage stream: cannot connect to %s: %m",
                               remote_way(r, &o->attempt, way, sizeof way));
                free(o);
                return -EHOSTDOWN;
        }
        o->next = r->opens;
        r->opens = o;
        return 0;
}

void remote_storage_cancel_open(void *instance, void *userdata) {
        Remote *r = instance;

        for (RemoteStorageOpen *o = r->opens; o; o = o->next)
                if (o->userdata == userdata) {
                        remote_open_free(o);
                        return;
                }
}

uint64_t remote_storage_size(void *instance) {
        Remote *r = instance;
        return r->storage_size;
}

void remote_storage_free_all(Remote *r) {
        while (r->opens)
                remote_open_free(r->opens);
        while (r->pumps) {
                RemotePump *p = r->pumps;

                r->pumps = p->next;
                remote_pump_free(p);
        }
}
