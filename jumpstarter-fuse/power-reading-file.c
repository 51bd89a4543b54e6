/* The power.reading file: the power draw the DUT's power driver measures, as "12.5 W" */
#include <stdio.h>
#include <stdlib.h>

#include "fs.h"
#include "log.h"
#include "macro.h"

/* A meter behind a slow network switch may take its retries: give it time. */
#define POWER_READING_TIMEOUT_USEC (60 * USEC_PER_SEC)

static void on_get_power_reading_reply(sd_bus_message *reply, int error, void *userdata) {
        PendingRequest *p = userdata;
        Handle *h = p->handle;
        double watts;
        char *text;
        int r;

        if (error < 0) {
                log_dut(LOG_DEBUG, error, h->dut, "GetPowerReading failed: %m");
                return pending_request_fail(p, error);
        }
        if (h->dead)
                return pending_request_fail(p, EIO);

        r = sd_bus_message_read(reply, "d", &watts);
        if (r <= 0)
                return pending_request_fail(p, EIO);
        if (asprintf(&text, "%.1f W\n", watts) < 0)
                return pending_request_fail(p, ENOMEM);

        free(h->text);
        h->text = text;
        h->text_size = strlen(text);
        h->text_valid = true;
        (void) fs_reply_slice(p->req, h->text, h->text_size, p->size, p->offset);
        p->req = NULL;
}

void power_reading_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off) {
        PendingRequest *p;
        int r;

        if (h->dead)
                return (void) fuse_reply_err(req, EIO);

        /* Reads past the start continue the reading that the read at offset 0 got. */
        if (off > 0 && h->text_valid)
                return (void) fs_reply_slice(req, h->text, h->text_size, size, off);

        p = pending_request_new(fs, req, h);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        p->size = size;
        p->offset = off;
        r = agent_call(fs->agent, "GetPowerReading", POWER_READING_TIMEOUT_USEC, on_get_power_reading_reply, p,
                       pending_request_free, "s", h->dut);
        if (r < 0) {
                pending_request_fail(p, -r);
                pending_request_free(p);
        }
}
