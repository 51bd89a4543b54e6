/* The first line of a data stream: what the client asks for, and whether its token allows it */
#include <assert.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "stream-request.h"

static const char *const stream_kind_table[_STREAM_KIND_MAX] = {
        [STREAM_CONTROL] = "control",
        [STREAM_SERIAL] = "serial",
        [STREAM_STORAGE] = "storage",
};

const char *stream_kind_to_string(StreamKind k) {
        if (k < 0 || k >= _STREAM_KIND_MAX)
                return NULL;
        return stream_kind_table[k];
}

StreamKind stream_kind_from_string(const char *s) {
        if (!s)
                return _STREAM_KIND_INVALID;
        for (StreamKind k = 0; k < _STREAM_KIND_MAX; k++)
                if (streq(stream_kind_table[k], s))
                        return k;
        return _STREAM_KIND_INVALID;
}

const char *stream_kind_verb(StreamKind k) {
        switch (k) {
        case STREAM_SERIAL:
                return "serial";
        case STREAM_STORAGE:
                return "storage";
        default:
                return NULL;
        }
}

bool stream_verbs_allow(const char *verbs, const char *verb) {
        size_t n = strlen(verb);

        if (!verbs)
                return false;
        for (const char *p = verbs; *p;) {
                size_t k = strcspn(p, " ");

                if (k == n && strncmp(p, verb, n) == 0)
                        return true;
                p += k;
                p += strspn(p, " ");
        }
        return false;
}

void stream_request_done(StreamRequest *r) {
        if (!r)
                return;
        if (r->token) {
                explicit_bzero(r->token, strlen(r->token));
                free(r->token);
        }
        free(r->dut);
        *r = (StreamRequest) { .kind = _STREAM_KIND_INVALID };
}

static int problem(char **ret_message, int r, const char *format, ...) _printf_(3, 4);
static int problem(char **ret_message, int r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        if (vasprintf(ret_message, format, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return *ret_message ? r : -ENOMEM;
}

int stream_request_parse(const char *line, size_t n, StreamRequest *ret, char **ret_message) {
        _cleanup_(stream_request_done) StreamRequest req = { .kind = _STREAM_KIND_INVALID };
        json_t *root, *token, *dut, *stream, *writable, *route;
        json_error_t error;
        const char *key;
        json_t *value;
        int r = 0;

        assert(ret);
        assert(ret_message);

        if (n > STREAM_REQUEST_MAX)
                return problem(ret_message, -EINVAL, "The request line is longer than %u bytes", STREAM_REQUEST_MAX);
        if (memchr(line, 0, n))
                return problem(ret_message, -EBADMSG, "The request line contains a NUL byte");

        root = json_loadb(line, n, JSON_REJECT_DUPLICATES, &error);
        if (!root)
                return problem(ret_message, -EBADMSG, "Malformed JSON at line %d, column %d: %s", error.line,
                               error.column, error.text);
        if (!json_is_object(root)) {
                r = problem(ret_message, -EINVAL, "The request must be a JSON object");
                goto finish;
        }

        json_object_foreach(root, key, value)
                if (!STR_IN_SET(key, "token", "dut", "stream", "writable", "route")) {
                        r = problem(ret_message, -EINVAL, "Unknown member \"%s\" in the request", key);
                        goto finish;
                }

        token = json_object_get(root, "token");
        dut = json_object_get(root, "dut");
        stream = json_object_get(root, "stream");
        writable = json_object_get(root, "writable");
        route = json_object_get(root, "route");

        if (!json_is_string(token) || json_string_length(token) == 0) {
                r = problem(ret_message, -EINVAL, "\"token\" must be a non-empty string");
                goto finish;
        }
        if (!json_is_string(dut) || !dut_name_is_valid(json_string_value(dut))) {
                r = problem(ret_message, -EINVAL, "\"dut\" must be a DUT name ([a-z0-9][a-z0-9-]{0,62})");
                goto finish;
        }
        if (!json_is_string(stream) || stream_kind_from_string(json_string_value(stream)) < 0) {
                r = problem(ret_message, -EINVAL, "\"stream\" must be \"control\", \"serial\" or \"storage\"");
                goto finish;
        }
        if (writable && !json_is_boolean(writable)) {
                r = problem(ret_message, -EINVAL, "\"writable\" must be true or false");
                goto finish;
        }
        if (route && !json_is_boolean(route)) {
                r = problem(ret_message, -EINVAL, "\"route\" must be true or false");
                goto finish;
        }

        req.token = strdup(json_string_value(token));
        req.dut = strdup(json_string_value(dut));
        if (!req.token || !req.dut) {
                r = -ENOMEM;
                goto finish;
        }
        req.kind = stream_kind_from_string(json_string_value(stream));
        req.writable = writable && json_is_true(writable);
        req.route = route && json_is_true(route);

        *ret = req;
        req = (StreamRequest) { .kind = _STREAM_KIND_INVALID };
        *ret_message = NULL;
finish:
        json_decref(root);
        return r;
}

static int refuse(ApiError e, ApiError *ret_error, char **ret_message, const char *format, ...) _printf_(4, 5);
static int refuse(ApiError e, ApiError *ret_error, char **ret_message, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        if (vasprintf(ret_message, format, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        if (!*ret_message)
                return -ENOMEM;
        *ret_error = e;
        return -EACCES;
}

int stream_request_check(const StreamRequest *req, const StreamCheck *check, TokenClaims **ret_claims,
                         ApiError *ret_error, char **ret_message, char **ret_detail) {
        _cleanup_(token_claims_freep) TokenClaims *claims = NULL;
        _cleanup_free_ char *audience = NULL, *reason = NULL;
        const char *verb;
        TokenExpect expect;
        int r;

        assert(req && check && ret_error && ret_message && ret_detail);
        *ret_detail = NULL;

        if (!check->keyring || !check->issuer)
                return refuse(API_ERROR_UNAVAILABLE, ret_error, ret_message,
                              "The exporter does not know the controller's keys yet; try again shortly");

        if (asprintf(&audience, "exporter/%s", check->exporter_name) < 0)
                return -ENOMEM;
        expect = (TokenExpect) {
                .issuer = check->issuer,
                .audience = audience,
                .kind = TOKEN_KIND_STREAM,
                .leeway_usec = TOKEN_LEEWAY_DEFAULT_USEC,
        };
        r = token_verify(check->keyring, req->token, &expect, check->now_usec, &claims, &reason);
        if (r == -EACCES) {
                *ret_detail = TAKE_PTR(reason);
                return refuse(API_ERROR_UNAUTHORIZED, ret_error, ret_message, "The stream token was refused: %s",
                              *ret_detail);
        }
        if (r < 0)
                return r;

        if (!claims->dut)
                return refuse(API_ERROR_FORBIDDEN, ret_error, ret_message, "The stream token names no DUT");
        if (!streq(claims->dut, req->dut))
                return refuse(API_ERROR_FORBIDDEN, ret_error, ret_message,
                              "The stream token is for DUT '%s', not '%s'", claims->dut, req->dut);
        if (!check->dut_exists)
                return refuse(API_ERROR_NOT_FOUND, ret_error, ret_message, "Exporter %s has no DUT named '%s'",
                              check->exporter_name, req->dut);
        if (!claims->lease)
                return refuse(API_ERROR_FORBIDDEN, ret_error, ret_message, "The stream token names no lease");
        if (!check->lease)
                return refuse(API_ERROR_EXPIRED, ret_error, ret_message,
                              "Lease '%s' does not hold DUT '%s' (it is not leased)", claims->lease, req->dut);
        if (!streq(check->lease, claims->lease))
                return refuse(API_ERROR_EXPIRED, ret_error, ret_message,
                              "Lease '%s' does not hold DUT '%s' (it ended)", claims->lease, req->dut);

        verb = stream_kind_verb(req->kind);
        if (verb && !stream_verbs_allow(claims->verbs, verb))
                return refuse(API_ERROR_FORBIDDEN, ret_error, ret_message,
                              "The stream token does not allow '%s' (it allows: %s)", verb,
                              claims->verbs ? claims->verbs : "nothing");
        if (req->route)
                return refuse(API_ERROR_BAD_REQUEST, ret_error, ret_message,
                              "\"route\" is for the controller's router, not for an exporter");

        if (ret_claims)
                *ret_claims = TAKE_PTR(claims);
        return 0;
}
