/* The storage stream's block protocol (docs/protocol.md, "Data streams"): requests and answers */
#pragma once

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* A request: u8 op, 3 zero bytes, u32 length, u64 offset (little-endian), then length bytes for a
 * write. An answer: i32 (bytes done, or a negative errno), 4 zero bytes, then the data of a
 * successful read. */
#define BLOCK_REQUEST_SIZE 16
#define BLOCK_ANSWER_SIZE 8
#define BLOCK_LENGTH_MAX (4U * 1024U * 1024U)

#define BLOCK_OP_READ 'r'
#define BLOCK_OP_WRITE 'w'
#define BLOCK_OP_FSYNC 'f'

typedef struct BlockRequest {
        uint8_t op;
        uint32_t length;
        uint64_t offset;
} BlockRequest;

static inline void block_request_encode(const BlockRequest *r, uint8_t buf[BLOCK_REQUEST_SIZE]) {
        uint32_t length = htole32(r->length);
        uint64_t offset = htole64(r->offset);

        memset(buf, 0, BLOCK_REQUEST_SIZE);
        buf[0] = r->op;
        memcpy(buf + 4, &length, 4);
        memcpy(buf + 8, &offset, 8);
}

/* False for an unknown op, non-zero padding or a length over the limit: the peer does not speak
 * the protocol, and the stream ends. */
static inline bool block_request_decode(const uint8_t buf[BLOCK_REQUEST_SIZE], BlockRequest *ret) {
        uint32_t length;
        uint64_t offset;

        if (buf[1] != 0 || buf[2] != 0 || buf[3] != 0)
                return false;
        if (buf[0] != BLOCK_OP_READ && buf[0] != BLOCK_OP_WRITE && buf[0] != BLOCK_OP_FSYNC)
                return false;
        memcpy(&length, buf + 4, 4);
        memcpy(&offset, buf + 8, 8);
        ret->op = buf[0];
        ret->length = le32toh(length);
        ret->offset = le64toh(offset);
        if (ret->length > BLOCK_LENGTH_MAX || (ret->op == BLOCK_OP_FSYNC && ret->length != 0))
                return false;
        return true;
}

static inline void block_answer_encode(int32_t result, uint8_t buf[BLOCK_ANSWER_SIZE]) {
        uint32_t u = htole32((uint32_t) result);

        memset(buf, 0, BLOCK_ANSWER_SIZE);
        memcpy(buf, &u, 4);
}

static inline bool block_answer_decode(const uint8_t buf[BLOCK_ANSWER_SIZE], int32_t *ret) {
        uint32_t u;

        if (buf[4] != 0 || buf[5] != 0 || buf[6] != 0 || buf[7] != 0)
                return false;
        memcpy(&u, buf, 4);
        *ret = (int32_t) le32toh(u);
        return true;
}
