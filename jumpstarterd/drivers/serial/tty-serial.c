/* Serial console on a terminal device: termios, reopened with backoff when it vanishes */
#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "daemon-util.h"
#include "log.h"
#include "macro.h"
#include "tty-serial.h"
#include "write-queue.h"

#define RETRY_MIN_USEC (500 * USEC_PER_MSEC)
#define RETRY_MAX_USEC (5 * USEC_PER_SEC)

struct Tty {
        DriverContext ctx;
        const DriverConfig *config;
        TtyResolveFunc resolve;
        bool exclusive;
        char *label;
        SerialLine line;
        uint64_t log_size;

        int fd;
        char *path; /* of the open device */
        sd_event_source *io_source;
        bool want_write;
        WriteQueue out;

        sd_event_source *retry_timer;
        uint64_t retry_usec;
        bool gone; /* an outage was logged */
};

static const char *tty_name(const Tty *t) {
        return t->path ?: t->label;
}

static int tty_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int tty_on_retry(sd_event_source *s, uint64_t usec, void *userdata);

static void tty_close(Tty *t) {
        t->io_source = sd_event_source_disable_unref(t->io_source);
        t->fd = safe_close(t->fd);
        t->want_write = false;
        write_queue_clear(&t->out);
}

static int tty_apply_line(Tty *t) {
        struct termios tio;

        if (tcgetattr(t->fd, &tio) < 0)
                return -errno;
        serial_line_to_termios(&t->line, &tio);
        if (tcsetattr(t->fd, TCSANOW, &tio) < 0)
                return -errno;
        return 0;
}

/* Opens and configures the device. Logs nothing: the caller knows whether a failure is fatal. */
static int tty_open(Tty *t, const char **ret_what) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        *ret_what = "find";
        if (t->resolve) {
                r = t->resolve(t->config, &path);
                if (r < 0)
                        return r;
        } else {
                path = strdup(driver_config_get_string(t->config, "path"));
                if (!path)
                        return -ENOMEM;
        }
        free(t->path);
        t->path = TAKE_PTR(path);

        *ret_what = "open";
        fd = open(t->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (!isatty(fd))
                return -ENOTTY;

        /* Another program on the same port would steal bytes from the console: refuse, as
         * picocom, tio and minicom do (they flock() it too). */
        *ret_what = "lock";
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (t->exclusive && ioctl(fd, TIOCEXCL) < 0)
                return -errno;

        t->fd = TAKE_FD(fd);
        *ret_what = "configure";
        r = tty_apply_line(t);
        if (r < 0) {
                t->fd = safe_close(t->fd);
                return r;
        }

        *ret_what = "watch";
        r = sd_event_add_io(t->ctx.event, &t->io_source, t->fd, EPOLLIN, tty_on_io, t);
        if (r < 0) {
                t->fd = safe_close(t->fd);
                return r;
        }
        (void) sd_event_source_set_description(t->io_source, "tty-serial");
        return 0;
}

static void tty_schedule_retry(Tty *t) {
        int r;

        t->retry_usec = t->retry_usec == 0 ? RETRY_MIN_USEC : MIN(t->retry_usec * 2, RETRY_MAX_USEC);
        if (!t->retry_timer) {
                r = sd_event_add_time_relative(t->ctx.event, &t->retry_timer, CLOCK_MONOTONIC, t->retry_usec, 0,
                                               tty_on_retry, t);
                if (r < 0) {
                        log_dut_prefix(LOG_ERR, r, t->ctx.dut_name, "Failed to schedule reopening %s: %m",
                                       tty_name(t));
                        return;
                }
                (void) sd_event_source_set_description(t->retry_timer, "tty-serial-retry");
                return;
        }
        (void) sd_event_source_set_time_relative(t->retry_timer, t->retry_usec);
        (void) sd_event_source_set_enabled(t->retry_timer, SD_EVENT_ONESHOT);
}

/* The device went away (unplugged, its pty's other side closed): the console waits for it. */
static void tty_lost(Tty *t, int error) {
        if (!t->gone)
                log_dut_prefix(LOG_WARNING, error, t->ctx.dut_name,
                               "Serial port %s is gone (%m), reopening it when it is back", tty_name(t));
        t->gone = true;
        tty_close(t);
        t->retry_usec = 0;
        tty_schedule_retry(t);
}

static int tty_on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Tty *t = userdata;
        const char *what;
        int r;

        r = tty_open(t, &what);
        if (r < 0) {
                log_dut_prefix(LOG_DEBUG, r, t->ctx.dut_name, "Failed to %s serial port %s, retrying: %m", what,
                               tty_name(t));
                tty_schedule_retry(t);
                return 0;
        }
        log_dut_prefix(LOG_INFO, 0, t->ctx.dut_name, "Serial port %s is back", t->path);
        t->gone = false;
        t->retry_usec = 0;
        return 0;
}

static int tty_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Tty *t = userdata;

        if (revents & EPOLLIN) {
                uint8_t buf[4096];
                ssize_t n = read(fd, buf, sizeof buf);

                if (n > 0) {
                        if (t->ctx.serial_output)
                                t->ctx.serial_output(t->ctx.userdata, buf, (size_t) n);
                        /* Read what is left on the next iteration: other sources get a turn. */
                        return 0;
                }
                if (n == 0) {
                        tty_lost(t, EPIPE);
                        return 0;
                }
                if (errno != EAGAIN && errno != EINTR) {
                        tty_lost(t, errno);
                        return 0;
                }
        }
        if (revents & (EPOLLHUP | EPOLLERR)) {
                tty_lost(t, EPIPE);
                return 0;
        }
        if ((revents & EPOLLOUT) && t->want_write) {
                int r = write_queue_flush(&t->out, t->fd);

                if (r < 0) {
                        tty_lost(t, -r);
                        return 0;
                }
                if (r == 0 && sd_event_source_set_io_events(t->io_source, EPOLLIN) >= 0)
                        t->want_write = false;
        }
        return 0;
}

static void tty_input(void *instance, const void *data, size_t n) {
        Tty *t = instance;
        int r;

        if (t->fd < 0) {
                log_dut_prefix(LOG_DEBUG, 0, t->ctx.dut_name, "Serial port %s is gone, dropping %zu typed bytes",
                               tty_name(t), n);
                return;
        }
        r = write_queue_write(&t->out, t->fd, data, n);
        if (r < 0) {
                tty_lost(t, -r);
                return;
        }
        if (r > 0 && !t->want_write && sd_event_source_set_io_events(t->io_source, EPOLLIN | EPOLLOUT) >= 0)
                t->want_write = true;
}

static uint64_t tty_log_size(void *instance) {
        Tty *t = instance;
        return t->log_size;
}

static void tty_get_line(void *instance, struct termios *ret) {
        Tty *t = instance;
        serial_line_to_termios(&t->line, ret);
}

static int tty_set_line(void *instance, const struct termios *tio) {
        Tty *t = instance;
        char buf[64];
        int r;

        if (!serial_line_update_from_termios(&t->line, tio))
                return 0;
        serial_line_format(&t->line, buf, sizeof buf);
        if (t->fd < 0) {
                log_dut_prefix(LOG_INFO, 0, t->ctx.dut_name, "Serial port %s: line settings %s, from when it is back",
                               tty_name(t), buf);
                return 0;
        }
        r = tty_apply_line(t);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, t->ctx.dut_name, "Failed to set %s to %s: %m", tty_name(t), buf);
        log_dut_prefix(LOG_INFO, 0, t->ctx.dut_name, "Serial port %s: line settings %s", tty_name(t), buf);
        return 0;
}

const SerialDriverOps tty_serial_ops = {
        .input = tty_input,
        .log_size = tty_log_size,
        .get_line = tty_get_line,
        .set_line = tty_set_line,
};

void *tty_free(void *instance) {
        Tty *t = instance;

        if (!t)
                return NULL;
        tty_close(t);
        sd_event_source_disable_unref(t->retry_timer);
        write_queue_done(&t->out);
        free(t->path);
        free(t->label);
        free(t);
        return NULL;
}

static void tty_freep(Tty **t) {
        tty_free(*t);
}

int tty_new_full(const DriverConfig *config, const DriverContext *ctx, const SerialLine *line,
                 TtyResolveFunc resolve, bool exclusive, const char *label, Tty **ret) {
        _cleanup_(tty_freep) Tty *t = NULL;
        const char *what;
        int r;

        t = malloc(sizeof *t);
        if (!t)
                return log_oom();
        *t = (Tty) {
                .ctx = *ctx,
                .config = config,
                .resolve = resolve,
                .exclusive = exclusive,
                .line = *line,
                .log_size = driver_config_get_u64(config, "log_size", 0),
                .fd = -EBADF,
        };
        t->label = strdup(label);
        if (!t->label)
                return log_oom();

        r = tty_open(t, &what);
        switch (r) {
        case 0:
                log_dut_prefix(LOG_INFO, 0, ctx->dut_name, "Serial port %s open", t->path);
                break;
        case -ENOENT:
        case -ENODEV:
        case -ENXIO:
        case -EIO:
                /* Not plugged in yet: the DUT still starts, and its console appears with the port. */
                log_dut_prefix(LOG_WARNING, r, ctx->dut_name, "Failed to %s serial port %s (%m), retrying until it is there",
                               what, tty_name(t));
                t->gone = true;
                tty_schedule_retry(t);
                break;
        case -EBUSY:
                return log_dut_prefix(LOG_ERR, r, ctx->dut_name,
                                      "Serial port %s is in use by another program (it holds a lock on it)",
                                      tty_name(t));
        case -ENOTUNIQ:
                return log_dut_prefix(LOG_ERR, r, ctx->dut_name,
                                      "Several serial ports match %s; pick one with usb_serial or path", tty_name(t));
        case -ENOTTY:
                return log_dut_prefix(LOG_ERR, r, ctx->dut_name, "%s is not a terminal device", tty_name(t));
        default:
                return log_dut_prefix(LOG_ERR, r, ctx->dut_name, "Failed to %s serial port %s: %m", what,
                                      tty_name(t));
        }

        *ret = TAKE_PTR(t);
        return 0;
}

static int tty_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        SerialLine line;
        Tty *t;
        int r;

        r = serial_line_from_config(config, ctx->dut_name, &line);
        if (r < 0)
                return r;
        r = tty_new_full(config, ctx, &line, NULL, false, driver_config_get_string(config, "path"), &t);
        if (r < 0)
                return r;
        *ret = t;
        return 0;
}

const Driver driver_tty = {
        .name = "tty",
        .new = tty_new,
        .free = tty_free,
        .serial = &tty_serial_ops,
};
