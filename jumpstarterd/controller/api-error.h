/* Controller API errors: one table of reasons, HTTP statuses and errno values */
#pragma once

#include <errno.h>
#include <jansson.h>

/* The stable "reason" of a JSON error body. Clients switch on the reason, people read the
 * message. Both directions go through one table (api-error.c), so that an errno raised deep in
 * the controller reaches an agent as the same errno, and a FUSE reader or jmp as the same words:
 *
 *   controller: -ENOENT -> 404 {"reason": "NotFound", "message": "..."}
 *   agent:      "NotFound" -> ENOENT -> D-Bus System.Error.ENOENT -> FUSE ENOENT / jmp message
 *
 * Append new reasons at the end: the strings, not the numbers, are the contract. */
typedef enum ApiError {
        API_ERROR_BAD_REQUEST,        /* "BadRequest"        400  EINVAL */
        API_ERROR_MALFORMED_JSON,     /* "MalformedJSON"     400  EBADMSG */
        API_ERROR_INVALID_SELECTOR,   /* "InvalidSelector"   400  EINVAL */
        API_ERROR_UNAUTHORIZED,       /* "Unauthorized"      401  EKEYREJECTED */
        API_ERROR_FORBIDDEN,          /* "Forbidden"         403  EACCES */
        API_ERROR_NO_ACCESS,          /* "NoAccess"          403  EPERM */
        API_ERROR_NOT_FOUND,          /* "NotFound"          404  ENOENT */
        API_ERROR_METHOD_NOT_ALLOWED, /* "MethodNotAllowed"  405  EOPNOTSUPP */
        API_ERROR_CONFLICT,           /* "Conflict"          409  EEXIST */
        API_ERROR_BUSY,               /* "Busy"              409  EBUSY */
        API_ERROR_EXPIRED,            /* "Expired"           410  ETIME */
        API_ERROR_PAYLOAD_TOO_LARGE,  /* "PayloadTooLarge"   413  EFBIG */
        API_ERROR_INTERNAL,           /* "Internal"          500  EIO */
        API_ERROR_NOT_SUPPORTED,      /* "NotSupported"      501  EOPNOTSUPP */
        API_ERROR_UNAVAILABLE,        /* "Unavailable"       503  EHOSTDOWN */
        API_ERROR_TIMEOUT,            /* "Timeout"           504  ETIMEDOUT */
        API_ERROR_UNSATISFIABLE,      /* "Unsatisfiable"     422  EDOM: a selector nothing can ever match */
        _API_ERROR_MAX,
        _API_ERROR_INVALID = -EINVAL,
} ApiError;

const char *api_error_to_string(ApiError e);
ApiError api_error_from_string(const char *s);

/* The HTTP status the server answers with. */
unsigned api_error_to_http_status(ApiError e);
/* For a client that got an error status without a JSON body (a proxy in between, say). */
ApiError api_error_from_http_status(unsigned status);

/* The (positive) errno a client turns the reason into. */
int api_error_to_errno(ApiError e);
/* The reason for an errno, positive or negative; anything unknown is API_ERROR_INTERNAL. */
ApiError api_error_from_errno(int error);

/* {"reason": ..., "message": ..., "detail": ...}: a NULL message is the reason's generic text; a
 * NULL detail is left out. The detail is a second stable word where the reason alone is too
 * coarse: for Unauthorized, why the token was refused ("expired", "unknown-key": the strings of
 * token_error_to_string()). NULL on OOM. */
json_t *api_error_to_json(ApiError e, const char *message, const char *detail);
/* Reads an error body: 0 and the reason, or -EBADMSG if the body is no error body. A reason this
 * build does not know (from a newer controller) is _API_ERROR_INVALID: callers then go by the
 * HTTP status. ret_message and ret_detail (optional) point into the body, or are NULL. */
int api_error_from_json(json_t *body, ApiError *ret_error, const char **ret_message, const char **ret_detail);
