/* The storage file: the DUT's storage as a file of the device's size */
#include <fcntl.h>
#include <stdlib.h>

#include "fs.h"
#include "log.h"
#include "macro.h"

static void on_open_reply(sd_bus_message *reply, int error, void *userdata) {
        PendingRequest *p = userdata;
        _cleanup_close_ int fd = -EBADF;
        uint64_t size, session;
        Handle *h;
        int r, received;

        if (error < 0) {
                /* EBUSY while powered: dd fails at open and nothing is written. */
                log_dut(LOG_DEBUG, error, p->dut, "OpenStorage failed: %m");
                return pending_request_fail(p, error);
        }

        r = sd_bus_message_read(reply, "htt", &received, &size, &session);
        if (r <= 0)
                return pending_request_fail(p, EIO);
        fd = fcntl(received, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return pending_request_fail(p, errno);

        h = handle_new(p->fs, FILE_KIND_STORAGE, p->dut);
        if (!h)
                return pending_request_fail(p, ENOMEM);
        h->fd = TAKE_FD(fd);
        h->size = size;
        h->session = session;

        /* It is a device: O_TRUNC is ignored (FUSE_CAP_ATOMIC_O_TRUNC hands it to us instead of truncating). */
        p->fi.direct_io = 1;
        p->fi.keep_cache = 0;
        handle_reply_open(h, TAKE_PTR(p->req), &p->fi);
}

void storage_file_open(Filesystem *fs, fuse_req_t req, const Dut *d, struct fuse_file_info *fi) {
        bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
        PendingRequest *p;

        p = pending_request_new_open(fs, req, d->name, fi);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        pending_request_call(p, "OpenStorage", 0, on_open_reply, "sb", d->name, (int) writable);
}

/* Storage data moves on the workers of storage-io.c: a read, write or fsync of a slow device must not
 * hold up the loop. The checks (and their errnos) stay here, on the loop, where the handle lives. */
void storage_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off) {
        int r;

        if (h->dead || h->fd < 0)
                return (void) fuse_reply_err(req, EIO);
        if (off < 0)
                return (void) fuse_reply_err(req, EINVAL);
        if ((uint64_t) off >= h->size)
                return (void) fuse_reply_buf(req, NULL, 0);
        size = (size_t) MIN((uint64_t) size, h->size - (uint64_t) off);

        r = storage_io_read(fs->storage_io, req, h->fd, size, off);
        if (r < 0)
                (void) fuse_reply_err(req, -r);
}

void storage_file_write(Filesystem *fs, fuse_req_t req, Handle *h, struct fuse_bufvec *bufv, off_t off) {
        size_t size = fuse_buf_size(bufv);
        int r;

        if (h->dead || h->fd < 0)
                return (void) fuse_reply_err(req, EIO);
        if (off < 0)
                return (void) fuse_reply_err(req, EINVAL);
        if (size == 0)
                return (void) fuse_reply_write(req, 0);
        if ((uint64_t) off >= h->size)
                return (void) fuse_reply_err(req, ENOSPC);
        /* A write across the end writes what fits: the caller sees a short write, then ENOSPC. */
        size = (size_t) MIN((uint64_t) size, h->size - (uint64_t) off);

        /* Copies the payload out of the request (libfuse reuses its buffer) and writes it on a worker. */
        r = storage_io_write(fs->storage_io, req, h->fd, bufv, size, off);
        if (r < 0)
                (void) fuse_reply_err(req, -r);
}

void storage_file_fsync(Filesystem *fs, fuse_req_t req, Handle *h) {
        int r;

        if (h->dead || h->fd < 0)
                return (void) fuse_reply_err(req, EIO);
        r = storage_io_fsync(fs->storage_io, req, h->fd);
        if (r < 0)
                (void) fuse_reply_err(req, -r);
}

int storage_file_check_truncate(const Dut *d, uint64_t size) {
        return size <= d->storage_size ? 0 : -ENOSPC;
}

void storage_handle_kill(Handle *h) {
        /* The daemon ends the session with the connection it belongs to. */
        h->session = 0;
}

static void on_close_reply(sd_bus_message *reply, int error, void *userdata) {
        const char *dut = userdata;

        if (error < 0)
                log_dut(LOG_WARNING, error, dut, "Failed to close the storage session of %s: %m", dut);
}

void storage_handle_release(Handle *h) {
        char *dut;
        int r;

        h->fd = safe_close(h->fd);
        if (h->session == 0 || !h->fs)
                return;

        dut = strdup(h->dut);
        if (!dut)
                return (void) log_oom();
        r = agent_call(h->fs->agent, "CloseStorage", 0, on_close_reply, dut, free, "t", h->session);
        if (r < 0) {
                log_dut(LOG_WARNING, r, dut, "Failed to close the storage session of %s: %m", dut);
                free(dut);
        }
        h->session = 0;
}
