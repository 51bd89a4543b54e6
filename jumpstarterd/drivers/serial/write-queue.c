/* Bytes for a non-blocking fd that it could not take yet, bounded */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "write-queue.h"

void write_queue_append(WriteQueue *q, const void *data, size_t n) {
        size_t take = MIN(n, WRITE_QUEUE_MAX - MIN(q->size, (size_t) WRITE_QUEUE_MAX));

        if (take < n)
                q->n_dropped += n - take;
        if (take == 0)
                return;
        if (q->size + take > q->allocated) {
                size_t a = MAX(q->allocated * 2, q->size + take);
                uint8_t *p = realloc(q->data, a);

                if (!p) {
                        q->n_dropped += take;
                        return;
                }
                q->data = p;
                q->allocated = a;
        }
        memcpy(q->data + q->size, data, take);
        q->size += take;
}

int write_queue_flush(WriteQueue *q, int fd) {
        size_t done = 0;

        while (done < q->size) {
                ssize_t k = write(fd, q->data + done, q->size - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return negative_errno();
                }
                done += (size_t) k;
        }
        memmove(q->data, q->data + done, q->size - done);
        q->size -= done;
        return q->size > 0;
}

int write_queue_write(WriteQueue *q, int fd, const void *data, size_t n) {
        const uint8_t *p = data;

        /* Order: what waits goes first. */
        if (q->size > 0) {
                write_queue_append(q, data, n);
                return write_queue_flush(q, fd);
        }
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return negative_errno();
                }
                p += k;
                n -= (size_t) k;
        }
        write_queue_append(q, p, n);
        return q->size > 0;
}

void write_queue_clear(WriteQueue *q) {
        q->size = 0;
}

void write_queue_done(WriteQueue *q) {
        free(q->data);
        *q = (WriteQueue) {};
}
