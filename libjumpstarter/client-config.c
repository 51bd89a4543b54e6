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
#include "config-parse.h"
#include "config.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "yaml-tree.h"

#define CA_FILE_SIZE_MAX (1024 * 1024)
#define TOKEN_LENGTH_MAX 8192

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

static char *quote(const char *s, size_t len) {
        return config_quote(s, len, /* short_escapes= */ true);
}

static int parse_metadata(ConfigParser *p, const YamlNode *m, ClientConfig *c) {
        static const char *const known[] = { "name", "namespace", "labels" };
        const YamlNode *v = NULL;
        int r;

        r = config_expect_mapping(p, m, "with name and namespace");
        if (r < 0)
                return r;
        r = config_check_keys(p, m, known, ELEMENTSOF(known));
        if (r < 0)
                return r;
        r = config_require_key(p, m, "name", &v);
        if (r < 0)
                return r;
        r = config_get_string(p, v, false, &c->name);
        if (r < 0)
                return r;
        if (!dut_name_is_valid(c->name)) {
                _cleanup_free_ char *q = quote(v->scalar, v->scalar_len);

                return q ? config_fail(p, v, "invalid client name %s: use [a-z0-9][a-z0-9-]{0,62}", q) : -ENOMEM;
        }
        v = yaml_node_get(m, "namespace");
        if (v) {
                r = config_get_string(p, v, true, &c->namespace);
                if (r < 0)
                        return r;
                if (c->namespace && !dut_name_is_valid(c->namespace)) {
                        _cleanup_free_ char *q = quote(v->scalar, v->scalar_len);

                        return q ? config_fail(p, v, "invalid namespace %s: use [a-z0-9][a-z0-9-]{0,62}", q) : -ENOMEM;
                }
        }
        /* labels: informational only (the controller holds the client's real labels). */
        v = yaml_node_get(m, "labels");
        if (v && !yaml_node_is_null(v))
                return config_expect_mapping(p, v, "of label keys to values");
        return 0;
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

static int parse_tls(ConfigParser *p, const YamlNode *m, ClientConfig *c) {
        static const char *const known[] = { "ca", "insecure" };
        _cleanup_free_ char *ca = NULL;
        const YamlNode *v;
        int r;

        if (yaml_node_is_null(m))
                return 0;
        r = config_expect_mapping(p, m, "with ca and insecure");
        if (r < 0)
                return r;
        r = config_check_keys(p, m, known, ELEMENTSOF(known));
        if (r < 0)
                return r;

        v = yaml_node_get(m, "insecure");
        if (v && !yaml_node_is_null(v)) {
                if (yaml_node_scalar_kind(v) != YAML_SCALAR_BOOL) {
                        _cleanup_free_ char *g = config_got(p, v);

                        return g ? config_fail(p, v, "expected true or false, got %s", g) : -ENOMEM;
                }
                r = parse_boolean(v->scalar, &c->insecure);
                if (r < 0)
                        return config_fail(p, v, "expected true or false");
        }

        v = yaml_node_get(m, "ca");
        if (!v)
                return 0;
        r = config_get_string(p, v, true, &ca);
        if (r < 0 || !ca)
                return r;
        if (!*ca)
                return config_fail(p, v, "expected a PEM certificate or the path of one, got nothing");

        if (strncmp(ca + strspn(ca, " \t\r\n"), "-----BEGIN", 10) == 0) {
                if (pem_certificates_check(ca) < 0)
                        return config_fail(p, v, "not a PEM certificate (or one that does not parse)");
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
                        return config_fail(p, v, "cannot read the CA file %s: %s", file,
                                    r == -EFBIG ? "larger than 1 MiB" : r == -EBADMSG ? "not text" : strerror(-r));
                if (pem_certificates_check(pem) < 0)
                        return config_fail(p, v, "%s holds no PEM certificate (or one that does not parse)", file);
                c->ca_pem = TAKE_PTR(pem);
        }
        return 0;
}

static int parse_root(ConfigParser *p, const YamlNode *root, ClientConfig *c) {
        static const char *const known[] = { "apiVersion", "kind", "metadata", "endpoint", "tls", "token" };
        const YamlNode *v = NULL;
        int r;

        r = config_check_header(p, root, "with apiVersion, kind, metadata, endpoint, tls and token", known, ELEMENTSOF(known), CLIENT_CONFIG_KIND);
        if (r < 0)
                return r;

        r = config_require_key(p, root, "metadata", &v);
        if (r < 0)
                return r;
        r = parse_metadata(p, v, c);
        if (r < 0)
                return r;

        r = config_require_key(p, root, "endpoint", &v);
        if (r < 0)
                return r;
        r = config_get_string(p, v, false, &c->endpoint);
        if (r < 0)
                return r;
        if (!endpoint_is_valid(c->endpoint)) {
                _cleanup_free_ char *q = quote(v->scalar, v->scalar_len);

                return q ? config_fail(p, v, "invalid endpoint %s: use HOST:PORT or [IPV6]:PORT, such as \"192.0.2.10:8443\"",
                                q)
                         : -ENOMEM;
        }

        v = yaml_node_get(root, "tls");
        if (v) {
                r = parse_tls(p, v, c);
                if (r < 0)
                        return r;
        }

        r = config_require_key(p, root, "token", &v);
        if (r < 0)
                return r;
        r = config_get_string(p, v, false, &c->token);
        if (r < 0)
                return r;
        if (!bearer_token_is_valid(c->token))
                /* Never quote the token: a message may end up in a log. */
                return config_fail(p, v, "invalid token: expected up to 8192 characters of base64url and dots");
        return 0;
}

int client_config_parse(const char *path, const char *data, size_t size, ClientConfig **ret, char **ret_error) {
        _cleanup_(client_config_freep) ClientConfig *c = NULL;
        _cleanup_(yaml_node_freep) YamlNode *root = NULL;
        _cleanup_free_ char *abs = NULL, *dir = NULL;
        ConfigParser p = {};
        int r;

        assert(ret);

        r = config_parse_begin(path, data, size, &root, &abs, &dir, ret_error);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(ClientConfig));
        if (!c)
                return -ENOMEM;
        p = (ConfigParser) { .path = abs, .dir = dir, .short_escapes = true };
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
        r = config_path_make_absolute(path, &abs);
        if (r < 0)
                return r;
        r = read_file_bounded(abs, CONFIG_SIZE_MAX, &buf);
        if (r < 0) {
                if (r != -ENOMEM &&
                    asprintf(ret_error, "%s: cannot read: %s", abs,
                             r == -EFBIG ? "larger than 1 MiB" : r == -EBADMSG ? "not a text file" : strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        return client_config_parse(abs, buf, (size_t) r, ret, ret_error);
}
