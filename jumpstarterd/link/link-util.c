/* Exporter link helpers: NDJSON line splitting, watch line parsing, reconnect backoff, RFC 3339 times */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "link-util.h"
#include "macro.h"

void ndjson_splitter_init(NdjsonSplitter *s, size_t max_line) {
        *s = (NdjsonSplitter) { .max_line = max_line };
}

void ndjson_splitter_done(NdjsonSplitter *s) {
        free(s->buf);
        *s = (NdjsonSplitter) { .max_line = s->max_line };
}

void ndjson_splitter_reset(NdjsonSplitter *s) {
        s->size = 0;
}

static int ndjson_splitter_append(NdjsonSplitter *s, const char *p, size_t n) {
        if (s->size + n > s->max_line)
                return -EMSGSIZE;
        if (s->size + n + 1 > s->allocated) {
                size_t a = MAX(s->allocated * 2, s->size + n + 1);
                char *b;

                a = MAX(a, (size_t) 256);
                b = realloc(s->buf, a);
                if (!b)
                        return -ENOMEM;
                s->buf = b;
                s->allocated = a;
        }
        memcpy(s->buf + s->size, p, n);
        s->size += n;
        s->buf[s->size] = 0;
        return 0;
}

int ndjson_splitter_feed(NdjsonSplitter *s, const void *data, size_t size, NdjsonLineFunc func, void *userdata) {
        const char *p = data, *end = p + size;
        int r;

        assert(s);
        assert(func);

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len;

                if (!nl)
                        return ndjson_splitter_append(s, p, (size_t) (end - p));

                r = ndjson_splitter_append(s, p, (size_t) (nl - p));
                if (r < 0)
                        return r;
                p = nl + 1;

                /* A CR before the LF is tolerated: nothing in JSON needs it. */
                if (s->size > 0 && s->buf[s->size - 1] == '\r')
                        s->buf[--s->size] = 0;
                if (s->size == 0)
                        continue;
                len = s->size;
                s->size = 0;
                r = func(s->buf, len, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

uint64_t link_backoff_usec(unsigned attempt, uint32_t random) {
        uint64_t base = attempt >= LINK_BACKOFF_ATTEMPT_MAX ? LINK_BACKOFF_MAX_USEC
                                                           : MIN(LINK_BACKOFF_MIN_USEC << attempt, LINK_BACKOFF_MAX_USEC);

        return base - (base / 5) * random / UINT32_MAX;
}

static int parse_digits(const char **p, unsigned n, int *ret) {
        int v = 0;

        for (unsigned i = 0; i < n; i++) {
                if ((*p)[i] < '0' || (*p)[i] > '9')
                        return -EINVAL;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

int parse_rfc3339(const char *s, uint64_t *ret_usec) {
        static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        const char *p = s;
        struct tm tm = {};
        int year, mon, day, hour, min, sec;
        uint64_t frac = 0;
        time_t t;

        if (!s)
                return -EINVAL;
        if (parse_digits(&p, 4, &year) < 0 || *p++ != '-' || parse_digits(&p, 2, &mon) < 0 || *p++ != '-' ||
            parse_digits(&p, 2, &day) < 0 || (*p != 'T' && *p != 't') || !*p++ || parse_digits(&p, 2, &hour) < 0 ||
            *p++ != ':' || parse_digits(&p, 2, &min) < 0 || *p++ != ':' || parse_digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (*p == '.') {
                unsigned n = 0;

                p++;
                for (; *p >= '0' && *p <= '9'; p++, n++)
                        if (n < 6)
                                frac = frac * 10 + (uint64_t) (*p - '0');
                if (n == 0)
                        return -EINVAL;
                for (; n < 6; n++)
                        frac *= 10;
        }
        if (!((p[0] == 'Z' || p[0] == 'z') && p[1] == 0) && !streq(p, "+00:00"))
                return -EINVAL;
        if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hour > 23 || min > 59 ||
            sec > 60)
                return -EINVAL;

        tm.tm_year = year - 1900;
        tm.tm_mon = mon - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = min;
        tm.tm_sec = sec;
        t = timegm(&tm);
        if (t < 0 || tm.tm_mday != day) /* Feb 30, or 29 in a common year */
                return -EINVAL;
        *ret_usec = (uint64_t) t * USEC_PER_SEC + frac;
        return 0;
}

static const char *const link_lease_event_table[_LINK_LEASE_EVENT_MAX] = {
        [LINK_LEASE_ASSIGNED] = "assigned",
        [LINK_LEASE_EXTENDED] = "extended",
        [LINK_LEASE_ENDED] = "ended",
};

static void link_lease_done(LinkLease *l) {
        free(l->name);
        free(l->dut);
        free(l->exporter);
}

void link_line_done(LinkLine *l) {
        if (!l)
                return;
        for (size_t i = 0; i < l->n_leases; i++)
                link_lease_done(&l->leases[i]);
        free(l->leases);
        json_decref(l->keys);
        free(l->issuer);
        free(l->dial_id);
        free(l->dial_router);
        free(l->dial_token);
        *l = (LinkLine) {};
}

_printf_(2, 3) static int problem(char **ret_error, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(ret_error, format, ap);
        va_end(ap);
        if (r < 0) {
                *ret_error = NULL;
                return -ENOMEM;
        }
        return -EBADMSG;
}

static int dup_member(json_t *o, const char *key, bool required, char **ret, char **ret_error) {
        json_t *v = json_object_get(o, key);

        if (!v || json_is_null(v)) {
                *ret = NULL;
                return required ? problem(ret_error, "missing \"%s\"", key) : 0;
        }
        if (!json_is_string(v))
                return problem(ret_error, "\"%s\" is not a string", key);
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

/* end is needed while a lease holds its DUT; an ended lease only goes away. */
static int lease_parse(json_t *o, bool need_end, LinkLease *ret, char **ret_error) {
        _cleanup_free_ char *end = NULL;
        int r;

        if (!json_is_object(o))
                return problem(ret_error, "a lease is not an object");
        r = dup_member(o, "name", true, &ret->name, ret_error);
        if (r >= 0)
                r = dup_member(o, "dut", true, &ret->dut, ret_error);
        if (r >= 0)
                r = dup_member(o, "exporter", false, &ret->exporter, ret_error);
        if (r >= 0)
                r = dup_member(o, "end", need_end, &end, ret_error);
        if (r < 0)
                return r;
        if (end && parse_rfc3339(end, &ret->end_usec) < 0)
                return problem(ret_error, "lease \"%s\": \"end\" is not an RFC 3339 time: \"%s\"", ret->name, end);
        return 0;
}

int link_line_parse(const char *line, size_t len, LinkLine *ret, char **ret_error) {
        _cleanup_(link_line_done) LinkLine l = {};
        json_t *j, *v;
        json_error_t error;
        const char *type;
        int r;

        assert(line);
        assert(ret);
        assert(ret_error);

        *ret_error = NULL;
        j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &error);
        if (!j)
                return problem(ret_error, "not JSON: %s", error.text);
        if (!json_is_object(j)) {
                json_decref(j);
                return problem(ret_error, "not a JSON object");
        }
        type = json_string_value(json_object_get(j, "type"));
        if (!type) {
                r = problem(ret_error, "no \"type\"");
                goto finish;
        }

        if (streq(type, "ping"))
                l.type = LINK_LINE_PING;
        else if (streq(type, "leases")) {
                l.type = LINK_LINE_LEASES;
                v = json_object_get(j, "leases");
                if (!json_is_array(v)) {
                        r = problem(ret_error, "\"leases\" is not an array");
                        goto finish;
                }
                l.leases = calloc(MAX(json_array_size(v), (size_t) 1), sizeof(LinkLease));
                if (!l.leases) {
                        r = -ENOMEM;
                        goto finish;
                }
                for (size_t i = 0; i < json_array_size(v); i++) {
                        l.n_leases++;
                        r = lease_parse(json_array_get(v, i), true, &l.leases[i], ret_error);
                        if (r < 0)
                                goto finish;
                }
        } else if (streq(type, "lease")) {
                const char *event = json_string_value(json_object_get(j, "event"));

                l.type = LINK_LINE_LEASE;
                l.event = _LINK_LEASE_EVENT_INVALID;
                for (LinkLeaseEvent e = 0; event && e < _LINK_LEASE_EVENT_MAX; e++)
                        if (streq(event, link_lease_event_table[e]))
                                l.event = e;
                if (l.event < 0) {
                        r = problem(ret_error, "unknown lease event \"%s\"", strna(event));
                        goto finish;
                }
                l.leases = calloc(1, sizeof(LinkLease));
                if (!l.leases) {
                        r = -ENOMEM;
                        goto finish;
                }
                l.n_leases = 1;
                r = lease_parse(json_object_get(j, "lease"), l.event != LINK_LEASE_ENDED, &l.leases[0], ret_error);
                if (r < 0)
                        goto finish;
        } else if (streq(type, "keys")) {
                l.type = LINK_LINE_KEYS;
                v = json_object_get(j, "keys");
                /* "keys" as GET /v1/keys answers: the array, or that whole object. */
                if (json_is_object(v)) {
                        r = dup_member(v, "issuer", false, &l.issuer, ret_error);
                        if (r < 0)
                                goto finish;
                        v = json_object_get(v, "keys");
                }
                if (!json_is_array(v)) {
                        r = problem(ret_error, "\"keys\" is not an array");
                        goto finish;
                }
                if (!l.issuer) {
                        r = dup_member(j, "issuer", false, &l.issuer, ret_error);
                        if (r < 0)
                                goto finish;
                }
                l.keys = json_incref(v);
        } else if (streq(type, "dial")) {
                l.type = LINK_LINE_DIAL;
                r = dup_member(j, "id", true, &l.dial_id, ret_error);
                if (r >= 0)
                        r = dup_member(j, "router", true, &l.dial_router, ret_error);
                if (r >= 0)
                        r = dup_member(j, "token", true, &l.dial_token, ret_error);
                if (r < 0)
                        goto finish;
        } else
                l.type = LINK_LINE_OTHER;

        *ret = l;
        l = (LinkLine) {};
        r = 0;
finish:
        json_decref(j);
        return r;
}
