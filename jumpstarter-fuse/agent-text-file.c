/* Agent text files: a small text the daemon answers to a call, read once per open at offset 0 */
#include <stdarg.h>
#include <stdlib.h>

#include "fs.h"
#include "log.h"
#include "macro.h"

static void on_agent_text_reply(sd_bus_message *reply, int error, void *userdata) {
        PendingRequest *p = userdata;
        Handle *h = p->handle;
        char *text;
        int r;

        if (error < 0) {
                log_dut(LOG_DEBUG, error, h->dut, "%s failed: %m", p->text_file->method);
                return pending_request_fail(p, error);
        }
        if (h->dead)
                return pending_request_fail(p, EIO);

        r = p->text_file->format(reply, &text);
        if (r < 0)
                return pending_request_fail(p, r);

        free(h->text);
        h->text = text;
        h->text_size = strlen(text);
        h->text_valid = true;
        (void) fs_reply_slice(p->req, h->text, h->text_size, p->size, p->offset);
        p->req = NULL;
}

void agent_text_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off, const AgentTextFile *f,
                          const char *types, ...) {
        PendingRequest *p;
        va_list ap;

        if (h->dead)
                return (void) fuse_reply_err(req, EIO);

        /* Reads past the start continue the text that the read at offset 0 got, so that one open sees
         * one answer even when it is read in pieces. */
        if (off > 0 && h->text_valid)
                return (void) fs_reply_slice(req, h->text, h->text_size, size, off);

        p = pending_request_new(fs, req, h);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        p->size = size;
        p->offset = off;
        p->text_file = f;

        va_start(ap, types);
        pending_request_callv(p, f->method, f->timeout_usec, on_agent_text_reply, types, ap);
        va_end(ap);
}
