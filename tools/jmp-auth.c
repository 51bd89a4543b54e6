/* jmp auth rotate: a new token for this client (or exporter), written into its config file */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api-client.h"
#include "client-config.h"
#include "config.h"
#include "file-util.h"
#include "jmp.h"
#include "log.h"
#include "macro.h"

#define CONFIG_FILE_MAX (1024 * 1024)

DEFINE_TRIVIAL_CLEANUP_FUNC(ExporterConfig *, exporter_config_free);

/* The file with its top-level "token:" line replaced; the rest (comments, DUTs) stays as written. */
static int config_text_with_token(const char *text, const char *token, char **ret) {
        _cleanup_free_ char *q = yaml_quote_string(token);
        const char *line = text, *end;
        char *out;

        if (!q)
                return -ENOMEM;
        for (; line && *line; line = end ? end + 1 : NULL) {
                end = strchr(line, '\n');
                if (strncmp(line, "token:", 6) != 0)
                        continue;
                if (asprintf(&out, "%.*stoken: %s%s", (int) (line - text), text, q, end ? end : "\n") < 0)
                        return -ENOMEM;
                *ret = out;
                return 0;
        }
        return -ENOENT;
}

static int rewrite_token(const char *path, const char *token) {
        _cleanup_free_ char *text = NULL, *out = NULL;
        size_t size = 0;
        struct stat st;
        int r;

        r = read_file_at_most(path, CONFIG_FILE_MAX, &text, &size);
        if (r < 0)
                return r;
        r = config_text_with_token(text, token, &out);
        if (r < 0)
                return r;
        if (stat(path, &st) < 0)
                return -errno;
        return write_file_atomic(path, out, strlen(out), st.st_mode & 07777 & ~077);
}

int verb_auth(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp auth rotate [--lifetime DURATION] [--grace DURATION] [--exporter-config FILE]\n"
                "\n"
                "Asks the controller for a new token for this client (or, with --exporter-config, for that\n"
                "exporter) and writes it into the config file in place of the old one. The old token keeps\n"
                "working for the grace (default 5m), so that a running agent or exporter switches without a\n"
                "gap; --grace 0 ends it at once.\n"
                "\n"
                "  --lifetime DURATION      How long the new token is valid (default: the controller's, 365d)\n"
                "  --grace DURATION         How long the old token keeps working (default 5m)\n"
                "  --exporter-config FILE   Rotate the token of the exporter this ExporterConfig belongs to\n"
                CLIENT_CONFIG_HELP;
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "lifetime", required_argument, NULL, 'l' },
                { "grace", required_argument, NULL, 'g' },
                { "exporter-config", required_argument, NULL, 'e' },
                { "client-config", required_argument, NULL, ARG_CLIENT_CONFIG },
                {}
        };
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(exporter_config_freep) ExporterConfig *ecfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *body = json_object(), *answer = NULL;
        _cleanup_free_ char *error = NULL;
        const char *exporter_config = NULL, *path;
        int c, r;

        if (!body)
                return log_oom(), 1;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 'l':
                case 'g':
                        if (check_duration(optarg, c == 'l' ? "--lifetime" : "--grace") < 0 && !streq(optarg, "0"))
                                return 2;
                        if (json_object_set_new(body, c == 'l' ? "lifetime" : "grace", json_string(optarg)) < 0)
                                return log_oom(), 1;
                        break;
                case 'e':
                        exporter_config = optarg;
                        break;
                case ARG_CLIENT_CONFIG:
                        arg_client_config = optarg;
                        break;
                default:
                        fputs(usage, stderr);
                        return 2;
                }
        if (argc - optind != 1 || !streq(argv[optind], "rotate")) {
                fputs(usage, stderr);
                return 2;
        }

        if (exporter_config) {
                r = exporter_config_load(exporter_config, &ecfg, &error);
                if (r < 0) {
                        fprintf(stderr, "jmp: %s\n", error ?: strerror(-r));
                        return 1;
                }
                if (!ecfg->endpoint) {
                        fprintf(stderr, "jmp: %s has no endpoint: a local exporter has no token.\n", exporter_config);
                        return 1;
                }
                /* The exporter's link, as a client of the API. */
                cfg = calloc(1, sizeof(ClientConfig));
                if (!cfg)
                        return log_oom(), 1;
                cfg->name = strdup(ecfg->name);
                cfg->endpoint = strdup(ecfg->endpoint);
                cfg->token = strdup(ecfg->token);
                cfg->insecure = ecfg->tls_insecure;
                if (!cfg->name || !cfg->endpoint || !cfg->token)
                        return log_oom(), 1;
                if (ecfg->tls_ca)
                        cfg->ca_pem = strdup(ecfg->tls_ca);
                else if (ecfg->tls_ca_path && read_file_bounded(ecfg->tls_ca_path, CONFIG_FILE_MAX, &cfg->ca_pem) < 0) {
                        fprintf(stderr, "jmp: cannot read the CA %s.\n", ecfg->tls_ca_path);
                        return 1;
                }
                if (ecfg->tls_ca && !cfg->ca_pem)
                        return log_oom(), 1;
                r = api_client_new(cfg, &api);
                if (r < 0)
                        return log_oom(), 1;
                path = exporter_config;
        } else {
                if (remote_open(&cfg, &api) < 0)
                        return 1;
                path = cfg->path;
        }

        r = api_client_call(api, "POST", "/auth/rotate", body, &answer);
        if (r < 0)
                return remote_fail(api, r, "Failed to rotate the token");
        if (!bearer_token_is_valid(str_member(answer, "token"))) {
                fprintf(stderr, "jmp: the controller's answer carries no usable token.\n");
                return 1;
        }
        r = path ? rewrite_token(path, str_member(answer, "token")) : -ENOENT;
        if (r < 0) {
                /* The controller has switched: without the new token in a file, this one is all there is. */
                fprintf(stderr, "jmp: cannot write the new token into %s (%s); it is:\n%s\n", strna(path), strerror(-r),
                        str_member(answer, "token"));
                return 1;
        }
        printf("Rotated the token of %s; %s holds the new one (expires %s).", str_member(answer, "name"), path,
               strna(str_member(answer, "tokenExpires")));
        if (str_member(answer, "previousValidUntil"))
                printf(" The old one works until %s.\n", str_member(answer, "previousValidUntil"));
        else
                printf(" The old one no longer works.\n");
        return 0;
}
