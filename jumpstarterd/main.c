/* jumpstarterd: command line, event loop, signals and service notification */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "agent-bus.h"
#include "config.h"
#include "daemon-util.h"
#include "exporter.h"
#include "log.h"
#include "macro.h"
#include "version.h"

/* Drivers that never finish powering off must not keep a stopping daemon alive. */
#define SHUTDOWN_TIMEOUT_USEC (10 * USEC_PER_SEC)

static const char *arg_config = NULL;
static const char *arg_listen = NULL;
static bool arg_debug = false;

DEFINE_TRIVIAL_CLEANUP_FUNC(ExporterConfig *, exporter_config_free);

typedef struct Daemon {
        sd_event *event;
        Exporter *exporter;
        bool stopping;
        sd_event_source *shutdown_timer;
} Daemon;

static void help(void) {
        printf("Usage: %s --config FILE --listen SOCKET [--debug]\n\n"
               "Host service for hardware-in-the-loop labs, in local mode: runs the drivers of the DUTs\n"
               "in FILE (an ExporterConfig) and serves the agent D-Bus API peer to peer on SOCKET.\n\n"
               "  -h --help            Show this help\n"
               "     --version         Show the version\n"
               "  -c --config=FILE     Exporter configuration (YAML)\n"
               "  -l --listen=SOCKET   UNIX socket to serve the agent API on (created mode 0600)\n"
               "  -d --debug           Log debug messages\n",
               program_invocation_short_name);
}

/* Returns 1 to go on, 0 to exit successfully, negative errno on a usage error. */
static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, 'c' },
                { "listen", required_argument, NULL, 'l' },
                { "debug", no_argument, NULL, 'd' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hc:l:d", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("jumpstarterd %s\n", PACKAGE_VERSION);
                        return 0;
                case 'c':
                        arg_config = optarg;
                        break;
                case 'l':
                        arg_listen = optarg;
                        break;
                case 'd':
                        arg_debug = true;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return log_error_errno(EINVAL, "Unknown option code %c", c);
                }

        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument %s; see --help", argv[optind]);
        if (!arg_config)
                return log_error_errno(EINVAL, "--config FILE is required; see --help");
        if (!arg_listen)
                return log_error_errno(EINVAL, "--listen SOCKET is required; see --help");
        return 1;
}

static int on_shutdown_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;

        log_warning("DUTs did not power off within %" PRIu64 "s, exiting anyway", SHUTDOWN_TIMEOUT_USEC / USEC_PER_SEC);
        return sd_event_exit(d->event, 0);
}

static void on_powered_off(void *userdata) {
        Daemon *d = userdata;

        log_debug("Every DUT is powered off");
        (void) sd_event_exit(d->event, 0);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Daemon *d = userdata;
        int r;

        if (d->stopping) {
                log_notice("Received %s again, exiting at once", strsignal((int) si->ssi_signo));
                return sd_event_exit(d->event, 0);
        }
        d->stopping = true;

        log_info("Received %s, powering off every DUT and exiting", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Powering off DUTs");

        r = sd_event_add_time_relative(d->event, &d->shutdown_timer, CLOCK_MONOTONIC, SHUTDOWN_TIMEOUT_USEC, 0,
                                       on_shutdown_timeout, d);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the shutdown timeout, ignoring: %m");

        if (exporter_power_off_all(d->exporter, on_powered_off, d) > 0)
                return sd_event_exit(d->event, 0);
        return 0;
}

static int run(int argc, char *argv[]) {
        _cleanup_(exporter_config_freep) ExporterConfig *config = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(exporter_freep) Exporter *exporter = NULL;
        _cleanup_(agent_freep) Agent *agent = NULL;
        _cleanup_free_ char *config_error = NULL;
        Daemon daemon = {};
        sigset_t mask;
        int r;

        log_setup("jumpstarterd");

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        if (arg_debug)
                log_set_max_level(LOG_DEBUG);

        r = exporter_config_load(arg_config, &config, &config_error);
        if (r < 0) {
                if (config_error)
                        return log_error_errno(r, "%s", config_error);
                return log_error_errno(r, "Failed to load %s: %m", arg_config);
        }

        /* Signals arrive through the event loop, never in the middle of a driver callback. SIGCHLD
         * too: sd_event_add_child() (commands, QEMU) needs it blocked in every thread, so before
         * anything starts one. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        daemon.event = event;

        r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, &daemon);
        if (r < 0)
                return log_error_errno(r, "Failed to handle SIGTERM: %m");
        r = sd_event_add_signal(event, NULL, SIGINT, on_signal, &daemon);
        if (r < 0)
                return log_error_errno(r, "Failed to handle SIGINT: %m");

        r = exporter_new(event, config, &exporter);
        if (r < 0)
                return r;
        daemon.exporter = exporter;

        r = agent_new(event, exporter, arg_listen, &agent);
        if (r < 0)
                return r;

        log_info("Serving %zu DUT%s of %s on %s", exporter_n_duts(exporter), exporter_n_duts(exporter) == 1 ? "" : "s",
                 config->path, arg_listen);
        (void) sd_notifyf(false, "READY=1\nSTATUS=Serving %zu DUT%s on %s", exporter_n_duts(exporter),
                          exporter_n_duts(exporter) == 1 ? "" : "s", arg_listen);

        /* After READY=1: enabling it sends the first WATCHDOG=1 at once. A no-op without
         * WATCHDOG_USEC. */
        r = sd_event_set_watchdog(event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");

        r = sd_event_loop(event);

        /* Clients first (they hold storage sessions on DUTs), then the DUTs. */
        agent = agent_free(agent);
        exporter = exporter_free(exporter);
        daemon.shutdown_timer = sd_event_source_disable_unref(daemon.shutdown_timer);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
