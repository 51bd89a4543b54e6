/* Console of a DUT: a pty for terminal programs, a ring for serial.log and its readers */
#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <termios.h>

#include "daemon-util.h"
#include "log.h"
#include "macro.h"
#include "ring.h"
#include "serial-port.h"

typedef struct LogReader LogReader;

struct LogReader {
        SerialPort *port;
        int fd;
        sd_event_source *source;
        uint64_t id;       /* names the reader in SerialLogSync */
        uint64_t pos;      /* absolute offset of the next byte to send */
        bool want_write;   /* EPOLLOUT is enabled */
        LogReader *prev, *next;
};

struct SerialPort {
        sd_event *event;
        char *dut;
        int master_fd;
        /* Held open for the DUT's lifetime: without a slave open the master reports hangups, and
         * the raw termios would be reset for the next program that opens the terminal. */
        int slave_fd;
        char *slave_path;
        sd_event_source *master_source;
        SerialInputFunc input;
        void *input_userdata;
        /* Line settings: a pty tells nobody about a tcsetattr on its slave, so the port looks at
         * the slave's termios while someone else has the terminal open (inotify counts opens). */
        SerialLineFunc line;
        void *line_userdata;
        struct termios line_termios;
        int inotify_fd;
        sd_event_source *inotify_source, *line_timer;
        int n_terminal_opens;
        Ring ring;
        uint64_t modified_usec;
        uint64_t n_dropped;
        uint64_t last_reader_id;
        LogReader *readers;
};

static LogReader *log_reader_free(LogReader *r) {
        if (!r)
                return NULL;
        if (r->port) {
                if (r->prev)
                        r->prev->next = r->next;
                else
                        r->port->readers = r->next;
                if (r->next)
                        r->next->prev = r->prev;
        }
        sd_event_source_disable_unref(r->source);
        safe_close(r->fd);
        free(r);
        return NULL;
}

static void log_reader_wake(LogReader *r) {
        if (r->want_write || r->pos >= r->port->ring.end)
                return;
        if (sd_event_source_set_io_events(r->source, EPOLLOUT) >= 0)
                r->want_write = true;
}

/* Sends what the reader has not had yet until its socket is full or it has caught up. Returns
 * -EPIPE (and frees the reader) when the reader went away. */
static int log_reader_push(LogReader *r) {
        const Ring *ring = &r->port->ring;

        /* Bounded: the socket buffer fills or the reader catches up with the ring. A reader that
         * fell more than the ring behind jumps to its start in ring_peek(). */
        for (;;) {
                const void *chunk;
                size_t n = ring_peek(ring, &r->pos, &chunk);
                ssize_t k;

                if (n == 0) {
                        if (r->want_write && sd_event_source_set_io_events(r->source, 0) >= 0)
                                r->want_write = false;
                        return 0;
                }
                k = send(r->fd, chunk, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        /* EPIPE, ECONNRESET: the reader went away. */
                        log_debug_errno(errno, "serial.log reader of %s gone: %m", r->port->dut);
                        log_reader_free(r);
                        return -EPIPE;
                }
                r->pos += (uint64_t) k;
        }
}

static int log_reader_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        LogReader *r = userdata;

        if (revents & (EPOLLHUP | EPOLLERR)) {
                log_reader_free(r);
                return 0;
        }
        (void) log_reader_push(r);
        return 0;
}

int serial_port_sync_log(SerialPort *p, uint64_t id) {
        assert(p);

        for (LogReader *r = p->readers; r; r = r->next)
                if (r->id == id) {
                        if (log_reader_push(r) < 0)
                                return -ENOENT;
                        log_reader_wake(r);
                        return 0;
                }
        return -ENOENT;
}

int serial_port_open_log(SerialPort *p, int *ret_fd, uint64_t *ret_id) {
        _cleanup_free_ LogReader *reader = NULL;
        LogReader *rd;
        _cleanup_close_ int ours = -EBADF, theirs = -EBADF;
        int fds[2], r;

        assert(p);
        assert(ret_fd);

        reader = malloc(sizeof *reader);
        if (!reader)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
                return negative_errno();
        ours = fds[0];
        theirs = fds[1];

        *reader = (LogReader) { .fd = -EBADF, .id = ++p->last_reader_id, .pos = ring_start(&p->ring) };
        /* No EPOLLOUT until there is something to send; hangups are reported regardless. */
        r = sd_event_add_io(p->event, &reader->source, ours, 0, log_reader_on_io, reader);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(reader->source, "serial-log-reader");
        reader->fd = TAKE_FD(ours);

        reader->port = p;
        reader->next = p->readers;
        if (p->readers)
                p->readers->prev = reader;
        p->readers = reader;

        /* What the ring holds is in the socket before the caller gets it, as far as it fits. */
        *ret_id = reader->id;
        rd = TAKE_PTR(reader); /* owned by the port's list now */
        r = log_reader_push(rd);
        if (r < 0)
                return r;
        log_reader_wake(rd);
        *ret_fd = TAKE_FD(theirs);
        return 0;
}

static void pty_write(SerialPort *p, const uint8_t *data, size_t n) {
        bool flushed = false;

        while (n > 0) {
                ssize_t k = write(p->master_fd, data, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN && !flushed) {
                                /* Nobody reads the terminal and its input queue is full. Like a
                                 * UART with no listener, the oldest unread output is lost rather
                                 * than the event loop waiting for a reader that may never come. */
                                (void) tcflush(p->slave_fd, TCIFLUSH);
                                flushed = true;
                                continue;
                        }
                        if (errno != EAGAIN)
                                log_debug_errno(errno, "Failed to write to the terminal of %s: %m", p->dut);
                        p->n_dropped += n;
                        return;
                }
                data += k;
                n -= (size_t) k;
        }
}

void serial_port_write(SerialPort *p, const void *data, size_t n) {
        assert(p);

        if (n == 0)
                return;

        ring_append(&p->ring, data, n);
        p->modified_usec = now_usec(CLOCK_REALTIME);
        pty_write(p, data, n);

        for (LogReader *r = p->readers; r; r = r->next)
                log_reader_wake(r);
}

void serial_port_discard_pending(SerialPort *p) {
        assert(p);
        (void) tcflush(p->slave_fd, TCIFLUSH);
}

#define LINE_CHECK_USEC (200 * USEC_PER_MSEC)
#define LINE_CFLAGS (CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS)
#define LINE_IFLAGS (IXON | IXOFF)

static bool line_differs(const struct termios *a, const struct termios *b) {
        return cfgetospeed(a) != cfgetospeed(b) || cfgetispeed(a) != cfgetispeed(b) ||
                (a->c_cflag & LINE_CFLAGS) != (b->c_cflag & LINE_CFLAGS) ||
                (a->c_iflag & LINE_IFLAGS) != (b->c_iflag & LINE_IFLAGS);
}

static void serial_port_check_line(SerialPort *p) {
        struct termios t;

        if (!p->line || tcgetattr(p->slave_fd, &t) < 0 || !line_differs(&t, &p->line_termios))
                return;
        p->line_termios = t;
        p->line(&t, p->line_userdata);
}

static int serial_port_on_line_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        SerialPort *p = userdata;

        serial_port_check_line(p);
        return sd_event_source_set_time_relative(s, LINE_CHECK_USEC);
}

static int serial_port_on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        SerialPort *p = userdata;
        _Alignas(struct inotify_event) uint8_t buf[4096];
        ssize_t n;

        n = read(fd, buf, sizeof buf);
        if (n < 0)
                return 0;
        for (uint8_t *e = buf; e < buf + n; e += sizeof(struct inotify_event) + ((struct inotify_event *) e)->len) {
                const struct inotify_event *ev = (const struct inotify_event *) e;

                if (ev->mask & IN_OPEN)
                        p->n_terminal_opens++;
                if (ev->mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE))
                        p->n_terminal_opens = MAX(p->n_terminal_opens - 1, 0);
                /* Lost count: look from now on. */
                if (ev->mask & IN_Q_OVERFLOW)
                        p->n_terminal_opens = INT_MAX / 2;
        }
        /* A program may set the speed and exit at once (stty): look at each close too. */
        serial_port_check_line(p);
        (void) sd_event_source_set_enabled(p->line_timer, p->n_terminal_opens > 0 ? SD_EVENT_ON : SD_EVENT_OFF);
        return 0;
}

int serial_port_watch_line(SerialPort *p, const struct termios *initial, SerialLineFunc line, void *userdata) {
        struct termios t;
        bool always = false;
        int r;

        assert(p);
        assert(line);

        if (tcgetattr(p->slave_fd, &t) < 0)
                return log_error_errno(errno, "Failed to get the terminal attributes of %s: %m", p->slave_path);
        if (initial) {
                t.c_cflag = (t.c_cflag & ~(tcflag_t) LINE_CFLAGS) | (initial->c_cflag & LINE_CFLAGS);
                t.c_iflag = (t.c_iflag & ~(tcflag_t) LINE_IFLAGS) | (initial->c_iflag & LINE_IFLAGS);
                (void) cfsetispeed(&t, cfgetispeed(initial));
                (void) cfsetospeed(&t, cfgetospeed(initial));
                if (tcsetattr(p->slave_fd, TCSANOW, &t) < 0 || tcgetattr(p->slave_fd, &t) < 0)
                        return log_error_errno(errno, "Failed to set the terminal attributes of %s: %m",
                                               p->slave_path);
        }
        p->line_termios = t;
        p->line = line;
        p->line_userdata = userdata;

        r = sd_event_add_time_relative(p->event, &p->line_timer, CLOCK_MONOTONIC, LINE_CHECK_USEC, 0,
                                       serial_port_on_line_timer, p);
        if (r < 0)
                return log_error_errno(r, "Failed to add the line timer of %s: %m", p->dut);
        (void) sd_event_source_set_description(p->line_timer, "serial-port-line");

        p->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (p->inotify_fd < 0 || inotify_add_watch(p->inotify_fd, p->slave_path, IN_OPEN | IN_CLOSE) < 0) {
                log_debug_errno(errno, "Cannot watch opens of %s, checking its line settings all the time: %m",
                                p->slave_path);
                always = true;
        } else {
                r = sd_event_add_io(p->event, &p->inotify_source, p->inotify_fd, EPOLLIN, serial_port_on_inotify, p);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch opens of %s: %m", p->slave_path);
                (void) sd_event_source_set_description(p->inotify_source, "serial-port-opens");
        }
        return sd_event_source_set_enabled(p->line_timer, always ? SD_EVENT_ON : SD_EVENT_OFF);
}

static int serial_port_on_master(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        SerialPort *p = userdata;
        uint8_t buf[4096];
        ssize_t n;

        /* A program that sets the speed and then types: the port has the new speed first. */
        serial_port_check_line(p);

        n = read(fd, buf, sizeof buf);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                /* Cannot happen while we hold the slave open; do not spin on it if it does. */
                log_warning_errno(errno, "Failed to read the terminal of %s, ignoring keystrokes from now on: %m",
                                  p->dut);
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        if (n > 0 && p->input)
                p->input(buf, (size_t) n, p->input_userdata);
        return 0;
}

static int pty_open(SerialPort *p) {
        _cleanup_close_ int master = -EBADF, slave = -EBADF;
        char path[64];
        struct termios t;

        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (master < 0)
                return log_error_errno(errno, "Failed to allocate a pty for %s: %m", p->dut);
        if (grantpt(master) < 0)
                return log_error_errno(errno, "Failed to grant the pty of %s: %m", p->dut);
        if (unlockpt(master) < 0)
                return log_error_errno(errno, "Failed to unlock the pty of %s: %m", p->dut);
        errno = ptsname_r(master, path, sizeof path);
        if (errno != 0)
                return log_error_errno(errno, "Failed to get the pty name of %s: %m", p->dut);

        slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (slave < 0)
                return log_error_errno(errno, "Failed to open %s: %m", path);

        /* Raw, and above all no ECHO: the line discipline would hand our own output back to us
         * as keystrokes. */
        if (tcgetattr(slave, &t) < 0)
                return log_error_errno(errno, "Failed to get the terminal attributes of %s: %m", path);
        cfmakeraw(&t);
        t.c_lflag &= ~(ECHO | ECHONL);
        if (tcsetattr(slave, TCSANOW, &t) < 0)
                return log_error_errno(errno, "Failed to set the terminal attributes of %s: %m", path);

        p->slave_path = strdup(path);
        if (!p->slave_path)
                return log_oom();
        p->master_fd = TAKE_FD(master);
        p->slave_fd = TAKE_FD(slave);
        return 0;
}

int serial_port_new(sd_event *event, const char *dut, size_t log_size, SerialPort **ret) {
        _cleanup_(serial_port_freep) SerialPort *p = NULL;
        int r;

        assert(event);
        assert(dut);
        assert(ret);

        p = malloc(sizeof *p);
        if (!p)
                return log_oom();
        *p = (SerialPort) {
                .event = sd_event_ref(event),
                .master_fd = -EBADF,
                .slave_fd = -EBADF,
                .inotify_fd = -EBADF,
        };
        p->dut = strdup(dut);
        if (!p->dut)
                return log_oom();

        r = ring_init(&p->ring, log_size);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the serial.log ring of %s (%zu bytes): %m", dut,
                                       log_size);

        r = pty_open(p);
        if (r < 0)
                return r;

        r = sd_event_add_io(event, &p->master_source, p->master_fd, EPOLLIN, serial_port_on_master, p);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the terminal of %s: %m", dut);
        (void) sd_event_source_set_description(p->master_source, "serial-port-master");

        *ret = TAKE_PTR(p);
        return 0;
}

SerialPort *serial_port_free(SerialPort *p) {
        if (!p)
                return NULL;

        while (p->readers)
                log_reader_free(p->readers);
        sd_event_source_disable_unref(p->master_source);
        sd_event_source_disable_unref(p->line_timer);
        sd_event_source_disable_unref(p->inotify_source);
        safe_close(p->inotify_fd);
        safe_close(p->master_fd);
        safe_close(p->slave_fd);
        ring_done(&p->ring);
        sd_event_unref(p->event);
        free(p->slave_path);
        free(p->dut);
        free(p);
        return NULL;
}

void serial_port_set_input(SerialPort *p, SerialInputFunc input, void *userdata) {
        assert(p);
        p->input = input;
        p->input_userdata = userdata;
}

const char *serial_port_get_path(const SerialPort *p) {
        return p->slave_path;
}

void serial_port_log_stat(const SerialPort *p, uint64_t *ret_bytes, uint64_t *ret_modified_usec) {
        *ret_bytes = p->ring.end;
        *ret_modified_usec = p->modified_usec;
}

void serial_port_close_logs(SerialPort *p) {
        while (p->readers)
                log_reader_free(p->readers);
}

size_t serial_port_n_readers(const SerialPort *p) {
        size_t n = 0;

        for (LogReader *r = p->readers; r; r = r->next)
                n++;
        return n;
}

uint64_t serial_port_n_dropped(const SerialPort *p) {
        return p->n_dropped;
}
