/* Storage I/O off the event loop: a small pool of worker threads */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block-protocol.h"
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

/* Storage on another host (a remote DUT) comes as a socket that speaks the block protocol of
 * docs/protocol.md: one request and its answer at a time per socket, so each socket has a lock,
 * found by its inode (every job has its own dup of the fd). */
typedef struct SocketLock {
        ino_t ino;
        unsigned users;
        pthread_mutex_t mutex;
        struct SocketLock *next;
} SocketLock;

struct StorageIo {
        pthread_t threads[STORAGE_IO_THREADS];
        size_t n_threads;
        pthread_mutex_t mutex;
        pthread_cond_t cond;
        StorageIoJob *head, **tail;
        bool stop;
        SocketLock *socket_locks; /* under mutex */
};

static void job_free(StorageIoJob *j) {
        if (!j)
                return;
        safe_close(j->fd);
        free(j->data);
        free(j);
}

static SocketLock *socket_lock_acquire(StorageIo *s, ino_t ino) {
        SocketLock *l;

        pthread_mutex_lock(&s->mutex);
        for (l = s->socket_locks; l; l = l->next)
                if (l->ino == ino)
                        break;
        if (!l) {
                l = calloc(1, sizeof *l);
                if (!l) {
                        pthread_mutex_unlock(&s->mutex);
                        return NULL;
                }
                l->ino = ino;
                pthread_mutex_init(&l->mutex, NULL);
                l->next = s->socket_locks;
                s->socket_locks = l;
        }
        l->users++;
        pthread_mutex_unlock(&s->mutex);
        pthread_mutex_lock(&l->mutex);
        return l;
}

static void socket_lock_release(StorageIo *s, SocketLock *l) {
        pthread_mutex_unlock(&l->mutex);
        pthread_mutex_lock(&s->mutex);
        if (--l->users == 0) {
                for (SocketLock **link = &s->socket_locks; *link; link = &(*link)->next)
                        if (*link == l) {
                                *link = l->next;
                                break;
                        }
                pthread_mutex_destroy(&l->mutex);
                free(l);
        }
        pthread_mutex_unlock(&s->mutex);
}

static bool sock_send_all(int fd, const void *data, size_t n) {
        const uint8_t *p = data;

        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

static bool sock_recv_all(int fd, void *data, size_t n) {
        uint8_t *p = data;

        while (n > 0) {
                ssize_t k = recv(fd, p, n, MSG_WAITALL);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

/* One request and its answer. Returns the answer's result; a lost connection or an answer that
 * breaks the protocol is -EIO (the stream is over: every later request fails the same way). */
static int32_t block_call(int fd, uint8_t op, uint64_t off, const void *wdata, size_t n, void *rdata) {
        uint8_t header[BLOCK_REQUEST_SIZE], answer[BLOCK_ANSWER_SIZE];
        int32_t result;

        block_request_encode(&(BlockRequest) { .op = op, .length = (uint32_t) n, .offset = off }, header);
        if (!sock_send_all(fd, header, sizeof header))
                return -EIO;
        if (op == BLOCK_OP_WRITE && !sock_send_all(fd, wdata, n))
                return -EIO;
        if (!sock_recv_all(fd, answer, sizeof answer) || !block_answer_decode(answer, &result))
                return -EIO;
        if (op == BLOCK_OP_READ && result > 0) {
                if ((size_t) result > n || !sock_recv_all(fd, rdata, (size_t) result))
                        return -EIO;
        }
        if (result < -4095)
                return -EIO;
        return result;
}

/* pread/pwrite/fsync over the block protocol, requests split at its 4 MiB limit. Returns bytes
 * done (short at the end or at an error after some bytes), or a negative errno. */
static ssize_t block_transfer(int fd, uint8_t op, char *buf, size_t size, off_t off) {
        size_t done = 0;

        if (op == BLOCK_OP_FSYNC)
                return block_call(fd, op, 0, NULL, 0, NULL);
        while (done < size) {
                size_t n = MIN(size - done, (size_t) BLOCK_LENGTH_MAX);
                int32_t k = block_call(fd, op, (uint64_t) off + done, buf + done, n, buf + done);

                if (k < 0)
                        return done > 0 && k != -EIO ? (ssize_t) done : k;
                done += (size_t) k;
                if ((size_t) k < n)
                        break;
        }
        return (ssize_t) done;
}

static void job_run_socket(StorageIo *s, StorageIoJob *j, ino_t ino, char **buf, size_t *buf_size) {
        SocketLock *l;
        ssize_t n;

        if (j->kind == STORAGE_IO_READ && j->size > *buf_size) {
                char *b = realloc(*buf, j->size);

                if (!b) {
                        (void) fuse_reply_err(j->req, ENOMEM);
                        return;
                }
                *buf = b;
                *buf_size = j->size;
        }
        l = socket_lock_acquire(s, ino);
        if (!l) {
                (void) fuse_reply_err(j->req, ENOMEM);
                return;
        }
        switch (j->kind) {
        case STORAGE_IO_READ:
                n = block_transfer(j->fd, BLOCK_OP_READ, *buf, j->size, j->off);
                break;
        case STORAGE_IO_WRITE:
                n = block_transfer(j->fd, BLOCK_OP_WRITE, j->data, j->size, j->off);
                break;
        default:
                n = block_transfer(j->fd, BLOCK_OP_FSYNC, NULL, 0, 0);
                break;
        }
        socket_lock_release(s, l);

        if (n < 0)
                (void) fuse_reply_err(j->req, (int) -n);
        else if (j->kind == STORAGE_IO_READ)
                (void) fuse_reply_buf(j->req, *buf, (size_t) n);
        else if (j->kind == STORAGE_IO_WRITE)
                (void) fuse_reply_write(j->req, (size_t) n);
        else
                (void) fuse_reply_err(j->req, 0);
}

/* The workers answer the requests themselves: fuse_reply_*() only writes the answer to /dev/fuse and
 * libfuse locks its request list, so this is safe from any thread (libfuse's own multi-threaded loop
 * does the same). Nothing of the loop's is touched here: the job owns its fd (a dup, so a release or
 * a lost daemon closing the handle's fd on the loop cannot pull it away or have it reused under us)
 * and its payload, so no result has to travel back to the loop, and no Handle reference crosses
 * threads. */
static void job_run(StorageIo *s, StorageIoJob *j, char **buf, size_t *buf_size) {
        struct stat st;
        ssize_t n;

        if (fstat(j->fd, &st) >= 0 && S_ISSOCK(st.st_mode))
                return job_run_socket(s, j, st.st_ino, buf, buf_size);

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

                job_run(s, j, &buf, &buf_size);
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
