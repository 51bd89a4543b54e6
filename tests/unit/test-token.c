/* Tests for tokens: what token_issue() writes, and every way token_verify() refuses */
#include <jwt.h>
#include <stdio.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "keyring.h"
#include "macro.h"
#include "tests.h"
#include "token.h"

#define NOW_S INT64_C(1800000000)
#define NOW_USEC ((uint64_t) NOW_S * USEC_PER_SEC)
#define HOUR_USEC (3600 * USEC_PER_SEC)

static Keyring *ring, *other;  /* two keyrings of one key each */
static const char *kid;        /* of ring's key */

static const TokenExpect expect = {
        .issuer = "controller",
        .audience = "jumpstarter",
        .leeway_usec = 30 * USEC_PER_SEC,
};

static void setup(void) {
        if (ring)
                return;
        ASSERT_OK(keyring_new(&ring));
        ASSERT_OK(keyring_rotate(ring, &kid));
        ASSERT_OK(keyring_new(&other));
        ASSERT_OK(keyring_rotate(other, NULL));
}

static TokenClaims claims(void) {
        return (TokenClaims) {
                .iss = "controller",
                .sub = "alice",
                .aud = "jumpstarter",
                .iat_usec = NOW_USEC,
                .exp_usec = NOW_USEC + HOUR_USEC,
        };
}

static char *issue_with(const Keyring *k, const TokenClaims *c) {
        char *t = NULL;

        ASSERT_OK(token_issue(k, c, &t));
        ASSERT_TRUE(t);
        return t;
}

static char *issue(void) {
        TokenClaims c = claims();

        return issue_with(ring, &c);
}

static void assert_refused_with(const Keyring *k, const char *token, const TokenExpect *e, uint64_t now,
                                const char *want) {
        _cleanup_(token_claims_freep) TokenClaims *c = NULL;
        _cleanup_free_ char *reason = NULL;
        TokenError error;

        ASSERT_EQ(token_verify(k, token, e, now, &c, &reason), -EACCES);
        ASSERT_TRUE(!c);
        ASSERT_STREQ(reason, want);
        ASSERT_EQ(token_verify_full(k, token, e, now, NULL, &error), -EACCES);
        ASSERT_EQ(error, token_error_from_string(want));
}

static void assert_refused(const char *token, const char *want) {
        assert_refused_with(ring, token, &expect, NOW_USEC, want);
}

static TokenClaims *assert_accepted_with(const Keyring *k, const char *token, const TokenExpect *e, uint64_t now) {
        TokenClaims *c = NULL;
        _cleanup_free_ char *reason = NULL;

        ASSERT_OK(token_verify(k, token, e, now, &c, &reason));
        ASSERT_TRUE(c && !reason);
        return c;
}

static void assert_accepted(const char *token) {
        token_claims_free(assert_accepted_with(ring, token, &expect, NOW_USEC));
}

/* An independent encoder, so that the tests do not share the code they test. */
static char *b64url(const void *data, size_t n) {
        char *s = malloc(n * 2 + 8);
        int m;

        ASSERT_TRUE(s);
        m = EVP_EncodeBlock((unsigned char *) s, data, (int) n);
        while (m > 0 && s[m - 1] == '=')
                m--;
        s[m] = 0;
        for (char *p = s; *p; p++)
                *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
        return s;
}

static char *b64url_str(const char *s) {
        return b64url(s, strlen(s));
}

typedef enum SignAs {
        SIGN_NONE,   /* empty signature */
        SIGN_ES256,  /* with key, r || s */
        SIGN_ES384,  /* with a P-384 key, r || s */
        SIGN_RS256,  /* with an RSA key */
        SIGN_HS256,  /* HMAC with secret */
} SignAs;

static char *join3(const char *a, const char *b, const char *c) {
        char *s;

        ASSERT_TRUE(asprintf(&s, "%s.%s.%s", a, b, c) >= 0);
        return s;
}

static char *sign_input(SignAs how, EVP_PKEY *pkey, const char *secret, const char *input) {
        unsigned char buf[1024];
        size_t n = sizeof(buf);

        switch (how) {
        case SIGN_NONE:
                return strdup("");
        case SIGN_HS256: {
                unsigned len = 0;

                ASSERT_TRUE(HMAC(EVP_sha256(), secret, (int) strlen(secret), (const unsigned char *) input,
                                 strlen(input), buf, &len));
                return b64url(buf, len);
        }
        case SIGN_ES256:
        case SIGN_ES384:
        case SIGN_RS256: {
                EVP_MD_CTX *ctx = EVP_MD_CTX_new();
                const EVP_MD *md = how == SIGN_ES384 ? EVP_sha384() : EVP_sha256();

                ASSERT_TRUE(ctx);
                ASSERT_EQ(EVP_DigestSignInit(ctx, NULL, md, NULL, pkey), 1);
                ASSERT_EQ(EVP_DigestSign(ctx, buf, &n, (const unsigned char *) input, strlen(input)), 1);
                EVP_MD_CTX_free(ctx);
                if (how != SIGN_RS256) {
                        /* DER to JOSE r || s */
                        size_t half = how == SIGN_ES256 ? 32 : 48;
                        const unsigned char *p = buf;
                        unsigned char raw[96];
                        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long) n);

                        ASSERT_TRUE(sig);
                        ASSERT_EQ(BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, (int) half), (int) half);
                        ASSERT_EQ(BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + half, (int) half), (int) half);
                        ECDSA_SIG_free(sig);
                        return b64url(raw, 2 * half);
                }
                return b64url(buf, n);
        }}
        abort();
}

/* A token made by hand from header and payload JSON. */
static char *craft(const char *header, const char *payload, SignAs how, EVP_PKEY *pkey, const char *secret) {
        _cleanup_free_ char *h = b64url_str(header), *p = b64url_str(payload), *input = NULL, *sig = NULL;

        ASSERT_TRUE(asprintf(&input, "%s.%s", h, p) >= 0);
        sig = sign_input(how, pkey, secret, input);
        return join3(h, p, sig);
}

static char *header_with_kid(const char *alg, const char *k) {
        char *s;

        ASSERT_TRUE(asprintf(&s, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, k) >= 0);
        return s;
}

/* A payload that is valid at NOW_S, with extra members appended (each starting with a comma) or
 * replacing the defaults. */
static char *payload_with(const char *fields) {
        char *s;

        ASSERT_TRUE(asprintf(&s, "{%s}", fields) >= 0);
        return s;
}

#define GOOD_CLAIMS "\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j1\"," \
                    "\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600"

/* Signed with ring's key, so that only the claims can be wrong. */
static char *craft_signed(const char *payload_fields) {
        _cleanup_free_ char *h = header_with_kid("ES256", kid), *p = payload_with(payload_fields);

        return craft(h, p, SIGN_ES256, keyring_active(ring)->pkey, NULL);
}

TEST(error_strings) {
        for (TokenError e = 0; e < _TOKEN_ERROR_MAX; e++) {
                ASSERT_TRUE(token_error_to_string(e));
                ASSERT_EQ(token_error_from_string(token_error_to_string(e)), e);
        }
        ASSERT_STREQ(token_error_to_string(TOKEN_UNSUPPORTED_ALGORITHM), "unsupported-algorithm");
        ASSERT_STREQ(token_error_to_string(TOKEN_REVOKED), "revoked");
        ASSERT_EQ(token_error_from_string("nope"), _TOKEN_ERROR_INVALID);
        ASSERT_TRUE(token_error_to_string(_TOKEN_ERROR_MAX) == NULL);
}

TEST(round_trip) {
        _cleanup_(token_claims_freep) TokenClaims *v = NULL;
        _cleanup_free_ char *t = NULL, *header = NULL;
        TokenClaims c = claims();
        const char *dot;

        setup();
        c.kind = TOKEN_KIND_STREAM;
        c.lease = "lease-1";
        c.dut = "dut1";
        c.verbs = "serial.read serial.write";
        c.iat_usec += 999999; /* rounded down to whole seconds */
        t = issue_with(ring, &c);

        /* Three base64url parts, the header exactly ours. */
        ASSERT_TRUE(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") == strlen(t));
        dot = strchr(t, '.');
        ASSERT_TRUE(dot && strchr(dot + 1, '.') && !strchr(strchr(dot + 1, '.') + 1, '.'));
        ASSERT_TRUE(strlen(strrchr(t, '.') + 1) == 86); /* 64 bytes */
        {
                _cleanup_free_ char *want = header_with_kid("ES256", kid), *enc = b64url_str(want);

                header = strndup(t, (size_t) (dot - t));
                ASSERT_STREQ(header, enc);
        }

        v = assert_accepted_with(ring, t, &(TokenExpect) { .issuer = "controller", .audience = "jumpstarter",
                                                          .kind = TOKEN_KIND_STREAM }, NOW_USEC);
        ASSERT_STREQ(v->iss, "controller");
        ASSERT_STREQ(v->sub, "alice");
        ASSERT_STREQ(v->aud, "jumpstarter");
        ASSERT_STREQ(v->kid, kid);
        ASSERT_STREQ(v->kind, "stream");
        ASSERT_STREQ(v->lease, "lease-1");
        ASSERT_STREQ(v->dut, "dut1");
        ASSERT_STREQ(v->verbs, "serial.read serial.write");
        ASSERT_EQ_U(v->iat_usec, NOW_USEC);
        ASSERT_EQ_U(v->nbf_usec, NOW_USEC);
        ASSERT_EQ_U(v->exp_usec, NOW_USEC + HOUR_USEC);
        ASSERT_EQ_U(strlen(v->jti), 32);
        ASSERT_EQ_U(strspn(v->jti, "0123456789abcdef"), 32);

        /* ret and ret_reason are optional; every token gets its own jti. */
        ASSERT_OK(token_verify(ring, t, &expect, NOW_USEC, NULL, NULL));
        {
                _cleanup_(token_claims_freep) TokenClaims *w = NULL;
                _cleanup_free_ char *t2 = issue_with(ring, &c);

                w = assert_accepted_with(ring, t2, &expect, NOW_USEC);
                ASSERT_TRUE(!streq(w->jti, v->jti));
                ASSERT_STREQ(w->kind, "stream");
        }

        /* Optional claims stay absent; a given jti is kept. */
        {
                _cleanup_(token_claims_freep) TokenClaims *w = NULL;
                _cleanup_free_ char *t3 = NULL;
                TokenClaims d = claims();

                d.jti = "my-jti";
                t3 = issue_with(ring, &d);
                w = assert_accepted_with(ring, t3, &expect, NOW_USEC);
                ASSERT_STREQ(w->jti, "my-jti");
                ASSERT_TRUE(!w->kind && !w->lease && !w->dut && !w->verbs);
        }
}

TEST(issue_refuses) {
        TokenClaims c;
        _cleanup_(keyring_freep) Keyring *empty = NULL;
        _cleanup_free_ char *big = NULL;
        char *t = NULL;

        setup();
        ASSERT_OK(keyring_new(&empty));
        c = claims();
        ASSERT_EQ(token_issue(empty, &c, &t), -ENOKEY);
        c.iss = NULL;
        ASSERT_EQ(token_issue(ring, &c, &t), -EINVAL);
        c = claims();
        c.aud = "";
        ASSERT_EQ(token_issue(ring, &c, &t), -EINVAL);
        c = claims();
        c.lease = "";
        ASSERT_EQ(token_issue(ring, &c, &t), -EINVAL);
        c = claims();
        c.exp_usec = c.iat_usec;
        ASSERT_EQ(token_issue(ring, &c, &t), -EINVAL);
        c = claims();
        c.nbf_usec = c.exp_usec + 1;
        ASSERT_EQ(token_issue(ring, &c, &t), -EINVAL);
        c = claims();
        c.iat_usec = 0;
        ASSERT_EQ(token_issue(ring, &c, &t), -EINVAL);
        c = claims();
        c.sub = "\xff\xfe";
        ASSERT_EQ(token_issue(ring, &c, &t), -EINVAL);
        c = claims();
        c.dut = "\xc0";
        ASSERT_EQ(token_issue(ring, &c, &t), -EINVAL);

        /* Too long for any verifier. */
        big = malloc(TOKEN_SIZE_MAX);
        ASSERT_TRUE(big);
        memset(big, 'x', TOKEN_SIZE_MAX - 1);
        big[TOKEN_SIZE_MAX - 1] = 0;
        c = claims();
        c.verbs = big;
        ASSERT_EQ(token_issue(ring, &c, &t), -E2BIG);
        ASSERT_TRUE(t == NULL);
}

TEST(forged_signature) {
        _cleanup_free_ char *t = NULL;
        char *sig, *payload;
        char saved;

        setup();
        t = issue();
        assert_accepted(t);

        /* A changed character in the middle of the signature, then of the payload. */
        sig = strrchr(t, '.') + 1;
        saved = sig[20];
        sig[20] = saved == 'A' ? 'B' : 'A';
        assert_refused(t, "bad-signature");
        sig[20] = saved;
        assert_accepted(t);

        payload = strchr(t, '.') + 1;
        saved = payload[10];
        payload[10] = saved == 'A' ? 'B' : 'A';
        assert_refused(t, "bad-signature");
        payload[10] = saved;

        /* A signature of the wrong length, or empty. */
        {
                _cleanup_free_ char *s = strdup(t), *short_sig = NULL, *u = NULL;
                uint8_t raw[63];

                memcpy(raw, strrchr(t, '.') + 1, sizeof(raw)); /* any bytes */
                short_sig = b64url(raw, sizeof(raw));
                strrchr(s, '.')[1] = 0;
                assert_refused(s, "bad-signature");
                ASSERT_TRUE(asprintf(&u, "%s%s", s, short_sig) > 0);
                assert_refused(u, "bad-signature");
        }
        /* r || s all zero. */
        {
                _cleanup_free_ char *s = strdup(t);

                sig = strrchr(s, '.') + 1;
                memset(sig, 'A', strlen(sig));
                assert_refused(s, "bad-signature");
        }
        assert_accepted(t);
}

TEST(other_key_same_kid) {
        _cleanup_free_ char *h = NULL, *p = NULL, *t = NULL, *t2 = NULL;

        setup();
        /* The other keyring's key, pretending to be ring's. */
        h = header_with_kid("ES256", kid);
        p = payload_with(GOOD_CLAIMS);
        t = craft(h, p, SIGN_ES256, keyring_active(other)->pkey, NULL);
        assert_refused(t, "bad-signature");

        /* Its own tokens: an unknown key here. */
        {
                TokenClaims c = claims();

                t2 = issue_with(other, &c);
                assert_refused(t2, "unknown-key");
        }
        /* The same, made by hand, is accepted with ring's key (the crafting itself is right). */
        free(t);
        t = craft(h, p, SIGN_ES256, keyring_active(ring)->pkey, NULL);
        assert_accepted(t);
}

TEST(alg_none) {
        _cleanup_free_ char *p = payload_with(GOOD_CLAIMS), *h = NULL;
        char *t;

        setup();
        t = craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", p, SIGN_NONE, NULL, NULL);
        assert_refused(t, "unsupported-algorithm");
        free(t);
        t = craft("{\"alg\":\"none\"}", p, SIGN_NONE, NULL, NULL);
        assert_refused(t, "unsupported-algorithm");
        free(t);
        h = header_with_kid("none", kid);
        t = craft(h, p, SIGN_NONE, NULL, NULL);
        assert_refused(t, "unsupported-algorithm");
        /* Without the trailing dot: two parts. */
        strrchr(t, '.')[0] = 0;
        assert_refused(t, "malformed");
        free(t);
        /* Other spellings. */
        free(h);
        h = header_with_kid("None", kid);
        t = craft(h, p, SIGN_NONE, NULL, NULL);
        assert_refused(t, "unsupported-algorithm");
        free(t);
        /* A signature does not make "none" acceptable either. */
        free(h);
        h = header_with_kid("none", kid);
        t = craft(h, p, SIGN_ES256, keyring_active(ring)->pkey, NULL);
        assert_refused(t, "unsupported-algorithm");
        free(t);
        /* No alg at all, or not a string. */
        free(h);
        ASSERT_TRUE(asprintf(&h, "{\"typ\":\"JWT\",\"kid\":\"%s\"}", kid) > 0);
        t = craft(h, p, SIGN_ES256, keyring_active(ring)->pkey, NULL);
        assert_refused(t, "malformed");
        free(t);
        free(h);
        ASSERT_TRUE(asprintf(&h, "{\"alg\":null,\"typ\":\"JWT\",\"kid\":\"%s\"}", kid) > 0);
        t = craft(h, p, SIGN_ES256, keyring_active(ring)->pkey, NULL);
        assert_refused(t, "malformed");
        free(t);
}

TEST(algorithm_confusion_hs256) {
        _cleanup_free_ char *pem = NULL, *h = NULL, *p = payload_with(GOOD_CLAIMS), *t = NULL;

        setup();
        /* The public key, which every exporter has, as an HMAC secret. */
        ASSERT_OK(keyring_export_public(ring, kid, &pem));
        h = header_with_kid("HS256", kid);
        t = craft(h, p, SIGN_HS256, NULL, pem);
        assert_refused(t, "unsupported-algorithm");
        free(t);
        t = craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", p, SIGN_HS256, NULL, pem);
        assert_refused(t, "unsupported-algorithm");
}

TEST(other_algorithms) {
        _cleanup_free_ char *p = payload_with(GOOD_CLAIMS), *h = NULL, *t = NULL;
        EVP_PKEY *p384, *rsa;

        setup();
        p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
        ASSERT_TRUE(p384 && rsa);

        h = header_with_kid("ES384", kid);
        t = craft(h, p, SIGN_ES384, p384, NULL);
        assert_refused(t, "unsupported-algorithm");
        free(t);
        free(h);
        h = header_with_kid("RS256", kid);
        t = craft(h, p, SIGN_RS256, rsa, NULL);
        assert_refused(t, "unsupported-algorithm");
        free(t);
        free(h);
        h = header_with_kid("PS256", kid);
        t = craft(h, p, SIGN_RS256, rsa, NULL);
        assert_refused(t, "unsupported-algorithm");
        free(t);
        /* An ES384 signature under an ES256 header: 96 bytes. */
        free(h);
        h = header_with_kid("ES256", kid);
        t = craft(h, p, SIGN_ES384, p384, NULL);
        assert_refused(t, "bad-signature");
        free(t);
        t = NULL;
        EVP_PKEY_free(p384);
        EVP_PKEY_free(rsa);
}

TEST(times) {
        TokenClaims c;
        char *t;

        setup();
        /* Expired, with and without the leeway; exp itself is already too late. */
        c = claims();
        c.iat_usec = NOW_USEC - 2 * HOUR_USEC;
        c.exp_usec = NOW_USEC - HOUR_USEC;
        t = issue_with(ring, &c);
        assert_refused(t, "expired");
        token_claims_free(assert_accepted_with(ring, t, &expect, NOW_USEC - HOUR_USEC - 1));
        free(t);

        c.exp_usec = NOW_USEC - 10 * USEC_PER_SEC;
        t = issue_with(ring, &c);
        token_claims_free(assert_accepted_with(ring, t, &expect, NOW_USEC));
        assert_refused_with(ring, t, &(TokenExpect) { .issuer = "controller", .audience = "jumpstarter" },
                            NOW_USEC, "expired");
        assert_refused_with(ring, t, &expect, NOW_USEC + 20 * USEC_PER_SEC, "expired");
        free(t);

        c.exp_usec = NOW_USEC;
        t = issue_with(ring, &c);
        assert_refused_with(ring, t, &(TokenExpect) { .issuer = "controller", .audience = "jumpstarter" },
                            NOW_USEC, "expired");
        token_claims_free(assert_accepted_with(ring, t, &(TokenExpect) { .issuer = "controller",
                                                                          .audience = "jumpstarter" },
                                               NOW_USEC - 1));
        free(t);

        /* Not yet valid: nbf ahead, beyond and within the leeway. */
        c = claims();
        c.nbf_usec = NOW_USEC + HOUR_USEC;
        c.exp_usec = NOW_USEC + 2 * HOUR_USEC;
        t = issue_with(ring, &c);
        assert_refused(t, "not-yet-valid");
        token_claims_free(assert_accepted_with(ring, t, &expect, NOW_USEC + HOUR_USEC));
        free(t);
        c.nbf_usec = NOW_USEC + 20 * USEC_PER_SEC;
        t = issue_with(ring, &c);
        assert_accepted(t);
        free(t);

        /* Issued in the future, far and near. */
        c = claims();
        c.nbf_usec = NOW_USEC - HOUR_USEC;
        c.iat_usec = NOW_USEC + HOUR_USEC;
        c.exp_usec = NOW_USEC + 2 * HOUR_USEC;
        t = issue_with(ring, &c);
        assert_refused(t, "not-yet-valid");
        free(t);
        c.iat_usec = NOW_USEC + 20 * USEC_PER_SEC;
        t = issue_with(ring, &c);
        assert_accepted(t);
        free(t);

        /* Times at the edges of what fits: no overflow turns them valid. */
        t = craft_signed("\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\","
                         "\"iat\":1800000000,\"nbf\":1800000000,\"exp\":18446744073709");
        token_claims_free(assert_accepted_with(ring, t, &(TokenExpect) { .issuer = "controller",
                                                                          .audience = "jumpstarter",
                                                                          .leeway_usec = UINT64_MAX },
                                               UINT64_MAX - 1));
        free(t);
        t = craft_signed("\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\","
                         "\"iat\":1800000000,\"nbf\":1800000000,\"exp\":18446744073710");
        assert_refused(t, "malformed");
        free(t);
}

TEST(issuer_audience_kind) {
        _cleanup_free_ char *t = NULL;
        TokenClaims c = claims();
        char *a;

        setup();
        c.kind = TOKEN_KIND_CLIENT;
        t = issue_with(ring, &c);
        assert_refused_with(ring, t, &(TokenExpect) { .issuer = "controller2", .audience = "jumpstarter" },
                            NOW_USEC, "wrong-issuer");
        assert_refused_with(ring, t, &(TokenExpect) { .issuer = "Controller", .audience = "jumpstarter" },
                            NOW_USEC, "wrong-issuer");
        assert_refused_with(ring, t, &(TokenExpect) { .issuer = "controller", .audience = "exporter-1" },
                            NOW_USEC, "wrong-audience");
        assert_refused_with(ring, t, &(TokenExpect) { .issuer = "controller", .audience = "jumpstarte" },
                            NOW_USEC, "wrong-audience");
        assert_refused_with(ring, t, &(TokenExpect) { .issuer = "controller", .audience = "jumpstarter",
                                                     .kind = TOKEN_KIND_STREAM },
                            NOW_USEC, "wrong-kind");
        token_claims_free(assert_accepted_with(ring, t, &(TokenExpect) { .issuer = "controller",
                                                                          .audience = "jumpstarter",
                                                                          .kind = TOKEN_KIND_CLIENT },
                                               NOW_USEC));
        /* No kind where one is expected. */
        a = issue();
        assert_refused_with(ring, a, &(TokenExpect) { .issuer = "controller", .audience = "jumpstarter",
                                                     .kind = TOKEN_KIND_CLIENT },
                            NOW_USEC, "wrong-kind");
        free(a);

        /* aud as an array. */
        a = craft_signed("\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":[\"x\",\"jumpstarter\"],\"jti\":\"j\","
                         "\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600");
        assert_accepted(a);
        free(a);
        a = craft_signed("\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":[\"x\",\"y\"],\"jti\":\"j\","
                         "\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600");
        assert_refused(a, "wrong-audience");
        free(a);
        a = craft_signed("\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":[],\"jti\":\"j\","
                         "\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600");
        assert_refused(a, "malformed");
        free(a);
        a = craft_signed("\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":[\"jumpstarter\",1],\"jti\":\"j\","
                         "\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600");
        assert_refused(a, "malformed");
        free(a);
}

TEST(unknown_and_retired_keys) {
        _cleanup_free_ char *p = payload_with(GOOD_CLAIMS), *h = NULL, *t = NULL;

        setup();
        h = header_with_kid("ES256", "0123456789abcdef");
        t = craft(h, p, SIGN_ES256, keyring_active(ring)->pkey, NULL);
        assert_refused(t, "unknown-key");
        free(t);
        t = craft("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", p, SIGN_ES256, keyring_active(ring)->pkey, NULL);
        assert_refused(t, "unknown-key");
        free(t);
        t = craft("{\"alg\":\"ES256\",\"kid\":7}", p, SIGN_ES256, keyring_active(ring)->pkey, NULL);
        assert_refused(t, "unknown-key");
        free(t);
        /* typ may be absent. */
        free(h);
        ASSERT_TRUE(asprintf(&h, "{\"kid\":\"%s\",\"alg\":\"ES256\"}", kid) > 0);
        t = craft(h, p, SIGN_ES256, keyring_active(ring)->pkey, NULL);
        assert_accepted(t);
}

TEST(rotation) {
        _cleanup_(keyring_freep) Keyring *k = NULL;
        _cleanup_(token_claims_freep) TokenClaims *v = NULL;
        _cleanup_free_ char *old = NULL, *new = NULL, *kid1 = NULL;
        TokenClaims c = claims();
        const char *kid2, *p;

        ASSERT_OK(keyring_new(&k));
        ASSERT_OK(keyring_rotate(k, &p));
        kid1 = strdup(p);
        old = issue_with(k, &c);

        ASSERT_OK(keyring_rotate(k, &kid2));
        new = issue_with(k, &c);
        v = assert_accepted_with(k, new, &expect, NOW_USEC);
        ASSERT_STREQ(v->kid, kid2);
        token_claims_free(v);
        v = assert_accepted_with(k, old, &expect, NOW_USEC);
        ASSERT_STREQ(v->kid, kid1);

        /* The old key's tokens still expire as usual. */
        assert_refused_with(k, old, &expect, NOW_USEC + 2 * HOUR_USEC, "expired");

        ASSERT_OK(keyring_retire(k, kid1));
        assert_refused_with(k, old, &expect, NOW_USEC, "retired-key");
        token_claims_free(assert_accepted_with(k, new, &expect, NOW_USEC));
}

typedef struct Revoked {
        const char *jti;
        const char *sub;
        int error;
        unsigned calls;
} Revoked;

static int is_revoked(const TokenClaims *c, void *userdata) {
        Revoked *r = userdata;

        r->calls++;
        if (r->error)
                return r->error;
        return streq_ptr(c->jti, r->jti) || streq_ptr(c->sub, r->sub);
}

TEST(revocation) {
        _cleanup_(token_claims_freep) TokenClaims *v = NULL;
        _cleanup_free_ char *t = NULL, *t2 = NULL, *reason = NULL;
        Revoked rv = { 0 };
        TokenExpect e = expect;
        TokenClaims c = claims();

        setup();
        e.is_revoked = is_revoked;
        e.userdata = &rv;
        t = issue();
        v = assert_accepted_with(ring, t, &e, NOW_USEC);
        ASSERT_EQ_U(rv.calls, 1);

        rv.jti = v->jti;
        assert_refused_with(ring, t, &e, NOW_USEC, "revoked");
        c.sub = "bob";
        t2 = issue_with(ring, &c);
        token_claims_free(assert_accepted_with(ring, t2, &e, NOW_USEC));

        rv.jti = NULL;
        rv.sub = "bob";
        assert_refused_with(ring, t2, &e, NOW_USEC, "revoked");
        token_claims_free(assert_accepted_with(ring, t, &e, NOW_USEC));

        /* Not consulted for a token that is refused anyway. */
        rv.calls = 0;
        assert_refused_with(ring, t2, &e, NOW_USEC + 2 * HOUR_USEC, "expired");
        ASSERT_EQ_U(rv.calls, 0);

        /* A failing check fails the verification, without a reason. */
        rv.error = -ENOMEM;
        ASSERT_EQ(token_verify(ring, t, &e, NOW_USEC, NULL, &reason), -ENOMEM);
        ASSERT_TRUE(!reason);
        rv.error = -EACCES;
        ASSERT_EQ(token_verify(ring, t, &e, NOW_USEC, NULL, &reason), -EIO);
        ASSERT_TRUE(!reason);
}

TEST(malformed) {
        static const char *const bad[] = {
                "",
                ".",
                "..",
                "a.b",
                "a.b.c.d",
                "...",
                " eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
                "eyJhbGciOiJFUzI1NiJ9.e30.AAAA ",
                "eyJhbGciOiJFUzI1NiJ9.e30=.AAAA",
                "eyJhbGciOiJFUzI1NiJ9.e3+.AAAA",
                "eyJhbGciOiJFUzI1NiJ9.e3/.AAAA",
                "eyJhbGciOiJFUzI1NiJ9..AAAA",
                ".e30.AAAA",
                "eyJhbGciOiJFUzI1NiJ9.e30.A",       /* length 1 mod 4 */
                "eyJhbGciOiJFUzI1NiJ9.e31.AAAA",    /* "{}" with unused bits set */
                "eyJhbGciOiJFUzI1NiJ9.e30.AAB",     /* unused bits set */
                "e30.e30.AAAA",                     /* header {} */
                "W10.e30.AAAA",                     /* header [] */
                "bnVsbA.e30.AAAA",                  /* header null */
                "eyJhbGciOiJFUzI1NiJ9eyJ9.e30.AAAA",
                "eyJhbGciOiJFUzI1NiJ9\xc3\xa9.e30.AAAA",
        };
        _cleanup_free_ char *p = payload_with(GOOD_CLAIMS), *h = NULL, *t = NULL;

        setup();
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                fprintf(stderr, "  %s\n", bad[i]);
                assert_refused(bad[i], "malformed");
        }

        /* Header members that would bring in a key, extensions, another type, or a member twice. */
        static const char *const header_tails[] = {
                "\"jku\":\"https://evil/jwks\"}",
                "\"x5u\":\"https://evil/cert\"}",
                "\"jwk\":{}}",
                "\"crit\":[\"exp\"]}",
                "\"typ\":\"JOSE\"}",
                "\"typ\":1}",
                "\"kid\":\"x\"}",
                "\"alg\":\"ES256\"}",
                "\"alg\":\"none\"}",
        };
        for (size_t i = 0; i < ELEMENTSOF(header_tails); i++) {
                free(h);
                ASSERT_TRUE(asprintf(&h, "{\"alg\":\"ES256\",\"kid\":\"%s\",%s", kid, header_tails[i]) > 0);
                free(t);
                t = craft(h, p, SIGN_ES256, keyring_active(ring)->pkey, NULL);
                fprintf(stderr, "  %s\n", h);
                assert_refused(t, "malformed");
        }

        /* Signed claims that are not ours: missing, or of the wrong type. */
        static const char *const payloads[] = {
                "\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000",
                "\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"exp\":1800003600",
                "\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"nbf\":1800000000,\"exp\":1800003600",
                "\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600",
                "\"iss\":\"controller\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600",
                "\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600",
                "\"iss\":\"controller\",\"sub\":\"alice\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600",
                "\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":\"1800003600\"",
                "\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600.5",
                "\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":-1,\"exp\":1800003600",
                "\"iss\":\"controller\",\"sub\":\"\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600",
                "\"iss\":[\"controller\"],\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600",
                "\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600,\"lease\":7",
                "\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600,\"kind\":null",
                "\"iss\":\"controller\",\"sub\":\"a\\u0000b\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600",
                "\"iss\":\"controller\",\"iss\":\"controller\",\"sub\":\"alice\",\"aud\":\"jumpstarter\",\"jti\":\"j\",\"iat\":1800000000,\"nbf\":1800000000,\"exp\":1800003600",
        };
        for (size_t i = 0; i < ELEMENTSOF(payloads); i++) {
                free(t);
                t = craft_signed(payloads[i]);
                fprintf(stderr, "  {%s}\n", payloads[i]);
                assert_refused(t, "malformed");
        }
        /* Signed, but no object. */
        free(t);
        free(h);
        h = header_with_kid("ES256", kid);
        t = craft(h, "[1]", SIGN_ES256, keyring_active(ring)->pkey, NULL);
        assert_refused(t, "malformed");

        /* Unknown claims are ignored. */
        free(t);
        t = craft_signed(GOOD_CLAIMS ",\"x\":{\"y\":[1,2]}");
        assert_accepted(t);
}

TEST(oversized) {
        _cleanup_free_ char *junk = NULL, *fields = NULL, *t = NULL;
        size_t n;

        setup();
        /* A correctly signed token a little over the bound. */
        junk = malloc(TOKEN_SIZE_MAX);
        ASSERT_TRUE(junk);
        memset(junk, 'x', TOKEN_SIZE_MAX / 4 * 3);
        junk[TOKEN_SIZE_MAX / 4 * 3] = 0;
        ASSERT_TRUE(asprintf(&fields, GOOD_CLAIMS ",\"pad\":\"%s\"", junk) > 0);
        t = craft_signed(fields);
        n = strlen(t);
        ASSERT_TRUE(n > TOKEN_SIZE_MAX);
        assert_refused(t, "malformed");

        /* Cut down to just within the bound, the same token is accepted. */
        free(fields);
        ASSERT_TRUE(asprintf(&fields, GOOD_CLAIMS ",\"pad\":\"%s\"", junk + ((n - TOKEN_SIZE_MAX) / 4 + 1) * 3) > 0);
        free(t);
        t = craft_signed(fields);
        fprintf(stderr, "  %zu bytes\n", strlen(t));
        ASSERT_TRUE(strlen(t) <= TOKEN_SIZE_MAX && strlen(t) > TOKEN_SIZE_MAX - 8);
        assert_accepted(t);

        /* Megabytes of nothing. */
        free(t);
        t = malloc(4 * 1024 * 1024 + 1);
        ASSERT_TRUE(t);
        memset(t, 'A', 4 * 1024 * 1024);
        t[4 * 1024 * 1024] = 0;
        t[100] = '.';
        t[200] = '.';
        assert_refused(t, "malformed");
}

static char *private_pem(EVP_PKEY *pkey) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *data, *s;
        long n;

        ASSERT_TRUE(bio && PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL));
        n = BIO_get_mem_data(bio, &data);
        s = strndup(data, (size_t) n);
        BIO_free(bio);
        return s;
}

/* libjwt, an independent JOSE implementation, reads our tokens and writes ones we read: the r || s
 * signature encoding is the standard one, not merely self-consistent. */
TEST(libjwt_interop) {
        _cleanup_free_ char *t = NULL, *pub = NULL, *priv = NULL;
        jwt_t *jwt = NULL;
        char *s;

        setup();
        t = issue();
        ASSERT_OK(keyring_export_public(ring, kid, &pub));
        ASSERT_EQ(jwt_decode(&jwt, t, (const unsigned char *) pub, (int) strlen(pub)), 0);
        ASSERT_EQ(jwt_get_alg(jwt), JWT_ALG_ES256);
        ASSERT_STREQ(jwt_get_header(jwt, "kid"), kid);
        ASSERT_STREQ(jwt_get_grant(jwt, "sub"), "alice");
        ASSERT_EQ(jwt_get_grant_int(jwt, "exp"), NOW_S + 3600);
        jwt_free(jwt);
        jwt = NULL;
        {
                /* And a forged one it refuses as well. */
                _cleanup_free_ char *f = strdup(t);
                char *sig = strrchr(f, '.') + 1;

                sig[5] = sig[5] == 'A' ? 'B' : 'A';
                ASSERT_TRUE(jwt_decode(&jwt, f, (const unsigned char *) pub, (int) strlen(pub)) != 0);
                jwt_free(jwt);
                jwt = NULL;
        }

        priv = private_pem(keyring_active(ring)->pkey);
        ASSERT_EQ(jwt_new(&jwt), 0);
        ASSERT_EQ(jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *) priv, (int) strlen(priv)), 0);
        ASSERT_EQ(jwt_add_header(jwt, "kid", kid), 0);
        ASSERT_EQ(jwt_add_grant(jwt, "iss", "controller"), 0);
        ASSERT_EQ(jwt_add_grant(jwt, "sub", "bob"), 0);
        ASSERT_EQ(jwt_add_grant(jwt, "aud", "jumpstarter"), 0);
        ASSERT_EQ(jwt_add_grant(jwt, "jti", "libjwt"), 0);
        ASSERT_EQ(jwt_add_grant_int(jwt, "iat", NOW_S), 0);
        ASSERT_EQ(jwt_add_grant_int(jwt, "nbf", NOW_S), 0);
        ASSERT_EQ(jwt_add_grant_int(jwt, "exp", NOW_S + 60), 0);
        s = jwt_encode_str(jwt);
        ASSERT_TRUE(s);
        {
                _cleanup_(token_claims_freep) TokenClaims *v = assert_accepted_with(ring, s, &expect, NOW_USEC);

                ASSERT_STREQ(v->sub, "bob");
        }
        free(s);

        /* What libjwt makes without a key: alg "none". */
        ASSERT_EQ(jwt_set_alg(jwt, JWT_ALG_NONE, NULL, 0), 0);
        s = jwt_encode_str(jwt);
        ASSERT_TRUE(s);
        fprintf(stderr, "  libjwt unsigned: %.40s...\n", s);
        assert_refused(s, "unsupported-algorithm");
        free(s);
        jwt_free(jwt);
}

__attribute__((destructor)) static void teardown(void) {
        ring = keyring_free(ring);
        other = keyring_free(other);
}

TEST_MAIN();
