/* A small blocking HTTPS + JSON client of the controller API, for the command line */
#include <assert.h>
#include <stdarg.h>
#include <curl/curl.h>
#include <stdio.h>
#include <time.h>

#include "api-client.h"
#include "log.h"
#include "macro.h"

/* An answer larger than this is no answer of ours. */
#define BODY_MAX (16U * 1024 * 1024)
/* One NDJSON line. */
#define LINE_MAX_BYTES (4U * 1024 * 1024)
#define CONNECT_TIMEOUT_SEC 10L
/* A plain call: the longest a controller takes to answer anything but a watch. */
#define CALL_TIMEOUT_SEC 120L

struct ApiClient {
        const ClientConfig *config;
        CURL *curl;
        char *base_url;
        char *auth_header;
        char errbuf[CURL_ERROR_SIZE];

        const volatile sig_atomic_t *cancel;
        uint64_t deadline_usec;

        char *error;
        char *reason;
        char *detail;
};

/* The reason -> errno half of the controller's table (jumpstarterd/controller/api-error.c, which
 * jmp does not link). The strings are the contract; keep this in step with docs/protocol.md. */
static const struct {
        const char *reason;
        int error;
} reason_table[] = {
        { "BadRequest", EINVAL },
        { "MalformedJSON", EBADMSG },
        { "InvalidSelector", EINVAL },
        { "Unauthorized", EKEYREJECTED },
        { "Forbidden", EACCES },
        { "NoAccess", EPERM },
        { "NotFound", ENOENT },
        { "MethodNotAllowed", EOPNOTSUPP },
        { "Conflict", EEXIST },
        { "Busy", EBUSY },
        { "Expired", ETIME },
        { "PayloadTooLarge", EFBIG },
        { "Internal", EIO },
        { "NotSupported", EOPNOTSUPP },
        { "Unavailable", EHOSTDOWN },
        { "Timeout", ETIMEDOUT },
        { "Unsatisfiable", EDOM },
};

int api_reason_to_errno(const char *reason, long status) {
        if (reason)
                for (size_t i = 0; i < ELEMENTSOF(reason_table); i++)
                        if (streq(reason_table[i].reason, reason))
                                return reason_table[i].error;
        /* A reason from a newer controller, or no JSON at all (a proxy): the status says enough. */
        switch (status) {
        case 400: return EINVAL;
        case 401: return EKEYREJECTED;
        case 403: return EACCES;
        case 404: return ENOENT;
        case 405: return EOPNOTSUPP;
        case 409: return EEXIST;
        case 410: return ETIME;
        case 413: return EFBIG;
        case 422: return EDOM;
        case 501: return EOPNOTSUPP;
        case 502:
        case 503: return EHOSTDOWN;
        case 504: return ETIMEDOUT;
        }
        return status >= 400 && status < 500 ? EINVAL : EIO;
}

static char *mfree_str(char *p) {
        free(p);
        return NULL;
}

uint64_t now_monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static void api_client_clear_error(ApiClient *a) {
        a->error = mfree_str(a->error);
        a->reason = mfree_str(a->reason);
        a->detail = mfree_str(a->detail);
}

ApiClient *api_client_free(ApiClient *a) {
        if (!a)
                return NULL;
        if (a->curl)
                curl_easy_cleanup(a->curl);
        free(a->base_url);
        if (a->auth_header)
                explicit_bzero(a->auth_header, strlen(a->auth_header));
        free(a->auth_header);
        api_client_clear_error(a);
        free(a);
        return NULL;
}

int api_client_new(const ClientConfig *c, ApiClient **ret) {
        _cleanup_(api_client_freep) ApiClient *a = NULL;

        assert(c);
        assert(ret);

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        a = calloc(1, sizeof(ApiClient));
        if (!a)
                return -ENOMEM;
        a->config = c;
        a->curl = curl_easy_init();
        if (!a->curl)
                return -ENOMEM;
        if (asprintf(&a->base_url, "https://%s/v1", c->endpoint) < 0) {
                a->base_url = NULL;
                return -ENOMEM;
        }
        if (asprintf(&a->auth_header, "Authorization: Bearer %s", c->token) < 0) {
                a->auth_header = NULL;
                return -ENOMEM;
        }
        *ret = TAKE_PTR(a);
        return 0;
}

void api_client_set_cancel(ApiClient *a, const volatile sig_atomic_t *flag) {
        a->cancel = flag;
}

void api_client_set_deadline(ApiClient *a, uint64_t deadline_usec) {
        a->deadline_usec = deadline_usec;
}

const char *api_client_error(const ApiClient *a) {
        return a->error ?: "unknown error";
}

const char *api_client_reason(const ApiClient *a) {
        return a->reason;
}

const char *api_client_detail(const ApiClient *a) {
        return a->detail;
}

typedef struct Transfer {
        ApiClient *client;
        bool stream;
        char *buf;
        size_t size;
        ApiLineHandler handler;
        void *userdata;
        int handler_result;
        bool cancelled, timed_out;
} Transfer;

static long response_status(CURL *curl) {
        long status = 0;

        (void) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        return status;
}

/* Feeds complete lines of t->buf to the handler and keeps the rest. */
static int stream_lines(Transfer *t) {
        size_t start = 0;
        char *nl;

        while ((nl = memchr(t->buf + start, '\n', t->size - start))) {
                size_t len = (size_t) (nl - (t->buf + start));
                json_error_t jerr;
                json_t *line;
                int r;

                if (len > 0) {
                        line = json_loadb(t->buf + start, len, JSON_REJECT_DUPLICATES, &jerr);
                        if (!line) {
                                t->handler_result = -EBADMSG;
                                return -EBADMSG;
                        }
                        r = t->handler(line, t->userdata);
                        json_decref(line);
                        if (r != 0) {
                                t->handler_result = r;
                                return r;
                        }
                }
                start += len + 1;
        }
        memmove(t->buf, t->buf + start, t->size - start);
        t->size -= start;
        if (t->size > LINE_MAX_BYTES) {
                t->handler_result = -EMSGSIZE;
                return -EMSGSIZE;
        }
        return 0;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata) {
        Transfer *t = userdata;
        size_t n = size * nmemb;
        char *p;

        if (t->size + n > BODY_MAX)
                return 0;
        p = realloc(t->buf, t->size + n + 1);
        if (!p)
                return 0;
        t->buf = p;
        memcpy(t->buf + t->size, data, n);
        t->size += n;
        t->buf[t->size] = 0;

        /* An error answer to a watch is one JSON error body, not lines: keep it whole. */
        if (t->stream && response_status(t->client->curl) < 300 && stream_lines(t) != 0)
                return 0;
        return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        Transfer *t = userdata;
        ApiClient *a = t->client;

        /* Only a watch gives up: a call that releases a lease must still go through. */
        if (!t->stream)
                return 0;
        if (a->cancel && *a->cancel) {
                t->cancelled = true;
                return 1;
        }
        if (a->deadline_usec > 0 && now_monotonic_usec() >= a->deadline_usec) {
                t->timed_out = true;
                return 1;
        }
        return 0;
}

static int set_error(ApiClient *a, int r, const char *format, ...) _printf_(3, 4);
static int set_error(ApiClient *a, int r, const char *format, ...) {
        va_list ap;

        api_client_clear_error(a);
        va_start(ap, format);
        if (vasprintf(&a->error, format, ap) < 0)
                a->error = NULL;
        va_end(ap);
        return r;
}

/* The error answer as "Reason: message" and its errno. */
static int error_from_answer(ApiClient *a, long status, const char *body, size_t size) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *reason = NULL, *message = NULL, *detail = NULL;
        int r;

        j = body ? json_loadb(body, size, 0, NULL) : NULL;
        if (json_is_object(j)) {
                reason = json_string_value(json_object_get(j, "reason"));
                message = json_string_value(json_object_get(j, "message"));
                detail = json_string_value(json_object_get(j, "detail"));
        }
        api_client_clear_error(a);
        if (reason) {
                a->reason = strdup(reason);
                if (!a->reason)
                        return -ENOMEM;
        }
        if (detail) {
                a->detail = strdup(detail);
                if (!a->detail)
                        return -ENOMEM;
        }
        if (reason && message)
                r = asprintf(&a->error, "%s: %s", reason, message);
        else if (reason)
                r = asprintf(&a->error, "%s", reason);
        else
                r = asprintf(&a->error, "the controller answered HTTP %ld without an error body", status);
        if (r < 0) {
                a->error = NULL;
                return -ENOMEM;
        }
        return -api_reason_to_errno(reason, status);
}

static int errno_from_curl(CURLcode c) {
        switch (c) {
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
                return -EPROTO;
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
                return -ECONNRESET;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

static int perform(ApiClient *a, const char *method, const char *path, json_t *body, Transfer *t) {
        _cleanup_free_ char *url = NULL, *payload = NULL;
        struct curl_slist *headers = NULL;
        CURL *c = a->curl;
        CURLcode cc;
        long status;

        if (asprintf(&url, "%s%s", a->base_url, path) < 0) {
                url = NULL;
                return -ENOMEM;
        }
        if (body) {
                payload = json_dumps(body, JSON_COMPACT);
                if (!payload)
                        return -ENOMEM;
        }

        /* Reset keeps the connection: several calls of one command share it (keep-alive). */
        curl_easy_reset(c);
        a->errbuf[0] = 0;
        headers = curl_slist_append(headers, a->auth_header);
        headers = curl_slist_append(headers, t->stream ? "Accept: application/x-ndjson" : "Accept: application/json");
        /* No body: no Content-Type (curl would claim a form). */
        headers = curl_slist_append(headers, payload ? "Content-Type: application/json" : "Content-Type:");
        if (!headers)
                return -ENOMEM;

        (void) curl_easy_setopt(c, CURLOPT_URL, url);
        (void) curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
        (void) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        (void) curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a->errbuf);
        (void) curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        (void) curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_SEC);
        (void) curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
        (void) curl_easy_setopt(c, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        if (a->config->ca_pem) {
                struct curl_blob blob = {
                        .data = a->config->ca_pem,
                        .len = strlen(a->config->ca_pem),
                        .flags = CURL_BLOB_COPY,
                };
                (void) curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
                /* The config's CA and nothing else. */
                (void) curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
        }
        if (a->config->insecure) {
                (void) curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
                (void) curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        (void) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (streq(method, "POST") || streq(method, "PUT") || payload) {
                (void) curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload ?: "");
                (void) curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long) (payload ? strlen(payload) : 0));
        }
        if (!t->stream)
                (void) curl_easy_setopt(c, CURLOPT_TIMEOUT, CALL_TIMEOUT_SEC);
        (void) curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        (void) curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
        (void) curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        (void) curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        (void) curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);

        log_debug("%s %s", method, url);
        cc = curl_easy_perform(c);
        curl_slist_free_all(headers);
        (void) curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
        status = response_status(c);

        if (t->cancelled)
                return set_error(a, -ECANCELED, "interrupted");
        if (t->timed_out)
                return set_error(a, -ETIMEDOUT, "the wait ran out");
        if (t->handler_result != 0) {
                if (t->handler_result == -EBADMSG)
                        return set_error(a, -EBADMSG, "the controller sent a line that is not JSON");
                if (t->handler_result == -EMSGSIZE)
                        return set_error(a, -EMSGSIZE, "the controller sent an overlong line");
                return t->handler_result;
        }
        if (cc != CURLE_OK && status >= 200 && status < 300 && t->stream)
                return set_error(a, -ECONNRESET, "the stream broke off: %s",
                                 a->errbuf[0] ? a->errbuf : curl_easy_strerror(cc));
        if (cc != CURLE_OK) {
                if (cc == CURLE_WRITE_ERROR && t->size >= BODY_MAX)
                        return set_error(a, -EFBIG, "the controller's answer is larger than %u bytes", BODY_MAX);
                return set_error(a, errno_from_curl(cc), "cannot reach the controller at %s: %s", a->base_url,
                                 a->errbuf[0] ? a->errbuf : curl_easy_strerror(cc));
        }
        if (status < 200 || status >= 300)
                return error_from_answer(a, status, t->buf, t->size);
        api_client_clear_error(a);
        return (int) status;
}

int api_client_call(ApiClient *a, const char *method, const char *path, json_t *body, json_t **ret) {
        Transfer t = { .client = a };
        json_error_t jerr;
        json_t *j = NULL;
        int r;

        assert(a);
        assert(method);
        assert(path);

        r = perform(a, method, path, body, &t);
        if (r < 0) {
                free(t.buf);
                return r;
        }
        if (r != 204 && t.size > 0) {
                j = json_loadb(t.buf, t.size, JSON_REJECT_DUPLICATES, &jerr);
                if (!j) {
                        free(t.buf);
                        return set_error(a, -EBADMSG, "the controller's answer is not JSON: %s", jerr.text);
                }
        }
        free(t.buf);
        if (ret)
                *ret = j;
        else
                json_decref(j);
        return 0;
}

int api_client_watch(ApiClient *a, const char *path, ApiLineHandler handler, void *userdata) {
        Transfer t = { .client = a, .stream = true, .handler = handler, .userdata = userdata };
        int r;

        assert(a);
        assert(path);
        assert(handler);

        r = perform(a, "GET", path, NULL, &t);
        free(t.buf);
        if (r < 0)
                return r;
        /* The handler stopped it, or a proper end: the chunked terminator came. */
        return t.handler_result > 0 ? t.handler_result : 0;
}
