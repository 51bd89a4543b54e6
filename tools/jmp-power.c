/* jmp power: switch or show a DUT's power */
#include <getopt.h>
#include <stdio.h>

#include "agent-api.h"
#include "agent-client.h"
#include "config.h"
#include "jmp.h"
#include "log.h"

static const char usage[] =
        "Usage: jmp power on|off|cycle|status DUT [--mountpoint DIR]\n"
        "\n"
        "Switches a DUT's power and returns when the driver is done, or prints its state\n"
        "(on, off or unknown). With --mountpoint, the DUT of the local mode at DIR; else the DUT\n"
        "of jumpstarterd on the system bus when it is there (under polkit, docs/dbus.md); else\n"
        "the DUT of the local mode that runs.\n";

int verb_power(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "mountpoint", required_argument, NULL, 'm' },
                {}
        };
        _cleanup_(local_instance_freep) LocalInstance *inst = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *mountpoint = NULL, *action, *dut, *state;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "hm:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 'm':
                        mountpoint = optarg;
                        break;
                default:
                        return 2;
                }
        if (argc - optind != 2) {
                fputs(usage, stderr);
                return 2;
        }
        action = argv[optind];
        dut = argv[optind + 1];
        if (!STR_IN_SET(action, "on", "off", "cycle", "status")) {
                fprintf(stderr, "jmp: unknown power action '%s': use on, off, cycle or status.\n", action);
                return 2;
        }
        if (!dut_name_is_valid(dut)) {
                fprintf(stderr, "jmp: '%s' is not a valid DUT name.\n", dut);
                return 2;
        }

        /* An explicit --mountpoint means that local mode; else the host's jumpstarterd on the system
         * bus when it is there; else the local mode that runs (docs/dbus.md). */
        if (!mountpoint && agent_connect_system(&bus) > 0)
                goto connected;

        r = local_instance_find(mountpoint, &inst);
        if (r == -ENOENT) {
                fprintf(stderr, "jmp: local mode is not running%s%s; start it with 'jmp local start'.\n",
                        mountpoint ? " at " : "", mountpoint ?: "");
                return 1;
        }
        if (r == -ENOTUNIQ) {
                fprintf(stderr, "jmp: local mode runs at several mount points; name one with --mountpoint.\n");
                return 2;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to look up local mode: %m"), 1;
        if (inst->daemon_pid <= 0) {
                fprintf(stderr, "jmp: jumpstarterd is not running at %s.\n", inst->mountpoint);
                return 1;
        }
        if (agent_connect(inst, &bus) < 0)
                return 1;

connected:
        if (streq(action, "status")) {
                r = sd_bus_call_method(bus, agent_destination(bus), AGENT_OBJECT_PATH, AGENT_INTERFACE, "GetPower",
                                       &error, &reply, "s", dut);
                if (r < 0)
                        return agent_call_error(dut, &error, r), 1;
                r = sd_bus_message_read(reply, "s", &state);
                if (r < 0)
                        return log_error_errno(r, "Failed to parse reply: %m"), 1;
                printf("%s\n", state);
                return 0;
        }

        /* Switching may take a while with a slow switch; sd-bus' default of 25 s is the limit. */
        r = sd_bus_call_method(bus, agent_destination(bus), AGENT_OBJECT_PATH, AGENT_INTERFACE, "SetPower", &error,
                               NULL, "ss", dut, action);
        if (r < 0)
                return agent_call_error(dut, &error, r), 1;
        return 0;
}
