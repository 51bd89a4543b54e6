/* Bytes for a non-blocking fd that it could not take yet, bounded */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keystrokes arrive faster than a 9600 baud line drains them (a paste); a UART that cannot keep up
 * loses bytes too, but only beyond a generous bound. */
#define WRITE_QUEUE_MAX (256U * 1024U)

typedef struct WriteQueue {
        uint8_t *data;
        size_t size, allocated;
        uint64_t n_dropped;
} WriteQueue;

/* Writes what fd takes now and queues the rest (up to WRITE_QUEUE_MAX; beyond that it is dropped
 * and counted). Returns 1 when bytes are queued (wait for EPOLLOUT, then write_queue_flush()),
 * 0 when all went out, or a negative errno of write() other than EAGAIN (the fd is broken). */
int write_queue_write(WriteQueue *q, int fd, const void *data, size_t n);
/* Writes queued bytes; returns as write_queue_write(). */
int write_queue_flush(WriteQueue *q, int fd);
/* Appends without writing (while there is no fd). */
void write_queue_append(WriteQueue *q, const void *data, size_t n);
void write_queue_clear(WriteQueue *q);
void write_queue_done(WriteQueue *q);
