/* What the verbs that talk to a controller share: the client config, errors, tables */
#include <assert.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "api-client.h"
#include "client-config.h"
#include "jmp.h"
#include "log.h"
#include "parse-util.h"

#define TABLE_COLUMNS_MAX 12

int remote_open(ClientConfig **ret_config, ApiClient **ret_client) {
        _cleanup_(client_config_freep) ClientConfig *c = NULL;
        _cleanup_free_ char *fallback = NULL, *error = NULL;
        const char *path = arg_client_config, *source = "--client-config";
        int r;

        if (!path) {
                path = getenv("JMP_CLIENT_CONFIG");
                source = "$JMP_CLIENT_CONFIG";
        }
        if (!path || !*path) {
                const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");

                if (xdg && xdg[0] == '/')
                        r = asprintf(&fallback, "%s/jumpstarter/clients/default.yaml", xdg);
                else if (home && home[0] == '/')
                        r = asprintf(&fallback, "%s/.config/jumpstarter/clients/default.yaml", home);
                else {
                        fprintf(stderr, "jmp: no client config: pass --client-config FILE or set $JMP_CLIENT_CONFIG "
                                        "($HOME is not set).\n");
                        return -ENOENT;
                }
                if (r < 0)
                        return log_oom();
                path = fallback;
                source = NULL;
        }

        r = client_config_load(path, &c, &error);
        if (r == -ENOENT && !source) {
                fprintf(stderr,
                        "jmp: no client config at %s.\n"
                        "Pass --client-config FILE, set $JMP_CLIENT_CONFIG, or put there the file that\n"
                        "'jmp admin create client NAME' writes.\n",
                        path);
                return r;
        }
        if (r < 0) {
                fprintf(stderr, "jmp: %s%s%s%s\n", error ? error : strerror(-r), source ? " (from " : "",
                        strempty(source), source ? ")" : "");
                return r;
        }
        if (c->insecure)
                fprintf(stderr, "jmp: warning: %s has tls.insecure: the controller's certificate is not checked.\n",
                        c->path);

        r = api_client_new(c, ret_client);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the HTTPS client: %m");
        *ret_config = TAKE_PTR(c);
        return 0;
}

int remote_fail(ApiClient *a, int r, const char *format, ...) {
        _cleanup_free_ char *what = NULL;
        const char *detail = api_client_detail(a);
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&what, format, ap) < 0)
                what = NULL;
        va_end(ap);
        fprintf(stderr, "jmp: %s: %s\n", what ?: "failed", api_client_error(a));
        if (r == -EKEYREJECTED && detail)
                fprintf(stderr, "jmp: the controller refused the token of the client config (%s); ask an admin "
                                "for a new one.\n", detail);
        return 1;
}

int parse_remote_options(int argc, char *argv[], const char *usage, OutputFormat *format, const char **by) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "output", required_argument, NULL, 'o' },
                { "by", required_argument, NULL, 'b' },
                { "client-config", required_argument, NULL, ARG_CLIENT_CONFIG },
                {}
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, format ? "ho:" : "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 'o':
                        if (!format) {
                                fprintf(stderr, "jmp: this command has no --output.\n");
                                return -EINVAL;
                        }
                        if (parse_output_format(optarg, format) < 0)
                                return -EINVAL;
                        break;
                case 'b':
                        if (!by) {
                                fprintf(stderr, "jmp: --by is only for 'jmp lease extend'.\n");
                                return -EINVAL;
                        }
                        if (check_duration(optarg, "--by") < 0)
                                return -EINVAL;
                        *by = optarg;
                        break;
                case ARG_CLIENT_CONFIG:
                        arg_client_config = optarg;
                        break;
                default:
                        return -EINVAL;
                }
        return 1;
}

int check_no_arguments(int argc, char *argv[], const char *usage) {
        if (optind >= argc)
                return 0;
        fprintf(stderr, "jmp: unexpected argument '%s'.\n%s", argv[optind], usage);
        return -EINVAL;
}

int remote_get_items(ApiClient *a, const char *path, const char *what, json_t **ret_answer, json_t **ret_items) {
        _cleanup_(json_decrefp) json_t *answer = NULL;
        json_t *items;
        int r;

        r = api_client_call(a, "GET", path, NULL, &answer);
        if (r < 0)
                return remote_fail(a, r, "Failed to list %s", what);
        items = json_object_get(answer, "items");
        if (!json_is_array(items))
                return fprintf(stderr, "jmp: the controller's answer has no items.\n"), 1;
        *ret_items = items;
        *ret_answer = TAKE_PTR(answer);
        return 0;
}

int parse_output_format(const char *s, OutputFormat *ret) {
        if (streq(s, "json"))
                *ret = OUTPUT_JSON;
        else if (streq(s, "table"))
                *ret = OUTPUT_TABLE;
        else {
                fprintf(stderr, "jmp: unknown output format '%s': use json or table.\n", s);
                return -EINVAL;
        }
        return 0;
}

void print_json(json_t *j) {
        (void) json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
}

int parse_key_value(const char *s, json_t *obj, const char *what) {
        const char *eq = strchr(s, '=');
        _cleanup_free_ char *key = NULL;

        if (!eq || eq == s) {
                fprintf(stderr, "jmp: invalid %s '%s': write KEY=VALUE.\n", what, s);
                return -EINVAL;
        }
        key = strndup(s, (size_t) (eq - s));
        if (!key)
                return log_oom();
        if (json_object_get(obj, key)) {
                fprintf(stderr, "jmp: %s '%s' is given twice.\n", what, key);
                return -EINVAL;
        }
        if (json_object_set_new(obj, key, json_string(eq + 1)) < 0) {
                fprintf(stderr, "jmp: invalid %s '%s': not UTF-8.\n", what, s);
                return -EINVAL;
        }
        return 0;
}

int check_duration(const char *s, const char *option) {
        uint64_t usec;

        if (parse_duration(s, &usec) < 0 || usec == 0) {
                fprintf(stderr, "jmp: invalid %s '%s': write a duration such as 90s, 30m, 1.5h or 7d.\n", option, s);
                return -EINVAL;
        }
        return 0;
}

struct Table {
        size_t n_columns;
        char **cells; /* row-major, the headers first */
        size_t n_cells;
};

Table *table_new(const char *const *headers) {
        Table *t = calloc(1, sizeof(Table));

        if (!t)
                return NULL;
        for (const char *const *h = headers; *h; h++)
                t->n_columns++;
        assert(t->n_columns > 0 && t->n_columns <= TABLE_COLUMNS_MAX);
        t->cells = calloc(t->n_columns, sizeof(char *));
        if (!t->cells)
                return table_free(t);
        for (size_t i = 0; i < t->n_columns; i++) {
                t->cells[i] = strdup(headers[i]);
                if (!t->cells[i])
                        return table_free(t);
        }
        t->n_cells = t->n_columns;
        return t;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int table_add(Table *t, ...) {
        char **cells;
        va_list ap;

        cells = realloc(t->cells, (t->n_cells + t->n_columns) * sizeof(char *));
        if (!cells)
                return -ENOMEM;
        t->cells = cells;
        va_start(ap, t);
        for (size_t i = 0; i < t->n_columns; i++) {
                const char *s = va_arg(ap, const char *);

                cells[t->n_cells + i] = strdup(s && *s ? s : "<none>");
        }
        va_end(ap);
        t->n_cells += t->n_columns;
        for (size_t i = t->n_cells - t->n_columns; i < t->n_cells; i++)
                if (!cells[i])
                        return -ENOMEM;
        return 0;
}

void table_print(const Table *t) {
        size_t width[TABLE_COLUMNS_MAX] = {};

        for (size_t i = 0; i < t->n_cells; i++)
                width[i % t->n_columns] = MAX(width[i % t->n_columns], strlen(t->cells[i]));
        for (size_t i = 0; i < t->n_cells; i++) {
                size_t col = i % t->n_columns;

                if (col + 1 == t->n_columns)
                        printf("%s\n", t->cells[i]);
                else
                        printf("%-*s   ", (int) width[col], t->cells[i]);
        }
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

char *labels_to_string(json_t *labels) {
        _cleanup_free_ const char **keys = NULL;
        const char *key;
        char *buf = NULL;
        size_t n = 0, size = 0;
        json_t *v;
        FILE *f;

        if (!json_is_object(labels) || json_object_size(labels) == 0)
                return strdup("");
        keys = calloc(json_object_size(labels), sizeof(char *));
        if (!keys)
                return NULL;
        json_object_foreach(labels, key, v)
                keys[n++] = key;
        qsort(keys, n, sizeof(char *), compare_strings);

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                json_t *val = json_object_get(labels, keys[i]);

                fprintf(f, "%s%s=%s", i > 0 ? "," : "", keys[i], json_is_string(val) ? json_string_value(val) : "?");
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

char *lease_pending_text(json_t *lease) {
        json_t *pos = json_object_get(lease, "queuePosition");
        const char *reason = json_string_value(json_object_get(lease, "reason"));
        char *s;

        /* queuePosition counts from 0 (next); people count from 1. */
        if (json_is_integer(pos))
                return asprintf(&s, "%s, position %" JSON_INTEGER_FORMAT " in queue", reason ?: "pending",
                                json_integer_value(pos) + 1) < 0
                               ? NULL
                               : s;
        return strdup(reason ?: "pending");
}

void print_leases(json_t *items, OutputFormat format, bool wide) {
        static const char *const narrow_headers[] = { "NAME", "STATE", "EXPORTER/DUT", "SELECTOR", "BEGIN", "END",
                                                      "REASON", NULL };
        static const char *const wide_headers[] = { "NAME", "CLIENT", "STATE", "EXPORTER/DUT", "SELECTOR", "BEGIN",
                                                    "END", "REASON", "METADATA", "TEAM", NULL };
        _cleanup_(table_freep) Table *t = NULL;
        size_t i;
        json_t *l;

        if (format == OUTPUT_JSON) {
                print_json(items);
                return;
        }
        t = table_new(wide ? wide_headers : narrow_headers);
        if (!t) {
                log_oom();
                return;
        }
        json_array_foreach(items, i, l) {
                _cleanup_free_ char *device = NULL, *reason = NULL, *meta = NULL;
                const char *exporter = str_member(l, "exporter"), *dut = str_member(l, "dut");
                const char *state = str_member(l, "state");
                int r;

                if (exporter && dut && asprintf(&device, "%s/%s", exporter, dut) < 0)
                        device = NULL;
                reason = streq_ptr(state, "pending") ? lease_pending_text(l) : strdup(str_member(l, "reason") ?: "");
                meta = labels_to_string(json_object_get(l, "metadata"));
                if (wide)
                        r = table_add(t, str_member(l, "name"), str_member(l, "client"), state, device,
                                      str_member(l, "selector"), str_member(l, "begin"), str_member(l, "end"), reason,
                                      meta, str_member(json_object_get(l, "metadata"), "team"));
                else
                        r = table_add(t, str_member(l, "name"), state, device, str_member(l, "selector"),
                                      str_member(l, "begin"), str_member(l, "end"), reason);
                if (r < 0) {
                        log_oom();
                        return;
                }
        }
        if (json_array_size(items) == 0) {
                fprintf(stderr, "No leases.\n");
                return;
        }
        table_print(t);
}
