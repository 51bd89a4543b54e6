/* The serial.log file: the console output, each open with its own position, followable with tail -f */
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include "fs.h"
#include "log.h"
#include "macro.h"

static void on_open_reply(sd_bus_message *reply, int error, void *userdata) {
        PendingRequest *p = userdata;
        _cleanup_close_ int fd = -EBADF;
        Handle *h;
        uint64_t reader;
        int r, received;

        if (error < 0)
                return pending_request_fail(p, error);

        r = sd_bus_message_read(reply, "ht", &received, &reader);
        if (r <= 0)
                return pending_request_fail(p, EIO);
        fd = fcntl(received, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return pending_request_fail(p, errno);
        /* The daemon handed this end over to us alone. */
        r = fcntl(fd, F_GETFL);
        if (r < 0 || fcntl(fd, F_SETFL, r | O_NONBLOCK) < 0)
                return pending_request_fail(p, errno);

        h = handle_new(p->fs, FILE_KIND_SERIAL_LOG, p->dut);
        if (!h)
                return pending_request_fail(p, ENOMEM);
        h->fd = TAKE_FD(fd);
        h->reader = reader;

        p->fi.direct_io = 1;
        p->fi.nonseekable = 1;
        p->fi.keep_cache = 0;
        handle_reply_open(h, TAKE_PTR(p->req), &p->fi);
}

void serial_log_file_open(Filesystem *fs, fuse_req_t req, const Dut *d, struct fuse_file_info *fi) {
        PendingRequest *p;

        if ((fi->flags & O_ACCMODE) != O_RDONLY)
                return (void) fuse_reply_err(req, EACCES);

        p = pending_request_new_open(fs, req, d->name, fi);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        pending_request_call(p, "OpenSerialLog", 0, on_open_reply, "s", d->name);
}

/* Replies with what the log socket holds. Returns -EAGAIN without replying when it is empty. */
static int serial_log_reply_available(Filesystem *fs, fuse_req_t req, Handle *h, size_t size) {
        char *buf;
        ssize_t n;

        buf = fs_io_buffer(fs, size);
        if (!buf)
                return fuse_reply_err(req, ENOMEM), 0;

        n = recv(h->fd, buf, size, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return -EAGAIN;
                return fuse_reply_err(req, errno), 0;
        }
        (void) fuse_reply_buf(req, buf, (size_t) n);
        return 0;
}

static void on_sync_reply(sd_bus_message *reply, int error, void *userdata) {
        PendingRequest *p = userdata;
        Handle *h = p->handle;

        if (error < 0)
                return pending_request_fail(p, error);
        if (h->dead || h->fd < 0)
                return pending_request_fail(p, EIO);

        /* The daemon has pushed everything printed so far: an empty socket now means the end. */
        if (serial_log_reply_available(p->fs, p->req, h, p->size) == -EAGAIN)
                (void) fuse_reply_buf(p->req, NULL, 0);
        p->req = NULL;
}

void serial_log_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size) {
        PendingRequest *p;

        if (h->dead || h->fd < 0)
                return (void) fuse_reply_err(req, EIO);

        if (serial_log_reply_available(fs, req, h, size) != -EAGAIN)
                return;

        /* Empty socket: either this reader is at the end, or the daemon has output that it has not
         * pushed yet. Ask it to push and answer from the socket then, so that cat and grep see
         * everything printed before they read and end at the end (tail -f polls for more). */
        p = pending_request_new(fs, req, h);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        p->size = size;
        pending_request_call(p, "SerialLogSync", 0, on_sync_reply, "st", h->dut, h->reader);
}

static void serial_log_notify_poll(Handle *h) {
        if (!h->poll_handle)
                return;
        (void) fuse_lowlevel_notify_poll(h->poll_handle);
        fuse_pollhandle_destroy(h->poll_handle);
        h->poll_handle = NULL;
}

static int on_log_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Handle *h = userdata;

        /* One shot: the next poll() re-arms it. */
        serial_log_notify_poll(h);
        return 0;
}

void serial_log_file_poll(Filesystem *fs, fuse_req_t req, Handle *h, struct fuse_pollhandle *ph) {
        struct pollfd pfd;
        unsigned revents = 0;
        int r;

        if (h->dead || h->fd < 0) {
                if (ph)
                        fuse_pollhandle_destroy(ph);
                return (void) fuse_reply_poll(req, POLLERR);
        }

        pfd = (struct pollfd) { .fd = h->fd, .events = POLLIN };
        if (poll(&pfd, 1, 0) > 0)
                revents = pfd.revents & (POLLIN | POLLHUP | POLLERR);

        if (ph && revents == 0) {
                /* Keep the newest handle, wake it when data arrives. */
                if (h->poll_handle)
                        fuse_pollhandle_destroy(h->poll_handle);
                h->poll_handle = TAKE_PTR(ph);

                if (!h->io_source) {
                        r = sd_event_add_io(fs->event, &h->io_source, h->fd, EPOLLIN, on_log_readable, h);
                        if (r < 0) {
                                log_warning_errno(r, "Failed to watch the serial log of %s: %m", h->dut);
                                serial_log_notify_poll(h);
                        }
                }
                if (h->io_source)
                        (void) sd_event_source_set_enabled(h->io_source, SD_EVENT_ONESHOT);
        }
        if (ph)
                fuse_pollhandle_destroy(ph);
        (void) fuse_reply_poll(req, revents);
}

void serial_log_handle_kill(Handle *h) {
        h->io_source = sd_event_source_disable_unref(h->io_source);
        /* Wake pollers: their next read fails with EIO. */
        serial_log_notify_poll(h);
}

static void on_stat_reply(sd_bus_message *reply, int error, void *userdata) {
        PendingRequest *p = userdata;
        uint64_t bytes, modified;
        FileKind kind;
        struct stat st;
        Dut *d;
        int r;

        if (error < 0)
                return pending_request_fail(p, error);
        r = sd_bus_message_read(reply, "tt", &bytes, &modified);
        if (r <= 0)
                return pending_request_fail(p, EIO);

        /* The DUT list may have been reloaded meanwhile. */
        r = fs_resolve(p->fs, p->ino, &d, &kind);
        if (r < 0)
                return pending_request_fail(p, r);

        fs_fill_attr(p->fs, p->ino, kind, d, &st);
        st.st_size = (off_t) MIN(bytes, (uint64_t) INT64_MAX);
        if (modified > 0) {
                st.st_mtim.tv_sec = (time_t) (modified / USEC_PER_SEC);
                st.st_mtim.tv_nsec = (long) (modified % USEC_PER_SEC * NSEC_PER_USEC);
                st.st_ctim = st.st_mtim;
        }

        /* No attribute caching: tail -f watches size and mtime grow. */
        if (p->lookup) {
                struct fuse_entry_param e;

                fs_fill_entry(p->fs, p->ino, kind, d, &e);
                e.attr = st;
                e.attr_timeout = 0;
                (void) fuse_reply_entry(p->req, &e);
        } else
                (void) fuse_reply_attr(p->req, &st, 0);
        p->req = NULL;
}

void serial_log_file_stat(Filesystem *fs, fuse_req_t req, fuse_ino_t ino, const Dut *d, bool lookup) {
        PendingRequest *p;

        p = pending_request_new(fs, req, NULL);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        p->ino = ino;
        p->lookup = lookup;
        pending_request_call(p, "SerialLogStat", 0, on_stat_reply, "s", d->name);
}
