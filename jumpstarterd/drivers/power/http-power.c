/* Network power switch over HTTP: pdudaemon, Shelly Gen2, Tasmota and URL templates */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "curl-glue.h"
#include "daemon-util.h"
#include "driver.h"
#include "http-preset.h"
#include "log.h"
#include "queue.h"
#include "macro.h"
#include "power-drivers.h"
#include "power-sequence.h"

#define HTTP_TIMEOUT_DEFAULT_USEC (5 * USEC_PER_SEC)
#define HTTP_RETRIES_DEFAULT 2
#define HTTP_RETRIES_MAX 10
#define HTTP_CYCLE_DELAY_DEFAULT_USEC (2 * USEC_PER_SEC)
/* Switches answer with a few hundred bytes; anything much longer is not one of them. */
#define HTTP_BODY_MAX (64 * 1024)

typedef struct HttpPower HttpPower;
typedef struct HttpOp HttpOp;

/* One request to the switch, with its retries. Requests go out one at a time, in order. */
struct HttpOp {
        HttpRequestKind kind;
        unsigned attempt;
        PowerReadingFunc reading_done;  /* READING */
        void *userdata;
        HttpOp *next;
};

struct HttpPower {
        DriverContext ctx;
        HttpSwitch sw;
        char *url;
        uint64_t timeout_usec;
        unsigned retries;
        const char *username, *password;

        CurlGlue *glue;
        CURL *easy;                     /* the request of the queue's head, while in flight */
        char *body;
        size_t body_size;
        bool body_truncated;

        HttpOp *queue, *queue_tail;

        PowerSequence seq;
};

static void http_power_run(HttpPower *h);

/* The head of the queue is finished: r < 0 failed, else the state or the reading is given. */
static void http_power_finish(HttpPower *h, int r, PowerState state, double watts) {
        HttpOp *op = queue_pop(h->queue, h->queue_tail);

        assert(op);

        switch (op->kind) {
        case HTTP_REQUEST_ON:
        case HTTP_REQUEST_OFF:
                power_sequence_switched(&h->seq, r, state);
                break;
        case HTTP_REQUEST_STATUS:
                if (r >= 0)
                        power_sequence_set_state(&h->seq, state);
                break;
        case HTTP_REQUEST_READING:
                op->reading_done(r, r < 0 ? 0.0 : watts, op->userdata);
                break;
        default:
                assert(!"unknown request kind");
        }
        free(op);
        http_power_run(h);
}

static size_t http_power_on_data(char *data, size_t size, size_t nmemb, void *userdata) {
        HttpPower *h = userdata;
        size_t n = size * nmemb, take;
        char *b;

        take = MIN(n, (size_t) HTTP_BODY_MAX - h->body_size);
        if (take < n)
                h->body_truncated = true;
        if (take == 0)
                return n;
        b = realloc(h->body, h->body_size + take + 1);
        if (!b)
                return 0; /* fails the transfer with CURLE_WRITE_ERROR */
        memcpy(b + h->body_size, data, take);
        h->body = b;
        h->body_size += take;
        h->body[h->body_size] = '\0';
        return n;
}

static void http_power_on_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata);

static int http_power_start(HttpPower *h) {
        HttpOp *op = h->queue;
        _cleanup_free_ char *url = NULL;
        CURL *easy;
        int r;

        assert(op);
        assert(!h->easy);

        r = http_switch_build_url(&h->sw, op->kind, &url);
        if (r < 0)
                return r;

        easy = curl_easy_init();
        if (!easy)
                return -ENOMEM;

        free(h->body);
        h->body = NULL;
        h->body_size = 0;
        h->body_truncated = false;

        if (curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) (h->timeout_usec / USEC_PER_MSEC)) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, http_power_on_data) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_WRITEDATA, h) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_USERAGENT, "jumpstarterd") != CURLE_OK) {
                curl_easy_cleanup(easy);
                return -EIO;
        }
        if (h->username &&
            (curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC) != CURLE_OK ||
             curl_easy_setopt(easy, CURLOPT_USERNAME, h->username) != CURLE_OK ||
             curl_easy_setopt(easy, CURLOPT_PASSWORD, strempty(h->password)) != CURLE_OK)) {
                curl_easy_cleanup(easy);
                return -EIO;
        }

        r = curl_glue_add(h->glue, easy, http_power_on_done, h);
        if (r < 0) {
                curl_easy_cleanup(easy);
                return r;
        }
        h->easy = easy;
        op->attempt++;
        log_dut_prefix(LOG_DEBUG, 0, h->ctx.dut_name, "HTTP power %s: GET %s (attempt %u)",
                       http_request_kind_to_string(op->kind), url, op->attempt);
        return 0;
}

static void http_power_run(HttpPower *h) {
        while (!h->easy && h->queue) {
                int r = http_power_start(h);

                if (r >= 0)
                        return;
                log_dut_prefix(LOG_ERR, r, h->ctx.dut_name, "Failed to start HTTP power %s request: %m",
                               http_request_kind_to_string(h->queue->kind));
                http_power_finish(h, -EIO, POWER_UNKNOWN, 0.0);
                /* http_power_finish() ran the rest of the queue. */
                return;
        }
}

static void http_power_on_done(CurlGlue *g, CURL *easy, CURLcode result, void *userdata) {
        HttpPower *h = userdata;
        HttpOp *op = h->queue;
        PowerState state = POWER_UNKNOWN;
        double watts = 0.0;
        long code = 0;
        bool retry = false;
        int r = 0;

        assert(easy == h->easy);
        assert(op);
        h->easy = NULL;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(easy);

        if (result != CURLE_OK) {
                /* Timeouts and network errors may pass. */
                retry = result != CURLE_WRITE_ERROR;
                log_dut_prefix(LOG_WARNING, 0, h->ctx.dut_name, "HTTP power %s request to %s failed (attempt %u of %u): %s",
                               http_request_kind_to_string(op->kind), h->url, op->attempt, h->retries + 1,
                               curl_easy_strerror(result));
                r = -EIO;
        } else if (code >= 500) {
                retry = true;
                log_dut_prefix(LOG_WARNING, 0, h->ctx.dut_name, "HTTP power %s request to %s failed (attempt %u of %u): HTTP status %ld",
                               http_request_kind_to_string(op->kind), h->url, op->attempt, h->retries + 1, code);
                r = -EIO;
        } else if (code < 200 || code >= 300) {
                /* A wrong URL or password does not get better by asking again. */
                log_dut_prefix(LOG_ERR, 0, h->ctx.dut_name, "HTTP power %s request to %s refused: HTTP status %ld",
                               http_request_kind_to_string(op->kind), h->url, code);
                r = -EIO;
        }

        if (r < 0 && retry && op->attempt <= h->retries) {
                r = http_power_start(h);
                if (r >= 0)
                        return;
                log_dut_prefix(LOG_ERR, r, h->ctx.dut_name, "Failed to retry HTTP power request: %m");
                r = -EIO;
        }

        if (r >= 0 && h->body_truncated) {
                log_dut_prefix(LOG_ERR, 0, h->ctx.dut_name, "HTTP power %s: the switch answered more than %u bytes",
                               http_request_kind_to_string(op->kind), HTTP_BODY_MAX);
                r = -EIO;
        }
        if (r >= 0 && op->kind == HTTP_REQUEST_READING) {
                r = http_switch_parse_reading(&h->sw, h->body, &watts);
                if (r < 0) {
                        log_dut_prefix(LOG_ERR, 0, h->ctx.dut_name, "HTTP power reading: unexpected answer from the %s switch: %.200s",
                                       http_preset_to_string(h->sw.preset), strempty(h->body));
                        r = -EIO;
                }
        } else if (r >= 0) {
                r = http_switch_parse_state(&h->sw, op->kind, h->body, &state);
                if (r < 0) {
                        log_dut_prefix(LOG_ERR, 0, h->ctx.dut_name, "HTTP power %s: unexpected answer from the %s switch: %.200s",
                                       http_request_kind_to_string(op->kind), http_preset_to_string(h->sw.preset),
                                       strempty(h->body));
                        r = -EIO;
                } else if ((op->kind == HTTP_REQUEST_ON && state != POWER_ON) ||
                           (op->kind == HTTP_REQUEST_OFF && state != POWER_OFF)) {
                        log_dut_prefix(LOG_ERR, 0, h->ctx.dut_name, "HTTP power %s: the switch answered that it is %s",
                                       http_request_kind_to_string(op->kind), power_state_to_string(state));
                        r = -EIO;
                }
        }
        if (r < 0 && (op->kind == HTTP_REQUEST_ON || op->kind == HTTP_REQUEST_OFF))
                log_dut_prefix(LOG_ERR, 0, h->ctx.dut_name, "HTTP power %s failed; the state is unknown now",
                               http_request_kind_to_string(op->kind));

        http_power_finish(h, r, state, watts);
}

static int http_power_enqueue(HttpPower *h, HttpRequestKind kind, PowerReadingFunc reading_done, void *userdata) {
        HttpOp *op;

        op = calloc(1, sizeof *op);
        if (!op)
                return -ENOMEM;
        *op = (HttpOp) {
                .kind = kind,
                .reading_done = reading_done,
                .userdata = userdata,
        };
        queue_push(h->queue, h->queue_tail, op);
        if (!h->easy && h->queue == op) {
                int r = http_power_start(h);

                if (r < 0) {
                        queue_pop(h->queue, h->queue_tail);
                        free(op);
                        if (h->seq.cycle_on) {
                                /* The "on" half of a cycle: the "off" half went out, so what the switch
                                 * is now is as unknown as after a failed request. */
                                log_dut_prefix(LOG_ERR, r, h->ctx.dut_name, "Failed to start HTTP power %s request: %m",
                                               http_request_kind_to_string(kind));
                                power_sequence_set_state(&h->seq, POWER_UNKNOWN);
                                return -EIO;
                        }
                        /* Nothing was sent: fail at once, without calling back. */
                        return log_dut_prefix(LOG_ERR, r, h->ctx.dut_name, "Failed to start HTTP power request: %m");
                }
        }
        return 0;
}

static int http_power_switch(void *userdata, PowerAction action) {
        return http_power_enqueue(userdata, action == POWER_ACTION_ON ? HTTP_REQUEST_ON : HTTP_REQUEST_OFF, NULL, NULL);
}

static int http_power_set(void *instance, PowerAction action, PowerDoneFunc done, void *userdata) {
        HttpPower *h = instance;
        return power_sequence_set(&h->seq, action, done, userdata);
}

static PowerState http_power_get(void *instance) {
        HttpPower *h = instance;
        return h->seq.state;
}

static bool http_power_can_read(void *instance) {
        HttpPower *h = instance;
        return http_switch_supports(&h->sw, HTTP_REQUEST_READING);
}

static int http_power_read(void *instance, PowerReadingFunc done, void *userdata) {
        HttpPower *h = instance;

        if (!http_switch_supports(&h->sw, HTTP_REQUEST_READING))
                return -EOPNOTSUPP;
        return http_power_enqueue(h, HTTP_REQUEST_READING, done, userdata);
}

static void *http_power_free(void *instance) {
        HttpPower *h = instance;
        HttpOp *op;

        if (!h)
                return NULL;
        if (h->easy) {
                curl_glue_remove(h->glue, h->easy);
                curl_easy_cleanup(h->easy);
        }
        while ((op = queue_pop(h->queue, h->queue_tail)))
                free(op);
        power_sequence_done(&h->seq);
        curl_glue_free(h->glue);
        free(h->body);
        free(h->url);
        free(h);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpPower *, http_power_free);

/* Options that one preset needs and the others ignore: a missing one is an error, a stray one a
 * warning (it is surely a mistake, but harmless). */
static int http_power_check_options(const DriverConfig *config, const char *dut, HttpPreset preset) {
        static const struct {
                const char *name;
                HttpPreset preset;
                bool required;
        } table[] = {
                { "hostname", HTTP_PRESET_PDUDAEMON, true },
                { "port", HTTP_PRESET_PDUDAEMON, true },
                { "on_url", HTTP_PRESET_TEMPLATE, true },
                { "off_url", HTTP_PRESET_TEMPLATE, true },
                { "status_url", HTTP_PRESET_TEMPLATE, false },
                { "status_on_text", HTTP_PRESET_TEMPLATE, false },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                bool set = driver_config_is_set(config, table[i].name);

                if (table[i].preset == preset && table[i].required && !set)
                        return log_dut_prefix(LOG_ERR, EINVAL, dut,
                                              "power driver http (line %u): preset %s needs the option %s",
                                              config->line, http_preset_to_string(preset), table[i].name);
                if (table[i].preset != preset && set)
                        log_dut_prefix(LOG_WARNING, 0, dut,
                                       "power driver http (line %u): option %s is only used by preset %s; ignoring it",
                                       config->line, table[i].name, http_preset_to_string(table[i].preset));
        }
        if (driver_config_is_set(config, "channel") && preset != HTTP_PRESET_SHELLY && preset != HTTP_PRESET_TASMOTA)
                log_dut_prefix(LOG_WARNING, 0, dut,
                               "power driver http (line %u): option channel is only used by presets shelly and tasmota; ignoring it",
                               config->line);
        return 0;
}

static int http_power_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        _cleanup_(http_power_freep) HttpPower *h = NULL;
        const char *preset_name = driver_config_get_string(config, "preset");
        HttpPreset preset;
        uint64_t retries;
        size_t n;
        int r;

        preset = http_preset_from_string(preset_name);
        if (preset < 0)
                return log_dut_prefix(LOG_ERR, EINVAL, ctx->dut_name,
                                      "power driver http (line %u): unknown preset \"%s\"; expected pdudaemon, shelly, tasmota or template",
                                      config->line, preset_name);
        r = http_power_check_options(config, ctx->dut_name, preset);
        if (r < 0)
                return r;
        retries = driver_config_get_u64(config, "retries", HTTP_RETRIES_DEFAULT);
        if (retries > HTTP_RETRIES_MAX)
                return log_dut_prefix(LOG_ERR, EINVAL, ctx->dut_name,
                                      "power driver http (line %u): retries %" PRIu64 " is more than %u",
                                      config->line, retries, HTTP_RETRIES_MAX);

        h = calloc(1, sizeof *h);
        if (!h)
                return log_oom();
        h->ctx = *ctx;
        h->timeout_usec = driver_config_get_u64(config, "timeout", HTTP_TIMEOUT_DEFAULT_USEC);
        h->timeout_usec = MAX(h->timeout_usec, USEC_PER_MSEC);
        h->retries = (unsigned) retries;
        /* Off, wait, on, each step checked: pdudaemon's "reboot" would answer before it is done. */
        power_sequence_init(&h->seq, &h->ctx, "http-power-cycle",
                            driver_config_get_u64(config, "cycle_delay", HTTP_CYCLE_DELAY_DEFAULT_USEC), false,
                            http_power_switch, h);
        h->username = driver_config_get_string(config, "username");
        h->password = driver_config_get_string(config, "password");

        h->url = strdup(driver_config_get_string(config, "url"));
        if (!h->url)
                return log_oom();
        n = strlen(h->url);
        while (n > 0 && h->url[n - 1] == '/')
                h->url[--n] = '\0';
        if (strncmp(h->url, "http://", 7) != 0 && strncmp(h->url, "https://", 8) != 0)
                return log_dut_prefix(LOG_ERR, EINVAL, ctx->dut_name,
                                      "power driver http (line %u): url \"%s\" is not an http:// or https:// URL",
                                      config->line, h->url);

        h->sw = (HttpSwitch) {
                .preset = preset,
                .url = h->url,
                .hostname = driver_config_get_string(config, "hostname"),
                .port = driver_config_get_u64(config, "port", 0),
                .channel = driver_config_get_u64(config, "channel", preset == HTTP_PRESET_TASMOTA ? 1 : 0),
                .on_url = driver_config_get_string(config, "on_url"),
                .off_url = driver_config_get_string(config, "off_url"),
                .status_url = driver_config_get_string(config, "status_url"),
                .status_on_text = driver_config_get_string(config, "status_on_text"),
        };

        r = curl_glue_new(ctx->event, &h->glue);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, ctx->dut_name, "Failed to set up libcurl: %m");

        /* The state until the switch tells: unknown, or what it answers now. */
        if (http_switch_supports(&h->sw, HTTP_REQUEST_STATUS)) {
                r = http_power_enqueue(h, HTTP_REQUEST_STATUS, NULL, NULL);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(h);
        return 0;
}

static const PowerDriverOps http_power_ops = {
        .set = http_power_set,
        .get = http_power_get,
        .can_read = http_power_can_read,
        .read = http_power_read,
};

const Driver driver_http = {
        .name = "http",
        .new = http_power_new,
        .free = http_power_free,
        .power = &http_power_ops,
};
