/* Usage reports: device time per team, client or exporter over a period, from lease records */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "time-util.h"
#include "usage.h"

static const char *const usage_by_table[_USAGE_BY_MAX] = {
        [USAGE_BY_TEAM] = "team",
        [USAGE_BY_CLIENT] = "client",
        [USAGE_BY_EXPORTER] = "exporter",
};

const char *usage_by_to_string(UsageGroupBy b) {
        return b >= 0 && b < _USAGE_BY_MAX ? usage_by_table[b] : NULL;
}

UsageGroupBy usage_by_from_string(const char *s) {
        for (size_t i = 0; s && i < _USAGE_BY_MAX; i++)
                if (streq(s, usage_by_table[i]))
                        return (UsageGroupBy) i;
        return _USAGE_BY_INVALID;
}

int usage_parse_time(const char *s, uint64_t *ret_usec) {
        return parse_timestamp(s, ret_usec);
}

const char *usage_lease_team(json_t *lease) {
        const char *team = json_string_value(json_object_get(json_object_get(lease, "metadata"), "team"));

        return team ?: "";
}

uint64_t usage_lease_time_sec(json_t *lease, const char *key) {
        uint64_t usec;

        if (usage_parse_time(json_string_value(json_object_get(lease, key)), &usec) < 0)
                return 0;
        return usec / USEC_PER_SEC;
}

/* [begin, end) in seconds that the lease held its device; false if it never held one. */
static bool lease_held(json_t *lease, uint64_t now_sec, uint64_t *ret_begin, uint64_t *ret_end) {
        const char *state = json_string_value(json_object_get(lease, "state"));
        uint64_t begin = usage_lease_time_sec(lease, "begin"), end;

        if (begin == 0 || streq_ptr(state, "pending"))
                return false;
        end = streq_ptr(state, "ended") ? usage_lease_time_sec(lease, "end") : now_sec;
        *ret_begin = begin;
        *ret_end = MAX(end, begin);
        return true;
}

uint64_t usage_lease_held_sec(json_t *lease, uint64_t now_sec) {
        uint64_t b, e;

        return lease_held(lease, now_sec, &b, &e) ? e - b : 0;
}

static const char *lease_group(json_t *lease, UsageGroupBy by) {
        const char *g;

        switch (by) {
        case USAGE_BY_TEAM:
                return usage_lease_team(lease);
        case USAGE_BY_CLIENT:
                g = json_string_value(json_object_get(lease, "client"));
                return g ?: "";
        case USAGE_BY_EXPORTER:
                g = json_string_value(json_object_get(lease, "exporter"));
                return g ?: "";
        default:
                return "";
        }
}

static int add_member(json_t *row, const char *key, uint64_t n) {
        json_int_t v = json_integer_value(json_object_get(row, key));

        return json_object_set_new(row, key, json_integer(v + (json_int_t) n));
}

static int key_compare(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static json_t *row_new(const char *group) {
        return json_pack("{s:s, s:i, s:i, s:i, s:i}", "group", group, "leases", 0, "deviceSeconds", 0, "waitSeconds", 0,
                         "unserved", 0);
}

int usage_report(json_t *leases, uint64_t from_usec, uint64_t to_usec, UsageGroupBy by, uint64_t now_usec,
                 json_t **ret) {
        _cleanup_(json_decrefp) json_t *groups = json_object(), *items = json_array(), *total = row_new(""),
                                        *answer = NULL;
        uint64_t from = from_usec / USEC_PER_SEC, to = to_usec / USEC_PER_SEC, now = now_usec / USEC_PER_SEC;
        const char *key;
        json_t *lease, *row;
        size_t i;

        if (from >= to || !usage_by_to_string(by))
                return -EINVAL;
        if (!groups || !items || !total)
                return -ENOMEM;

        json_array_foreach(leases, i, lease) {
                const char *state = json_string_value(json_object_get(lease, "state"));
                const char *group = lease_group(lease, by);
                uint64_t b, e, created = usage_lease_time_sec(lease, "created"), seconds = 0, wait = 0;
                bool counted = false, unserved = false;

                if (lease_held(lease, now, &b, &e)) {
                        uint64_t lo = MAX(b, from), hi = MIN(e, to);

                        if (hi > lo)
                                seconds = hi - lo;
                        /* A lease counts in every period it held its device in; one of no length in
                         * the period it began in. */
                        counted = seconds > 0 || (b == e && b >= from && b < to);
                        /* Its wait belongs to the period it was served in. */
                        if (b >= from && b < to && created > 0 && created <= b)
                                wait = b - created;
                } else if (streq_ptr(state, "ended")) {
                        uint64_t end = usage_lease_time_sec(lease, "end");

                        /* Given up on, or timed out, before it got a device. */
                        unserved = end >= from && end < to;
                }
                if (!counted && !unserved)
                        continue;

                row = json_object_get(groups, group);
                if (!row) {
                        row = row_new(group);
                        if (!row || json_object_set_new(groups, group, row) < 0)
                                return -ENOMEM;
                }
                for (int k = 0; k < 2; k++) {
                        json_t *x = k == 0 ? row : total;

                        if (add_member(x, "leases", counted) < 0 || add_member(x, "deviceSeconds", seconds) < 0 ||
                            add_member(x, "waitSeconds", wait) < 0 || add_member(x, "unserved", unserved) < 0)
                                return -ENOMEM;
                }
        }

        /* jansson keeps insertion order: sort the groups by name. */
        {
                _cleanup_free_ const char **keys = calloc(MAX(json_object_size(groups), (size_t) 1), sizeof(char *));
                size_t n = 0;

                if (!keys)
                        return -ENOMEM;
                json_object_foreach(groups, key, row)
                        keys[n++] = key;
                qsort(keys, n, sizeof(char *), key_compare);
                for (size_t k = 0; k < n; k++)
                        if (json_array_append(items, json_object_get(groups, keys[k])) < 0)
                                return -ENOMEM;
        }
        if (json_object_del(total, "group") < 0)
                return -ENOMEM;

        answer = json_object();
        if (!answer)
                return -ENOMEM;
        {
                char buf[2][32];
                time_t t[2] = { (time_t) from, (time_t) to };

                for (int k = 0; k < 2; k++) {
                        struct tm tm;

                        if (!gmtime_r(&t[k], &tm) || strftime(buf[k], sizeof buf[k], "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                                return -EINVAL;
                }
                if (json_object_set_new(answer, "from", json_string(buf[0])) < 0 ||
                    json_object_set_new(answer, "to", json_string(buf[1])) < 0 ||
                    json_object_set_new(answer, "by", json_string(usage_by_to_string(by))) < 0 ||
                    json_object_set(answer, "items", items) < 0 || json_object_set(answer, "total", total) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(answer);
        return 0;
}
