/* jmp admin: clients, exporters and signing keys of a controller (admin clients only) */
#include <getopt.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api-client.h"
#include "client-config.h"
#include "config.h"
#include "jmp.h"
#include "log.h"
#include "time-util.h"

#define ADMIN_CONFIG_HELP CLIENT_CONFIG_HELP_FOR("admin's ")

DEFINE_TRIVIAL_CLEANUP_FUNC(ExporterConfig *, exporter_config_free);

static int check_name(const char *name, const char *what) {
        if (!dut_name_is_valid(name)) {
                fprintf(stderr, "jmp: '%s' is not a valid %s name: use [a-z0-9][a-z0-9-]{0,62}.\n", name, what);
                return -EINVAL;
        }
        return 0;
}

/* Before anything is created: an output file we could not write would lose the new token. */
static int check_output_path(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        char *slash;
        struct stat st;

        if (!dir)
                return log_oom();
        if (stat(path, &st) >= 0 && !S_ISREG(st.st_mode)) {
                fprintf(stderr, "jmp: %s exists and is not a regular file.\n", path);
                return -EEXIST;
        }
        slash = strrchr(dir, '/');
        if (!slash)
                strcpy(dir, ".");
        else if (slash == dir)
                dir[1] = 0;
        else
                *slash = 0;
        if (access(dir, W_OK) < 0) {
                fprintf(stderr, "jmp: cannot write to %s: %s\n", dir, strerror(errno));
                return -errno;
        }
        return 0;
}

static int write_output(const char *path, const char *text, const char *what) {
        int r;

        if (!path) {
                fputs(text, stdout);
                return 0;
        }
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0) {
                fprintf(stderr, "jmp: cannot write %s: %s\n", path, strerror(-r));
                return r;
        }
        return 0;
}

/* Query argument values: everything but [A-Za-z0-9-._~:] as %XX. */
static char *url_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        char *r = malloc(strlen(s) * 3 + 1), *p = r;

        if (!r)
                return NULL;
        for (; *s; s++) {
                unsigned char ch = (unsigned char) *s;

                if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                    strchr("-._~:", ch))
                        *p++ = (char) ch;
                else {
                        *p++ = '%';
                        *p++ = hex[ch >> 4];
                        *p++ = hex[ch & 15];
                }
        }
        *p = 0;
        return r;
}

typedef struct CreateArgs {
        json_t *labels;
        bool admin;
        const char *lifetime;
        const char *output;
} CreateArgs;

static int parse_create(int argc, char *argv[], const char *usage, bool client, CreateArgs *a) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "label", required_argument, NULL, 'l' },
                { "admin", no_argument, NULL, 'a' },
                { "lifetime", required_argument, NULL, 't' },
                { "output", required_argument, NULL, 'o' },
                { "client-config", required_argument, NULL, ARG_CLIENT_CONFIG },
                {}
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "ho:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 'l':
                        if (parse_key_value(optarg, a->labels, "--label") < 0)
                                return -EINVAL;
                        break;
                case 'a':
                        if (!client) {
                                fprintf(stderr, "jmp: --admin is only for clients.\n");
                                return -EINVAL;
                        }
                        a->admin = true;
                        break;
                case 't':
                        if (check_duration(optarg, "--lifetime") < 0)
                                return -EINVAL;
                        a->lifetime = optarg;
                        break;
                case 'o':
                        a->output = optarg;
                        break;
                case ARG_CLIENT_CONFIG:
                        arg_client_config = optarg;
                        break;
                default:
                        return -EINVAL;
                }
        return 1;
}

/* The answer's endpoint and CA, or the admin's own where the controller sent none. */
static int answer_connection(json_t *answer, const ClientConfig *admin, const char **ret_endpoint,
                             const char **ret_ca) {
        const char *endpoint = str_member(answer, "endpoint"), *ca = str_member(answer, "ca");

        if (!endpoint || !endpoint_is_valid(endpoint))
                endpoint = admin->endpoint;
        if (!ca || !*ca)
                ca = admin->ca_pem;
        *ret_endpoint = endpoint;
        *ret_ca = ca;
        if (!bearer_token_is_valid(str_member(answer, "token"))) {
                fprintf(stderr, "jmp: the controller's answer carries no usable token.\n");
                return -EBADMSG;
        }
        return 0;
}

static int admin_create_client(const char *name, CreateArgs *args, ClientConfig *admin, ApiClient *api) {
        _cleanup_(json_decrefp) json_t *body = NULL, *answer = NULL;
        _cleanup_free_ char *text = NULL;
        const char *endpoint, *ca;
        ClientConfig out;
        int r;

        body = json_pack("{s:s, s:O, s:b}", "name", name, "labels", args->labels, "admin", args->admin);
        if (!body || (args->lifetime && json_object_set_new(body, "lifetime", json_string(args->lifetime)) < 0))
                return log_oom();
        r = api_client_call(api, "POST", "/clients", body, &answer);
        if (r < 0)
                return remote_fail(api, r, "Failed to create client %s", name), r;
        r = answer_connection(answer, admin, &endpoint, &ca);
        if (r < 0)
                return r;

        out = (ClientConfig) {
                .name = (char *) name,
                .namespace = (char *) "default",
                .endpoint = (char *) endpoint,
                .ca_pem = (char *) ca,
                .token = (char *) str_member(answer, "token"),
        };
        r = client_config_format(&out, &text);
        if (r < 0)
                return log_error_errno(r, "Failed to format the client config: %m");
        r = write_output(args->output, text, "client config");
        explicit_bzero(text, strlen(text));
        if (r < 0)
                return r;
        if (args->output)
                printf("Client %s created%s; its config is in %s (token expires %s).\n", name,
                       args->admin ? " (admin)" : "", args->output, strna(str_member(answer, "tokenExpires")));
        return 0;
}

static int exporter_config_text(const char *name, json_t *labels, const char *endpoint, const char *ca,
                                const char *token, char **ret) {
        _cleanup_free_ char *qname = yaml_quote_string(name), *qendpoint = yaml_quote_string(endpoint),
                            *qtoken = yaml_quote_string(token), *qca = ca ? yaml_quote_string(ca) : NULL;
        const char *key;
        char *buf = NULL;
        size_t size = 0;
        json_t *v;
        FILE *f;

        if (!qname || !qendpoint || !qtoken || (ca && !qca))
                return -ENOMEM;
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f,
                "apiVersion: jumpstarter.dev/v1alpha1\n"
                "kind: ExporterConfig\n"
                "metadata:\n"
                "  name: %s\n",
                qname);
        if (json_object_size(labels) > 0) {
                fputs("  labels:\n", f);
                json_object_foreach(labels, key, v) {
                        _cleanup_free_ char *qk = yaml_quote_string(key), *qv = yaml_quote_string(json_string_value(v));

                        if (!qk || !qv) {
                                fclose(f);
                                free(buf);
                                return -ENOMEM;
                        }
                        fprintf(f, "    %s: %s\n", qk, qv);
                }
        }
        fprintf(f, "endpoint: %s\n", qendpoint);
        fprintf(f, "tls:\n");
        if (qca)
                fprintf(f, "  ca: %s\n", qca);
        fprintf(f,
                "  insecure: false\n"
                "token: %s\n"
                "# The DUTs this exporter serves (docs/configuration.md). Until there are some, the exporter\n"
                "# only shows up at the controller. For example, a simulated board:\n"
                "#\n"
                "# export:\n"
                "#   dut1:\n"
                "#     type: sim\n"
                "#     labels:\n"
                "#       vendor: acme\n"
                "#       model: widget-v2\n"
                "#     config:\n"
                "#       size: 64MiB\n"
                "export: {}\n",
                qtoken);
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

static int admin_create_exporter(const char *name, CreateArgs *args, ClientConfig *admin, ApiClient *api) {
        _cleanup_(json_decrefp) json_t *body = NULL, *answer = NULL;
        _cleanup_(exporter_config_freep) ExporterConfig *check = NULL;
        _cleanup_free_ char *text = NULL, *error = NULL;
        const char *endpoint, *ca;
        int r;

        body = json_pack("{s:s, s:O}", "name", name, "labels", args->labels);
        if (!body || (args->lifetime && json_object_set_new(body, "lifetime", json_string(args->lifetime)) < 0))
                return log_oom();
        r = api_client_call(api, "POST", "/exporters", body, &answer);
        if (r < 0)
                return remote_fail(api, r, "Failed to create exporter %s", name), r;
        r = answer_connection(answer, admin, &endpoint, &ca);
        if (r < 0)
                return r;
        r = exporter_config_text(name, args->labels, endpoint, ca, str_member(answer, "token"), &text);
        if (r < 0)
                return log_oom();

        /* What we write must be a config that jumpstarterd loads as it is. */
        r = exporter_config_parse(args->output ?: "exporter.yaml", text, strlen(text), &check, &error);
        if (r < 0)
                fprintf(stderr, "jmp: warning: the written ExporterConfig does not load: %s\n", strna(error));

        r = write_output(args->output, text, "exporter config");
        explicit_bzero(text, strlen(text));
        if (r < 0)
                return r;
        if (args->output)
                printf("Exporter %s created; its config is in %s (token expires %s). Add its DUTs under export:.\n",
                       name, args->output, strna(str_member(answer, "tokenExpires")));
        return 0;
}

static int admin_create(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp admin create client NAME [--label KEY=VALUE]... [--admin] [--lifetime 365d] [-o FILE]\n"
                "       jmp admin create exporter NAME [--label KEY=VALUE]... [--lifetime 365d] [-o FILE]\n"
                "\n"
                "Registers a client or an exporter with the controller and writes its config: a\n"
                "ClientConfig for 'jmp', an ExporterConfig for 'jumpstarterd' (fill in its DUTs). The\n"
                "config holds the new token: keep it private. Without -o it goes to standard output.\n"
                "\n"
                "  --label KEY=VALUE     A label; may be repeated\n"
                "  --admin               The client may manage clients, exporters and keys\n"
                "  --lifetime DURATION   How long the token is valid (default: the controller's, 365d)\n"
                "  -o, --output FILE     Write the config to FILE (mode 0600)\n" ADMIN_CONFIG_HELP;
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *labels = json_object();
        CreateArgs args = { .labels = labels };
        const char *kind, *name;
        bool client;
        int r;

        if (!labels)
                return log_oom(), 1;
        if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
                fputs(usage, stdout);
                return 0;
        }
        if (argc < 2 || !STR_IN_SET(argv[1], "client", "exporter")) {
                fprintf(stderr, "jmp: create what? Use 'client' or 'exporter'.\n%s", usage);
                return 2;
        }
        kind = argv[1];
        client = streq(kind, "client");
        r = parse_create(argc - 1, argv + 1, usage, client, &args);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (argc - 1 - optind != 1) {
                fputs(usage, stderr);
                return 2;
        }
        name = argv[1 + optind];
        if (check_name(name, kind) < 0)
                return 2;
        if (args.output && check_output_path(args.output) < 0)
                return 1;

        if (remote_open(&cfg, &api) < 0)
                return 1;
        r = client ? admin_create_client(name, &args, cfg, api) : admin_create_exporter(name, &args, cfg, api);
        return r < 0 ? 1 : 0;
}

static int admin_delete(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp admin delete client|exporter NAME\n"
                "\n"
                "Removes a client or an exporter: its token stops working at once, and an exporter's\n"
                "leases end (ExporterGone).\n"
                "\n" ADMIN_CONFIG_HELP;
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_free_ char *path = NULL;
        const char *kind, *name;
        int r;

        r = parse_remote_options(argc, argv, usage, NULL, NULL);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (argc - optind != 2 || !STR_IN_SET(argv[optind], "client", "exporter")) {
                fputs(usage, stderr);
                return 2;
        }
        kind = argv[optind];
        name = argv[optind + 1];
        if (check_name(name, kind) < 0)
                return 2;
        if (remote_open(&cfg, &api) < 0)
                return 1;
        if (asprintf(&path, "/%ss/%s", kind, name) < 0)
                return log_oom(), 1;
        r = api_client_call(api, "DELETE", path, NULL, NULL);
        if (r < 0)
                return remote_fail(api, r, "Failed to delete %s %s", kind, name);
        printf("%s %s deleted.\n", streq(kind, "client") ? "Client" : "Exporter", name);
        return 0;
}

static int admin_rotate_key(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp admin rotate-key\n"
                "\n"
                "Makes a new signing key active. The old one verifies the tokens it signed until it is\n"
                "retired with 'jmp admin retire-key KID'.\n"
                "\n" ADMIN_CONFIG_HELP;
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *answer = NULL;
        const char *previous;
        int r;

        r = parse_remote_options(argc, argv, usage, NULL, NULL);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (check_no_arguments(argc, argv, usage) < 0)
                return 2;
        if (remote_open(&cfg, &api) < 0)
                return 1;
        r = api_client_call(api, "POST", "/admin/rotate-key", NULL, &answer);
        if (r < 0)
                return remote_fail(api, r, "Failed to rotate the signing key");
        previous = str_member(answer, "previous");
        printf("Signing key %s is active.\n", strna(str_member(answer, "kid")));
        if (previous)
                printf("Key %s verifies the tokens it signed until 'jmp admin retire-key %s'.\n", previous, previous);
        return 0;
}

static bool kid_is_valid(const char *s) {
        return strlen(s) == 16 && strspn(s, "0123456789abcdef") == 16;
}

static int admin_retire_key(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp admin retire-key KID\n"
                "\n"
                "Retires a signing key that is no longer active: every token it signed stops working.\n"
                "\n" ADMIN_CONFIG_HELP;
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *answer = NULL;
        _cleanup_free_ char *path = NULL;
        const char *kid;
        int r;

        r = parse_remote_options(argc, argv, usage, NULL, NULL);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (argc - optind != 1) {
                fputs(usage, stderr);
                return 2;
        }
        kid = argv[optind];
        if (!kid_is_valid(kid)) {
                fprintf(stderr, "jmp: '%s' is not a key id: 16 lowercase hex digits.\n", kid);
                return 2;
        }
        if (remote_open(&cfg, &api) < 0)
                return 1;
        if (asprintf(&path, "/admin/keys/%s/retire", kid) < 0)
                return log_oom(), 1;
        r = api_client_call(api, "POST", path, NULL, &answer);
        if (r < 0)
                return remote_fail(api, r, "Failed to retire key %s", kid);
        printf("Key %s is retired.\n", kid);
        return 0;
}

static int admin_get(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp admin get clients [-o json]\n"
                "\n"
                "Lists the clients with their labels, whether they are admins and when their tokens expire.\n"
                "\n"
                "  -o, --output FORMAT   table (default) or json: the API's items\n" ADMIN_CONFIG_HELP;
        static const char *const headers[] = { "NAME", "ADMIN", "LABELS", "TOKEN-EXPIRES", NULL };
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *answer = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        OutputFormat format = OUTPUT_TABLE;
        json_t *items, *c;
        size_t i;
        int r;

        r = parse_remote_options(argc, argv, usage, &format, NULL);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (argc - optind != 1 || !streq(argv[optind], "clients")) {
                fputs(usage, stderr);
                return 2;
        }
        if (remote_open(&cfg, &api) < 0)
                return 1;
        if (remote_get_items(api, "/clients", "clients", &answer, &items) > 0)
                return 1;
        if (format == OUTPUT_JSON) {
                print_json(items);
                return 0;
        }
        t = table_new(headers);
        if (!t)
                return log_oom(), 1;
        json_array_foreach(items, i, c) {
                _cleanup_free_ char *labels = labels_to_string(json_object_get(c, "labels")), *expires = NULL;

                /* "(soon)": within 30 days (docs/policy.md "Tokens"); rotate with jmp auth rotate. */
                if (asprintf(&expires, "%s%s", strna(str_member(c, "tokenExpires")),
                             json_is_true(json_object_get(c, "tokenExpiresSoon")) ? " (soon)" : "") < 0)
                        expires = NULL;
                if (!labels || !expires ||
                    table_add(t, str_member(c, "name"), json_is_true(json_object_get(c, "admin")) ? "yes" : "no",
                              labels, expires) < 0)
                        return log_oom(), 1;
        }
        table_print(t);
        return 0;
}

/* jmp admin usage: device time per team, client or exporter, from the controller's lease history */

static bool csv_needs_quotes(const char *s) {
        return strpbrk(s, ",\"\n\r") != NULL;
}

static void csv_field(const char *s, bool last) {
        if (csv_needs_quotes(s)) {
                putchar('"');
                for (; *s; s++) {
                        if (*s == '"')
                                putchar('"');
                        putchar(*s);
                }
                putchar('"');
        } else
                fputs(s, stdout);
        putchar(last ? '\n' : ',');
}

static int admin_usage(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp admin usage --from DATE --to DATE [--by team|client|exporter] [-o table|csv|json]\n"
                "\n"
                "Device time per group over the period [--from, --to), from the controller's lease history:\n"
                "device-hours, number of leases, their wait for a device, and leases never served. Leases that\n"
                "cross the period's edges count only their part inside it.\n"
                "\n"
                "  --from DATE           2026-11-01 (midnight UTC) or an RFC 3339 time (2026-11-01T08:00:00Z)\n"
                "  --to DATE             the end of the period, excluded\n"
                "  --by WHAT             team (the lease's metadata team, default), client or exporter\n"
                "  -o, --output FORMAT   table (default), csv or json (the API's answer)\n" ADMIN_CONFIG_HELP;
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "from", required_argument, NULL, 'f' },
                { "to", required_argument, NULL, 't' },
                { "by", required_argument, NULL, 'b' },
                { "output", required_argument, NULL, 'o' },
                { "client-config", required_argument, NULL, ARG_CLIENT_CONFIG },
                {}
        };
        static const char *const headers[] = { "GROUP", "DEVICE-HOURS", "LEASES", "WAIT-HOURS", "UNSERVED", NULL };
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *answer = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *path = NULL, *from_q = NULL, *to_q = NULL;
        const char *from = NULL, *to = NULL, *by = "team", *output = "table";
        uint64_t from_usec = 0, to_usec = 0;
        json_t *items, *x;
        size_t i;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "ho:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 'f':
                        from = optarg;
                        break;
                case 't':
                        to = optarg;
                        break;
                case 'b':
                        by = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case ARG_CLIENT_CONFIG:
                        arg_client_config = optarg;
                        break;
                default:
                        return 2;
                }
        if (check_no_arguments(argc, argv, usage) < 0)
                return 2;
        if (!from || !to) {
                fprintf(stderr, "jmp: admin usage needs --from and --to.\n%s", usage);
                return 2;
        }
        if (parse_timestamp(from, &from_usec) < 0) {
                fprintf(stderr, "jmp: --from '%s' is not a date: use YYYY-MM-DD (midnight UTC) or an RFC 3339 time "
                        "such as 2026-11-01T08:00:00Z.\n", from);
                return 2;
        }
        if (parse_timestamp(to, &to_usec) < 0) {
                fprintf(stderr, "jmp: --to '%s' is not a date: use YYYY-MM-DD (midnight UTC) or an RFC 3339 time "
                        "such as 2026-12-01T00:00:00Z.\n", to);
                return 2;
        }
        if (from_usec >= to_usec) {
                fprintf(stderr, "jmp: --from (%s) must be before --to (%s).\n", from, to);
                return 2;
        }
        if (!STR_IN_SET(by, "team", "client", "exporter")) {
                fprintf(stderr, "jmp: --by '%s': use team, client or exporter.\n", by);
                return 2;
        }
        if (!STR_IN_SET(output, "table", "csv", "json")) {
                fprintf(stderr, "jmp: -o '%s': use table, csv or json.\n", output);
                return 2;
        }

        if (remote_open(&cfg, &api) < 0)
                return 1;
        /* '+' in an offset must not turn into a space on the way. */
        from_q = url_escape(from);
        to_q = url_escape(to);
        if (!from_q || !to_q || asprintf(&path, "/admin/usage?from=%s&to=%s&by=%s", from_q, to_q, by) < 0)
                return log_oom(), 1;
        c = api_client_call(api, "GET", path, NULL, &answer);
        if (c < 0)
                return remote_fail(api, c, "Failed to get the usage report");
        if (streq(output, "json")) {
                print_json(answer);
                return 0;
        }
        items = json_object_get(answer, "items");
        if (streq(output, "csv")) {
                printf("%s,device_seconds,device_hours,leases,wait_seconds,unserved\n", by);
                json_array_foreach(items, i, x) {
                        char buf[5][32];

                        snprintf(buf[0], sizeof buf[0], "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(x, "deviceSeconds")));
                        snprintf(buf[1], sizeof buf[1], "%.2f", (double) json_integer_value(json_object_get(x, "deviceSeconds")) / 3600.0);
                        snprintf(buf[2], sizeof buf[2], "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(x, "leases")));
                        snprintf(buf[3], sizeof buf[3], "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(x, "waitSeconds")));
                        snprintf(buf[4], sizeof buf[4], "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(x, "unserved")));
                        csv_field(strempty(str_member(x, "group")), false);
                        for (int k = 0; k < 5; k++)
                                csv_field(buf[k], k == 4);
                }
                return 0;
        }
        t = table_new(headers);
        if (!t)
                return log_oom(), 1;
        json_array_foreach(items, i, x) {
                char hours[32], leases[32], wait[32], unserved[32];

                snprintf(hours, sizeof hours, "%.2f", (double) json_integer_value(json_object_get(x, "deviceSeconds")) / 3600.0);
                snprintf(leases, sizeof leases, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(x, "leases")));
                snprintf(wait, sizeof wait, "%.2f", (double) json_integer_value(json_object_get(x, "waitSeconds")) / 3600.0);
                snprintf(unserved, sizeof unserved, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(x, "unserved")));
                if (table_add(t, str_member(x, "group"), hours, leases, wait, unserved) < 0)
                        return log_oom(), 1;
        }
        if (json_array_size(items) == 0) {
                fprintf(stderr, "No leases held a device from %s to %s.\n", strna(str_member(answer, "from")),
                        strna(str_member(answer, "to")));
                return 0;
        }
        table_print(t);
        return 0;
}

int verb_admin(int argc, char *argv[]) {
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                printf("Usage: jmp admin COMMAND [OPTIONS]\n"
                       "\n"
                       "  create client NAME [--label K=V]... [--admin] [--lifetime D] [-o FILE]\n"
                       "  create exporter NAME [--label K=V]... [--lifetime D] [-o FILE]\n"
                       "  delete client|exporter NAME\n"
                       "  get clients [-o json]\n"
                       "  exporter enable|disable|clear EXPORTER[/DUT]\n"
                       "  usage --from DATE --to DATE [--by team|client|exporter] [-o table|csv|json]\n"
                       "  rotate-key\n"
                       "  retire-key KID\n"
                       "\n"
                       "These need an admin's client config (--client-config FILE). See 'jmp admin COMMAND --help'.\n");
                return argc < 2 ? 2 : 0;
        }
        if (streq(argv[1], "create"))
                return admin_create(argc - 1, argv + 1);
        if (streq(argv[1], "delete"))
                return admin_delete(argc - 1, argv + 1);
        if (streq(argv[1], "get"))
                return admin_get(argc - 1, argv + 1);
        if (streq(argv[1], "exporter")) /* jmp-admin-exporter.c */
                return admin_exporter(argc - 1, argv + 1);
        if (streq(argv[1], "rotate-key"))
                return admin_rotate_key(argc - 1, argv + 1);
        if (streq(argv[1], "retire-key"))
                return admin_retire_key(argc - 1, argv + 1);
        if (streq(argv[1], "usage"))
                return admin_usage(argc - 1, argv + 1);
        fprintf(stderr, "jmp: unknown command 'admin %s'. Run 'jmp admin --help'.\n", argv[1]);
        return 2;
}
