/* Tests of the stream request line: parsing, and every reason a token is refused */
#include <time.h>

#include "stream-request.h"
#include "tests.h"

static Keyring *ring, *other;

static void *mfree(void *p) {
        free(p);
        return NULL;
}

static uint64_t now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC;
}

static void setup(void) {
        if (ring)
                return;
        ASSERT_OK(keyring_new(&ring));
        ASSERT_OK(keyring_rotate(ring, NULL));
        ASSERT_OK(keyring_new(&other));
        ASSERT_OK(keyring_rotate(other, NULL));
}

typedef struct Mint {
        const char *aud, *dut, *lease, *verbs, *kind, *iss;
        int64_t exp_offset_sec;
        Keyring *k;
} Mint;

static char *mint(Mint m) {
        TokenClaims c = {
                .iss = (char *) (m.iss ?: "lab"),
                .sub = (char *) "alice",
                .aud = (char *) (m.aud ?: "exporter/lab1"),
                .kind = (char *) (m.kind ?: TOKEN_KIND_STREAM),
                .dut = (char *) m.dut,
                .lease = (char *) m.lease,
                .verbs = (char *) m.verbs,
        };
        char *t = NULL;

        c.iat_usec = now() - 7200 * USEC_PER_SEC;
        c.exp_usec = m.exp_offset_sec ? (uint64_t) ((int64_t) now() + m.exp_offset_sec * (int64_t) USEC_PER_SEC)
                                      : now() + 600 * USEC_PER_SEC;
        ASSERT_OK(token_issue(m.k ?: ring, &c, &t));
        return t;
}

static char *line_for(const char *token, const char *dut, const char *stream) {
        char *l = NULL;

        ASSERT_TRUE(asprintf(&l, "{\"token\":\"%s\",\"dut\":\"%s\",\"stream\":\"%s\",\"writable\":true}", token, dut,
                             stream) > 0);
        return l;
}

/* Parses and checks; returns the refusal's reason (NULL when accepted) and its message and detail. */
static const char *judge(const char *token, const char *dut, const char *stream, const char *held_lease,
                         char **ret_message, char **ret_detail) {
        _cleanup_free_ char *line = line_for(token, dut, stream), *message = NULL, *detail = NULL;
        StreamRequest req = {};
        TokenClaims *claims = NULL;
        ApiError e = _API_ERROR_INVALID;
        int r;

        ASSERT_OK(stream_request_parse(line, strlen(line), &req, &message));
        ASSERT_TRUE(req.writable);
        r = stream_request_check(&req, &(StreamCheck) {
                        .keyring = ring,
                        .issuer = "lab",
                        .exporter_name = "lab1",
                        .dut_exists = streq(dut, "dut1"),
                        .lease = held_lease,
                        .now_usec = now(),
                }, &claims, &e, &message, &detail);
        stream_request_done(&req);
        if (r == 0) {
                ASSERT_STREQ(claims->dut, dut);
                token_claims_free(claims);
                return NULL;
        }
        ASSERT_EQ(r, -EACCES);
        *ret_message = TAKE_PTR(message);
        *ret_detail = TAKE_PTR(detail);
        return api_error_to_string(e);
}

TEST(parse_good) {
        const char *l = "{\"token\":\"abc\",\"dut\":\"dut1\",\"stream\":\"serial\"}";
        _cleanup_free_ char *message = NULL;
        StreamRequest req = {};

        ASSERT_OK(stream_request_parse(l, strlen(l), &req, &message));
        ASSERT_STREQ(req.token, "abc");
        ASSERT_STREQ(req.dut, "dut1");
        ASSERT_EQ(req.kind, STREAM_SERIAL);
        ASSERT_FALSE(req.writable);
        ASSERT_FALSE(req.route);
        stream_request_done(&req);
}

TEST(parse_bad) {
        static const struct {
                const char *line;
                int error;
                const char *message;
        } cases[] = {
                { "not json", -EBADMSG, "Malformed JSON" },
                { "[1,2]", -EINVAL, "must be a JSON object" },
                { "{\"token\":\"a\",\"dut\":\"dut1\",\"stream\":\"serial\",\"token\":\"b\"}", -EBADMSG, "Malformed" },
                { "{\"dut\":\"dut1\",\"stream\":\"serial\"}", -EINVAL, "\"token\"" },
                { "{\"token\":\"\",\"dut\":\"dut1\",\"stream\":\"serial\"}", -EINVAL, "\"token\"" },
                { "{\"token\":\"a\",\"dut\":\"Dut_1\",\"stream\":\"serial\"}", -EINVAL, "\"dut\"" },
                { "{\"token\":\"a\",\"dut\":\"dut1\",\"stream\":\"video\"}", -EINVAL, "\"stream\"" },
                { "{\"token\":\"a\",\"dut\":\"dut1\",\"stream\":\"storage\",\"writable\":1}", -EINVAL, "\"writable\"" },
                { "{\"token\":\"a\",\"dut\":\"dut1\",\"stream\":\"serial\",\"extra\":1}", -EINVAL, "Unknown member" },
                { "{\"token\":7,\"dut\":\"dut1\",\"stream\":\"serial\"}", -EINVAL, "\"token\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *message = NULL;
                StreamRequest req = {};

                ASSERT_EQ(stream_request_parse(cases[i].line, strlen(cases[i].line), &req, &message), cases[i].error);
                ASSERT_CONTAINS(message, cases[i].message);
                ASSERT_TRUE(req.token == NULL);
        }
        {
                /* A NUL inside the line is refused, not cut off. */
                const char l[] = "{\"token\":\"a\",\"dut\":\"dut1\",\"stream\":\"serial\"}\0junk";
                _cleanup_free_ char *message = NULL;
                StreamRequest req = {};

                ASSERT_EQ(stream_request_parse(l, sizeof l - 1, &req, &message), -EBADMSG);
        }
}

TEST(verbs) {
        ASSERT_TRUE(stream_verbs_allow("power serial storage", "serial"));
        ASSERT_TRUE(stream_verbs_allow("storage", "storage"));
        ASSERT_TRUE(stream_verbs_allow("  power   gpio ", "gpio"));
        ASSERT_FALSE(stream_verbs_allow("power serialx", "serial"));
        ASSERT_FALSE(stream_verbs_allow("serial", "ser"));
        ASSERT_FALSE(stream_verbs_allow("", "power"));
        ASSERT_FALSE(stream_verbs_allow(NULL, "power"));
        ASSERT_TRUE(stream_kind_verb(STREAM_CONTROL) == NULL);
        ASSERT_STREQ(stream_kind_verb(STREAM_STORAGE), "storage");
}

TEST(accepted) {
        _cleanup_free_ char *t = NULL, *message = NULL, *detail = NULL;

        setup();
        t = mint((Mint) { .dut = "dut1", .lease = "lease1", .verbs = "power serial storage" });
        ASSERT_TRUE(judge(t, "dut1", "serial", "lease1", &message, &detail) == NULL);
        ASSERT_TRUE(judge(t, "dut1", "storage", "lease1", &message, &detail) == NULL);
        ASSERT_TRUE(judge(t, "dut1", "control", "lease1", &message, &detail) == NULL);
}

#define REFUSED(token, dut, stream, lease, reason, text)                                       \
        do {                                                                                    \
                _cleanup_free_ char *_m = NULL, *_d = NULL;                                     \
                ASSERT_STREQ(judge((token), (dut), (stream), (lease), &_m, &_d), (reason));      \
                ASSERT_CONTAINS(_m, (text));                                                     \
        } while (0)

TEST(refused) {
        _cleanup_free_ char *good = NULL, *expired = NULL, *aud = NULL, *kind = NULL, *iss = NULL, *foreign = NULL,
                            *no_storage = NULL, *no_lease = NULL, *no_dut = NULL, *m = NULL, *d = NULL;

        setup();
        good = mint((Mint) { .dut = "dut1", .lease = "lease1", .verbs = "power serial storage" });
        expired = mint((Mint) { .dut = "dut1", .lease = "lease1", .verbs = "serial", .exp_offset_sec = -3600 });
        aud = mint((Mint) { .aud = "exporter/lab2", .dut = "dut1", .lease = "lease1", .verbs = "serial" });
        kind = mint((Mint) { .kind = TOKEN_KIND_CLIENT, .dut = "dut1", .lease = "lease1", .verbs = "serial" });
        iss = mint((Mint) { .iss = "other-lab", .dut = "dut1", .lease = "lease1", .verbs = "serial" });
        foreign = mint((Mint) { .k = other, .dut = "dut1", .lease = "lease1", .verbs = "serial" });
        no_storage = mint((Mint) { .dut = "dut1", .lease = "lease1", .verbs = "power serial" });
        no_lease = mint((Mint) { .dut = "dut1", .verbs = "serial" });
        no_dut = mint((Mint) { .lease = "lease1", .verbs = "serial" });

        REFUSED(good, "dut2", "serial", "lease1", "Forbidden", "is for DUT 'dut1', not 'dut2'");
        REFUSED(good, "dut1", "serial", "lease2", "Expired", "Lease 'lease1' does not hold DUT 'dut1' (it ended)");
        REFUSED(good, "dut1", "serial", NULL, "Expired", "it is not leased");
        REFUSED(no_storage, "dut1", "storage", "lease1", "Forbidden", "does not allow 'storage'");
        REFUSED(no_lease, "dut1", "serial", "lease1", "Forbidden", "names no lease");
        REFUSED(no_dut, "dut1", "serial", "lease1", "Forbidden", "names no DUT");

        ASSERT_STREQ(judge(expired, "dut1", "serial", "lease1", &m, &d), "Unauthorized");
        ASSERT_STREQ(d, "expired");
        ASSERT_CONTAINS(m, "The stream token was refused: expired");
        m = mfree(m), d = mfree(d);
        ASSERT_STREQ(judge(aud, "dut1", "serial", "lease1", &m, &d), "Unauthorized");
        ASSERT_STREQ(d, "wrong-audience");
        m = mfree(m), d = mfree(d);
        ASSERT_STREQ(judge(kind, "dut1", "serial", "lease1", &m, &d), "Unauthorized");
        ASSERT_STREQ(d, "wrong-kind");
        m = mfree(m), d = mfree(d);
        ASSERT_STREQ(judge(iss, "dut1", "serial", "lease1", &m, &d), "Unauthorized");
        ASSERT_STREQ(d, "wrong-issuer");
        m = mfree(m), d = mfree(d);
        ASSERT_STREQ(judge(foreign, "dut1", "serial", "lease1", &m, &d), "Unauthorized");
        ASSERT_STREQ(d, "unknown-key");
        m = mfree(m), d = mfree(d);
        ASSERT_STREQ(judge("x.y.z", "dut1", "serial", "lease1", &m, &d), "Unauthorized");
        ASSERT_STREQ(d, "malformed");
}

TEST(no_keys_yet) {
        _cleanup_free_ char *message = NULL, *detail = NULL;
        StreamRequest req = { .token = (char *) "x", .dut = (char *) "dut1", .kind = STREAM_SERIAL };
        ApiError e;

        ASSERT_EQ(stream_request_check(&req, &(StreamCheck) { .exporter_name = "lab1", .issuer = "lab",
                                                               .dut_exists = true, .lease = "l" },
                                       NULL, &e, &message, &detail),
                  -EACCES);
        ASSERT_EQ(e, API_ERROR_UNAVAILABLE);
        ASSERT_CONTAINS(message, "keys");
}

TEST(unknown_dut) {
        _cleanup_free_ char *t = NULL;

        setup();
        t = mint((Mint) { .dut = "dut9", .lease = "lease1", .verbs = "serial" });
        REFUSED(t, "dut9", "serial", "lease1", "NotFound", "no DUT named 'dut9'");
}

TEST_MAIN()
