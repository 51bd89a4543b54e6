/* Byte ring that keeps the newest bytes of a stream, addressed by absolute stream offset */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "ring.h"

int ring_init(Ring *r, size_t size) {
        assert(r);
        assert(size > 0);

        *r = (Ring) {};
        r->data = malloc(size);
        if (!r->data)
                return -ENOMEM;
        r->size = size;
        return 0;
}

void ring_done(Ring *r) {
        if (!r)
                return;
        free(r->data);
        *r = (Ring) {};
}

uint64_t ring_start(const Ring *r) {
        return r->end > r->size ? r->end - r->size : 0;
}

void ring_append(Ring *r, const void *data, size_t n) {
        const uint8_t *p = data;

        assert(r);
        if (n > r->size) {
                /* Only the tail can survive. */
                r->end += n - r->size;
                p += n - r->size;
                n = r->size;
        }
        while (n > 0) {
                size_t at = r->end % r->size, k = MIN(n, r->size - at);

                memcpy(r->data + at, p, k);
                r->end += k;
                p += k;
                n -= k;
        }
}

size_t ring_peek(const Ring *r, uint64_t *pos, const void **ret_chunk) {
        size_t at, k;

        assert(r);
        assert(pos);

        if (*pos < ring_start(r))
                *pos = ring_start(r);
        if (*pos >= r->end) {
                *pos = r->end;
                *ret_chunk = NULL;
                return 0;
        }
        at = *pos % r->size;
        k = MIN((uint64_t) (r->size - at), r->end - *pos);
        *ret_chunk = r->data + at;
        return k;
}

size_t ring_read(const Ring *r, uint64_t *pos, void *buf, size_t n) {
        uint8_t *out = buf;
        size_t done = 0;

        while (done < n) {
                const void *chunk;
                size_t k = ring_peek(r, pos, &chunk);

                if (k == 0)
                        break;
                k = MIN(k, n - done);
                memcpy(out + done, chunk, k);
                *pos += k;
                done += k;
        }
        return done;
}
