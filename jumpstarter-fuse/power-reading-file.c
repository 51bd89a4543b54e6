/* The power.reading file: the power draw the DUT's power driver measures, as "12.5 W" */
#include <stdio.h>

#include "fs.h"
#include "macro.h"

/* A meter behind a slow network switch may take its retries: give it time. */
#define POWER_READING_TIMEOUT_USEC (60 * USEC_PER_SEC)

static int power_reading_format(sd_bus_message *reply, char **ret_text) {
        double watts;

        if (sd_bus_message_read(reply, "d", &watts) <= 0)
                return -EIO;
        if (asprintf(ret_text, "%.1f W\n", watts) < 0)
                return -ENOMEM;
        return 0;
}

static const AgentTextFile power_reading_text_file = {
        .method = "GetPowerReading",
        .timeout_usec = POWER_READING_TIMEOUT_USEC,
        .format = power_reading_format,
};

void power_reading_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off) {
        agent_text_file_read(fs, req, h, size, off, &power_reading_text_file, "s", h->dut);
}
