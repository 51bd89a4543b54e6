/* What the YAML config parsers share: messages with positions, type checks, addresses, paths */
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
#include "file-util.h"
#include "macro.h"
#include "parse-util.h"

char *config_quote(const char *s, size_t len, bool short_escapes) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        fputc('"', f);
        for (size_t i = 0; i < MIN(len, (size_t) CONFIG_QUOTE_MAX); i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (short_escapes && c == '\n')
                        fputs("\\n", f);
                else if (short_escapes && c == '\t')
                        fputs("\\t", f);
                else if (c < 0x20 || c == 0x7f)
                        fprintf(f, "\\x%02x", c);
                else
                        fputc(c, f);
        }
        fputs(len > CONFIG_QUOTE_MAX ? "\"..." : "\"", f);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

char *config_got(const ConfigParser *p, const YamlNode *n) {
        if (!n || yaml_node_is_null(n))
                return strdup("nothing");
        if (n->type == YAML_NODE_SCALAR)
                return config_quote(n->scalar, n->scalar_len, p->short_escapes);
        return strdup(yaml_node_describe(n));
}

int config_fail(ConfigParser *p, const YamlNode *at, const char *format, ...) {
        _cleanup_free_ char *path = NULL, *msg = NULL;
        const YamlNode *pos = at;
        va_list ap;
        int r;

        assert(p);
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

int config_expect_mapping(ConfigParser *p, const YamlNode *n, const char *what) {
        _cleanup_free_ char *g = NULL;

        if (n->type == YAML_NODE_MAPPING)
                return 0;
        g = config_got(p, n);
        if (!g)
                return -ENOMEM;
        return config_fail(p, n, "expected a mapping%s%s, got %s", what ? " " : "", strempty(what), g);
}

int config_optional_mapping(ConfigParser *p, const YamlNode *n, const char *what) {
        int r;

        if (!n || yaml_node_is_null(n))
                return 0;
        r = config_expect_mapping(p, n, what);
        return r < 0 ? r : 1;
}

bool config_key_is(const YamlNode *k, const char *s) {
        return strlen(s) == k->scalar_len && streq(s, k->scalar);
}

char *config_join(const char *const *names, size_t n) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s%s", i > 0 ? ", " : "", names[i]);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

int config_check_keys(ConfigParser *p, const YamlNode *m, const char *const *known, size_t n_known) {
        for (size_t i = 0; i < m->n_pairs; i++) {
                const YamlNode *k = m->pairs[i].key;
                _cleanup_free_ char *list = NULL;
                bool found = false;

                for (size_t j = 0; j < n_known && !found; j++)
                        found = config_key_is(k, known[j]);
                if (found)
                        continue;
                list = config_join(known, n_known);
                if (!list)
                        return -ENOMEM;
                return config_fail(p, k, "unknown key (known: %s)", list);
        }
        return 0;
}

int config_require_key(ConfigParser *p, const YamlNode *m, const char *key, const YamlNode **ret) {
        const YamlNode *v = yaml_node_get(m, key);

        if (!v)
                return config_fail(p, m, "missing required key \"%s\"", key);
        *ret = v;
        return 0;
}

int config_get_string(ConfigParser *p, const YamlNode *n, bool optional, char **ret) {
        _cleanup_free_ char *g = NULL;
        YamlScalarKind kind = yaml_node_scalar_kind(n);
        char *s;

        if (optional && kind == YAML_SCALAR_NULL) {
                *ret = NULL;
                return 0;
        }
        if (!yaml_node_is_string(n)) {
                g = config_got(p, n);
                if (!g)
                        return -ENOMEM;
                if (kind == YAML_SCALAR_BOOL || kind == YAML_SCALAR_INT || kind == YAML_SCALAR_FLOAT)
                        return config_fail(p, n, "expected a string, got %s %s (write \"%s\" to use it as text)",
                                           kind == YAML_SCALAR_BOOL ? "the boolean" : "the number", n->scalar,
                                           n->scalar);
                if (kind == YAML_SCALAR_STRING)
                        return config_fail(p, n, "expected a string without NUL bytes, got %s", g);
                return config_fail(p, n, "expected a string, got %s", g);
        }
        s = strdup(n->scalar);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int config_check_exact(ConfigParser *p, const YamlNode *v, const char *s, const char *want) {
        _cleanup_free_ char *g = NULL;

        if (streq(s, want))
                return 0;
        g = config_got(p, v);
        if (!g)
                return -ENOMEM;
        return config_fail(p, v, "expected \"%s\", got %s", want, g);
}

int config_get_exact(ConfigParser *p, const YamlNode *m, const char *key, const char *want) {
        _cleanup_free_ char *s = NULL;
        const YamlNode *v = NULL;
        int r;

        r = config_require_key(p, m, key, &v);
        if (r < 0)
                return r;
        r = config_get_string(p, v, false, &s);
        if (r < 0)
                return r;
        return config_check_exact(p, v, s, want);
}

int config_check_header(ConfigParser *p, const YamlNode *root, const char *what, const char *const *known,
                        size_t n_known, const char *kind) {
        int r;

        r = config_expect_mapping(p, root, what);
        if (r < 0)
                return r;
        r = config_check_keys(p, root, known, n_known);
        if (r < 0)
                return r;
        r = config_get_exact(p, root, "apiVersion", CONFIG_API_VERSION);
        if (r < 0)
                return r;
        return config_get_exact(p, root, "kind", kind);
}

/* Paths */

static int path_normalize(const char *abs, char **ret) {
        _cleanup_free_ char *out = NULL;
        size_t n = 0, len = strlen(abs);
        const char *s = abs;

        assert(abs[0] == '/');

        out = malloc(len + 2);
        if (!out)
                return -ENOMEM;
        while (*s) {
                size_t k;

                s += strspn(s, "/");
                k = strcspn(s, "/");
                if (k == 0 || (k == 1 && s[0] == '.')) {
                        s += k;
                        continue;
                }
                out[n++] = '/';
                memcpy(out + n, s, k);
                n += k;
                s += k;
        }
        if (n == 0)
                out[n++] = '/';
        out[n] = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

int config_path_join(const char *dir, const char *path, char **ret) {
        _cleanup_free_ char *joined = NULL;

        if (path[0] == '/')
                return path_normalize(path, ret);
        if (asprintf(&joined, "%s/%s", dir, path) < 0) {
                joined = NULL;
                return -ENOMEM;
        }
        return path_normalize(joined, ret);
}

int config_path_make_absolute(const char *path, char **ret) {
        _cleanup_free_ char *cwd = NULL;

        if (path[0] == '/')
                return path_normalize(path, ret);
        cwd = getcwd(NULL, 0);
        if (!cwd)
                return negative_errno();
        return config_path_join(cwd, path, ret);
}

static int path_dirname(const char *abs, char **ret) {
        const char *slash = strrchr(abs, '/');
        char *d;

        assert(slash);
        d = slash == abs ? strdup("/") : strndup(abs, (size_t) (slash - abs));
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

int config_read_file(const char *path, char **ret, size_t *ret_size) {
        return read_file_at_most(path, CONFIG_SIZE_MAX + 1, ret, ret_size);
}

int config_make_absolute(const char *path, char **ret, char **ret_error) {
        int r;

        r = config_path_make_absolute(path, ret);
        if (r < 0 && r != -ENOMEM &&
            asprintf(ret_error, "%s: cannot make the path absolute: %s", path, strerror(-r)) < 0)
                *ret_error = NULL;
        return r;
}

int config_parse_begin(const char *path, const char *data, size_t size, YamlNode **ret_root, char **ret_abs,
                       char **ret_dir, char **ret_error) {
        _cleanup_free_ char *abs = NULL, *dir = NULL, *yaml_error = NULL;
        int r;

        assert(path);
        assert(data || size == 0);
        assert(ret_root);
        assert(ret_abs);
        assert(ret_dir);
        assert(ret_error);

        *ret_error = NULL;

        /* Messages name the file by its absolute path, and relative paths in it are resolved against it. */
        r = config_make_absolute(path, &abs, ret_error);
        if (r < 0)
                return r;
        r = path_dirname(abs, &dir);
        if (r < 0)
                return r;

        if (size > CONFIG_SIZE_MAX) {
                if (asprintf(ret_error, "%s: larger than 1 MiB, refusing to parse it", abs) < 0)
                        *ret_error = NULL;
                return -EFBIG;
        }

        r = yaml_tree_parse(data, size, ret_root, &yaml_error);
        if (r < 0) {
                if (yaml_error && asprintf(ret_error, "%s:%s", abs, yaml_error) < 0)
                        *ret_error = NULL;
                return r;
        }
        *ret_abs = TAKE_PTR(abs);
        *ret_dir = TAKE_PTR(dir);
        return 0;
}

/* Addresses */

bool config_port_is_valid(const char *s, unsigned min) {
        uint64_t u;

        if (!s || (s[0] == '0' && s[1] != 0) || parse_uint64(s, &u) < 0)
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

bool config_ipv4_is_valid(const char *s, size_t len) {
        return inet_is_valid(AF_INET, s, len);
}

bool config_ipv6_is_valid(const char *s, size_t len) {
        return inet_is_valid(AF_INET6, s, len);
}

bool config_host_name_is_valid(const char *s, size_t len) {
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

bool config_split_host_port(const char *s, const char **ret_host, size_t *ret_host_len, bool *ret_bracketed,
                            const char **ret_port) {
        const char *colon;

        if (s[0] == '[') {
                const char *close = strchr(s, ']');

                if (!close || close[1] != ':')
                        return false;
                *ret_host = s + 1;
                *ret_host_len = (size_t) (close - s - 1);
                *ret_bracketed = true;
                *ret_port = close + 2;
                return true;
        }
        colon = strrchr(s, ':');
        if (!colon)
                return false;
        *ret_host = s;
        *ret_host_len = (size_t) (colon - s);
        *ret_bracketed = false;
        *ret_port = colon + 1;
        return true;
}

bool endpoint_is_valid(const char *s) {
        const char *host, *port;
        size_t len;
        bool bracketed;

        if (!s || !config_split_host_port(s, &host, &len, &bracketed, &port) || !config_port_is_valid(port, 1))
                return false;
        if (bracketed)
                return config_ipv6_is_valid(host, len);
        return config_ipv4_is_valid(host, len) || config_host_name_is_valid(host, len);
}

bool listen_address_is_valid(const char *s) {
        const char *host, *port;
        size_t len;
        bool bracketed;

        if (!s || !config_split_host_port(s, &host, &len, &bracketed, &port) || !config_port_is_valid(port, 0))
                return false;
        if (bracketed)
                return config_ipv6_is_valid(host, len);
        return len == 0 || config_ipv4_is_valid(host, len);
}
