/* jumpstarterd: command line, event loop, signals and service notification */
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "agent-bus.h"
#include "agent-role.h"
#include "lease-watcher.h"
#include "config.h"
#include "controller.h"
#include "daemon-util.h"
#include "exporter.h"
#include "exporter-hooks.h"
#include "exporter-link.h"
#include "exporter-metrics.h"
#include "log.h"
#include "macro.h"
#include "stream-owner.h"
#include "version.h"

/* Drivers that never finish powering off must not keep a stopping daemon alive. */
#define SHUTDOWN_TIMEOUT_USEC (10 * USEC_PER_SEC)

static const char *arg_config = NULL;
static const char *arg_listen = NULL;
static bool arg_debug = false;
/* The system bus API (docs/dbus.md), beside the private socket. */
static bool arg_system_bus = false;
static const char *arg_share_group = NULL;
/* Data streams in direct mode (no controller): docs/drivers.md, type remote. */
static const char *arg_streams_listen = NULL;
static const char *arg_streams_keyring = NULL;
static const char *arg_streams_issuer = NULL;
static char *arg_streams_leases[64];
static size_t arg_n_streams_leases = 0;

DEFINE_TRIVIAL_CLEANUP_FUNC(ExporterConfig *, exporter_config_free);

/* Local mode: SIGHUP re-reads the ExporterConfig; DUTs added or removed there come and go (docs/files.md). */
static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Exporter *e = userdata;

        log_info("Received SIGHUP, reloading %s", arg_config);
        (void) exporter_reload_file(e, arg_config);
        return 0;
}

typedef struct Daemon {
        sd_event *event;
        Exporter *exporter;
        bool stopping;
        sd_event_source *shutdown_timer;
} Daemon;

static void help(void) {
        printf("Usage: %s --config FILE --listen SOCKET [--debug]\n\n"
               "Host service for hardware-in-the-loop labs, in local mode: runs the drivers of the DUTs\n"
               "in FILE (an ExporterConfig) and serves the agent D-Bus API peer to peer on SOCKET.\n"
               "With a ControllerConfig in FILE, runs the controller instead (no --listen needed).\n\n"
               "  -h --help            Show this help\n"
               "     --version         Show the version\n"
               "  -c --config=FILE     Exporter configuration (YAML)\n"
               "  -l --listen=SOCKET   UNIX socket to serve the agent API on (created mode 0600)\n"
               "  -d --debug           Log debug messages\n"
               "     --system-bus      Also serve the API on the system bus as dev.jumpstarter.Jumpstarter1,\n"
               "                       under polkit (docs/dbus.md)\n"
               "     --share-group=GROUP  Members of GROUP share every leased DUT with its holder\n"
               "     --streams-listen=ADDR   Serve data streams on IP:PORT without a controller (direct mode)\n"
               "     --streams-keyring=DIR   Keyring directory whose keys sign the stream tokens\n"
               "     --streams-issuer=NAME   The \"iss\" the stream tokens must carry\n"
               "     --streams-lease=DUT=LEASE  The lease that holds DUT (repeatable)\n",
               program_invocation_short_name);
}

/* Returns 1 to go on, 0 to exit successfully, negative errno on a usage error. */
static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_STREAMS_LISTEN, ARG_STREAMS_KEYRING, ARG_STREAMS_ISSUER, ARG_STREAMS_LEASE,
               ARG_SYSTEM_BUS, ARG_SHARE_GROUP };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, 'c' },
                { "listen", required_argument, NULL, 'l' },
                { "debug", no_argument, NULL, 'd' },
                { "streams-listen", required_argument, NULL, ARG_STREAMS_LISTEN },
                { "streams-keyring", required_argument, NULL, ARG_STREAMS_KEYRING },
                { "streams-issuer", required_argument, NULL, ARG_STREAMS_ISSUER },
                { "streams-lease", required_argument, NULL, ARG_STREAMS_LEASE },
                { "system-bus", no_argument, NULL, ARG_SYSTEM_BUS },
                { "share-group", required_argument, NULL, ARG_SHARE_GROUP },
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
                case ARG_STREAMS_LISTEN:
                        arg_streams_listen = optarg;
                        break;
                case ARG_STREAMS_KEYRING:
                        arg_streams_keyring = optarg;
                        break;
                case ARG_STREAMS_ISSUER:
                        arg_streams_issuer = optarg;
                        break;
                case ARG_STREAMS_LEASE:
                        if (arg_n_streams_leases + 1 >= ELEMENTSOF(arg_streams_leases))
                                return log_error_errno(E2BIG, "Too many --streams-lease options");
                        arg_streams_leases[arg_n_streams_leases++] = optarg;
                        break;
                case ARG_SYSTEM_BUS:
                        arg_system_bus = true;
                        break;
                case ARG_SHARE_GROUP:
                        arg_share_group = optarg;
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
        if (arg_streams_listen && (!arg_streams_keyring || !arg_streams_issuer))
                return log_error_errno(EINVAL, "--streams-listen needs --streams-keyring and --streams-issuer");
        /* --listen is checked once the config's kind is known: the controller role needs none. */
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

/* Controller role (jumpstarterd/controller/): a ControllerConfig serves the controller API. */
static int on_controller_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        log_info("Received %s, stopping the controller", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int run_controller(void) {
        _cleanup_(controller_config_freep) ControllerConfig *config = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(controller_freep) Controller *controller = NULL;
        _cleanup_free_ char *config_error = NULL;
        sigset_t mask;
        int r;

        r = controller_config_load(arg_config, &config, &config_error);
        if (r < 0)
                return log_error_errno(r, "%s", config_error ?: strerror(-r));

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        /* SIGHUP reloads the access policy (policy.c); without one, a SIGHUP sent to every daemon after a
         * config edit must still not end this one. */
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = sd_event_add_signal(event, NULL, SIGTERM, on_controller_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_controller_signal, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to handle signals: %m");

        r = controller_new(event, config, &controller);
        if (r < 0)
                return r;
        (void) sd_notifyf(false, "READY=1\nSTATUS=Controller %s serving on %s", config->name, config->listen);
        r = sd_event_set_watchdog(event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");

        r = sd_event_loop(event);
        if (r < 0)
                return log_error_errno(r, "Controller stopped: %m");
        return 0;
}

static int run(int argc, char *argv[]) {
        _cleanup_(exporter_config_freep) ExporterConfig *config = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(exporter_freep) Exporter *exporter = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *system_bus = NULL;
        _cleanup_(agent_freep) Agent *agent = NULL;
        _cleanup_(exporter_link_freep) ExporterLink *link = NULL;
        _cleanup_(stream_owner_freep) StreamOwner *streams = NULL;
        _cleanup_(exporter_hooks_freep) ExporterHooks *hooks = NULL; /* freed before the link */
        _cleanup_(exporter_metrics_freep) ExporterMetrics *metrics = NULL; /* before the link it reads */
        _cleanup_free_ char *config_error = NULL;
        /* Agent role (jumpstarterd/agent/): with a ClientConfig, the DUTs are the client's leases. */
        _cleanup_(client_config_freep) ClientConfig *client_config = NULL;
        _cleanup_(lease_watcher_freep) LeaseWatcher *lease_watcher = NULL;
        Daemon daemon = {};
        sigset_t mask;
        int r;

        log_setup("jumpstarterd");

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        if (arg_debug)
                log_set_max_level(LOG_DEBUG);

        {
                _cleanup_free_ char *kind = NULL;

                r = config_file_peek_kind(arg_config, &kind);
                if (r >= 0 && streq_ptr(kind, CONTROLLER_CONFIG_KIND))
                        return run_controller();
        }
        if (!arg_listen)
                return log_error_errno(EINVAL, "--listen SOCKET is required; see --help");

        r = agent_role_load(arg_config, &client_config, &config);
        if (r < 0)
                return r;
        if (r == 0)
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
        sigaddset(&mask, SIGHUP);
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

        if (arg_share_group) {
                struct group *g;

                errno = 0;
                g = getgrnam(arg_share_group);
                if (!g)
                        return log_error_errno(errno > 0 ? errno : ENOENT, "--share-group: no group named %s",
                                               arg_share_group);
                agent_set_share_group(agent, g->gr_gid);
        }
        if (arg_system_bus) {
                r = sd_bus_open_system(&system_bus);
                if (r < 0)
                        return log_error_errno(r, "Failed to connect to the system bus: %m");
                r = agent_attach_system_bus(agent, system_bus);
                if (r < 0)
                        return r;
        }

        if (client_config) {
                _cleanup_free_ char *token_dir = NULL;

                if (agent_role_token_dir(arg_listen, &token_dir) < 0)
                        return log_oom();
                r = lease_watcher_new(event, exporter, client_config, token_dir, &lease_watcher);
                if (r < 0)
                        return r;
        } else {
                r = sd_event_add_signal(event, NULL, SIGHUP, on_reload_signal, exporter);
                if (r < 0)
                        return log_error_errno(r, "Failed to handle SIGHUP: %m");
        }

        /* Exporter link: with an endpoint in the config, the exporter also registers with its controller and
         * follows its leases (docs/protocol.md "Exporter link"). Without one, local mode only. */
        if (config->endpoint) {
                r = exporter_link_new(event, config, exporter, &link);
                if (r < 0)
                        return r;
                /* The data stream listener, announced by the link (docs/protocol.md "Data streams"). */
                r = stream_owner_new_linked(event, exporter, config->name, config->streams_listen, link, &streams);
                if (r < 0)
                        return r;
                /* Lease hooks and health checks of the DUTs that have them (docs/policy.md). */
                r = exporter_hooks_new(event, config, link, &hooks);
                if (r < 0)
                        return r;
                r = exporter_link_start(link);
                if (r < 0)
                        return log_error_errno(r, "Failed to start the link to the controller: %m");
        }

        /* Direct mode: data streams without a controller, for remote DUTs configured by hand. */
        if (!config->endpoint && arg_streams_listen) {
                r = stream_owner_new_direct(event, exporter, config->name, arg_streams_listen, arg_streams_keyring,
                                            arg_streams_issuer, arg_streams_leases, &streams);
                if (r < 0)
                        return r;
        }

        /* Prometheus metrics (docs/metrics.md), with metrics.listen in the config. */
        if (config->metrics_listen) {
                r = exporter_metrics_new(event, config, exporter, link, &metrics);
                if (r < 0)
                        return r;
        }

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

        /* The lease watcher first: it removes the leased DUTs, which the agent announces. */
        lease_watcher = lease_watcher_free(lease_watcher);

        /* The link first (it points at the DUTs), then clients (they hold storage sessions on DUTs), then the
         * DUTs. */
        metrics = exporter_metrics_free(metrics);
        streams = stream_owner_free(streams); /* before the link it asks, and the DUTs its streams use */
        hooks = exporter_hooks_free(hooks); /* before the link it reports through */
        link = exporter_link_free(link);
        agent = agent_free(agent);
        exporter = exporter_free(exporter);
        daemon.shutdown_timer = sd_event_source_disable_unref(daemon.shutdown_timer);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        /* Only a lost system bus ends the loop with a code (sd_bus_set_exit_on_disconnect()): exit
         * with a failure, so that Restart=on-failure starts the daemon again. */
        if (r > 0) {
                log_error("The system bus went away, exiting");
                return -ENOTCONN;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        /* A peer that closes a stream while we write to it is an EPIPE, not the end of the daemon
         * (command.c gives its children the default back). */
        (void) signal(SIGPIPE, SIG_IGN);
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
