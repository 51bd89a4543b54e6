/* Tests of the simulated board: boot log, shell line editing and commands, power, storage */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "daemon-util.h"
#include "driver.h"
#include "sim.h"
#include "tests.h"

#define PROMPT "dut1:~# "

typedef struct Capture {
        char *buf;
        size_t n;
        PowerState state;
        unsigned n_changes;
        int done_r;
        unsigned n_done;
} Capture;

static void capture_output(void *userdata, const void *data, size_t n) {
        Capture *c = userdata;

        c->buf = realloc(c->buf, c->n + n + 1);
        ASSERT_TRUE(c->buf);
        memcpy(c->buf + c->n, data, n);
        c->n += n;
        c->buf[c->n] = '\0';
}

static void capture_power(void *userdata, PowerState state) {
        Capture *c = userdata;

        c->state = state;
        c->n_changes++;
}

static void capture_reset(Capture *c) {
        c->n = 0;
        if (c->buf)
                c->buf[0] = '\0';
}

static void on_done(int r, void *userdata) {
        Capture *c = userdata;

        c->done_r = r;
        c->n_done++;
}

static bool capture_has(const Capture *c, const char *needle) {
        return c->buf && strstr(c->buf, needle);
}

/* Runs the loop until the output has needle, for at most timeout. */
static void run_until(sd_event *e, const Capture *c, const char *needle, uint64_t timeout) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout;

        while (!capture_has(c, needle)) {
                if (now_usec(CLOCK_MONOTONIC) > deadline)
                        ASSERT_FAIL("output \"%s\" has \"%s\" within %" PRIu64 "ms", c->buf ? c->buf : "",
                                    needle, timeout / USEC_PER_MSEC);
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        }
}

static void run_for(sd_event *e, uint64_t usec) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + usec;

        while (now_usec(CLOCK_MONOTONIC) < deadline)
                ASSERT_OK(sd_event_run(e, 5 * USEC_PER_MSEC));
}

typedef struct Board {
        sd_event *event;
        Sim *sim;
        Capture out;
} Board;

static void board_new(Board *b, const SimOptions *o) {
        DriverContext ctx;

        *b = (Board) {};
        ASSERT_OK(sd_event_new(&b->event));
        ctx = (DriverContext) {
                .event = b->event,
                .dut_name = "dut1",
                .serial_output = capture_output,
                .power_changed = capture_power,
                .userdata = &b->out,
        };
        ASSERT_OK(sim_new(o, &ctx, &b->sim));
}

static void board_boot(Board *b) {
        ASSERT_EQ(driver_sim.power->set(b->sim, POWER_ACTION_ON, on_done, &b->out), 1);
        ASSERT_EQ(b->out.state, POWER_ON);
        run_until(b->event, &b->out, "boot complete\r\n" PROMPT, 2 * USEC_PER_SEC);
        capture_reset(&b->out);
}

static void board_done(Board *b) {
        driver_sim.free(b->sim);
        sd_event_unref(b->event);
        free(b->out.buf);
}

static void type(Board *b, const char *keys) {
        driver_sim.serial->input(b->sim, keys, strlen(keys));
}

static void booted_board(Board *b) {
        SimOptions o = SIM_OPTIONS_DEFAULT;

        o.boot_time_usec = 10 * USEC_PER_MSEC;
        board_new(b, &o);
        board_boot(b);
}

TEST(boot_log) {
        SimOptions o = SIM_OPTIONS_DEFAULT;
        Board b;
        uint64_t start, took;

        o.boot_time_usec = 90 * USEC_PER_MSEC;
        board_new(&b, &o);
        ASSERT_EQ(driver_sim.power->get(b.sim), POWER_OFF);

        start = now_usec(CLOCK_MONOTONIC);
        ASSERT_EQ(driver_sim.power->set(b.sim, POWER_ACTION_ON, on_done, &b.out), 1);
        ASSERT_EQ(b.out.state, POWER_ON);
        ASSERT_EQ(b.out.n_changes, 1);
        /* Nothing printed at once; a shell that has not booted ignores keystrokes. */
        ASSERT_EQ(b.out.n, 0);
        type(&b, "echo early\r");
        ASSERT_EQ(b.out.n, 0);

        run_until(b.event, &b.out, "boot complete\r\n" PROMPT, 2 * USEC_PER_SEC);
        took = now_usec(CLOCK_MONOTONIC) - start;
        ASSERT_TRUE(took >= 85 * USEC_PER_MSEC);
        ASSERT_TRUE(took < 1000 * USEC_PER_MSEC);

        ASSERT_TRUE(strncmp(b.out.buf, "U-Boot 2024.01 (sim)\r\n", 22) == 0);
        ASSERT_CONTAINS(b.out.buf, "\r\nStarting kernel ...\r\n");
        ASSERT_CONTAINS(b.out.buf, "Linux version 6.1.0-sim (jumpstarter)");
        ASSERT_CONTAINS(b.out.buf, "simulated board dut1\r\n");
        ASSERT_FALSE(strstr(b.out.buf, "early"));
        ASSERT_STREQ(b.out.buf + b.out.n - strlen("boot complete\r\n" PROMPT), "boot complete\r\n" PROMPT);

        /* Power on again while on changes nothing. */
        ASSERT_EQ(driver_sim.power->set(b.sim, POWER_ACTION_ON, on_done, &b.out), 1);
        ASSERT_EQ(b.out.n_changes, 1);
        board_done(&b);
}

TEST(echo_and_line_editing) {
        Board b;

        booted_board(&b);

        type(&b, "echo hi\r");
        ASSERT_STREQ(b.out.buf, "echo hi\r\nhi\r\n" PROMPT);
        capture_reset(&b.out);

        /* Backspace and DEL erase; spaces between words collapse as in sh. */
        type(&b, "ecz\x7fho  a\b\bab   c");
        ASSERT_STREQ(b.out.buf, "ecz\b \bho  a\b \b\b \bab   c");
        type(&b, "\r");
        ASSERT_CONTAINS(b.out.buf, "\r\nab c\r\n" PROMPT);
        capture_reset(&b.out);

        /* Backspace on an empty line prints nothing. */
        type(&b, "\x7f\x7f");
        ASSERT_EQ(b.out.n, 0);

        /* "\r\n" is one Enter, as is "\n" alone. */
        type(&b, "echo one\r\n");
        ASSERT_STREQ(b.out.buf, "echo one\r\none\r\n" PROMPT);
        capture_reset(&b.out);
        type(&b, "echo two\n");
        ASSERT_STREQ(b.out.buf, "echo two\r\ntwo\r\n" PROMPT);
        capture_reset(&b.out);

        /* Empty line: just the prompt. Two lines in one chunk: both run. */
        type(&b, "\r");
        ASSERT_STREQ(b.out.buf, "\r\n" PROMPT);
        capture_reset(&b.out);
        type(&b, "echo a\recho b\r");
        ASSERT_STREQ(b.out.buf, "echo a\r\na\r\n" PROMPT "echo b\r\nb\r\n" PROMPT);
        capture_reset(&b.out);

        /* ^C drops the line. */
        type(&b, "echo lost\x03");
        ASSERT_STREQ(b.out.buf, "echo lost^C\r\n" PROMPT);
        board_done(&b);
}

TEST(commands) {
        Board b;

        booted_board(&b);

        type(&b, "help\r");
        ASSERT_CONTAINS(b.out.buf, "echo");
        ASSERT_CONTAINS(b.out.buf, "uname");
        ASSERT_CONTAINS(b.out.buf, "uptime");
        ASSERT_CONTAINS(b.out.buf, "cat /etc/hostname");
        ASSERT_CONTAINS(b.out.buf, "flood N");
        capture_reset(&b.out);

        type(&b, "uname\r");
        ASSERT_STREQ(b.out.buf, "uname\r\nLinux\r\n" PROMPT);
        capture_reset(&b.out);
        type(&b, "uname -a\r");
        ASSERT_CONTAINS(b.out.buf, "\r\nLinux dut1 6.1.0-sim ");
        capture_reset(&b.out);

        type(&b, "uptime\r");
        ASSERT_STREQ(b.out.buf, "uptime\r\nup 0 seconds\r\n" PROMPT);
        capture_reset(&b.out);

        type(&b, "cat /etc/hostname\r");
        ASSERT_STREQ(b.out.buf, "cat /etc/hostname\r\ndut1\r\n" PROMPT);
        capture_reset(&b.out);
        type(&b, "cat /etc/shadow\r");
        ASSERT_CONTAINS(b.out.buf, "cat: /etc/shadow: No such file or directory\r\n" PROMPT);
        capture_reset(&b.out);

        type(&b, "reboot now\r");
        ASSERT_STREQ(b.out.buf, "reboot now\r\nsh: reboot: not found\r\n" PROMPT);
        capture_reset(&b.out);

        type(&b, "echo\r");
        ASSERT_STREQ(b.out.buf, "echo\r\n\r\n" PROMPT);
        board_done(&b);
}

TEST(flood) {
        Board b;
        const char *p;
        char expect[80];

        booted_board(&b);

        type(&b, "flood 3\r");
        /* Produced from the loop, not inside the keystroke. */
        ASSERT_STREQ(b.out.buf, "flood 3\r\n");
        run_until(b.event, &b.out, PROMPT, USEC_PER_SEC);
        p = b.out.buf + strlen("flood 3\r\n");
        for (unsigned i = 1; i <= 3; i++) {
                snprintf(expect, sizeof expect, "flood %06u abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW\r\n", i);
                ASSERT_EQ(strlen(expect), 64);
                ASSERT_TRUE(strncmp(p, expect, 64) == 0);
                p += 64;
        }
        ASSERT_STREQ(p, PROMPT);
        capture_reset(&b.out);

        type(&b, "flood 5000\r");
        run_until(b.event, &b.out, PROMPT, 5 * USEC_PER_SEC);
        ASSERT_EQ(b.out.n, strlen("flood 5000\r\n") + 5000 * 64 + strlen(PROMPT));
        ASSERT_CONTAINS(b.out.buf, "\r\nflood 005000 ");
        capture_reset(&b.out);

        type(&b, "flood 0\r");
        ASSERT_CONTAINS(b.out.buf, "not a number of lines between 1 and 1000000\r\n" PROMPT);
        capture_reset(&b.out);
        type(&b, "flood 1000001\r");
        ASSERT_CONTAINS(b.out.buf, "not a number of lines between 1 and 1000000\r\n" PROMPT);
        capture_reset(&b.out);
        type(&b, "flood -1\r");
        ASSERT_CONTAINS(b.out.buf, "not a number");
        capture_reset(&b.out);

        /* ^C stops a long flood; other keystrokes meanwhile are not a command. */
        type(&b, "flood 1000000\r");
        ASSERT_OK(sd_event_run(b.event, 0));
        type(&b, "echo no\r");
        type(&b, "\x03");
        ASSERT_CONTAINS(b.out.buf, "^C\r\n" PROMPT);
        ASSERT_FALSE(strstr(b.out.buf, "\r\nno\r\n"));
        ASSERT_TRUE(b.out.n < 1000000 * 64);
        capture_reset(&b.out);
        run_for(b.event, 20 * USEC_PER_MSEC);
        ASSERT_EQ(b.out.n, 0);

        /* Power off stops a flood too. */
        type(&b, "flood 1000000\r");
        ASSERT_OK(sd_event_run(b.event, 0));
        ASSERT_EQ(driver_sim.power->set(b.sim, POWER_ACTION_OFF, on_done, &b.out), 1);
        capture_reset(&b.out);
        run_for(b.event, 20 * USEC_PER_MSEC);
        ASSERT_EQ(b.out.n, 0);
        board_done(&b);
}

TEST(power_off_and_cycle) {
        SimOptions o = SIM_OPTIONS_DEFAULT;
        Board b;
        uint64_t start;

        o.boot_time_usec = 50 * USEC_PER_MSEC;
        o.cycle_delay_usec = 40 * USEC_PER_MSEC;
        board_new(&b, &o);

        /* Off during boot: the boot log stops and the shell never comes. */
        ASSERT_EQ(driver_sim.power->set(b.sim, POWER_ACTION_ON, on_done, &b.out), 1);
        run_until(b.event, &b.out, "U-Boot", USEC_PER_SEC);
        ASSERT_EQ(driver_sim.power->set(b.sim, POWER_ACTION_OFF, on_done, &b.out), 1);
        ASSERT_EQ(b.out.state, POWER_OFF);
        ASSERT_EQ(b.out.n_changes, 2);
        capture_reset(&b.out);
        run_for(b.event, 80 * USEC_PER_MSEC);
        ASSERT_EQ(b.out.n, 0);
        type(&b, "echo off\r");
        ASSERT_EQ(b.out.n, 0);

        /* Off while off changes nothing. */
        ASSERT_EQ(driver_sim.power->set(b.sim, POWER_ACTION_OFF, on_done, &b.out), 1);
        ASSERT_EQ(b.out.n_changes, 2);

        /* Cycle from on: off at once, on after cycle_delay, then done. */
        board_boot(&b);
        ASSERT_EQ(b.out.n_changes, 3);
        start = now_usec(CLOCK_MONOTONIC);
        ASSERT_EQ(driver_sim.power->set(b.sim, POWER_ACTION_CYCLE, on_done, &b.out), 0);
        ASSERT_EQ(b.out.state, POWER_OFF);
        ASSERT_EQ(b.out.n_done, 0);
        while (b.out.n_done == 0)
                ASSERT_OK(sd_event_run(b.event, 100 * USEC_PER_MSEC));
        ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) - start >= 35 * USEC_PER_MSEC);
        ASSERT_EQ(b.out.done_r, 0);
        ASSERT_EQ(b.out.state, POWER_ON);
        ASSERT_EQ(b.out.n_changes, 5);
        run_until(b.event, &b.out, "boot complete", USEC_PER_SEC);

        /* A pending cycle dies with the board without calling back. */
        ASSERT_EQ(driver_sim.power->set(b.sim, POWER_ACTION_CYCLE, on_done, &b.out), 0);
        board_done(&b);
}

TEST(storage_in_memory) {
        SimOptions o = SIM_OPTIONS_DEFAULT;
        Board b;
        int fd, ro;
        struct stat st;

        board_new(&b, &o);
        ASSERT_EQ_U(driver_sim.storage->size(b.sim), 64 * 1024 * 1024);
        fd = driver_sim.storage->open(b.sim, true);
        ASSERT_OK(fd);
        ASSERT_OK(fstat(fd, &st));
        ASSERT_EQ(st.st_size, 64 * 1024 * 1024);
        ASSERT_EQ(pwrite(fd, "data", 4, 4096), 4);

        ro = driver_sim.storage->open(b.sim, false);
        ASSERT_OK(ro);
        ASSERT_EQ(fcntl(ro, F_GETFL) & O_ACCMODE, O_RDONLY);
        ASSERT_TRUE(fcntl(ro, F_GETFD) & FD_CLOEXEC);
        {
                char buf[4];

                ASSERT_EQ(pread(ro, buf, 4, 4096), 4);
                ASSERT_TRUE(memcmp(buf, "data", 4) == 0);
        }
        ASSERT_EQ(write(ro, "x", 1), -1);
        close(fd);
        close(ro);
        board_done(&b);
}

TEST(storage_file) {
        char dir[] = "/tmp/test-sim-XXXXXX", path[64];
        SimOptions o = SIM_OPTIONS_DEFAULT;
        DriverContext ctx;
        sd_event *e;
        Sim *s;
        struct stat st;

        ASSERT_TRUE(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/disk.img", dir);
        ASSERT_OK(sd_event_new(&e));
        ctx = (DriverContext) { .event = e, .dut_name = "dut1" };

        /* Missing and no size: an error that names the path. */
        o.storage = path;
        ASSERT_EQ(sim_new(&o, &ctx, &s), -ENOENT);

        /* With a size: created sparse with it. */
        o.size_set = true;
        o.size = 1024 * 1024;
        ASSERT_OK(sim_new(&o, &ctx, &s));
        ASSERT_EQ_U(driver_sim.storage->size(s), 1024 * 1024);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_size, 1024 * 1024);
        driver_sim.free(s);

        /* Existing, no size: its size is the device size. Grown when a larger size is asked. */
        o.size_set = false;
        ASSERT_OK(sim_new(&o, &ctx, &s));
        ASSERT_EQ_U(driver_sim.storage->size(s), 1024 * 1024);
        driver_sim.free(s);
        o.size_set = true;
        o.size = 2 * 1024 * 1024;
        ASSERT_OK(sim_new(&o, &ctx, &s));
        ASSERT_EQ_U(driver_sim.storage->size(s), 2 * 1024 * 1024);
        driver_sim.free(s);

        ASSERT_OK(unlink(path));
        ASSERT_OK(rmdir(dir));
        sd_event_unref(e);
}

TEST_MAIN();
