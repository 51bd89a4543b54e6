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

static int power_format(sd_bus_message *reply, char **ret_text) {
        const char *state;

        if (sd_bus_message_read(reply, "s", &state) <= 0)
                return -EIO;
        if (asprintf(ret_text, "%s\n", state) < 0)
                return -ENOMEM;
        return 0;
}

static const AgentTextFile power_text_file = {
        .method = "GetPower",
        .format = power_format,
};

void power_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off) {
        agent_text_file_read(fs, req, h, size, off, &power_text_file, "s", h->dut);
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
        size_t size = fuse_buf_size(bufv), n;
        PendingRequest *p;
        PowerAction action;
        int r;

        r = fs_copy_word(h, bufv, buf, sizeof buf, &n);
        if (r < 0)
                return (void) fuse_reply_err(req, -r);

        /* Checked here, before the daemon sees anything: a bad word changes nothing. */
        action = power_action_from_payload(buf, n);
        if (action < 0)
                return (void) fuse_reply_err(req, EINVAL);

        p = pending_request_new(fs, req, h);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        p->size = size;
        pending_request_call(p, "SetPower", SET_POWER_TIMEOUT_USEC, on_set_power_reply, "ss", h->dut,
                             power_action_to_string(action));
}
