/* jmp local: run a config's DUTs on this host without a controller */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "agent-api.h"
#include "agent-client.h"
#include "client-config.h"
#include "config.h"
#include "jmp.h"
#include "local-instance.h"
#include "log.h"
#include "version.h"
#include "yaml-tree.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(ExporterConfig *, exporter_config_free);

#define START_TIMEOUT_USEC (30 * USEC_PER_SEC)

static const char *arg_config = NULL;
static const char *arg_mountpoint = NULL;

/* Whether the file says "kind: ClientConfig" (then its own loader's errors are the ones to show). */
static bool file_is_client_config(const char *path) {
        _cleanup_(yaml_node_freep) YamlNode *root = NULL;
        _cleanup_free_ char *data = NULL, *error = NULL;
        size_t size = 0;
        YamlNode *kind;
        char buf[4096];
        size_t n;
        FILE *f, *m;

        f = fopen(path, "re");
        if (!f)
                return false;
        m = open_memstream(&data, &size);
        if (m) {
                while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                        (void) fwrite(buf, 1, n, m);
                fclose(m);
        }
        fclose(f);
        if (!data || yaml_tree_parse(data, size, &root, &error) < 0 || root->type != YAML_NODE_MAPPING)
                return false;
        kind = yaml_node_get(root, "kind");
        return kind && kind->type == YAML_NODE_SCALAR && streq(kind->scalar, CLIENT_CONFIG_KIND);
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(p, mode) < 0 && errno != EEXIST)
                                return -errno;
                        *s = '/';
                }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int parse_options(int argc, char *argv[], const char *usage, bool want_config) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "config", required_argument, NULL, 'c' },
                { "mountpoint", required_argument, NULL, 'm' },
                {}
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "hc:m:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 'c':
                        if (!want_config) {
                                fprintf(stderr, "jmp: --config is only for 'jmp local start'.\n");
                                return -EINVAL;
                        }
                        arg_config = optarg;
                        break;
                case 'm':
                        arg_mountpoint = optarg;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "jmp: unexpected argument '%s'.\n%s", argv[optind], usage);
                return -EINVAL;
        }
        return 1;
}

static void print_failure(const char *what, const char *status, const char *log_path) {
        _cleanup_free_ char *tail = log_tail(log_path, 2048);

        fprintf(stderr, "jmp: %s failed to start: %s\n", what, status ? status : "unknown reason");
        if (tail && *tail)
                fprintf(stderr, "--- last lines of %s ---\n%s%s", log_path, tail,
                        tail[strlen(tail) - 1] == '\n' ? "" : "\n");
}

static int local_start(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp local start --config FILE [--mountpoint DIR]\n"
                "\n"
                "Starts jumpstarterd and jumpstarter-fuse for the DUTs of an ExporterConfig and returns\n"
                "when every DUT is a directory under the mount point (default " DEFAULT_MOUNTPOINT ").\n"
                "With a ClientConfig, the DUTs are the client's active leases, which come and go.\n";
        _cleanup_(local_instance_freep) LocalInstance *inst = NULL;
        _cleanup_free_ char *daemon = NULL, *fuse = NULL, *config_abs = NULL, *status = NULL, *log_path = NULL,
                            *lock_path = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        _cleanup_(exporter_config_freep) ExporterConfig *cfg = NULL;
        _cleanup_(client_config_freep) ClientConfig *client = NULL;
        char *err = NULL;
        size_t n_duts;
        bool mounted, ours;
        int r;

        r = parse_options(argc, argv, usage, true);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (!arg_config) {
                fprintf(stderr, "jmp: --config FILE is required.\n%s", usage);
                return 2;
        }

        /* Everything is validated before anything starts. */
        /* A ClientConfig (the agent role) has no DUTs of its own: they come and go with its leases,
         * so only the mount is waited for. */
        if (file_is_client_config(arg_config))
                r = client_config_load(arg_config, &client, &err);
        else
                r = exporter_config_load(arg_config, &cfg, &err);
        if (r < 0) {
                fprintf(stderr, "jmp: %s\n", err ? err : strerror(-r));
                free(err);
                return 1;
        }
        n_duts = cfg ? cfg->n_duts : 0;
        config_abs = strdup(cfg ? cfg->path : client->path);
        if (!config_abs)
                return log_oom(), 1;

        r = local_instance_open(arg_mountpoint ?: DEFAULT_MOUNTPOINT, &inst);
        if (r < 0)
                return log_error_errno(r, "Failed to look up local mode state: %m"), 1;

        r = mkdir_p(inst->dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", inst->dir), 1;
        /* One start at a time per mount point. */
        if (asprintf(&lock_path, "%s/lock", inst->dir) < 0)
                return log_oom(), 1;
        lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
                fprintf(stderr, "jmp: another 'jmp local start' is starting at %s.\n", inst->mountpoint);
                return 1;
        }

        if (local_instance_is_running(inst)) {
                fprintf(stderr,
                        "jmp: local mode is already running at %s (jumpstarterd pid %d, jumpstarter-fuse pid %d).\n"
                        "Run 'jmp local stop%s%s' first.\n",
                        inst->mountpoint, (int) inst->daemon_pid, (int) inst->fuse_pid,
                        arg_mountpoint ? " --mountpoint " : "", arg_mountpoint ?: "");
                return 1;
        }

        r = mountpoint_state(inst->mountpoint, &mounted, &ours);
        if (r >= 0 && mounted) {
                if (!ours) {
                        fprintf(stderr, "jmp: %s is already a mount point of another file system.\n",
                                inst->mountpoint);
                                return 1;
                }
                /* Left behind by a killed jumpstarter-fuse: nothing serves it any more. */
                log_info("Removing the stale mount at %s.", inst->mountpoint);
                (void) umount2(inst->mountpoint, MNT_DETACH);
        }

        r = mkdir_p(inst->mountpoint, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create mount point %s: %m", inst->mountpoint), 1;

        if (find_program("jumpstarterd", &daemon) < 0 || find_program("jumpstarter-fuse", &fuse) < 0) {
                fprintf(stderr, "jmp: cannot find jumpstarterd and jumpstarter-fuse next to jmp or in %s.\n",
                        SBINDIR);
                return 1;
        }

        {
                char *const dargv[] = { daemon, "--config", config_abs, "--listen", inst->socket_path, NULL };

                if (asprintf(&log_path, "%s/jumpstarterd.log", inst->dir) < 0)
                        return log_oom(), 1;
                r = spawn_and_wait_ready(inst->dir, "jumpstarterd", dargv, log_path, START_TIMEOUT_USEC,
                                         &inst->daemon_pid, &status);
                if (r < 0) {
                        print_failure("jumpstarterd", status, log_path);
                                return 1;
                }
                (void) local_instance_record(inst, config_abs);
        }

        {
                char *const fargv[] = { fuse, "--connect", inst->socket_path, inst->mountpoint, NULL };

                free(log_path);
                free(status);
                status = NULL;
                if (asprintf(&log_path, "%s/jumpstarter-fuse.log", inst->dir) < 0)
                        return log_oom(), 1;
                r = spawn_and_wait_ready(inst->dir, "jumpstarter-fuse", fargv, log_path, START_TIMEOUT_USEC,
                                         &inst->fuse_pid, &status);
                if (r < 0) {
                        print_failure("jumpstarter-fuse", status, log_path);
                        (void) local_instance_stop(inst);
                                return 1;
                }
                (void) local_instance_record(inst, config_abs);
        }

        /* Done only when every DUT of the config is a directory under the mount point. */
        for (size_t k = 0; k < n_duts; k++) {
                char path[PATH_MAX];
                struct stat st;

                snprintf(path, sizeof path, "%s/%s", inst->mountpoint, cfg->duts[k].name);
                if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
                        fprintf(stderr, "jmp: %s is not a directory (%s); stopping.\n", path,
                                strerror(errno ? errno : ENOTDIR));
                        (void) local_instance_stop(inst);
                                return 1;
                }
        }

        if (client) {
                printf("Local mode is running at %s for client %s of %s: leased DUTs appear there.\n",
                       inst->mountpoint, client->name, client->endpoint);
                return 0;
        }
        printf("Local mode is running at %s with %zu DUT%s:", inst->mountpoint, n_duts, n_duts == 1 ? "" : "s");
        for (size_t k = 0; k < n_duts; k++)
                printf(" %s", cfg->duts[k].name);
        printf("\n");
        return 0;
}

static int local_stop(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp local stop [--mountpoint DIR]\n"
                "\n"
                "Unmounts the file view (even with files still open), powers the DUTs off and stops\n"
                "what 'jmp local start' started.\n";
        _cleanup_(local_instance_freep) LocalInstance *inst = NULL;
        bool mounted = false, ours = false;
        int r;

        r = parse_options(argc, argv, usage, false);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        r = local_instance_open(arg_mountpoint ?: DEFAULT_MOUNTPOINT, &inst);
        if (r < 0)
                return log_error_errno(r, "Failed to look up local mode state: %m"), 1;
        (void) mountpoint_state(inst->mountpoint, &mounted, &ours);
        if (!local_instance_is_running(inst) && !(mounted && ours)) {
                fprintf(stderr, "jmp: local mode is not running at %s.\n", inst->mountpoint);
                return 0;
        }
        r = local_instance_stop(inst);
        if (r < 0)
                return 1;
        printf("Local mode at %s stopped.\n", inst->mountpoint);
        return 0;
}

static void print_duts(const LocalInstance *inst) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name;
        int r;

        if (agent_connect(inst, &bus) < 0)
                return;
        r = sd_bus_call_method(bus, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, "ListDuts", &error, &reply, "");
        if (r < 0) {
                agent_call_error("Failed to list DUTs", &error, r);
                return;
        }
        printf("DUTs:\n");
        if (sd_bus_message_enter_container(reply, 'a', "s") < 0)
                return;
        while (sd_bus_message_read(reply, "s", &name) > 0) {
                _cleanup_(sd_bus_error_free) sd_bus_error e2 = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *pr = NULL, *dr = NULL;
                const char *state = "n/a", *k, *v;
                bool first = true;

                if (sd_bus_call_method(bus, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, "GetPower", &e2, &pr, "s",
                                       name) >= 0)
                        (void) sd_bus_message_read(pr, "s", &state);
                printf("  %-16s power=%-8s", name, state);
                sd_bus_error_free(&e2);
                if (sd_bus_call_method(bus, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, "DescribeDut", &e2, &dr, "s",
                                       name) >= 0 &&
                    sd_bus_message_enter_container(dr, 'a', "(ss)") >= 0)
                        while (sd_bus_message_read(dr, "(ss)", &k, &v) > 0) {
                                printf("%s%s=%s", first ? "labels=" : ",", k, v);
                                first = false;
                        }
                printf("\n");
        }
}

static int local_status(int argc, char *argv[]) {
        static const char usage[] =
                "Usage: jmp local status [--mountpoint DIR]\n"
                "\n"
                "Shows the mount point, the processes and the DUTs of local mode. Exits 0 when all of it\n"
                "runs, 3 when local mode is not running or only partly.\n";
        _cleanup_(local_instance_freep) LocalInstance *inst = NULL;
        bool mounted = false, ours = false;
        int r;

        r = parse_options(argc, argv, usage, false);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        r = local_instance_find(arg_mountpoint, &inst);
        if (r == -ENOTUNIQ) {
                fprintf(stderr, "jmp: local mode runs at several mount points; name one with --mountpoint.\n");
                return 2;
        }
        if (r == -ENOENT && !arg_mountpoint) {
                printf("Local mode is not running.\n");
                return 3;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to look up local mode state: %m"), 1;

        (void) mountpoint_state(inst->mountpoint, &mounted, &ours);
        if (!local_instance_is_running(inst) && !mounted) {
                printf("Local mode is not running at %s.\n", inst->mountpoint);
                return 3;
        }
        printf("Mount point:      %s (%s)\n", inst->mountpoint,
               mounted ? (ours ? "mounted" : "another file system is mounted there") : "not mounted");
        printf("Config:           %s\n", strna(inst->config_path));
        if (inst->daemon_pid > 0)
                printf("jumpstarterd:     running (pid %d)\n", (int) inst->daemon_pid);
        else
                printf("jumpstarterd:     not running\n");
        if (inst->fuse_pid > 0)
                printf("jumpstarter-fuse: running (pid %d)\n", (int) inst->fuse_pid);
        else
                printf("jumpstarter-fuse: not running\n");
        if (inst->daemon_pid > 0)
                print_duts(inst);
        return inst->daemon_pid > 0 && inst->fuse_pid > 0 && mounted && ours ? 0 : 3;
}

int verb_local(int argc, char *argv[]) {
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                printf("Usage: jmp local start|status|stop [OPTIONS]\n"
                       "\n"
                       "  start --config FILE [--mountpoint DIR]  Start local mode\n"
                       "  status [--mountpoint DIR]               Show it\n"
                       "  stop [--mountpoint DIR]                 Stop it\n");
                return argc < 2 ? 2 : 0;
        }
        if (streq(argv[1], "start"))
                return local_start(argc - 1, argv + 1);
        if (streq(argv[1], "stop"))
                return local_stop(argc - 1, argv + 1);
        if (streq(argv[1], "status"))
                return local_status(argc - 1, argv + 1);
        fprintf(stderr, "jmp: unknown command 'local %s'. Run 'jmp local --help'.\n", argv[1]);
        return 2;
}
