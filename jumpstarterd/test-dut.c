/* Tests of DUTs made from a config: classes, the power queue, storage writers, shutdown */
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "agent-api.h"
#include "config.h"
#include "daemon-util.h"
#include "dut.h"
#include "exporter.h"
#include "tests.h"

/* Reader ids are not under test here. */
static uint64_t reader_id;

typedef struct Record {
        char changes[256];   /* "on off on ..." */
        char done[256];      /* "cycle=0 off=0 ..." */
        unsigned n_done;
} Record;

typedef struct Call {
        Record *record;
        const char *what;
} Call;

static void on_changed(Dut *d, PowerState state, void *userdata) {
        Record *r = userdata;

        strcat(r->changes, power_state_to_string(state));
        strcat(r->changes, " ");
}

static void on_done(Dut *d, int r, void *userdata) {
        Call *c = userdata;
        char s[64];

        snprintf(s, sizeof s, "%s=%d ", c->what, r);
        strcat(c->record->done, s);
        c->record->n_done++;
}

static ExporterConfig *load(const char *dir) {
        ExporterConfig *c = NULL;
        char *yaml = NULL, *error = NULL, path[128];
        int r;

        snprintf(path, sizeof path, "%s/exporter.yaml", dir);
        ASSERT_TRUE(asprintf(&yaml,
                             "apiVersion: jumpstarter.dev/v1alpha1\n"
                             "kind: ExporterConfig\n"
                             "metadata:\n"
                             "  name: test\n"
                             "  labels:\n"
                             "    site: test\n"
                             "export:\n"
                             "  dut1:\n"
                             "    type: sim\n"
                             "    config:\n"
                             "      boot_time: 20ms\n"
                             "      cycle_delay: 30ms\n"
                             "      log_size: 64KiB\n"
                             "  dut2:\n"
                             "    storage:\n"
                             "      type: file\n"
                             "      config:\n"
                             "        path: disk.img\n"
                             "        size: 1MiB\n") > 0);
        r = exporter_config_parse(path, yaml, strlen(yaml), &c, &error);
        if (r < 0)
                ASSERT_FAIL("config parses (%s)", error ? error : "no message");
        free(yaml);
        return c;
}

static void run_until_done(sd_event *e, Record *rec, unsigned n) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 2 * USEC_PER_SEC;

        while (rec->n_done < n) {
                ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < deadline);
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        }
}

TEST(dut_power_and_storage) {
        char dir[] = "/tmp/test-dut-XXXXXX", img[128];
        ExporterConfig *config;
        Exporter *x;
        sd_event *e;
        Dut *d1, *d2;
        Record rec = {};
        Call cycle = { &rec, "cycle" }, off = { &rec, "off" }, on = { &rec, "on" };
        PowerState state;
        uint64_t size, bytes, modified;
        int fd, fd2;

        ASSERT_TRUE(mkdtemp(dir));
        config = load(dir);
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(exporter_new(e, config, &x));
        exporter_set_power_changed(x, on_changed, &rec);

        ASSERT_EQ(exporter_n_duts(x), 2);
        d1 = exporter_find_dut(x, "dut1");
        d2 = exporter_find_dut(x, "dut2");
        ASSERT_TRUE(d1 && d2);
        ASSERT_TRUE(exporter_get_dut(x, 0) == d1);
        ASSERT_FALSE(exporter_find_dut(x, "dut3"));

        ASSERT_EQ(dut_get_classes(d1), DRIVER_CLASS_MASK(DRIVER_CLASS_POWER) | DRIVER_CLASS_MASK(DRIVER_CLASS_SERIAL) |
                                               DRIVER_CLASS_MASK(DRIVER_CLASS_STORAGE));
        ASSERT_EQ(dut_get_classes(d2), DRIVER_CLASS_MASK(DRIVER_CLASS_STORAGE));
        ASSERT_TRUE(strncmp(dut_get_serial_path(d1), "/dev/pts/", 9) == 0);
        ASSERT_FALSE(dut_get_serial_path(d2));
        ASSERT_EQ_U(dut_get_storage_size(d1), 64 * 1024 * 1024);
        ASSERT_EQ_U(dut_get_storage_size(d2), 1024 * 1024);

        /* dut2 is storage only. */
        ASSERT_EQ(dut_get_power(d2, &state), -EOPNOTSUPP);
        ASSERT_EQ(dut_set_power(d2, POWER_ACTION_ON, on_done, &on), -EOPNOTSUPP);
        ASSERT_EQ(dut_open_serial_log(d2, &fd, &reader_id), -EOPNOTSUPP);
        ASSERT_OK(dut_open_storage(d2, true, &fd, &size));
        ASSERT_EQ_U(size, 1024 * 1024);
        close(fd);
        dut_release_storage_writer(d2);
        snprintf(img, sizeof img, "%s/disk.img", dir);
        ASSERT_OK(access(img, F_OK));

        /* Writing storage keeps the board off; powering on needs the writer gone. */
        ASSERT_OK(dut_get_power(d1, &state));
        ASSERT_EQ(state, POWER_OFF);
        ASSERT_OK(dut_open_storage(d1, true, &fd, &size));
        ASSERT_EQ(dut_n_storage_writers(d1), 1);
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_ON, on_done, &on), -EBUSY);
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_CYCLE, on_done, &on), -EBUSY);
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_OFF, on_done, &off), 1);
        close(fd);
        dut_release_storage_writer(d1);
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_ON, on_done, &on), 1);
        ASSERT_STREQ(rec.changes, "on ");
        ASSERT_EQ(rec.n_done, 0);

        /* Powered: no writers, readers welcome. */
        ASSERT_EQ(dut_open_storage(d1, true, &fd, &size), -EBUSY);
        ASSERT_OK(dut_open_storage(d1, false, &fd, &size));
        close(fd);
        ASSERT_EQ(dut_n_storage_writers(d1), 0);

        /* Actions queue up and finish in order; no writer while any is under way. */
        rec.changes[0] = '\0';
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_CYCLE, on_done, &cycle), 0);
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_OFF, on_done, &off), 0);
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_ON, on_done, &on), 0);
        ASSERT_EQ(dut_open_storage(d1, true, &fd, &size), -EBUSY);
        run_until_done(e, &rec, 3);
        ASSERT_STREQ(rec.done, "cycle=0 off=0 on=0 ");
        ASSERT_STREQ(rec.changes, "off on off on ");

        /* The console of dut1 went to serial.log. */
        {
                uint64_t deadline = now_usec(CLOCK_MONOTONIC) + USEC_PER_SEC;

                do {
                        ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
                        ASSERT_OK(dut_serial_log_stat(d1, &bytes, &modified));
                } while (bytes < 100 && now_usec(CLOCK_MONOTONIC) < deadline);
                ASSERT_TRUE(bytes >= 100);
                ASSERT_TRUE(modified > 0);
        }
        ASSERT_OK(dut_open_serial_log(d1, &fd2, &reader_id));
        close(fd2);

        /* Shutdown: everything goes off; a cycle under way finishes first. */
        rec.n_done = 0;
        rec.done[0] = '\0';
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_CYCLE, on_done, &cycle), 0);
        ASSERT_EQ(exporter_power_off_all(x, NULL, NULL), 0);
        run_until_done(e, &rec, 1);
        for (unsigned i = 0; i < 5; i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        ASSERT_OK(dut_get_power(d1, &state));
        ASSERT_EQ(state, POWER_OFF);
        ASSERT_EQ(exporter_power_off_all(x, NULL, NULL), 1);
        /* Stopping: nothing powers on any more. */
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_ON, on_done, &on), -ECANCELED);
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_OFF, on_done, &off), 1);

        exporter_free(x);

        /* Freeing a DUT cancels what is still queued. */
        ASSERT_OK(exporter_new(e, config, &x));
        d1 = exporter_find_dut(x, "dut1");
        rec.n_done = 0;
        rec.done[0] = '\0';
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_CYCLE, on_done, &cycle), 0);
        ASSERT_EQ(dut_set_power(d1, POWER_ACTION_ON, on_done, &on), 0);
        exporter_free(x);
        {
                char expect[64];

                snprintf(expect, sizeof expect, "cycle=%d on=%d ", -ECANCELED, -ECANCELED);
                ASSERT_STREQ(rec.done, expect);
        }

        exporter_config_free(config);
        sd_event_unref(e);
        ASSERT_OK(unlink(img));
        ASSERT_OK(rmdir(dir));
}

TEST_MAIN();
