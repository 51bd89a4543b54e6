/* Tests of the GPIO drivers against the fake chip: values, active_low, initial, the relay, errors */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "config.h"
#include "daemon-util.h"
#include "dut.h"
#include "tests.h"

static char dir[] = "/tmp/test-gpio.XXXXXX";

/* The physical level of a fake line, as the fake chip's file holds it. */
static int level(unsigned offset) {
        char path[128], c = 0;
        int fd;

        snprintf(path, sizeof path, "%s/gpiochip0/%u", dir, offset);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(read(fd, &c, 1), 1);
        close(fd);
        return c - '0';
}

/* The hardware changes a line (or a test sets it before the daemon starts). */
static void set_level(unsigned offset, int v) {
        char path[128];
        FILE *f;

        snprintf(path, sizeof path, "%s/gpiochip0/%u", dir, offset);
        f = fopen(path, "we");
        ASSERT_TRUE(f);
        fprintf(f, "%d\n", v);
        ASSERT_EQ(fclose(f), 0);
}

static void cleanup_dir(void) {
        char cmd[256];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        (void) system(cmd);
}

static void setup(void) {
        static bool made = false;
        char path[128];

        /* Once (the random name itself may end in an X). */
        if (!made) {
                made = true;
                ASSERT_TRUE(mkdtemp(dir));
                ASSERT_EQ(atexit(cleanup_dir), 0);
                ASSERT_EQ(setenv("JMP_FAKE_GPIO_DIR", dir, 1), 0);
                snprintf(path, sizeof path, "%s/gpiochip0", dir);
                ASSERT_EQ(mkdir(path, 0755), 0);
        }
        for (unsigned i = 0; i < 8; i++)
                set_level(i, 0);
}

/* A DUT "dut1" with the given YAML under it (indented by 4). */
static ExporterConfig *load(const char *dut_yaml) {
        ExporterConfig *c = NULL;
        char *yaml = NULL, *error = NULL, path[160];
        int r;

        snprintf(path, sizeof path, "%s/exporter.yaml", dir);
        ASSERT_TRUE(asprintf(&yaml,
                             "apiVersion: jumpstarter.dev/v1alpha1\n"
                             "kind: ExporterConfig\n"
                             "metadata:\n"
                             "  name: test\n"
                             "export:\n"
                             "  dut1:\n"
                             "%s",
                             dut_yaml) > 0);
        r = exporter_config_parse(path, yaml, strlen(yaml), &c, &error);
        if (r < 0)
                ASSERT_FAIL("config parses (%s)", error ? error : "no message");
        free(yaml);
        return c;
}

/* dut_new()'s result, with what it logged on stderr in log (NUL-terminated). */
static int dut_new_logged(sd_event *e, const ExporterConfig *c, Dut **ret, char *log, size_t size) {
        char path[160];
        int saved, fd, r;
        ssize_t n;

        snprintf(path, sizeof path, "%s/stderr", dir);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_TRUE(saved >= 0 && fd >= 0);
        ASSERT_TRUE(dup2(fd, STDERR_FILENO) >= 0);
        r = dut_new(e, &c->duts[0], NULL, NULL, ret);
        fflush(stderr);
        ASSERT_TRUE(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        n = pread(fd, log, size - 1, 0);
        close(fd);
        log[n > 0 ? n : 0] = 0;
        fputs(log, stderr);
        return r;
}

TEST(values_active_low_and_initial) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        ExporterConfig *c;
        Dut *d = NULL;
        bool v;

        setup();
        set_level(3, 1); /* left as it is: the daemon must not touch it at start */
        set_level(4, 1);
        c = load("    gpio:\n"
                 "      reset:\n"
                 "        type: gpio\n"
                 "        config: { chip: gpiochip0, line: 1, active_low: true, initial: 1 }\n"
                 "      boot-mode_0:\n"
                 "        type: gpio\n"
                 "        config: { chip: \"0\", line: 2, initial: 0 }\n"
                 "      asis:\n"
                 "        type: gpio\n"
                 "        config: { chip: /dev/gpiochip0, line: 3 }\n"
                 "      asis-low:\n"
                 "        type: gpio\n"
                 "        config: { chip: gpiochip0, line: 4, active_low: yes, consumer: board-x }\n");
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(dut_new(e, &c->duts[0], NULL, NULL, &d));

        ASSERT_EQ_U(dut_n_gpio_lines(d), 4);
        ASSERT_STREQ(dut_gpio_line_name(d, 0), "reset");
        ASSERT_STREQ(dut_gpio_line_name(d, 1), "boot-mode_0");
        ASSERT_TRUE(dut_gpio_line_name(d, 4) == NULL);

        /* initial 1 with active_low drives the line low; initial 0 drives it low too. */
        ASSERT_EQ(level(1), 0);
        ASSERT_EQ(level(2), 0);
        ASSERT_OK(dut_get_gpio(d, "reset", &v));
        ASSERT_TRUE(v);
        ASSERT_OK(dut_get_gpio(d, "boot-mode_0", &v));
        ASSERT_FALSE(v);

        /* Untouched at start, read as they are (inverted with active_low). */
        ASSERT_EQ(level(3), 1);
        ASSERT_EQ(level(4), 1);
        ASSERT_OK(dut_get_gpio(d, "asis", &v));
        ASSERT_TRUE(v);
        ASSERT_OK(dut_get_gpio(d, "asis-low", &v));
        ASSERT_FALSE(v);

        ASSERT_OK(dut_set_gpio(d, "reset", false));
        ASSERT_EQ(level(1), 1);
        ASSERT_OK(dut_set_gpio(d, "boot-mode_0", true));
        ASSERT_EQ(level(2), 1);
        ASSERT_OK(dut_get_gpio(d, "boot-mode_0", &v));
        ASSERT_TRUE(v);
        /* A line requested as it is becomes an output on the first write. */
        ASSERT_OK(dut_set_gpio(d, "asis", false));
        ASSERT_EQ(level(3), 0);
        ASSERT_OK(dut_set_gpio(d, "asis-low", true));
        ASSERT_EQ(level(4), 0);
        ASSERT_OK(dut_set_gpio(d, "asis-low", false));
        ASSERT_EQ(level(4), 1);

        /* What the hardware says is what a read returns. */
        set_level(2, 0);
        ASSERT_OK(dut_get_gpio(d, "boot-mode_0", &v));
        ASSERT_FALSE(v);

        ASSERT_EQ(dut_get_gpio(d, "nope", &v), -ENOENT);
        ASSERT_EQ(dut_set_gpio(d, "nope", true), -ENOENT);
        ASSERT_EQ(dut_set_gpio(d, "Reset", true), -ENOENT);

        dut_free(d);
        exporter_config_free(c);
}

TEST(missing_chip_and_line) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        char log[4096];
        ExporterConfig *c;
        Dut *d = NULL;

        setup();
        ASSERT_OK(sd_event_new(&e));

        c = load("    type: sim\n"
                 "    gpio:\n"
                 "      reset:\n"
                 "        type: gpio\n"
                 "        config: { chip: gpiochip9, line: 1 }\n");
        ASSERT_EQ(dut_new_logged(e, c, &d, log, sizeof log), -ENOENT);
        ASSERT_TRUE(d == NULL);
        ASSERT_CONTAINS(log, "dut1: GPIO chip gpiochip9 not found");
        ASSERT_CONTAINS(log, "GPIO line reset");
        exporter_config_free(c);

        c = load("    gpio:\n"
                 "      reset:\n"
                 "        type: gpio\n"
                 "        config: { chip: gpiochip0, line: 40 }\n");
        ASSERT_EQ(dut_new_logged(e, c, &d, log, sizeof log), -EINVAL);
        ASSERT_CONTAINS(log, "dut1: GPIO chip gpiochip0 has no line 40");
        exporter_config_free(c);

        c = load("    power:\n"
                 "      type: gpio-relay\n"
                 "      config: { chip: \"7\", line: 1 }\n");
        ASSERT_EQ(dut_new_logged(e, c, &d, log, sizeof log), -ENOENT);
        ASSERT_CONTAINS(log, "dut1: GPIO chip 7 not found");
        exporter_config_free(c);
}

TEST(line_busy) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        char log[4096];
        ExporterConfig *c;
        Dut *d = NULL, *d2 = NULL;

        setup();
        ASSERT_OK(sd_event_new(&e));

        /* Two names for one line: the second request fails, and the first is released again. */
        c = load("    gpio:\n"
                 "      a:\n"
                 "        type: gpio\n"
                 "        config: { chip: gpiochip0, line: 5 }\n"
                 "      b:\n"
                 "        type: gpio\n"
                 "        config: { chip: \"0\", line: 5 }\n");
        ASSERT_EQ(dut_new_logged(e, c, &d, log, sizeof log), -EBUSY);
        ASSERT_CONTAINS(log, "dut1: Line 5 of GPIO chip 0 is in use");
        exporter_config_free(c);

        /* The relay holds its line: a gpio line on it is refused while the relay lives. */
        c = load("    power:\n"
                 "      type: gpio-relay\n"
                 "      config: { chip: gpiochip0, line: 5 }\n");
        ASSERT_OK(dut_new(e, &c->duts[0], NULL, NULL, &d));
        {
                ExporterConfig *c2 = load("    gpio:\n"
                                          "      a:\n"
                                          "        type: gpio\n"
                                          "        config: { chip: gpiochip0, line: 5 }\n");

                ASSERT_EQ(dut_new_logged(e, c2, &d2, log, sizeof log), -EBUSY);
                d = dut_free(d);
                ASSERT_OK(dut_new(e, &c2->duts[0], NULL, NULL, &d2));
                dut_free(d2);
                exporter_config_free(c2);
        }
        exporter_config_free(c);
}

typedef struct Record {
        char changes[256];
        unsigned n_done;
        int r;
} Record;

static void on_changed(Dut *d, PowerState state, void *userdata) {
        Record *rec = userdata;

        strcat(rec->changes, power_state_to_string(state));
        strcat(rec->changes, " ");
}

static void on_done(Dut *d, int r, void *userdata) {
        Record *rec = userdata;

        rec->n_done++;
        rec->r = r;
}

TEST(relay) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Record rec = {};
        ExporterConfig *c;
        PowerState s;
        Dut *d = NULL;
        uint64_t deadline;

        setup();
        set_level(6, 1); /* powered when the daemon starts: stays so */
        c = load("    power:\n"
                 "      type: gpio-relay\n"
                 "      config: { chip: gpiochip0, line: 6, active_low: true, cycle_delay: 50ms }\n");
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(dut_new(e, &c->duts[0], on_changed, &rec, &d));
        ASSERT_EQ(level(6), 1);
        ASSERT_OK(dut_get_power(d, &s));
        ASSERT_EQ(s, POWER_OFF);

        ASSERT_EQ(dut_set_power(d, POWER_ACTION_ON, on_done, &rec), 1);
        ASSERT_EQ(level(6), 0);
        ASSERT_OK(dut_get_power(d, &s));
        ASSERT_EQ(s, POWER_ON);
        ASSERT_EQ(dut_set_power(d, POWER_ACTION_OFF, on_done, &rec), 1);
        ASSERT_EQ(level(6), 1);
        ASSERT_OK(dut_get_power(d, &s));
        ASSERT_EQ(s, POWER_OFF);

        /* Cycle: off at once, on again after cycle_delay, then done. */
        ASSERT_OK(dut_set_power(d, POWER_ACTION_ON, on_done, &rec));
        rec.changes[0] = 0;
        ASSERT_EQ(dut_set_power(d, POWER_ACTION_CYCLE, on_done, &rec), 0);
        ASSERT_EQ(level(6), 1);
        ASSERT_STREQ(rec.changes, "off ");
        deadline = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;
        while (rec.n_done < 1 && now_usec(CLOCK_MONOTONIC) < deadline)
                ASSERT_OK(sd_event_run(e, 100 * 1000));
        ASSERT_EQ(rec.n_done, 1);
        ASSERT_EQ(rec.r, 0);
        ASSERT_STREQ(rec.changes, "off on ");
        ASSERT_EQ(level(6), 0);

        /* Read back from the line: someone else switched it off. */
        set_level(6, 1);
        ASSERT_OK(dut_get_power(d, &s));
        ASSERT_EQ(s, POWER_OFF);

        /* The hardware fails: the state is unknown, and a switch reports the error. */
        {
                char path[128];

                snprintf(path, sizeof path, "%s/gpiochip0/6", dir);
                ASSERT_EQ(truncate(path, 0), 0);
        }
        ASSERT_OK(dut_get_power(d, &s));
        ASSERT_EQ(s, POWER_UNKNOWN);
        set_level(6, 1);

        dut_free(d);
        exporter_config_free(c);
}

TEST_MAIN();
