/* HTTP power switch presets: the URLs each kind of switch wants and what its answers mean */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "http-preset.h"
#include "macro.h"

static const char *const http_preset_table[_HTTP_PRESET_MAX] = {
        [HTTP_PRESET_PDUDAEMON] = "pdudaemon",
        [HTTP_PRESET_SHELLY] = "shelly",
        [HTTP_PRESET_TASMOTA] = "tasmota",
        [HTTP_PRESET_TEMPLATE] = "template",
};

const char *http_preset_to_string(HttpPreset p) {
        if (p < 0 || p >= _HTTP_PRESET_MAX)
                return NULL;
        return http_preset_table[p];
}

HttpPreset http_preset_from_string(const char *s) {
        if (!s)
                return _HTTP_PRESET_INVALID;
        for (HttpPreset p = 0; p < _HTTP_PRESET_MAX; p++)
                if (streq(http_preset_table[p], s))
                        return p;
        return _HTTP_PRESET_INVALID;
}

static const char *const http_request_kind_table[_HTTP_REQUEST_KIND_MAX] = {
        [HTTP_REQUEST_ON] = "on",
        [HTTP_REQUEST_OFF] = "off",
        [HTTP_REQUEST_STATUS] = "status",
        [HTTP_REQUEST_READING] = "reading",
};

const char *http_request_kind_to_string(HttpRequestKind k) {
        if (k < 0 || k >= _HTTP_REQUEST_KIND_MAX)
                return NULL;
        return http_request_kind_table[k];
}

bool http_switch_supports(const HttpSwitch *s, HttpRequestKind k) {
        switch (k) {
        case HTTP_REQUEST_ON:
        case HTTP_REQUEST_OFF:
                return true;
        case HTTP_REQUEST_STATUS:
                /* pdudaemon queues commands and has no way to ask an outlet's state. */
                return s->preset != HTTP_PRESET_PDUDAEMON &&
                       (s->preset != HTTP_PRESET_TEMPLATE || s->status_url);
        case HTTP_REQUEST_READING:
                return s->preset == HTTP_PRESET_SHELLY || s->preset == HTTP_PRESET_TASMOTA;
        default:
                return false;
        }
}

/* Percent-encodes everything but RFC 3986's unreserved characters. */
static char *url_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        char *buf, *p;

        buf = malloc(strlen(s) * 3 + 1);
        if (!buf)
                return NULL;
        for (p = buf; *s; s++) {
                unsigned char c = (unsigned char) *s;

                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~')
                        *p++ = (char) c;
                else {
                        *p++ = '%';
                        *p++ = hex[c >> 4];
                        *p++ = hex[c & 15];
                }
        }
        *p = '\0';
        return buf;
}

int http_switch_build_url(const HttpSwitch *s, HttpRequestKind k, char **ret) {
        _cleanup_free_ char *host = NULL;
        const char *t = NULL;
        char *url = NULL;
        int n = -1;

        if (!http_switch_supports(s, k))
                return -EOPNOTSUPP;

        switch (s->preset) {
        case HTTP_PRESET_PDUDAEMON:
                host = url_escape(strempty(s->hostname));
                if (!host)
                        return -ENOMEM;
                n = asprintf(&url, "%s/power/control/%s?hostname=%s&port=%" PRIu64, s->url,
                             k == HTTP_REQUEST_ON ? "on" : "off", host, s->port);
                break;
        case HTTP_PRESET_SHELLY:
                if (k == HTTP_REQUEST_ON || k == HTTP_REQUEST_OFF)
                        n = asprintf(&url, "%s/rpc/Switch.Set?id=%" PRIu64 "&on=%s", s->url, s->channel,
                                     k == HTTP_REQUEST_ON ? "true" : "false");
                else
                        n = asprintf(&url, "%s/rpc/Switch.GetStatus?id=%" PRIu64, s->url, s->channel);
                break;
        case HTTP_PRESET_TASMOTA:
                if (k == HTTP_REQUEST_READING)
                        n = asprintf(&url, "%s/cm?cmnd=Status%%208", s->url);
                else
                        n = asprintf(&url, "%s/cm?cmnd=Power%" PRIu64 "%s", s->url, s->channel,
                                     k == HTTP_REQUEST_ON ? "%20On" : k == HTTP_REQUEST_OFF ? "%20Off" : "");
                break;
        case HTTP_PRESET_TEMPLATE:
                t = k == HTTP_REQUEST_ON ? s->on_url : k == HTTP_REQUEST_OFF ? s->off_url : s->status_url;
                if (!t)
                        return -EOPNOTSUPP;
                url = strdup(t);
                n = url ? 0 : -1;
                break;
        default:
                return -EINVAL;
        }
        if (n < 0)
                return -ENOMEM;
        *ret = url;
        return 0;
}

static json_t *parse_object(const char *body) {
        json_t *j = json_loads(body, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);

        if (j && !json_is_object(j)) {
                json_decref(j);
                return NULL;
        }
        return j;
}

/* Tasmota calls a single relay POWER, several POWER1, POWER2, ... */
static int tasmota_state(const HttpSwitch *s, json_t *j, PowerState *ret) {
        char key[32];
        json_t *v;

        snprintf(key, sizeof key, "POWER%" PRIu64, s->channel);
        v = json_object_get(j, key);
        if (!v && s->channel == 1)
                v = json_object_get(j, "POWER");
        if (!json_is_string(v))
                return -EBADMSG;
        if (streq(json_string_value(v), "ON"))
                *ret = POWER_ON;
        else if (streq(json_string_value(v), "OFF"))
                *ret = POWER_OFF;
        else
                return -EBADMSG;
        return 0;
}

int http_switch_parse_state(const HttpSwitch *s, HttpRequestKind k, const char *body, PowerState *ret) {
        json_t *j = NULL, *v;
        int r = 0;

        if (k == HTTP_REQUEST_READING || k < 0 || k >= _HTTP_REQUEST_KIND_MAX)
                return -EINVAL;
        body = strempty(body);

        switch (s->preset) {
        case HTTP_PRESET_SHELLY:
                if (k != HTTP_REQUEST_STATUS)
                        break;
                j = parse_object(body);
                v = json_object_get(j, "output");
                if (!json_is_boolean(v)) {
                        r = -EBADMSG;
                        break;
                }
                *ret = json_is_true(v) ? POWER_ON : POWER_OFF;
                json_decref(j);
                return 0;
        case HTTP_PRESET_TASMOTA:
                j = parse_object(body);
                if (!j) {
                        r = -EBADMSG;
                        break;
                }
                r = tasmota_state(s, j, ret);
                json_decref(j);
                return r;
        case HTTP_PRESET_TEMPLATE:
                if (k != HTTP_REQUEST_STATUS)
                        break;
                *ret = strstr(body, s->status_on_text ? s->status_on_text : "ON") ? POWER_ON : POWER_OFF;
                return 0;
        default:
                break;
        }
        json_decref(j);
        if (r < 0)
                return r;
        if (k == HTTP_REQUEST_STATUS)
                return -EOPNOTSUPP;
        /* The switch said yes and nothing more: it did what it was asked. */
        *ret = k == HTTP_REQUEST_ON ? POWER_ON : POWER_OFF;
        return 0;
}

static int json_watts(json_t *v, double *ret) {
        if (!json_is_number(v))
                return -EBADMSG;
        *ret = json_number_value(v);
        if (!(*ret >= 0.0 || *ret < 0.0)) /* NaN */
                return -EBADMSG;
        return 0;
}

int http_switch_parse_reading(const HttpSwitch *s, const char *body, double *ret) {
        json_t *j, *v = NULL;
        int r;

        j = parse_object(strempty(body));
        if (!j)
                return -EBADMSG;

        if (s->preset == HTTP_PRESET_SHELLY)
                v = json_object_get(j, "apower");
        else if (s->preset == HTTP_PRESET_TASMOTA) {
                v = json_object_get(json_object_get(json_object_get(j, "StatusSNS"), "ENERGY"), "Power");
                /* Devices with several relays report one value per relay. */
                if (json_is_array(v))
                        v = s->channel >= 1 ? json_array_get(v, (size_t) (s->channel - 1)) : NULL;
        } else {
                json_decref(j);
                return -EOPNOTSUPP;
        }
        r = json_watts(v, ret);
        json_decref(j);
        return r;
}
