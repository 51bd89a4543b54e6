/* Tests of the serial port: the pty, the serial.log ring and its readers on a real event loop */
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include <termios.h>
#include <unistd.h>

#include "daemon-util.h"
#include "serial-port.h"
#include "tests.h"

/* Reader ids are not under test here. */
static uint64_t reader_id;

static uint8_t pattern(uint64_t offset) {
        return (uint8_t) (offset ^ (offset >> 8) ^ (offset >> 16) ^ (offset >> 24));
}

static void check_pattern(const uint8_t *buf, size_t n, uint64_t offset) {
        for (size_t i = 0; i < n; i++)
                if (buf[i] != pattern(offset + i))
                        ASSERT_FAIL("byte at stream offset %" PRIu64 " is %u, expected %u", offset + i, buf[i],
                                    pattern(offset + i));
}

typedef struct Input {
        char buf[64];
        size_t n;
} Input;

static void on_input(const void *data, size_t n, void *userdata) {
        Input *in = userdata;

        n = MIN(n, sizeof in->buf - 1 - in->n);
        memcpy(in->buf + in->n, data, n);
        in->n += n;
        in->buf[in->n] = '\0';
}

static ssize_t read_some(int fd, void *buf, size_t n, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        if (poll(&p, 1, timeout_ms) <= 0)
                return 0;
        return read(fd, buf, n);
}

TEST(pty) {
        sd_event *e;
        SerialPort *p;
        Input in = {};
        struct termios t;
        char buf[64];
        int fd;
        uint64_t deadline;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(serial_port_new(e, "dut1", 4096, &p));
        serial_port_set_input(p, on_input, &in);
        ASSERT_TRUE(strncmp(serial_port_get_path(p), "/dev/pts/", 9) == 0);

        /* Output written before anyone opened the terminal waits there, like a UART's FIFO... */
        serial_port_write(p, "old", 3);
        fd = open(serial_port_get_path(p), O_RDWR | O_NOCTTY | O_CLOEXEC);
        ASSERT_OK(fd);
        ASSERT_TRUE(isatty(fd));
        ASSERT_OK(tcgetattr(fd, &t));
        ASSERT_EQ(t.c_lflag & (ECHO | ICANON), 0);

        /* ...until the board powers on again. */
        serial_port_discard_pending(p);
        serial_port_write(p, "new\r\n", 5);
        ASSERT_EQ(read_some(fd, buf, sizeof buf, 1000), 5);
        ASSERT_TRUE(memcmp(buf, "new\r\n", 5) == 0);

        /* Keystrokes reach the input function, and are not echoed back. */
        ASSERT_EQ(write(fd, "ls\r", 3), 3);
        deadline = now_usec(CLOCK_MONOTONIC) + USEC_PER_SEC;
        while (in.n < 3 && now_usec(CLOCK_MONOTONIC) < deadline)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        ASSERT_STREQ(in.buf, "ls\r");
        ASSERT_EQ(read_some(fd, buf, sizeof buf, 50), 0);

        /* A terminal program that closes and reopens finds the same raw terminal. */
        close(fd);
        ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        fd = open(serial_port_get_path(p), O_RDWR | O_NOCTTY | O_CLOEXEC);
        ASSERT_OK(fd);
        ASSERT_OK(tcgetattr(fd, &t));
        ASSERT_EQ(t.c_lflag & ECHO, 0);
        close(fd);

        serial_port_free(p);
        sd_event_unref(e);
}

TEST(unread_terminal_never_blocks) {
        sd_event *e;
        SerialPort *p;
        static uint8_t chunk[64 * 1024];
        uint64_t start, bytes, modified;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(serial_port_new(e, "dut1", 64 * 1024, &p));

        /* 16MiB into a terminal nobody reads: old output goes, the writer never waits. */
        start = now_usec(CLOCK_MONOTONIC);
        for (unsigned i = 0; i < 256; i++)
                serial_port_write(p, chunk, sizeof chunk);
        ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) - start < 5 * USEC_PER_SEC);

        serial_port_log_stat(p, &bytes, &modified);
        ASSERT_EQ_U(bytes, 256 * sizeof chunk);
        ASSERT_TRUE(modified > 0);

        serial_port_free(p);
        sd_event_unref(e);
}

typedef struct Stream {
        SerialPort *port;
        sd_event_source *producer;
        uint64_t written, total;
        size_t chunk;

        /* The reader that keeps up. */
        int fast_fd;
        sd_event_source *fast_source;
        uint64_t fast_received;
} Stream;

static int on_produce(sd_event_source *s, void *userdata) {
        Stream *st = userdata;
        uint8_t buf[32 * 1024];
        size_t n = MIN((uint64_t) st->chunk, st->total - st->written);

        for (size_t i = 0; i < n; i++)
                buf[i] = pattern(st->written + i);
        serial_port_write(st->port, buf, n);
        st->written += n;
        if (st->written >= st->total)
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static int on_fast_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Stream *st = userdata;
        uint8_t buf[64 * 1024];
        ssize_t n;

        n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EAGAIN)
                return 0;
        ASSERT_TRUE(n > 0);
        check_pattern(buf, (size_t) n, st->fast_received);
        st->fast_received += (uint64_t) n;
        return 0;
}

TEST(log_readers) {
        const size_t ring_size = 256 * 1024;
        Stream st = { .total = 8 * 1024 * 1024, .chunk = 32 * 1024 };
        sd_event *e;
        int slow_fd, late_fd, fl;
        uint8_t *slow;
        size_t slow_n = 0, slow_cap = 16 * 1024 * 1024;
        uint64_t deadline, bytes, modified;
        ssize_t n;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(serial_port_new(e, "dut1", ring_size, &st.port));

        /* Readers that come before any output. */
        ASSERT_OK(serial_port_open_log(st.port, &slow_fd, &reader_id));
        ASSERT_OK(serial_port_open_log(st.port, &st.fast_fd, &reader_id));
        ASSERT_EQ(serial_port_n_readers(st.port), 2);
        fl = fcntl(slow_fd, F_GETFD);
        ASSERT_TRUE(fl & FD_CLOEXEC);

        ASSERT_OK(sd_event_add_io(e, &st.fast_source, st.fast_fd, EPOLLIN, on_fast_readable, &st));
        ASSERT_OK(sd_event_add_defer(e, &st.producer, on_produce, &st));
        /* Produce as the flood command does: when nothing else is pending. */
        ASSERT_OK(sd_event_source_set_priority(st.producer, SD_EVENT_PRIORITY_IDLE));
        ASSERT_OK(sd_event_source_set_enabled(st.producer, SD_EVENT_ON));

        deadline = now_usec(CLOCK_MONOTONIC) + 30 * USEC_PER_SEC;
        while (st.fast_received < st.total) {
                ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < deadline);
                ASSERT_OK(sd_event_run(e, 100 * USEC_PER_MSEC));
        }
        /* The reader that keeps up got every byte in order (checked on the way). */
        ASSERT_EQ_U(st.fast_received, st.total);
        ASSERT_EQ_U(st.written, st.total);

        serial_port_log_stat(st.port, &bytes, &modified);
        ASSERT_EQ_U(bytes, st.total);
        ASSERT_TRUE(modified > 0);

        /* The one that never read holds the start of the stream in its socket; once it reads, it
         * skips to the oldest byte the ring still has and gets the rest of the ring. */
        slow = malloc(slow_cap);
        ASSERT_TRUE(slow);
        for (;;) {
                n = read(slow_fd, slow + slow_n, slow_cap - slow_n);
                if (n < 0 && errno == EAGAIN) {
                        /* Let the daemon side refill; stop once nothing more comes. */
                        struct pollfd pfd = { .fd = slow_fd, .events = POLLIN };

                        ASSERT_OK(sd_event_run(e, 0));
                        ASSERT_OK(sd_event_run(e, 0));
                        if (poll(&pfd, 1, 0) == 0)
                                break;
                        continue;
                }
                ASSERT_TRUE(n > 0);
                slow_n += (size_t) n;
        }
        ASSERT_TRUE(slow_n < st.total);
        ASSERT_TRUE(slow_n > ring_size);
        check_pattern(slow, slow_n - ring_size, 0);
        check_pattern(slow + slow_n - ring_size, ring_size, st.total - ring_size);
        free(slow);

        /* A late reader starts at the oldest byte held. */
        ASSERT_OK(serial_port_open_log(st.port, &late_fd, &reader_id));
        for (size_t got = 0; got < ring_size;) {
                uint8_t buf[64 * 1024];

                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
                n = read(late_fd, buf, sizeof buf);
                if (n < 0 && errno == EAGAIN)
                        continue;
                ASSERT_TRUE(n > 0);
                check_pattern(buf, (size_t) n, st.total - ring_size + got);
                got += (size_t) n;
        }

        /* Readers that hang up are freed. */
        ASSERT_EQ(serial_port_n_readers(st.port), 3);
        st.fast_source = sd_event_source_disable_unref(st.fast_source);
        close(st.fast_fd);
        close(slow_fd);
        for (unsigned i = 0; i < 10 && serial_port_n_readers(st.port) > 1; i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        ASSERT_EQ(serial_port_n_readers(st.port), 1);

        /* A closed reader with output pending is noticed when sending fails too. */
        serial_port_write(st.port, "x", 1);
        close(late_fd);
        for (unsigned i = 0; i < 10 && serial_port_n_readers(st.port) > 0; i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        ASSERT_EQ(serial_port_n_readers(st.port), 0);

        sd_event_source_disable_unref(st.producer);
        serial_port_free(st.port);
        sd_event_unref(e);
}

TEST(reader_gone_before_free) {
        sd_event *e;
        SerialPort *p;
        int fd;

        /* Readers still open when the port goes: their sockets are closed, the client gets what
         * was already pushed (the backlog goes in at open), then EOF. */
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(serial_port_new(e, "dut1", 4096, &p));
        serial_port_write(p, "abc", 3);
        ASSERT_OK(serial_port_open_log(p, &fd, &reader_id));
        serial_port_free(p);
        {
                char buf[8];

                ASSERT_EQ(read_some(fd, buf, sizeof buf, 100), 3);
                ASSERT_TRUE(memcmp(buf, "abc", 3) == 0);
                ASSERT_EQ(read_some(fd, buf, sizeof buf, 100), 0);
        }
        close(fd);
        sd_event_unref(e);
}

TEST_MAIN();
