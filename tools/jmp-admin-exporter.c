/* jmp admin exporter enable|disable|clear NAME: take a DUT out of the pool, or put it back */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-client.h"
#include "client-config.h"
#include "config.h"
#include "jmp.h"
#include "log.h"
#include "macro.h"

int admin_exporter(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp admin exporter enable|disable|clear EXPORTER[/DUT]\n"
                "\n"
                "disable takes the DUT (every DUT of the exporter without /DUT) out of the pool: its lease runs\n"
                "to its end, it gets no new one. enable undoes disable. clear removes the mark a failed health\n"
                "check or lease hook put on it, so that it is leased again before its next check passes.\n"
                "Needs an admin client, or a role with the verb 'admin' on the DUT (docs/policy.md).\n"
                CLIENT_CONFIG_HELP;
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *answer = NULL, *body = NULL;
        _cleanup_free_ char *exporter = NULL, *path = NULL;
        const char *action, *slash;
        json_t *d;
        size_t i;
        int r;

        r = parse_remote_options(argc, argv, usage, NULL, NULL);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (argc - optind != 2 || !STR_IN_SET(argv[optind], "enable", "disable", "clear")) {
                fputs(usage, stderr);
                return 2;
        }
        action = argv[optind];
        slash = strchr(argv[optind + 1], '/');
        exporter = slash ? strndup(argv[optind + 1], (size_t) (slash - argv[optind + 1])) : strdup(argv[optind + 1]);
        if (!exporter)
                return log_oom(), 1;
        if (!dut_name_is_valid(exporter) || (slash && !dut_name_is_valid(slash + 1))) {
                fprintf(stderr, "jmp: invalid name '%s': use EXPORTER or EXPORTER/DUT.\n", argv[optind + 1]);
                return 2;
        }
        body = slash ? json_pack("{s:s}", "dut", slash + 1) : json_object();
        if (!body || asprintf(&path, "/admin/exporters/%s/%s", exporter, action) < 0)
                return log_oom(), 1;
        if (remote_open(&cfg, &api) < 0)
                return 1;
        r = api_client_call(api, "POST", path, body, &answer);
        if (r < 0)
                return remote_fail(api, r, "Failed to %s %s", action, argv[optind + 1]);
        json_array_foreach(json_object_get(answer, "duts"), i, d) {
                const char *name = str_member(d, "name");

                if (slash && !streq_ptr(name, slash + 1))
                        continue;
                printf("%s/%s: %s%s%s\n", exporter, strna(name), strna(str_member(d, "state")),
                       str_member(d, "unhealthy") ? ", unhealthy: " : "", strempty(str_member(d, "unhealthy")));
        }
        return 0;
}
