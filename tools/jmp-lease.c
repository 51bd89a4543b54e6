/* jmp lease: create, list, release and extend leases on a controller */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "agent-client.h"
#include "api-client.h"
#include "client-config.h"
#include "config.h"
#include "jmp.h"
#include "log.h"
#include "parse-util.h"

/* How long to wait before following a lease again after its stream broke off. */
#define RECONNECT_USEC (1 * USEC_PER_SEC)

static volatile sig_atomic_t interrupted = 0;

static void on_signal(int sig) {
        interrupted = 1;
}

static int check_lease_name(const char *name) {
        if (!dut_name_is_valid(name)) {
                fprintf(stderr, "jmp: '%s' is not a valid lease name: use [a-z0-9][a-z0-9-]{0,62}.\n", name);
                return -EINVAL;
        }
        return 0;
}

static void print_one_lease(json_t *lease, OutputFormat format) {
        _cleanup_(json_decrefp) json_t *items = NULL;

        if (format == OUTPUT_JSON) {
                print_json(lease);
                return;
        }
        items = json_pack("[O]", lease);
        if (items)
                print_leases(items, OUTPUT_TABLE, false);
}

typedef struct WaitState {
        const char *name;
        json_t *lease;       /* the latest we saw */
        char *last_progress; /* the last progress line printed */
} WaitState;

static void wait_state_show(WaitState *w) {
        _cleanup_free_ char *text = NULL;

        if (!streq_ptr(str_member(w->lease, "state"), "pending"))
                return;
        text = lease_pending_text(w->lease);
        if (!text || streq_ptr(text, w->last_progress))
                return;
        fprintf(stderr, "waiting: %s\n", text);
        free(w->last_progress);
        w->last_progress = TAKE_PTR(text);
}

/* 1 when the lease is active, 2 when it ended, 0 while it is pending. */
static int wait_state_update(WaitState *w, json_t *lease) {
        const char *state = str_member(lease, "state");

        json_decref(w->lease);
        w->lease = json_incref(lease);
        if (streq_ptr(state, "active"))
                return 1;
        if (streq_ptr(state, "ended"))
                return 2;
        wait_state_show(w);
        return 0;
}

static int on_lease_line(json_t *line, void *userdata) {
        WaitState *w = userdata;
        json_t *lease = json_object_get(line, "lease");

        /* {"type": "lease", "event": ..., "lease": {...}}; a bare lease object is read as well. */
        if (!json_is_object(lease)) {
                if (!json_is_string(json_object_get(line, "state")))
                        return 0; /* ping and other lines */
                lease = line;
        }
        if (!streq_ptr(str_member(lease, "name"), w->name))
                return 0;
        return wait_state_update(w, lease);
}

static void sleep_usec(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t) (usec / USEC_PER_SEC),
                               .tv_nsec = (long) (usec % USEC_PER_SEC * NSEC_PER_USEC) };

        (void) nanosleep(&ts, NULL); /* a signal cuts it short: fine */
}

/* The controller restarts, or a connection in between dropped: worth another try. */
static bool error_is_transient(int r) {
        return r == -ECONNRESET || r == -ECONNREFUSED || r == -EHOSTDOWN || r == -EHOSTUNREACH;
}

static int release_pending(ApiClient *a, const char *name, json_t **ret) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "/leases/%s", name) < 0)
                return log_oom();
        return api_client_call(a, "DELETE", path, NULL, ret);
}

/* Follows a pending lease until it is active, ends, the wait runs out or the user interrupts. */
static int lease_wait(ApiClient *a, json_t *lease, const char *wait_text, uint64_t wait_usec, OutputFormat format) {
        _cleanup_free_ char *watch_path = NULL, *get_path = NULL;
        WaitState w = { .name = str_member(lease, "name") };
        uint64_t deadline;
        int r, ret = 1;

        if (!w.name)
                return fprintf(stderr, "jmp: the controller's answer names no lease.\n"), 1;
        if (asprintf(&watch_path, "/leases/%s/watch", w.name) < 0 || asprintf(&get_path, "/leases/%s", w.name) < 0)
                return log_oom(), 1;

        deadline = now_monotonic_usec() + wait_usec;
        api_client_set_cancel(a, &interrupted);
        api_client_set_deadline(a, deadline);

        r = wait_state_update(&w, lease);
        while (r == 0) {
                _cleanup_(json_decrefp) json_t *now = NULL;

                if (interrupted) {
                        r = -ECANCELED;
                        break;
                }
                if (now_monotonic_usec() >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                r = api_client_watch(a, watch_path, on_lease_line, &w);
                if (r != 0 && !error_is_transient(r))
                        break;
                /* The stream ended without telling the end, broke off, or the controller is away for a
                 * moment (a restart): re-read the lease, then follow it again. */
                if (r != 0) {
                        log_debug("Lease watch ended: %s", api_client_error(a));
                        sleep_usec(RECONNECT_USEC);
                }
                r = api_client_call(a, "GET", get_path, NULL, &now);
                if (r >= 0)
                        r = wait_state_update(&w, now);
                else if (error_is_transient(r))
                        r = 0;
        }

        if (r == 1) {
                print_one_lease(w.lease, format);
                ret = 0;
        } else if (r == 2) {
                const char *reason = str_member(w.lease, "reason");

                if (streq_ptr(reason, "WaitTimeout"))
                        fprintf(stderr, "jmp: no DUT for lease %s within %s (%s); released the lease.\n", w.name,
                                wait_text, strna(w.last_progress));
                else
                        fprintf(stderr, "jmp: lease %s ended before it got a DUT: %s.\n", w.name, strna(reason));
        } else if (r == -ECANCELED || r == -ETIMEDOUT) {
                _cleanup_(json_decrefp) json_t *released = NULL;
                bool gone;
                int k;

                /* Do not leave a lease in the queue that nobody waits for. -ENOENT, -ETIME: it ended
                 * already (the controller's own wait deadline, the same moment as ours). */
                k = release_pending(a, w.name, &released);
                gone = k >= 0 || k == -ENOENT || k == -ETIME;
                if (r == -ECANCELED)
                        fprintf(stderr, "jmp: interrupted; %s the pending lease %s.\n",
                                gone ? "released" : "could not release", w.name);
                else
                        fprintf(stderr, "jmp: no DUT for lease %s within %s (%s); %s the lease.\n", w.name,
                                wait_text, strna(w.last_progress), gone ? "released" : "could not release");
                if (!gone)
                        fprintf(stderr, "jmp: releasing lease %s: %s\n", w.name, api_client_error(a));
        } else {
                remote_fail(a, r, "Failed to follow lease %s", w.name);
                if (r != -ENOENT && release_pending(a, w.name, NULL) >= 0)
                        fprintf(stderr, "jmp: released the pending lease %s.\n", w.name);
        }

        json_decref(w.lease);
        free(w.last_progress);
        return ret;
}

static int lease_create(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp lease create --selector SELECTOR --duration DURATION [OPTIONS]\n"
                "\n"
                "Asks the controller for a DUT whose labels match SELECTOR, for DURATION, and prints\n"
                "the lease: active when a matching DUT is free, else pending in the queue.\n"
                "\n"
                "  --selector SELECTOR   Label selector: 'vendor=acme,model in (widget-v2,widget-v3)'\n"
                "  --duration DURATION   How long to hold the DUT once assigned: 30m, 1h, 1.5h\n"
                "  --name NAME           The lease's name (default: the controller makes one up)\n"
                "  --meta KEY=VALUE      Metadata to attach; may be repeated\n"
                "  --priority N          Queue priority, higher first (default 0)\n"
                "  --wait DURATION       If pending, wait up to DURATION for a DUT and show progress;\n"
                "                        when none comes, release the lease and fail\n"
                "  -o, --output FORMAT   table (default) or json\n" CLIENT_CONFIG_HELP;
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "selector", required_argument, NULL, 's' },
                { "duration", required_argument, NULL, 'd' },
                { "name", required_argument, NULL, 'n' },
                { "meta", required_argument, NULL, 'm' },
                { "priority", required_argument, NULL, 'p' },
                { "wait", required_argument, NULL, 'w' },
                { "output", required_argument, NULL, 'o' },
                { "client-config", required_argument, NULL, ARG_CLIENT_CONFIG },
                {}
        };
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *meta = NULL, *body = NULL, *lease = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *selector = NULL, *duration = NULL, *name = NULL, *wait = NULL;
        OutputFormat format = OUTPUT_TABLE;
        uint64_t wait_usec = 0;
        long long priority = 0;
        bool have_priority = false;
        struct sigaction sa = { .sa_handler = on_signal };
        int c, r;

        meta = json_object();
        if (!meta)
                return log_oom(), 1;
        optind = 0;
        while ((c = getopt_long(argc, argv, "ho:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 's':
                        selector = optarg;
                        break;
                case 'd':
                        if (check_duration(optarg, "--duration") < 0)
                                return 2;
                        duration = optarg;
                        break;
                case 'n':
                        if (check_lease_name(optarg) < 0)
                                return 2;
                        name = optarg;
                        break;
                case 'm':
                        if (parse_key_value(optarg, meta, "--meta") < 0)
                                return 2;
                        break;
                case 'p': {
                        char *end;

                        errno = 0;
                        priority = strtoll(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || priority < INT_MIN || priority > INT_MAX) {
                                fprintf(stderr, "jmp: invalid --priority '%s': write an integer.\n", optarg);
                                return 2;
                        }
                        have_priority = true;
                        break;
                }
                case 'w':
                        if (check_duration(optarg, "--wait") < 0 || parse_duration(optarg, &wait_usec) < 0)
                                return 2;
                        wait = optarg;
                        break;
                case 'o':
                        if (parse_output_format(optarg, &format) < 0)
                                return 2;
                        break;
                case ARG_CLIENT_CONFIG:
                        arg_client_config = optarg;
                        break;
                default:
                        return 2;
                }
        if (check_no_arguments(argc, argv, usage) < 0)
                return 2;
        if (!selector || !duration) {
                fprintf(stderr, "jmp: --selector and --duration are required.\n%s", usage);
                return 2;
        }

        /* Leases of this host's DUTs on the system bus, unless a controller is meant (docs/dbus.md). */
        if (bus_lease_open(&bus) > 0) {
                uint64_t usec;

                if (name || wait || have_priority || json_object_size(meta) > 0) {
                        fprintf(stderr, "jmp: --name, --meta, --priority and --wait are for a controller's leases; "
                                        "name one with --client-config.\n");
                        return 2;
                }
                if (parse_duration(duration, &usec) < 0)
                        return fprintf(stderr, "jmp: invalid --duration '%s'.\n", duration), 2;
                return bus_lease_create(bus, selector, usec, format == OUTPUT_JSON);
        }

        body = json_pack("{s:s, s:s}", "selector", selector, "duration", duration);
        if (!body)
                return fprintf(stderr, "jmp: the selector is not UTF-8.\n"), 2;
        if ((name && json_object_set_new(body, "name", json_string(name)) < 0) ||
            (json_object_size(meta) > 0 && json_object_set(body, "metadata", meta) < 0) ||
            (have_priority && json_object_set_new(body, "priority", json_integer(priority)) < 0) ||
            (wait && json_object_set_new(body, "wait", json_string(wait)) < 0))
                return log_oom(), 1;

        if (remote_open(&cfg, &api) < 0)
                return 1;

        if (wait) {
                /* Ctrl-C while waiting must not leave the lease in the queue. */
                (void) sigaction(SIGINT, &sa, NULL);
                (void) sigaction(SIGTERM, &sa, NULL);
        }

        r = api_client_call(api, "POST", "/leases", body, &lease);
        if (r < 0)
                return remote_fail(api, r, "Failed to create a lease");
        if (!json_is_object(lease))
                return fprintf(stderr, "jmp: the controller's answer is no lease.\n"), 1;

        if (!wait || !streq_ptr(str_member(lease, "state"), "pending")) {
                print_one_lease(lease, format);
                if (streq_ptr(str_member(lease, "state"), "pending") && format == OUTPUT_TABLE)
                        fprintf(stderr, "Lease %s is pending; 'jmp lease list' shows when it is active.\n",
                                strna(str_member(lease, "name")));
                return 0;
        }
        return lease_wait(api, lease, wait, wait_usec, format);
}

static int lease_list(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp lease list [-o json]\n"
                "\n"
                "Lists your live leases (an admin's: everyone's).\n"
                "\n"
                "  -o, --output FORMAT   table (default) or json\n" CLIENT_CONFIG_HELP;
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *answer = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        OutputFormat format = OUTPUT_TABLE;
        json_t *items;
        int r;

        r = parse_remote_options(argc, argv, usage, &format, NULL);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (check_no_arguments(argc, argv, usage) < 0)
                return 2;
        if (bus_lease_open(&bus) > 0)
                return bus_lease_list(bus, format == OUTPUT_JSON);
        if (remote_open(&cfg, &api) < 0)
                return 1;
        if (remote_get_items(api, "/leases", "leases", &answer, &items) > 0)
                return 1;
        print_leases(items, format, false);
        return 0;
}

static int lease_release(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp lease release NAME\n"
                "\n"
                "Ends a lease, pending or active; its DUT goes to the next in the queue.\n"
                "\n" CLIENT_CONFIG_HELP;
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *lease = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *path = NULL;
        const char *name;
        int r;

        r = parse_remote_options(argc, argv, usage, NULL, NULL);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (argc - optind != 1) {
                fputs(usage, stderr);
                return 2;
        }
        name = argv[optind];
        if (check_lease_name(name) < 0)
                return 2;
        if (bus_lease_open(&bus) > 0)
                return bus_lease_release(bus, name);
        if (remote_open(&cfg, &api) < 0)
                return 1;
        if (asprintf(&path, "/leases/%s", name) < 0)
                return log_oom(), 1;
        r = api_client_call(api, "DELETE", path, NULL, &lease);
        if (r < 0)
                return remote_fail(api, r, "Failed to release lease %s", name);
        printf("Lease %s %s.\n", name, streq_ptr(str_member(lease, "reason"), "Revoked") ? "revoked" : "released");
        return 0;
}

static int lease_extend(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp lease extend NAME --by DURATION\n"
                "\n"
                "Moves an active lease's end DURATION later (15m, 1h).\n"
                "\n" CLIENT_CONFIG_HELP;
        _cleanup_(client_config_freep) ClientConfig *cfg = NULL;
        _cleanup_(api_client_freep) ApiClient *api = NULL;
        _cleanup_(json_decrefp) json_t *lease = NULL, *body = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *path = NULL;
        const char *name, *by = NULL;
        int r;

        r = parse_remote_options(argc, argv, usage, NULL, &by);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (argc - optind != 1 || !by) {
                fprintf(stderr, "%s%s", argc - optind == 1 ? "jmp: --by DURATION is required.\n" : "", usage);
                return 2;
        }
        name = argv[optind];
        if (check_lease_name(name) < 0)
                return 2;
        if (bus_lease_open(&bus) > 0) {
                uint64_t usec;

                if (parse_duration(by, &usec) < 0)
                        return fprintf(stderr, "jmp: invalid --by '%s'.\n", by), 2;
                return bus_lease_extend(bus, name, usec);
        }
        body = json_pack("{s:s}", "by", by);
        if (!body)
                return log_oom(), 1;
        if (remote_open(&cfg, &api) < 0)
                return 1;
        if (asprintf(&path, "/leases/%s/extend", name) < 0)
                return log_oom(), 1;
        r = api_client_call(api, "POST", path, body, &lease);
        if (r < 0)
                return remote_fail(api, r, "Failed to extend lease %s", name);
        printf("Lease %s now ends at %s.\n", name, strna(str_member(lease, "end")));
        return 0;
}

int verb_lease(int argc, char *argv[]) {
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                printf("Usage: jmp lease create|list|release|extend [OPTIONS]\n"
                       "\n"
                       "  create --selector SEL --duration D [--name NAME] [--meta K=V]... [--priority N]\n"
                       "         [--wait D] [-o json]     Lease a DUT that matches SEL\n"
                       "  list [-o json]                  Show your leases\n"
                       "  release NAME                    End a lease\n"
                       "  extend NAME --by D              Make an active lease longer\n"
                       "\n"
                       "Each takes --client-config FILE. See 'jmp lease COMMAND --help'.\n");
                return argc < 2 ? 2 : 0;
        }
        if (streq(argv[1], "create"))
                return lease_create(argc - 1, argv + 1);
        if (streq(argv[1], "list"))
                return lease_list(argc - 1, argv + 1);
        if (streq(argv[1], "release"))
                return lease_release(argc - 1, argv + 1);
        if (streq(argv[1], "extend"))
                return lease_extend(argc - 1, argv + 1);
        fprintf(stderr, "jmp: unknown command 'lease %s'. Run 'jmp lease --help'.\n", argv[1]);
        return 2;
}
