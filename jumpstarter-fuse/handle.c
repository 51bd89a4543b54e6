/* Open files: one Handle per open of a file in the view */
#include <stdlib.h>

#include "fs.h"
#include "log.h"
#include "macro.h"

Handle *handle_new(Filesystem *fs, FileKind kind, const char *dut) {
        Handle *h;

        h = calloc(1, sizeof *h);
        if (!h)
                return NULL;
        *h = (Handle) {
                .n_ref = 1,
                .fs = fs,
                .kind = kind,
                .dut = strdup(dut),
                .fd = -EBADF,
        };
        if (!h->dut) {
                free(h);
                return NULL;
        }

        h->next = fs->handles;
        if (h->next)
                h->next->prev = h;
        fs->handles = h;
        return h;
}

Handle *handle_ref(Handle *h) {
        if (h)
                h->n_ref++;
        return h;
}

static void handle_unlink(Handle *h) {
        if (!h->fs)
                return;
        if (h->prev)
                h->prev->next = h->next;
        else
                h->fs->handles = h->next;
        if (h->next)
                h->next->prev = h->prev;
        h->prev = h->next = NULL;
        h->fs = NULL;
}

void handle_kill(Handle *h) {
        if (h->dead)
                return;
        h->dead = true;
        switch (h->kind) {
        case FILE_KIND_SERIAL_LOG:
                serial_log_handle_kill(h);
                break;
        case FILE_KIND_STORAGE:
                storage_handle_kill(h);
                break;
        default:
                break;
        }
        h->fd = safe_close(h->fd);
}

Handle *handle_unref(Handle *h) {
        if (!h || --h->n_ref > 0)
                return NULL;
        handle_kill(h);
        handle_unlink(h);
        free(h->dut);
        free(h->gpio_line);
        free(h->text);
        free(h);
        return NULL;
}

void handle_release(Handle *h) {
        if (!h)
                return;
        if (h->kind == FILE_KIND_STORAGE && !h->dead)
                storage_handle_release(h);
        handle_kill(h);
        handle_unlink(h);
        handle_unref(h);
}

void handle_reply_open(Handle *h, fuse_req_t req, struct fuse_file_info *fi) {
        int r;

        fi->fh = (uintptr_t) h;
        r = fuse_reply_open(req, fi);
        if (r < 0) {
                /* The opener is gone (the kernel will not send a release for this). */
                log_debug_errno(r, "Open of %s/%s was not delivered: %m", h->dut, file_kind_to_string(h->kind));
                handle_release(h);
        }
}
