/* Storage I/O off the event loop: a small pool of worker threads */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "storage-io.h"

/* A DUT's storage may be an SD card behind a USB mux: one 1 MiB write or an fsync can take seconds.
 * The loop hands each read, write and fsync to one of these threads, so that power, serial.log and
 * lookups of every other DUT go on meanwhile. Several threads, so that one slow device does not hold
 * up the storage of the others. */
#define STORAGE_IO_THREADS 4

typedef enum StorageIoKind {
        STORAGE_IO_READ,
        STORAGE_IO_WRITE,
        STORAGE_IO_FSYNC,
} StorageIoKind;

typedef struct StorageIoJob {
        struct StorageIoJob *next;
        StorageIoKind kind;
        fuse_req_t req;
        int fd;                 /* a dup of the handle's: the job's own, closed by the worker */
        size_t size;
        off_t off;
        char *data;             /* a write's payload, copied out of the session's receive buffer */
} StorageIoJob;

struct StorageIo {
        pthread_t threads[STORAGE_IO_THREADS];
        size_t n_threads;
        pthread_mutex_t mutex;
        pthread_cond_t cond;
        StorageIoJob *head, **tail;
        bool stop;
};

static void job_free(StorageIoJob *j) {
        if (!j)
                return;
        safe_close(j->fd);
        free(j->data);
        free(j);
}

/* The workers answer the requests themselves: fuse_reply_*() only writes the answer to /dev/fuse and
 * libfuse locks its request list, so this is safe from any thread (libfuse's own multi-threaded loop
 * does the same). Nothing of the loop's is touched here: the job owns its fd (a dup, so a release or
 * a lost daemon closing the handle's fd on the loop cannot pull it away or have it reused under us)
 * and its payload, so no result has to travel back to the loop, and no Handle reference crosses
 * threads. */
static void job_run(StorageIoJob *j, char **buf, size_t *buf_size) {
        ssize_t n;

        switch (j->kind) {
        case STORAGE_IO_READ:
                if (j->size > *buf_size) {
                        char *b = realloc(*buf, j->size);

                        if (!b) {
                                (void) fuse_reply_err(j->req, ENOMEM);
                                return;
                        }
                        *buf = b;
                        *buf_size = j->size;
                }
                n = pread(j->fd, *buf, j->size, j->off);
                if (n < 0)
                        (void) fuse_reply_err(j->req, errno);
                else
                        (void) fuse_reply_buf(j->req, *buf, (size_t) n);
                return;

        case STORAGE_IO_WRITE: {
                struct fuse_bufvec src = FUSE_BUFVEC_INIT(j->size), dst = FUSE_BUFVEC_INIT(j->size);

                src.buf[0].mem = j->data;
                dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
                dst.buf[0].fd = j->fd;
                dst.buf[0].pos = j->off;
                /* pwrite() until done: what landed before an error (ENOSPC at the end of a device) is a
                 * short write, an error with nothing written is the error. */
                n = fuse_buf_copy(&dst, &src, 0);
                if (n < 0)
                        (void) fuse_reply_err(j->req, (int) -n);
                else
                        (void) fuse_reply_write(j->req, (size_t) n);
                return;
        }

        case STORAGE_IO_FSYNC:
                (void) fuse_reply_err(j->req, fsync(j->fd) < 0 ? errno : 0);
                return;
        }
}

static void *storage_io_thread(void *userdata) {
        StorageIo *s = userdata;
        char *buf = NULL;
        size_t buf_size = 0;

        pthread_mutex_lock(&s->mutex);
        for (;;) {
                StorageIoJob *j;

                while (!s->head && !s->stop)
                        pthread_cond_wait(&s->cond, &s->mutex);
                /* Stopping: what is queued is still done and answered first. */
                if (!s->head)
                        break;

                j = s->head;
                s->head = j->next;
                if (!s->head)
                        s->tail = &s->head;
                pthread_mutex_unlock(&s->mutex);

                job_run(j, &buf, &buf_size);
                job_free(j);

                pthread_mutex_lock(&s->mutex);
        }
        pthread_mutex_unlock(&s->mutex);
        free(buf);
        return NULL;
}

int storage_io_new(StorageIo **ret) {
        sigset_t all, saved;
        StorageIo *s;
        int r = 0;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->tail = &s->head;
        pthread_mutex_init(&s->mutex, NULL);
        pthread_cond_init(&s->cond, NULL);

        /* Signals are for the loop's thread only. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        for (; s->n_threads < STORAGE_IO_THREADS; s->n_threads++) {
                r = -pthread_create(&s->threads[s->n_threads], NULL, storage_io_thread, s);
                if (r < 0)
                        break;
        }
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0) {
                storage_io_free(s);
                return r;
        }

        *ret = s;
        return 0;
}

StorageIo *storage_io_free(StorageIo *s) {
        if (!s)
                return NULL;

        pthread_mutex_lock(&s->mutex);
        s->stop = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mutex);
        for (size_t i = 0; i < s->n_threads; i++)
                pthread_join(s->threads[i], NULL);

        /* Only when no thread could be started. */
        while (s->head) {
                StorageIoJob *j = s->head;

                s->head = j->next;
                (void) fuse_reply_err(j->req, EIO);
                job_free(j);
        }
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->mutex);
        free(s);
        return NULL;
}

static int storage_io_queue(StorageIo *s, StorageIoKind kind, fuse_req_t req, int fd, size_t size, off_t off,
                            char *data) {
        StorageIoJob *j;
        int copy;

        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        j = malloc(sizeof *j);
        if (!j) {
                safe_close(copy);
                return -ENOMEM;
        }
        *j = (StorageIoJob) {
                .kind = kind,
                .req = req,
                .fd = copy,
                .size = size,
                .off = off,
                .data = data,
        };

        pthread_mutex_lock(&s->mutex);
        *s->tail = j;
        s->tail = &j->next;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->mutex);
        return 0;
}

int storage_io_read(StorageIo *s, fuse_req_t req, int fd, size_t size, off_t off) {
        return storage_io_queue(s, STORAGE_IO_READ, req, fd, size, off, NULL);
}

int storage_io_write(StorageIo *s, fuse_req_t req, int fd, struct fuse_bufvec *bufv, size_t size, off_t off) {
        struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
        _cleanup_free_ char *data = NULL;
        ssize_t n;
        int r;

        /* libfuse reuses its receive buffer (or the pipe the write was spliced into) for the next
         * request as soon as we return: take the payload now. Reading it from that pipe does not
         * block, the kernel put all of it there before the request became readable. This copy is
         * the price of not blocking the loop: about 5% of storage throughput (docs/benchmarks.md). */
        data = malloc(MAX(size, (size_t) 1));
        if (!data)
                return -ENOMEM;
        dst.buf[0].mem = data;
        n = fuse_buf_copy(&dst, bufv, 0);
        if (n < 0)
                return (int) n;

        r = storage_io_queue(s, STORAGE_IO_WRITE, req, fd, (size_t) n, off, data);
        if (r < 0)
                return r;
        TAKE_PTR(data);
        return 0;
}

int storage_io_fsync(StorageIo *s, fuse_req_t req, int fd) {
        return storage_io_queue(s, STORAGE_IO_FSYNC, req, fd, 0, 0, NULL);
}
