/* Byte ring that keeps the newest bytes of a stream, addressed by absolute stream offset */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct Ring {
        uint8_t *data;
        size_t size;   /* capacity */
        uint64_t end;  /* absolute offset one past the newest byte = bytes ever appended */
} Ring;

int ring_init(Ring *r, size_t size);
void ring_done(Ring *r);
/* Appends, dropping the oldest bytes when full. */
void ring_append(Ring *r, const void *data, size_t n);
/* Offset of the oldest byte still held. */
uint64_t ring_start(const Ring *r);
/* Copies up to n bytes from absolute offset *pos into buf. A *pos older than ring_start() is moved
 * up to it first (the bytes in between were lost); returns the number of bytes copied and advances
 * *pos. Returns 0 when *pos == end. */
size_t ring_read(const Ring *r, uint64_t *pos, void *buf, size_t n);
/* Like ring_read, but returns a pointer to a contiguous chunk inside the ring (no copy). */
size_t ring_peek(const Ring *r, uint64_t *pos, const void **ret_chunk);
