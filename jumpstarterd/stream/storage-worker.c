/* Storage streams on the exporter: the block protocol served by one thread per stream */
#include <assert.h>
#include <inttypes.h>
#include <openssl/err.h>
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
 * after the request line the stream's TLS session moves to this thread, which reads requests,
 * does them, and answers with blocking I/O, one at a time, so answers come in request order. The
 * loop hears of the end through an eventfd, and only then closes the DUT's storage session. */
struct StorageWorker {
        pthread_t thread;
        bool started;
        SSL *ssl;
        int fd;           /* the connection's socket */
        int storage_fd;
        uint64_t size;
        bool writable;
        uint8_t *pending;
        size_t n_pending, pending_pos;
        uint8_t *buf;
        int event_fd;
        sd_event_source *event_source;
        void (*done)(StorageWorker *w, void *userdata);
        void *userdata;
};

static bool worker_write(StorageWorker *w, const void *data, size_t n) {
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

/* Reads exactly n bytes: 1, 0 at a clean end before the first byte, -1 on anything else. */
static int worker_read(StorageWorker *w, void *data, size_t n) {
        uint8_t *p = data;
        size_t got = 0;

        while (got < n) {
                int k;

                if (w->pending_pos < w->n_pending) {
                        size_t m = MIN(n - got, w->n_pending - w->pending_pos);

                        memcpy(p + got, w->pending + w->pending_pos, m);
                        w->pending_pos += m;
                        got += m;
                        continue;
                }
                ERR_clear_error();
                k = SSL_read(w->ssl, p + got, (int) MIN(n - got, (size_t) (1 << 30)));
                if (k <= 0)
                        return got == 0 && SSL_get_error(w->ssl, k) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
                got += (size_t) k;
        }
        return 1;
}

static int32_t worker_do_write(StorageWorker *w, const BlockRequest *q) {
        size_t n = q->length, done = 0;

        if (!w->writable)
                return -EBADF;
        if (q->offset >= w->size)
                return n == 0 ? 0 : -ENOSPC;
        /* What fits lands; the caller sees a short write, then ENOSPC on the rest. */
        n = (size_t) MIN((uint64_t) n, w->size - q->offset);
        while (done < n) {
                ssize_t k = pwrite(w->storage_fd, w->buf + done, n - done, (off_t) (q->offset + done));

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

static int32_t worker_do_read(StorageWorker *w, const BlockRequest *q) {
        size_t n = q->length, done = 0;

        if (q->offset >= w->size)
                return 0;
        n = (size_t) MIN((uint64_t) n, w->size - q->offset);
        while (done < n) {
                ssize_t k = pread(w->storage_fd, w->buf + done, n - done, (off_t) (q->offset + done));

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

static void *storage_worker_thread(void *userdata) {
        StorageWorker *w = userdata;
        uint8_t header[BLOCK_REQUEST_SIZE], answer[BLOCK_ANSWER_SIZE];
        char line[96];
        uint64_t one = 1;
        int n;

        n = snprintf(line, sizeof line, "{\"ok\":true,\"size\":%" PRIu64 "}\n", w->size);
        if (!worker_write(w, line, (size_t) n))
                goto finish;

        for (;;) {
                BlockRequest q;
                int32_t result;
                int k;

                k = worker_read(w, header, sizeof header);
                if (k == 0) {
                        /* The client said goodbye: say it back. */
                        (void) SSL_shutdown(w->ssl);
                        break;
                }
                if (k < 0 || !block_request_decode(header, &q))
                        break;
                if (q.op == BLOCK_OP_WRITE && worker_read(w, w->buf, q.length) <= 0)
                        break;

                switch (q.op) {
                case BLOCK_OP_READ:
                        result = worker_do_read(w, &q);
                        break;
                case BLOCK_OP_WRITE:
                        result = worker_do_write(w, &q);
                        break;
                default:
                        result = fsync(w->storage_fd) < 0 ? -errno : 0;
                        break;
                }

                if (result > 0 && q.op != BLOCK_OP_FSYNC) /* exporter-metrics.c, atomic */
                        exporter_metrics_add_storage_bytes(q.op == BLOCK_OP_WRITE, (uint64_t) result);
                block_answer_encode(result, answer);
                if (!worker_write(w, answer, sizeof answer))
                        break;
                if (q.op == BLOCK_OP_READ && result > 0 && !worker_write(w, w->buf, (size_t) result))
                        break;
        }

finish:
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
                .done = done,
                .userdata = userdata,
        };
        w->buf = malloc(BLOCK_LENGTH_MAX);
        if (!w->buf) {
                r = -ENOMEM;
                goto fail;
        }
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
        r = sd_event_add_io(event, &w->event_source, w->event_fd, EPOLLIN, storage_worker_on_done, w);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(w->event_source, "storage-worker");

        /* Signals are for the loop's thread only. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        r = -pthread_create(&w->thread, NULL, storage_worker_thread, w);
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
        /* Wakes a thread blocked in SSL_read() or SSL_write(); one in pread()/pwrite() finishes it
         * first, then finds the connection gone. */
        if (w && w->fd >= 0)
                (void) shutdown(w->fd, SHUT_RDWR);
}

StorageWorker *storage_worker_free(StorageWorker *w) {
        if (!w)
                return NULL;
        if (w->started) {
                storage_worker_cut(w);
                pthread_join(w->thread, NULL);
        }
        w->event_source = sd_event_source_disable_unref(w->event_source);
        safe_close(w->event_fd);
        SSL_free(w->ssl);
        safe_close(w->fd);
        safe_close(w->storage_fd);
        free(w->pending);
        free(w->buf);
        free(w);
        return NULL;
}
