/* libcurl's multi-socket API driven by an sd-event loop */
#pragma once

#include <curl/curl.h>
#include <systemd/sd-event.h>

typedef struct CurlGlue CurlGlue;

/* A transfer finished: result is CURLE_OK or why it failed. The easy handle is removed from the
 * multi handle before this is called; the callee owns it again. */
typedef void (*CurlGlueDoneFunc)(CurlGlue *g, CURL *easy, CURLcode result, void *userdata);

int curl_glue_new(sd_event *event, CurlGlue **ret);
CurlGlue *curl_glue_free(CurlGlue *g);

/* Starts a transfer; done is called from the event loop when it ends (never from within). */
int curl_glue_add(CurlGlue *g, CURL *easy, CurlGlueDoneFunc done, void *userdata);
/* Stops a transfer without calling done. */
void curl_glue_remove(CurlGlue *g, CURL *easy);

static inline void curl_glue_freep(CurlGlue **g) {
        curl_glue_free(*g);
}
