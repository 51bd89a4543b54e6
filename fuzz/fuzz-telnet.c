/* Fuzzer for the telnet / RFC 2217 decoder of the ser2net driver: bytes from the network. Never
 * more data bytes out than in, answers within the room the caller gives (n + 2), only well-formed
 * answers, options only as the client allows them, and the same result however the stream is cut
 * into reads.
 *
 * Input: a flags byte (bit 0: offer COM-PORT-OPTION, bit 1: start the negotiation first), a seed
 * for the read sizes, then the stream. */
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "fuzz.h"
#include "macro.h"
#include "telnet.h"

static bool bit(const uint8_t *set, unsigned o) {
        return set[o / 8] & (1U << (o % 8));
}

static void check_state(const Telnet *t) {
        for (unsigned o = 0; o < 256; o++) {
                if (bit(t->will, o))
                        CHECK(o == TELNET_OPT_BINARY || o == TELNET_OPT_SGA ||
                              (t->com_port && o == TELNET_OPT_COM_PORT));
                if (bit(t->do_, o))
                        CHECK(o == TELNET_OPT_BINARY || o == TELNET_OPT_SGA || o == TELNET_OPT_ECHO);
        }
        CHECK((unsigned) t->state <= (unsigned) TELNET_STATE_SB_IAC);
}

static void check_reply(const uint8_t *reply, size_t n) {
        CHECK(n % 3 == 0);
        for (size_t i = 0; i < n; i += 3) {
                CHECK(reply[i] == TELNET_IAC);
                CHECK(reply[i + 1] >= TELNET_WILL && reply[i + 1] <= TELNET_DONT);
        }
}

/* Feeds stream to t in reads of the sizes that seed gives (all of it at once for seed 0), appending
 * the data bytes to data and the answers to reply (each at least n bytes). */
static void run(Telnet *t, const uint8_t *stream, size_t n, uint8_t seed, uint8_t *data, size_t *ret_data_len,
                uint8_t *reply, size_t *ret_reply_len) {
        size_t d = 0, r = 0;
        unsigned state = seed;

        for (size_t i = 0; i < n; ) {
                size_t k = n - i, out, reply_len = SIZE_MAX;
                uint8_t *buf, *rbuf;

                if (seed != 0) {
                        state = state * 1103515245U + 12345U;
                        k = MIN(k, (size_t) (state >> 16) % 17 + 1);
                }
                /* Exactly the room the header promises, so that ASan sees any write past it. */
                buf = malloc(k);
                rbuf = malloc(k + 2);
                CHECK(buf && rbuf);
                memcpy(buf, stream + i, k);

                out = telnet_receive(t, buf, k, rbuf, &reply_len);
                CHECK(out <= k);
                CHECK(reply_len <= k + 2);
                check_reply(rbuf, reply_len);
                check_state(t);

                CHECK(d + out <= n && r + reply_len <= n + 2);
                memcpy(data + d, buf, out);
                memcpy(reply + r, rbuf, reply_len);
                d += out;
                r += reply_len;
                free(buf);
                free(rbuf);
                i += k;
        }
        *ret_data_len = d;
        *ret_reply_len = r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ uint8_t *d1 = NULL, *d2 = NULL, *r1 = NULL, *r2 = NULL;
        uint8_t start[18];
        size_t n, d1_len, d2_len, r1_len, r2_len;
        Telnet t1, t2;
        bool com_port, negotiate;
        uint8_t seed;

        if (size < 2)
                return 0;
        com_port = data[0] & 1;
        negotiate = data[0] & 2;
        seed = data[1];
        data += 2;
        n = size - 2;

        telnet_init(&t1, com_port);
        telnet_init(&t2, com_port);
        if (negotiate) {
                size_t k = telnet_start(&t1, start);

                CHECK(k <= sizeof start);
                check_reply(start, k);
                CHECK(telnet_start(&t2, start) == k);
        }
        check_state(&t1);

        d1 = malloc(n + 1);
        d2 = malloc(n + 1);
        r1 = malloc(n + 3);
        r2 = malloc(n + 3);
        CHECK(d1 && d2 && r1 && r2);

        run(&t1, data, n, 0, d1, &d1_len, r1, &r1_len);
        run(&t2, data, n, seed | 1, d2, &d2_len, r2, &r2_len);

        /* How the stream was cut into reads changes nothing. */
        CHECK(d1_len == d2_len && memcmp(d1, d2, d1_len) == 0);
        CHECK(r1_len == r2_len && memcmp(r1, r2, r1_len) == 0);
        CHECK(t1.state == t2.state);
        CHECK(memcmp(t1.will, t2.will, sizeof t1.will) == 0 && memcmp(t1.do_, t2.do_, sizeof t1.do_) == 0);

        /* A stream without IAC is all data, unchanged. */
        if (!memchr(data, TELNET_IAC, n))
                CHECK(d1_len == n && memcmp(d1, data, n) == 0 && r1_len == 0);
        return 0;
}
