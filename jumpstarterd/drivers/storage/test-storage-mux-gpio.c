/* Tests of the mux-gpio storage driver against the fake GPIO chip: the switch to the DUT at start, sessions, host_value */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "config.h"
#include "daemon-util.h"
#include "dut.h"
#include "tests.h"

static char dir[] = "/tmp/test-storage-mux-gpio.XXXXXX";

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

__attribute__((constructor)) static void setup(void) {
        char path[128];

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_EQ(atexit(cleanup_dir), 0);
        ASSERT_EQ(setenv("JMP_FAKE_GPIO_DIR", dir, 1), 0);
        snprintf(path, sizeof path, "%s/gpiochip0", dir);
        ASSERT_EQ(mkdir(path, 0755), 0);
        for (unsigned i = 0; i < 8; i++)
                set_level(i, 0);
        /* The card, as the host sees it (a mux driver never creates it). */
        snprintf(path, sizeof path, "%s/card.img", dir);
        ASSERT_EQ(close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)), 0);
        ASSERT_EQ(truncate(path, 64 * 1024), 0);
}

/* A DUT "dut1": a relay on line 0, and a card behind a mux with the given options (line among them). */
static ExporterConfig *load(const char *mux_options) {
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
                             "    power:\n"
                             "      type: gpio-relay\n"
                             "      config: { chip: gpiochip0, line: 0 }\n"
                             "    storage:\n"
                             "      type: mux-gpio\n"
                             "      config: { path: %s/card.img, size: 64KiB, chip: gpiochip0, %s }\n",
                             dir, mux_options) > 0);
        r = exporter_config_parse(path, yaml, strlen(yaml), &c, &error);
        if (r < 0)
                ASSERT_FAIL("config parses (%s)", error ? error : "no message");
        free(yaml);
        return c;
}

typedef struct Record {
        unsigned n_done;
        int r;
        int fd;
} Record;

static void on_power_done(Dut *d, int r, void *userdata) {
        Record *rec = userdata;

        rec->n_done++;
        rec->r = r;
}

static void on_open(Dut *d, int r, int fd, uint64_t size, void *userdata) {
        Record *rec = userdata;

        rec->n_done++;
        rec->r = r;
        rec->fd = fd;
}

static void run_until(sd_event *e, const unsigned *n, unsigned want) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;

        while (*n < want) {
                ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < deadline);
                ASSERT_OK(sd_event_run(e, 100 * USEC_PER_MSEC));
        }
}

/* Runs the loop until nothing is pending. */
static void settle(sd_event *e) {
        for (unsigned i = 0; i < 10; i++)
                ASSERT_OK(sd_event_run(e, 0));
}

TEST(switch_to_the_dut_at_start_and_sessions) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Record rec = { .fd = -EBADF };
        ExporterConfig *c;
        PowerState s;
        uint64_t size;
        Dut *d = NULL;
        int fd = -EBADF;

        /* A card left with the host (the daemon crashed during a flash). */
        set_level(5, 1);
        c = load("line: 5");
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(dut_new(e, &c->duts[0], NULL, NULL, &d));
        ASSERT_EQ(level(5), 0);

        /* Power on right away waits for the switch to finish, then goes ahead. */
        ASSERT_EQ(dut_set_power(d, POWER_ACTION_ON, on_power_done, &rec), 0);
        ASSERT_EQ(level(0), 0);
        run_until(e, &rec.n_done, 1);
        ASSERT_EQ(rec.r, 0);
        ASSERT_EQ(level(0), 1);
        ASSERT_OK(dut_get_power(d, &s));
        ASSERT_EQ(s, POWER_ON);

        /* While powered the card is the DUT's. */
        ASSERT_EQ(dut_open_storage_session(d, false, on_open, &rec, &fd, &size), -EBUSY);
        ASSERT_EQ(level(5), 0);
        ASSERT_EQ(dut_set_power(d, POWER_ACTION_OFF, on_power_done, &rec), 1);

        /* A session: the host has the card from the open to the close. */
        rec = (Record) { .fd = -EBADF };
        ASSERT_EQ(dut_open_storage_session(d, true, on_open, &rec, &fd, &size), 0);
        ASSERT_EQ(level(5), 1);
        run_until(e, &rec.n_done, 1);
        ASSERT_OK(rec.r);
        ASSERT_TRUE(rec.fd >= 0);
        ASSERT_EQ(pwrite(rec.fd, "card", 4, 0), 4);
        close(rec.fd);
        /* Power on fails while the session is open. */
        ASSERT_EQ(dut_set_power(d, POWER_ACTION_ON, on_power_done, &rec), -EBUSY);
        dut_close_storage_session(d, true);
        ASSERT_EQ(level(5), 0);
        settle(e);
        ASSERT_EQ(level(5), 0);

        /* A second session switches again. */
        rec = (Record) { .fd = -EBADF };
        ASSERT_EQ(dut_open_storage_session(d, false, on_open, &rec, &fd, &size), 0);
        run_until(e, &rec.n_done, 1);
        ASSERT_OK(rec.r);
        ASSERT_EQ(level(5), 1);
        {
                char buf[4] = {};

                ASSERT_EQ(pread(rec.fd, buf, 4, 0), 4);
                ASSERT_TRUE(memcmp(buf, "card", 4) == 0);
        }
        close(rec.fd);
        dut_close_storage_session(d, false);
        settle(e);
        ASSERT_EQ(level(5), 0);

        dut_free(d);
        exporter_config_free(c);
}

TEST(host_value_and_active_low) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Record rec = { .fd = -EBADF };
        ExporterConfig *c;
        uint64_t size;
        Dut *d = NULL;
        int fd;

        ASSERT_OK(sd_event_new(&e));

        /* host_value 0: the host side is a low line, the DUT's a high one. */
        set_level(5, 0);
        c = load("line: 5, host_value: 0");
        ASSERT_OK(dut_new(e, &c->duts[0], NULL, NULL, &d));
        ASSERT_EQ(level(5), 1);
        settle(e);
        ASSERT_EQ(dut_open_storage_session(d, false, on_open, &rec, &fd, &size), 0);
        run_until(e, &rec.n_done, 1);
        ASSERT_OK(rec.r);
        ASSERT_EQ(level(5), 0);
        close(rec.fd);
        dut_close_storage_session(d, false);
        settle(e);
        ASSERT_EQ(level(5), 1);
        d = dut_free(d);
        exporter_config_free(c);

        /* active_low inverts the logical value: host_value 1 is a low line. */
        rec = (Record) { .fd = -EBADF };
        c = load("line: 5, active_low: true, consumer: sd-mux");
        ASSERT_OK(dut_new(e, &c->duts[0], NULL, NULL, &d));
        ASSERT_EQ(level(5), 1);
        settle(e);
        ASSERT_EQ(dut_open_storage_session(d, false, on_open, &rec, &fd, &size), 0);
        run_until(e, &rec.n_done, 1);
        ASSERT_OK(rec.r);
        ASSERT_EQ(level(5), 0);
        close(rec.fd);
        dut_close_storage_session(d, false);
        settle(e);
        ASSERT_EQ(level(5), 1);
        d = dut_free(d);
        exporter_config_free(c);
}

TEST(bad_host_value_and_missing_chip) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        ExporterConfig *c;
        Dut *d = NULL;

        ASSERT_OK(sd_event_new(&e));

        /* A host_value other than 0 or 1 never gets as far as the driver: the parser refuses it
         * with its line and column. */
        {
                char path[160], *error = NULL;
                const char *yaml = "apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: test}\n"
                                   "export:\n  dut1:\n    storage:\n      type: mux-gpio\n"
                                   "      config: {path: card.img, chip: gpiochip0, line: 5, host_value: 2}\n";

                snprintf(path, sizeof path, "%s/exporter.yaml", dir);
                c = NULL;
                ASSERT_EQ(exporter_config_parse(path, yaml, strlen(yaml), &c, &error), -EINVAL);
                ASSERT_CONTAINS(error, ":8:70: export.dut1.storage.config.host_value: 2 is out of range 0..1");
                free(error);
        }

        c = load("line: 40");
        ASSERT_EQ(dut_new(e, &c->duts[0], NULL, NULL, &d), -EINVAL);
        exporter_config_free(c);
}

TEST_MAIN()
