/* Unit tests for usage reports: periods, month edges, grouping, and time parsing */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"
#include "usage.h"

static uint64_t T(const char *s) {
        uint64_t u = 0;

        if (usage_parse_time(s, &u) < 0)
                abort();
        return u;
}

static json_t *lease(const char *name, const char *client, const char *team, const char *state, const char *exporter,
                     const char *created, const char *begin, const char *end, const char *reason) {
        json_t *l = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:{}}", "name", name, "client", client, "state",
                              state, "exporter", exporter ? json_string(exporter) : json_null(), "created",
                              created ? json_string(created) : json_null(), "begin",
                              begin ? json_string(begin) : json_null(), "end", end ? json_string(end) : json_null(),
                              "reason", reason ? json_string(reason) : json_null(), "metadata");

        if (team)
                json_object_set_new(json_object_get(l, "metadata"), "team", json_string(team));
        return l;
}

/* A scripted history: leases that cross the edges of November 2026, one over the whole month, one
 * still active, one never served, one pending. "Now" is 2026-12-01T00:30:00Z. */
static json_t *history(void) {
        json_t *a = json_array();

        json_array_append_new(a, lease("a", "alice", "platform", "ended", "lab1", "2026-10-31T22:00:00Z",
                                       "2026-10-31T23:00:00Z", "2026-11-01T01:00:00Z", "Released"));
        json_array_append_new(a, lease("b", "alice", "platform", "ended", "lab2", "2026-11-10T10:00:00Z",
                                       "2026-11-10T10:30:00Z", "2026-11-10T12:30:00Z", "Expired"));
        json_array_append_new(a, lease("c", "bob", "qa", "ended", "lab1", "2026-11-30T20:00:00Z", "2026-11-30T22:00:00Z",
                                       "2026-12-01T04:00:00Z", "Released"));
        json_array_append_new(a, lease("d", "bob", "qa", "active", "lab2", "2026-11-30T22:30:00Z",
                                       "2026-11-30T23:00:00Z", "2026-12-01T09:00:00Z", NULL));
        json_array_append_new(a, lease("e", "carol", NULL, "ended", NULL, "2026-11-15T08:00:00Z", NULL,
                                       "2026-11-15T09:00:00Z", "WaitTimeout"));
        json_array_append_new(a, lease("f", "carol", NULL, "pending", NULL, "2026-11-30T10:00:00Z", NULL, NULL,
                                       "ExportersBusy"));
        json_array_append_new(a, lease("g", "alice", "platform", "ended", "lab1", "2026-10-01T08:00:00Z",
                                       "2026-10-01T08:00:00Z", "2026-10-01T10:00:00Z", "Released"));
        json_array_append_new(a, lease("h", "bob", "qa", "ended", "lab3", "2026-10-15T00:00:00Z", "2026-10-15T00:00:00Z",
                                       "2026-12-15T00:00:00Z", "Expired"));
        return a;
}

static json_t *item(json_t *report, const char *group) {
        size_t i;
        json_t *x;

        json_array_foreach(json_object_get(report, "items"), i, x)
                if (strcmp(json_string_value(json_object_get(x, "group")), group) == 0)
                        return x;
        return NULL;
}

static long long num(json_t *o, const char *key) {
        return (long long) json_integer_value(json_object_get(o, key));
}

TEST(parse_time) {
        uint64_t u;

        ASSERT_EQ_U(T("2026-11-01"), 1793491200ULL * 1000000ULL);
        ASSERT_EQ_U(T("2026-11-01T00:00:00Z"), T("2026-11-01"));
        ASSERT_EQ_U(T("2026-11-01T00:00:00+01:00"), T("2026-10-31T23:00:00Z"));
        ASSERT_EQ_U(T("2026-11-01T10:20:30.5Z"), T("2026-11-01T10:20:30Z"));
        ASSERT_EQ_U(T("2028-02-29"), T("2028-03-01") - 86400ULL * 1000000ULL);
        ASSERT_EQ(usage_parse_time("2026-02-30", &u), -EINVAL);
        ASSERT_EQ(usage_parse_time("2026-13-01", &u), -EINVAL);
        ASSERT_EQ(usage_parse_time("2026-11-1", &u), -EINVAL);
        ASSERT_EQ(usage_parse_time("2026-11-01T25:00:00Z", &u), -EINVAL);
        ASSERT_EQ(usage_parse_time("2026-11-01T10:00:00", &u), -EINVAL); /* no zone */
        ASSERT_EQ(usage_parse_time("2026-11-01 ", &u), -EINVAL);
        ASSERT_EQ(usage_parse_time("yesterday", &u), -EINVAL);
        ASSERT_EQ(usage_parse_time("", &u), -EINVAL);
        ASSERT_EQ(usage_parse_time(NULL, &u), -EINVAL);
}

TEST(by_team_november) {
        json_t *h = history(), *r = NULL, *x;

        ASSERT_OK(usage_report(h, T("2026-11-01"), T("2026-12-01"), USAGE_BY_TEAM, T("2026-12-01T00:30:00Z"), &r));
        ASSERT_STREQ(json_string_value(json_object_get(r, "from")), "2026-11-01T00:00:00Z");
        ASSERT_STREQ(json_string_value(json_object_get(r, "to")), "2026-12-01T00:00:00Z");
        ASSERT_STREQ(json_string_value(json_object_get(r, "by")), "team");
        ASSERT_EQ_U(json_array_size(json_object_get(r, "items")), 3);
        /* Sorted: "", platform, qa. */
        ASSERT_STREQ(json_string_value(json_object_get(json_array_get(json_object_get(r, "items"), 0), "group")), "");

        /* a: 23:00-01:00 cut at Nov 1st (1 h); b: 2 h, waited 30 min. Wait of a was in October. */
        x = item(r, "platform");
        ASSERT_TRUE(x);
        ASSERT_EQ(num(x, "leases"), 2);
        ASSERT_EQ(num(x, "deviceSeconds"), 3600 + 7200);
        ASSERT_EQ(num(x, "waitSeconds"), 1800);
        ASSERT_EQ(num(x, "unserved"), 0);

        /* c: 22:00-04:00 cut at Dec 1st (2 h, waited 2 h); d: active since 23:00 (1 h in
         * November, waited 30 min); h: the whole month of 30 days, its wait in October. */
        x = item(r, "qa");
        ASSERT_TRUE(x);
        ASSERT_EQ(num(x, "leases"), 3);
        ASSERT_EQ(num(x, "deviceSeconds"), 7200 + 3600 + 30 * 86400);
        ASSERT_EQ(num(x, "waitSeconds"), 7200 + 1800);

        /* e never got a device; f is still pending and counts nowhere. */
        x = item(r, "");
        ASSERT_TRUE(x);
        ASSERT_EQ(num(x, "leases"), 0);
        ASSERT_EQ(num(x, "deviceSeconds"), 0);
        ASSERT_EQ(num(x, "unserved"), 1);

        x = json_object_get(r, "total");
        ASSERT_EQ(num(x, "leases"), 5);
        ASSERT_EQ(num(x, "deviceSeconds"), 3600 + 7200 + 7200 + 3600 + 30 * 86400);
        ASSERT_EQ(num(x, "waitSeconds"), 1800 + 7200 + 1800);
        ASSERT_EQ(num(x, "unserved"), 1);
        json_decref(r);
        json_decref(h);
}

TEST(month_edges) {
        json_t *h = history(), *r = NULL, *x;

        /* October: a's first hour (waited 1 h), g (2 h), h from the 15th (17 days). */
        ASSERT_OK(usage_report(h, T("2026-10-01"), T("2026-11-01"), USAGE_BY_TEAM, T("2026-12-01T00:30:00Z"), &r));
        x = item(r, "platform");
        ASSERT_EQ(num(x, "leases"), 2);
        ASSERT_EQ(num(x, "deviceSeconds"), 3600 + 7200);
        ASSERT_EQ(num(x, "waitSeconds"), 3600);
        x = item(r, "qa");
        ASSERT_EQ(num(x, "leases"), 1);
        ASSERT_EQ(num(x, "deviceSeconds"), 17 * 86400);
        json_decref(r);

        /* December so far: c's last 4 h, d's 30 min up to now, h up to the 15th. */
        ASSERT_OK(usage_report(h, T("2026-12-01"), T("2027-01-01"), USAGE_BY_TEAM, T("2026-12-01T00:30:00Z"), &r));
        ASSERT_TRUE(item(r, "platform") == NULL);
        x = item(r, "qa");
        ASSERT_EQ(num(x, "leases"), 3);
        ASSERT_EQ(num(x, "deviceSeconds"), 4 * 3600 + 1800 + 14 * 86400);
        ASSERT_EQ(num(x, "waitSeconds"), 0);
        json_decref(r);

        /* The three months add up to the leases' whole held times. */
        ASSERT_OK(usage_report(h, T("2026-10-01"), T("2027-01-01"), USAGE_BY_TEAM, T("2026-12-01T00:30:00Z"), &r));
        ASSERT_EQ(num(json_object_get(r, "total"), "deviceSeconds"),
                  2 * 3600 + 2 * 3600 + 6 * 3600 + 3600 + 1800 + 2 * 3600 + 61 * 86400);
        json_decref(r);
        json_decref(h);
}

TEST(by_client_and_exporter) {
        json_t *h = history(), *r = NULL, *x;

        ASSERT_OK(usage_report(h, T("2026-11-01"), T("2026-12-01"), USAGE_BY_EXPORTER, T("2026-12-01T00:30:00Z"), &r));
        x = item(r, "lab1");
        ASSERT_EQ(num(x, "leases"), 2);
        ASSERT_EQ(num(x, "deviceSeconds"), 3600 + 7200);
        x = item(r, "lab2");
        ASSERT_EQ(num(x, "deviceSeconds"), 7200 + 3600);
        x = item(r, "lab3");
        ASSERT_EQ(num(x, "deviceSeconds"), 30 * 86400);
        json_decref(r);

        ASSERT_OK(usage_report(h, T("2026-11-01"), T("2026-12-01"), USAGE_BY_CLIENT, T("2026-12-01T00:30:00Z"), &r));
        ASSERT_EQ(num(item(r, "alice"), "deviceSeconds"), 3600 + 7200);
        ASSERT_EQ(num(item(r, "bob"), "deviceSeconds"), 7200 + 3600 + 30 * 86400);
        ASSERT_EQ(num(item(r, "carol"), "unserved"), 1);
        json_decref(r);
        json_decref(h);
}

TEST(bad_periods) {
        json_t *h = history(), *r = NULL;

        ASSERT_EQ(usage_report(h, T("2026-12-01"), T("2026-11-01"), USAGE_BY_TEAM, 0, &r), -EINVAL);
        ASSERT_EQ(usage_report(h, T("2026-11-01"), T("2026-11-01"), USAGE_BY_TEAM, 0, &r), -EINVAL);
        ASSERT_EQ(usage_report(h, T("2026-11-01"), T("2026-12-01"), _USAGE_BY_INVALID, 0, &r), -EINVAL);
        ASSERT_TRUE(r == NULL);
        ASSERT_EQ(usage_by_from_string("team"), USAGE_BY_TEAM);
        ASSERT_EQ(usage_by_from_string("exporter"), USAGE_BY_EXPORTER);
        ASSERT_EQ(usage_by_from_string("dut"), _USAGE_BY_INVALID);
        json_decref(h);
}

TEST(held_seconds) {
        json_t *l = lease("x", "a", "t", "active", "lab1", "2026-11-01T00:00:00Z", "2026-11-01T00:00:10Z",
                          "2026-11-01T01:00:00Z", NULL);

        ASSERT_EQ_U(usage_lease_held_sec(l, T("2026-11-01T00:00:15Z") / 1000000), 5);
        json_object_set_new(l, "state", json_string("ended"));
        ASSERT_EQ_U(usage_lease_held_sec(l, 0), 3590);
        ASSERT_STREQ(usage_lease_team(l), "t");
        json_decref(l);
}

TEST_MAIN()
