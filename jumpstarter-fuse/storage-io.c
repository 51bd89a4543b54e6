/* Storage I/O off the event loop: a small pool of worker threads */
#include <assert.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
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
 * up the storage of the others, and so that a remote storage's answers can be read by one of them
 * while others send its next requests (below). */
#define STORAGE_IO_THREADS 8

/* Writes to a remote storage that are sent but not answered yet, at most: the kernel sends a
 * writer's next request only once the last is answered, so without answering early the network's
 * and the exporter's time would add up per request instead of overlapping. */
#define STORAGE_IO_WINDOW (16U * 1024U * 1024U)

typedef enum StorageIoKind {
        STORAGE_IO_READ,
        STORAGE_IO_WRITE,
        STORAGE_IO_FSYNC,
        STORAGE_IO_FLUSH,
        STORAGE_IO_READER,      /* reads a channel's answers (after storage_io_write_direct()) */
} StorageIoKind;

typedef struct StorageIoJob {
        struct StorageIoJob *next;
        StorageIoKind kind;
        fuse_req_t req;
        int fd;                 /* a dup of the handle's: the job's own, closed by the worker */
        size_t size;
        off_t off;
        char *data;             /* a write's payload, copied out of the session's receive buffer */
        struct BlockChannel *channel; /* a reader's */
} StorageIoJob;

/* A request sent on a block socket whose answer is still to come, or a flush waiting for the
 * answers before it. */
typedef struct BlockCall {
        struct BlockCall *next;
        StorageIoKind kind;
        fuse_req_t req;         /* NULL for a write that was answered when it was sent */
        size_t size;            /* of the request */
        char *buf;              /* a read's data */
} BlockCall;

/* Storage on another host (a remote DUT) comes as a socket that speaks the block protocol of
 * docs/protocol.md, where several requests may be in flight and answers come in request order.
 * A channel per socket (found by its inode: every job has its own dup of the fd) keeps the calls
 * in flight in that order. Senders take turns under send_mutex (a request and its payload go out
 * whole); whichever worker sent a request while nobody was reading becomes the channel's reader and
 * reads answers, replying to each call's FUSE request, until no call is left (a write the loop sent
 * itself queues a reader job instead). A write is answered
 * to FUSE as soon as it is sent (write-behind, within STORAGE_IO_WINDOW); an error in its answer
 * breaks the stream, so that every later read, write, fsync and close of it fails with EIO. An
 * fsync's answer comes after every earlier write's (the exporter does them in order), so it is
 * answered only once they all landed. The channel (and its dup of the socket) goes when no call
 * is left and no job uses it, so that the stream ends when the file is closed. */
typedef struct BlockChannel {
        ino_t ino;
        int fd;
        int sndbuf;             /* its SO_SNDBUF */
        unsigned users;         /* jobs between channel_acquire() and channel_release() */
        pthread_mutex_t send_mutex;
        /* The rest under StorageIo.mutex. */
        BlockCall *head, **tail;
        size_t n_unanswered;    /* bytes of early-answered writes still in flight */
        bool reading;           /* a worker reads the answers */
        bool broken;            /* the stream failed: everything is EIO */
        struct BlockChannel *next;
} BlockChannel;

struct StorageIo {
        pthread_t threads[STORAGE_IO_THREADS];
        size_t n_threads;
        pthread_mutex_t mutex;
        pthread_cond_t cond;
        pthread_cond_t window_cond; /* a channel's answers came, or it broke */
        StorageIoJob *head, **tail;
        bool stop;
        BlockChannel *channels; /* under mutex */
};

static void job_free(StorageIoJob *j) {
        if (!j)
                return;
        safe_close(j->fd);
        free(j->data);
        free(j);
}

static BlockChannel *channel_find(StorageIo *s, ino_t ino) {
        for (BlockChannel *c = s->channels; c; c = c->next)
                if (c->ino == ino)
                        return c;
        return NULL;
}

/* Under s->mutex: a channel of fd's socket with one more user, or NULL when out of memory. */
static BlockChannel *channel_acquire(StorageIo *s, int fd, ino_t ino) {
        BlockChannel *c = channel_find(s, ino);

        if (!c) {
                c = calloc(1, sizeof *c);
                if (!c)
                        return NULL;
                c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (c->fd < 0) {
                        free(c);
                        return NULL;
                }
                c->ino = ino;
                c->tail = &c->head;
                if (getsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &c->sndbuf, &(socklen_t) { sizeof c->sndbuf }) < 0)
                        c->sndbuf = 0;
                pthread_mutex_init(&c->send_mutex, NULL);
                c->next = s->channels;
                s->channels = c;
        }
        c->users++;
        return c;
}

/* Under s->mutex. */
static void channel_release(StorageIo *s, BlockChannel *c) {
        assert(c->users > 0);
        if (--c->users > 0 || c->head || c->reading)
                return;
        for (BlockChannel **link = &s->channels; *link; link = &(*link)->next)
                if (*link == c) {
                        *link = c->next;
                        break;
                }
        pthread_mutex_destroy(&c->send_mutex);
        safe_close(c->fd);
        free(c);
}

/* Under s->mutex. The stream failed (the connection, or an early-answered write): our end of the
 * socket is shut down, so that a sender blocked in send() and the daemon's pump see the end too. */
static void channel_break(StorageIo *s, BlockChannel *c) {
        if (c->broken)
                return;
        c->broken = true;
        (void) shutdown(c->fd, SHUT_RDWR);
        pthread_cond_broadcast(&s->window_cond);
}

static void call_reply(BlockCall *call, int32_t result) {
        if (call->req) {
                if (result < 0)
                        (void) fuse_reply_err(call->req, -result);
                else if (call->kind == STORAGE_IO_READ)
                        (void) fuse_reply_buf(call->req, call->buf, (size_t) result);
                else if (call->kind == STORAGE_IO_WRITE)
                        (void) fuse_reply_write(call->req, (size_t) result);
                else
                        (void) fuse_reply_err(call->req, 0);
        }
        free(call->buf);
        free(call);
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

/* The answer to call, read by the channel's reader. A lost connection or an answer that breaks the
 * protocol is -EIO. */
static int32_t channel_read_answer(BlockChannel *c, BlockCall *call, bool *ret_lost) {
        uint8_t answer[BLOCK_ANSWER_SIZE];
        int32_t result;

        *ret_lost = true;
        if (!sock_recv_all(c->fd, answer, sizeof answer) || !block_answer_decode(answer, &result))
                return -EIO;
        if (result < -4095 || (result > 0 && (size_t) result > call->size))
                return -EIO;
        if (call->kind == STORAGE_IO_READ && result > 0 && !sock_recv_all(c->fd, call->buf, (size_t) result))
                return -EIO;
        *ret_lost = false;
        return result;
}

/* The reader: answers every call in order until none is left. Only one worker at a time per
 * channel (c->reading), so the answers need no lock while they are read. */
static void channel_read_answers(StorageIo *s, BlockChannel *c) {
        pthread_mutex_lock(&s->mutex);
        for (;;) {
                BlockCall *call = c->head;
                int32_t result;
                bool lost;

                if (!call)
                        break;
                if (call->kind == STORAGE_IO_FLUSH)
                        /* Every write before it was answered. */
                        result = c->broken ? -EIO : 0;
                else if (c->broken)
                        result = -EIO;
                else {
                        pthread_mutex_unlock(&s->mutex);
                        result = channel_read_answer(c, call, &lost);
                        pthread_mutex_lock(&s->mutex);
                        if (lost)
                                channel_break(s, c);
                }

                c->head = call->next;
                if (!c->head)
                        c->tail = &c->head;
                if (call->kind == STORAGE_IO_WRITE && !call->req) {
                        /* Answered early: what the caller was told must be what happened. */
                        c->n_unanswered -= call->size;
                        if (result != (int32_t) call->size)
                                channel_break(s, c);
                        pthread_cond_broadcast(&s->window_cond);
                }
                pthread_mutex_unlock(&s->mutex);
                call_reply(call, result);
                pthread_mutex_lock(&s->mutex);
        }
        c->reading = false;
        pthread_mutex_unlock(&s->mutex);
}

/* Sends one request (its header, and a write's payload) and queues its call. With s->mutex not held;
 * the call is the channel's afterwards, also on failure (the reader then answers it with EIO). */
static bool channel_send(StorageIo *s, BlockChannel *c, BlockCall *call, uint8_t op, uint64_t off,
                         const void *payload) {
        uint8_t header[BLOCK_REQUEST_SIZE];
        bool ok;

        block_request_encode(&(BlockRequest) { .op = op, .length = (uint32_t) call->size, .offset = off }, header);
        /* Queued in the order of sending, under the send lock: that is the order of the answers. */
        pthread_mutex_lock(&c->send_mutex);
        pthread_mutex_lock(&s->mutex);
        *c->tail = call;
        c->tail = &call->next;
        if (call->kind == STORAGE_IO_WRITE && !call->req)
                c->n_unanswered += call->size;
        pthread_mutex_unlock(&s->mutex);
        ok = sock_send_all(c->fd, header, sizeof header) &&
                (op != BLOCK_OP_WRITE || sock_send_all(c->fd, payload, call->size));
        pthread_mutex_unlock(&c->send_mutex);
        if (!ok) {
                pthread_mutex_lock(&s->mutex);
                channel_break(s, c);
                pthread_mutex_unlock(&s->mutex);
        }
        return ok;
}

static void job_run_socket(StorageIo *s, StorageIoJob *j, ino_t ino) {
        BlockChannel *c;
        BlockCall *call;
        bool ok = true;
        int error = 0;

        pthread_mutex_lock(&s->mutex);
        c = channel_acquire(s, j->fd, ino);
        if (!c) {
                pthread_mutex_unlock(&s->mutex);
                return (void) fuse_reply_err(j->req, ENOMEM);
        }
        if (j->kind == STORAGE_IO_WRITE)
                /* Flow control: the reader makes room as the answers come. */
                while (!c->broken && c->n_unanswered > 0 && c->n_unanswered + j->size > STORAGE_IO_WINDOW)
                        pthread_cond_wait(&s->window_cond, &s->mutex);
        if (c->broken)
                error = EIO;
        pthread_mutex_unlock(&s->mutex);
        if (error > 0) {
                (void) fuse_reply_err(j->req, error);
                goto release;
        }

        switch (j->kind) {
        case STORAGE_IO_READ:
                call = calloc(1, sizeof *call);
                if (call) {
                        /* FUSE reads at most 1 MiB at a time; beyond one request's limit a read is short. */
                        *call = (BlockCall) { .kind = j->kind, .req = j->req,
                                              .size = MIN(j->size, (size_t) BLOCK_LENGTH_MAX) };
                        call->buf = malloc(MAX(call->size, (size_t) 1));
                }
                if (!call || !call->buf) {
                        free(call);
                        (void) fuse_reply_err(j->req, ENOMEM);
                        goto release;
                }
                ok = channel_send(s, c, call, BLOCK_OP_READ, (uint64_t) j->off, NULL);
                break;

        case STORAGE_IO_WRITE:
                /* In requests of at most 4 MiB, each answered to FUSE here, once all of it is sent. */
                for (size_t done = 0; ok && done < j->size;) {
                        size_t n = MIN(j->size - done, (size_t) BLOCK_LENGTH_MAX);

                        call = calloc(1, sizeof *call);
                        if (!call) {
                                error = ENOMEM;
                                break;
                        }
                        *call = (BlockCall) { .kind = j->kind, .size = n };
                        ok = channel_send(s, c, call, BLOCK_OP_WRITE, (uint64_t) j->off + done, j->data + done);
                        done += n;
                }
                if (!ok)
                        error = EIO;
                if (error > 0)
                        (void) fuse_reply_err(j->req, error);
                else
                        (void) fuse_reply_write(j->req, j->size);
                break;

        default:
                call = calloc(1, sizeof *call);
                if (!call) {
                        (void) fuse_reply_err(j->req, ENOMEM);
                        goto release;
                }
                *call = (BlockCall) { .kind = j->kind, .req = j->req };
                ok = channel_send(s, c, call, BLOCK_OP_FSYNC, 0, NULL);
                break;
        }

        /* Whoever sent while nobody was reading reads (the calls before are answered first). */
        pthread_mutex_lock(&s->mutex);
        if (c->head && !c->reading) {
                c->reading = true;
                pthread_mutex_unlock(&s->mutex);
                channel_read_answers(s, c);
                pthread_mutex_lock(&s->mutex);
        }
        pthread_mutex_unlock(&s->mutex);

release:
        pthread_mutex_lock(&s->mutex);
        channel_release(s, c);
        pthread_mutex_unlock(&s->mutex);
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

        if (j->kind == STORAGE_IO_READER) {
                channel_read_answers(s, j->channel);
                pthread_mutex_lock(&s->mutex);
                channel_release(s, j->channel);
                pthread_mutex_unlock(&s->mutex);
                return;
        }

        if (fstat(j->fd, &st) >= 0 && S_ISSOCK(st.st_mode))
                return job_run_socket(s, j, st.st_ino);

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

        case STORAGE_IO_FLUSH: /* never queued: storage_io_flush() */
        case STORAGE_IO_READER:
                break;
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
        pthread_cond_init(&s->window_cond, NULL);

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
        /* A channel lives while a worker uses it: none is left. */
        assert(!s->channels);
        pthread_cond_destroy(&s->window_cond);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->mutex);
        free(s);
        return NULL;
}

static void storage_io_push(StorageIo *s, StorageIoJob *j) {
        pthread_mutex_lock(&s->mutex);
        *s->tail = j;
        s->tail = &j->next;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->mutex);
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
        storage_io_push(s, j);
        return 0;
}

/* A write to a remote storage straight from the loop, when that cannot block: the socket has room
 * for all of it, nobody else is sending, the window is open, and it is one piece of memory. That
 * spares a copy of the payload and a wakeup of a worker per request, which count because the
 * kernel sends a writer's next request only after this one is answered. 1 when the write was sent
 * and answered, 0 when it is for a worker after all. */
static int storage_io_write_direct(StorageIo *s, fuse_req_t req, int fd, struct fuse_bufvec *bufv, size_t size,
                                   off_t off) {
        uint8_t header[BLOCK_REQUEST_SIZE];
        StorageIoJob *reader = NULL;
        BlockChannel *c;
        BlockCall *call;
        struct stat st;
        int outq;
        bool ok;

        if (size == 0 || size > BLOCK_LENGTH_MAX || bufv->count != 1 || bufv->idx != 0 || bufv->off != 0 ||
            (bufv->buf[0].flags & FUSE_BUF_IS_FD) || bufv->buf[0].size < size)
                return 0;
        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
                return 0;

        pthread_mutex_lock(&s->mutex);
        c = channel_find(s, st.st_ino);
        if (!c || c->broken || (c->n_unanswered > 0 && c->n_unanswered + size > STORAGE_IO_WINDOW) ||
            pthread_mutex_trylock(&c->send_mutex) != 0) {
                pthread_mutex_unlock(&s->mutex);
                return 0;
        }
        /* A stream socket takes a send whole while what is queued stays under its buffer size; twice
         * the payload leaves room for the socket's own overhead per buffer. */
        if (ioctl(c->fd, SIOCOUTQ, &outq) < 0 || outq < 0 ||
            (uint64_t) outq + 2 * (size + BLOCK_REQUEST_SIZE) > (uint64_t) c->sndbuf)
                goto fallback;
        call = calloc(1, sizeof *call);
        if (!call)
                goto fallback;
        /* Allocated now: once sent, the answers must have a reader. */
        reader = calloc(1, sizeof *reader);
        if (!reader) {
                free(call);
                goto fallback;
        }
        *call = (BlockCall) { .kind = STORAGE_IO_WRITE, .size = size };
        *c->tail = call;
        c->tail = &call->next;
        c->n_unanswered += size;
        c->users++;
        pthread_mutex_unlock(&s->mutex);

        block_request_encode(&(BlockRequest) { .op = BLOCK_OP_WRITE, .length = (uint32_t) size,
                                               .offset = (uint64_t) off }, header);
        ok = send(c->fd, header, sizeof header, MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE) == (ssize_t) sizeof header &&
                send(c->fd, bufv->buf[0].mem, size, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t) size;
        pthread_mutex_unlock(&c->send_mutex);

        pthread_mutex_lock(&s->mutex);
        /* Part of a request may have gone out: the stream cannot go on. (Not expected with the room
         * checked above.) */
        if (!ok)
                channel_break(s, c);
        if (!c->reading) {
                c->reading = true;
                *reader = (StorageIoJob) { .kind = STORAGE_IO_READER, .fd = -EBADF, .channel = c };
                c->users++;
                pthread_mutex_unlock(&s->mutex);
                storage_io_push(s, TAKE_PTR(reader));
                pthread_mutex_lock(&s->mutex);
        }
        channel_release(s, c);
        pthread_mutex_unlock(&s->mutex);
        free(reader);

        if (ok)
                (void) fuse_reply_write(req, size);
        else
                (void) fuse_reply_err(req, EIO);
        return 1;

fallback:
        pthread_mutex_unlock(&c->send_mutex);
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

        if (storage_io_write_direct(s, req, fd, bufv, size, off) > 0)
                return 0;

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

int storage_io_flush(StorageIo *s, fuse_req_t req, int fd) {
        BlockChannel *c;
        struct stat st;
        bool broken;
        char byte;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISSOCK(st.st_mode))
                return fuse_reply_err(req, 0), 0;

        pthread_mutex_lock(&s->mutex);
        c = channel_find(s, st.st_ino);
        if (c && c->head) {
                /* Answered by the channel's reader once every call before it is. */
                BlockCall *call = calloc(1, sizeof *call);

                if (!call) {
                        pthread_mutex_unlock(&s->mutex);
                        return -ENOMEM;
                }
                *call = (BlockCall) { .kind = STORAGE_IO_FLUSH, .req = req };
                *c->tail = call;
                c->tail = &call->next;
                pthread_mutex_unlock(&s->mutex);
                return 0;
        }
        broken = c && c->broken;
        pthread_mutex_unlock(&s->mutex);

        /* Nothing in flight: the stream is fine unless it ended (the connection was lost, or an
         * early-answered write failed and broke it). Nothing can be waiting to be read otherwise. */
        if (!broken) {
                ssize_t k = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

                broken = k >= 0 || (errno != EAGAIN && errno != EINTR);
        }
        (void) fuse_reply_err(req, broken ? EIO : 0);
        return 0;
}
