/* A small blocking HTTPS + JSON client of the controller API, for the command line */
#pragma once

#include <jansson.h>
#include <signal.h>
#include <stdint.h>

#include "client-config.h"

typedef struct ApiClient ApiClient;

/* Talks to c->endpoint with c->ca_pem (held in memory) as the only trusted CA and c->token as the
 * bearer token. The config must outlive the client. */
int api_client_new(const ClientConfig *c, ApiClient **ret);
ApiClient *api_client_free(ApiClient *a);
static inline void api_client_freep(ApiClient **a) {
        if (*a)
                api_client_free(*a);
}

/* METHOD https://ENDPOINT/v1PATH with body (NULL: none) as JSON. On a 2xx answer returns 0 and the
 * parsed body in *ret (NULL for 204; ret may be NULL). On an error answer returns the negative
 * errno of its reason (docs/protocol.md's table: NotFound -> -ENOENT, ...), on a transport error
 * one that says what failed (-ECONNREFUSED, -ETIMEDOUT, -EPROTO for TLS); api_client_error() then
 * says why in words. */
int api_client_call(ApiClient *a, const char *method, const char *path, json_t *body, json_t **ret);

/* Called with each line of an NDJSON stream, parsed. Returns 0 to go on, > 0 to stop the stream
 * (api_client_watch() returns that value), < 0 to fail with that error. */
typedef int (*ApiLineHandler)(json_t *line, void *userdata);

/* GET PATH as an NDJSON stream. Returns 0 when the server ended the stream properly, -ECONNRESET
 * when it broke off (reconnect and re-read, docs/protocol.md "Streaming"), -ECANCELED when the
 * cancel flag was raised, -ETIMEDOUT at the deadline, or what the handler returned. An error
 * answer to the request itself is returned as api_client_call() does. */
int api_client_watch(ApiClient *a, const char *path, ApiLineHandler handler, void *userdata);

/* A watch (only) gives up within about a second when *flag becomes non-zero (a signal handler's
 * flag), or when CLOCK_MONOTONIC passes deadline_usec (0: never). */
void api_client_set_cancel(ApiClient *a, const volatile sig_atomic_t *flag);
void api_client_set_deadline(ApiClient *a, uint64_t deadline_usec);

/* After a failure: "Reason: message" for an error answer, or what went wrong on the way. */
const char *api_client_error(const ApiClient *a);
/* After a failure: the reason of the error answer ("NotFound"), NULL for a transport error. */
const char *api_client_reason(const ApiClient *a);
/* After a failure: the error body's detail ("expired" for a refused token), or NULL. */
const char *api_client_detail(const ApiClient *a);

/* The errno docs/protocol.md gives a reason; status decides for reasons this build does not know. */
int api_reason_to_errno(const char *reason, long status);

/* CLOCK_MONOTONIC in usec. */
uint64_t now_monotonic_usec(void);
