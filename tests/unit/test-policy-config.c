/* Tests for the access policy parser and evaluator */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "hooks-config.h"
#include "policy-config.h"
#include "tests.h"

#define HEAD "apiVersion: jumpstarter.dev/v1alpha1\nkind: AccessPolicy\n"

static const char lab[] = HEAD
        "roles:\n"
        "  - name: platform-dev\n"
        "    clients: team=platform\n"
        "    exporters: team=platform\n"
        "    verbs: [lease, power, serial, storage]\n"
        "    maxDuration: 2h\n"
        "    maxLeasesPerClient: 2\n"
        "    maxLeasesPerTeam: 3\n"
        "    priority: 10\n"
        "  - name: qa-serial\n"
        "    clients: team=qa\n"
        "    exporters: team=platform,board=rpi4\n"
        "    verbs: [lease, serial]\n"
        "    maxDuration: 30m\n"
        "    maxLeasesPerClient: 1\n"
        "  - name: qa-own\n"
        "    clients: team=qa\n"
        "    exporters: team=qa\n"
        "    verbs: [lease, power, serial, storage, gpio]\n";

static Policy *parse(const char *text) {
        Policy *p = NULL;
        char *error = NULL;
        int r;

        r = policy_parse("/etc/jumpstarter/policy.yaml", text, strlen(text), &p, &error);
        if (r < 0)
                ASSERT_FAIL("policy parses (got %d: %s)", r, error ? error : "?");
        free(error);
        return p;
}

static void parse_fails(const char *text, const char *want) {
        Policy *p = NULL;
        char *error = NULL;

        ASSERT_EQ(policy_parse("/etc/jumpstarter/policy.yaml", text, strlen(text), &p, &error), -EINVAL);
        ASSERT_TRUE(p == NULL);
        ASSERT_TRUE(error != NULL);
        ASSERT_CONTAINS(error, want);
        free(error);
}

TEST(parse_lab) {
        Policy *p = parse(lab);
        char *v;

        ASSERT_EQ_U(p->n_roles, 3);
        ASSERT_STREQ(p->roles[0].name, "platform-dev");
        ASSERT_EQ_U(p->roles[0].max_duration_usec, 2ULL * 3600 * 1000000);
        ASSERT_EQ_U(p->roles[0].max_leases_per_client, 2);
        ASSERT_EQ_U(p->roles[0].max_leases_per_team, 3);
        ASSERT_EQ(p->roles[0].priority, 10);
        ASSERT_EQ_U(p->roles[1].max_leases_per_team, POLICY_LIMIT_NONE);
        ASSERT_EQ_U(p->roles[2].max_duration_usec, 0);
        v = policy_verbs_to_string(p->roles[1].verbs);
        ASSERT_STREQ(v, "lease serial");
        free(v);
        policy_free(p);

        /* No roles: nothing granted. */
        p = parse(HEAD "roles: []\n");
        ASSERT_EQ_U(p->n_roles, 0);
        policy_free(p);
}

TEST(parse_errors) {
        parse_fails(HEAD "roles: x\n", "expected a list of roles");
        parse_fails(HEAD, "missing required key \"roles\"");
        parse_fails("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nroles: []\n", "kind");
        parse_fails(HEAD "roles:\n  - name: a\n    clients: team=x\n    exporters: ''\n    verbs: [lease, fly]\n",
                    "unknown verb \"fly\"");
        parse_fails(HEAD "roles:\n  - name: a\n    clients: team in (x\n    exporters: ''\n    verbs: [lease]\n",
                    "roles[0].clients: invalid selector");
        parse_fails(HEAD "roles:\n  - name: a\n    clients: a=1,a=2\n    exporters: ''\n    verbs: [lease]\n",
                    "can never match");
        parse_fails(HEAD "roles:\n  - name: a\n    clients: ''\n    exporters: ''\n    verbs: [lease]\n"
                         "    maxDuration: soon\n", "expected a duration");
        parse_fails(HEAD "roles:\n  - name: a\n    clients: ''\n    exporters: ''\n    verbs: [lease]\n"
                         "    maxLeasesPerClient: -1\n", "expected a number of leases");
        parse_fails(HEAD "roles:\n  - name: a\n    clients: ''\n    exporters: ''\n    verbs: [lease]\n"
                         "  - name: a\n    clients: ''\n    exporters: ''\n    verbs: [lease]\n", "defined twice");
        parse_fails(HEAD "roles:\n  - name: a\n    clients: ''\n    exporters: ''\n    verbs: [lease]\n    colour: red\n",
                    "unknown key");
        parse_fails(HEAD "roles:\n  - name: A\n    clients: ''\n    exporters: ''\n    verbs: [lease]\n",
                    "invalid role name");
        parse_fails(HEAD "roles:\n  - name: a\n    clients: ''\n    exporters: ''\n    verbs: []\n",
                    "expected a list of verbs");
        parse_fails(HEAD "roles:\n  - name: a\n    exporters: ''\n    verbs: [lease]\n",
                    "missing required key \"clients\"");
        parse_fails(HEAD "roles:\n  - name: a\n    clients: ''\n    exporters: ''\n    verbs: [lease]\n    priority: x\n",
                    "expected an integer priority");
}

static const Label platform[] = { { (char *) "team", (char *) "platform" } };
static const Label qa[] = { { (char *) "team", (char *) "qa" } };
static const Label ops[] = { { (char *) "team", (char *) "ops" } };
static const Label rpi_platform[] = { { (char *) "board", (char *) "rpi4" }, { (char *) "team", (char *) "platform" } };
static const Label bbb_platform[] = { { (char *) "board", (char *) "bbb" }, { (char *) "team", (char *) "platform" } };
static const Label bbb_qa[] = { { (char *) "board", (char *) "bbb" }, { (char *) "team", (char *) "qa" } };

#define HOUR (3600ULL * 1000000ULL)

TEST(allows_and_verbs) {
        Policy *p = parse(lab);
        char *v;

        ASSERT_TRUE(policy_allows_lease(p, platform, 1, rpi_platform, 2, HOUR));
        ASSERT_FALSE(policy_allows_lease(p, platform, 1, rpi_platform, 2, 3 * HOUR));
        ASSERT_FALSE(policy_allows_lease(p, platform, 1, bbb_qa, 2, HOUR));
        ASSERT_TRUE(policy_allows_lease(p, qa, 1, rpi_platform, 2, HOUR / 4));
        ASSERT_FALSE(policy_allows_lease(p, qa, 1, rpi_platform, 2, HOUR));
        ASSERT_FALSE(policy_allows_lease(p, qa, 1, bbb_platform, 2, HOUR / 4));
        ASSERT_TRUE(policy_allows_lease(p, qa, 1, bbb_qa, 2, 100 * HOUR));
        ASSERT_FALSE(policy_allows_lease(p, ops, 1, bbb_qa, 2, HOUR));
        ASSERT_FALSE(policy_allows_lease(p, NULL, 0, bbb_qa, 2, HOUR));

        v = policy_verbs_to_string(policy_device_verbs(p, qa, 1, rpi_platform, 2) & POLICY_STREAM_VERBS);
        ASSERT_STREQ(v, "serial");
        free(v);
        v = policy_verbs_to_string(policy_device_verbs(p, qa, 1, bbb_qa, 2) & POLICY_STREAM_VERBS);
        ASSERT_STREQ(v, "power serial storage gpio");
        free(v);
        ASSERT_EQ_U(policy_device_verbs(p, ops, 1, bbb_qa, 2), 0);
        policy_free(p);
}

static void judge(const Policy *p, const Label *client, size_t n, const char *selector, uint64_t duration,
                  PolicyLeaseDecision *d) {
        Selector *s = NULL;

        ASSERT_OK(selector_parse(selector, &s, NULL));
        ASSERT_OK(policy_judge_lease(p, "alice", client, n, s, duration, d));
        selector_free(s);
}

TEST(judge_lease) {
        Policy *p = parse(lab);
        PolicyLeaseDecision d;

        judge(p, platform, 1, "board=rpi4", HOUR, &d);
        ASSERT_TRUE(d.allowed);
        ASSERT_TRUE(d.reason == NULL);
        ASSERT_EQ(d.priority, 10);
        ASSERT_EQ_U(d.max_leases_per_client, 2);
        ASSERT_EQ_U(d.max_leases_per_team, 3);
        policy_lease_decision_done(&d);

        /* Outside every role. */
        judge(p, ops, 1, "", HOUR, &d);
        ASSERT_FALSE(d.allowed);
        ASSERT_CONTAINS(d.reason, "is in no role");
        ASSERT_CONTAINS(d.reason, "team=ops");
        policy_lease_decision_done(&d);

        /* A selector none of the roles' exporters can match. */
        judge(p, platform, 1, "team=qa", HOUR, &d);
        ASSERT_FALSE(d.allowed);
        ASSERT_CONTAINS(d.reason, "on exporters matching \"team=qa\"");
        policy_lease_decision_done(&d);

        /* Too long: refused, naming the role's limit. */
        judge(p, platform, 1, "board=rpi4", 3 * HOUR, &d);
        ASSERT_FALSE(d.allowed);
        ASSERT_CONTAINS(d.reason, "role 'platform-dev'");
        ASSERT_CONTAINS(d.reason, "maxDuration: 2h");
        policy_lease_decision_done(&d);

        /* qa: 30m on platform boards, unlimited on its own; limits are the most generous role's. */
        judge(p, qa, 1, "board=rpi4", HOUR, &d);
        ASSERT_TRUE(d.allowed); /* qa-own may serve it if a qa rpi4 exists */
        ASSERT_EQ_U(d.max_leases_per_client, POLICY_LIMIT_NONE);
        policy_lease_decision_done(&d);
        judge(p, qa, 1, "team=platform", HOUR, &d);
        ASSERT_FALSE(d.allowed);
        ASSERT_CONTAINS(d.reason, "role 'qa-serial'");
        policy_lease_decision_done(&d);

        /* A role without "lease". */
        policy_free(p);
        p = parse(HEAD "roles:\n  - name: look\n    clients: ''\n    exporters: ''\n    verbs: [serial]\n");
        judge(p, ops, 1, "", HOUR, &d);
        ASSERT_FALSE(d.allowed);
        ASSERT_CONTAINS(d.reason, "grants the verb 'lease'");
        policy_lease_decision_done(&d);
        policy_free(p);
}

TEST(verbs_strings) {
        unsigned m = 0;

        ASSERT_OK(policy_verbs_from_string("power  serial", &m));
        ASSERT_EQ_U(m, POLICY_VERB_BIT(POLICY_VERB_POWER) | POLICY_VERB_BIT(POLICY_VERB_SERIAL));
        ASSERT_EQ(policy_verbs_from_string("power fly", &m), -EINVAL);
        ASSERT_EQ(policy_verb_from_string("admin"), POLICY_VERB_ADMIN);
        ASSERT_EQ(policy_verb_from_string("x"), _POLICY_VERB_INVALID);
}

#define EXPORTER "apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: lab1}\nexport:\n" \
                 "  dut1:\n    type: sim\n"

static int exporter_parse(const char *text, ExporterConfig **ret, char **ret_error) {
        return exporter_config_parse("/etc/jumpstarter/lab1.yaml", text, strlen(text), ret, ret_error);
}

TEST(hooks_config) {
        ExporterConfig *c = NULL;
        char *error = NULL;
        const DutHooks *h;

        ASSERT_OK(exporter_parse(EXPORTER
                                 "    hooks:\n"
                                 "      beforeLease: {command: [/usr/bin/reflash, golden.img], timeout: 30s, onFailure: disable}\n"
                                 "      afterLease: {command: [relay, \"off\"]}\n"
                                 "    health: {command: [check, dut1], interval: 1m}\n", &c, &error));
        h = c->duts[0].hooks;
        ASSERT_TRUE(h != NULL);
        ASSERT_STREQ(h->before_lease.argv[0], "/usr/bin/reflash");
        ASSERT_STREQ(h->before_lease.argv[1], "golden.img");
        ASSERT_TRUE(h->before_lease.argv[2] == NULL);
        ASSERT_EQ_U(h->before_lease.timeout_usec, 30ULL * 1000000);
        ASSERT_EQ(h->before_lease.on_failure, HOOK_FAILURE_DISABLE);
        ASSERT_STREQ(h->after_lease.argv[1], "off");
        ASSERT_EQ_U(h->after_lease.timeout_usec, HOOK_TIMEOUT_DEFAULT_USEC);
        ASSERT_EQ(h->after_lease.on_failure, HOOK_FAILURE_WARN);
        ASSERT_STREQ(h->health_argv[0], "check");
        ASSERT_EQ_U(h->health_interval_usec, 60ULL * 1000000);
        ASSERT_EQ_U(h->health_timeout_usec, HEALTH_TIMEOUT_DEFAULT_USEC);
        exporter_config_free(c);

        /* No hooks: NULL. */
        c = NULL;
        ASSERT_OK(exporter_parse(EXPORTER, &c, &error));
        ASSERT_TRUE(c->duts[0].hooks == NULL);
        exporter_config_free(c);

        /* A string is never split into a command (that would invite a shell). */
        c = NULL;
        ASSERT_EQ(exporter_parse(EXPORTER "    hooks:\n      beforeLease: {command: \"reflash golden.img\"}\n", &c,
                                 &error), -EINVAL);
        ASSERT_CONTAINS(error, "export.dut1.hooks.beforeLease.command: expected a command as a sequence of strings");
        free(error);
        error = NULL;
        ASSERT_EQ(exporter_parse(EXPORTER "    hooks:\n      beforeLease: {command: [x], onFailure: explode}\n", &c,
                                 &error), -EINVAL);
        ASSERT_CONTAINS(error, "expected warn, endLease or disable");
        free(error);
        error = NULL;
        ASSERT_EQ(exporter_parse(EXPORTER "    hooks:\n      duringLease: {command: [x]}\n", &c, &error), -EINVAL);
        ASSERT_CONTAINS(error, "unknown key");
        free(error);
        error = NULL;
        ASSERT_EQ(exporter_parse(EXPORTER "    health: {interval: 1m}\n", &c, &error), -EINVAL);
        ASSERT_CONTAINS(error, "missing required key \"command\"");
        free(error);
        error = NULL;
        ASSERT_EQ(exporter_parse(EXPORTER "    health: {command: [x], timeout: 0s}\n", &c, &error), -EINVAL);
        ASSERT_CONTAINS(error, "expected a duration above zero");
        free(error);
}

TEST_MAIN()
