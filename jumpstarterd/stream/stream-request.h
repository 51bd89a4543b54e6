/* The first line of a data stream: what the client asks for, and whether its token allows it */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api-error.h"
#include "keyring.h"
#include "macro.h"
#include "token.h"

/* The line with its newline; a token is at most TOKEN_SIZE_MAX. */
#define STREAM_REQUEST_MAX (16U * 1024U)

typedef enum StreamKind {
        STREAM_CONTROL,
        STREAM_SERIAL,
        STREAM_STORAGE,
        _STREAM_KIND_MAX,
        _STREAM_KIND_INVALID = -EINVAL,
} StreamKind;

const char *stream_kind_to_string(StreamKind k);
StreamKind stream_kind_from_string(const char *s);

typedef struct StreamRequest {
        char *token;
        char *dut;
        StreamKind kind;
        bool writable;
        bool route;
} StreamRequest;

void stream_request_done(StreamRequest *r);

/* Parses the line (without its newline): {"token", "dut", "stream", "writable"?, "route"?}. On
 * failure returns -EBADMSG (not JSON: MalformedJSON) or -EINVAL (BadRequest) with a message for
 * the client in *ret_message. */
int stream_request_parse(const char *line, size_t n, StreamRequest *ret, char **ret_message);

/* What the exporter knows when it judges a request. */
typedef struct StreamCheck {
        const Keyring *keyring;    /* NULL: the controller's keys are not known yet */
        const char *issuer;        /* the controller's name */
        const char *exporter_name; /* the audience is "exporter/<name>" */
        bool dut_exists;
        const char *lease;         /* the lease that holds the DUT now; NULL: none */
        uint64_t now_usec;         /* CLOCK_REALTIME */
} StreamCheck;

/* The verb a stream needs in the token's "verbs" (NULL: none, for control, whose operations each
 * need their own). */
const char *stream_kind_verb(StreamKind k);
/* Whether the space-separated verbs contain verb. */
bool stream_verbs_allow(const char *verbs, const char *verb);

/* Returns 0 with the token's claims (ret_claims is optional), -EACCES with the refusal (the reason,
 * a message for the client, and for a refused token the token's reason as detail), or -ENOMEM. */
int stream_request_check(const StreamRequest *req, const StreamCheck *check, TokenClaims **ret_claims,
                         ApiError *ret_error, char **ret_message, char **ret_detail);
