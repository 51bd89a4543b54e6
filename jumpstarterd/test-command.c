/* Tests of configured commands: exit status, stdout and its bound, the log, timeout, free, a missing program */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "command.h"
#include "daemon-util.h"
#include "tests.h"

static char dir[] = "/tmp/test-command.XXXXXX";

typedef struct Result {
        bool done;
        int r;
        char out[256];
        size_t out_size;
} Result;

static void on_done(Command *c, int r, void *userdata) {
        Result *res = userdata;
        const char *out;

        res->done = true;
        res->r = r;
        out = command_get_stdout(c, &res->out_size);
        ASSERT_TRUE(res->out_size < sizeof res->out);
        memcpy(res->out, out, res->out_size + 1);
        /* Freeing from within done is allowed. */
        command_free(c);
}

static void run_loop_until(sd_event *e, const bool *cond) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;

        while (!*cond) {
                ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < deadline);
                ASSERT_TRUE(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0);
        }
}

/* Runs argv to its end; returns done's r. */
static int run(sd_event *e, char *const *argv, const CommandOptions *o, Result *res) {
        Command *c = NULL;
        int r;

        *res = (Result) {};
        r = command_run(e, argv, o, on_done, res, &c);
        if (r < 0)
                return r;
        ASSERT_FALSE(res->done); /* never from within */
        ASSERT_TRUE(command_get_pid(c) > 0);
        run_loop_until(e, &res->done);
        return res->r;
}

static const CommandOptions opts = {
        .dut = "dut1",
        .what = "test command",
        .timeout_usec = 10 * USEC_PER_SEC,
        .stdout_max = 64,
};

/* stderr (the log) goes to a file from begin to end; end returns what was logged. */
static int saved_stderr = -1;
static char log_path[64];

static void capture_begin(void) {
        int fd;

        snprintf(log_path, sizeof log_path, "%s/log", dir);
        fflush(stderr);
        saved_stderr = dup(STDERR_FILENO);
        fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_TRUE(saved_stderr >= 0 && fd >= 0);
        ASSERT_TRUE(dup2(fd, STDERR_FILENO) >= 0);
        close(fd);
}

static void capture_end(char *buf, size_t size) {
        ssize_t n;
        int fd;

        fflush(stderr);
        ASSERT_TRUE(dup2(saved_stderr, STDERR_FILENO) >= 0);
        close(saved_stderr);
        fd = open(log_path, O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        n = read(fd, buf, size - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        fputs(buf, stderr);
}

/* Whether pid is gone: no such process, or a zombie that nobody reaped (its parent was killed
 * and PID 1 of a container may not reap). */
static bool gone(pid_t pid) {
        char path[64], buf[512], *p;
        ssize_t n;
        int fd;

        snprintf(path, sizeof path, "/proc/%i/stat", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return true;
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return true;
        buf[n] = '\0';
        p = strrchr(buf, ')');
        return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static void wait_gone(pid_t pid) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;

        while (!gone(pid)) {
                ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < deadline);
                usleep(10 * 1000);
        }
}

/* The PIDs a script wrote: "$$ $!". */
static void read_pids(const char *path, pid_t *ret_sh, pid_t *ret_child) {
        int sh = 0, child = 0;
        FILE *f;

        f = fopen(path, "re");
        ASSERT_TRUE(f);
        ASSERT_EQ(fscanf(f, "%d %d", &sh, &child), 2);
        fclose(f);
        ASSERT_TRUE(sh > 0 && child > 0);
        *ret_sh = sh;
        *ret_child = child;
}

TEST(exit_status) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Result res;
        int r;

        ASSERT_OK(sd_event_new(&e));

        r = run(e, (char *const[]) { (char *) "true", NULL }, &opts, &res);
        ASSERT_TRUE(WIFEXITED(r));
        ASSERT_EQ(WEXITSTATUS(r), 0);

        r = run(e, (char *const[]) { (char *) "sh", (char *) "-c", (char *) "exit 3", NULL }, &opts, &res);
        ASSERT_TRUE(WIFEXITED(r));
        ASSERT_EQ(WEXITSTATUS(r), 3);

        r = run(e, (char *const[]) { (char *) "/bin/sh", (char *) "-c", (char *) "kill -TERM $$", NULL }, &opts, &res);
        ASSERT_TRUE(WIFSIGNALED(r));
        ASSERT_EQ(WTERMSIG(r), SIGTERM);

        /* stdin is /dev/null: a command that reads it ends at once. */
        r = run(e, (char *const[]) { (char *) "cat", NULL }, &opts, &res);
        ASSERT_EQ(r, 0);
        ASSERT_EQ_U(res.out_size, 0);
}

TEST(stdout_and_its_bound) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        CommandOptions o = opts;
        Result res;

        ASSERT_OK(sd_event_new(&e));

        ASSERT_EQ(run(e, (char *const[]) { (char *) "sh", (char *) "-c", (char *) "printf '12.5\\n'; echo x >&2", NULL },
                      &o, &res),
                  0);
        ASSERT_STREQ(res.out, "12.5\n");
        ASSERT_EQ_U(res.out_size, 5);

        /* Kept up to the bound; the rest is read (the command does not block on a full pipe) and
         * dropped. */
        o.stdout_max = 10;
        o.stdout_is_data = true;
        ASSERT_EQ(run(e, (char *const[]) { (char *) "sh", (char *) "-c", (char *) "head -c 300000 /dev/zero | tr '\\0' x", NULL },
                      &o, &res),
                  0);
        ASSERT_EQ_U(res.out_size, 10);
        ASSERT_STREQ(res.out, "xxxxxxxxxx");

        o.stdout_max = 0;
        ASSERT_EQ(run(e, (char *const[]) { (char *) "echo", (char *) "hello", NULL }, &o, &res), 0);
        ASSERT_EQ_U(res.out_size, 0);
        ASSERT_STREQ(res.out, "");
}

TEST(lines_are_logged) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        CommandOptions o = opts;
        char log[16384];
        Result res;

        ASSERT_OK(sd_event_new(&e));

        capture_begin();
        ASSERT_EQ(run(e, (char *const[]) { (char *) "sh", (char *) "-c",
                                           (char *) "echo out-line; echo err-one >&2; printf 'err-two\\r\\nno-newline' >&2; exit 2",
                                           NULL },
                      &o, &res),
                  W_EXITCODE(2, 0));
        capture_end(log, sizeof log);
        ASSERT_CONTAINS(log, "dut1: test command output: out-line\n");
        ASSERT_CONTAINS(log, "dut1: test command error: err-one\n");
        ASSERT_CONTAINS(log, "dut1: test command error: err-two\n");
        ASSERT_CONTAINS(log, "dut1: test command error: no-newline\n");

        /* Data on stdout is not logged; stderr still is. */
        o.stdout_is_data = true;
        capture_begin();
        ASSERT_EQ(run(e, (char *const[]) { (char *) "sh", (char *) "-c", (char *) "echo 7.5; echo why >&2", NULL }, &o,
                      &res),
                  0);
        capture_end(log, sizeof log);
        ASSERT_STREQ(res.out, "7.5\n");
        ASSERT_TRUE(!strstr(log, "7.5"));
        ASSERT_CONTAINS(log, "dut1: test command error: why\n");

        /* A tool that does not stop printing: the log gets the first part only. */
        capture_begin();
        ASSERT_EQ(run(e, (char *const[]) { (char *) "sh", (char *) "-c", (char *) "seq 1 100000 >&2", NULL }, &o, &res),
                  0);
        capture_end(log, sizeof log);
        ASSERT_CONTAINS(log, "dut1: test command error: 1\n");
        ASSERT_CONTAINS(log, "dut1: test command error: 100\n");
        ASSERT_CONTAINS(log, "dut1: test command error: (more, not logged)\n");
        ASSERT_TRUE(!strstr(log, "error: 101\n"));
}

TEST(timeout_kills_the_group) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        CommandOptions o = opts;
        char pids[64], script[256];
        pid_t sh, child;
        Result res;
        uint64_t t0;

        ASSERT_OK(sd_event_new(&e));

        snprintf(pids, sizeof pids, "%s/pids", dir);
        snprintf(script, sizeof script, "sleep 100 & echo $$ $! > %s; wait", pids);
        o.timeout_usec = 300 * USEC_PER_MSEC;
        t0 = now_usec(CLOCK_MONOTONIC);
        ASSERT_EQ(run(e, (char *const[]) { (char *) "sh", (char *) "-c", script, NULL }, &o, &res), -ETIME);
        ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) - t0 >= 300 * USEC_PER_MSEC);

        read_pids(pids, &sh, &child);
        wait_gone(sh);
        wait_gone(child); /* the grandchild too */
}

TEST(free_kills_a_running_command) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        char pids[64], script[256];
        Command *c = NULL;
        struct stat st;
        pid_t sh, child;
        Result res = {};
        uint64_t deadline;

        ASSERT_OK(sd_event_new(&e));

        snprintf(pids, sizeof pids, "%s/pids2", dir);
        snprintf(script, sizeof script, "sleep 100 & echo $$ $! > %s.new; mv %s.new %s; wait", pids, pids, pids);
        ASSERT_OK(command_run(e, (char *const[]) { (char *) "sh", (char *) "-c", script, NULL }, &opts, on_done, &res, &c));
        deadline = now_usec(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;
        while (stat(pids, &st) < 0) {
                ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < deadline);
                ASSERT_TRUE(sd_event_run(e, 10 * USEC_PER_MSEC) >= 0);
        }
        read_pids(pids, &sh, &child);
        ASSERT_EQ(command_get_pid(c), sh);

        c = command_free(c);
        /* Reaped by command_free(): not even a zombie is left of the command itself. */
        ASSERT_TRUE(kill(sh, 0) < 0 && errno == ESRCH);
        wait_gone(child);
        /* Nothing is called back afterwards. */
        ASSERT_TRUE(sd_event_run(e, 50 * USEC_PER_MSEC) >= 0);
        ASSERT_FALSE(res.done);
}

TEST(missing_program) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        char log[4096], path[64];
        Command *c = NULL;
        Result res = {};
        FILE *f;

        ASSERT_OK(sd_event_new(&e));

        capture_begin();
        ASSERT_EQ(command_run(e, (char *const[]) { (char *) "/nonexistent/mux-tool", (char *) "host", NULL }, &opts,
                              on_done, &res, &c),
                  -ENOENT);
        ASSERT_EQ(command_run(e, (char *const[]) { (char *) "no-such-program-in-path", NULL }, &opts, on_done, &res, &c),
                  -ENOENT);
        /* There, but not executable. */
        snprintf(path, sizeof path, "%s/not-executable", dir);
        f = fopen(path, "we");
        ASSERT_TRUE(f);
        fputs("#!/bin/sh\n", f);
        fclose(f);
        ASSERT_EQ(command_run(e, (char *const[]) { path, NULL }, &opts, on_done, &res, &c), -EACCES);
        capture_end(log, sizeof log);

        ASSERT_TRUE(c == NULL);
        ASSERT_CONTAINS(log, "dut1: Failed to run the test command /nonexistent/mux-tool: No such file or directory");
        ASSERT_CONTAINS(log, "no-such-program-in-path: No such file or directory");
        ASSERT_CONTAINS(log, "not-executable: Permission denied");
        ASSERT_TRUE(sd_event_run(e, 50 * USEC_PER_MSEC) >= 0);
        ASSERT_FALSE(res.done);
        /* Nothing is left to reap. */
        ASSERT_TRUE(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

static void cleanup_dir(void) {
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        (void) system(cmd);
}

__attribute__((constructor)) static void setup(void) {
        ASSERT_TRUE(mkdtemp(dir));
        atexit(cleanup_dir);
}

TEST_MAIN()
