/* Power switch driven by the commands that the config names */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/wait.h>

#include "daemon-util.h"
#include "driver.h"
#include "log.h"
#include "macro.h"
#include "power-drivers.h"
#include "power-reading.h"

#define COMMAND_TIMEOUT_DEFAULT_USEC (10 * USEC_PER_SEC)
#define COMMAND_CYCLE_DELAY_DEFAULT_USEC (2 * USEC_PER_SEC)
/* What a command prints is kept up to this much per stream, for the log and for readings. */
#define COMMAND_OUTPUT_MAX 4096

typedef enum CommandKind {
        COMMAND_ON,
        COMMAND_OFF,
        COMMAND_CYCLE,
        COMMAND_STATUS,
        COMMAND_READING,
        _COMMAND_KIND_MAX,
        _COMMAND_KIND_INVALID = -EINVAL,
} CommandKind;

static const char *const command_kind_table[_COMMAND_KIND_MAX] = {
        [COMMAND_ON] = "on",
        [COMMAND_OFF] = "off",
        [COMMAND_CYCLE] = "cycle",
        [COMMAND_STATUS] = "status",
        [COMMAND_READING] = "reading",
};

typedef struct CommandPower CommandPower;
typedef struct CommandOp CommandOp;

/* One command to run. Commands run one at a time, in order. */
struct CommandOp {
        CommandKind kind;
        bool cycle;                     /* the "off" half of a cycle without a cycle command */
        PowerDoneFunc power_done;
        PowerReadingFunc reading_done;
        void *userdata;
        CommandOp *next;
};

typedef struct OutputStream {
        int fd;
        sd_event_source *source;
        char buf[COMMAND_OUTPUT_MAX + 1];
        size_t size;
} OutputStream;

struct CommandPower {
        DriverContext ctx;
        char *const *argv[_COMMAND_KIND_MAX];
        uint64_t timeout_usec;
        uint64_t cycle_delay_usec;

        CommandOp *queue, *queue_tail;

        /* The process of the queue's head, while it runs. */
        pid_t pid;
        int pidfd;
        sd_event_source *pidfd_source;
        sd_event_source *timeout_source;
        bool timed_out;
        OutputStream out, err;

        sd_event_source *cycle_timer;
        PowerDoneFunc cycle_done;
        void *cycle_userdata;

        PowerState state;
};

static void command_power_run(CommandPower *c);

static void command_power_set_state(CommandPower *c, PowerState state) {
        if (c->state == state)
                return;
        c->state = state;
        if (c->ctx.power_changed)
                c->ctx.power_changed(c->ctx.userdata, state);
}

static void command_power_push(CommandPower *c, CommandOp *op) {
        op->next = NULL;
        if (c->queue_tail)
                c->queue_tail->next = op;
        else
                c->queue = op;
        c->queue_tail = op;
}

static CommandOp *command_power_pop(CommandPower *c) {
        CommandOp *op = c->queue;

        if (op) {
                c->queue = op->next;
                if (!c->queue)
                        c->queue_tail = NULL;
        }
        return op;
}

static void output_stream_done(OutputStream *s) {
        s->source = sd_event_source_disable_unref(s->source);
        s->fd = safe_close(s->fd);
}

/* Reads what is there now; keeps the first COMMAND_OUTPUT_MAX bytes. */
static void output_stream_drain(OutputStream *s) {
        char scratch[4096];

        while (s->fd >= 0) {
                char *to = s->size < COMMAND_OUTPUT_MAX ? s->buf + s->size : scratch;
                size_t room = s->size < COMMAND_OUTPUT_MAX ? COMMAND_OUTPUT_MAX - s->size : sizeof scratch;
                ssize_t n = read(s->fd, to, room);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        output_stream_done(s);
                        return;
                }
                if (to != scratch)
                        s->size += (size_t) n;
        }
}

static int command_power_on_output(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        OutputStream *s = userdata;

        output_stream_drain(s);
        return 0;
}

/* Each line of a stream as a log message about the DUT. */
static void command_power_log_output(CommandPower *c, CommandKind kind, OutputStream *s, const char *name) {
        char *line, *state = NULL;

        s->buf[s->size] = '\0';
        for (line = strtok_r(s->buf, "\n", &state); line; line = strtok_r(NULL, "\n", &state))
                log_dut_prefix(LOG_INFO, 0, c->ctx.dut_name, "power %s command %s: %s", command_kind_table[kind], name,
                               line);
}

static void command_power_reset_process(CommandPower *c) {
        c->pidfd_source = sd_event_source_disable_unref(c->pidfd_source);
        c->timeout_source = sd_event_source_disable_unref(c->timeout_source);
        c->pidfd = safe_close(c->pidfd);
        output_stream_done(&c->out);
        output_stream_done(&c->err);
        c->out.size = c->err.size = 0;
        c->pid = 0;
        c->timed_out = false;
}

static int command_power_on_cycle_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        CommandPower *c = userdata;
        CommandOp *op;

        c->cycle_timer = sd_event_source_unref(c->cycle_timer);
        op = calloc(1, sizeof *op);
        if (!op) {
                c->cycle_done(-ENOMEM, c->cycle_userdata);
                return 0;
        }
        *op = (CommandOp) { .kind = COMMAND_ON, .power_done = c->cycle_done, .userdata = c->cycle_userdata };
        c->cycle_done = NULL;
        c->cycle_userdata = NULL;
        command_power_push(c, op);
        command_power_run(c);
        return 0;
}

/* The head of the queue is finished with r (< 0: failed), the exit status and the reading. */
static void command_power_finish(CommandPower *c, int r, int status, double watts) {
        CommandOp *op = command_power_pop(c);

        assert(op);

        switch (op->kind) {
        case COMMAND_ON:
        case COMMAND_OFF:
        case COMMAND_CYCLE:
                command_power_set_state(c, r < 0 ? POWER_UNKNOWN : op->kind == COMMAND_OFF ? POWER_OFF : POWER_ON);
                if (r >= 0 && op->cycle) {
                        r = sd_event_add_time_relative(c->ctx.event, &c->cycle_timer, CLOCK_MONOTONIC,
                                                       c->cycle_delay_usec, 0, command_power_on_cycle_timer, c);
                        if (r >= 0) {
                                (void) sd_event_source_set_description(c->cycle_timer, "command-power-cycle");
                                c->cycle_done = op->power_done;
                                c->cycle_userdata = op->userdata;
                                break;
                        }
                }
                op->power_done(r < 0 ? r : 0, op->userdata);
                break;
        case COMMAND_STATUS:
                if (r >= 0)
                        command_power_set_state(c, status == 0 ? POWER_ON : status == 1 ? POWER_OFF : POWER_UNKNOWN);
                break;
        case COMMAND_READING:
                op->reading_done(r, r < 0 ? 0.0 : watts, op->userdata);
                break;
        default:
                assert(!"unknown command kind");
        }
        free(op);
        command_power_run(c);
}

static int command_power_on_exit(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        CommandPower *c = userdata;
        CommandOp *op = c->queue;
        siginfo_t si = {};
        double watts = 0.0;
        int r = 0, status = -1;

        assert(op);

        if (waitid((idtype_t) P_PIDFD, (id_t) c->pidfd, &si, WEXITED | WNOHANG) < 0) {
                r = log_dut_prefix(LOG_ERR, errno, c->ctx.dut_name, "Failed to wait for the power %s command: %m",
                                   command_kind_table[op->kind]);
                (void) kill(-c->pid, SIGKILL);
        } else if (si.si_pid == 0)
                return 0; /* not yet */

        /* What it printed before it exited is in the pipes now. */
        output_stream_drain(&c->out);
        output_stream_drain(&c->err);
        command_power_log_output(c, op->kind, &c->err, "error");
        c->out.buf[c->out.size] = '\0';

        if (r < 0)
                log_dut_prefix(LOG_ERR, 0, c->ctx.dut_name, "power %s command: its end is unknown", command_kind_table[op->kind]);
        else if (c->timed_out) {
                log_dut_prefix(LOG_ERR, 0, c->ctx.dut_name, "power %s command timed out after %" PRIu64 " ms; killed it",
                               command_kind_table[op->kind], c->timeout_usec / USEC_PER_MSEC);
                r = -EIO;
        } else if (si.si_code == CLD_EXITED) {
                status = si.si_status;
                if (status != 0 && op->kind != COMMAND_STATUS) {
                        log_dut_prefix(LOG_ERR, 0, c->ctx.dut_name, "power %s command failed with exit status %i",
                                       command_kind_table[op->kind], status);
                        r = -EIO;
                }
        } else {
                log_dut_prefix(LOG_ERR, 0, c->ctx.dut_name, "power %s command was killed by signal %s",
                               command_kind_table[op->kind], strsignal(si.si_status));
                r = -EIO;
        }

        if (r >= 0 && op->kind == COMMAND_READING) {
                r = power_reading_parse(c->out.buf, &watts);
                if (r < 0) {
                        log_dut_prefix(LOG_ERR, 0, c->ctx.dut_name, "power reading command printed \"%.100s\", not watts",
                                       c->out.buf);
                        r = -EIO;
                }
        } else if (op->kind != COMMAND_READING)
                command_power_log_output(c, op->kind, &c->out, "output");

        command_power_reset_process(c);
        command_power_finish(c, r, status, watts);
        return 0;
}

static int command_power_on_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        CommandPower *c = userdata;

        /* The whole process group: a script's children must not outlive it. The exit handler
         * finishes once the kernel has reaped it. */
        c->timed_out = true;
        (void) kill(-c->pid, SIGKILL);
        return 0;
}

static int command_power_start(CommandPower *c) {
        CommandOp *op = c->queue;
        char *const *argv = c->argv[op->kind];
        _cleanup_close_ int null_fd = -EBADF, out_w = -EBADF, err_w = -EBADF;
        int out_pipe[2], err_pipe[2];
        pid_t pid;
        int r;

        assert(op);
        assert(argv);
        assert(c->pid == 0);

        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0)
                return -errno;
        if (pipe2(out_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        c->out.fd = out_pipe[0];
        out_w = out_pipe[1];
        if (pipe2(err_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = -errno;
                command_power_reset_process(c);
                return r;
        }
        c->err.fd = err_pipe[0];
        err_w = err_pipe[1];

        pid = fork();
        if (pid < 0) {
                r = -errno;
                command_power_reset_process(c);
                return r;
        }
        if (pid == 0) {
                sigset_t none;

                /* Only async-signal-safe calls from here to exec. Its own process group, so that a
                 * timeout kills all of it; the daemon's blocked signals are not its business. */
                (void) setpgid(0, 0);
                sigemptyset(&none);
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                (void) fcntl(out_w, F_SETFL, 0);
                (void) fcntl(err_w, F_SETFL, 0);
                if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_w, STDOUT_FILENO) < 0 ||
                    dup2(err_w, STDERR_FILENO) < 0)
                        _exit(126);
                execvp(argv[0], argv);
                _exit(127);
        }
        /* Also here, so that a kill right after fork finds the group. */
        (void) setpgid(pid, pid);
        c->pid = pid;

        c->pidfd = pidfd_open(pid, 0);
        if (c->pidfd < 0) {
                r = -errno;
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                command_power_reset_process(c);
                return r;
        }
        /* A pidfd instead of sd_event_add_child(): that one needs SIGCHLD blocked in the whole
         * daemon, and the pidfd tells the same without it. */
        r = sd_event_add_io(c->ctx.event, &c->pidfd_source, c->pidfd, EPOLLIN, command_power_on_exit, c);
        if (r >= 0)
                r = sd_event_add_io(c->ctx.event, &c->out.source, c->out.fd, EPOLLIN, command_power_on_output, &c->out);
        if (r >= 0)
                r = sd_event_add_io(c->ctx.event, &c->err.source, c->err.fd, EPOLLIN, command_power_on_output, &c->err);
        if (r >= 0)
                r = sd_event_add_time_relative(c->ctx.event, &c->timeout_source, CLOCK_MONOTONIC, c->timeout_usec, 0,
                                               command_power_on_timeout, c);
        if (r < 0) {
                (void) kill(-pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                command_power_reset_process(c);
                return r;
        }
        /* Output sources first: the exit handler must see it all, and drains the rest itself. */
        (void) sd_event_source_set_priority(c->pidfd_source, SD_EVENT_PRIORITY_NORMAL + 1);

        log_dut_prefix(LOG_DEBUG, 0, c->ctx.dut_name, "power %s: started %s (pid %i)", command_kind_table[op->kind],
                       argv[0], (int) pid);
        return 0;
}

static void command_power_run(CommandPower *c) {
        if (c->pid != 0 || !c->queue)
                return;
        for (;;) {
                int r = command_power_start(c);

                if (r >= 0)
                        return;
                log_dut_prefix(LOG_ERR, r, c->ctx.dut_name, "Failed to start the power %s command: %m",
                               command_kind_table[c->queue->kind]);
                /* command_power_finish() runs the rest of the queue. */
                command_power_finish(c, -EIO, -1, 0.0);
                return;
        }
}

static int command_power_enqueue(CommandPower *c, CommandKind kind, bool cycle, PowerDoneFunc power_done,
                                 PowerReadingFunc reading_done, void *userdata) {
        CommandOp *op;

        op = calloc(1, sizeof *op);
        if (!op)
                return -ENOMEM;
        *op = (CommandOp) {
                .kind = kind,
                .cycle = cycle,
                .power_done = power_done,
                .reading_done = reading_done,
                .userdata = userdata,
        };
        command_power_push(c, op);
        if (c->pid == 0 && c->queue == op) {
                int r = command_power_start(c);

                if (r < 0) {
                        command_power_pop(c);
                        free(op);
                        return log_dut_prefix(LOG_ERR, r, c->ctx.dut_name, "Failed to start the power %s command: %m",
                                              command_kind_table[kind]);
                }
        }
        return 0;
}

static int command_power_set(void *instance, PowerAction action, PowerDoneFunc done, void *userdata) {
        CommandPower *c = instance;

        switch (action) {
        case POWER_ACTION_ON:
                return command_power_enqueue(c, COMMAND_ON, false, done, NULL, userdata);
        case POWER_ACTION_OFF:
                return command_power_enqueue(c, COMMAND_OFF, false, done, NULL, userdata);
        case POWER_ACTION_CYCLE:
                if (c->argv[COMMAND_CYCLE])
                        return command_power_enqueue(c, COMMAND_CYCLE, false, done, NULL, userdata);
                return command_power_enqueue(c, COMMAND_OFF, true, done, NULL, userdata);
        default:
                return -EINVAL;
        }
}

static PowerState command_power_get(void *instance) {
        CommandPower *c = instance;
        return c->state;
}

static bool command_power_can_read(void *instance) {
        CommandPower *c = instance;
        return c->argv[COMMAND_READING];
}

static int command_power_read(void *instance, PowerReadingFunc done, void *userdata) {
        CommandPower *c = instance;

        if (!c->argv[COMMAND_READING])
                return -EOPNOTSUPP;
        return command_power_enqueue(c, COMMAND_READING, false, NULL, done, userdata);
}

static void *command_power_free(void *instance) {
        CommandPower *c = instance;
        CommandOp *op;

        if (!c)
                return NULL;
        if (c->pid > 0) {
                /* Nobody will hear how it ends: stop it and reap it, which is quick after SIGKILL. */
                (void) kill(-c->pid, SIGKILL);
                (void) waitpid(c->pid, NULL, 0);
        }
        command_power_reset_process(c);
        while ((op = command_power_pop(c)))
                free(op);
        sd_event_source_disable_unref(c->cycle_timer);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(CommandPower *, command_power_free);

static int command_power_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        _cleanup_(command_power_freep) CommandPower *c = NULL;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return log_oom();
        c->ctx = *ctx;
        c->state = POWER_UNKNOWN;
        c->pidfd = c->out.fd = c->err.fd = -EBADF;
        for (CommandKind k = 0; k < _COMMAND_KIND_MAX; k++)
                c->argv[k] = driver_config_get_strv(config, command_kind_table[k]);
        c->timeout_usec = MAX(driver_config_get_u64(config, "timeout", COMMAND_TIMEOUT_DEFAULT_USEC), USEC_PER_MSEC);
        c->cycle_delay_usec = driver_config_get_u64(config, "cycle_delay", COMMAND_CYCLE_DELAY_DEFAULT_USEC);

        /* The state until a command says otherwise: unknown, or what the status command tells. */
        if (c->argv[COMMAND_STATUS]) {
                r = command_power_enqueue(c, COMMAND_STATUS, false, NULL, NULL, NULL);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

static const PowerDriverOps command_power_ops = {
        .set = command_power_set,
        .get = command_power_get,
        .can_read = command_power_can_read,
        .read = command_power_read,
};

const Driver driver_command = {
        .name = "command",
        .new = command_power_new,
        .free = command_power_free,
        .power = &command_power_ops,
};
