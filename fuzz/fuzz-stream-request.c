/* Fuzzer for what a data stream client sends an exporter first: the request line (and the token in
 * it), and the block protocol's request headers that follow on a storage stream. */
#include <stdlib.h>
#include <string.h>

#include "block-protocol.h"
#include "config.h"
#include "fuzz-check.h"
#include "fuzz.h"
#include "macro.h"
#include "stream-request.h"

static Keyring *ring;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *message = NULL, *detail = NULL;
        StreamRequest req = { .kind = _STREAM_KIND_INVALID };
        TokenClaims *claims = NULL;
        ApiError e;
        int r;

        if (!ring) {
                CHECK(keyring_new(&ring) >= 0);
                CHECK(keyring_rotate(ring, NULL) >= 0);
        }

        /* Every 16 bytes, as a block request: what decodes encodes back to the same bytes. */
        if (size >= BLOCK_REQUEST_SIZE) {
                BlockRequest q;
                uint8_t again[BLOCK_REQUEST_SIZE];

                if (block_request_decode(data, &q)) {
                        CHECK(q.length <= BLOCK_LENGTH_MAX);
                        block_request_encode(&q, again);
                        CHECK(memcmp(again, data, BLOCK_REQUEST_SIZE) == 0);
                }
        }

        r = stream_request_parse((const char *) data, size, &req, &message);
        if (r < 0) {
                CHECK(r == -EINVAL || r == -EBADMSG || r == -ENOMEM);
                CHECK(message || r == -ENOMEM);
                CHECK(!req.token && !req.dut);
                return 0;
        }
        CHECK(!message);
        CHECK(req.token && *req.token);
        CHECK(dut_name_is_valid(req.dut));
        CHECK(stream_kind_to_string(req.kind));

        /* No token of the fuzzer's making carries this keyring's signature. */
        r = stream_request_check(&req, &(StreamCheck) {
                        .keyring = ring,
                        .issuer = "lab",
                        .exporter_name = "lab1",
                        .dut_exists = true,
                        .lease = "lease1",
                        .now_usec = 1800000000ULL * 1000000ULL,
                }, &claims, &e, &message, &detail);
        CHECK(r == -EACCES || r == -ENOMEM);
        CHECK(!claims);
        if (r == -EACCES)
                CHECK(message && api_error_to_string(e));
        stream_request_done(&req);
        return 0;
}
