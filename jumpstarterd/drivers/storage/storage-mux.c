/* Storage mux: the command that hands a card to the host or to the DUT, run off the event loop */
#include <assert.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <inttypes.h>
#include <unistd.h>

#include "daemon-util.h"
#include "log.h"
#include "macro.h"
#include "storage-mux.h"

extern char **environ;

struct StorageMux {
        sd_event *event;
        char *dut;
        char **argv[_STORAGE_MUX_SIDE_MAX];
        uint64_t timeout_usec;

        /* The running command: a pidfd watched on the loop, so that no SIGCHLD handling (which is
         * process-wide) is needed, and a timer that kills a tool that hangs. */
        pid_t pid;
        int pidfd;
        sd_event_source *child_source, *timer_source;
        StorageMuxSide side;
        bool timed_out;
        StorageMuxDoneFunc done;
        void *userdata;
};

static const char *const side_table[_STORAGE_MUX_SIDE_MAX] = {
        [STORAGE_MUX_HOST] = "host",
        [STORAGE_MUX_DUT] = "dut",
};

const char *storage_mux_side_to_string(StorageMuxSide s) {
        if (s < 0 || s >= _STORAGE_MUX_SIDE_MAX)
                return NULL;
        return side_table[s];
}

static char **strv_copy(char *const *l) {
        size_t n = 0;
        char **c;

        while (l[n])
                n++;
        c = calloc(n + 1, sizeof *c);
        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                c[i] = strdup(l[i]);
                if (!c[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(c[j]);
                        free(c);
                        return NULL;
                }
        }
        return c;
}

static void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

static void storage_mux_reset(StorageMux *m) {
        m->child_source = sd_event_source_disable_unref(m->child_source);
        m->timer_source = sd_event_source_disable_unref(m->timer_source);
        m->pidfd = safe_close(m->pidfd);
        m->pid = 0;
        m->timed_out = false;
}

StorageMux *storage_mux_free(StorageMux *m) {
        if (!m)
                return NULL;
        if (m->pid > 0) {
                /* Shutting down: the command is killed and reaped at once (SIGKILL cannot be
                 * ignored, so the wait is short). */
                (void) kill(m->pid, SIGKILL);
                (void) waitpid(m->pid, NULL, 0);
        }
        storage_mux_reset(m);
        for (StorageMuxSide s = 0; s < _STORAGE_MUX_SIDE_MAX; s++)
                strv_free(m->argv[s]);
        free(m->dut);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

int storage_mux_new(sd_event *event, const char *dut, char *const *argv[_STORAGE_MUX_SIDE_MAX],
                    uint64_t timeout_usec, StorageMux **ret) {
        StorageMux *m;

        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(event);
        m->pidfd = -EBADF;
        m->timeout_usec = timeout_usec;
        m->dut = strdup(dut);
        if (!m->dut) {
                storage_mux_free(m);
                return -ENOMEM;
        }
        for (StorageMuxSide s = 0; s < _STORAGE_MUX_SIDE_MAX; s++) {
                assert(argv[s] && argv[s][0]);
                m->argv[s] = strv_copy(argv[s]);
                if (!m->argv[s]) {
                        storage_mux_free(m);
                        return -ENOMEM;
                }
        }
        *ret = m;
        return 0;
}

static void storage_mux_finish(StorageMux *m, int r) {
        StorageMuxDoneFunc done = m->done;
        void *userdata = m->userdata;

        storage_mux_reset(m);
        m->done = NULL;
        m->userdata = NULL;
        done(r, userdata);
}

static int storage_mux_on_child(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        StorageMux *m = userdata;
        siginfo_t si = {};
        const char *side = storage_mux_side_to_string(m->side);
        int r = 0;

        if (waitid(P_PIDFD, (id_t) m->pidfd, &si, WEXITED | WNOHANG) < 0) {
                log_dut_prefix(LOG_ERR, errno, m->dut, "Failed to wait for the mux command (%s): %m", side);
                return storage_mux_finish(m, -EIO), 0;
        }
        if (si.si_pid == 0)
                return 0; /* not yet */

        if (m->timed_out) {
                log_dut_prefix(LOG_ERR, ETIMEDOUT, m->dut, "Mux command '%s' (%s) did not finish in %" PRIu64 " ms; killed it",
                               m->argv[m->side][0], side, m->timeout_usec / USEC_PER_MSEC);
                r = -EIO;
        } else if (si.si_code == CLD_EXITED && si.si_status == 0)
                log_dut_prefix(LOG_INFO, 0, m->dut, "Storage switched to the %s", side);
        else if (si.si_code == CLD_EXITED) {
                log_dut_prefix(LOG_ERR, EIO, m->dut, "Mux command '%s' (%s) failed with exit status %i",
                               m->argv[m->side][0], side, si.si_status);
                r = -EIO;
        } else {
                log_dut_prefix(LOG_ERR, EIO, m->dut, "Mux command '%s' (%s) was killed by signal %s",
                               m->argv[m->side][0], side, strsignal(si.si_status));
                r = -EIO;
        }
        storage_mux_finish(m, r);
        return 0;
}

static int storage_mux_on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        StorageMux *m = userdata;

        /* The exit is reported through the pidfd like any other. */
        m->timed_out = true;
        (void) kill(m->pid, SIGKILL);
        return 0;
}

int storage_mux_switch(StorageMux *m, StorageMuxSide side, StorageMuxDoneFunc done, void *userdata) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t empty;
        char *const *argv;
        pid_t pid;
        int r;

        assert(m);
        assert(done);
        assert(side >= 0 && side < _STORAGE_MUX_SIDE_MAX);

        if (m->pid > 0)
                return -EBUSY;
        argv = m->argv[side];

        /* The tool gets no stdin, and its output goes to our stderr (the log) where its reasons
         * for failing are read. The daemon blocks some signals: the tool gets a clean mask. */
        r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return -r;
        r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
        if (r != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return -r;
        }
        posix_spawnattr_init(&attr);
        sigemptyset(&empty);
        (void) posix_spawnattr_setsigmask(&attr, &empty);
        (void) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);

        r = strchr(argv[0], '/') ? posix_spawn(&pid, argv[0], &fa, &attr, argv, environ)
                                 : posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return log_dut_prefix(LOG_ERR, r, m->dut, "Failed to run mux command '%s': %m", argv[0]), -EIO;

        m->pid = pid;
        m->side = side;
        m->pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (m->pidfd < 0) {
                r = log_dut_prefix(LOG_ERR, errno, m->dut, "Failed to watch mux command '%s': %m", argv[0]);
                goto kill;
        }
        r = sd_event_add_io(m->event, &m->child_source, m->pidfd, EPOLLIN, storage_mux_on_child, m);
        if (r < 0)
                goto kill;
        r = sd_event_add_time_relative(m->event, &m->timer_source, CLOCK_MONOTONIC, m->timeout_usec, 0,
                                       storage_mux_on_timeout, m);
        if (r < 0)
                goto kill;
        (void) sd_event_source_set_description(m->child_source, "storage-mux-child");
        (void) sd_event_source_set_description(m->timer_source, "storage-mux-timeout");

        m->done = done;
        m->userdata = userdata;
        log_dut_prefix(LOG_DEBUG, 0, m->dut, "Switching storage to the %s: %s (pid %i)",
                       storage_mux_side_to_string(side), argv[0], (int) pid);
        return 0;

kill:
        (void) kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
        storage_mux_reset(m);
        return r;
}
