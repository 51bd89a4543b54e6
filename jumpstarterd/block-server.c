/* A storage fd that can be taken back: the block protocol over a socket, served by a thread */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "block-protocol.h"
#include "block-server.h"
#include "log.h"
#include "macro.h"

struct BlockServer {
        int storage_fd;
        int sock;
        uint64_t size;
        bool writable;
        pthread_t thread;
        uint8_t *buf; /* BLOCK_LENGTH_MAX */
};

/* Whole messages or nothing: 0 at end of file or on a cut, else the size. */
static ssize_t recv_all(int fd, void *p, size_t n) {
        size_t got = 0;

        while (got < n) {
                ssize_t k = recv(fd, (uint8_t *) p + got, n - got, MSG_WAITALL);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return 0;
                got += (size_t) k;
        }
        return (ssize_t) got;
}

static bool send_all(int fd, const void *p, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = send(fd, (const uint8_t *) p + done, n - done, MSG_NOSIGNAL);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                done += (size_t) k;
        }
        return true;
}

/* Reads or writes what lies within the storage: short at the end, -ENOSPC for a write wholly past it. */
static int32_t serve(BlockServer *b, const BlockRequest *q) {
        uint64_t n;

        if (q->op == BLOCK_OP_FSYNC)
                return fdatasync(b->storage_fd) < 0 ? -errno : 0;
        if (q->op == BLOCK_OP_WRITE && !b->writable)
                return -EBADF;
        if (q->offset >= b->size)
                return q->op == BLOCK_OP_WRITE && q->length > 0 ? -ENOSPC : 0;
        n = MIN((uint64_t) q->length, b->size - q->offset);
        for (uint64_t done = 0; done < n;) {
                ssize_t k = q->op == BLOCK_OP_READ ?
                        pread(b->storage_fd, b->buf + done, n - done, (off_t) (q->offset + done)) :
                        pwrite(b->storage_fd, b->buf + done, n - done, (off_t) (q->offset + done));

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return done > 0 ? (int32_t) done : -errno;
                if (k == 0)
                        return (int32_t) done;
                done += (uint64_t) k;
        }
        return (int32_t) n;
}

static void *block_server_thread(void *userdata) {
        BlockServer *b = userdata;

        for (;;) {
                uint8_t header[BLOCK_REQUEST_SIZE], answer[BLOCK_ANSWER_SIZE];
                BlockRequest q;
                int32_t result;

                if (recv_all(b->sock, header, sizeof header) <= 0)
                        break;
                if (!block_request_decode(header, &q)) {
                        log_warning("A storage client does not speak the block protocol; closing its stream");
                        break;
                }
                if (q.op == BLOCK_OP_WRITE && q.length > 0 && recv_all(b->sock, b->buf, q.length) <= 0)
                        break;
                result = serve(b, &q);
                block_answer_encode(result, answer);
                if (!send_all(b->sock, answer, sizeof answer))
                        break;
                if (q.op == BLOCK_OP_READ && result > 0 && !send_all(b->sock, b->buf, (size_t) result))
                        break;
        }
        /* The peer reads end of file from now on. */
        (void) shutdown(b->sock, SHUT_RDWR);
        return NULL;
}

int block_server_start(int storage_fd, uint64_t size, bool writable, int *ret_fd, BlockServer **ret) {
        _cleanup_free_ BlockServer *b = NULL;
        int pair[2], r;

        assert(storage_fd >= 0 && ret_fd && ret);

        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->buf = malloc(BLOCK_LENGTH_MAX);
        if (!b->buf)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
                r = -errno;
                free(b->buf);
                return r;
        }
        b->sock = pair[0];
        b->storage_fd = storage_fd;
        b->size = size;
        b->writable = writable;

        r = -pthread_create(&b->thread, NULL, block_server_thread, b);
        if (r < 0) {
                close(pair[0]);
                close(pair[1]);
                free(b->buf);
                return r;
        }
        *ret_fd = pair[1];
        *ret = TAKE_PTR(b);
        return 0;
}

BlockServer *block_server_free(BlockServer *b) {
        if (!b)
                return NULL;
        /* Ends the thread's recv(), and the request it is in at its next send(). */
        (void) shutdown(b->sock, SHUT_RDWR);
        (void) pthread_join(b->thread, NULL);
        close(b->sock);
        close(b->storage_fd);
        free(b->buf);
        free(b);
        return NULL;
}
