/* Controller API errors: one table of reasons, HTTP statuses and errno values */
#include <errno.h>

#include "api-error.h"
#include "macro.h"

typedef struct ApiErrorInfo {
        const char *reason;
        unsigned status;
        int error;           /* what a client turns the reason into */
        const char *message; /* when the server has nothing more specific to say */
} ApiErrorInfo;

static const ApiErrorInfo api_error_table[_API_ERROR_MAX] = {
        [API_ERROR_BAD_REQUEST]        = { "BadRequest",       400, EINVAL,       "Bad request" },
        [API_ERROR_MALFORMED_JSON]     = { "MalformedJSON",    400, EBADMSG,      "The request body is not valid JSON" },
        [API_ERROR_INVALID_SELECTOR]   = { "InvalidSelector",  400, EINVAL,       "Invalid label selector" },
        [API_ERROR_UNAUTHORIZED]       = { "Unauthorized",     401, EKEYREJECTED, "A valid bearer token is required" },
        [API_ERROR_FORBIDDEN]          = { "Forbidden",        403, EACCES,       "Forbidden" },
        [API_ERROR_NO_ACCESS]          = { "NoAccess",         403, EPERM,        "The access policy does not allow this" },
        [API_ERROR_NOT_FOUND]          = { "NotFound",         404, ENOENT,       "Not found" },
        [API_ERROR_METHOD_NOT_ALLOWED] = { "MethodNotAllowed", 405, EOPNOTSUPP,   "Method not allowed" },
        [API_ERROR_CONFLICT]           = { "Conflict",         409, EEXIST,       "Conflict" },
        [API_ERROR_BUSY]               = { "Busy",             409, EBUSY,        "Busy" },
        [API_ERROR_EXPIRED]            = { "Expired",          410, ETIME,        "Expired" },
        [API_ERROR_PAYLOAD_TOO_LARGE]  = { "PayloadTooLarge",  413, EFBIG,        "The request body is too large" },
        [API_ERROR_INTERNAL]           = { "Internal",         500, EIO,          "Internal error" },
        [API_ERROR_NOT_SUPPORTED]      = { "NotSupported",     501, EOPNOTSUPP,   "Not supported" },
        [API_ERROR_UNAVAILABLE]        = { "Unavailable",      503, EHOSTDOWN,    "Unavailable" },
        [API_ERROR_TIMEOUT]            = { "Timeout",          504, ETIMEDOUT,    "Timed out" },
        [API_ERROR_UNSATISFIABLE]      = { "Unsatisfiable",    422, EDOM,         "No exporter can ever match this selector" },
};

static const ApiErrorInfo *api_error_info(ApiError e) {
        if (e < 0 || e >= _API_ERROR_MAX)
                e = API_ERROR_INTERNAL;
        return &api_error_table[e];
}

const char *api_error_to_string(ApiError e) {
        if (e < 0 || e >= _API_ERROR_MAX)
                return NULL;
        return api_error_table[e].reason;
}

ApiError api_error_from_string(const char *s) {
        if (!s)
                return _API_ERROR_INVALID;
        for (ApiError e = 0; e < _API_ERROR_MAX; e++)
                if (streq(api_error_table[e].reason, s))
                        return e;
        return _API_ERROR_INVALID;
}

unsigned api_error_to_http_status(ApiError e) {
        return api_error_info(e)->status;
}

ApiError api_error_from_http_status(unsigned status) {
        switch (status) {
        case 400: return API_ERROR_BAD_REQUEST;
        case 401: return API_ERROR_UNAUTHORIZED;
        case 403: return API_ERROR_FORBIDDEN;
        case 404: return API_ERROR_NOT_FOUND;
        case 405: return API_ERROR_METHOD_NOT_ALLOWED;
        case 409: return API_ERROR_CONFLICT;
        case 410: return API_ERROR_EXPIRED;
        case 413: return API_ERROR_PAYLOAD_TOO_LARGE;
        case 422: return API_ERROR_UNSATISFIABLE;
        case 501: return API_ERROR_NOT_SUPPORTED;
        case 502:
        case 503: return API_ERROR_UNAVAILABLE;
        case 504: return API_ERROR_TIMEOUT;
        }
        if (status >= 400 && status < 500)
                return API_ERROR_BAD_REQUEST;
        if (status >= 500 && status < 600)
                return API_ERROR_INTERNAL;
        return _API_ERROR_INVALID;
}

int api_error_to_errno(ApiError e) {
        return api_error_info(e)->error;
}

ApiError api_error_from_errno(int error) {
        /* Many errno values to one reason: the reason says what the client can do about it. */
        switch (error < 0 ? -error : error) {
        case EDOM:
                /* The lease scheduler's word for a self-contradicting selector (a=1,a=2). */
                return API_ERROR_UNSATISFIABLE;
        case EINVAL:
        case ERANGE:
        case EILSEQ:
                return API_ERROR_BAD_REQUEST;
        case EBADMSG:
                return API_ERROR_MALFORMED_JSON;
        case EKEYREJECTED:
        case EKEYEXPIRED:
        case EKEYREVOKED:
        case ENOKEY:
                return API_ERROR_UNAUTHORIZED;
        case EACCES:
                return API_ERROR_FORBIDDEN;
        case EPERM:
                return API_ERROR_NO_ACCESS;
        case ENOENT:
        case ESRCH:
        case ENXIO:
        case ENODEV:
                return API_ERROR_NOT_FOUND;
        case EEXIST:
                return API_ERROR_CONFLICT;
        case EBUSY:
                return API_ERROR_BUSY;
        case ETIME:
        case ESTALE:
                return API_ERROR_EXPIRED;
        case EFBIG:
        case E2BIG:
        case EMSGSIZE:
                return API_ERROR_PAYLOAD_TOO_LARGE;
        case EOPNOTSUPP:
        case ENOSYS:
                return API_ERROR_NOT_SUPPORTED;
        case EHOSTDOWN:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case ECONNREFUSED:
        case ECONNRESET:
        case ENOTCONN:
        case ESHUTDOWN:
        case ECANCELED:
        case EAGAIN:
                return API_ERROR_UNAVAILABLE;
        case ETIMEDOUT:
                return API_ERROR_TIMEOUT;
        default:
                return API_ERROR_INTERNAL;
        }
}

json_t *api_error_to_json(ApiError e, const char *message, const char *detail) {
        const ApiErrorInfo *info = api_error_info(e);

        return json_pack("{s:s, s:s, s:s*}", "reason", info->reason, "message", message ?: info->message,
                         "detail", detail);
}

int api_error_from_json(json_t *body, ApiError *ret_error, const char **ret_message, const char **ret_detail) {
        json_t *reason, *message, *detail;

        if (!json_is_object(body))
                return -EBADMSG;
        reason = json_object_get(body, "reason");
        if (!json_is_string(reason))
                return -EBADMSG;
        message = json_object_get(body, "message");
        if (message && !json_is_string(message))
                return -EBADMSG;
        detail = json_object_get(body, "detail");
        if (detail && !json_is_string(detail))
                return -EBADMSG;

        if (ret_error)
                *ret_error = api_error_from_string(json_string_value(reason));
        if (ret_message)
                *ret_message = message ? json_string_value(message) : NULL;
        if (ret_detail)
                *ret_detail = detail ? json_string_value(detail) : NULL;
        return 0;
}
