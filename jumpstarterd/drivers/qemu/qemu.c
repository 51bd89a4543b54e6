/* QEMU virtual machine as a DUT: power starts and stops the VM, serial is its console, storage its disk */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "daemon-util.h"
#include "driver.h"
#include "file-storage.h"
#include "log.h"
#include "macro.h"
#include "qemu-command.h"
#include "qemu.h"

/* QEMU answers QMP within a fraction of a second of starting; this only turns a hang into an error. */
#define QEMU_START_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define QEMU_READ_MAX           (64 * 1024)
#define QEMU_INPUT_MAX          (64 * 1024)
#define QEMU_QMP_LINE_MAX       4096
#define QEMU_STDERR_LINE_MAX    512

typedef enum QemuPhase {
        QEMU_OFF,       /* no process */
        QEMU_STARTING,  /* spawned, QMP has not answered yet */
        QEMU_RUNNING,
        QEMU_STOPPING,  /* SIGTERM sent, waiting for the exit */
} QemuPhase;

struct Qemu {
        DriverContext ctx;
        char *name;
        QemuOptions options;
        char *binary; /* resolved */
        char **argv;

        int disk_fd;
        uint64_t disk_size;

        QemuPhase phase;
        pid_t pid;
        sd_event_source *child_source;
        sd_event_source *timer; /* start timeout, or SIGKILL after stop_timeout */

        int console_fd;
        sd_event_source *console_source;
        char input[QEMU_INPUT_MAX]; /* keystrokes QEMU has not taken yet */
        size_t input_len;

        int qmp_fd;
        sd_event_source *qmp_source;
        char qmp_line[QEMU_QMP_LINE_MAX];
        size_t qmp_len;
        unsigned qmp_replies; /* 0: waiting for the greeting; then one per command */
        bool start_failed;    /* killed while starting: the exit fails the action */

        int stderr_fd;
        sd_event_source *stderr_source;
        char stderr_line[QEMU_STDERR_LINE_MAX];
        size_t stderr_len;
        char last_error[QEMU_STDERR_LINE_MAX];

        /* The action in flight (on, off or cycle) and whom to tell. */
        PowerAction action;
        PowerDoneFunc done;
        void *done_userdata;
};

static int qemu_spawn(Qemu *q);

static void qemu_power_changed(Qemu *q, PowerState state) {
        if (q->ctx.power_changed)
                q->ctx.power_changed(q->ctx.userdata, state);
}

static void qemu_finish(Qemu *q, int r) {
        PowerDoneFunc done = q->done;

        q->done = NULL;
        if (done)
                done(r, q->done_userdata);
}

/* Moves fd to a number >= 10, so that placing the child's fds at 3 and 4 cannot clobber it. */
static int fd_move_high(int fd) {
        int r;

        if (fd >= 10)
                return fd;
        r = fcntl(fd, F_DUPFD_CLOEXEC, 10);
        safe_close(fd);
        return r < 0 ? negative_errno() : r;
}

static int qemu_socketpair(int *ret_ours, int *ret_theirs) {
        int sv[2];
        int a, b;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        a = fd_move_high(sv[0]);
        b = fd_move_high(sv[1]);
        if (a < 0 || b < 0) {
                safe_close(a);
                safe_close(b);
                return a < 0 ? a : b;
        }
        if (fcntl(a, F_SETFL, O_NONBLOCK) < 0) {
                int r = negative_errno();
                safe_close(a);
                safe_close(b);
                return r;
        }
        *ret_ours = a;
        *ret_theirs = b;
        return 0;
}

static void qemu_log_stderr_line(Qemu *q) {
        if (q->stderr_len == 0)
                return;
        q->stderr_line[q->stderr_len] = '\0';
        q->stderr_len = 0;
        log_dut_prefix(LOG_WARNING, 0, q->name, "qemu: %s", q->stderr_line);
        strcpy(q->last_error, q->stderr_line);
}

static void qemu_read_stderr(Qemu *q) {
        char buf[4096];
        ssize_t n;

        for (;;) {
                n = read(q->stderr_fd, buf, sizeof buf);
                if (n <= 0)
                        break;
                for (ssize_t i = 0; i < n; i++) {
                        if (buf[i] == '\n') {
                                qemu_log_stderr_line(q);
                                continue;
                        }
                        if (q->stderr_len + 1 >= sizeof q->stderr_line)
                                qemu_log_stderr_line(q);
                        q->stderr_line[q->stderr_len++] = buf[i];
                }
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                qemu_log_stderr_line(q);
                q->stderr_source = sd_event_source_disable_unref(q->stderr_source);
                q->stderr_fd = safe_close(q->stderr_fd);
        }
}

static int qemu_on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        qemu_read_stderr(userdata);
        return 0;
}

static void qemu_console_close(Qemu *q) {
        q->console_source = sd_event_source_disable_unref(q->console_source);
        q->console_fd = safe_close(q->console_fd);
        q->input_len = 0;
}

/* Reads what the console has, up to max bytes per call, so a chatty guest cannot starve the loop. */
static void qemu_read_console(Qemu *q, bool all) {
        char buf[QEMU_READ_MAX];
        ssize_t n;

        do {
                n = read(q->console_fd, buf, sizeof buf);
                if (n > 0 && q->ctx.serial_output)
                        q->ctx.serial_output(q->ctx.userdata, buf, (size_t) n);
        } while (n > 0 && all);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                if (n < 0)
                        log_dut_prefix(LOG_DEBUG, errno, q->name, "Console of the VM closed: %m");
                qemu_console_close(q);
        }
}

static void qemu_flush_input(Qemu *q) {
        ssize_t n;

        if (q->console_fd < 0 || q->input_len == 0)
                return;
        n = send(q->console_fd, q->input, q->input_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return;
                log_dut_prefix(LOG_DEBUG, errno, q->name, "Failed to send keystrokes to the VM: %m");
                q->input_len = 0;
                return;
        }
        memmove(q->input, q->input + n, q->input_len - (size_t) n);
        q->input_len -= (size_t) n;
}

static int qemu_on_console(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Qemu *q = userdata;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                qemu_read_console(q, false);
        if (q->console_fd >= 0 && (revents & EPOLLOUT))
                qemu_flush_input(q);
        if (q->console_source)
                (void) sd_event_source_set_io_events(q->console_source,
                                                     EPOLLIN | (q->input_len > 0 ? EPOLLOUT : 0));
        return 0;
}

static void qemu_input(void *instance, const void *data, size_t n) {
        Qemu *q = instance;
        size_t take;

        /* A machine that is off has no UART to type into. */
        if (q->console_fd < 0 || q->phase == QEMU_OFF)
                return;

        take = MIN(n, sizeof q->input - q->input_len);
        if (take < n)
                log_dut_prefix(LOG_DEBUG, 0, q->name, "VM is not reading its console; dropped %zu keystrokes",
                               n - take);
        memcpy(q->input + q->input_len, data, take);
        q->input_len += take;
        qemu_flush_input(q);
        if (q->input_len > 0)
                (void) sd_event_source_set_io_events(q->console_source, EPOLLIN | EPOLLOUT);
}

static void qemu_qmp_close(Qemu *q) {
        q->qmp_source = sd_event_source_disable_unref(q->qmp_source);
        q->qmp_fd = safe_close(q->qmp_fd);
        q->qmp_len = 0;
}

static void qemu_started(Qemu *q) {
        q->timer = sd_event_source_disable_unref(q->timer);
        q->phase = QEMU_RUNNING;
        log_dut_prefix(LOG_INFO, 0, q->name, "VM started (pid %d)", (int) q->pid);
        qemu_finish(q, 0);
}

static int qemu_qmp_line(Qemu *q, const char *line) {
        static const char commands[] =
                "{\"execute\":\"qmp_capabilities\"}\n"
                "{\"execute\":\"query-status\"}\n";

        if (q->qmp_replies == 0) {
                if (!strstr(line, "\"QMP\""))
                        return -EPROTO;
                q->qmp_replies++;
                /* A few bytes into an empty socket buffer: this write does not block or fall short. */
                if (send(q->qmp_fd, commands, sizeof commands - 1, MSG_NOSIGNAL | MSG_DONTWAIT) !=
                    (ssize_t) sizeof commands - 1)
                        return negative_errno();
                return 0;
        }
        if (strstr(line, "\"event\""))
                return 0;
        if (strstr(line, "\"error\"")) {
                log_dut_prefix(LOG_ERR, 0, q->name, "QMP error: %s", line);
                return -EPROTO;
        }
        if (!strstr(line, "\"return\""))
                return 0;
        /* The answer to query-status comes after the whole machine is set up: now it runs. */
        if (++q->qmp_replies == 3 && q->phase == QEMU_STARTING)
                qemu_started(q);
        return 0;
}

static int qemu_on_qmp(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Qemu *q = userdata;
        char buf[4096];
        ssize_t n;
        int r;

        n = read(q->qmp_fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                /* QEMU is exiting; the child handler tells why. */
                qemu_qmp_close(q);
                return 0;
        }
        for (ssize_t i = 0; i < n; i++) {
                if (buf[i] != '\n') {
                        /* Long event lines are cut; only their start matters here. */
                        if (q->qmp_len + 1 < sizeof q->qmp_line)
                                q->qmp_line[q->qmp_len++] = buf[i];
                        continue;
                }
                q->qmp_line[q->qmp_len] = '\0';
                q->qmp_len = 0;
                r = qemu_qmp_line(q, q->qmp_line);
                if (r < 0 && q->phase == QEMU_STARTING) {
                        log_dut_prefix(LOG_ERR, r, q->name, "QEMU's monitor did not answer as expected: %m");
                        q->start_failed = true;
                        q->phase = QEMU_STOPPING;
                        (void) sd_event_source_send_child_signal(q->child_source, SIGKILL, NULL, 0);
                        return 0;
                }
        }
        return 0;
}

static int qemu_on_start_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Qemu *q = userdata;

        q->timer = sd_event_source_disable_unref(q->timer);
        log_dut_prefix(LOG_ERR, ETIMEDOUT, q->name, "QEMU did not start within %" PRIu64 "s, killing it",
                       QEMU_START_TIMEOUT_USEC / USEC_PER_SEC);
        /* The exit handler fails the power action. */
        q->start_failed = true;
        q->phase = QEMU_STOPPING;
        (void) sd_event_source_send_child_signal(q->child_source, SIGKILL, NULL, 0);
        return 0;
}

static int qemu_on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Qemu *q = userdata;

        q->timer = sd_event_source_disable_unref(q->timer);
        log_dut_prefix(LOG_WARNING, 0, q->name, "VM did not stop within %" PRIu64 "ms of SIGTERM, killing it",
                       q->options.stop_timeout_usec / USEC_PER_MSEC);
        (void) sd_event_source_send_child_signal(q->child_source, SIGKILL, NULL, 0);
        return 0;
}

static void qemu_describe_exit(const siginfo_t *si, char *buf, size_t size) {
        if (si->si_code == CLD_EXITED)
                snprintf(buf, size, "exit status %d", si->si_status);
        else
                snprintf(buf, size, "signal %s", strsignal(si->si_status));
}

static int qemu_on_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Qemu *q = userdata;
        QemuPhase phase = q->phase;
        char how[64];
        int r = 0;

        qemu_describe_exit(si, how, sizeof how);

        /* What the guest printed last belongs to the log before the "off". */
        if (q->console_fd >= 0)
                qemu_read_console(q, true);
        if (q->stderr_fd >= 0)
                qemu_read_stderr(q);
        qemu_log_stderr_line(q);
        qemu_console_close(q);
        qemu_qmp_close(q);
        q->stderr_source = sd_event_source_disable_unref(q->stderr_source);
        q->stderr_fd = safe_close(q->stderr_fd);
        q->timer = sd_event_source_disable_unref(q->timer);
        /* sd-event reaps the zombie after this callback returns; freeing the source here is fine. */
        q->child_source = sd_event_source_unref(q->child_source);
        q->pid = 0;
        q->phase = QEMU_OFF;

        if (phase == QEMU_STARTING || q->start_failed) {
                r = log_dut_prefix(LOG_ERR, EIO, q->name, "QEMU exited while starting (%s)%s%s", how,
                                   q->last_error[0] ? ": " : "", q->last_error);
        } else if (phase == QEMU_RUNNING)
                log_dut_prefix(LOG_NOTICE, 0, q->name, "VM exited by itself (%s)", how);
        else
                log_dut_prefix(LOG_INFO, 0, q->name, "VM stopped (%s)", how);

        qemu_power_changed(q, POWER_OFF);

        if (r == 0 && q->done && q->action == POWER_ACTION_CYCLE) {
                r = qemu_spawn(q);
                if (r == 0)
                        return 0; /* done when it has started */
        }
        qemu_finish(q, r);
        return 0;
}

static int qemu_resolve_binary(const char *name, char **ret) {
        const char *path, *p;

        if (strchr(name, '/')) {
                if (access(name, X_OK) < 0)
                        return negative_errno();
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }

        path = getenv("PATH") ?: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        for (p = path; *p;) {
                size_t n = strcspn(p, ":");
                _cleanup_free_ char *candidate = NULL;

                if (n > 0 && asprintf(&candidate, "%.*s/%s", (int) n, p, name) < 0)
                        return -ENOMEM;
                if (candidate && candidate[0] == '/' && access(candidate, X_OK) == 0) {
                        *ret = TAKE_PTR(candidate);
                        return 0;
                }
                p += n;
                if (*p == ':')
                        p++;
        }
        return -ENOENT;
}

/* After fork(): only async-signal-safe calls until exec. */
__attribute__((noreturn)) static void qemu_child(Qemu *q, pid_t parent, int devnull, int console, int qmp, int err) {
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t mask;

        /* QEMU must not outlive a daemon that is killed; it is the daemon's to stop. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(EXIT_FAILURE);
        /* Its own process group: a ^C on the daemon's terminal is not for the VM. */
        (void) setpgid(0, 0);

        if (dup2(devnull, STDIN_FILENO) < 0 || dup2(err, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0 ||
            dup2(console, QEMU_CONSOLE_FD) < 0 || dup2(qmp, QEMU_QMP_FD) < 0)
                _exit(EXIT_FAILURE);
        (void) close_range(QEMU_QMP_FD + 1, ~0U, 0);

        for (int sig = 1; sig < _NSIG; sig++)
                (void) sigaction(sig, &sa, NULL);
        sigemptyset(&mask);
        (void) sigprocmask(SIG_SETMASK, &mask, NULL);

        execv(q->binary, q->argv);
        _exit(127);
}

static int qemu_spawn(Qemu *q) {
        _cleanup_close_ int devnull = -EBADF, console_theirs = -EBADF, qmp_theirs = -EBADF, err_theirs = -EBADF;
        int pipefd[2], r;
        pid_t parent = getpid(), pid;

        assert(q->phase == QEMU_OFF);

        q->last_error[0] = '\0';
        q->stderr_len = 0;
        q->qmp_len = 0;
        q->qmp_replies = 0;
        q->start_failed = false;
        q->input_len = 0;

        devnull = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (devnull < 0)
                return log_dut_prefix(LOG_ERR, errno, q->name, "Failed to open /dev/null: %m");
        r = qemu_socketpair(&q->console_fd, &console_theirs);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, q->name, "Failed to create the console socket: %m");
        r = qemu_socketpair(&q->qmp_fd, &qmp_theirs);
        if (r < 0) {
                qemu_console_close(q);
                return log_dut_prefix(LOG_ERR, r, q->name, "Failed to create the QMP socket: %m");
        }
        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                r = log_dut_prefix(LOG_ERR, errno, q->name, "Failed to create QEMU's stderr pipe: %m");
                goto fail;
        }
        q->stderr_fd = pipefd[0];
        err_theirs = fd_move_high(pipefd[1]);
        if (err_theirs < 0 || fcntl(q->stderr_fd, F_SETFL, O_NONBLOCK) < 0) {
                r = log_dut_prefix(LOG_ERR, err_theirs < 0 ? err_theirs : -errno, q->name,
                                   "Failed to set up QEMU's stderr pipe: %m");
                goto fail;
        }

        r = sd_event_add_io(q->ctx.event, &q->console_source, q->console_fd, EPOLLIN, qemu_on_console, q);
        if (r < 0)
                goto fail_event;
        (void) sd_event_source_set_description(q->console_source, "qemu-console");
        r = sd_event_add_io(q->ctx.event, &q->qmp_source, q->qmp_fd, EPOLLIN, qemu_on_qmp, q);
        if (r < 0)
                goto fail_event;
        (void) sd_event_source_set_description(q->qmp_source, "qemu-qmp");
        r = sd_event_add_io(q->ctx.event, &q->stderr_source, q->stderr_fd, EPOLLIN, qemu_on_stderr, q);
        if (r < 0)
                goto fail_event;
        (void) sd_event_source_set_description(q->stderr_source, "qemu-stderr");
        r = sd_event_add_time_relative(q->ctx.event, &q->timer, CLOCK_MONOTONIC, QEMU_START_TIMEOUT_USEC, 0,
                                       qemu_on_start_timeout, q);
        if (r < 0)
                goto fail_event;

        /* fork() and exec() take a few milliseconds at most: the loop does not wait on QEMU itself. */
        pid = fork();
        if (pid < 0) {
                r = log_dut_prefix(LOG_ERR, errno, q->name, "Failed to fork for QEMU: %m");
                goto fail;
        }
        if (pid == 0)
                qemu_child(q, parent, devnull, console_theirs, qmp_theirs, err_theirs);

        q->pid = pid;
        q->phase = QEMU_STARTING;
        /* It wants SIGCHLD blocked, so that nothing else reaps QEMU: jumpstarterd's main() blocks it
         * before any driver starts. */
        r = sd_event_add_child(q->ctx.event, &q->child_source, pid, WEXITED, qemu_on_exit, q);
        if (r < 0) {
                /* Without a way to watch it, the process must not run. */
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                q->pid = 0;
                q->phase = QEMU_OFF;
                goto fail_event;
        }
        /* If the driver goes away with the VM running, sd-event kills and reaps it. */
        (void) sd_event_source_set_child_process_own(q->child_source, true);
        (void) sd_event_source_set_description(q->child_source, "qemu-process");

        log_dut_prefix(LOG_DEBUG, 0, q->name, "Started %s (pid %d)", q->binary, (int) pid);
        qemu_power_changed(q, POWER_ON);
        return 0;

fail_event:
        r = log_dut_prefix(LOG_ERR, r, q->name, "Failed to watch QEMU: %m");
fail:
        qemu_console_close(q);
        qemu_qmp_close(q);
        q->stderr_source = sd_event_source_disable_unref(q->stderr_source);
        q->stderr_fd = safe_close(q->stderr_fd);
        q->timer = sd_event_source_disable_unref(q->timer);
        return r;
}

static int qemu_stop(Qemu *q) {
        int r;

        assert(q->phase == QEMU_RUNNING);

        /* SIGTERM is QEMU's orderly shutdown: it flushes the disk image and exits. */
        r = sd_event_source_send_child_signal(q->child_source, SIGTERM, NULL, 0);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, q->name, "Failed to send SIGTERM to QEMU: %m");
        r = sd_event_add_time_relative(q->ctx.event, &q->timer, CLOCK_MONOTONIC, q->options.stop_timeout_usec, 0,
                                       qemu_on_stop_timeout, q);
        if (r < 0) {
                (void) sd_event_source_send_child_signal(q->child_source, SIGKILL, NULL, 0);
                log_dut_prefix(LOG_ERR, r, q->name, "Failed to arm the stop timeout, killed QEMU: %m");
        }
        q->phase = QEMU_STOPPING;
        return 0;
}

static int qemu_set_power(void *instance, PowerAction action, PowerDoneFunc done, void *userdata) {
        Qemu *q = instance;
        int r;

        /* The DUT serializes power actions: this runs only when nothing is in flight. */
        assert(!q->done);
        assert(q->phase == QEMU_OFF || q->phase == QEMU_RUNNING);

        switch (action) {
        case POWER_ACTION_ON:
        case POWER_ACTION_CYCLE:
                if (action == POWER_ACTION_ON && q->phase == QEMU_RUNNING)
                        return 1;
                if (q->phase == QEMU_OFF) {
                        r = qemu_spawn(q);
                        if (r < 0)
                                return r;
                } else {
                        r = qemu_stop(q);
                        if (r < 0)
                                return r;
                }
                break;

        case POWER_ACTION_OFF:
                if (q->phase == QEMU_OFF)
                        return 1;
                r = qemu_stop(q);
                if (r < 0)
                        return r;
                break;

        default:
                return -EINVAL;
        }

        q->action = action;
        q->done = done;
        q->done_userdata = userdata;
        return 0;
}

static PowerState qemu_get_power(void *instance) {
        Qemu *q = instance;
        return q->phase == QEMU_OFF ? POWER_OFF : POWER_ON;
}

static uint64_t qemu_log_size(void *instance) {
        Qemu *q = instance;
        return q->options.log_size;
}

static uint64_t qemu_storage_size(void *instance) {
        Qemu *q = instance;
        return q->disk_size;
}

static int qemu_storage_open(void *instance, bool writable) {
        Qemu *q = instance;

        if (q->disk_fd < 0)
                return -EOPNOTSUPP; /* a VM without a disk */
        return file_storage_reopen(q->disk_fd, writable);
}

static void *qemu_free(void *instance) {
        Qemu *q = instance;

        if (!q)
                return NULL;
        if (q->pid > 0)
                log_dut_prefix(LOG_NOTICE, 0, q->name, "Killing the VM (pid %d)", (int) q->pid);
        /* Owned by its source: unref kills and reaps it. */
        sd_event_source_disable_unref(q->child_source);
        sd_event_source_disable_unref(q->timer);
        sd_event_source_disable_unref(q->console_source);
        sd_event_source_disable_unref(q->qmp_source);
        sd_event_source_disable_unref(q->stderr_source);
        safe_close(q->console_fd);
        safe_close(q->qmp_fd);
        safe_close(q->stderr_fd);
        safe_close(q->disk_fd);
        sd_event_unref(q->ctx.event);
        qemu_strv_free(q->argv);
        free(q->binary);
        free(q->name);
        free(q);
        return NULL;
}

static inline void qemu_freep(Qemu **q) {
        qemu_free(*q);
}

static int qemu_check_readable(const char *dut, const char *option, const char *path) {
        if (path && access(path, R_OK) < 0)
                return log_dut_prefix(LOG_ERR, errno, dut, "%s %s cannot be read: %m", option, path);
        return 0;
}

int qemu_new(const QemuOptions *o, const DriverContext *ctx, Qemu **ret) {
        _cleanup_(qemu_freep) Qemu *q = NULL;
        const char *error;
        int r;

        assert(o);
        assert(ctx);
        assert(ctx->event);
        assert(ctx->dut_name);

        r = qemu_options_verify(o, &error);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, ctx->dut_name, "%s", error);

        q = malloc(sizeof *q);
        if (!q)
                return log_oom();
        *q = (Qemu) {
                .ctx = *ctx,
                .options = *o,
                .disk_fd = -EBADF,
                .console_fd = -EBADF,
                .qmp_fd = -EBADF,
                .stderr_fd = -EBADF,
                .phase = QEMU_OFF,
        };
        sd_event_ref(q->ctx.event);
        q->name = strdup(ctx->dut_name);
        if (!q->name)
                return log_oom();
        q->ctx.dut_name = q->name;

        r = qemu_resolve_binary(o->binary, &q->binary);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, q->name, "QEMU binary %s not found or not executable: %m",
                                      o->binary);
        r = qemu_check_readable(q->name, "kernel", o->kernel);
        if (r < 0)
                return r;
        r = qemu_check_readable(q->name, "initrd", o->initrd);
        if (r < 0)
                return r;
        if (o->disk) {
                r = file_storage_open(q->name, o->disk, o->disk_size_set, o->disk_size, &q->disk_fd, &q->disk_size);
                if (r < 0)
                        return r;
        }

        r = qemu_command_build(o, &q->argv);
        if (r < 0)
                return log_oom();

        *ret = TAKE_PTR(q);
        return 0;
}

static int qemu_new_from_config(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        QemuOptions o;
        Qemu *q;
        int r;

        qemu_options_from_config(&o, config);
        r = qemu_new(&o, ctx, &q);
        if (r < 0)
                return r;
        *ret = q;
        return 0;
}

static const PowerDriverOps qemu_power_ops = {
        .set = qemu_set_power,
        .get = qemu_get_power,
};

static const SerialDriverOps qemu_serial_ops = {
        .input = qemu_input,
        .log_size = qemu_log_size,
};

static const StorageDriverOps qemu_storage_ops = {
        .size = qemu_storage_size,
        .open = qemu_storage_open,
};

const Driver driver_qemu = {
        .name = "qemu",
        .new = qemu_new_from_config,
        .free = qemu_free,
        .power = &qemu_power_ops,
        .serial = &qemu_serial_ops,
        .storage = &qemu_storage_ops,
};
