/* HTTP power switch presets: the URLs each kind of switch wants and what its answers mean */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "driver.h"

typedef enum HttpPreset {
        HTTP_PRESET_PDUDAEMON,
        HTTP_PRESET_SHELLY,
        HTTP_PRESET_TASMOTA,
        HTTP_PRESET_TEMPLATE,
        _HTTP_PRESET_MAX,
        _HTTP_PRESET_INVALID = -EINVAL,
} HttpPreset;

const char *http_preset_to_string(HttpPreset p);
HttpPreset http_preset_from_string(const char *s);

/* What one request asks of the switch. */
typedef enum HttpRequestKind {
        HTTP_REQUEST_ON,
        HTTP_REQUEST_OFF,
        HTTP_REQUEST_STATUS,
        HTTP_REQUEST_READING,
        _HTTP_REQUEST_KIND_MAX,
        _HTTP_REQUEST_KIND_INVALID = -EINVAL,
} HttpRequestKind;

const char *http_request_kind_to_string(HttpRequestKind k);

typedef struct HttpSwitch {
        HttpPreset preset;
        const char *url;            /* base URL, without a trailing slash */
        const char *hostname;       /* pdudaemon */
        uint64_t port;              /* pdudaemon */
        uint64_t channel;           /* shelly, tasmota */
        const char *on_url, *off_url, *status_url, *status_on_text; /* template */
} HttpSwitch;

/* Whether the switch can answer a request of that kind at all. */
bool http_switch_supports(const HttpSwitch *s, HttpRequestKind k);

/* The URL of a request: -EOPNOTSUPP where the preset has none, -ENOMEM. */
int http_switch_build_url(const HttpSwitch *s, HttpRequestKind k, char **ret);

/* Reads an answer: the state of ON, OFF and STATUS requests (ON and OFF answers that say nothing
 * give the state asked for), the watts of READING. -EBADMSG for an answer that is not what the
 * preset speaks. */
int http_switch_parse_state(const HttpSwitch *s, HttpRequestKind k, const char *body, PowerState *ret);
int http_switch_parse_reading(const HttpSwitch *s, const char *body, double *ret);
