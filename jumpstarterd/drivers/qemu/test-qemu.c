/* Tests of the QEMU driver's process handling, with a stand-in for QEMU that speaks just enough QMP */
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>

#include "daemon-util.h"
#include "driver.h"
#include "qemu.h"
#include "tests.h"

/* The stand-in: greets and answers on the QMP socket (fd 4), then echoes console lines (fd 3).
 * Its behaviour comes from the append option, which lands in its argv like any other argument. */
static const char fake_qemu[] =
        "#!/bin/sh\n"
        "mode=\n"
        "for a; do case \"$a\" in mode=*) mode=${a#mode=};; esac; done\n"
        "if [ \"$mode\" = fail ]; then echo 'fake-qemu: cannot open kernel' >&2; exit 1; fi\n"
        "[ \"$mode\" = ignore-term ] && trap '' TERM\n"
        "printf '{\"QMP\": {\"version\": {}}}\\n' >&4\n"
        "read c1 <&4; read c2 <&4\n"
        "printf '{\"return\": {}}\\n{\"return\": {\"status\": \"running\"}}\\n' >&4\n"
        "echo 'fake console up' >&3\n"
        "while read line <&3; do\n"
        "  case \"$line\" in exit*) exit 3;; *) echo \"echo:$line\" >&3;; esac\n"
        "done\n";

typedef struct State {
        char output[8192];
        size_t n_output;
        char changes[256];
        int done_r;
        unsigned n_done;
} State;

static void on_output(void *userdata, const void *data, size_t n) {
        State *s = userdata;

        n = MIN(n, sizeof s->output - 1 - s->n_output);
        memcpy(s->output + s->n_output, data, n);
        s->n_output += n;
        s->output[s->n_output] = '\0';
}

static void on_changed(void *userdata, PowerState state) {
        State *s = userdata;

        strcat(s->changes, power_state_to_string(state));
        strcat(s->changes, " ");
}

static void on_done(int r, void *userdata) {
        State *s = userdata;

        s->done_r = r;
        s->n_done++;
}

/* Runs the loop until cond holds; 10 s turns a hang into a failure. */
#define RUN_UNTIL(e, cond)                                                              \
        do {                                                                            \
                uint64_t _deadline = now_usec(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;     \
                while (!(cond)) {                                                       \
                        ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < _deadline);            \
                        ASSERT_OK(sd_event_run((e), 100 * 1000));                      \
                }                                                                       \
        } while (0)

static char script[64];

static void write_fake(void) {
        FILE *f;

        snprintf(script, sizeof script, "/tmp/fake-qemu.%d", (int) getpid());
        f = fopen(script, "we");
        ASSERT_TRUE(f);
        ASSERT_TRUE(fputs(fake_qemu, f) >= 0);
        ASSERT_EQ(fclose(f), 0);
        ASSERT_EQ(chmod(script, 0755), 0);
}

static Qemu *make(sd_event *e, State *s, const char *mode, uint64_t stop_timeout) {
        QemuOptions o = {
                .binary = script,
                .kernel = script, /* any readable file */
                .append = mode,
                .memory = QEMU_DEFAULT_MEMORY,
                .cpus = 1,
                .stop_timeout_usec = stop_timeout,
                .log_size = QEMU_DEFAULT_LOG_SIZE,
        };
        DriverContext ctx = {
                .event = e,
                .dut_name = "vm1",
                .serial_output = on_output,
                .power_changed = on_changed,
                .userdata = s,
        };
        Qemu *q = NULL;

        ASSERT_OK(qemu_new(&o, &ctx, &q));
        return q;
}

static unsigned count(const char *haystack, const char *needle) {
        unsigned n = 0;

        for (const char *p = haystack; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

static int set_power(Qemu *q, PowerAction a, State *s) {
        return driver_qemu.power->set(q, a, on_done, s);
}

TEST(on_console_off) {
        sd_event *e = NULL;
        State s = {};
        Qemu *q;

        ASSERT_OK(sd_event_new(&e));
        q = make(e, &s, "mode=normal", 5 * USEC_PER_SEC);
        ASSERT_EQ(driver_qemu.power->get(q), POWER_OFF);
        ASSERT_EQ(set_power(q, POWER_ACTION_OFF, &s), 1);

        /* On is pending until QMP has answered. */
        ASSERT_EQ(set_power(q, POWER_ACTION_ON, &s), 0);
        ASSERT_EQ(driver_qemu.power->get(q), POWER_ON);
        RUN_UNTIL(e, s.n_done == 1);
        ASSERT_EQ(s.done_r, 0);
        ASSERT_EQ(set_power(q, POWER_ACTION_ON, &s), 1);

        RUN_UNTIL(e, strstr(s.output, "fake console up"));
        driver_qemu.serial->input(q, "hello\n", 6);
        RUN_UNTIL(e, strstr(s.output, "echo:hello"));

        ASSERT_EQ(set_power(q, POWER_ACTION_OFF, &s), 0);
        RUN_UNTIL(e, s.n_done == 2);
        ASSERT_EQ(s.done_r, 0);
        ASSERT_EQ(driver_qemu.power->get(q), POWER_OFF);
        ASSERT_STREQ(s.changes, "on off ");

        /* Typing into a machine that is off goes nowhere. */
        driver_qemu.serial->input(q, "x\n", 2);

        driver_qemu.free(q);
        sd_event_unref(e);
}

TEST(cycle_restarts) {
        sd_event *e = NULL;
        State s = {};
        Qemu *q;

        ASSERT_OK(sd_event_new(&e));
        q = make(e, &s, "mode=normal", 5 * USEC_PER_SEC);
        /* Cycle from off is on. */
        ASSERT_EQ(set_power(q, POWER_ACTION_CYCLE, &s), 0);
        RUN_UNTIL(e, s.n_done == 1);
        ASSERT_EQ(s.done_r, 0);
        RUN_UNTIL(e, count(s.output, "fake console up") == 1);
        ASSERT_EQ(set_power(q, POWER_ACTION_CYCLE, &s), 0);
        RUN_UNTIL(e, s.n_done == 2);
        ASSERT_EQ(s.done_r, 0);
        ASSERT_STREQ(s.changes, "on off on ");
        RUN_UNTIL(e, count(s.output, "fake console up") == 2);
        driver_qemu.free(q); /* kills the running stand-in */
        sd_event_unref(e);
}

TEST(start_failure_is_eio) {
        sd_event *e = NULL;
        State s = {};
        Qemu *q;

        ASSERT_OK(sd_event_new(&e));
        q = make(e, &s, "mode=fail", 5 * USEC_PER_SEC);
        ASSERT_EQ(set_power(q, POWER_ACTION_ON, &s), 0);
        RUN_UNTIL(e, s.n_done == 1);
        ASSERT_EQ(s.done_r, -EIO);
        ASSERT_EQ(driver_qemu.power->get(q), POWER_OFF);
        ASSERT_STREQ(s.changes, "on off ");
        driver_qemu.free(q);
        sd_event_unref(e);
}

TEST(sigkill_after_stop_timeout) {
        sd_event *e = NULL;
        State s = {};
        uint64_t t;
        Qemu *q;

        ASSERT_OK(sd_event_new(&e));
        q = make(e, &s, "mode=ignore-term", 200 * USEC_PER_MSEC);
        ASSERT_EQ(set_power(q, POWER_ACTION_ON, &s), 0);
        RUN_UNTIL(e, s.n_done == 1);
        RUN_UNTIL(e, strstr(s.output, "fake console up"));
        t = now_usec(CLOCK_MONOTONIC);
        ASSERT_EQ(set_power(q, POWER_ACTION_OFF, &s), 0);
        RUN_UNTIL(e, s.n_done == 2);
        ASSERT_EQ(s.done_r, 0);
        /* It took the SIGKILL: not before the timeout. */
        ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) - t >= 200 * USEC_PER_MSEC);
        ASSERT_EQ(driver_qemu.power->get(q), POWER_OFF);
        driver_qemu.free(q);
        sd_event_unref(e);
}

TEST(exit_by_itself_is_off) {
        sd_event *e = NULL;
        State s = {};
        Qemu *q;

        ASSERT_OK(sd_event_new(&e));
        q = make(e, &s, "mode=normal", 5 * USEC_PER_SEC);
        ASSERT_EQ(set_power(q, POWER_ACTION_ON, &s), 0);
        RUN_UNTIL(e, s.n_done == 1);
        RUN_UNTIL(e, strstr(s.output, "fake console up"));
        driver_qemu.serial->input(q, "exit\n", 5);
        RUN_UNTIL(e, driver_qemu.power->get(q) == POWER_OFF);
        ASSERT_STREQ(s.changes, "on off ");
        ASSERT_EQ(s.n_done, 1);
        ASSERT_EQ(set_power(q, POWER_ACTION_OFF, &s), 1);
        driver_qemu.free(q);
        sd_event_unref(e);
}

TEST(bad_options) {
        sd_event *e = NULL;
        State s = {};
        DriverContext ctx = { .userdata = &s, .dut_name = "vm1" };
        QemuOptions o = {
                .binary = "/nonexistent/qemu",
                .kernel = script,
                .memory = QEMU_DEFAULT_MEMORY,
                .cpus = 1,
                .stop_timeout_usec = USEC_PER_SEC,
                .log_size = QEMU_DEFAULT_LOG_SIZE,
        };
        Qemu *q = NULL;

        ASSERT_OK(sd_event_new(&e));
        ctx.event = e;
        ASSERT_EQ(qemu_new(&o, &ctx, &q), -ENOENT);
        o.binary = "no-such-qemu-anywhere";
        ASSERT_EQ(qemu_new(&o, &ctx, &q), -ENOENT);
        o.binary = script;
        o.kernel = "/nonexistent/vmlinuz";
        ASSERT_EQ(qemu_new(&o, &ctx, &q), -ENOENT);
        o.kernel = script;
        o.cpus = 0;
        ASSERT_EQ(qemu_new(&o, &ctx, &q), -EINVAL);
        ASSERT_TRUE(!q);
        sd_event_unref(e);
}

static void cleanup(void) {
        (void) unlink(script);
}

__attribute__((constructor)) static void setup(void) {
        sigset_t mask;

        /* What jumpstarterd's main() does before any driver starts: sd_event_add_child() needs it. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        ASSERT_EQ(sigprocmask(SIG_BLOCK, &mask, NULL), 0);
        write_fake();
        atexit(cleanup);
}

TEST_MAIN();
