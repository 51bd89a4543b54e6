/* Tests for the exporter link's NDJSON splitter, watch line parser, backoff and RFC 3339 times */
#include <errno.h>
#include <stdio.h>

#include "link-util.h"
#include "macro.h"
#include "tests.h"

typedef struct Lines {
        char *got[16];
        size_t n;
        int fail_at; /* return -EBADMSG for this line number (1-based); 0: never */
} Lines;

static int collect(const char *line, size_t len, void *userdata) {
        Lines *c = userdata;

        ASSERT_EQ_U(strlen(line), len);
        ASSERT_TRUE(c->n < ELEMENTSOF(c->got));
        c->got[c->n++] = strndup(line, len);
        return c->fail_at > 0 && (int) c->n == c->fail_at ? -EBADMSG : 0;
}

static void lines_done(Lines *c) {
        for (size_t i = 0; i < c->n; i++)
                free(c->got[i]);
        *c = (Lines) {};
}

TEST(splitter_boundaries) {
        static const char stream[] = "{\"type\":\"ping\"}\n{\"type\":\"leases\",\"leases\":[]}\n\n{\"a\":1}\r\n{\"b\"";
        /* Every split of the stream into two reads gives the same lines. */
        for (size_t cut = 0; cut <= sizeof stream - 1; cut++) {
                NdjsonSplitter s;
                Lines c = {};

                ndjson_splitter_init(&s, 1024);
                ASSERT_OK(ndjson_splitter_feed(&s, stream, cut, collect, &c));
                ASSERT_OK(ndjson_splitter_feed(&s, stream + cut, sizeof stream - 1 - cut, collect, &c));
                ASSERT_EQ_U(c.n, 3);
                ASSERT_STREQ(c.got[0], "{\"type\":\"ping\"}");
                ASSERT_STREQ(c.got[1], "{\"type\":\"leases\",\"leases\":[]}");
                ASSERT_STREQ(c.got[2], "{\"a\":1}");
                /* The unfinished line waits for its end. */
                ASSERT_EQ_U(s.size, 4);
                ASSERT_OK(ndjson_splitter_feed(&s, ":2}\n", 4, collect, &c));
                ASSERT_EQ_U(c.n, 4);
                ASSERT_STREQ(c.got[3], "{\"b\":2}");
                lines_done(&c);
                ndjson_splitter_done(&s);
        }
}

TEST(splitter_byte_by_byte) {
        static const char stream[] = "one\ntwo\nthree\n";
        NdjsonSplitter s;
        Lines c = {};

        ndjson_splitter_init(&s, 16);
        for (size_t i = 0; i < sizeof stream - 1; i++)
                ASSERT_OK(ndjson_splitter_feed(&s, stream + i, 1, collect, &c));
        ASSERT_EQ_U(c.n, 3);
        ASSERT_STREQ(c.got[2], "three");
        lines_done(&c);
        ndjson_splitter_done(&s);
}

TEST(splitter_limits_and_errors) {
        NdjsonSplitter s;
        Lines c = {};

        /* A line may be exactly max_line long, not longer, whether in one read or in pieces. */
        ndjson_splitter_init(&s, 8);
        ASSERT_OK(ndjson_splitter_feed(&s, "12345678\n", 9, collect, &c));
        ASSERT_EQ(ndjson_splitter_feed(&s, "123456789\n", 10, collect, &c), -EMSGSIZE);
        ndjson_splitter_reset(&s);
        ASSERT_OK(ndjson_splitter_feed(&s, "12345", 5, collect, &c));
        ASSERT_EQ(ndjson_splitter_feed(&s, "6789", 4, collect, &c), -EMSGSIZE);
        ndjson_splitter_reset(&s);
        ASSERT_EQ_U(c.n, 1);

        /* The callback's error stops the feed: later lines are not delivered. */
        c.fail_at = 2;
        ASSERT_EQ(ndjson_splitter_feed(&s, "a\nb\nc\n", 6, collect, &c), -EBADMSG);
        ASSERT_EQ_U(c.n, 2);
        ASSERT_STREQ(c.got[1], "a");
        lines_done(&c);
        ndjson_splitter_done(&s);
}

TEST(backoff) {
        /* 0.5 s doubling, capped at 30 s; no jitter at random 0. */
        ASSERT_EQ_U(link_backoff_usec(0, 0), 500 * USEC_PER_MSEC);
        ASSERT_EQ_U(link_backoff_usec(1, 0), 1 * USEC_PER_SEC);
        ASSERT_EQ_U(link_backoff_usec(2, 0), 2 * USEC_PER_SEC);
        ASSERT_EQ_U(link_backoff_usec(5, 0), 16 * USEC_PER_SEC);
        ASSERT_EQ_U(link_backoff_usec(6, 0), 30 * USEC_PER_SEC);
        ASSERT_EQ_U(link_backoff_usec(LINK_BACKOFF_ATTEMPT_MAX, 0), LINK_BACKOFF_MAX_USEC);
        ASSERT_EQ_U(link_backoff_usec(64, 0), 30 * USEC_PER_SEC);
        ASSERT_EQ_U(link_backoff_usec(1000, 0), 30 * USEC_PER_SEC);
        /* The jitter takes off at most a fifth, and never adds. */
        ASSERT_EQ_U(link_backoff_usec(0, UINT32_MAX), 400 * USEC_PER_MSEC);
        ASSERT_EQ_U(link_backoff_usec(10, UINT32_MAX), 24 * USEC_PER_SEC);
        for (unsigned a = 0; a < 10; a++)
                for (uint32_t rnd = 0; rnd < UINT32_MAX - (1U << 28); rnd += 1U << 28) {
                        uint64_t d = link_backoff_usec(a, rnd), base = link_backoff_usec(a, 0);

                        ASSERT_TRUE(d <= base);
                        ASSERT_TRUE(d >= base - base / 5);
                        ASSERT_TRUE(d >= 400 * USEC_PER_MSEC);
                        ASSERT_TRUE(d <= LINK_BACKOFF_MAX_USEC);
                }
}

TEST(rfc3339) {
        uint64_t u = 0;

        ASSERT_OK(parse_rfc3339("1970-01-01T00:00:00Z", &u));
        ASSERT_EQ_U(u, 0);
        ASSERT_OK(parse_rfc3339("2026-11-29T10:00:00Z", &u));
        ASSERT_EQ_U(u, UINT64_C(1795946400) * USEC_PER_SEC);
        ASSERT_OK(parse_rfc3339("2026-11-29T10:00:00.25Z", &u));
        ASSERT_EQ_U(u, UINT64_C(1795946400) * USEC_PER_SEC + 250000);
        ASSERT_OK(parse_rfc3339("2026-11-29T10:00:00+00:00", &u));
        ASSERT_EQ_U(u, UINT64_C(1795946400) * USEC_PER_SEC);
        ASSERT_OK(parse_rfc3339("2024-02-29T00:00:00Z", &u));
        ASSERT_EQ(parse_rfc3339("2026-02-29T00:00:00Z", &u), -EINVAL);
        ASSERT_EQ(parse_rfc3339("2026-11-29 10:00:00Z", &u), -EINVAL);
        ASSERT_EQ(parse_rfc3339("2026-11-29T10:00:00", &u), -EINVAL);
        ASSERT_EQ(parse_rfc3339("2026-11-29T10:00:00+01:00", &u), -EINVAL);
        ASSERT_EQ(parse_rfc3339("2026-13-01T00:00:00Z", &u), -EINVAL);
        ASSERT_EQ(parse_rfc3339("2026-11-29T24:00:00Z", &u), -EINVAL);
        ASSERT_EQ(parse_rfc3339("2026-11-29T10:00:00.Z", &u), -EINVAL);
        ASSERT_EQ(parse_rfc3339("2026-11-29T10:00:00ZZ", &u), -EINVAL);
        ASSERT_EQ(parse_rfc3339("", &u), -EINVAL);
        ASSERT_EQ(parse_rfc3339(NULL, &u), -EINVAL);
}

static int parse(const char *text, LinkLine *ret, char **ret_error) {
        return link_line_parse(text, strlen(text), ret, ret_error);
}

static void parse_fails(const char *text, const char *contains) {
        _cleanup_(link_line_done) LinkLine l = {};
        _cleanup_free_ char *error = NULL;

        ASSERT_EQ(parse(text, &l, &error), -EBADMSG);
        ASSERT_CONTAINS(error, contains);
}

TEST(lines) {
        _cleanup_free_ char *error = NULL;

        {
                _cleanup_(link_line_done) LinkLine l = {};

                ASSERT_OK(parse("{\"type\":\"ping\"}", &l, &error));
                ASSERT_EQ(l.type, LINK_LINE_PING);
        }
        {
                _cleanup_(link_line_done) LinkLine l = {};

                ASSERT_OK(parse("{\"type\":\"leases\",\"leases\":[{\"name\":\"l1\",\"client\":\"alice\",\"exporter\":"
                                "\"lab1\",\"dut\":\"dut1\",\"state\":\"active\",\"end\":\"2026-11-29T10:00:00Z\"},"
                                "{\"name\":\"l2\",\"dut\":\"dut2\",\"end\":\"2026-11-29T11:00:00Z\"}]}",
                                &l, &error));
                ASSERT_EQ(l.type, LINK_LINE_LEASES);
                ASSERT_EQ_U(l.n_leases, 2);
                ASSERT_STREQ(l.leases[0].name, "l1");
                ASSERT_STREQ(l.leases[0].dut, "dut1");
                ASSERT_STREQ(l.leases[0].exporter, "lab1");
                ASSERT_EQ_U(l.leases[0].end_usec, UINT64_C(1795946400) * USEC_PER_SEC);
                ASSERT_TRUE(l.leases[1].exporter == NULL);
                ASSERT_EQ_U(l.leases[1].end_usec, UINT64_C(1795950000) * USEC_PER_SEC);
        }
        {
                _cleanup_(link_line_done) LinkLine l = {};

                ASSERT_OK(parse("{\"type\":\"leases\",\"leases\":[]}", &l, &error));
                ASSERT_EQ_U(l.n_leases, 0);
        }
        {
                _cleanup_(link_line_done) LinkLine l = {};

                ASSERT_OK(parse("{\"type\":\"lease\",\"event\":\"extended\",\"lease\":{\"name\":\"l1\",\"dut\":\"dut1\","
                                "\"end\":\"2026-11-29T10:30:00Z\",\"reason\":null}}",
                                &l, &error));
                ASSERT_EQ(l.type, LINK_LINE_LEASE);
                ASSERT_EQ(l.event, LINK_LEASE_EXTENDED);
                ASSERT_EQ_U(l.leases[0].end_usec, UINT64_C(1795948200) * USEC_PER_SEC);
        }
        {
                /* An ended lease need not say when. */
                _cleanup_(link_line_done) LinkLine l = {};

                ASSERT_OK(parse("{\"type\":\"lease\",\"event\":\"ended\",\"lease\":{\"name\":\"l1\",\"dut\":\"dut1\","
                                "\"end\":null,\"reason\":\"Released\"}}",
                                &l, &error));
                ASSERT_EQ(l.event, LINK_LEASE_ENDED);
                ASSERT_EQ_U(l.leases[0].end_usec, 0);
        }
        {
                _cleanup_(link_line_done) LinkLine l = {};

                ASSERT_OK(parse("{\"type\":\"keys\",\"keys\":[{\"kid\":\"a\",\"state\":\"active\",\"publicKey\":\"P\"}],"
                                "\"issuer\":\"lab\"}",
                                &l, &error));
                ASSERT_EQ(l.type, LINK_LINE_KEYS);
                ASSERT_EQ_U(json_array_size(l.keys), 1);
                ASSERT_STREQ(l.issuer, "lab");
        }
        {
                /* The whole GET /v1/keys answer under "keys" works too. */
                _cleanup_(link_line_done) LinkLine l = {};

                ASSERT_OK(parse("{\"type\":\"keys\",\"keys\":{\"issuer\":\"lab2\",\"keys\":[]}}", &l, &error));
                ASSERT_EQ_U(json_array_size(l.keys), 0);
                ASSERT_STREQ(l.issuer, "lab2");
        }
        {
                _cleanup_(link_line_done) LinkLine l = {};

                ASSERT_OK(parse("{\"type\":\"dial\",\"id\":\"7\",\"router\":\"10.0.0.1:8444\",\"token\":\"t\"}", &l, &error));
                ASSERT_EQ(l.type, LINK_LINE_DIAL);
                ASSERT_STREQ(l.dial_id, "7");
                ASSERT_STREQ(l.dial_router, "10.0.0.1:8444");
                ASSERT_STREQ(l.dial_token, "t");
        }
        {
                /* Types of later versions are ignored, not errors. */
                _cleanup_(link_line_done) LinkLine l = {};

                ASSERT_OK(parse("{\"type\":\"future\",\"x\":1}", &l, &error));
                ASSERT_EQ(l.type, LINK_LINE_OTHER);
        }
        ASSERT_TRUE(error == NULL);
}

TEST(bad_lines) {
        parse_fails("{\"type\":\"ping\"", "not JSON");
        parse_fails("[1]", "not a JSON object");
        parse_fails("{\"event\":\"x\"}", "no \"type\"");
        parse_fails("{\"type\":\"ping\",\"type\":\"lease\"}", "not JSON");
        parse_fails("{\"type\":\"leases\"}", "\"leases\" is not an array");
        parse_fails("{\"type\":\"leases\",\"leases\":[{\"name\":\"l1\",\"dut\":\"d\"}]}", "missing \"end\"");
        parse_fails("{\"type\":\"leases\",\"leases\":[{\"name\":\"l1\",\"end\":\"2026-11-29T10:00:00Z\"}]}", "missing \"dut\"");
        parse_fails("{\"type\":\"leases\",\"leases\":[7]}", "not an object");
        parse_fails("{\"type\":\"lease\",\"event\":\"moved\",\"lease\":{}}", "unknown lease event \"moved\"");
        parse_fails("{\"type\":\"lease\",\"lease\":{}}", "unknown lease event");
        parse_fails("{\"type\":\"lease\",\"event\":\"assigned\",\"lease\":{\"name\":\"l1\",\"dut\":\"d\",\"end\":\"soon\"}}",
                    "\"end\" is not an RFC 3339 time: \"soon\"");
        parse_fails("{\"type\":\"lease\",\"event\":\"assigned\",\"lease\":{\"name\":1,\"dut\":\"d\"}}",
                    "\"name\" is not a string");
        parse_fails("{\"type\":\"keys\",\"keys\":\"x\"}", "\"keys\" is not an array");
        parse_fails("{\"type\":\"dial\",\"id\":\"7\",\"token\":\"t\"}", "missing \"router\"");
}

TEST_MAIN()
