/* Tokens: the ES256 JWTs that the controller signs and every component verifies */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "macro.h"
#include "token.h"

/* P-256: r and s are 32 bytes each; JOSE puts them side by side (RFC 7518, 3.4), where OpenSSL
 * speaks DER. */
#define ES256_INT_SIZE 32
#define ES256_SIG_SIZE (2 * ES256_INT_SIZE)
#define JTI_BYTES 16
/* Seconds in a NumericDate that still fit in usec. */
#define NUMERIC_DATE_MAX (UINT64_MAX / USEC_PER_SEC)

static const char *const token_error_table[_TOKEN_ERROR_MAX] = {
        [TOKEN_MALFORMED] = "malformed",
        [TOKEN_UNSUPPORTED_ALGORITHM] = "unsupported-algorithm",
        [TOKEN_UNKNOWN_KEY] = "unknown-key",
        [TOKEN_RETIRED_KEY] = "retired-key",
        [TOKEN_BAD_SIGNATURE] = "bad-signature",
        [TOKEN_EXPIRED] = "expired",
        [TOKEN_NOT_YET_VALID] = "not-yet-valid",
        [TOKEN_WRONG_ISSUER] = "wrong-issuer",
        [TOKEN_WRONG_AUDIENCE] = "wrong-audience",
        [TOKEN_WRONG_KIND] = "wrong-kind",
        [TOKEN_REVOKED] = "revoked",
};

const char *token_error_to_string(TokenError e) {
        if (e < 0 || e >= _TOKEN_ERROR_MAX)
                return NULL;
        return token_error_table[e];
}

TokenError token_error_from_string(const char *s) {
        if (!s)
                return _TOKEN_ERROR_INVALID;
        for (TokenError e = 0; e < _TOKEN_ERROR_MAX; e++)
                if (streq(token_error_table[e], s))
                        return e;
        return _TOKEN_ERROR_INVALID;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(ECDSA_SIG *, ECDSA_SIG_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);

TokenClaims *token_claims_free(TokenClaims *c) {
        if (!c)
                return NULL;
        free(c->iss);
        free(c->sub);
        free(c->aud);
        free(c->jti);
        free(c->kid);
        free(c->kind);
        free(c->lease);
        free(c->dut);
        free(c->verbs);
        free(c);
        return NULL;
}

static const char base64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int base64url_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

/* Unpadded base64url (RFC 7515, 2), appended at *p. */
static char *base64url_put(char *p, const void *data, size_t size) {
        const uint8_t *d = data;
        size_t i;

        for (i = 0; i + 3 <= size; i += 3) {
                uint32_t v = (uint32_t) d[i] << 16 | (uint32_t) d[i + 1] << 8 | d[i + 2];

                *p++ = base64url_alphabet[v >> 18 & 63];
                *p++ = base64url_alphabet[v >> 12 & 63];
                *p++ = base64url_alphabet[v >> 6 & 63];
                *p++ = base64url_alphabet[v & 63];
        }
        if (size - i == 1) {
                *p++ = base64url_alphabet[d[i] >> 2];
                *p++ = base64url_alphabet[(d[i] & 3) << 4];
        } else if (size - i == 2) {
                uint32_t v = (uint32_t) d[i] << 8 | d[i + 1];

                *p++ = base64url_alphabet[v >> 10 & 63];
                *p++ = base64url_alphabet[v >> 4 & 63];
                *p++ = base64url_alphabet[(v & 15) << 2];
        }
        return p;
}

static size_t base64url_size(size_t size) {
        return size / 3 * 4 + (size % 3 == 0 ? 0 : size % 3 + 1);
}

/* Strict: no padding, no other characters, and the unused bits of the last character zero, so
 * that every byte string has exactly one encoding and a token cannot be altered unnoticed. */
static int base64url_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint32_t acc = 0;
        size_t m = 0;
        int bits = 0;

        if (n % 4 == 1)
                return -EBADMSG;
        buf = malloc(n / 4 * 3 + 3);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int v = base64url_value(s[i]);

                if (v < 0)
                        return -EBADMSG;
                acc = (acc << 6 | (uint32_t) v) & 0xffffff;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        buf[m++] = (uint8_t) (acc >> bits);
                }
        }
        if ((acc & ((1U << bits) - 1)) != 0)
                return -EBADMSG;
        *ret = TAKE_PTR(buf);
        *ret_size = m;
        return 0;
}

static int json_to_string(const json_t *j, char **ret) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);

        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static bool str_is_set(const char *s) {
        return s && *s;
}

static int random_jti(char **ret) {
        uint8_t b[JTI_BYTES];
        char *s;

        if (RAND_bytes(b, sizeof(b)) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        s = malloc(2 * JTI_BYTES + 1);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < JTI_BYTES; i++)
                sprintf(s + 2 * i, "%02x", b[i]);
        *ret = s;
        return 0;
}

static int claims_to_json(const TokenClaims *c, const char *jti, json_t **ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const struct {
                const char *name;
                const char *value;
        } optional[] = {
                { "kind", c->kind },
                { "lease", c->lease },
                { "dut", c->dut },
                { "verbs", c->verbs },
        };
        uint64_t nbf = c->nbf_usec ? c->nbf_usec : c->iat_usec;

        /* Whole seconds, rounded down: exp a fraction early rather than late. */
        j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}",
                      "iss", c->iss,
                      "sub", c->sub,
                      "aud", c->aud,
                      "iat", (json_int_t) (c->iat_usec / USEC_PER_SEC),
                      "nbf", (json_int_t) (nbf / USEC_PER_SEC),
                      "exp", (json_int_t) (c->exp_usec / USEC_PER_SEC),
                      "jti", jti);
        if (!j)
                return -EINVAL; /* not UTF-8, or out of memory */
        for (size_t i = 0; i < ELEMENTSOF(optional); i++)
                if (optional[i].value && json_object_set_new(j, optional[i].name, json_string(optional[i].value)) < 0)
                        return -EINVAL; /* not UTF-8, or out of memory */
        *ret = TAKE_PTR(j);
        return 0;
}

/* ES256 over the signing input, as JOSE's r || s. */
static int sign_es256(EVP_PKEY *pkey, const char *input, size_t size, uint8_t ret[static ES256_SIG_SIZE]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = NULL;
        _cleanup_free_ unsigned char *der = NULL;
        const unsigned char *p;
        const BIGNUM *r, *s;
        size_t der_size = 0;

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
            EVP_DigestSign(ctx, NULL, &der_size, (const unsigned char *) input, size) != 1)
                goto fail;
        der = malloc(der_size);
        if (!der)
                return -ENOMEM;
        if (EVP_DigestSign(ctx, der, &der_size, (const unsigned char *) input, size) != 1)
                goto fail;
        p = der;
        sig = d2i_ECDSA_SIG(NULL, &p, (long) der_size);
        if (!sig)
                goto fail;
        ECDSA_SIG_get0(sig, &r, &s);
        if (BN_bn2binpad(r, ret, ES256_INT_SIZE) != ES256_INT_SIZE ||
            BN_bn2binpad(s, ret + ES256_INT_SIZE, ES256_INT_SIZE) != ES256_INT_SIZE)
                goto fail;
        return 0;
fail:
        ERR_clear_error();
        return -EIO;
}

int token_issue(const Keyring *k, const TokenClaims *c, char **ret) {
        _cleanup_(json_decrefp) json_t *header = NULL, *payload = NULL;
        _cleanup_free_ char *header_s = NULL, *payload_s = NULL, *jti = NULL, *token = NULL;
        const KeyringKey *key;
        uint8_t sig[ES256_SIG_SIZE];
        uint64_t nbf;
        size_t size;
        char *p;
        int r;

        assert(k);
        assert(c);
        assert(ret);

        key = keyring_active(k);
        if (!key || !key->has_private)
                return -ENOKEY;
        nbf = c->nbf_usec ? c->nbf_usec : c->iat_usec;
        if (!str_is_set(c->iss) || !str_is_set(c->sub) || !str_is_set(c->aud))
                return -EINVAL;
        /* Optional claims are absent or non-empty: token_verify() refuses empty ones. */
        if ((c->jti && !*c->jti) || (c->kind && !*c->kind) || (c->lease && !*c->lease) ||
            (c->dut && !*c->dut) || (c->verbs && !*c->verbs))
                return -EINVAL;
        if (c->iat_usec == 0 || c->exp_usec / USEC_PER_SEC <= nbf / USEC_PER_SEC)
                return -EINVAL;

        if (c->jti)
                jti = strdup(c->jti);
        else {
                r = random_jti(&jti);
                if (r < 0)
                        return r;
        }
        if (!jti)
                return -ENOMEM;

        header = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "typ", "JWT", "kid", key->kid);
        if (!header)
                return -ENOMEM;
        r = claims_to_json(c, jti, &payload);
        if (r < 0)
                return r;
        r = json_to_string(header, &header_s);
        if (r < 0)
                return r;
        r = json_to_string(payload, &payload_s);
        if (r < 0)
                return r;

        size = base64url_size(strlen(header_s)) + 1 + base64url_size(strlen(payload_s)) + 1 +
               base64url_size(ES256_SIG_SIZE);
        /* A token that no verifier would read is a caller's mistake. */
        if (size > TOKEN_SIZE_MAX)
                return -E2BIG;
        token = malloc(size + 1);
        if (!token)
                return -ENOMEM;
        p = base64url_put(token, header_s, strlen(header_s));
        *p++ = '.';
        p = base64url_put(p, payload_s, strlen(payload_s));
        r = sign_es256(key->pkey, token, (size_t) (p - token), sig);
        if (r < 0)
                return r;
        *p++ = '.';
        p = base64url_put(p, sig, sizeof(sig));
        *p = 0;
        assert((size_t) (p - token) == size);

        *ret = TAKE_PTR(token);
        return 0;
}

/* Verifies JOSE's r || s by converting it to the DER that OpenSSL expects. */
static int verify_es256(EVP_PKEY *pkey, const char *input, size_t size, const uint8_t *sig, size_t sig_size) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *es = NULL;
        _cleanup_(BN_freep) BIGNUM *r = NULL, *s = NULL;
        _cleanup_free_ unsigned char *der = NULL;
        int der_size, v;

        if (sig_size != ES256_SIG_SIZE)
                return 0;
        es = ECDSA_SIG_new();
        r = BN_bin2bn(sig, ES256_INT_SIZE, NULL);
        s = BN_bin2bn(sig + ES256_INT_SIZE, ES256_INT_SIZE, NULL);
        ctx = EVP_MD_CTX_new();
        if (!es || !r || !s || !ctx || ECDSA_SIG_set0(es, r, s) != 1) {
                ERR_clear_error();
                return -ENOMEM;
        }
        r = s = NULL; /* owned by es now */
        der_size = i2d_ECDSA_SIG(es, &der);
        if (der_size <= 0 || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        v = EVP_DigestVerify(ctx, der, (size_t) der_size, (const unsigned char *) input, size);
        /* 0 is a wrong signature, < 0 one that did not even parse: both are a refusal. */
        ERR_clear_error();
        return v == 1;
}

typedef struct Segment {
        const char *text;
        size_t size;
        uint8_t *data; /* decoded */
        size_t data_size;
} Segment;

static void segments_done(Segment (*s)[3]) {
        for (size_t i = 0; i < 3; i++)
                free((*s)[i].data);
}

/* A NumericDate: whole seconds, which must fit in usec. */
static bool json_get_time(const json_t *j, const char *name, uint64_t *ret_usec) {
        const json_t *v = json_object_get(j, name);
        json_int_t i;

        if (!json_is_integer(v))
                return false;
        i = json_integer_value(v);
        if (i < 0 || (uint64_t) i > NUMERIC_DATE_MAX)
                return false;
        *ret_usec = (uint64_t) i * USEC_PER_SEC;
        return true;
}

/* A required (or, with optional, an absent or) string claim, copied. */
static int json_get_string(const json_t *j, const char *name, bool optional, char **ret) {
        const json_t *v = json_object_get(j, name);
        char *s;

        if (!v && optional)
                return 0;
        if (!json_is_string(v) || json_string_length(v) == 0)
                return -EBADMSG;
        s = strdup(json_string_value(v));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static bool audience_matches(const json_t *aud, const char *expected) {
        size_t i;
        json_t *e;

        if (json_is_string(aud))
                return streq(json_string_value(aud), expected);
        json_array_foreach(aud, i, e)
                if (json_is_string(e) && streq(json_string_value(e), expected))
                        return true;
        return false;
}

static bool audience_is_valid(const json_t *aud) {
        size_t i;
        json_t *e;

        if (json_is_string(aud))
                return true;
        if (!json_is_array(aud) || json_array_size(aud) == 0)
                return false;
        json_array_foreach(aud, i, e)
                if (!json_is_string(e))
                        return false;
        return true;
}

static uint64_t add_saturating(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static int refuse(TokenError e, TokenError *ret_error, const char *why) {
        log_debug("Token refused (%s): %s", token_error_to_string(e), why);
        if (ret_error)
                *ret_error = e;
        return -EACCES;
}

/* The header members we write, and no others: no "jku", "jwk", "x5u", "x5c" that would name a
 * key of the token's choosing, no "crit" extensions we do not implement. */
static const char *header_unexpected_member(json_t *header) {
        const char *name;
        json_t *v;

        json_object_foreach(header, name, v)
                if (!STR_IN_SET(name, "alg", "typ", "kid"))
                        return name;
        return NULL;
}

int token_verify_full(const Keyring *k, const char *token, const TokenExpect *e, uint64_t now_usec,
                      TokenClaims **ret, TokenError *ret_error) {
        _cleanup_(segments_done) Segment seg[3] = { 0 };
        _cleanup_(json_decrefp) json_t *header = NULL, *payload = NULL;
        _cleanup_(token_claims_freep) TokenClaims *c = NULL;
        const char *alg, *typ, *kid, *p, *member;
        const json_t *aud;
        const KeyringKey *key;
        uint64_t leeway;
        size_t n;
        int r;

        assert(k);
        assert(token);
        assert(e);
        assert(e->issuer && e->audience);

        if (ret_error)
                *ret_error = _TOKEN_ERROR_INVALID;
        leeway = e->leeway_usec;

        n = strnlen(token, TOKEN_SIZE_MAX + 1);
        if (n > TOKEN_SIZE_MAX)
                return refuse(TOKEN_MALFORMED, ret_error, "too long");

        /* Exactly three parts: header.payload.signature. */
        p = token;
        for (size_t i = 0; i < 3; i++) {
                const char *dot = i < 2 ? strchr(p, '.') : NULL;

                if (i < 2 && !dot)
                        return refuse(TOKEN_MALFORMED, ret_error, "fewer than three parts");
                seg[i].text = p;
                seg[i].size = dot ? (size_t) (dot - p) : strlen(p);
                p += seg[i].size + (dot ? 1 : 0);
        }
        if (strchr(seg[2].text, '.'))
                return refuse(TOKEN_MALFORMED, ret_error, "more than three parts");
        if (seg[0].size == 0 || seg[1].size == 0)
                return refuse(TOKEN_MALFORMED, ret_error, "empty header or payload");
        for (size_t i = 0; i < 3; i++) {
                r = base64url_decode(seg[i].text, seg[i].size, &seg[i].data, &seg[i].data_size);
                if (r == -EBADMSG)
                        return refuse(TOKEN_MALFORMED, ret_error, "not base64url");
                if (r < 0)
                        return r;
        }

        /* The header, read by us before anything else, and trusted for nothing but the choice of
         * key: the algorithm is fixed. */
        header = json_loadb((const char *) seg[0].data, seg[0].data_size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(header))
                return refuse(TOKEN_MALFORMED, ret_error, "header is no JSON object");
        alg = json_string_value(json_object_get(header, "alg"));
        if (!alg)
                return refuse(TOKEN_MALFORMED, ret_error, "header has no alg");
        if (!streq(alg, "ES256"))
                return refuse(TOKEN_UNSUPPORTED_ALGORITHM, ret_error, "alg is not ES256");
        typ = json_string_value(json_object_get(header, "typ"));
        if (json_object_get(header, "typ") && !streq_ptr(typ, "JWT"))
                return refuse(TOKEN_MALFORMED, ret_error, "typ is not JWT");
        member = header_unexpected_member(header);
        if (member)
                return refuse(TOKEN_MALFORMED, ret_error, "unexpected header member");

        kid = json_string_value(json_object_get(header, "kid"));
        key = keyring_find(k, kid);
        if (!key)
                return refuse(TOKEN_UNKNOWN_KEY, ret_error, kid ? "kid not in the keyring" : "no kid");
        if (key->state == KEY_RETIRED)
                return refuse(TOKEN_RETIRED_KEY, ret_error, "key is retired");

        /* The signing input is the text of the first two parts as received. */
        r = verify_es256(key->pkey, token, seg[0].size + 1 + seg[1].size, seg[2].data, seg[2].data_size);
        if (r < 0)
                return r;
        if (r == 0)
                return refuse(TOKEN_BAD_SIGNATURE, ret_error, "signature does not verify");

        /* From here on the payload is ours: still checked, since a bug or an old version could have
         * signed anything. */
        payload = json_loadb((const char *) seg[1].data, seg[1].data_size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(payload))
                return refuse(TOKEN_MALFORMED, ret_error, "payload is no JSON object");
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        aud = json_object_get(payload, "aud");
        if (!json_get_time(payload, "iat", &c->iat_usec) ||
            !json_get_time(payload, "nbf", &c->nbf_usec) ||
            !json_get_time(payload, "exp", &c->exp_usec) ||
            !audience_is_valid(aud))
                return refuse(TOKEN_MALFORMED, ret_error, "iat, nbf, exp or aud missing or invalid");
        {
                const struct {
                        const char *name;
                        bool optional;
                        char **field;
                } strings[] = {
                        { "iss", false, &c->iss },
                        { "sub", false, &c->sub },
                        { "jti", false, &c->jti },
                        { "kind", true, &c->kind },
                        { "lease", true, &c->lease },
                        { "dut", true, &c->dut },
                        { "verbs", true, &c->verbs },
                };

                for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                        r = json_get_string(payload, strings[i].name, strings[i].optional, strings[i].field);
                        if (r == -EBADMSG)
                                return refuse(TOKEN_MALFORMED, ret_error, "a string claim is missing or invalid");
                        if (r < 0)
                                return r;
                }
        }

        if (now_usec >= add_saturating(c->exp_usec, leeway))
                return refuse(TOKEN_EXPIRED, ret_error, "exp has passed");
        if (c->nbf_usec > add_saturating(now_usec, leeway))
                return refuse(TOKEN_NOT_YET_VALID, ret_error, "nbf is in the future");
        if (c->iat_usec > add_saturating(now_usec, leeway))
                return refuse(TOKEN_NOT_YET_VALID, ret_error, "iat is in the future");
        if (!streq(c->iss, e->issuer))
                return refuse(TOKEN_WRONG_ISSUER, ret_error, "iss differs");
        if (!audience_matches(aud, e->audience))
                return refuse(TOKEN_WRONG_AUDIENCE, ret_error, "aud differs");
        if (e->kind && !streq_ptr(c->kind, e->kind))
                return refuse(TOKEN_WRONG_KIND, ret_error, "kind differs");

        c->aud = strdup(e->audience);
        c->kid = strdup(key->kid);
        if (!c->aud || !c->kid)
                return -ENOMEM;
        if (e->is_revoked) {
                r = e->is_revoked(c, e->userdata);
                /* A failure must not pass for a refusal that has no reason. */
                if (r == -EACCES)
                        return -EIO;
                if (r < 0)
                        return r;
                if (r > 0)
                        return refuse(TOKEN_REVOKED, ret_error, "revoked");
        }

        if (ret)
                *ret = TAKE_PTR(c);
        return 0;
}

int token_verify(const Keyring *k, const char *token, const TokenExpect *e, uint64_t now_usec,
                 TokenClaims **ret, char **ret_reason) {
        TokenError error;
        int r;

        if (ret_reason)
                *ret_reason = NULL;
        r = token_verify_full(k, token, e, now_usec, ret, &error);
        if (r == -EACCES && error >= 0 && ret_reason) {
                *ret_reason = strdup(token_error_to_string(error));
                if (!*ret_reason)
                        return -ENOMEM;
        }
        return r;
}
