/* The power file: "on", "off" or "unknown" to read; "on", "off" or "cycle" to write */
#include <stdio.h>
#include <stdlib.h>

#include "fs.h"
#include "log.h"
#include "macro.h"

/* A power action may wait for a slow PDU or a board's boot: give the driver time. */
#define SET_POWER_TIMEOUT_USEC (120 * USEC_PER_SEC)
#define POWER_PAYLOAD_MAX 16

static const char *const power_action_table[_POWER_ACTION_MAX] = {
        [POWER_ACTION_ON] = "on",
        [POWER_ACTION_OFF] = "off",
        [POWER_ACTION_CYCLE] = "cycle",
};

const char *power_action_to_string(PowerAction a) {
        if (a < 0 || a >= _POWER_ACTION_MAX)
                return NULL;
        return power_action_table[a];
}

PowerAction power_action_from_payload(const char *buf, size_t size) {
        if (!buf)
                return _POWER_ACTION_INVALID;
        if (size > 0 && buf[size - 1] == '\n')
                size--;
        for (PowerAction a = 0; a < _POWER_ACTION_MAX; a++)
                if (strlen(power_action_table[a]) == size && memcmp(power_action_table[a], buf, size) == 0)
                        return a;
        return _POWER_ACTION_INVALID;
}

static void on_get_power_reply(sd_bus_message *reply, int error, void *userdata) {
        PendingRequest *p = userdata;
        Handle *h = p->handle;
        const char *state;
        char *text;
        int r;

        if (error < 0)
                return pending_request_fail(p, error);
        if (h->dead)
                return pending_request_fail(p, EIO);

        r = sd_bus_message_read(reply, "s", &state);
        if (r <= 0)
                return pending_request_fail(p, EIO);
        if (asprintf(&text, "%s\n", state) < 0)
                return pending_request_fail(p, ENOMEM);

        free(h->text);
        h->text = text;
        h->text_size = strlen(text);
        h->text_valid = true;
        (void) fs_reply_slice(p->req, h->text, h->text_size, p->size, p->offset);
        p->req = NULL;
}

void power_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off) {
        PendingRequest *p;
        int r;

        if (h->dead)
                return (void) fuse_reply_err(req, EIO);

        /* Reads past the start continue the state that the read at offset 0 saw. */
        if (off > 0 && h->text_valid)
                return (void) fs_reply_slice(req, h->text, h->text_size, size, off);

        p = pending_request_new(fs, req, h);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        p->size = size;
        p->offset = off;
        r = agent_call(fs->agent, "GetPower", 0, on_get_power_reply, p, pending_request_free, "s", h->dut);
        if (r < 0) {
                pending_request_fail(p, -r);
                pending_request_free(p);
        }
}

static void on_set_power_reply(sd_bus_message *reply, int error, void *userdata) {
        PendingRequest *p = userdata;

        if (error < 0) {
                log_dut(LOG_DEBUG, error, p->handle->dut, "SetPower failed: %m");
                return pending_request_fail(p, error);
        }
        (void) fuse_reply_write(p->req, p->size);
        p->req = NULL;
}

void power_file_write(Filesystem *fs, fuse_req_t req, Handle *h, struct fuse_bufvec *bufv) {
        char buf[POWER_PAYLOAD_MAX];
        size_t size = fuse_buf_size(bufv);
        struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
        PendingRequest *p;
        PowerAction action;
        ssize_t n;
        int r;

        if (h->dead)
                return (void) fuse_reply_err(req, EIO);
        if (size > sizeof buf)
                return (void) fuse_reply_err(req, EINVAL);

        dst.buf[0].mem = buf;
        n = fuse_buf_copy(&dst, bufv, 0);
        if (n < 0)
                return (void) fuse_reply_err(req, (int) -n);

        /* Checked here, before the daemon sees anything: a bad word changes nothing. */
        action = power_action_from_payload(buf, (size_t) n);
        if (action < 0)
                return (void) fuse_reply_err(req, EINVAL);

        p = pending_request_new(fs, req, h);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        p->size = size;
        r = agent_call(fs->agent, "SetPower", SET_POWER_TIMEOUT_USEC, on_set_power_reply, p,
                       pending_request_free, "ss", h->dut, power_action_to_string(action));
        if (r < 0) {
                pending_request_fail(p, -r);
                pending_request_free(p);
        }
}
