/* jumpstarter-fuse: the DUTs of jumpstarterd as files, one directory per DUT */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "cache-invalidator.h"
#include "fs.h"
#include "log.h"
#include "macro.h"
#include "version.h"

/* Requests handled per wakeup before the rest of the loop (D-Bus replies, timers) gets a turn. */
#define FUSE_REQUESTS_PER_WAKEUP 16

static const char *arg_connect = NULL;
static const char *arg_mountpoint = NULL;
static bool arg_allow_other = false;
static bool arg_debug = false;

typedef struct Context {
        sd_event *event;
        Filesystem *fs;
        struct fuse_session *session;
        sd_event_source *fuse_source;
        struct fuse_buf buf;
        CacheInvalidator *invalidator;
} Context;

static void help(void) {
        printf("Usage: %s --connect SOCKET [-o allow_other] [--debug] MOUNTPOINT\n\n"
               "Shows the DUTs of jumpstarterd as files: MOUNTPOINT/DUT/{power,serial,serial.log,storage,labels,lease}.\n\n"
               "  -h --help            Show this help\n"
               "     --version         Show the version\n"
               "  -c --connect=SOCKET  The UNIX socket jumpstarterd listens on (--listen)\n"
               "  -o allow_other       Let other users reach the mount (permissions still apply)\n"
               "  -d --debug           Log debug messages, including every FUSE request\n",
               program_invocation_short_name);
}

static int parse_mount_options(const char *s) {
        _cleanup_free_ char *copy = strdup(s);
        char *saveptr = NULL;

        if (!copy)
                return log_oom();
        for (char *o = strtok_r(copy, ",", &saveptr); o; o = strtok_r(NULL, ",", &saveptr)) {
                if (streq(o, "allow_other"))
                        arg_allow_other = true;
                else
                        return log_error_errno(EINVAL, "Unknown mount option: %s", o);
        }
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "help",    no_argument,       NULL, 'h'         },
                { "version", no_argument,       NULL, ARG_VERSION },
                { "connect", required_argument, NULL, 'c'         },
                { "debug",   no_argument,       NULL, 'd'         },
                {}
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "hc:o:d", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("jumpstarter-fuse %s\n", PACKAGE_VERSION);
                        return 0;
                case 'c':
                        arg_connect = optarg;
                        break;
                case 'o':
                        r = parse_mount_options(optarg);
                        if (r < 0)
                                return r;
                        break;
                case 'd':
                        arg_debug = true;
                        break;
                default:
                        return -EINVAL;
                }

        if (!arg_connect)
                return log_error_errno(EINVAL, "--connect=SOCKET is required.");
        if (optind + 1 != argc)
                return log_error_errno(EINVAL, "Expected exactly one argument: the mount point.");
        arg_mountpoint = argv[optind];
        return 1;
}

static int on_fuse_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Context *c = userdata;

        for (unsigned i = 0; i < FUSE_REQUESTS_PER_WAKEUP; i++) {
                int r;

                r = fuse_session_receive_buf(c->session, &c->buf);
                /* -ENOENT: the request was interrupted before we got it. */
                if (r == -EINTR || r == -ENOENT)
                        continue;
                if (r == -EAGAIN)
                        return 0;
                if (r < 0) {
                        log_error_errno(r, "Failed to read from the FUSE device: %m");
                        return sd_event_exit(c->event, r);
                }
                if (r == 0 || fuse_session_exited(c->session)) {
                        log_info("%s was unmounted.", arg_mountpoint);
                        return sd_event_exit(c->event, 0);
                }

                fuse_session_process_buf(c->session, &c->buf);
                if (fuse_session_exited(c->session))
                        return sd_event_exit(c->event, 0);
        }
        return 0;
}

static int mount_session(Context *c) {
        _cleanup_free_ char *options = NULL;
        char *argv[4];
        int argc = 0, fd, flags, r;
        struct fuse_args args;

        if (asprintf(&options, "fsname=jumpstarter,subtype=jumpstarter,default_permissions%s",
                     arg_allow_other ? ",allow_other" : "") < 0)
                return log_oom();
        argv[argc++] = (char *) program_invocation_short_name;
        argv[argc++] = (char *) "-o";
        argv[argc++] = options;
        if (arg_debug)
                argv[argc++] = (char *) "-d";
        args = (struct fuse_args) FUSE_ARGS_INIT(argc, argv);

        c->session = fuse_session_new(&args, fs_lowlevel_ops(), sizeof(struct fuse_lowlevel_ops), c->fs);
        fuse_opt_free_args(&args);
        if (!c->session)
                return log_error_errno(EINVAL, "Failed to create the FUSE session.");

        if (fuse_session_mount(c->session, arg_mountpoint) < 0)
                return log_error_errno(EIO, "Failed to mount %s.", arg_mountpoint);

        fd = fuse_session_fd(c->session);
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return log_error_errno(errno, "Failed to make the FUSE device non-blocking: %m");

        r = sd_event_add_io(c->event, &c->fuse_source, fd, EPOLLIN, on_fuse_io, c);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the FUSE device: %m");
        (void) sd_event_source_set_description(c->fuse_source, "fuse");

        r = cache_invalidator_new(c->session, &c->invalidator);
        if (r < 0)
                return log_error_errno(r, "Failed to start the cache invalidation thread: %m");

        fs_attach_session(c->fs, c->session, c->invalidator);
        return 0;
}

static void unmount_session(Context *c) {
        struct statfs sfs;

        if (!c->session)
                return;
        c->fuse_source = sd_event_source_disable_unref(c->fuse_source);
        /* Lazy: works with files still open, which then fail with ENOTCONN. */
        fuse_session_unmount(c->session);
        /* libfuse skips the unmount when the connection was aborted already; a dead mount answers
         * ENOTCONN: detach it. */
        if (statfs(arg_mountpoint, &sfs) < 0 && errno == ENOTCONN && umount2(arg_mountpoint, MNT_DETACH) < 0)
                log_warning_errno(errno, "Failed to detach %s: %m", arg_mountpoint);
        c->invalidator = cache_invalidator_free(c->invalidator);
        fuse_session_destroy(c->session);
        c->session = NULL;
}

static void on_ready(Filesystem *fs, int error, void *userdata) {
        Context *c = userdata;
        int r;

        if (error < 0) {
                log_error_errno(error, "Failed to load the DUT list from jumpstarterd: %m");
                (void) sd_event_exit(c->event, error);
                return;
        }

        r = mount_session(c);
        if (r < 0) {
                (void) sd_event_exit(c->event, r);
                return;
        }

        log_info("Mounted %s (%zu DUT%s).", arg_mountpoint, fs->duts.n_duts, fs->duts.n_duts == 1 ? "" : "s");
        (void) sd_notifyf(false, "READY=1\nSTATUS=Serving %zu DUTs at %s", fs->duts.n_duts, arg_mountpoint);

        /* WatchdogSec= of jumpstarter-fuse.service: keep-alives from the loop that serves the FUSE
         * requests, so a hung loop gets the service restarted. A no-op without WATCHDOG_USEC. */
        r = sd_event_set_watchdog(c->event, true);
        if (r < 0) {
                log_error_errno(r, "Failed to enable the watchdog: %m");
                (void) sd_event_exit(c->event, r);
        }
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Context *c = userdata;

        log_info("Received %s, unmounting %s.", strsignal((int) si->ssi_signo), arg_mountpoint);
        (void) sd_notify(false, "STOPPING=1");
        return sd_event_exit(c->event, 0);
}

static int run(int argc, char *argv[]) {
        Context c = {};
        sigset_t mask;
        int r;

        log_setup("jumpstarter-fuse");
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        if (arg_debug)
                log_set_max_level(LOG_DEBUG);

        (void) signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");

        r = sd_event_default(&c.event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = sd_event_add_signal(c.event, NULL, SIGTERM, on_signal, &c);
        if (r >= 0)
                r = sd_event_add_signal(c.event, NULL, SIGINT, on_signal, &c);
        if (r < 0) {
                log_error_errno(r, "Failed to watch signals: %m");
                goto finish;
        }

        r = fs_new(c.event, arg_connect, on_ready, &c, &c.fs);
        if (r < 0) {
                log_error_errno(r, "Failed to set up: %m");
                goto finish;
        }
        /* Mounts once the DUT list is loaded (on_ready). */
        r = fs_start(c.fs);
        if (r < 0)
                goto finish;

        r = sd_event_loop(c.event);
        if (r < 0)
                log_debug_errno(r, "Event loop ended: %m");

finish:
        /* Answer what still waits for the daemon while the session is up, then unmount. */
        c.fs = fs_free(c.fs);
        unmount_session(&c);
        free(c.buf.mem);
        sd_event_unref(c.event);
        return r;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
