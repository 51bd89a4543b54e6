/* Exporter configuration: the ExporterConfig YAML, validated before anything starts */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-parse.h"
#include "hooks-config.h"
#include "config.h"
#include "controller-config.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "token.h"
#include "yaml-tree.h"

#define CONFIG_KIND "ExporterConfig"

static const char *const driver_class_table[_DRIVER_CLASS_MAX] = {
        [DRIVER_CLASS_POWER] = "power",
        [DRIVER_CLASS_SERIAL] = "serial",
        [DRIVER_CLASS_STORAGE] = "storage",
};

const char *driver_class_to_string(DriverClass c) {
        if (c < 0 || c >= _DRIVER_CLASS_MAX)
                return NULL;
        return driver_class_table[c];
}

DriverClass driver_class_from_string(const char *s) {
        if (!s)
                return _DRIVER_CLASS_INVALID;
        for (DriverClass c = 0; c < _DRIVER_CLASS_MAX; c++)
                if (streq(driver_class_table[c], s))
                        return c;
        return _DRIVER_CLASS_INVALID;
}

static bool char_in(char c, const char *set) {
        return c != 0 && strchr(set, c);
}

#define LOWER_DIGITS "abcdefghijklmnopqrstuvwxyz0123456789"
#define ALNUM LOWER_DIGITS "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

/* first and last from edge, the ones between from middle, 1..max characters. */
static bool name_matches(const char *s, size_t len, size_t max, const char *edge, const char *middle) {
        if (len == 0 || len > max)
                return false;
        if (!char_in(s[0], edge) || !char_in(s[len - 1], edge))
                return false;
        for (size_t i = 1; i + 1 < len; i++)
                if (!char_in(s[i], middle))
                        return false;
        return true;
}

/* The first character from first, the others from rest, 1..max characters. */
static bool name_starts_with(const char *name, size_t max, const char *first, const char *rest) {
        size_t len;

        if (!name)
                return false;
        len = strlen(name);
        if (len == 0 || len > max || !char_in(name[0], first))
                return false;
        for (size_t i = 1; i < len; i++)
                if (!char_in(name[i], rest))
                        return false;
        return true;
}

bool dut_name_is_valid(const char *name) {
        return name_starts_with(name, 63, LOWER_DIGITS, LOWER_DIGITS "-");
}

bool gpio_line_name_is_valid(const char *name) {
        return name_starts_with(name, 32, LOWER_DIGITS, LOWER_DIGITS "_-");
}

const GpioLineConfig *dut_config_find_gpio_line(const DutConfig *d, const char *name) {
        if (!d || !name)
                return NULL;
        for (size_t i = 0; i < d->n_gpio_lines; i++)
                if (streq(d->gpio_lines[i].name, name))
                        return &d->gpio_lines[i];
        return NULL;
}

/* "IP" or "IP:PORT" (an IPv6 address bare or in brackets, and in brackets with a port). */
static bool advertise_address_is_valid(const char *s) {
        const char *host, *port;
        size_t len;
        bool bracketed;

        if (config_ipv4_is_valid(s, strlen(s)) || config_ipv6_is_valid(s, strlen(s)))
                return true;
        if (s[0] == '[' && s[strlen(s) - 1] == ']')
                return config_ipv6_is_valid(s + 1, strlen(s) - 2);
        if (!config_split_host_port(s, &host, &len, &bracketed, &port) || !config_port_is_valid(port, 1))
                return false;
        return bracketed ? config_ipv6_is_valid(host, len) : config_ipv4_is_valid(host, len);
}

/* A JWT as it may travel in an HTTP header: three non-empty base64url parts joined by dots. */
static bool token_is_valid(const char *s) {
        size_t len = strlen(s), dots = 0, part = 0;

        if (len > TOKEN_SIZE_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '.') {
                        if (part == 0)
                                return false;
                        dots++;
                        part = 0;
                } else if (char_in(s[i], ALNUM "-_"))
                        part++;
                else
                        return false;
        }
        return dots == 2 && part > 0;
}

/* metadata.name: a Kubernetes object name, [a-z0-9]([a-z0-9-.]*[a-z0-9])? */
static bool object_name_is_valid(const char *s) {
        return name_matches(s, strlen(s), 253, LOWER_DIGITS, LOWER_DIGITS "-.");
}

/* RFC 1123 label, as Kubernetes namespaces are. */
static bool dns_label_is_valid(const char *s, size_t len) {
        return name_matches(s, len, 63, LOWER_DIGITS, LOWER_DIGITS "-");
}

static bool dns_subdomain_is_valid(const char *s, size_t len) {
        size_t start = 0;

        if (len == 0 || len > 253)
                return false;
        for (size_t i = 0; i <= len; i++)
                if (i == len || s[i] == '.') {
                        if (!dns_label_is_valid(s + start, i - start))
                                return false;
                        start = i + 1;
                }
        return true;
}

static bool label_name_is_valid(const char *s, size_t len) {
        return name_matches(s, len, 63, ALNUM, ALNUM "-_.");
}

static bool label_key_is_valid(const char *key) {
        const char *slash = strchr(key, '/');

        if (!slash)
                return label_name_is_valid(key, strlen(key));
        return dns_subdomain_is_valid(key, (size_t) (slash - key)) &&
               label_name_is_valid(slash + 1, strlen(slash + 1));
}

static bool label_value_is_valid(const char *value) {
        return value[0] == 0 || label_name_is_valid(value, strlen(value));
}

static void labels_free(Label *l, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(l[i].key);
                free(l[i].value);
        }
        free(l);
}

static DriverConfig *driver_config_free(DriverConfig *d) {
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_values; i++) {
                free(d->values[i].string);
                for (char **s = d->values[i].strv; s && *s; s++)
                        free(*s);
                free(d->values[i].strv);
        }
        free(d->values);
        free(d);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(DriverConfig *, driver_config_free);

static void dut_config_done(DutConfig *d) {
        free(d->name);
        labels_free(d->labels, d->n_labels);
        free(d->description);
        for (size_t i = 0; i < d->n_drivers; i++)
                driver_config_free(d->drivers[i]);
        free(d->drivers);
        for (size_t i = 0; i < d->n_gpio_lines; i++) {
                free(d->gpio_lines[i].name);
                driver_config_free(d->gpio_lines[i].driver);
        }
        free(d->gpio_lines);
        dut_hooks_free(d->hooks);
        *d = (DutConfig) {};
}

ExporterConfig *exporter_config_free(ExporterConfig *c) {
        if (!c)
                return NULL;
        free(c->path);
        free(c->name);
        free(c->namespace);
        labels_free(c->labels, c->n_labels);
        for (size_t i = 0; i < c->n_duts; i++)
                dut_config_done(&c->duts[i]);
        free(c->duts);
        free(c->endpoint);
        free(c->token);
        free(c->tls_ca);
        free(c->tls_ca_path);
        free(c->streams_listen);
        free(c->streams_advertise);
        free(c->metrics_listen);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(ExporterConfig *, exporter_config_free);

const DutConfig *exporter_config_find_dut(const ExporterConfig *c, const char *name) {
        if (!c || !name)
                return NULL;
        for (size_t i = 0; i < c->n_duts; i++)
                if (streq(c->duts[i].name, name))
                        return &c->duts[i];
        return NULL;
}

static const OptionValue *driver_config_value(const DriverConfig *c, const char *name) {
        assert(c);
        assert(name);

        for (size_t i = 0; i < c->n_values; i++)
                if (streq(c->values[i].spec->name, name))
                        return &c->values[i];
        assert(!"option name not declared by the driver type");
        return NULL;
}

const char *driver_config_get_string(const DriverConfig *c, const char *name) {
        const OptionValue *v = driver_config_value(c, name);

        if (!v)
                return NULL;
        assert(v->spec->type == OPTION_STRING || v->spec->type == OPTION_PATH);
        return v->set ? v->string : NULL;
}

uint64_t driver_config_get_u64(const DriverConfig *c, const char *name, uint64_t def) {
        const OptionValue *v = driver_config_value(c, name);

        if (!v)
                return def;
        assert(v->spec->type == OPTION_SIZE || v->spec->type == OPTION_DURATION || v->spec->type == OPTION_UINT);
        return v->set ? v->number : def;
}

bool driver_config_get_bool(const DriverConfig *c, const char *name, bool def) {
        const OptionValue *v = driver_config_value(c, name);

        if (!v)
                return def;
        assert(v->spec->type == OPTION_BOOL);
        return v->set ? v->boolean : def;
}

char *const *driver_config_get_strv(const DriverConfig *c, const char *name) {
        const OptionValue *v = driver_config_value(c, name);

        if (!v)
                return NULL;
        assert(v->spec->type == OPTION_ARGV);
        return v->set ? v->strv : NULL;
}

bool driver_config_is_set(const DriverConfig *c, const char *name) {
        const OptionValue *v = driver_config_value(c, name);

        return v && v->set;
}

int driver_config_problem(char **ret_problem, const char **ret_option, const char *option, const char *format,
                          ...) {
        va_list ap;
        int r;

        assert(ret_problem);
        assert(ret_option);
        assert(format);

        va_start(ap, format);
        r = vasprintf(ret_problem, format, ap);
        va_end(ap);
        if (r < 0) {
                *ret_problem = NULL;
                return -ENOMEM;
        }
        *ret_option = option;
        return -EINVAL;
}

static int label_compare(const void *a, const void *b) {
        return strcmp(((const Label *) a)->key, ((const Label *) b)->key);
}

static int parse_labels(ConfigParser *p, const YamlNode *n, Label **ret, size_t *ret_n) {
        Label *labels = NULL;
        size_t k = 0;
        int r;

        r = config_optional_mapping(p, n, "of label keys to values");
        if (r <= 0) {
                *ret = NULL;
                *ret_n = 0;
                return r;
        }
        if (n->n_pairs == 0)
                goto done;

        labels = calloc(n->n_pairs, sizeof(Label));
        if (!labels)
                return -ENOMEM;
        for (; k < n->n_pairs; k++) {
                const YamlNode *key = n->pairs[k].key, *value = n->pairs[k].value;
                _cleanup_free_ char *q = NULL;

                if (strlen(key->scalar) != key->scalar_len || !label_key_is_valid(key->scalar)) {
                        q = config_quote(key->scalar, key->scalar_len, false);
                        r = q ? config_fail(p, key,
                                     "invalid label key %s: use [PREFIX/]NAME, NAME at most 63 characters of "
                                     "[A-Za-z0-9-_.] starting and ending with a letter or digit, PREFIX a "
                                     "DNS subdomain", q)
                              : -ENOMEM;
                        goto fail;
                }
                labels[k].key = strdup(key->scalar);
                if (!labels[k].key) {
                        r = -ENOMEM;
                        goto fail;
                }
                /* "key:" with nothing after it is the empty value, as in Kubernetes. */
                r = config_get_string(p, value, true, &labels[k].value);
                if (r < 0)
                        goto fail;
                if (!labels[k].value) {
                        labels[k].value = strdup("");
                        if (!labels[k].value) {
                                r = -ENOMEM;
                                goto fail;
                        }
                }
                if (!label_value_is_valid(labels[k].value)) {
                        q = config_quote(value->scalar, value->scalar_len, false);
                        r = q ? config_fail(p, value,
                                     "invalid label value %s: use at most 63 characters of [A-Za-z0-9-_.] "
                                     "starting and ending with a letter or digit, or nothing", q)
                              : -ENOMEM;
                        goto fail;
                }
        }
        qsort(labels, k, sizeof(Label), label_compare);
done:
        *ret = labels;
        *ret_n = k;
        return 0;
fail:
        labels_free(labels, n->n_pairs);
        return r;
}

/* base overlaid with own (own wins), sorted by key. Both inputs are sorted with unique keys. */
static int labels_merge(const Label *base, size_t n_base, const Label *own, size_t n_own, Label **ret,
                        size_t *ret_n) {
        Label *m;
        size_t n = 0, i = 0, j = 0;

        if (n_base + n_own == 0) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        m = calloc(n_base + n_own, sizeof(Label));
        if (!m)
                return -ENOMEM;
        while (i < n_base || j < n_own) {
                const Label *from;
                int c;

                if (i >= n_base)
                        c = 1;
                else if (j >= n_own)
                        c = -1;
                else
                        c = strcmp(base[i].key, own[j].key);
                if (c < 0)
                        from = &base[i++];
                else {
                        from = &own[j++];
                        if (c == 0)
                                i++;
                }
                m[n].key = strdup(from->key);
                m[n].value = strdup(from->value);
                n++;
                if (!m[n - 1].key || !m[n - 1].value) {
                        labels_free(m, n);
                        return -ENOMEM;
                }
        }
        *ret = m;
        *ret_n = n;
        return 0;
}

static const char *const option_expectation[_OPTION_TYPE_MAX] = {
        [OPTION_SIZE] = "a size such as 64MiB",
        [OPTION_DURATION] = "a duration such as 300ms",
        [OPTION_UINT] = "a non-negative integer",
        [OPTION_BOOL] = "true or false",
};

/* A range bound as a config would write it: "16MiB", "1us", "65535". */
static void format_bound(OptionType type, uint64_t v, char *buf, size_t size) {
        static const char *const units[] = { "TiB", "GiB", "MiB", "KiB" };

        if (type == OPTION_DURATION) {
                (void) format_duration(buf, size, v);
                return;
        }
        if (type == OPTION_SIZE && v > 0)
                for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                        unsigned shift = 10 * (unsigned) (ELEMENTSOF(units) - i);

                        if (v % (UINT64_C(1) << shift) == 0) {
                                (void) snprintf(buf, size, "%" PRIu64 "%s", v >> shift, units[i]);
                                return;
                        }
                }
        (void) snprintf(buf, size, "%" PRIu64, v);
}

static bool value_allowed(const OptionValue *v) {
        for (const char *const *a = v->spec->values; *a; a++) {
                uint64_t u;

                if (v->spec->type == OPTION_UINT ? parse_uint64(*a, &u) >= 0 && u == v->number
                                                 : streq(*a, v->string))
                        return true;
        }
        return false;
}

/* What OptionSpec.values and .min/.max allow, checked where the value is, so that a bad one never
 * reaches a driver. */
static int check_allowed(ConfigParser *p, const YamlNode *n, const OptionValue *v) {
        const OptionSpec *spec = v->spec;
        bool numeric = spec->type == OPTION_UINT || spec->type == OPTION_SIZE || spec->type == OPTION_DURATION;
        char lo[32], hi[32];

        if (spec->values && (spec->type == OPTION_STRING || spec->type == OPTION_UINT) && !value_allowed(v)) {
                _cleanup_free_ char *q = NULL, *list = NULL;
                size_t k = 0;

                while (spec->values[k])
                        k++;
                list = config_join(spec->values, k);
                if (spec->type == OPTION_UINT)
                        return list ? config_fail(p, n, "%" PRIu64 " is not one of %s", v->number, list) : -ENOMEM;
                q = config_quote(v->string, strlen(v->string), false);
                return q && list ? config_fail(p, n, "%s is not one of %s", q, list) : -ENOMEM;
        }

        if (!numeric || (spec->min == 0 && spec->max == 0))
                return 0;
        if (v->number >= spec->min && (spec->max == 0 || v->number <= spec->max))
                return 0;
        format_bound(spec->type, spec->min, lo, sizeof lo);
        format_bound(spec->type, spec->max, hi, sizeof hi);
        /* Sizes and durations as written ("8MiB", not 8388608): parsing proved them plain text. */
        if (spec->type == OPTION_UINT) {
                if (spec->max == 0)
                        return config_fail(p, n, "%" PRIu64 " is less than the minimum %s", v->number, lo);
                return config_fail(p, n, "%" PRIu64 " is out of range %s..%s", v->number, lo, hi);
        }
        if (spec->max == 0)
                return config_fail(p, n, "%.*s is less than the minimum %s", CONFIG_QUOTE_MAX, n->scalar, lo);
        return config_fail(p, n, "%.*s is out of range %s..%s", CONFIG_QUOTE_MAX, n->scalar, lo, hi);
}

static int parse_option(ConfigParser *p, const YamlNode *n, OptionValue *v) {
        const OptionSpec *spec = v->spec;
        _cleanup_free_ char *s = NULL, *g = NULL;
        int r;

        v->line = n->line;
        v->column = n->column;

        switch (spec->type) {
        case OPTION_STRING:
                r = config_get_string(p, n, false, &v->string);
                break;

        case OPTION_PATH:
                r = config_get_string(p, n, false, &s);
                if (r < 0)
                        return r;
                if (!*s)
                        return config_fail(p, n, "expected a file name, got \"\"");
                r = config_path_join(p->dir, s, &v->string);
                break;

        case OPTION_ARGV:
                /* A sequence only: splitting a string on spaces would invite quoting, and quoting
                 * invites a shell. */
                if (n->type != YAML_NODE_SEQUENCE || n->n_items == 0) {
                        g = config_got(p, n);
                        return g ? config_fail(p, n, "expected a command as a sequence of strings such as "
                                        "[\"/usr/bin/relay\", \"on\"], got %s", g) : -ENOMEM;
                }
                v->strv = calloc(n->n_items + 1, sizeof(char *));
                if (!v->strv)
                        return -ENOMEM;
                for (size_t i = 0; i < n->n_items; i++) {
                        r = config_get_string(p, n->items[i], false, &v->strv[i]);
                        if (r < 0)
                                return r;
                }
                if (!v->strv[0][0])
                        return config_fail(p, n->items[0], "expected a program name, got \"\"");
                break;

        default:
                /* Numbers may be written plain (4096, 1.5) or quoted; the text is what counts. */
                if (n->type != YAML_NODE_SCALAR || strlen(n->scalar) != n->scalar_len) {
                        r = -EINVAL;
                        break;
                }
                if (spec->type == OPTION_SIZE)
                        r = parse_size(n->scalar, &v->number);
                else if (spec->type == OPTION_DURATION)
                        r = parse_duration(n->scalar, &v->number);
                else if (spec->type == OPTION_UINT)
                        r = parse_uint64(n->scalar, &v->number);
                else
                        r = parse_boolean(n->scalar, &v->boolean);
                if (r == -ERANGE) {
                        g = config_got(p, n);
                        return g ? config_fail(p, n, "%s is too large", g) : -ENOMEM;
                }
                break;
        }
        if (r == -EINVAL && !p->error) {
                g = config_got(p, n);
                return g ? config_fail(p, n, "expected %s, got %s", option_expectation[spec->type], g) : -ENOMEM;
        }
        if (r < 0)
                return r;
        r = check_allowed(p, n, v);
        if (r < 0)
                return r;
        v->set = true;
        return 0;
}

static int known_options(const DriverType *t, char **ret) {
        const char *names[64];
        size_t n = 0;

        for (const OptionSpec *o = t->options; o && o->name && n < ELEMENTSOF(names); o++)
                names[n++] = o->name;
        *ret = config_join(names, n);
        return *ret ? 0 : -ENOMEM;
}

static char *classes_of(const DriverType *t) {
        const char *names[_DRIVER_CLASS_MAX + 1];
        size_t n = 0;

        for (DriverClass c = 0; c < _DRIVER_CLASS_MAX; c++)
                if (t->classes & (1U << c))
                        names[n++] = driver_class_to_string(c);
        if (t->classes & DRIVER_TYPE_GPIO_LINE)
                names[n++] = "a GPIO line under gpio:";
        return config_join(names, n);
}

/* owner is the mapping holding "type:" and "config:"; want the class a per-class entry is for, or
 * _DRIVER_CLASS_INVALID for a board driver. */
static int parse_driver(ConfigParser *p, const YamlNode *owner, DriverClass want, DriverConfig **ret) {
        _cleanup_(driver_config_freep) DriverConfig *d = NULL;
        _cleanup_free_ char *name = NULL;
        const YamlNode *type_node = NULL, *config;
        const DriverType *t;
        size_t n_specs = 0;
        int r;

        r = config_require_key(p, owner, "type", &type_node);
        if (r < 0)
                return r;
        r = config_get_string(p, type_node, false, &name);
        if (r < 0)
                return r;
        t = driver_type_find(name);
        if (!t) {
                _cleanup_free_ char *q = NULL, *list = NULL;
                const char *names[64];
                size_t n = 0;

                for (const DriverType *k = driver_type_next(NULL); k && n < ELEMENTSOF(names); k = driver_type_next(k))
                        names[n++] = k->name;
                q = config_quote(name, strlen(name), false);
                list = config_join(names, n);
                if (!q || !list)
                        return -ENOMEM;
                return config_fail(p, type_node, "unknown driver type %s (known: %s)", q, list);
        }
        if (want >= 0 && !(t->classes & (1U << want))) {
                _cleanup_free_ char *list = classes_of(t);

                if (!list)
                        return -ENOMEM;
                return config_fail(p, type_node, "driver type \"%s\" cannot serve %s (it serves: %s)", t->name,
                            driver_class_to_string(want), list);
        }

        for (const OptionSpec *o = t->options; o && o->name; o++)
                n_specs++;
        d = calloc(1, sizeof(DriverConfig));
        if (!d)
                return -ENOMEM;
        d->type = t;
        d->line = type_node->line;
        d->column = type_node->column;
        if (n_specs > 0) {
                d->values = calloc(n_specs, sizeof(OptionValue));
                if (!d->values)
                        return -ENOMEM;
        }
        d->n_values = n_specs;
        for (size_t i = 0; i < n_specs; i++)
                d->values[i].spec = &t->options[i];

        config = yaml_node_get(owner, "config");
        r = config_optional_mapping(p, config, "of driver options");
        if (r < 0)
                return r;
        if (r == 0)
                config = NULL;

        for (size_t i = 0; config && i < config->n_pairs; i++) {
                const YamlNode *k = config->pairs[i].key;
                OptionValue *v = NULL;

                for (size_t j = 0; j < n_specs && !v; j++)
                        if (config_key_is(k, d->values[j].spec->name))
                                v = &d->values[j];
                if (!v) {
                        _cleanup_free_ char *list = NULL;

                        r = known_options(t, &list);
                        if (r < 0)
                                return r;
                        return config_fail(p, k, "unknown option for driver type \"%s\" (known: %s)", t->name, list);
                }
                r = parse_option(p, config->pairs[i].value, v);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < n_specs; i++) {
                if (!d->values[i].spec->required || d->values[i].set)
                        continue;
                if (config)
                        return config_fail(p, config, "missing required key \"%s\"", d->values[i].spec->name);
                return config_fail(p, owner, "missing required key \"config\" (driver type \"%s\" needs option \"%s\")",
                            t->name, d->values[i].spec->name);
        }

        if (t->validate) {
                _cleanup_free_ char *problem = NULL;
                const char *option = NULL;
                const YamlNode *at = config ?: type_node;

                r = t->validate(d, &problem, &option);
                if (r < 0 && !problem)
                        return r;
                if (r < 0) {
                        /* At the value that is wrong; a missing one is missing from the mapping. */
                        if (option && config && yaml_node_get(config, option))
                                at = yaml_node_get(config, option);
                        return config_fail(p, at, "%s", problem);
                }
        }

        *ret = TAKE_PTR(d);
        return 0;
}

/* "gpio:", a mapping of line names to {type, config}. Lines are added to d as they are parsed, so
 * that dut_config_done() frees them on failure too. */
static int parse_gpio_lines(ConfigParser *p, const YamlNode *n, DutConfig *d) {
        static const char *const entry_keys[] = { "type", "config" };
        int r;

        r = config_optional_mapping(p, n, "of GPIO line names to lines");
        if (r <= 0 || n->n_pairs == 0)
                return r;

        d->gpio_lines = calloc(n->n_pairs, sizeof(GpioLineConfig));
        if (!d->gpio_lines)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_pairs; i++) {
                const YamlNode *key = n->pairs[i].key, *e = n->pairs[i].value;
                _cleanup_(driver_config_freep) DriverConfig *dc = NULL;
                _cleanup_free_ char *name = NULL;

                if (strlen(key->scalar) != key->scalar_len || !gpio_line_name_is_valid(key->scalar)) {
                        _cleanup_free_ char *q = config_quote(key->scalar, key->scalar_len, false);

                        return q ? config_fail(p, key, "invalid GPIO line name %s: use [a-z0-9][a-z0-9_-]{0,31}", q)
                                 : -ENOMEM;
                }
                r = config_expect_mapping(p, e, "with type and config");
                if (r < 0)
                        return r;
                r = config_check_keys(p, e, entry_keys, ELEMENTSOF(entry_keys));
                if (r < 0)
                        return r;
                r = parse_driver(p, e, _DRIVER_CLASS_INVALID, &dc);
                if (r < 0)
                        return r;
                if (!(dc->type->classes & DRIVER_TYPE_GPIO_LINE)) {
                        _cleanup_free_ char *list = classes_of(dc->type);

                        return list ? config_fail(p, yaml_node_get(e, "type"),
                                           "driver type \"%s\" cannot drive a GPIO line (it serves: %s)",
                                           dc->type->name, list)
                                    : -ENOMEM;
                }

                name = strdup(key->scalar);
                if (!name)
                        return -ENOMEM;
                d->gpio_lines[d->n_gpio_lines++] = (GpioLineConfig) {
                        .name = TAKE_PTR(name),
                        .driver = TAKE_PTR(dc),
                };
        }
        return 0;
}

static int parse_dut(ConfigParser *p, const ExporterConfig *c, const YamlNode *key, const YamlNode *value,
                     DutConfig *d) {
        const char *known[7 + _DRIVER_CLASS_MAX] = { "type", "config", "labels", "description" };
        _cleanup_(driver_config_freep) DriverConfig *board = NULL;
        DriverConfig *per_class[_DRIVER_CLASS_MAX] = {};
        Label *own = NULL;
        size_t n_own = 0;
        unsigned board_serves = 0;
        int r;

        for (DriverClass k = 0; k < _DRIVER_CLASS_MAX; k++)
                known[4 + k] = driver_class_to_string(k);
        known[4 + _DRIVER_CLASS_MAX] = "gpio";
        known[5 + _DRIVER_CLASS_MAX] = "hooks";  /* hooks-config.c */
        known[6 + _DRIVER_CLASS_MAX] = "health";

        if (strlen(key->scalar) != key->scalar_len || !dut_name_is_valid(key->scalar)) {
                _cleanup_free_ char *q = config_quote(key->scalar, key->scalar_len, false);

                if (!q)
                        return -ENOMEM;
                return config_fail(p, key, "invalid DUT name %s: use [a-z0-9][a-z0-9-]{0,62}", q);
        }
        d->name = strdup(key->scalar);
        if (!d->name)
                return -ENOMEM;

        if (yaml_node_is_null(value))
                return config_fail(p, key, "no drivers: give \"type\" or at least one of power, serial, storage");
        r = config_expect_mapping(p, value, "describing the DUT");
        if (r < 0)
                return r;
        r = config_check_keys(p, value, known, ELEMENTSOF(known));
        if (r < 0)
                return r;

        if (yaml_node_get(value, "description")) {
                r = config_get_string(p, yaml_node_get(value, "description"), true, &d->description);
                if (r < 0)
                        return r;
        }

        r = parse_labels(p, yaml_node_get(value, "labels"), &own, &n_own);
        if (r < 0)
                return r;
        r = labels_merge(c->labels, c->n_labels, own, n_own, &d->labels, &d->n_labels);
        labels_free(own, n_own);
        if (r < 0)
                return r;

        if (yaml_node_get(value, "type")) {
                r = parse_driver(p, value, _DRIVER_CLASS_INVALID, &board);
                if (r < 0)
                        return r;
                if (!(board->type->classes & ((1U << _DRIVER_CLASS_MAX) - 1)))
                        return config_fail(p, yaml_node_get(value, "type"),
                                    "driver type \"%s\" drives one GPIO line: name the line under \"gpio:\"",
                                    board->type->name);
        } else if (yaml_node_get(value, "config"))
                return config_fail(p, yaml_node_get(value, "config"), "driver options given without a driver \"type\"");

        for (DriverClass k = 0; k < _DRIVER_CLASS_MAX && r >= 0; k++) {
                static const char *const entry_keys[] = { "type", "config" };
                const YamlNode *e = yaml_node_get(value, driver_class_to_string(k));

                if (!e)
                        continue;
                r = config_expect_mapping(p, e, "with type and config");
                if (r >= 0)
                        r = config_check_keys(p, e, entry_keys, ELEMENTSOF(entry_keys));
                if (r >= 0)
                        r = parse_driver(p, e, k, &per_class[k]);
        }
        if (r < 0)
                goto finish;

        if (board)
                for (DriverClass k = 0; k < _DRIVER_CLASS_MAX; k++)
                        if ((board->type->classes & (1U << k)) && !per_class[k])
                                board_serves |= 1U << k;
        if (board && board_serves == 0) {
                _cleanup_free_ char *list = classes_of(board->type);

                r = list ? config_fail(p, yaml_node_get(value, "type"),
                                "driver type \"%s\" would serve nothing: its classes (%s) all have their "
                                "own entries",
                                board->type->name, list)
                         : -ENOMEM;
                goto finish;
        }

        d->drivers = calloc(1 + _DRIVER_CLASS_MAX, sizeof(DriverConfig *));
        if (!d->drivers) {
                r = -ENOMEM;
                goto finish;
        }
        if (board) {
                for (DriverClass k = 0; k < _DRIVER_CLASS_MAX; k++)
                        if (board_serves & (1U << k))
                                d->classes[k] = board;
                d->drivers[d->n_drivers++] = TAKE_PTR(board);
        }
        for (DriverClass k = 0; k < _DRIVER_CLASS_MAX; k++)
                if (per_class[k]) {
                        d->classes[k] = per_class[k];
                        d->drivers[d->n_drivers++] = TAKE_PTR(per_class[k]);
                }
        r = parse_gpio_lines(p, yaml_node_get(value, "gpio"), d);
        if (r < 0)
                return r;
        r = dut_hooks_parse(p, value, &d->hooks); /* hooks-config.c */
        if (r < 0)
                return r;
        if (d->n_drivers == 0 && d->n_gpio_lines == 0)
                return config_fail(p, value, "no drivers: give \"type\" or at least one of power, serial, storage");
        return 0;

finish:
        for (DriverClass k = 0; k < _DRIVER_CLASS_MAX; k++)
                driver_config_free(per_class[k]);
        return r;
}

static int parse_metadata(ConfigParser *p, const YamlNode *m, ExporterConfig *c) {
        static const char *const known[] = { "name", "namespace", "labels" };
        const YamlNode *v = NULL;
        int r;

        r = config_expect_mapping(p, m, NULL);
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
        if (!object_name_is_valid(c->name)) {
                _cleanup_free_ char *q = config_quote(v->scalar, v->scalar_len, false);

                return q ? config_fail(p, v,
                                "invalid name %s: use at most 253 characters of [a-z0-9-.] starting and ending "
                                "with a letter or digit", q)
                         : -ENOMEM;
        }

        v = yaml_node_get(m, "namespace");
        if (v) {
                r = config_get_string(p, v, true, &c->namespace);
                if (r < 0)
                        return r;
                if (c->namespace && !dns_label_is_valid(c->namespace, strlen(c->namespace))) {
                        _cleanup_free_ char *q = config_quote(v->scalar, v->scalar_len, false);

                        return q ? config_fail(p, v,
                                        "invalid namespace %s: use at most 63 characters of [a-z0-9-] starting "
                                        "and ending with a letter or digit", q)
                                 : -ENOMEM;
                }
        }

        return parse_labels(p, yaml_node_get(m, "labels"), &c->labels, &c->n_labels);
}

/* A string value that must pass check(); the problem is "expected WHAT, got ...". */
static int get_checked_string(ConfigParser *p, const YamlNode *n, bool (*check)(const char *), const char *what,
                              char **ret) {
        _cleanup_free_ char *s = NULL, *g = NULL;
        int r;

        r = config_get_string(p, n, false, &s);
        if (r < 0)
                return r;
        if (check(s)) {
                *ret = TAKE_PTR(s);
                return 0;
        }
        g = config_got(p, n);
        return g ? config_fail(p, n, "expected %s, got %s", what, g) : -ENOMEM;
}

static int parse_tls(ConfigParser *p, const YamlNode *n, ExporterConfig *c) {
        static const char *const known[] = { "ca", "insecure" };
        const YamlNode *v;
        int r;

        r = config_optional_mapping(p, n, "with ca and insecure");
        if (r <= 0)
                return r;
        r = config_check_keys(p, n, known, ELEMENTSOF(known));
        if (r < 0)
                return r;

        v = yaml_node_get(n, "ca");
        if (v) {
                _cleanup_free_ char *s = NULL;

                r = config_get_string(p, v, false, &s);
                if (r < 0)
                        return r;
                if (!*s)
                        return config_fail(p, v, "expected a PEM certificate or the name of a PEM file, got \"\"");
                /* Inline PEM as the controller's answers carry it, else a file name. */
                if (strncmp(s, "-----BEGIN ", 11) == 0) {
                        if (!strstr(s, "-----BEGIN CERTIFICATE-----"))
                                return config_fail(p, v, "expected a PEM certificate (\"-----BEGIN CERTIFICATE-----\")");
                        c->tls_ca = TAKE_PTR(s);
                } else {
                        r = config_path_join(p->dir, s, &c->tls_ca_path);
                        if (r < 0)
                                return r;
                }
        }

        v = yaml_node_get(n, "insecure");
        if (v && !yaml_node_is_null(v)) {
                if (v->type != YAML_NODE_SCALAR || strlen(v->scalar) != v->scalar_len ||
                    parse_boolean(v->scalar, &c->tls_insecure) < 0) {
                        _cleanup_free_ char *g = config_got(p, v);

                        return g ? config_fail(p, v, "expected true or false, got %s", g) : -ENOMEM;
                }
        }
        return 0;
}

static int parse_streams(ConfigParser *p, const YamlNode *n, ExporterConfig *c) {
        static const char *const known[] = { "listen", "advertise" };
        const YamlNode *v;
        int r;

        r = config_optional_mapping(p, n, "with listen and advertise");
        if (r <= 0)
                return r;
        r = config_check_keys(p, n, known, ELEMENTSOF(known));
        if (r < 0)
                return r;

        v = yaml_node_get(n, "listen");
        if (v && !yaml_node_is_null(v)) {
                free(c->streams_listen);
                c->streams_listen = NULL;
                r = get_checked_string(p, v, listen_address_is_valid,
                                       "an address to listen on such as \"0.0.0.0:8444\", \"[::]:8444\" or \":0\"",
                                       &c->streams_listen);
                if (r < 0)
                        return r;
        }
        v = yaml_node_get(n, "advertise");
        if (v && !yaml_node_is_null(v)) {
                r = get_checked_string(p, v, advertise_address_is_valid,
                                       "an IP address, optionally with a port, such as \"192.0.2.20\"",
                                       &c->streams_advertise);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* endpoint, token, tls, streams: what an exporter needs to link up with a controller. */
static int parse_link(ConfigParser *p, const YamlNode *root, ExporterConfig *c) {
        const YamlNode *endpoint = yaml_node_get(root, "endpoint"), *token = yaml_node_get(root, "token"),
                       *tls = yaml_node_get(root, "tls");
        int r;

        c->streams_listen = strdup("0.0.0.0:0");
        if (!c->streams_listen)
                return -ENOMEM;

        if (endpoint) {
                r = get_checked_string(p, endpoint, endpoint_is_valid,
                                       "the controller's address as HOST:PORT such as \"controller.example.com:8443\"",
                                       &c->endpoint);
                if (r < 0)
                        return r;
        }
        if (token) {
                r = get_checked_string(p, token, token_is_valid,
                                       "a token (three base64url parts joined by dots, as jmp admin create exporter "
                                       "writes it)",
                                       &c->token);
                if (r < 0)
                        return r;
        }
        if (endpoint && !token)
                return config_fail(p, root, "missing required key \"token\" (the exporter's token for the endpoint)");
        if (token && !endpoint)
                return config_fail(p, root, "missing required key \"endpoint\" (the controller that the token is for)");
        if (tls && !endpoint)
                return config_fail(p, tls, "only used with an \"endpoint\"");

        r = parse_tls(p, tls, c);
        if (r < 0)
                return r;
        return parse_streams(p, yaml_node_get(root, "streams"), c);
}

/* metrics: {listen: ADDR}: where /metrics is served (docs/metrics.md). */
static int parse_metrics(ConfigParser *p, const YamlNode *n, ExporterConfig *c) {
        static const char *const known[] = { "listen" };
        const YamlNode *v;
        int r;

        r = config_optional_mapping(p, n, "with listen");
        if (r <= 0)
                return r;
        r = config_check_keys(p, n, known, ELEMENTSOF(known));
        if (r < 0)
                return r;
        v = yaml_node_get(n, "listen");
        if (!v || yaml_node_is_null(v))
                return config_fail(p, n, "missing required key \"listen\" (the address /metrics is served on)");
        return get_checked_string(p, v, listen_address_is_valid,
                                  "an address to listen on such as \"127.0.0.1:9464\", \"[::]:9464\" or \":9464\"",
                                  &c->metrics_listen);
}

static int parse_root(ConfigParser *p, const YamlNode *root, ExporterConfig *c) {
        static const char *const known[] = { "apiVersion", "kind", "metadata", "export", "endpoint", "tls",
                                             "token", "streams", "metrics" };
        const YamlNode *v = NULL;
        int r;

        r = config_check_header(p, root, "with apiVersion, kind, metadata and export", known, ELEMENTSOF(known), CONFIG_KIND);
        if (r < 0)
                return r;

        r = config_require_key(p, root, "metadata", &v);
        if (r < 0)
                return r;
        r = parse_metadata(p, v, c);
        if (r < 0)
                return r;

        r = parse_link(p, root, c);
        if (r < 0)
                return r;
        r = parse_metrics(p, yaml_node_get(root, "metrics"), c);
        if (r < 0)
                return r;

        r = config_require_key(p, root, "export", &v);
        if (r < 0)
                return r;
        /* A linked exporter may start with no DUTs ("export: {}"): it shows up at the controller. */
        if (c->endpoint && yaml_node_is_null(v))
                return 0;
        r = config_expect_mapping(p, v, "of DUT names to DUTs");
        if (r < 0)
                return r;
        if (v->n_pairs == 0 && c->endpoint)
                return 0;
        if (v->n_pairs == 0)
                return config_fail(p, v, "no DUTs: describe at least one");

        c->duts = calloc(v->n_pairs, sizeof(DutConfig));
        if (!c->duts)
                return -ENOMEM;
        c->n_duts = v->n_pairs;
        for (size_t i = 0; i < v->n_pairs; i++) {
                r = parse_dut(p, c, v->pairs[i].key, v->pairs[i].value, &c->duts[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int exporter_config_parse(const char *path, const char *data, size_t size, ExporterConfig **ret,
                          char **ret_error) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = NULL;
        _cleanup_(yaml_node_freep) YamlNode *root = NULL;
        _cleanup_free_ char *abs = NULL, *dir = NULL;
        ConfigParser p = {};
        int r;

        assert(ret);

        r = config_parse_begin(path, data, size, &root, &abs, &dir, ret_error);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(ExporterConfig));
        if (!c)
                return -ENOMEM;
        p = (ConfigParser) { .path = abs, .dir = dir };
        r = parse_root(&p, root, c);
        if (r < 0) {
                log_debug("Config %s: %s", abs, strna(p.error));
                *ret_error = p.error;
                return r;
        }
        c->path = TAKE_PTR(abs);

        *ret = TAKE_PTR(c);
        return 0;
}

int exporter_config_load(const char *path, ExporterConfig **ret, char **ret_error) {
        _cleanup_free_ char *abs = NULL, *buf = NULL;
        size_t n = 0;
        int r;

        assert(path);
        assert(ret);
        assert(ret_error);

        *ret_error = NULL;

        r = config_make_absolute(path, &abs, ret_error);
        if (r < 0)
                return r;
        r = config_read_file(abs, &buf, &n);
        if (r < 0) {
                if (r != -ENOMEM && asprintf(ret_error, "%s: cannot read: %s", abs, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        return exporter_config_parse(abs, buf, n, ret, ret_error);
}
