/* Tests of the storage mux commands: exit status, timeout, a missing tool, one switch at a time */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "daemon-util.h"
#include "storage-mux.h"
#include "tests.h"

typedef struct Result {
        bool done;
        int r;
} Result;

static void on_done(int r, void *userdata) {
        Result *res = userdata;

        res->done = true;
        res->r = r;
}

static int run(sd_event *e, StorageMux *m, StorageMuxSide side) {
        Result res = {};
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;
        int r;

        r = storage_mux_switch(m, side, on_done, &res);
        if (r < 0)
                return r;
        ASSERT_FALSE(res.done); /* never from within */
        while (!res.done) {
                ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < deadline);
                ASSERT_TRUE(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0);
        }
        return res.r;
}

TEST(commands) {
        sd_event *e = NULL;
        StorageMux *m = NULL;
        char dir[] = "/tmp/test-storage-mux.XXXXXX", log[64], script[64], cmd[1024];
        char *const host[] = { script, (char *) "host", NULL };
        char *const dut[] = { script, (char *) "dut", NULL };
        char *const *argv[_STORAGE_MUX_SIDE_MAX] = { host, dut };
        char buf[256] = {};
        FILE *f;

        ASSERT_TRUE(mkdtemp(dir));
        snprintf(log, sizeof log, "%s/calls", dir);
        snprintf(script, sizeof script, "%s/mux", dir);
        /* Records its argument; "dut" fails while the file "fail" exists, "host" hangs while "hang" does. */
        snprintf(cmd, sizeof cmd,
                 "printf '#!/bin/sh\\necho \"$1\" >> %s\\n[ \"$1\" = dut ] && [ -e %s/fail ] && exit 3\\n"
                 "[ \"$1\" = host ] && [ -e %s/hang ] && exec sleep 100\\nexit 0\\n' > %s && chmod +x %s",
                 log, dir, dir, script, script);
        ASSERT_EQ(system(cmd), 0);

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(storage_mux_new(e, "dut1", argv, 300 * USEC_PER_MSEC, &m));

        ASSERT_EQ(run(e, m, STORAGE_MUX_HOST), 0);
        ASSERT_EQ(run(e, m, STORAGE_MUX_DUT), 0);
        snprintf(cmd, sizeof cmd, "touch %s/fail %s/hang", dir, dir);
        ASSERT_EQ(system(cmd), 0);
        ASSERT_EQ(run(e, m, STORAGE_MUX_DUT), -EIO);
        ASSERT_EQ(run(e, m, STORAGE_MUX_HOST), -EIO); /* killed after the timeout */

        f = fopen(log, "re");
        ASSERT_TRUE(f);
        ASSERT_TRUE(fread(buf, 1, sizeof buf - 1, f) > 0);
        fclose(f);
        ASSERT_STREQ(buf, "host\ndut\ndut\nhost\n");

        /* One switch at a time; freeing kills a running one without calling back. */
        {
                Result res = {};

                ASSERT_OK(storage_mux_switch(m, STORAGE_MUX_HOST, on_done, &res));
                ASSERT_EQ(storage_mux_switch(m, STORAGE_MUX_DUT, on_done, &res), -EBUSY);
                m = storage_mux_free(m);
                ASSERT_FALSE(res.done);
        }

        /* A tool that does not exist. */
        {
                char *const missing[] = { (char *) "/nonexistent/usbsdmux", (char *) "host", NULL };
                char *const *argv2[_STORAGE_MUX_SIDE_MAX] = { missing, missing };
                Result res = {};

                ASSERT_OK(storage_mux_new(e, "dut1", argv2, USEC_PER_SEC, &m));
                ASSERT_EQ(storage_mux_switch(m, STORAGE_MUX_HOST, on_done, &res), -EIO);
                m = storage_mux_free(m);
        }

        sd_event_unref(e);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        ASSERT_EQ(system(cmd), 0);
}

TEST_MAIN()
