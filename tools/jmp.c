/* jmp: the command line of Jumpstarter */
#include <getopt.h>
#include <stdio.h>

#include "jmp.h"
#include "log.h"
#include "version.h"

const char *arg_client_config = NULL;

static void help(void) {
        printf("Usage: jmp [--help] [--version] COMMAND ...\n"
               "\n"
               "Lease and drive devices under test (DUTs).\n"
               "\n"
               "Commands:\n"
               "  local start --config FILE [--mountpoint DIR]  Run a config's DUTs on this host, at DIR (/jmp)\n"
               "  local status [--mountpoint DIR]               Show what local mode runs\n"
               "  local stop [--mountpoint DIR]                 Power the DUTs off and stop local mode\n"
               "  power on|off|cycle|status DUT                 Switch or show a DUT's power\n"
               "  storage flash DUT IMAGE [--bmap FILE]         Write an image to a DUT's storage\n"
               "\n"
               "With a controller (distributed mode):\n"
               "  lease create --selector SEL --duration D ... Lease a DUT that matches SEL\n"
               "  lease list|release NAME|extend NAME --by D  Show, end or lengthen your leases\n"
               "  get exporters|leases [-o json]               Show the controller's exporters and leases\n"
               "  admin create|delete client|exporter NAME     Manage clients and exporters (admins)\n"
               "  admin get clients|rotate-key|retire-key KID  List clients, rotate signing keys (admins)\n"
               "  admin exporter enable|disable|clear NAME     Take a DUT out of the pool, or put it back\n"
               "  auth rotate                                  A new token for this client or exporter\n"
               "\n"
               "Options:\n"
               "  --client-config FILE  The ClientConfig of the commands with a controller (default:\n"
               "                        $JMP_CLIENT_CONFIG, else ~/.config/jumpstarter/clients/default.yaml)\n"
               "\n"
               "Run 'jmp COMMAND --help' for a command's options. See jmp(1).\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "client-config", required_argument, NULL, 'C' },
                {}
        };
        int c;

        log_setup("jmp");

        /* Options before the command only; the verbs parse their own. */
        while ((c = getopt_long(argc, argv, "+hV", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("jmp %s\n", PACKAGE_VERSION);
                        return 0;
                case 'C':
                        arg_client_config = optarg;
                        break;
                default:
                        return 2;
                }

        if (optind >= argc) {
                help();
                return 2;
        }
        if (streq(argv[optind], "local"))
                return verb_local(argc - optind, argv + optind);
        if (streq(argv[optind], "power"))
                return verb_power(argc - optind, argv + optind);
        if (streq(argv[optind], "storage"))
                return verb_storage(argc - optind, argv + optind);
        if (streq(argv[optind], "lease"))
                return verb_lease(argc - optind, argv + optind);
        if (streq(argv[optind], "get"))
                return verb_get(argc - optind, argv + optind);
        if (streq(argv[optind], "admin"))
                return verb_admin(argc - optind, argv + optind);
        if (streq(argv[optind], "auth"))
                return verb_auth(argc - optind, argv + optind);
        if (streq(argv[optind], "help")) {
                help();
                return 0;
        }

        fprintf(stderr, "jmp: unknown command '%s'. Run 'jmp --help' for the list.\n", argv[optind]);
        return 2;
}
