/* Client configuration: the ClientConfig YAML that tells jmp where the controller is and who it is */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "client-config.h"
#include "config.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "yaml-tree.h"

#define CLIENT_CONFIG_SIZE_MAX (1024 * 1024)
#define CA_FILE_SIZE_MAX (1024 * 1024)
#define TOKEN_LENGTH_MAX 8192
#define QUOTE_MAX 64

ClientConfig *client_config_free(ClientConfig *c) {
        if (!c)
                return NULL;
        free(c->path);
        free(c->name);
        free(c->namespace);
        free(c->endpoint);
        free(c->ca_pem);
        if (c->token)
                explicit_bzero(c->token, strlen(c->token));
        free(c->token);
        free(c);
        return NULL;
}

bool bearer_token_is_valid(const char *s) {
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > TOKEN_LENGTH_MAX)
                return false;
        /* It goes into an HTTP header: nothing that could end the line or start another field. */
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

char *yaml_quote_string(const char *s) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if (*p < 0x20 || *p == 0x7f)
                                fprintf(f, "\\x%02x", *p);
                        else
                                fputc(*p, f);
                }
        fputc('"', f);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static int fsync_directory_of(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        _cleanup_close_ int fd = -EBADF;
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash)
                strcpy(dir, ".");
        else if (slash == dir)
                dir[1] = 0;
        else
                *slash = 0;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

int write_file_atomic(const char *path, const char *data, size_t size, mode_t mode) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r = 0;

        assert(path);
        assert(data || size == 0);

        /* Renaming over a directory or a device would not do what the caller means. */
        if (stat(path, &st) >= 0 && !S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EEXIST;

        if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                free(TAKE_PTR(tmp));
                return negative_errno();
        }
        if (fchmod(fd, mode) < 0)
                r = negative_errno();
        for (size_t done = 0; r >= 0 && done < size;) {
                ssize_t k = write(fd, data + done, size - done);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        r = negative_errno();
                else
                        done += (size_t) k;
        }
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        return fsync_directory_of(path);
}

int client_config_format(const ClientConfig *c, char **ret) {
        _cleanup_free_ char *name = NULL, *ns = NULL, *endpoint = NULL, *ca = NULL, *token = NULL;
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        assert(c);
        assert(ret);

        if (!c->name || !c->endpoint || !c->token)
                return -EINVAL;
        name = yaml_quote_string(c->name);
        ns = yaml_quote_string(c->namespace ?: "default");
        endpoint = yaml_quote_string(c->endpoint);
        token = yaml_quote_string(c->token);
        ca = c->ca_pem ? yaml_quote_string(c->ca_pem) : NULL;
        if (!name || !ns || !endpoint || !token || (c->ca_pem && !ca))
                return -ENOMEM;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f,
                "apiVersion: " CLIENT_CONFIG_API_VERSION "\n"
                "kind: " CLIENT_CONFIG_KIND "\n"
                "metadata:\n"
                "  name: %s\n"
                "  namespace: %s\n"
                "endpoint: %s\n",
                name, ns, endpoint);
        if (ca || c->insecure)
                fprintf(f, "tls:\n%s%s%s  insecure: %s\n", ca ? "  ca: " : "", strempty(ca), ca ? "\n" : "",
                        c->insecure ? "true" : "false");
        fprintf(f, "token: %s\n", token);
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

int client_config_write(const ClientConfig *c, const char *path) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = client_config_format(c, &text);
        if (r < 0)
                return r;
        r = write_file_atomic(path, text, strlen(text), 0600);
        explicit_bzero(text, strlen(text));
        return r;
}

typedef struct Parser {
        const char *path; /* absolute */
        const char *dir;
        char *error;
} Parser;

static char *quote(const char *s, size_t len) {
        _cleanup_free_ char *cut = strndup(s, MIN(len, (size_t) QUOTE_MAX));
        char *q, *r = NULL;

        if (!cut)
                return NULL;
        q = yaml_quote_string(cut);
        if (q && len > QUOTE_MAX && asprintf(&r, "%s...", q) >= 0) {
                free(q);
                return r;
        }
        return q;
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

        if (p->error)
                return -EINVAL;
        r = yaml_node_path(at, &path);
        if (r < 0)
                return r;
        /* An empty value ("token:") has no position of its own worth showing; its key has. */
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

static int expect_mapping(Parser *p, const YamlNode *n, const char *what) {
        _cleanup_free_ char *g = NULL;

        if (n->type == YAML_NODE_MAPPING)
                return 0;
        g = got(n);
        if (!g)
                return -ENOMEM;
        return fail(p, n, "expected a mapping%s%s, got %s", what ? " " : "", strempty(what), g);
}

static int check_keys(Parser *p, const YamlNode *m, const char *const *known, const char *list) {
        for (size_t i = 0; i < m->n_pairs; i++) {
                const YamlNode *k = m->pairs[i].key;
                bool found = false;

                for (const char *const *s = known; *s && !found; s++)
                        found = strlen(*s) == k->scalar_len && streq(*s, k->scalar);
                if (!found)
                        return fail(p, k, "unknown key (known: %s)", list);
        }
        return 0;
}

static int require_key(Parser *p, const YamlNode *m, const char *key, const YamlNode **ret) {
        const YamlNode *v = yaml_node_get(m, key);

        if (!v)
                return fail(p, m, "missing required key \"%s\"", key);
        *ret = v;
        return 0;
}

static int get_string(Parser *p, const YamlNode *n, bool optional, char **ret) {
        _cleanup_free_ char *g = NULL;
        YamlScalarKind kind = yaml_node_scalar_kind(n);
        char *s;

        if (optional && kind == YAML_SCALAR_NULL) {
                *ret = NULL;
                return 0;
        }
        if (!yaml_node_is_string(n)) {
                g = got(n);
                if (!g)
                        return -ENOMEM;
                if (kind == YAML_SCALAR_BOOL || kind == YAML_SCALAR_INT || kind == YAML_SCALAR_FLOAT)
                        return fail(p, n, "expected a string, got %s %s (write \"%s\" to use it as text)",
                                    kind == YAML_SCALAR_BOOL ? "the boolean" : "the number", n->scalar,
                                    n->scalar);
                if (kind == YAML_SCALAR_STRING)
                        return fail(p, n, "expected a string without NUL bytes, got %s", g);
                return fail(p, n, "expected a string, got %s", g);
        }
        s = strdup(n->scalar);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int get_exact(Parser *p, const YamlNode *m, const char *key, const char *want) {
        _cleanup_free_ char *s = NULL, *g = NULL;
        const YamlNode *v = NULL;
        int r;

        r = require_key(p, m, key, &v);
        if (r < 0)
                return r;
        r = get_string(p, v, false, &s);
        if (r < 0)
                return r;
        if (streq(s, want))
                return 0;
        g = got(v);
        if (!g)
                return -ENOMEM;
        return fail(p, v, "expected \"%s\", got %s", want, g);
}

static int parse_metadata(Parser *p, const YamlNode *m, ClientConfig *c) {
        static const char *const known[] = { "name", "namespace", "labels", NULL };
        const YamlNode *v = NULL;
        int r;

        r = expect_mapping(p, m, "with name and namespace");
        if (r < 0)
                return r;
        r = check_keys(p, m, known, "name, namespace, labels");
        if (r < 0)
                return r;
        r = require_key(p, m, "name", &v);
        if (r < 0)
                return r;
        r = get_string(p, v, false, &c->name);
        if (r < 0)
                return r;
        if (!dut_name_is_valid(c->name)) {
                _cleanup_free_ char *q = quote(v->scalar, v->scalar_len);

                return q ? fail(p, v, "invalid client name %s: use [a-z0-9][a-z0-9-]{0,62}", q) : -ENOMEM;
        }
        v = yaml_node_get(m, "namespace");
        if (v) {
                r = get_string(p, v, true, &c->namespace);
                if (r < 0)
                        return r;
                if (c->namespace && !dut_name_is_valid(c->namespace)) {
                        _cleanup_free_ char *q = quote(v->scalar, v->scalar_len);

                        return q ? fail(p, v, "invalid namespace %s: use [a-z0-9][a-z0-9-]{0,62}", q) : -ENOMEM;
                }
        }
        /* labels: informational only (the controller holds the client's real labels). */
        v = yaml_node_get(m, "labels");
        if (v && !yaml_node_is_null(v))
                return expect_mapping(p, v, "of label keys to values");
        return 0;
}

static int read_file_bounded(const char *path, size_t max, char **ret) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0;

        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        for (;;) {
                ssize_t k = read(fd, buf + n, max + 1 - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max)
                        return -EFBIG;
        }
        if (memchr(buf, 0, n))
                return -EBADMSG;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        return (int) MIN(n, (size_t) INT_MAX);
}

/* At least one certificate, and nothing but certificates that parse. */
static int pem_certificates_check(const char *pem) {
        BIO *bio = BIO_new_mem_buf(pem, -1);
        unsigned n = 0;
        X509 *x;

        if (!bio)
                return -ENOMEM;
        while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
                X509_free(x);
                n++;
        }
        BIO_free(bio);
        /* The loop ends with "no start line" after the last certificate: that is the normal end. */
        ERR_clear_error();
        return n > 0 ? 0 : -EBADMSG;
}

static int parse_tls(Parser *p, const YamlNode *m, ClientConfig *c) {
        static const char *const known[] = { "ca", "insecure", NULL };
        _cleanup_free_ char *ca = NULL;
        const YamlNode *v;
        int r;

        if (yaml_node_is_null(m))
                return 0;
        r = expect_mapping(p, m, "with ca and insecure");
        if (r < 0)
                return r;
        r = check_keys(p, m, known, "ca, insecure");
        if (r < 0)
                return r;

        v = yaml_node_get(m, "insecure");
        if (v && !yaml_node_is_null(v)) {
                if (yaml_node_scalar_kind(v) != YAML_SCALAR_BOOL) {
                        _cleanup_free_ char *g = got(v);

                        return g ? fail(p, v, "expected true or false, got %s", g) : -ENOMEM;
                }
                r = parse_boolean(v->scalar, &c->insecure);
                if (r < 0)
                        return fail(p, v, "expected true or false");
        }

        v = yaml_node_get(m, "ca");
        if (!v)
                return 0;
        r = get_string(p, v, true, &ca);
        if (r < 0 || !ca)
                return r;
        if (!*ca)
                return fail(p, v, "expected a PEM certificate or the path of one, got nothing");

        if (strncmp(ca + strspn(ca, " \t\r\n"), "-----BEGIN", 10) == 0) {
                if (pem_certificates_check(ca) < 0)
                        return fail(p, v, "not a PEM certificate (or one that does not parse)");
                c->ca_pem = TAKE_PTR(ca);
                return 0;
        }

        {
                _cleanup_free_ char *file = NULL, *pem = NULL;

                if (ca[0] == '/')
                        file = strdup(ca);
                else if (asprintf(&file, "%s/%s", p->dir, ca) < 0)
                        file = NULL;
                if (!file)
                        return -ENOMEM;
                r = read_file_bounded(file, CA_FILE_SIZE_MAX, &pem);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail(p, v, "cannot read the CA file %s: %s", file,
                                    r == -EFBIG ? "larger than 1 MiB" : r == -EBADMSG ? "not text" : strerror(-r));
                if (pem_certificates_check(pem) < 0)
                        return fail(p, v, "%s holds no PEM certificate (or one that does not parse)", file);
                c->ca_pem = TAKE_PTR(pem);
        }
        return 0;
}

static int parse_root(Parser *p, const YamlNode *root, ClientConfig *c) {
        static const char *const known[] = { "apiVersion", "kind", "metadata", "endpoint", "tls", "token", NULL };
        const YamlNode *v = NULL;
        int r;

        r = expect_mapping(p, root, "with apiVersion, kind, metadata, endpoint, tls and token");
        if (r < 0)
                return r;
        r = check_keys(p, root, known, "apiVersion, kind, metadata, endpoint, tls, token");
        if (r < 0)
                return r;
        r = get_exact(p, root, "apiVersion", CLIENT_CONFIG_API_VERSION);
        if (r < 0)
                return r;
        r = get_exact(p, root, "kind", CLIENT_CONFIG_KIND);
        if (r < 0)
                return r;

        r = require_key(p, root, "metadata", &v);
        if (r < 0)
                return r;
        r = parse_metadata(p, v, c);
        if (r < 0)
                return r;

        r = require_key(p, root, "endpoint", &v);
        if (r < 0)
                return r;
        r = get_string(p, v, false, &c->endpoint);
        if (r < 0)
                return r;
        if (!endpoint_is_valid(c->endpoint)) {
                _cleanup_free_ char *q = quote(v->scalar, v->scalar_len);

                return q ? fail(p, v, "invalid endpoint %s: use HOST:PORT or [IPV6]:PORT, such as \"192.0.2.10:8443\"",
                                q)
                         : -ENOMEM;
        }

        v = yaml_node_get(root, "tls");
        if (v) {
                r = parse_tls(p, v, c);
                if (r < 0)
                        return r;
        }

        r = require_key(p, root, "token", &v);
        if (r < 0)
                return r;
        r = get_string(p, v, false, &c->token);
        if (r < 0)
                return r;
        if (!bearer_token_is_valid(c->token))
                /* Never quote the token: a message may end up in a log. */
                return fail(p, v, "invalid token: expected up to 8192 characters of base64url and dots");
        return 0;
}

static int make_absolute(const char *path, char **ret) {
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

int client_config_parse(const char *path, const char *data, size_t size, ClientConfig **ret, char **ret_error) {
        _cleanup_(client_config_freep) ClientConfig *c = NULL;
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

        r = make_absolute(path, &abs);
        if (r < 0) {
                if (r != -ENOMEM &&
                    asprintf(ret_error, "%s: cannot make the path absolute: %s", path, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        dir = strdup(abs);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash == dir)
                dir[1] = 0;
        else
                *slash = 0;

        if (size > CLIENT_CONFIG_SIZE_MAX) {
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

        c = calloc(1, sizeof(ClientConfig));
        if (!c)
                return -ENOMEM;
        p = (Parser) { .path = abs, .dir = dir };
        r = parse_root(&p, root, c);
        if (r < 0) {
                log_debug("Client config %s: %s", abs, strna(p.error));
                *ret_error = p.error;
                return r;
        }
        c->path = TAKE_PTR(abs);
        *ret = TAKE_PTR(c);
        return 0;
}

int client_config_load(const char *path, ClientConfig **ret, char **ret_error) {
        _cleanup_free_ char *abs = NULL, *buf = NULL;
        int r;

        assert(path);
        assert(ret);
        assert(ret_error);

        *ret_error = NULL;
        r = make_absolute(path, &abs);
        if (r < 0)
                return r;
        r = read_file_bounded(abs, CLIENT_CONFIG_SIZE_MAX, &buf);
        if (r < 0) {
                if (r != -ENOMEM &&
                    asprintf(ret_error, "%s: cannot read: %s", abs,
                             r == -EFBIG ? "larger than 1 MiB" : r == -EBADMSG ? "not a text file" : strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        return client_config_parse(abs, buf, (size_t) r, ret, ret_error);
}
