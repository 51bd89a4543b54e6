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

#include "controller-config.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "yaml-tree.h"

#define CONFIG_SIZE_MAX (1024 * 1024)
#define CONFIG_API_VERSION "jumpstarter.dev/v1alpha1"
#define QUOTE_MAX 64

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
        free(c->router_listen);
        free(c);
        return NULL;
}

/* Addresses */

static bool port_is_valid(const char *s, size_t len, unsigned min) {
        char buf[8];
        uint64_t u;

        if (len == 0 || len >= sizeof buf || (s[0] == '0' && len > 1))
                return false;
        memcpy(buf, s, len);
        buf[len] = 0;
        if (parse_uint64(buf, &u) < 0)
                return false;
        return u >= min && u <= 65535;
}

static bool inet_is_valid(int family, const char *s, size_t len) {
        unsigned char a[sizeof(struct in6_addr)];
        char buf[INET6_ADDRSTRLEN];

        if (len == 0 || len >= sizeof buf)
                return false;
        memcpy(buf, s, len);
        buf[len] = 0;
        return inet_pton(family, buf, a) == 1;
}

static bool host_name_is_valid(const char *s, size_t len) {
        size_t start = 0;

        if (len == 0 || len > 253)
                return false;
        for (size_t i = 0; i <= len; i++) {
                size_t n;

                if (i < len && s[i] != '.') {
                        char c = s[i];

                        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') && c != '-')
                                return false;
                        continue;
                }
                n = i - start;
                if (n == 0 || n > 63 || s[start] == '-' || s[i - 1] == '-')
                        return false;
                start = i + 1;
        }
        return true;
}

/* Splits "HOST:PORT" / "[V6]:PORT" into host (without brackets) and port. */
static int split_host_port(const char *s, const char **ret_host, size_t *ret_host_len, bool *ret_v6,
                           const char **ret_port) {
        const char *colon;

        if (s[0] == '[') {
                const char *close = strchr(s, ']');

                if (!close || close[1] != ':')
                        return -EINVAL;
                *ret_host = s + 1;
                *ret_host_len = (size_t) (close - s - 1);
                *ret_v6 = true;
                *ret_port = close + 2;
                return 0;
        }
        colon = strrchr(s, ':');
        if (!colon)
                return -EINVAL;
        *ret_host = s;
        *ret_host_len = (size_t) (colon - s);
        *ret_v6 = false;
        *ret_port = colon + 1;
        return 0;
}

bool listen_address_is_valid(const char *s) {
        const char *host, *port;
        size_t host_len;
        bool v6;

        if (!s || split_host_port(s, &host, &host_len, &v6, &port) < 0)
                return false;
        if (!port_is_valid(port, strlen(port), 0))
                return false;
        if (v6)
                return inet_is_valid(AF_INET6, host, host_len);
        return host_len == 0 || inet_is_valid(AF_INET, host, host_len);
}

static bool endpoint_is_valid(const char *s) {
        const char *host, *port;
        size_t host_len;
        bool v6;

        if (!s || split_host_port(s, &host, &host_len, &v6, &port) < 0)
                return false;
        if (!port_is_valid(port, strlen(port), 1))
                return false;
        if (v6)
                return inet_is_valid(AF_INET6, host, host_len);
        return inet_is_valid(AF_INET, host, host_len) || host_name_is_valid(host, host_len);
}

/* The listen address as clients reach it: a wildcard (":P", "0.0.0.0:P", "[::]:P") is 127.0.0.1. */
static int endpoint_from_listen(const char *listen, char **ret) {
        const char *host, *port;
        size_t host_len;
        bool v6;
        int r;

        if (split_host_port(listen, &host, &host_len, &v6, &port) < 0)
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

typedef struct Parser {
        const char *path; /* absolute */
        const char *dir;
        char *error;
} Parser;

static char *quote(const char *s, size_t len) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        fputc('"', f);
        for (size_t i = 0; i < MIN(len, (size_t) QUOTE_MAX); i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c < 0x20 || c == 0x7f)
                        fprintf(f, "\\x%02x", c);
                else
                        fputc(c, f);
        }
        fputs(len > QUOTE_MAX ? "\"..." : "\"", f);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static char *got(const YamlNode *n) {
        if (!n || yaml_node_is_null(n))
                return strdup("nothing");
        if (n->type == YAML_NODE_SCALAR)
                return quote(n->scalar, n->scalar_len);
        return strdup(yaml_node_describe(n));
}

/* "FILE:LINE:COLUMN: KEY.PATH: problem". Only the first error is kept. */
_printf_(3, 4) static int fail(Parser *p, const YamlNode *at, const char *format, ...) {
        _cleanup_free_ char *path = NULL, *msg = NULL;
        const YamlNode *pos = at;
        va_list ap;
        int r;

        assert(at);

        if (p->error)
                return -EINVAL;
        r = yaml_node_path(at, &path);
        if (r < 0)
                return r;
        /* An empty value ("name:") has no position of its own worth showing; its key has. */
        if (at->type == YAML_NODE_SCALAR && at->scalar_len == 0 && !at->quoted && at->parent &&
            at->parent->type == YAML_NODE_MAPPING)
                pos = at->parent->pairs[at->index].key;

        va_start(ap, format);
        r = vasprintf(&msg, format, ap);
        va_end(ap);
        if (r < 0) {
                msg = NULL;
                return -ENOMEM;
        }
        if (*path)
                r = asprintf(&p->error, "%s:%u:%u: %s: %s", p->path, pos->line, pos->column, path, msg);
        else
                r = asprintf(&p->error, "%s:%u:%u: %s", p->path, pos->line, pos->column, msg);
        if (r < 0) {
                p->error = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

static bool key_is(const YamlNode *k, const char *s) {
        return strlen(s) == k->scalar_len && streq(s, k->scalar);
}

static int check_keys(Parser *p, const YamlNode *m, const char *const *known, size_t n_known) {
        for (size_t i = 0; i < m->n_pairs; i++) {
                const YamlNode *k = m->pairs[i].key;
                char list[256] = "";
                bool found = false;

                for (size_t j = 0; j < n_known && !found; j++)
                        found = key_is(k, known[j]);
                if (found)
                        continue;
                for (size_t j = 0; j < n_known; j++) {
                        if (j > 0)
                                strncat(list, ", ", sizeof list - strlen(list) - 1);
                        strncat(list, known[j], sizeof list - strlen(list) - 1);
                }
                return fail(p, k, "unknown key (known: %s)", list);
        }
        return 0;
}

static int expect_mapping(Parser *p, const YamlNode *n, const char *what) {
        _cleanup_free_ char *g = NULL;

        if (n->type == YAML_NODE_MAPPING)
                return 0;
        g = got(n);
        if (!g)
                return -ENOMEM;
        return fail(p, n, "expected a mapping%s%s, got %s", what ? " " : "", strempty(what), g);
}

/* NULL for a missing or empty ("router:") optional mapping. */
static int optional_mapping(Parser *p, const YamlNode *m, const char *key, const char *what, const YamlNode **ret) {
        const YamlNode *n = yaml_node_get(m, key);
        int r;

        *ret = NULL;
        if (!n || yaml_node_is_null(n))
                return 0;
        r = expect_mapping(p, n, what);
        if (r < 0)
                return r;
        *ret = n;
        return 1;
}

static int require_key(Parser *p, const YamlNode *m, const char *key, const YamlNode **ret) {
        const YamlNode *v = yaml_node_get(m, key);

        if (!v)
                return fail(p, m, "missing required key \"%s\"", key);
        *ret = v;
        return 0;
}

/* A non-empty string. Plain numbers and booleans are not strings. */
static int get_string(Parser *p, const YamlNode *n, char **ret) {
        _cleanup_free_ char *g = NULL;
        YamlScalarKind kind = yaml_node_scalar_kind(n);

        if (!yaml_node_is_string(n) || n->scalar_len == 0) {
                g = got(n);
                if (!g)
                        return -ENOMEM;
                if (kind == YAML_SCALAR_BOOL || kind == YAML_SCALAR_INT || kind == YAML_SCALAR_FLOAT)
                        return fail(p, n, "expected a string, got %s %s (write \"%s\" to use it as text)",
                                    kind == YAML_SCALAR_BOOL ? "the boolean" : "the number", n->scalar, n->scalar);
                return fail(p, n, "expected a non-empty string, got %s", g);
        }
        *ret = strdup(n->scalar);
        return *ret ? 0 : -ENOMEM;
}

/* key of m as a string: required, or optional (*ret stays NULL when absent). */
static int get_key_string(Parser *p, const YamlNode *m, const char *key, bool required, char **ret,
                          const YamlNode **ret_node) {
        const YamlNode *v = yaml_node_get(m, key);
        int r;

        if (!v && !required)
                return 0;
        if (!v)
                return fail(p, m, "missing required key \"%s\"", key);
        r = get_string(p, v, ret);
        if (r < 0)
                return r;
        if (ret_node)
                *ret_node = v;
        return 1;
}

static int get_path(Parser *p, const YamlNode *m, const char *key, bool required, char **ret) {
        _cleanup_free_ char *s = NULL;
        int r;

        r = get_key_string(p, m, key, required, &s, NULL);
        if (r <= 0)
                return r;
        if (s[0] == '/')
                *ret = TAKE_PTR(s);
        else if (asprintf(ret, "%s/%s", p->dir, s) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

static int get_duration(Parser *p, const YamlNode *m, const char *key, uint64_t *ret) {
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
        g = got(v);
        if (!g)
                return -ENOMEM;
        return fail(p, v, "expected a duration above zero such as \"10m\", \"12h\" or \"365d\", got %s", g);
}

static int get_exact(Parser *p, const YamlNode *m, const char *key, const char *want) {
        _cleanup_free_ char *s = NULL, *g = NULL;
        const YamlNode *v = NULL;
        int r;

        r = get_key_string(p, m, key, true, &s, &v);
        if (r < 0)
                return r;
        if (streq(s, want))
                return 0;
        g = got(v);
        if (!g)
                return -ENOMEM;
        return fail(p, v, "expected \"%s\", got %s", want, g);
}

/* 1-253 characters of [a-z0-9.-], starting and ending with a letter or digit. */
static bool issuer_name_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 253 || strspn(s, ALNUM ".-") != n)
                return false;
        return strchr(ALNUM, s[0]) && strchr(ALNUM, s[n - 1]);
}

static int parse_listen(Parser *p, const YamlNode *m, const char *key, bool required, char **ret) {
        _cleanup_free_ char *s = NULL, *q = NULL;
        const YamlNode *v = NULL;
        int r;

        r = get_key_string(p, m, key, required, &s, &v);
        if (r <= 0)
                return r;
        if (!listen_address_is_valid(s)) {
                q = quote(v->scalar, v->scalar_len);
                return q ? fail(p, v, "invalid listen address %s: use \"IPv4:PORT\", \"[IPv6]:PORT\" or \":PORT\"", q)
                         : -ENOMEM;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static int parse_root(Parser *p, const YamlNode *root, ControllerConfig *c) {
        static const char *const known[] = { "apiVersion", "kind", "metadata", "listen", "endpoint",
                                             "tls", "stateDirectory", "router", "tokens" };
        static const char *const known_metadata[] = { "name" };
        static const char *const known_tls[] = { "certificate", "key", "ca" };
        static const char *const known_router[] = { "listen" };
        static const char *const known_tokens[] = { "lifetime", "streamLifetime" };
        const YamlNode *v = NULL, *m = NULL;
        int r;

        r = expect_mapping(p, root, "with apiVersion, kind, metadata, listen, tls and stateDirectory");
        if (r < 0)
                return r;
        r = check_keys(p, root, known, ELEMENTSOF(known));
        if (r < 0)
                return r;
        r = get_exact(p, root, "apiVersion", CONFIG_API_VERSION);
        if (r < 0)
                return r;
        r = get_exact(p, root, "kind", CONTROLLER_CONFIG_KIND);
        if (r < 0)
                return r;

        r = require_key(p, root, "metadata", &m);
        if (r < 0)
                return r;
        r = expect_mapping(p, m, NULL);
        if (r < 0)
                return r;
        r = check_keys(p, m, known_metadata, ELEMENTSOF(known_metadata));
        if (r < 0)
                return r;
        r = get_key_string(p, m, "name", true, &c->name, &v);
        if (r < 0)
                return r;
        if (!issuer_name_is_valid(c->name)) {
                _cleanup_free_ char *q = quote(v->scalar, v->scalar_len);

                return q ? fail(p, v, "invalid name %s: use at most 253 characters of [a-z0-9-.] starting and "
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
                        _cleanup_free_ char *q = quote(v->scalar, v->scalar_len);

                        return q ? fail(p, v, "invalid endpoint %s: use \"HOST:PORT\" or \"[IPv6]:PORT\" with a "
                                        "port of 1..65535", q)
                                 : -ENOMEM;
                }
                c->endpoint_set = true;
        } else {
                r = endpoint_from_listen(c->listen, &c->endpoint);
                if (r < 0)
                        return r;
        }

        r = require_key(p, root, "tls", &m);
        if (r < 0)
                return r;
        r = expect_mapping(p, m, "with certificate and key");
        if (r < 0)
                return r;
        r = check_keys(p, m, known_tls, ELEMENTSOF(known_tls));
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

        r = optional_mapping(p, root, "router", "with listen", &m);
        if (r < 0)
                return r;
        if (m) {
                r = check_keys(p, m, known_router, ELEMENTSOF(known_router));
                if (r < 0)
                        return r;
                r = parse_listen(p, m, "listen", false, &c->router_listen);
                if (r < 0)
                        return r;
        }

        c->token_lifetime_usec = CONTROLLER_TOKEN_LIFETIME_DEFAULT_USEC;
        c->stream_token_lifetime_usec = CONTROLLER_STREAM_TOKEN_LIFETIME_DEFAULT_USEC;
        r = optional_mapping(p, root, "tokens", "with lifetime and streamLifetime", &m);
        if (r < 0)
                return r;
        if (m) {
                r = check_keys(p, m, known_tokens, ELEMENTSOF(known_tokens));
                if (r < 0)
                        return r;
                r = get_duration(p, m, "lifetime", &c->token_lifetime_usec);
                if (r < 0)
                        return r;
                r = get_duration(p, m, "streamLifetime", &c->stream_token_lifetime_usec);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int path_absolute(const char *path, char **ret) {
        _cleanup_free_ char *cwd = NULL;

        if (path[0] == '/') {
                *ret = strdup(path);
                return *ret ? 0 : -ENOMEM;
        }
        cwd = getcwd(NULL, 0);
        if (!cwd)
                return negative_errno();
        if (asprintf(ret, "%s/%s", cwd, path) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

int controller_config_parse(const char *path, const char *data, size_t size, ControllerConfig **ret,
                            char **ret_error) {
        _cleanup_(controller_config_freep) ControllerConfig *c = NULL;
        _cleanup_(yaml_node_freep) YamlNode *root = NULL;
        _cleanup_free_ char *abs = NULL, *dir = NULL, *yaml_error = NULL;
        Parser p = {};
        char *slash;
        int r;

        assert(path);
        assert(data || size == 0);
        assert(ret);
        assert(ret_error);

        *ret_error = NULL;

        r = path_absolute(path, &abs);
        if (r < 0)
                return r;
        dir = strdup(abs);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash == dir)
                slash[1] = 0;
        else
                *slash = 0;

        if (size > CONFIG_SIZE_MAX) {
                if (asprintf(ret_error, "%s: larger than 1 MiB, refusing to parse it", abs) < 0)
                        *ret_error = NULL;
                return -EFBIG;
        }

        r = yaml_tree_parse(data, size, &root, &yaml_error);
        if (r < 0) {
                if (yaml_error && asprintf(ret_error, "%s:%s", abs, yaml_error) < 0)
                        *ret_error = NULL;
                return r;
        }

        c = calloc(1, sizeof(ControllerConfig));
        if (!c)
                return -ENOMEM;
        p = (Parser) { .path = abs, .dir = dir };
        r = parse_root(&p, root, c);
        if (r < 0) {
                *ret_error = p.error;
                return r;
        }
        c->path = TAKE_PTR(abs);
        *ret = TAKE_PTR(c);
        return 0;
}

static int read_config_file(const char *path, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0;

        /* One byte more than allowed, so that parse can tell "too large" from "exactly 1 MiB". */
        buf = malloc(CONFIG_SIZE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        while (n < CONFIG_SIZE_MAX + 1) {
                ssize_t k = read(fd, buf + n, CONFIG_SIZE_MAX + 1 - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        *ret = TAKE_PTR(buf);
        *ret_size = n;
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
        r = read_config_file(path, &buf, &n);
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
        r = read_config_file(path, &buf, &n);
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
