/* Controller configuration: the ControllerConfig YAML, validated before anything starts */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "config-parse.h"
#include "config.h"
#include "controller-config.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "yaml-tree.h"


#define ALNUM "abcdefghijklmnopqrstuvwxyz0123456789"

ControllerConfig *controller_config_free(ControllerConfig *c) {
        if (!c)
                return NULL;
        free(c->path);
        free(c->name);
        free(c->listen);
        free(c->endpoint);
        free(c->certificate);
        free(c->key);
        free(c->ca);
        free(c->state_directory);
        free(c->policy);
        free(c->router_listen);
        free(c->router_advertise);
        free(c);
        return NULL;
}

/* The listen address as clients reach it: a wildcard (":P", "0.0.0.0:P", "[::]:P") is 127.0.0.1. */
static int endpoint_from_listen(const char *listen, char **ret) {
        const char *host, *port;
        size_t host_len;
        bool v6;
        int r;

        if (!config_split_host_port(listen, &host, &host_len, &v6, &port))
                return -EINVAL;
        if (host_len == 0 || (!v6 && host_len == 7 && strncmp(host, "0.0.0.0", 7) == 0) ||
            (v6 && host_len == 2 && strncmp(host, "::", 2) == 0))
                r = asprintf(ret, "127.0.0.1:%s", port);
        else
                r = asprintf(ret, "%s", listen);
        if (r < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* Parsing */

/* NULL for a missing or empty ("router:") optional mapping. */
static int optional_mapping(ConfigParser *p, const YamlNode *m, const char *key, const char *what,
                            const YamlNode **ret) {
        const YamlNode *n = yaml_node_get(m, key);
        int r;

        r = config_optional_mapping(p, n, what);
        *ret = r > 0 ? n : NULL;
        return r;
}

/* A non-empty string. Plain numbers and booleans are not strings. */
static int get_string(ConfigParser *p, const YamlNode *n, char **ret) {
        _cleanup_free_ char *g = NULL;
        YamlScalarKind kind = yaml_node_scalar_kind(n);

        if (!yaml_node_is_string(n) || n->scalar_len == 0) {
                g = config_got(p, n);
                if (!g)
                        return -ENOMEM;
                if (kind == YAML_SCALAR_BOOL || kind == YAML_SCALAR_INT || kind == YAML_SCALAR_FLOAT)
                        return config_fail(p, n, "expected a string, got %s %s (write \"%s\" to use it as text)",
                                    kind == YAML_SCALAR_BOOL ? "the boolean" : "the number", n->scalar, n->scalar);
                return config_fail(p, n, "expected a non-empty string, got %s", g);
        }
        *ret = strdup(n->scalar);
        return *ret ? 0 : -ENOMEM;
}

/* key of m as a string: required, or optional (*ret stays NULL when absent). */
static int get_key_string(ConfigParser *p, const YamlNode *m, const char *key, bool required, char **ret,
                          const YamlNode **ret_node) {
        const YamlNode *v = yaml_node_get(m, key);
        int r;

        if (!v && !required)
                return 0;
        if (!v)
                return config_fail(p, m, "missing required key \"%s\"", key);
        r = get_string(p, v, ret);
        if (r < 0)
                return r;
        if (ret_node)
                *ret_node = v;
        return 1;
}

static int get_path(ConfigParser *p, const YamlNode *m, const char *key, bool required, char **ret) {
        _cleanup_free_ char *s = NULL;
        int r;

        r = get_key_string(p, m, key, required, &s, NULL);
        if (r <= 0)
                return r;
        return config_path_join(p->dir, s, ret);
}

static int get_duration(ConfigParser *p, const YamlNode *m, const char *key, uint64_t *ret) {
        const YamlNode *v = yaml_node_get(m, key);
        _cleanup_free_ char *g = NULL;
        uint64_t u;

        if (!v || yaml_node_is_null(v))
                return 0;
        if (v->type == YAML_NODE_SCALAR && (yaml_node_is_string(v) || yaml_node_scalar_kind(v) == YAML_SCALAR_INT ||
                                            yaml_node_scalar_kind(v) == YAML_SCALAR_FLOAT) &&
            parse_duration(v->scalar, &u) >= 0 && u > 0) {
                *ret = u;
                return 0;
        }
        g = config_got(p, v);
        if (!g)
                return -ENOMEM;
        return config_fail(p, v, "expected a duration above zero such as \"10m\", \"12h\" or \"365d\", got %s", g);
}

static int get_exact(ConfigParser *p, const YamlNode *m, const char *key, const char *want) {
        _cleanup_free_ char *s = NULL;
        const YamlNode *v = NULL;
        int r;

        r = get_key_string(p, m, key, true, &s, &v);
        if (r < 0)
                return r;
        return config_check_exact(p, v, s, want);
}

/* 1-253 characters of [a-z0-9.-], starting and ending with a letter or digit. */
static bool issuer_name_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 253 || strspn(s, ALNUM ".-") != n)
                return false;
        return strchr(ALNUM, s[0]) && strchr(ALNUM, s[n - 1]);
}

static int parse_listen(ConfigParser *p, const YamlNode *m, const char *key, bool required, char **ret) {
        _cleanup_free_ char *s = NULL, *q = NULL;
        const YamlNode *v = NULL;
        int r;

        r = get_key_string(p, m, key, required, &s, &v);
        if (r <= 0)
                return r;
        if (!listen_address_is_valid(s)) {
                q = config_quote(v->scalar, v->scalar_len, false);
                return q ? config_fail(p, v, "invalid listen address %s: use \"IPv4:PORT\", \"[IPv6]:PORT\" or \":PORT\"", q)
                         : -ENOMEM;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static int parse_root(ConfigParser *p, const YamlNode *root, ControllerConfig *c) {
        static const char *const known[] = { "apiVersion", "kind", "metadata", "listen", "endpoint",
                                             "tls", "stateDirectory", "router", "tokens", "history",
                                             "policy" };
        static const char *const known_metadata[] = { "name" };
        static const char *const known_tls[] = { "certificate", "key", "ca" };
        static const char *const known_router[] = { "listen", "advertise" };
        static const char *const known_tokens[] = { "lifetime", "streamLifetime" };
        static const char *const known_history[] = { "retention" };
        const YamlNode *v = NULL, *m = NULL;
        int r;

        r = config_expect_mapping(p, root, "with apiVersion, kind, metadata, listen, tls and stateDirectory");
        if (r < 0)
                return r;
        r = config_check_keys(p, root, known, ELEMENTSOF(known));
        if (r < 0)
                return r;
        r = get_exact(p, root, "apiVersion", CONFIG_API_VERSION);
        if (r < 0)
                return r;
        r = get_exact(p, root, "kind", CONTROLLER_CONFIG_KIND);
        if (r < 0)
                return r;

        r = config_require_key(p, root, "metadata", &m);
        if (r < 0)
                return r;
        r = config_expect_mapping(p, m, NULL);
        if (r < 0)
                return r;
        r = config_check_keys(p, m, known_metadata, ELEMENTSOF(known_metadata));
        if (r < 0)
                return r;
        r = get_key_string(p, m, "name", true, &c->name, &v);
        if (r < 0)
                return r;
        if (!issuer_name_is_valid(c->name)) {
                _cleanup_free_ char *q = config_quote(v->scalar, v->scalar_len, false);

                return q ? config_fail(p, v, "invalid name %s: use at most 253 characters of [a-z0-9-.] starting and "
                                "ending with a letter or digit", q)
                         : -ENOMEM;
        }

        r = parse_listen(p, root, "listen", true, &c->listen);
        if (r < 0)
                return r;

        r = get_key_string(p, root, "endpoint", false, &c->endpoint, &v);
        if (r < 0)
                return r;
        if (c->endpoint) {
                if (!endpoint_is_valid(c->endpoint)) {
                        _cleanup_free_ char *q = config_quote(v->scalar, v->scalar_len, false);

                        return q ? config_fail(p, v, "invalid endpoint %s: use \"HOST:PORT\" or \"[IPv6]:PORT\" with a "
                                        "port of 1..65535", q)
                                 : -ENOMEM;
                }
                c->endpoint_set = true;
        } else {
                r = endpoint_from_listen(c->listen, &c->endpoint);
                if (r < 0)
                        return r;
        }

        r = config_require_key(p, root, "tls", &m);
        if (r < 0)
                return r;
        r = config_expect_mapping(p, m, "with certificate and key");
        if (r < 0)
                return r;
        r = config_check_keys(p, m, known_tls, ELEMENTSOF(known_tls));
        if (r < 0)
                return r;
        r = get_path(p, m, "certificate", true, &c->certificate);
        if (r < 0)
                return r;
        r = get_path(p, m, "key", true, &c->key);
        if (r < 0)
                return r;
        r = get_path(p, m, "ca", false, &c->ca);
        if (r < 0)
                return r;
        if (!c->ca) {
                c->ca = strdup(c->certificate);
                if (!c->ca)
                        return -ENOMEM;
        }

        r = get_path(p, root, "stateDirectory", true, &c->state_directory);
        if (r < 0)
                return r;
        /* The access policy (docs/policy.md); none: every client may lease every device. */
        r = get_path(p, root, "policy", false, &c->policy);
        if (r < 0)
                return r;

        r = optional_mapping(p, root, "router", "with listen", &m);
        if (r < 0)
                return r;
        if (m) {
                r = config_check_keys(p, m, known_router, ELEMENTSOF(known_router));
                if (r < 0)
                        return r;
                r = parse_listen(p, m, "listen", false, &c->router_listen);
                if (r < 0)
                        return r;
                /* Numeric, as the streams dial it (no name lookup on an event loop). */
                r = get_key_string(p, m, "advertise", false, &c->router_advertise, &v);
                if (r < 0)
                        return r;
                if (c->router_advertise &&
                    (!listen_address_is_valid(c->router_advertise) || c->router_advertise[0] == ':' ||
                     streq(strrchr(c->router_advertise, ':'), ":0"))) {
                        _cleanup_free_ char *q = config_quote(v->scalar, v->scalar_len, false);

                        return q ? config_fail(p, v, "invalid advertise address %s: use \"IPv4:PORT\" or \"[IPv6]:PORT\" "
                                        "with a port of 1..65535", q)
                                 : -ENOMEM;
                }
        }

        c->token_lifetime_usec = CONTROLLER_TOKEN_LIFETIME_DEFAULT_USEC;
        c->stream_token_lifetime_usec = CONTROLLER_STREAM_TOKEN_LIFETIME_DEFAULT_USEC;
        r = optional_mapping(p, root, "tokens", "with lifetime and streamLifetime", &m);
        if (r < 0)
                return r;
        if (m) {
                r = config_check_keys(p, m, known_tokens, ELEMENTSOF(known_tokens));
                if (r < 0)
                        return r;
                r = get_duration(p, m, "lifetime", &c->token_lifetime_usec);
                if (r < 0)
                        return r;
                r = get_duration(p, m, "streamLifetime", &c->stream_token_lifetime_usec);
                if (r < 0)
                        return r;
        }
        /* Lease history older than this is dropped (docs/metrics.md); none: kept for ever. */
        r = optional_mapping(p, root, "history", "with retention", &m);
        if (r < 0)
                return r;
        if (m) {
                r = config_check_keys(p, m, known_history, ELEMENTSOF(known_history));
                if (r < 0)
                        return r;
                r = get_duration(p, m, "retention", &c->history_retention_usec);
                if (r < 0)
                        return r;
        }
        return 0;
}

int controller_config_parse(const char *path, const char *data, size_t size, ControllerConfig **ret,
                            char **ret_error) {
        _cleanup_(controller_config_freep) ControllerConfig *c = NULL;
        _cleanup_(yaml_node_freep) YamlNode *root = NULL;
        _cleanup_free_ char *abs = NULL, *dir = NULL;
        ConfigParser p = {};
        int r;

        assert(ret);

        r = config_parse_begin(path, data, size, &root, &abs, &dir, ret_error);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(ControllerConfig));
        if (!c)
                return -ENOMEM;
        p = (ConfigParser) { .path = abs, .dir = dir };
        r = parse_root(&p, root, c);
        if (r < 0) {
                *ret_error = p.error;
                return r;
        }
        c->path = TAKE_PTR(abs);
        *ret = TAKE_PTR(c);
        return 0;
}

int controller_config_load(const char *path, ControllerConfig **ret, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        int r;

        assert(path);
        assert(ret);
        assert(ret_error);

        *ret_error = NULL;
        r = config_read_file(path, &buf, &n);
        if (r < 0) {
                if (asprintf(ret_error, "%s: cannot read: %s", path, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        return controller_config_parse(path, buf, n, ret, ret_error);
}

int config_file_peek_kind(const char *path, char **ret) {
        _cleanup_(yaml_node_freep) YamlNode *root = NULL;
        _cleanup_free_ char *buf = NULL, *error = NULL;
        const YamlNode *kind;
        size_t n = 0;
        int r;

        assert(path);
        assert(ret);

        *ret = NULL;
        r = config_read_file(path, &buf, &n);
        if (r < 0)
                return r;
        if (n > CONFIG_SIZE_MAX || yaml_tree_parse(buf, n, &root, &error) < 0)
                return 0;
        if (root->type != YAML_NODE_MAPPING)
                return 0;
        kind = yaml_node_get(root, "kind");
        if (!kind || !yaml_node_is_string(kind))
                return 0;
        *ret = strdup(kind->scalar);
        return *ret ? 0 : -ENOMEM;
}
