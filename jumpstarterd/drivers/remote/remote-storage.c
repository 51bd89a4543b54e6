/* A DUT of another exporter: storage streams, each pumped between a local socket and TLS by a thread */
#include <assert.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "block-protocol.h"
#include "daemon-util.h"
#include "log.h"
#include "remote-internal.h"

/* An open connects a storage stream in the background (the loop never waits for the network) and
 * answers with one end of a socket pair that speaks the block protocol (docs/protocol.md): the
 * reader of that end (jumpstarter-fuse) sends requests, and a thread of ours carries each to the
 * exporter and its answer back, with blocking I/O, one request at a time. */
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

struct RemotePump {
        pthread_t thread;
        SSL *ssl;
        int fd;    /* the TLS socket */
        int local; /* our end of the socket pair */
        uint8_t *buf;
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

/* Reads exactly n bytes from a blocking fd: 1, 0 at EOF before the first byte, -1 otherwise. */
static int read_full(int fd, void *data, size_t n) {
        uint8_t *p = data;
        size_t got = 0;

        while (got < n) {
                ssize_t k = read(fd, p + got, n - got);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k == 0 && got == 0 ? 0 : -1;
                got += (size_t) k;
        }
        return 1;
}

static bool write_full(int fd, const void *data, size_t n) {
        const uint8_t *p = data;

        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

static bool ssl_write_full(SSL *ssl, const void *data, size_t n) {
        const uint8_t *p = data;

        while (n > 0) {
                int k = SSL_write(ssl, p, (int) MIN(n, (size_t) (1 << 30)));

                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

static bool ssl_read_full(SSL *ssl, void *data, size_t n) {
        uint8_t *p = data;

        while (n > 0) {
                int k = SSL_read(ssl, p, (int) MIN(n, (size_t) (1 << 30)));

                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

static void *remote_pump_thread(void *userdata) {
        RemotePump *p = userdata;
        uint8_t header[BLOCK_REQUEST_SIZE], answer[BLOCK_ANSWER_SIZE];

        for (;;) {
                BlockRequest q;
                int32_t result;
                int k;

                k = read_full(p->local, header, sizeof header);
                if (k == 0) {
                        /* The local side closed the storage: say goodbye to the exporter. */
                        (void) SSL_shutdown(p->ssl);
                        break;
                }
                /* Only what speaks the protocol goes to the exporter. */
                if (k < 0 || !block_request_decode(header, &q))
                        break;
                if (q.op == BLOCK_OP_WRITE && read_full(p->local, p->buf, q.length) <= 0)
                        break;
                ERR_clear_error();
                if (!ssl_write_full(p->ssl, header, sizeof header))
                        break;
                if (q.op == BLOCK_OP_WRITE && !ssl_write_full(p->ssl, p->buf, q.length))
                        break;
                if (!ssl_read_full(p->ssl, answer, sizeof answer) || !block_answer_decode(answer, &result))
                        break;
                if (q.op == BLOCK_OP_READ && result > 0) {
                        if ((uint32_t) result > q.length || !ssl_read_full(p->ssl, p->buf, (size_t) result))
                                break;
                }
                if (!write_full(p->local, answer, sizeof answer))
                        break;
                if (q.op == BLOCK_OP_READ && result > 0 && !write_full(p->local, p->buf, (size_t) result))
                        break;
        }

        /* The local reader sees the end at once (EOF, which it reports as EIO), whatever broke. */
        (void) shutdown(p->local, SHUT_RDWR);
        ERR_clear_error();
        OPENSSL_thread_stop();
        __atomic_store_n(&p->finished, true, __ATOMIC_RELEASE);
        return NULL;
}

static void remote_pump_free(RemotePump *p) {
        /* Wakes the thread wherever it waits for a peer. */
        (void) shutdown(p->fd, SHUT_RDWR);
        (void) shutdown(p->local, SHUT_RDWR);
        pthread_join(p->thread, NULL);
        SSL_free(p->ssl);
        safe_close(p->fd);
        safe_close(p->local);
        free(p->buf);
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
        _cleanup_close_ int local = -EBADF, theirs = -EBADF;
        sigset_t all, saved;
        RemotePump *p;
        int pair[2], k;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
                k = -errno;
                SSL_free(ssl);
                safe_close(fd);
                return k;
        }
        local = pair[0];
        theirs = pair[1];

        p = calloc(1, sizeof *p);
        if (!p) {
                SSL_free(ssl);
                safe_close(fd);
                return -ENOMEM;
        }
        p->ssl = ssl;
        p->fd = fd;
        p->local = TAKE_FD(local);
        p->buf = malloc(BLOCK_LENGTH_MAX);
        if (!p->buf) {
                SSL_free(p->ssl);
                safe_close(p->fd);
                safe_close(p->local);
                free(p);
                return -ENOMEM;
        }

        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        k = -pthread_create(&p->thread, NULL, remote_pump_thread, p);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (k < 0) {
                SSL_free(p->ssl);
                safe_close(p->fd);
                safe_close(p->local);
                free(p->buf);
                free(p);
                return k;
        }
        p->next = r->pumps;
        r->pumps = p;
        *ret_fd = TAKE_FD(theirs);
        return 0;
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
