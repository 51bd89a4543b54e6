/* jmp: the command line of Jumpstarter */
#include <getopt.h>
#include <stdio.h>

#include "jmp.h"
#include "log.h"
#include "version.h"

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
               "Run 'jmp COMMAND --help' for a command's options. See jmp(1).\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
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
        if (streq(argv[optind], "help")) {
                help();
                return 0;
        }

        fprintf(stderr, "jmp: unknown command '%s'. Run 'jmp --help' for the list.\n", argv[optind]);
        return 2;
}
