/* Fuzzer for token verification: no bytes are ever accepted, and none get past the signature check
 * without a genuine signature */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "fuzz-check.h"
#include "fuzz.h"
#include "keyring.h"
#include "macro.h"
#include "token.h"


/* Keys made for this fuzzer and its corpus only: the corpus holds tokens they signed, so that the
 * checks after the signature are reached. The first key is active, the second verify-only, the
 * third retired. */
static const char *const fuzz_keys[] = {
        "-----BEGIN PRIVATE KEY-----\n"
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgec9xYEm5vC2ez+JZ\n"
        "z2EwDdJPo5OzgioNnJwPqAjiAcqhRANCAAT1K0OJt2npkbV0vpI4NbyVir+PZv4/\n"
        "3K2x7+sd/vUYyTrkwJfKOJPzAA4f8VNoQKTP8ccy1KsvJNPO55XqTdK5\n"
        "-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\n"
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCZTqwy6pn5wPP2Rn\n"
        "M5QmlRbcLdsAGnkH0xrRoos6bXqhRANCAATdHw/g7iE5HEOkH6S8XYSRx1JCEY/8\n"
        "FDORWoHy2h5UeZe3QsnPJSqi8P+fqJc90dg8nV5Wjt5bK2cltBMAegmW\n"
        "-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\n"
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmfmEzv0FJ+Rn1Gwk\n"
        "Ae9tUsptBe/gFQJngM07U7/1gTqhRANCAAQldxgAaHY1QAWLCxnZT05RoKRAk0JU\n"
        "64KHh00oh2Vh8zaGWMwH+3BfijhHDO95mzz9dQaEdbdCW5yOlFr7qnEt\n"
        "-----END PRIVATE KEY-----\n",
};

#define FUZZ_NOW_USEC (UINT64_C(1800000000) * USEC_PER_SEC)

static Keyring *fuzz_keyring(void) {
        static Keyring *k;
        const char *kid;

        if (k)
                return k;
        CHECK(keyring_new(&k) >= 0);
        CHECK(keyring_add_pem(k, fuzz_keys[0], strlen(fuzz_keys[0]), KEY_ACTIVE, NULL) >= 0);
        CHECK(keyring_add_pem(k, fuzz_keys[1], strlen(fuzz_keys[1]), KEY_VERIFY_ONLY, NULL) >= 0);
        CHECK(keyring_add_pem(k, fuzz_keys[2], strlen(fuzz_keys[2]), KEY_VERIFY_ONLY, &kid) >= 0);
        CHECK(keyring_retire(k, kid) >= 0);
        return k;
}

/* A lenient decoder of its own: whatever token.c's strict one accepted, this reads the same. */
static size_t b64url_decode_lenient(const char *s, size_t n, uint8_t *out) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        uint32_t acc = 0;
        size_t m = 0;
        int bits = 0;

        for (size_t i = 0; i < n; i++) {
                const char *p = memchr(alphabet, s[i], 64);

                if (!p)
                        return 0;
                acc = acc << 6 | (uint32_t) (p - alphabet);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[m++] = (uint8_t) (acc >> bits);
                }
        }
        return m;
}

/* The oracle: does the token carry a genuine ES256 signature by one of the keyring's keys? */
static bool signature_is_genuine(const char *token) {
        const char *dot2 = strrchr(token, '.');
        uint8_t raw[128];
        bool ok = false;
        size_t n;

        if (!dot2 || strlen(dot2 + 1) > 100)
                return false;
        n = b64url_decode_lenient(dot2 + 1, strlen(dot2 + 1), raw);
        if (n != 64)
                return false;
        for (size_t i = 0; i < fuzz_keyring()->n_keys && !ok; i++) {
                ECDSA_SIG *sig = ECDSA_SIG_new();
                BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
                unsigned char *der = NULL;
                EVP_MD_CTX *ctx = EVP_MD_CTX_new();
                int der_size;

                CHECK(sig && r && s && ctx && ECDSA_SIG_set0(sig, r, s) == 1);
                der_size = i2d_ECDSA_SIG(sig, &der);
                CHECK(der_size > 0);
                CHECK(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, fuzz_keyring()->keys[i]->pkey) == 1);
                ok = EVP_DigestVerify(ctx, der, (size_t) der_size, (const unsigned char *) token,
                                      (size_t) (dot2 - token)) == 1;
                EVP_MD_CTX_free(ctx);
                OPENSSL_free(der);
                ECDSA_SIG_free(sig);
        }
        ERR_clear_error();
        return ok;
}

static const char *current;

/* Everything that reaches the revocation check is revoked: nothing is ever accepted. */
static int revoke_all(const TokenClaims *c, void *userdata) {
        CHECK(c->iss && c->sub && c->aud && c->jti && c->kid);
        CHECK(c->exp_usec > FUZZ_NOW_USEC - 30 * USEC_PER_SEC);
        CHECK(signature_is_genuine(current));
        return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(token_claims_freep) TokenClaims *c = NULL;
        _cleanup_free_ char *token = NULL, *reason = NULL;
        const TokenExpect expect = {
                .issuer = "controller",
                .audience = "jumpstarter",
                .leeway_usec = 30 * USEC_PER_SEC,
                .is_revoked = revoke_all,
        };
        TokenError e;
        int r;

        /* A C string: what an Authorization header gives. */
        token = malloc(size + 1);
        if (!token)
                return 0;
        memcpy(token, data, size);
        token[size] = 0;
        current = token;

        r = token_verify(fuzz_keyring(), token, &expect, FUZZ_NOW_USEC, &c, &reason);
        if (r == -ENOMEM)
                return 0;
        CHECK(r == -EACCES);
        CHECK(!c);
        e = token_error_from_string(reason);
        CHECK(e >= 0);
        if (strlen(token) > TOKEN_SIZE_MAX)
                CHECK(e == TOKEN_MALFORMED);

        /* Refusals that only come after the signature check need a genuine signature. */
        switch (e) {
        case TOKEN_EXPIRED:
        case TOKEN_NOT_YET_VALID:
        case TOKEN_WRONG_ISSUER:
        case TOKEN_WRONG_AUDIENCE:
        case TOKEN_WRONG_KIND:
        case TOKEN_REVOKED:
                CHECK(signature_is_genuine(token));
                break;
        default:
                break;
        }
        return 0;
}
