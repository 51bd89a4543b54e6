/* GPIO line files: gpio/<line> reads "0" or "1", takes "0" or "1" */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "fs.h"
#include "log.h"
#include "macro.h"

#define GPIO_PAYLOAD_MAX 16

bool gpio_inode_is(fuse_ino_t ino) {
        return ino >= INODE_GPIO_BASE;
}

int gpio_value_from_payload(const char *buf, size_t size) {
        if (!buf)
                return -EINVAL;
        if (size > 0 && buf[size - 1] == '\n')
                size--;
        if (size != 1 || (buf[0] != '0' && buf[0] != '1'))
                return -EINVAL;
        return buf[0] - '0';
}

/* The inode of d's line; numbers are handed out on first use and kept for the mount's life. */
static int gpio_inode(Filesystem *fs, const char *dut, const char *line, fuse_ino_t *ret) {
        _cleanup_free_ char *key = NULL;
        size_t slot;
        int r;

        if (asprintf(&key, "%s/%s", dut, line) < 0)
                return -ENOMEM;
        r = inode_table_slot(&fs->gpio_inodes, key, true, &slot);
        if (r < 0)
                return r;
        *ret = INODE_GPIO_BASE + slot;
        return 0;
}

/* The DUT and line of a line inode: -EIO while not serving, -ENOENT for a line that is gone. */
static int gpio_resolve(Filesystem *fs, fuse_ino_t ino, Dut **ret_dut, const char **ret_line) {
        const char *key, *slash;
        _cleanup_free_ char *dut = NULL;
        Dut *d;

        if (!fs->serving)
                return -EIO;
        key = inode_table_name(&fs->gpio_inodes, (size_t) (ino - INODE_GPIO_BASE));
        if (!key)
                return -ENOENT;
        slash = strchr(key, '/');
        if (!slash)
                return -ENOENT;
        dut = strndup(key, (size_t) (slash - key));
        if (!dut)
                return -ENOMEM;
        d = dut_list_find(&fs->duts, dut);
        if (!d || !dut_has_gpio_line(d, slash + 1))
                return -ENOENT;
        *ret_dut = d;
        *ret_line = slash + 1;
        return 0;
}

static void gpio_fill_attr(Filesystem *fs, fuse_ino_t ino, const Dut *d, struct stat *st) {
        fs_fill_node_attr(fs, ino, S_IFREG | 0644, st);
        fs_apply_owner(fs, d, st);
}

void gpio_dir_lookup(Filesystem *fs, fuse_req_t req, const Dut *d, const char *name) {
        struct fuse_entry_param e = {
                .generation = 1,
                .entry_timeout = ENTRY_TIMEOUT,
                .attr_timeout = ATTR_TIMEOUT,
        };
        fuse_ino_t ino;
        int r;

        if (!gpio_line_name_is_valid(name) || !dut_has_gpio_line(d, name))
                return (void) fuse_reply_err(req, ENOENT);
        r = gpio_inode(fs, d->name, name, &ino);
        if (r < 0)
                return (void) fuse_reply_err(req, -r);
        e.ino = ino;
        gpio_fill_attr(fs, ino, d, &e.attr);
        (void) fuse_reply_entry(req, &e);
}

void gpio_dir_list(Filesystem *fs, const Dut *d,
                   void (*add)(void *b, off_t pos, const char *name, fuse_ino_t ino, mode_t mode), void *b) {
        for (size_t i = 0; d->gpio_lines && d->gpio_lines[i]; i++) {
                fuse_ino_t ino;

                if (gpio_inode(fs, d->name, d->gpio_lines[i], &ino) < 0)
                        return;
                add(b, 2 + (off_t) i, d->gpio_lines[i], ino, S_IFREG);
        }
}

void gpio_file_getattr(Filesystem *fs, fuse_req_t req, fuse_ino_t ino, int to_set) {
        const char *line;
        struct stat st;
        Dut *d;
        int r;

        r = gpio_resolve(fs, ino, &d, &line);
        if (r < 0)
                return (void) fuse_reply_err(req, -r);
        /* Ownership and modes are the view's; a truncation (the shell's O_TRUNC) changes nothing. */
        if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
                return (void) fuse_reply_err(req, EPERM);
        gpio_fill_attr(fs, ino, d, &st);
        (void) fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

void gpio_file_open(Filesystem *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        const char *line;
        Handle *h;
        Dut *d;
        int r;

        r = gpio_resolve(fs, ino, &d, &line);
        if (r < 0)
                return (void) fuse_reply_err(req, -r);
        h = handle_new(fs, FILE_KIND_GPIO, d->name);
        if (!h)
                return (void) fuse_reply_err(req, ENOMEM);
        h->gpio_line = strdup(line);
        if (!h->gpio_line) {
                handle_release(h);
                return (void) fuse_reply_err(req, ENOMEM);
        }
        fi->direct_io = 1;
        handle_reply_open(h, req, fi);
}

static int gpio_format(sd_bus_message *reply, char **ret_text) {
        int value;

        if (sd_bus_message_read(reply, "b", &value) <= 0)
                return -EIO;
        *ret_text = strdup(value ? "1\n" : "0\n");
        return *ret_text ? 0 : -ENOMEM;
}

static const AgentTextFile gpio_text_file = {
        .method = "GetGpio",
        .format = gpio_format,
};

void gpio_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off) {
        agent_text_file_read(fs, req, h, size, off, &gpio_text_file, "ss", h->dut, h->gpio_line);
}

static void on_set_gpio_reply(sd_bus_message *reply, int error, void *userdata) {
        PendingRequest *p = userdata;

        if (error < 0) {
                log_dut(LOG_DEBUG, error, p->handle->dut, "SetGpio %s failed: %m", p->handle->gpio_line);
                return pending_request_fail(p, error);
        }
        (void) fuse_reply_write(p->req, p->size);
        p->req = NULL;
}

void gpio_file_write(Filesystem *fs, fuse_req_t req, Handle *h, struct fuse_bufvec *bufv) {
        char buf[GPIO_PAYLOAD_MAX];
        size_t size = fuse_buf_size(bufv), n;
        PendingRequest *p;
        int value, r;

        r = fs_copy_word(h, bufv, buf, sizeof buf, &n);
        if (r < 0)
                return (void) fuse_reply_err(req, -r);

        /* Checked here, before the daemon sees anything: a bad value changes nothing. */
        value = gpio_value_from_payload(buf, n);
        if (value < 0)
                return (void) fuse_reply_err(req, EINVAL);

        p = pending_request_new(fs, req, h);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        p->size = size;
        pending_request_call(p, "SetGpio", 0, on_set_gpio_reply, "ssb", h->dut, h->gpio_line, value);
}
