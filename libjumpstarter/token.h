/* Tokens: the ES256 JWTs that the controller signs and every component verifies */
#pragma once

#include <errno.h>
#include <stdint.h>

#include "keyring.h"
#include "macro.h"

/* A token longer than this is refused unread. */
#define TOKEN_SIZE_MAX (8 * 1024)
/* The clock skew that verifiers should allow between hosts. */
#define TOKEN_LEEWAY_DEFAULT_USEC (30 * USEC_PER_SEC)

/* Values of the "kind" claim. */
#define TOKEN_KIND_CLIENT "client"
#define TOKEN_KIND_EXPORTER "exporter"
#define TOKEN_KIND_STREAM "stream"

/* Why a token was refused. The strings are stable: the API returns them as the JSON error reason. */
typedef enum TokenError {
        TOKEN_MALFORMED,             /* "malformed": not a well-formed token of ours, or too long */
        TOKEN_UNSUPPORTED_ALGORITHM, /* "unsupported-algorithm": alg is not ES256 */
        TOKEN_UNKNOWN_KEY,           /* "unknown-key": no kid, or not one of the keyring */
        TOKEN_RETIRED_KEY,           /* "retired-key" */
        TOKEN_BAD_SIGNATURE,         /* "bad-signature" */
        TOKEN_EXPIRED,               /* "expired" */
        TOKEN_NOT_YET_VALID,         /* "not-yet-valid": nbf, or iat, is in the future */
        TOKEN_WRONG_ISSUER,          /* "wrong-issuer" */
        TOKEN_WRONG_AUDIENCE,        /* "wrong-audience" */
        TOKEN_WRONG_KIND,            /* "wrong-kind": e.g. a client token where a stream token is due */
        TOKEN_REVOKED,               /* "revoked" */
        _TOKEN_ERROR_MAX,
        _TOKEN_ERROR_INVALID = -EINVAL,
} TokenError;

const char *token_error_to_string(TokenError e);
TokenError token_error_from_string(const char *s);

/* The claims of a token. Times are in usec since the epoch; the token carries whole seconds. For
 * token_issue() the caller fills it (jti NULL: a random one; nbf 0: iat) and keeps ownership; from
 * token_verify() it is one heap object for token_claims_free(). */
typedef struct TokenClaims {
        char *iss;
        char *sub;
        char *aud;       /* issued as one string; after verification, the expected audience */
        uint64_t iat_usec;
        uint64_t nbf_usec;
        uint64_t exp_usec;
        char *jti;       /* 128 random bits as 32 hex digits */
        char *kid;       /* after verification: the key that signed it; ignored by token_issue() */

        /* Optional (NULL: absent). */
        char *kind;      /* TOKEN_KIND_* */
        char *lease;     /* the lease a stream token is scoped to */
        char *dut;       /* the DUT a stream token is scoped to */
        char *verbs;     /* the operations a stream token allows, space-separated */
} TokenClaims;

TokenClaims *token_claims_free(TokenClaims *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(TokenClaims *, token_claims_free);

/* Signs the claims with the keyring's active key. -ENOKEY if there is none; -EINVAL if iss, sub or
 * aud is missing or empty, or if exp is not after nbf. */
int token_issue(const Keyring *k, const TokenClaims *c, char **ret);

/* Returns > 0 if the verified token must be refused as revoked (by its jti, sub, lease, ...), 0 if
 * not, < 0 on failure (which token_verify() returns: it fails closed). */
typedef int (*TokenRevokedFunc)(const TokenClaims *c, void *userdata);

typedef struct TokenExpect {
        const char *issuer;   /* required: iss must equal it */
        const char *audience; /* required: aud must equal it, or be an array that contains it */
        const char *kind;     /* NULL: any kind, or none */
        uint64_t leeway_usec; /* allowed clock skew for exp, nbf and iat */
        TokenRevokedFunc is_revoked; /* optional */
        void *userdata;
} TokenExpect;

/* Verifies a token string against the keyring at time now_usec. Returns 0 and the claims (ret is
 * optional), -EACCES if the token is refused, with the reason string (token_error_to_string())
 * in *ret_reason (optional; for the caller to free), or another negative errno on failure (no
 * reason then). */
int token_verify(const Keyring *k, const char *token, const TokenExpect *e, uint64_t now_usec,
                 TokenClaims **ret, char **ret_reason);

/* Like token_verify(), but with the reason as an enum (*ret_error is _TOKEN_ERROR_INVALID unless the
 * token was refused). */
int token_verify_full(const Keyring *k, const char *token, const TokenExpect *e, uint64_t now_usec,
                      TokenClaims **ret, TokenError *ret_error);
