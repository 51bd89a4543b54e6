/* Lease hooks and health checks of a DUT: the "hooks:" and "health:" keys of the ExporterConfig */
#include <stdlib.h>
#include <string.h>

#include "hooks-config.h"
#include "parse-util.h"

static const char *const hook_failure_table[_HOOK_FAILURE_MAX] = {
        [HOOK_FAILURE_WARN] = "warn",
        [HOOK_FAILURE_END_LEASE] = "endLease",
        [HOOK_FAILURE_DISABLE] = "disable",
};

const char *hook_failure_to_string(HookFailure f) {
        return f >= 0 && f < _HOOK_FAILURE_MAX ? hook_failure_table[f] : NULL;
}

HookFailure hook_failure_from_string(const char *s) {
        for (size_t i = 0; s && i < _HOOK_FAILURE_MAX; i++)
                if (streq(hook_failure_table[i], s))
                        return (HookFailure) i;
        return _HOOK_FAILURE_INVALID;
}

static void strv_free(char **v) {
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

DutHooks *dut_hooks_free(DutHooks *h) {
        if (!h)
                return NULL;
        strv_free(h->before_lease.argv);
        strv_free(h->after_lease.argv);
        strv_free(h->health_argv);
        free(h);
        return NULL;
}

/* A command as a sequence of strings: never a string for a shell to split. */
static int parse_argv(ConfigParser *p, const YamlNode *n, char ***ret) {
        char **v;
        int r;

        if (n->type != YAML_NODE_SEQUENCE || n->n_items == 0) {
                _cleanup_free_ char *g = config_got(p, n);

                return g ? config_fail(p, n, "expected a command as a sequence of strings such as "
                                       "[\"/usr/local/bin/reflash\", \"golden.img\"], got %s", g)
                         : -ENOMEM;
        }
        v = calloc(n->n_items + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        *ret = v;
        for (size_t i = 0; i < n->n_items; i++) {
                r = config_get_string(p, n->items[i], false, &v[i]);
                if (r < 0)
                        return r;
        }
        if (!v[0][0])
                return config_fail(p, n->items[0], "expected a program name, got \"\"");
        return 0;
}

static int parse_duration_key(ConfigParser *p, const YamlNode *m, const char *key, uint64_t *ret) {
        const YamlNode *v = yaml_node_get(m, key);
        uint64_t u;

        if (!v || yaml_node_is_null(v))
                return 0;
        if (v->type != YAML_NODE_SCALAR || strlen(v->scalar) != v->scalar_len || parse_duration(v->scalar, &u) < 0 ||
            u == 0) {
                _cleanup_free_ char *g = config_got(p, v);

                return g ? config_fail(p, v, "expected a duration above zero such as \"30s\" or \"5m\", got %s", g)
                         : -ENOMEM;
        }
        *ret = u;
        return 0;
}

static int parse_hook(ConfigParser *p, const YamlNode *n, HookConfig *h) {
        static const char *const known[] = { "command", "timeout", "onFailure" };
        const YamlNode *f;
        int r;

        r = config_expect_mapping(p, n, "with command, timeout and onFailure");
        if (r < 0)
                return r;
        r = config_check_keys(p, n, known, ELEMENTSOF(known));
        if (r < 0)
                return r;
        if (!yaml_node_get(n, "command"))
                return config_fail(p, n, "missing required key \"command\"");
        r = parse_argv(p, yaml_node_get(n, "command"), &h->argv);
        if (r < 0)
                return r;
        h->timeout_usec = HOOK_TIMEOUT_DEFAULT_USEC;
        r = parse_duration_key(p, n, "timeout", &h->timeout_usec);
        if (r < 0)
                return r;
        f = yaml_node_get(n, "onFailure");
        h->on_failure = HOOK_FAILURE_WARN;
        if (f && !yaml_node_is_null(f)) {
                h->on_failure = yaml_node_is_string(f) ? hook_failure_from_string(f->scalar) : _HOOK_FAILURE_INVALID;
                if (h->on_failure < 0) {
                        _cleanup_free_ char *g = config_got(p, f);

                        return g ? config_fail(p, f, "expected warn, endLease or disable, got %s", g) : -ENOMEM;
                }
        }
        return 0;
}

int dut_hooks_parse(ConfigParser *p, const YamlNode *dut, DutHooks **ret) {
        static const char *const known_hooks[] = { "beforeLease", "afterLease" };
        static const char *const known_health[] = { "command", "interval", "timeout" };
        const YamlNode *hooks = yaml_node_get(dut, "hooks"), *health = yaml_node_get(dut, "health"), *n;
        DutHooks *h;
        int r;

        *ret = NULL;
        if (!hooks && !health)
                return 0;
        h = calloc(1, sizeof(DutHooks));
        if (!h)
                return -ENOMEM;
        *ret = h;
        h->health_interval_usec = HEALTH_INTERVAL_DEFAULT_USEC;
        h->health_timeout_usec = HEALTH_TIMEOUT_DEFAULT_USEC;

        if (hooks) {
                r = config_expect_mapping(p, hooks, "with beforeLease and afterLease");
                if (r < 0)
                        return r;
                r = config_check_keys(p, hooks, known_hooks, ELEMENTSOF(known_hooks));
                if (r < 0)
                        return r;
                n = yaml_node_get(hooks, "beforeLease");
                if (n) {
                        r = parse_hook(p, n, &h->before_lease);
                        if (r < 0)
                                return r;
                }
                n = yaml_node_get(hooks, "afterLease");
                if (n) {
                        r = parse_hook(p, n, &h->after_lease);
                        if (r < 0)
                                return r;
                }
        }
        if (health) {
                r = config_expect_mapping(p, health, "with command, interval and timeout");
                if (r < 0)
                        return r;
                r = config_check_keys(p, health, known_health, ELEMENTSOF(known_health));
                if (r < 0)
                        return r;
                if (!yaml_node_get(health, "command"))
                        return config_fail(p, health, "missing required key \"command\"");
                r = parse_argv(p, yaml_node_get(health, "command"), &h->health_argv);
                if (r < 0)
                        return r;
                r = parse_duration_key(p, health, "interval", &h->health_interval_usec);
                if (r < 0)
                        return r;
                r = parse_duration_key(p, health, "timeout", &h->health_timeout_usec);
                if (r < 0)
                        return r;
        }
        return 0;
}
