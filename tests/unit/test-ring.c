/* Tests for the byte ring that keeps the newest bytes of a stream */
#include "macro.h"
#include "ring.h"
#include "tests.h"

static void append_str(Ring *r, const char *s) {
        ring_append(r, s, strlen(s));
}

/* Reads everything from *pos on into a NUL-terminated string. */
static void read_all(const Ring *r, uint64_t *pos, char *buf, size_t size) {
        size_t n = ring_read(r, pos, buf, size - 1);

        buf[n] = 0;
}

TEST(empty) {
        Ring r;
        uint64_t pos = 0;
        const void *chunk = (const void *) 1;
        char buf[4];

        ASSERT_OK(ring_init(&r, 8));
        ASSERT_EQ_U(ring_start(&r), 0);
        ASSERT_EQ_U(ring_read(&r, &pos, buf, sizeof(buf)), 0);
        ASSERT_EQ_U(ring_peek(&r, &pos, &chunk), 0);
        ASSERT_TRUE(chunk == NULL);
        ASSERT_EQ_U(pos, 0);
        ring_done(&r);
        ASSERT_TRUE(r.data == NULL);
        ring_done(&r);
}

TEST(append_and_read) {
        Ring r;
        uint64_t pos = 0;
        char buf[16];

        ASSERT_OK(ring_init(&r, 8));
        append_str(&r, "abc");
        ASSERT_EQ_U(r.end, 3);
        ASSERT_EQ_U(ring_start(&r), 0);
        read_all(&r, &pos, buf, sizeof(buf));
        ASSERT_STREQ(buf, "abc");
        ASSERT_EQ_U(pos, 3);

        /* Nothing new: nothing read, position unchanged. */
        ASSERT_EQ_U(ring_read(&r, &pos, buf, sizeof(buf)), 0);
        ASSERT_EQ_U(pos, 3);

        append_str(&r, "de");
        read_all(&r, &pos, buf, sizeof(buf));
        ASSERT_STREQ(buf, "de");
        ASSERT_EQ_U(pos, 5);

        /* A short buffer takes the first bytes and advances by what it took. */
        pos = 0;
        ASSERT_EQ_U(ring_read(&r, &pos, buf, 2), 2);
        ASSERT_TRUE(memcmp(buf, "ab", 2) == 0);
        ASSERT_EQ_U(pos, 2);
        ring_done(&r);
}

TEST(wraparound) {
        Ring r;
        uint64_t pos = 0;
        const void *chunk;
        char buf[16];

        ASSERT_OK(ring_init(&r, 8));
        append_str(&r, "012345");
        read_all(&r, &pos, buf, sizeof(buf));
        ASSERT_STREQ(buf, "012345");

        /* Crosses the end of the storage: 6,7 at the tail, 8,9 at the head. */
        append_str(&r, "6789");
        ASSERT_EQ_U(r.end, 10);
        ASSERT_EQ_U(ring_start(&r), 2);
        read_all(&r, &pos, buf, sizeof(buf));
        ASSERT_STREQ(buf, "6789");
        ASSERT_EQ_U(pos, 10);

        /* Peek returns contiguous chunks: first up to the end of the storage, then the rest. */
        pos = 6;
        ASSERT_EQ_U(ring_peek(&r, &pos, &chunk), 2);
        ASSERT_TRUE(memcmp(chunk, "67", 2) == 0);
        pos += 2;
        ASSERT_EQ_U(ring_peek(&r, &pos, &chunk), 2);
        ASSERT_TRUE(memcmp(chunk, "89", 2) == 0);

        /* The whole window, across the seam. */
        pos = ring_start(&r);
        read_all(&r, &pos, buf, sizeof(buf));
        ASSERT_STREQ(buf, "23456789");
        ring_done(&r);
}

TEST(reader_falls_behind) {
        Ring r;
        uint64_t pos = 0;
        char buf[32];

        ASSERT_OK(ring_init(&r, 8));
        append_str(&r, "abcd");
        ASSERT_EQ_U(ring_read(&r, &pos, buf, 2), 2);
        ASSERT_EQ_U(pos, 2);

        /* 12 more bytes: the reader's position 2 is long gone, it continues at the oldest held byte. */
        append_str(&r, "efghijklmnop");
        ASSERT_EQ_U(r.end, 16);
        ASSERT_EQ_U(ring_start(&r), 8);
        read_all(&r, &pos, buf, sizeof(buf));
        ASSERT_STREQ(buf, "ijklmnop");
        ASSERT_EQ_U(pos, 16);

        /* A position beyond the end is clamped to it. */
        pos = 100;
        ASSERT_EQ_U(ring_read(&r, &pos, buf, sizeof(buf)), 0);
        ASSERT_EQ_U(pos, 16);
        ring_done(&r);
}

TEST(append_larger_than_capacity) {
        Ring r;
        uint64_t pos = 0;
        char buf[32];

        ASSERT_OK(ring_init(&r, 8));
        append_str(&r, "xyz");
        /* Only the tail of the 20 bytes survives, and the stream offset counts all of them. */
        append_str(&r, "ABCDEFGHIJKLMNOPQRST");
        ASSERT_EQ_U(r.end, 23);
        ASSERT_EQ_U(ring_start(&r), 15);
        read_all(&r, &pos, buf, sizeof(buf));
        ASSERT_STREQ(buf, "MNOPQRST");
        ASSERT_EQ_U(pos, 23);

        /* Exactly the capacity, starting mid-storage. */
        append_str(&r, "12345678");
        ASSERT_EQ_U(ring_start(&r), 23);
        read_all(&r, &pos, buf, sizeof(buf));
        ASSERT_STREQ(buf, "12345678");
        ring_done(&r);
}

TEST(many_small_appends) {
        Ring r;
        uint64_t pos = 0;
        char expect[8], buf[8];

        ASSERT_OK(ring_init(&r, 7));
        for (unsigned i = 0; i < 1000; i++) {
                char c = (char) ('a' + i % 26);

                ring_append(&r, &c, 1);
        }
        ASSERT_EQ_U(ring_start(&r), 993);
        for (unsigned i = 0; i < 7; i++)
                expect[i] = (char) ('a' + (993 + i) % 26);
        expect[7] = 0;
        read_all(&r, &pos, buf, sizeof(buf));
        ASSERT_STREQ(buf, expect);
        ring_done(&r);
}

TEST_MAIN()
