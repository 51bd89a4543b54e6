/* jmp get: show the controller's exporters and leases */
#include <getopt.h>
#include <stdio.h>

#include "api-client.h"
#include "client-config.h"
#include "jmp.h"
#include "log.h"

static int print_exporters(json_t *items) {
        static const char *const headers[] = { "NAME", "STATE", "LABELS", "CLASSES", "LEASE", NULL };
        _cleanup_(table_freep) Table *t = NULL;
        size_t i, j;
        json_t *e, *d;

        t = table_new(headers);
        if (!t)
                return log_oom();
        json_array_foreach(items, i, e) {
                json_t *duts = json_object_get(e, "duts");

                /* Created by an admin, never connected: no devices yet, one line for the exporter. */
                if (json_array_size(duts) == 0) {
                        _cleanup_free_ char *labels = labels_to_string(json_object_get(e, "labels"));

                        if (!labels || table_add(t, str_member(e, "name"), str_member(e, "state"), labels, "", "") < 0)
                                return log_oom();
                        continue;
                }
                /* One line per device, EXPORTER/DUT, with the labels a selector sees: the exporter's
                 * merged with the DUT's (the DUT's win). */
                json_array_foreach(duts, j, d) {
                        _cleanup_(json_decrefp) json_t *merged = json_deep_copy(json_object_get(e, "labels"));
                        _cleanup_free_ char *name = NULL, *labels = NULL, *classes = NULL;
                        const char *state = str_member(d, "state");
                        json_t *cl, *c;
                        size_t k;

                        if (!merged)
                                merged = json_object();
                        if (!merged || json_object_update(merged, json_object_get(d, "labels")) < 0)
                                return log_oom();
                        labels = labels_to_string(merged);
                        if (asprintf(&name, "%s/%s", strna(str_member(e, "name")), strna(str_member(d, "name"))) < 0)
                                name = NULL;
                        cl = json_object_get(d, "classes");
                        classes = strdup("");
                        json_array_foreach(cl, k, c) {
                                char *n = NULL;

                                if (!classes || asprintf(&n, "%s%s%s", classes, k > 0 ? "," : "",
                                                         strempty(json_string_value(c))) < 0)
                                        return log_oom();
                                free(classes);
                                classes = n;
                        }
                        /* An offline exporter's DUTs are offline whatever they last said. */
                        if (streq_ptr(str_member(e, "state"), "offline") || !state)
                                state = str_member(e, "state");
                        if (!name || !labels || !classes ||
                            table_add(t, name, state, labels, classes, str_member(d, "lease")) < 0)
                                return log_oom();
                }
        }
        if (json_array_size(items) == 0) {
                fprintf(stderr, "No exporters.\n");
                return 0;
        }
        table_print(t);
        return 0;
}

int verb_get(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp get exporters|leases [-o json] [--history]\n"
                "\n"
                "  exporters             The exporters and their DUTs, with labels and leases\n"
                "  leases                Live leases (yours; an admin sees everyone's)\n"
                "\n"
                "  -o, --output FORMAT   table (default) or json: the API's items\n"
                "  --history             leases: add the ended ones the controller remembers\n" CLIENT_CONFIG_HELP;
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "output", required_argument, NULL, 'o' },
                { "history", no_argument, NULL, 'H' },
                { "client-config", required_argument, NULL, ARG_CLIENT_CONFIG },
                {}
        };
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *answer = NULL;
        OutputFormat format = OUTPUT_TABLE;
        bool history = false, leases;
        const char *what;
        json_t *items;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "ho:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 'o':
                        if (parse_output_format(optarg, &format) < 0)
                                return 2;
                        break;
                case 'H':
                        history = true;
                        break;
                case ARG_CLIENT_CONFIG:
                        arg_client_config = optarg;
                        break;
                default:
                        return 2;
                }
        if (argc - optind != 1) {
                fputs(usage, stderr);
                return 2;
        }
        what = argv[optind];
        if (!STR_IN_SET(what, "exporters", "leases")) {
                fprintf(stderr, "jmp: unknown resource '%s': use exporters or leases.\n", what);
                return 2;
        }
        leases = streq(what, "leases");
        if (history && !leases) {
                fprintf(stderr, "jmp: --history is only for 'jmp get leases'.\n");
                return 2;
        }

        if (remote_open(&cfg, &api) < 0)
                return 1;
        if (remote_get_items(api, leases ? (history ? "/leases?history=true" : "/leases") : "/exporters", what,
                             &answer, &items) > 0)
                return 1;
        if (leases) {
                print_leases(items, format, true);
                return 0;
        }
        if (format == OUTPUT_JSON) {
                print_json(items);
                return 0;
        }
        return print_exporters(items) < 0 ? 1 : 0;
}
