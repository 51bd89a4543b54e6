/* Access policy: the AccessPolicy YAML (roles) and its evaluation */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-parse.h"
#include "parse-util.h"
#include "policy-config.h"
#include "yaml-tree.h"

static const char *const policy_verb_table[_POLICY_VERB_MAX] = {
        [POLICY_VERB_LEASE] = "lease",
        [POLICY_VERB_POWER] = "power",
        [POLICY_VERB_SERIAL] = "serial",
        [POLICY_VERB_STORAGE] = "storage",
        [POLICY_VERB_GPIO] = "gpio",
        [POLICY_VERB_ADMIN] = "admin",
};

const char *policy_verb_to_string(PolicyVerb v) {
        if (v < 0 || v >= _POLICY_VERB_MAX)
                return NULL;
        return policy_verb_table[v];
}

PolicyVerb policy_verb_from_string(const char *s) {
        if (!s)
                return _POLICY_VERB_INVALID;
        for (size_t i = 0; i < _POLICY_VERB_MAX; i++)
                if (streq(policy_verb_table[i], s))
                        return (PolicyVerb) i;
        return _POLICY_VERB_INVALID;
}

char *policy_verbs_to_string(unsigned mask) {
        char *s = strdup(""), *t;

        for (size_t i = 0; s && i < _POLICY_VERB_MAX; i++) {
                if (!(mask & POLICY_VERB_BIT(i)))
                        continue;
                if (asprintf(&t, "%s%s%s", s, *s ? " " : "", policy_verb_table[i]) < 0)
                        t = NULL;
                free(s);
                s = t;
        }
        return s;
}

int policy_verbs_from_string(const char *s, unsigned *ret) {
        _cleanup_free_ char *copy = strdup(s ?: "");
        unsigned mask = 0;
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
                PolicyVerb v = policy_verb_from_string(w);

                if (v < 0)
                        return -EINVAL;
                mask |= POLICY_VERB_BIT(v);
        }
        *ret = mask;
        return 0;
}

Policy *policy_free(Policy *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_roles; i++) {
                free(p->roles[i].name);
                selector_free(p->roles[i].clients);
                selector_free(p->roles[i].exporters);
        }
        free(p->roles);
        free(p->path);
        free(p);
        return NULL;
}

/* Parsing */

static int get_selector(ConfigParser *cp, const YamlNode *role, const char *key, Selector **ret) {
        _cleanup_free_ char *text = NULL, *error = NULL;
        const YamlNode *v;
        int r;

        r = config_require_key(cp, role, key, &v);
        if (r < 0)
                return r;
        /* An empty value is the empty selector: every client, or every device. */
        r = config_get_string(cp, v, true, &text);
        if (r < 0)
                return r;
        r = selector_parse(strempty(text), ret, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return config_fail(cp, v, "invalid selector: %s", strna(error));
        if (!selector_satisfiable(*ret))
                return config_fail(cp, v, "selector \"%s\" can never match anything", text);
        return 0;
}

static int get_limit(ConfigParser *cp, const YamlNode *role, const char *key, uint32_t *ret) {
        const YamlNode *v = yaml_node_get(role, key);
        uint64_t u;

        *ret = POLICY_LIMIT_NONE;
        if (!v || yaml_node_is_null(v))
                return 0;
        if (yaml_node_scalar_kind(v) != YAML_SCALAR_INT || parse_uint64(v->scalar, &u) < 0 || u >= POLICY_LIMIT_NONE) {
                _cleanup_free_ char *g = config_got(cp, v);

                return g ? config_fail(cp, v, "expected a number of leases (0 or more), got %s", g) : -ENOMEM;
        }
        *ret = (uint32_t) u;
        return 0;
}

static int parse_verbs(ConfigParser *cp, const YamlNode *role, unsigned *ret) {
        const YamlNode *v;
        unsigned mask = 0;
        int r;

        r = config_require_key(cp, role, "verbs", &v);
        if (r < 0)
                return r;
        if (v->type != YAML_NODE_SEQUENCE || v->n_items == 0) {
                _cleanup_free_ char *g = config_got(cp, v);

                return g ? config_fail(cp, v, "expected a list of verbs (lease, power, serial, storage, gpio, admin), "
                                       "got %s", g)
                         : -ENOMEM;
        }
        for (size_t i = 0; i < v->n_items; i++) {
                const YamlNode *item = v->items[i];
                PolicyVerb verb = yaml_node_is_string(item) ? policy_verb_from_string(item->scalar) : _POLICY_VERB_INVALID;

                if (verb < 0) {
                        _cleanup_free_ char *g = config_got(cp, item);

                        return g ? config_fail(cp, item, "unknown verb %s (known: lease, power, serial, storage, gpio, "
                                               "admin)", g)
                                 : -ENOMEM;
                }
                mask |= POLICY_VERB_BIT(verb);
        }
        *ret = mask;
        return 0;
}

static int parse_role(ConfigParser *cp, const YamlNode *n, Policy *p, PolicyRole *role) {
        static const char *const known[] = { "name", "clients", "exporters", "verbs", "maxDuration",
                                             "maxLeasesPerClient", "maxLeasesPerTeam", "priority" };
        const YamlNode *v;
        int r;

        r = config_expect_mapping(cp, n, "with name, clients, exporters and verbs");
        if (r < 0)
                return r;
        r = config_check_keys(cp, n, known, ELEMENTSOF(known));
        if (r < 0)
                return r;
        r = config_require_key(cp, n, "name", &v);
        if (r < 0)
                return r;
        if (!yaml_node_is_string(v) || !dut_name_is_valid(v->scalar)) {
                _cleanup_free_ char *g = config_got(cp, v);

                return g ? config_fail(cp, v, "invalid role name %s: use 1-63 characters of [a-z0-9-], starting "
                                       "with a letter or digit", g)
                         : -ENOMEM;
        }
        for (size_t i = 0; i < p->n_roles; i++)
                if (streq(p->roles[i].name, v->scalar))
                        return config_fail(cp, v, "role \"%s\" is defined twice", v->scalar);
        role->name = strdup(v->scalar);
        if (!role->name)
                return -ENOMEM;

        r = get_selector(cp, n, "clients", &role->clients);
        if (r < 0)
                return r;
        r = get_selector(cp, n, "exporters", &role->exporters);
        if (r < 0)
                return r;
        r = parse_verbs(cp, n, &role->verbs);
        if (r < 0)
                return r;

        v = yaml_node_get(n, "maxDuration");
        if (v && !yaml_node_is_null(v)) {
                uint64_t u;

                if (v->type != YAML_NODE_SCALAR || parse_duration(v->scalar, &u) < 0 || u == 0) {
                        _cleanup_free_ char *g = config_got(cp, v);

                        return g ? config_fail(cp, v, "expected a duration above zero such as \"30m\" or \"2h\", got %s",
                                               g)
                                 : -ENOMEM;
                }
                role->max_duration_usec = u;
        }
        r = get_limit(cp, n, "maxLeasesPerClient", &role->max_leases_per_client);
        if (r < 0)
                return r;
        r = get_limit(cp, n, "maxLeasesPerTeam", &role->max_leases_per_team);
        if (r < 0)
                return r;

        v = yaml_node_get(n, "priority");
        if (v && !yaml_node_is_null(v)) {
                char *end = NULL;
                long l = 0;

                errno = 0;
                if (yaml_node_scalar_kind(v) == YAML_SCALAR_INT)
                        l = strtol(v->scalar, &end, 10);
                if (yaml_node_scalar_kind(v) != YAML_SCALAR_INT || !end || *end || errno != 0 || l < -1000000 ||
                    l > 1000000) {
                        _cleanup_free_ char *g = config_got(cp, v);

                        return g ? config_fail(cp, v, "expected an integer priority between -1000000 and 1000000, "
                                               "got %s", g)
                                 : -ENOMEM;
                }
                role->priority = (int) l;
        }
        return 0;
}

static int parse_root(ConfigParser *cp, const YamlNode *root, Policy *p) {
        static const char *const known[] = { "apiVersion", "kind", "roles" };
        const YamlNode *roles;
        int r;

        r = config_check_header(cp, root, "with apiVersion, kind and roles", known, ELEMENTSOF(known), POLICY_CONFIG_KIND);
        if (r < 0)
                return r;
        r = config_require_key(cp, root, "roles", &roles);
        if (r < 0)
                return r;
        /* "roles: []" is a valid policy: nothing is granted to anybody. */
        if (roles->type != YAML_NODE_SEQUENCE) {
                _cleanup_free_ char *g = config_got(cp, roles);

                return g ? config_fail(cp, roles, "expected a list of roles, got %s", g) : -ENOMEM;
        }
        if (roles->n_items > POLICY_ROLES_MAX)
                return config_fail(cp, roles, "more than %u roles", POLICY_ROLES_MAX);
        p->roles = calloc(MAX(roles->n_items, (size_t) 1), sizeof(PolicyRole));
        if (!p->roles)
                return -ENOMEM;
        for (size_t i = 0; i < roles->n_items; i++) {
                r = parse_role(cp, roles->items[i], p, &p->roles[i]);
                p->n_roles = i + 1; /* freed with the policy, even half-parsed */
                if (r < 0)
                        return r;
        }
        return 0;
}

int policy_parse(const char *path, const char *data, size_t size, Policy **ret, char **ret_error) {
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_(yaml_node_freep) YamlNode *root = NULL;
        _cleanup_free_ char *abs = NULL, *dir = NULL;
        ConfigParser cp;
        int r;

        assert(ret);
        assert(ret_error);

        *ret_error = NULL;
        r = config_parse_begin(path, data, size, &root, &abs, &dir, ret_error);
        if (r < 0)
                return r;
        p = calloc(1, sizeof(Policy));
        if (!p)
                return -ENOMEM;
        cp = (ConfigParser) { .path = abs, .dir = dir };
        r = parse_root(&cp, root, p);
        if (r < 0) {
                *ret_error = cp.error;
                return r;
        }
        p->path = TAKE_PTR(abs);
        *ret = TAKE_PTR(p);
        return 0;
}

int policy_load(const char *path, Policy **ret, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        int r;

        assert(path);
        assert(ret_error);

        *ret_error = NULL;
        r = config_read_file(path, &buf, &n);
        if (r < 0) {
                if (asprintf(ret_error, "%s: cannot read: %s", path, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        return policy_parse(path, buf, n, ret, ret_error);
}

/* Evaluation */

bool policy_role_matches_client(const PolicyRole *r, const Label *client, size_t n_client) {
        return selector_matches(r->clients, client, n_client);
}

bool policy_role_matches_device(const PolicyRole *r, const Label *device, size_t n_device) {
        return selector_matches(r->exporters, device, n_device);
}

bool policy_allows_lease(const Policy *p, const Label *client, size_t n_client, const Label *device,
                         size_t n_device, uint64_t duration_usec) {
        for (size_t i = 0; i < p->n_roles; i++) {
                const PolicyRole *r = &p->roles[i];

                if ((r->verbs & POLICY_VERB_BIT(POLICY_VERB_LEASE)) && policy_role_matches_client(r, client, n_client) &&
                    policy_role_matches_device(r, device, n_device) &&
                    (duration_usec == 0 || r->max_duration_usec == 0 || duration_usec <= r->max_duration_usec))
                        return true;
        }
        return false;
}

unsigned policy_device_verbs(const Policy *p, const Label *client, size_t n_client, const Label *device,
                             size_t n_device) {
        unsigned mask = 0;

        for (size_t i = 0; i < p->n_roles; i++)
                if (policy_role_matches_client(&p->roles[i], client, n_client) &&
                    policy_role_matches_device(&p->roles[i], device, n_device))
                        mask |= p->roles[i].verbs;
        return mask;
}

void policy_lease_decision_done(PolicyLeaseDecision *d) {
        if (!d)
                return;
        free(d->reason);
        d->reason = NULL;
}

/* Whether some device could match both selectors. */
static bool selectors_compatible(const Selector *a, const Selector *b) {
        _cleanup_free_ char *sa = selector_to_string(a), *sb = selector_to_string(b), *joined = NULL;
        Selector *both = NULL;
        bool ok;

        if (!sa || !sb || asprintf(&joined, "%s%s%s", sa, *sa && *sb ? "," : "", sb) < 0)
                return true; /* out of memory: let the scheduler's per-device check decide */
        if (selector_parse(joined, &both, NULL) < 0)
                return true;
        ok = selector_satisfiable(both);
        selector_free(both);
        return ok;
}

static char *labels_text(const Label *l, size_t n) {
        char *s = strdup(""), *t;

        for (size_t i = 0; s && i < n; i++) {
                if (asprintf(&t, "%s%s%s=%s", s, i ? "," : "", l[i].key, l[i].value) < 0)
                        t = NULL;
                free(s);
                s = t;
        }
        return s;
}

int policy_judge_lease(const Policy *p, const char *client_name, const Label *client, size_t n_client,
                       const Selector *selector, uint64_t duration_usec, PolicyLeaseDecision *ret) {
        _cleanup_free_ char *labels = NULL, *sel = NULL;
        bool any_role = false, any_lease = false, any_selector = false, no_client_limit = false,
             no_team_limit = false;
        uint64_t longest = 0;
        const char *longest_role = NULL;
        int r;

        assert(p && ret);

        *ret = (PolicyLeaseDecision) {
                .max_leases_per_client = 0,
                .max_leases_per_team = 0,
                .priority = INT_MIN,
        };
        for (size_t i = 0; i < p->n_roles; i++) {
                const PolicyRole *role = &p->roles[i];

                if (!policy_role_matches_client(role, client, n_client))
                        continue;
                any_role = true;
                /* The limits are those of the client's most generous role. */
                if (role->max_leases_per_client == POLICY_LIMIT_NONE)
                        no_client_limit = true;
                else
                        ret->max_leases_per_client = MAX(ret->max_leases_per_client, role->max_leases_per_client);
                if (role->max_leases_per_team == POLICY_LIMIT_NONE)
                        no_team_limit = true;
                else
                        ret->max_leases_per_team = MAX(ret->max_leases_per_team, role->max_leases_per_team);

                if (!(role->verbs & POLICY_VERB_BIT(POLICY_VERB_LEASE)))
                        continue;
                any_lease = true;
                if (!selectors_compatible(selector, role->exporters))
                        continue;
                any_selector = true;
                if (role->max_duration_usec != 0 && duration_usec > role->max_duration_usec) {
                        if (role->max_duration_usec > longest) {
                                longest = role->max_duration_usec;
                                longest_role = role->name;
                        }
                        continue;
                }
                ret->allowed = true;
                ret->priority = MAX(ret->priority, role->priority);
        }
        if (no_client_limit)
                ret->max_leases_per_client = POLICY_LIMIT_NONE;
        if (no_team_limit)
                ret->max_leases_per_team = POLICY_LIMIT_NONE;
        if (ret->allowed)
                return 0;
        ret->priority = 0;

        labels = labels_text(client, n_client);
        sel = selector_to_string(selector);
        if (!labels || !sel)
                return -ENOMEM;
        if (!any_role)
                r = asprintf(&ret->reason, "Client '%s' (labels: %s) is in no role of the access policy: it needs a "
                             "role whose clients selector matches its labels", client_name, *labels ? labels : "none");
        else if (!any_lease)
                r = asprintf(&ret->reason, "No role of client '%s' grants the verb 'lease': it needs a role with "
                             "verbs [lease] whose clients selector matches %s", client_name,
                             *labels ? labels : "its labels");
        else if (!any_selector)
                r = asprintf(&ret->reason, "No role of client '%s' grants 'lease' on exporters matching \"%s\": it "
                             "needs a role with verbs [lease] whose exporters selector such exporters match",
                             client_name, sel);
        else {
                char a[32], b[32];

                r = asprintf(&ret->reason, "A lease of %s is longer than role '%s' allows (maxDuration: %s): ask "
                             "for less, or it needs a role with a longer maxDuration",
                             format_duration(a, sizeof(a), duration_usec), longest_role,
                             format_duration(b, sizeof(b), longest));
        }
        if (r < 0) {
                ret->reason = NULL;
                return -ENOMEM;
        }
        return 0;
}
