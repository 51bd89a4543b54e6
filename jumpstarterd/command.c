/* A configured command run asynchronously on the event loop */
#include <assert.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "command.h"
#include "daemon-util.h"
#include "log.h"
#include "macro.h"

/* A line longer than this is logged in pieces. */
#define COMMAND_LINE_MAX 1024
/* Lines logged per stream at most: a tool that prints without end must not flood the journal. */
#define COMMAND_LOG_LINES_MAX 100
/* Reads per wakeup: a command that writes without pause must not keep the loop to itself. */
#define COMMAND_READS_MAX 16

typedef struct CommandStream {
        Command *command;
        const char *name; /* "output" or "error", as the log says */
        bool log;
        int fd;
        sd_event_source *source;
        char line[COMMAND_LINE_MAX];
        size_t line_size;
        unsigned n_logged;
        bool log_full;
} CommandStream;

struct Command {
        char *dut;
        char *what;
        pid_t pid; /* while it runs: the process, and the ID of its process group */
        sd_event_source *child_source;
        sd_event_source *timer_source;
        bool timed_out;
        CommandStream out, err;
        char *stdout_buf; /* stdout_max + 1 bytes */
        size_t stdout_size, stdout_max;
        CommandDoneFunc done;
        void *userdata;
};

static void command_stream_log_line(CommandStream *s) {
        Command *c = s->command;
        size_t n = s->line_size;

        s->line_size = 0;
        if (n > 0 && s->line[n - 1] == '\r')
                n--;
        if (n == 0 || s->log_full)
                return;
        if (s->n_logged >= COMMAND_LOG_LINES_MAX) {
                log_dut_prefix(LOG_INFO, 0, c->dut, "%s %s: (more, not logged)", c->what, s->name);
                s->log_full = true;
                return;
        }
        log_dut_prefix(LOG_INFO, 0, c->dut, "%s %s: %.*s", c->what, s->name, (int) n, s->line);
        s->n_logged++;
}

static void command_stream_feed(CommandStream *s, const char *p, size_t n) {
        Command *c = s->command;

        if (s == &c->out && c->stdout_size < c->stdout_max) {
                size_t k = MIN(n, c->stdout_max - c->stdout_size);

                memcpy(c->stdout_buf + c->stdout_size, p, k);
                c->stdout_size += k;
                c->stdout_buf[c->stdout_size] = '\0';
        }
        if (!s->log)
                return;
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '\n') {
                        command_stream_log_line(s);
                        continue;
                }
                if (s->line_size == sizeof s->line)
                        command_stream_log_line(s);
                s->line[s->line_size++] = p[i];
        }
}

static void command_stream_close(CommandStream *s) {
        s->source = sd_event_source_disable_unref(s->source);
        s->fd = safe_close(s->fd);
}

/* Reads what the pipe holds now, at most max_reads times. */
static void command_stream_read(CommandStream *s, unsigned max_reads) {
        char buf[4096];

        for (unsigned i = 0; i < max_reads && s->fd >= 0; i++) {
                ssize_t n = read(s->fd, buf, sizeof buf);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        /* EOF, or an error that a pipe does not have: nothing more will come. */
                        command_stream_close(s);
                        return;
                }
                command_stream_feed(s, buf, (size_t) n);
        }
}

static int command_on_output(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        command_stream_read(userdata, COMMAND_READS_MAX);
        return 0;
}

static int command_on_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        Command *c = userdata;

        /* The whole group: the children of a script must not outlive it. The leader is not reaped
         * before command_on_exit() has run, so the group ID cannot be anyone else's yet. */
        log_dut_prefix(LOG_DEBUG, 0, c->dut, "%s timed out; killing process group %i", c->what, (int) c->pid);
        c->timed_out = true;
        (void) kill(-c->pid, SIGKILL);
        return 0;
}

static int command_on_exit(sd_event_source *source, const siginfo_t *si, void *userdata) {
        Command *c = userdata;
        int r;

        switch (si->si_code) {
        case CLD_EXITED:
                r = W_EXITCODE(si->si_status, 0);
                break;
        case CLD_KILLED:
                r = W_EXITCODE(0, si->si_status);
                break;
        case CLD_DUMPED:
                r = W_EXITCODE(0, si->si_status) | WCOREFLAG;
                break;
        default:
                return 0; /* only WEXITED was asked for */
        }
        if (c->timed_out)
                r = -ETIME;

        /* What it wrote before it ended is in the pipes now (the output sources run first, and
         * this reads the rest). A child of it that keeps a pipe open is not waited for. */
        command_stream_read(&c->out, COMMAND_READS_MAX);
        command_stream_read(&c->err, COMMAND_READS_MAX);
        command_stream_log_line(&c->err);
        command_stream_log_line(&c->out);
        command_stream_close(&c->out);
        command_stream_close(&c->err);
        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        /* sd-event reaps the process once this returns, also with the source gone. */
        c->child_source = sd_event_source_disable_unref(c->child_source);
        c->pid = 0;

        c->done(c, r, c->userdata);
        return 0;
}

Command *command_free(Command *c) {
        if (!c)
                return NULL;

        if (c->pid > 0) {
                /* Nobody will hear how it ends: stop all of it, and reap the leader, which is quick
                 * after SIGKILL. */
                (void) kill(-c->pid, SIGKILL);
                c->child_source = sd_event_source_disable_unref(c->child_source);
                while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        sd_event_source_disable_unref(c->child_source);
        sd_event_source_disable_unref(c->timer_source);
        command_stream_close(&c->out);
        command_stream_close(&c->err);
        free(c->stdout_buf);
        free(c->what);
        free(c->dut);
        free(c);
        return NULL;
}

const char *command_get_stdout(const Command *c, size_t *ret_size) {
        if (ret_size)
                *ret_size = c->stdout_size;
        return c->stdout_buf;
}

pid_t command_get_pid(const Command *c) {
        return c->pid;
}

/* An fd that is not 0, 1 or 2: the child's dup2() onto those would otherwise be a no-op that
 * leaves O_CLOEXEC set. Takes fd. */
static int fd_move_above_stdio(int fd) {
        int copy;

        if (fd < 0 || fd > STDERR_FILENO)
                return fd;
        copy = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
        if (copy < 0)
                copy = -errno;
        safe_close(fd);
        return copy;
}

static int command_pipe(int *ret_read, int *ret_write) {
        int p[2];

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        *ret_read = fd_move_above_stdio(p[0]);
        *ret_write = fd_move_above_stdio(p[1]);
        if (*ret_read < 0 || *ret_write < 0)
                return *ret_read < 0 ? *ret_read : *ret_write;
        return 0;
}

/* After fork(): only async-signal-safe calls until exec. */
__attribute__((noreturn)) static void command_child(char *const *argv, int null_fd, int out_fd, int err_fd,
                                                    int exec_fd) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigset_t none;
        ssize_t n;
        int error;

        /* Its own process group, so that a timeout kills all of it; the daemon's blocked and
         * ignored signals are not its business (handlers do not survive exec, ignoring does). */
        (void) setpgid(0, 0);
        for (int sig = 1; sig < _NSIG; sig++) {
                struct sigaction old;

                if (sigaction(sig, NULL, &old) >= 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN)
                        (void) sigaction(sig, &dfl, NULL);
        }
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);

        if (dup2(null_fd, STDIN_FILENO) >= 0 && dup2(out_fd, STDOUT_FILENO) >= 0 &&
            dup2(err_fd, STDERR_FILENO) >= 0)
                execvp(argv[0], argv);

        /* Tell the parent why; exec closes exec_fd (O_CLOEXEC) when it works. */
        error = errno;
        n = write(exec_fd, &error, sizeof error);
        (void) n;
        _exit(127);
}

/* 0 when the child executed the program (exec closed the pipe), or its errno. */
static int command_exec_error(int fd) {
        int error = 0;
        ssize_t n;

        do
                n = read(fd, &error, sizeof error);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0)
                return 0;
        if (n != sizeof error || error <= 0)
                return -EIO;
        return -error;
}

/* Forks and executes argv; returns the pid and the read ends of its stdout and stderr (non-blocking),
 * or a negative errno (logged by the caller): the program's own when it could not be executed.
 * Allocates nothing on the heap, so that a child that fails to execute leaks nothing either. */
static int command_spawn(char *const *argv, pid_t *ret_pid, int *ret_out, int *ret_err) {
        _cleanup_close_ int null_fd = -EBADF, out_r = -EBADF, out_w = -EBADF, err_r = -EBADF, err_w = -EBADF,
                            exec_r = -EBADF, exec_w = -EBADF;
        pid_t pid;
        int r;

        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (null_fd < 0)
                return -errno;
        null_fd = fd_move_above_stdio(null_fd);
        if (null_fd < 0)
                return null_fd;
        r = command_pipe(&out_r, &out_w);
        if (r >= 0)
                r = command_pipe(&err_r, &err_w);
        if (r >= 0)
                r = command_pipe(&exec_r, &exec_w);
        if (r < 0)
                return r;
        if (fcntl(out_r, F_SETFL, O_NONBLOCK) < 0 || fcntl(err_r, F_SETFL, O_NONBLOCK) < 0)
                return -errno;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                command_child(argv, null_fd, out_w, err_w, exec_w);

        /* Ours closed, so that the child's exec (or its end) is the pipe's EOF. */
        exec_w = safe_close(exec_w);

        /* Waits until the child has executed the program, a matter of milliseconds (posix_spawn()
         * waits as long), so that a program that is missing is an error of this call. */
        r = command_exec_error(exec_r);
        if (r < 0) {
                /* Gone already, or about to be: reaping it is quick. */
                (void) kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return r;
        }

        *ret_pid = pid;
        *ret_out = TAKE_FD(out_r);
        *ret_err = TAKE_FD(err_r);
        return 0;
}

int command_run(sd_event *event, char *const *argv, const CommandOptions *o, CommandDoneFunc done,
                void *userdata, Command **ret) {
        _cleanup_(command_freep) Command *c = NULL;
        _cleanup_close_ int out_fd = -EBADF, err_fd = -EBADF;
        sigset_t mask;
        pid_t pid = 0;
        int r;

        assert(event);
        assert(argv && argv[0]);
        assert(o && o->dut && o->what);
        assert(done);
        assert(ret);

        /* sd_event_add_child() needs it, so that nothing but sd-event reaps the child. A no-op in
         * jumpstarterd, whose main() blocks it before anything starts. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_dut_prefix(LOG_ERR, errno, o->dut, "Failed to block SIGCHLD: %m");

        r = command_spawn(argv, &pid, &out_fd, &err_fd);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, o->dut, "Failed to run the %s %s: %m", o->what, argv[0]);

        c = calloc(1, sizeof *c);
        if (!c) {
                /* Nobody to watch it: it must not run. */
                (void) kill(-pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return log_oom();
        }
        *c = (Command) {
                /* From here on, command_free() kills and reaps it. */
                .pid = pid,
                .out = { .name = "output", .log = !o->stdout_is_data, .fd = TAKE_FD(out_fd) },
                .err = { .name = "error", .log = true, .fd = TAKE_FD(err_fd) },
                .stdout_max = o->stdout_max,
                .done = done,
                .userdata = userdata,
        };
        c->out.command = c->err.command = c;
        c->dut = strdup(o->dut);
        c->what = strdup(o->what);
        c->stdout_buf = calloc(1, o->stdout_max + 1);
        if (!c->dut || !c->what || !c->stdout_buf)
                return log_oom();

        r = sd_event_add_child(event, &c->child_source, pid, WEXITED, command_on_exit, c);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, o->dut, "Failed to watch the %s: %m", o->what);
        /* After the output sources: the exit handler then finds little left to read. */
        (void) sd_event_source_set_priority(c->child_source, SD_EVENT_PRIORITY_NORMAL + 1);
        (void) sd_event_source_set_description(c->child_source, "command-exit");

        r = sd_event_add_io(event, &c->out.source, c->out.fd, EPOLLIN, command_on_output, &c->out);
        if (r >= 0)
                r = sd_event_add_io(event, &c->err.source, c->err.fd, EPOLLIN, command_on_output, &c->err);
        if (r >= 0 && o->timeout_usec > 0)
                r = sd_event_add_time_relative(event, &c->timer_source, CLOCK_MONOTONIC, o->timeout_usec, 0,
                                               command_on_timeout, c);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, o->dut, "Failed to watch the %s: %m", o->what);
        (void) sd_event_source_set_description(c->out.source, "command-stdout");
        (void) sd_event_source_set_description(c->err.source, "command-stderr");
        if (c->timer_source)
                (void) sd_event_source_set_description(c->timer_source, "command-timeout");

        log_dut_prefix(LOG_DEBUG, 0, o->dut, "Started the %s %s (pid %i)", o->what, argv[0], (int) pid);
        *ret = TAKE_PTR(c);
        return 0;
}
