/* Storage streams on the exporter: the block protocol served by two threads per stream */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "block-protocol.h"
#include "exporter-metrics.h"
#include "log.h"
#include "stream-internal.h"

/* A pread or pwrite of an SD card behind a mux can take seconds, so none of them runs on the loop:
 * after the request line the stream's TLS session moves to a thread of its own, which reads
 * requests and writes answers, and a second thread does the requests on the storage, one at a time
 * and in order, so that answers come in request order and an fsync comes after every earlier write.
 * The two overlap: while one request is written to the storage, the next ones are read and
 * decrypted (the client keeps several in flight). One SSL object cannot be read and written from
 * two threads, so the network thread does both, non-blocking, with poll(). The loop hears of the
 * end through an eventfd, and only then closes the DUT's storage session. */

/* Requests read and not answered yet, at most: each slot holds one, up to 4 MiB. */
#define STORAGE_WORKER_SLOTS 4

typedef struct StorageSlot {
        BlockRequest q;
        uint8_t header[BLOCK_REQUEST_SIZE];
        uint8_t answer[BLOCK_ANSWER_SIZE];
        int32_t result;
        uint8_t *buf; /* BLOCK_LENGTH_MAX, allocated at first use */
} StorageSlot;

struct StorageWorker {
        pthread_t thread, io_thread;
        bool started, io_started;
        SSL *ssl;
        int fd;           /* the connection's socket */
        int storage_fd;
        uint64_t size;
        bool writable;
        uint8_t *pending;
        size_t n_pending, pending_pos;
        int event_fd;
        sd_event_source *event_source;
        void (*done)(StorageWorker *w, void *userdata);
        void *userdata;

        /* Slot i % STORAGE_WORKER_SLOTS holds request i. Requests [n_answered, n_read) are in the
         * slots: [n_done, n_read) wait for the I/O thread, [n_answered, n_done) for their answers to
         * be sent. n_read, n_done and io_stop are under mutex; the rest is the network thread's. */
        StorageSlot slots[STORAGE_WORKER_SLOTS];
        pthread_mutex_t mutex;
        pthread_cond_t cond;
        unsigned n_read, n_done, n_answered;
        bool io_stop;
        int io_event_fd; /* the I/O thread finished a request */
};

static bool worker_write_line(StorageWorker *w, const void *data, size_t n) {
        const uint8_t *p = data;

        while (n > 0) {
                int k;

                ERR_clear_error();
                k = SSL_write(w->ssl, p, (int) MIN(n, (size_t) (1 << 30)));
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

static int32_t worker_do_write(StorageWorker *w, const BlockRequest *q, const uint8_t *buf) {
        size_t n = q->length, done = 0;

        if (!w->writable)
                return -EBADF;
        if (q->offset >= w->size)
                return n == 0 ? 0 : -ENOSPC;
        /* What fits lands; the caller sees a short write, then ENOSPC on the rest. */
        n = (size_t) MIN((uint64_t) n, w->size - q->offset);
        while (done < n) {
                ssize_t k = pwrite(w->storage_fd, buf + done, n - done, (off_t) (q->offset + done));

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return done > 0 ? (int32_t) done : -errno;
                }
                if (k == 0)
                        return done > 0 ? (int32_t) done : -ENOSPC;
                done += (size_t) k;
        }
        return (int32_t) done;
}

static int32_t worker_do_read(StorageWorker *w, const BlockRequest *q, uint8_t *buf) {
        size_t n = q->length, done = 0;

        if (q->offset >= w->size)
                return 0;
        n = (size_t) MIN((uint64_t) n, w->size - q->offset);
        while (done < n) {
                ssize_t k = pread(w->storage_fd, buf + done, n - done, (off_t) (q->offset + done));

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return done > 0 ? (int32_t) done : -errno;
                }
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        return (int32_t) done;
}

/* The I/O thread: the requests in order, until the network thread stops it. A request under way
 * is finished first (a cut lease ends the stream "after the request in progress"); the ones still
 * waiting are dropped. */
static void *storage_worker_io_thread(void *userdata) {
        StorageWorker *w = userdata;
        uint64_t one = 1;

        pthread_mutex_lock(&w->mutex);
        for (;;) {
                StorageSlot *slot;
                int32_t result;

                while (!w->io_stop && w->n_done == w->n_read)
                        pthread_cond_wait(&w->cond, &w->mutex);
                if (w->io_stop)
                        break;
                slot = &w->slots[w->n_done % STORAGE_WORKER_SLOTS];
                pthread_mutex_unlock(&w->mutex);

                switch (slot->q.op) {
                case BLOCK_OP_READ:
                        result = worker_do_read(w, &slot->q, slot->buf);
                        break;
                case BLOCK_OP_WRITE:
                        result = worker_do_write(w, &slot->q, slot->buf);
                        break;
                default:
                        result = fsync(w->storage_fd) < 0 ? -errno : 0;
                        break;
                }
                if (result > 0 && slot->q.op != BLOCK_OP_FSYNC) /* exporter-metrics.c, atomic */
                        exporter_metrics_add_storage_bytes(slot->q.op == BLOCK_OP_WRITE, (uint64_t) result);
                slot->result = result;
                block_answer_encode(result, slot->answer);

                pthread_mutex_lock(&w->mutex);
                w->n_done++;
                (void) write(w->io_event_fd, &one, sizeof one);
        }
        pthread_mutex_unlock(&w->mutex);
        return NULL;
}

/* What an SSL call that made no progress waits for: POLLIN or POLLOUT, or -1 when the connection
 * is over. */
static int worker_ssl_wants(SSL *ssl, int k) {
        switch (SSL_get_error(ssl, k)) {
        case SSL_ERROR_WANT_READ:
                return POLLIN;
        case SSL_ERROR_WANT_WRITE:
                return POLLOUT;
        default:
                return -1;
        }
}

/* Reads up to n bytes of requests: the bytes that came with the request line first. Returns bytes
 * read, 0 at the client's clean end, -EAGAIN with what to wait for in *want, or -EPIPE when the
 * connection is over. */
static int worker_read(StorageWorker *w, void *data, size_t n, short *want) {
        int k;

        if (w->pending_pos < w->n_pending) {
                size_t m = MIN(n, w->n_pending - w->pending_pos);

                memcpy(data, w->pending + w->pending_pos, m);
                w->pending_pos += m;
                return (int) m;
        }
        ERR_clear_error();
        k = SSL_read(w->ssl, data, (int) MIN(n, (size_t) (1 << 30)));
        if (k > 0)
                return k;
        if (SSL_get_error(w->ssl, k) == SSL_ERROR_ZERO_RETURN)
                return 0;
        k = worker_ssl_wants(w->ssl, k);
        if (k < 0)
                return -EPIPE;
        *want |= (short) k;
        return -EAGAIN;
}

static void *storage_worker_thread(void *userdata) {
        StorageWorker *w = userdata;
        size_t got = 0, sent = 0; /* of the request being read, of the answer being sent */
        bool client_done = false;
        char line[96];
        uint64_t one = 1;
        int n, flags;

        n = snprintf(line, sizeof line, "{\"ok\":true,\"size\":%" PRIu64 "}\n", w->size);
        if (!worker_write_line(w, line, (size_t) n))
                goto finish;
        flags = fcntl(w->fd, F_GETFL);
        if (flags < 0 || fcntl(w->fd, F_SETFL, flags | O_NONBLOCK) < 0)
                goto finish;
        (void) SSL_set_mode(w->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

        for (;;) {
                short want;
                bool progress;
                unsigned n_done;
                int k;

                do {
                        progress = false;
                        want = 0;

                        /* The next request into a free slot. */
                        if (!client_done && w->n_read - w->n_answered < STORAGE_WORKER_SLOTS) {
                                StorageSlot *slot = &w->slots[w->n_read % STORAGE_WORKER_SLOTS];

                                if (got < BLOCK_REQUEST_SIZE)
                                        k = worker_read(w, slot->header + got, BLOCK_REQUEST_SIZE - got, &want);
                                else
                                        k = worker_read(w, slot->buf + (got - BLOCK_REQUEST_SIZE),
                                                        BLOCK_REQUEST_SIZE + slot->q.length - got, &want);
                                if (k > 0) {
                                        progress = true;
                                        got += (size_t) k;
                                        if (got == BLOCK_REQUEST_SIZE) {
                                                if (!block_request_decode(slot->header, &slot->q))
                                                        goto finish;
                                                if (slot->q.length > 0 && !slot->buf) {
                                                        slot->buf = malloc(BLOCK_LENGTH_MAX);
                                                        if (!slot->buf)
                                                                goto finish;
                                                }
                                        }
                                        if (got >= BLOCK_REQUEST_SIZE &&
                                            got == BLOCK_REQUEST_SIZE + (slot->q.op == BLOCK_OP_WRITE ? slot->q.length : 0)) {
                                                got = 0;
                                                pthread_mutex_lock(&w->mutex);
                                                w->n_read++;
                                                pthread_cond_signal(&w->cond);
                                                pthread_mutex_unlock(&w->mutex);
                                        }
                                } else if (k == 0) {
                                        /* The client said goodbye (a partial request is dropped):
                                         * the answers to what came before still go out. */
                                        client_done = true;
                                        progress = true;
                                } else if (k == -EPIPE)
                                        goto finish;
                        }

                        /* The oldest answer, once its request is done. */
                        pthread_mutex_lock(&w->mutex);
                        n_done = w->n_done;
                        pthread_mutex_unlock(&w->mutex);
                        if (w->n_answered != n_done) {
                                StorageSlot *slot = &w->slots[w->n_answered % STORAGE_WORKER_SLOTS];
                                size_t total = BLOCK_ANSWER_SIZE +
                                        (slot->q.op == BLOCK_OP_READ && slot->result > 0 ? (size_t) slot->result : 0);

                                ERR_clear_error();
                                if (sent < BLOCK_ANSWER_SIZE)
                                        k = SSL_write(w->ssl, slot->answer + sent, (int) (BLOCK_ANSWER_SIZE - sent));
                                else
                                        k = SSL_write(w->ssl, slot->buf + (sent - BLOCK_ANSWER_SIZE), (int) (total - sent));
                                if (k > 0) {
                                        progress = true;
                                        sent += (size_t) k;
                                        if (sent == total) {
                                                sent = 0;
                                                w->n_answered++;
                                        }
                                } else if ((k = worker_ssl_wants(w->ssl, k)) < 0)
                                        goto finish;
                                else
                                        want |= (short) k;
                        } else if (client_done && w->n_answered == w->n_read) {
                                /* Everything answered: say goodbye back. */
                                ERR_clear_error();
                                (void) SSL_shutdown(w->ssl);
                                goto finish;
                        }
                } while (progress);

                /* The connection stays in the poll set even with nothing to wait for on it: a cut
                 * (storage_worker_cut()) shows as a hangup there. */
                struct pollfd fds[2] = {
                        { .fd = w->fd, .events = want },
                        { .fd = w->io_event_fd, .events = POLLIN },
                };
                if (poll(fds, ELEMENTSOF(fds), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        goto finish;
                }
                if (fds[0].revents & (POLLHUP | POLLERR) && want == 0)
                        goto finish;
                if (fds[1].revents & POLLIN) {
                        uint64_t x;

                        (void) read(w->io_event_fd, &x, sizeof x);
                }
        }

finish:
        pthread_mutex_lock(&w->mutex);
        w->io_stop = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->mutex);
        /* The request under way finishes first (a slow card: seconds). */
        pthread_join(w->io_thread, NULL);
        w->io_started = false;
        ERR_clear_error();
        /* OpenSSL keeps per-thread error state; free it before the thread goes. */
        OPENSSL_thread_stop();
        (void) write(w->event_fd, &one, sizeof one);
        return NULL;
}

static int storage_worker_on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        StorageWorker *w = userdata;

        w->event_source = sd_event_source_disable_unref(w->event_source);
        w->done(w, w->userdata);
        return 0;
}

int storage_worker_start(sd_event *event, SSL *ssl, int fd, int storage_fd, uint64_t size, bool writable,
                         const void *pending, size_t n_pending, void (*done)(StorageWorker *w, void *userdata),
                         void *userdata, StorageWorker **ret) {
        sigset_t all, saved;
        StorageWorker *w;
        int r;

        w = calloc(1, sizeof *w);
        if (!w) {
                SSL_free(ssl);
                safe_close(fd);
                safe_close(storage_fd);
                return -ENOMEM;
        }
        *w = (StorageWorker) {
                .ssl = ssl,
                .fd = fd,
                .storage_fd = storage_fd,
                .size = size,
                .writable = writable,
                .event_fd = -EBADF,
                .io_event_fd = -EBADF,
                .done = done,
                .userdata = userdata,
        };
        pthread_mutex_init(&w->mutex, NULL);
        pthread_cond_init(&w->cond, NULL);
        if (n_pending > 0) {
                w->pending = malloc(n_pending);
                if (!w->pending) {
                        r = -ENOMEM;
                        goto fail;
                }
                memcpy(w->pending, pending, n_pending);
                w->n_pending = n_pending;
        }
        w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->event_fd < 0) {
                r = -errno;
                goto fail;
        }
        w->io_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->io_event_fd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(event, &w->event_source, w->event_fd, EPOLLIN, storage_worker_on_done, w);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(w->event_source, "storage-worker");

        /* Signals are for the loop's thread only. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        r = -pthread_create(&w->io_thread, NULL, storage_worker_io_thread, w);
        if (r >= 0) {
                w->io_started = true;
                r = -pthread_create(&w->thread, NULL, storage_worker_thread, w);
        }
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                goto fail;
        w->started = true;
        *ret = w;
        return 0;

fail:
        storage_worker_free(w);
        return r;
}

void storage_worker_cut(StorageWorker *w) {
        /* Wakes the network thread (a hangup in its poll set), which stops the I/O thread: one in
         * pread()/pwrite() finishes that request first. */
        if (w && w->fd >= 0)
                (void) shutdown(w->fd, SHUT_RDWR);
}

StorageWorker *storage_worker_free(StorageWorker *w) {
        if (!w)
                return NULL;
        if (w->started) {
                storage_worker_cut(w);
                pthread_join(w->thread, NULL); /* it joins the I/O thread */
        } else if (w->io_started) {
                pthread_mutex_lock(&w->mutex);
                w->io_stop = true;
                pthread_cond_signal(&w->cond);
                pthread_mutex_unlock(&w->mutex);
                pthread_join(w->io_thread, NULL);
        }
        w->event_source = sd_event_source_disable_unref(w->event_source);
        safe_close(w->event_fd);
        SSL_free(w->ssl);
        safe_close(w->fd);
        safe_close(w->storage_fd);
        safe_close(w->io_event_fd);
        free(w->pending);
        for (size_t i = 0; i < STORAGE_WORKER_SLOTS; i++)
                free(w->slots[i].buf);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mutex);
        free(w);
        return NULL;
}
