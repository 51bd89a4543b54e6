/* Serial console served by ser2net over TCP: raw, telnet or RFC 2217, reconnected with backoff */
#include <assert.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon-util.h"
#include "driver.h"
#include "log.h"
#include "macro.h"
#include "serial-line.h"
#include "telnet.h"
#include "write-queue.h"

#define RETRY_MIN_USEC (500 * USEC_PER_MSEC)
#define RETRY_MAX_USEC (5 * USEC_PER_SEC)
#define READ_MAX 4096

typedef enum Ser2netProtocol {
        SER2NET_RAW,
        SER2NET_TELNET,
        SER2NET_RFC2217,
        _SER2NET_PROTOCOL_MAX,
        _SER2NET_PROTOCOL_INVALID = -EINVAL,
} Ser2netProtocol;

static const char *const protocol_table[_SER2NET_PROTOCOL_MAX] = {
        [SER2NET_RAW] = "raw",
        [SER2NET_TELNET] = "telnet",
        [SER2NET_RFC2217] = "rfc2217",
};

/* A name lookup: getaddrinfo() blocks, so it runs on a worker thread that posts its result back
 * through an eventfd. A lookup whose driver went away frees itself when it is done. */
typedef struct Lookup {
        pthread_mutex_t lock;
        bool abandoned;
        char *host, *service;
        int efd;
        int error; /* EAI_* */
        struct addrinfo *result;
} Lookup;

typedef struct Ser2net {
        DriverContext ctx;
        char *host;
        unsigned port;
        char *where; /* "host:port" for messages */
        Ser2netProtocol protocol;
        SerialLine line;
        uint64_t log_size;

        Lookup *lookup;
        sd_event_source *lookup_source;
        struct addrinfo *addresses, *next_address;

        int fd;
        bool connected;
        sd_event_source *io_source;
        uint32_t events;
        WriteQueue out;
        Telnet telnet;

        sd_event_source *retry_timer;
        uint64_t retry_usec;
        bool gone;
} Ser2net;

static void lookup_free(Lookup *l) {
        if (l->result)
                freeaddrinfo(l->result);
        safe_close(l->efd);
        pthread_mutex_destroy(&l->lock);
        free(l->host);
        free(l->service);
        free(l);
}

static void *lookup_thread(void *userdata) {
        Lookup *l = userdata;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
        bool abandoned;

        l->error = getaddrinfo(l->host, l->service, &hints, &l->result);

        pthread_mutex_lock(&l->lock);
        abandoned = l->abandoned;
        if (!abandoned)
                (void) eventfd_write(l->efd, 1);
        pthread_mutex_unlock(&l->lock);
        if (abandoned)
                lookup_free(l);
        return NULL;
}

/* Forgets a lookup under way: whichever of the two sides comes last frees it. */
static void lookup_abandon(Lookup *l) {
        bool done;
        eventfd_t v;

        if (!l)
                return;
        pthread_mutex_lock(&l->lock);
        done = eventfd_read(l->efd, &v) >= 0; /* the thread has posted: it touches l no more */
        l->abandoned = !done;
        pthread_mutex_unlock(&l->lock);
        if (done)
                lookup_free(l);
}

static int ser2net_connect_next(Ser2net *s);
static void ser2net_lost(Ser2net *s, int error);

static void ser2net_close(Ser2net *s) {
        s->io_source = sd_event_source_disable_unref(s->io_source);
        s->fd = safe_close(s->fd);
        s->connected = false;
        write_queue_clear(&s->out);
}

static int ser2net_on_retry(sd_event_source *source, uint64_t usec, void *userdata);

static void ser2net_schedule_retry(Ser2net *s) {
        int r;

        s->retry_usec = s->retry_usec == 0 ? RETRY_MIN_USEC : MIN(s->retry_usec * 2, RETRY_MAX_USEC);
        if (!s->retry_timer) {
                r = sd_event_add_time_relative(s->ctx.event, &s->retry_timer, CLOCK_MONOTONIC, s->retry_usec, 0,
                                               ser2net_on_retry, s);
                if (r < 0) {
                        log_dut_prefix(LOG_ERR, r, s->ctx.dut_name, "Failed to schedule reconnecting to %s: %m",
                                       s->where);
                        return;
                }
                (void) sd_event_source_set_description(s->retry_timer, "ser2net-retry");
                return;
        }
        (void) sd_event_source_set_time_relative(s->retry_timer, s->retry_usec);
        (void) sd_event_source_set_enabled(s->retry_timer, SD_EVENT_ONESHOT);
}

static void ser2net_failed(Ser2net *s, int error, const char *what) {
        if (!s->gone)
                log_dut_prefix(LOG_WARNING, error, s->ctx.dut_name, "Failed to %s ser2net at %s (%m), retrying", what,
                               s->where);
        else
                log_dut_prefix(LOG_DEBUG, error, s->ctx.dut_name, "Failed to %s ser2net at %s, retrying: %m", what,
                               s->where);
        s->gone = true;
        ser2net_close(s);
        ser2net_schedule_retry(s);
}

static int ser2net_send(Ser2net *s, const void *data, size_t n) {
        int r;

        r = write_queue_write(&s->out, s->fd, data, n);
        if (r < 0)
                return r;
        if (r > 0 && !(s->events & EPOLLOUT) && sd_event_source_set_io_events(s->io_source, EPOLLIN | EPOLLOUT) >= 0)
                s->events = EPOLLIN | EPOLLOUT;
        return 0;
}

static int ser2net_send_line(Ser2net *s) {
        uint8_t buf[64];

        return ser2net_send(s, buf, telnet_com_port_line(&s->line, buf));
}

static void ser2net_on_connected(Ser2net *s) {
        uint8_t buf[32];
        int r = 0;

        s->connected = true;
        s->retry_usec = 0;
        (void) sd_event_source_set_io_events(s->io_source, EPOLLIN);
        s->events = EPOLLIN;
        if (s->gone)
                log_dut_prefix(LOG_INFO, 0, s->ctx.dut_name, "Connected to ser2net at %s again", s->where);
        else
                log_dut_prefix(LOG_INFO, 0, s->ctx.dut_name, "Connected to ser2net at %s", s->where);
        s->gone = false;

        if (s->protocol != SER2NET_RAW) {
                telnet_init(&s->telnet, s->protocol == SER2NET_RFC2217);
                r = ser2net_send(s, buf, telnet_start(&s->telnet, buf));
                if (r >= 0 && s->protocol == SER2NET_RFC2217)
                        r = ser2net_send_line(s);
        }
        if (r < 0)
                ser2net_lost(s, -r);
}

static void ser2net_read(Ser2net *s) {
        uint8_t buf[READ_MAX], reply[READ_MAX + 2];
        size_t n_reply = 0;
        ssize_t n;
        int r;

        n = read(s->fd, buf, sizeof buf);
        if (n < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        ser2net_lost(s, errno);
                return;
        }
        if (n == 0) {
                ser2net_lost(s, ECONNRESET);
                return;
        }
        if (s->protocol != SER2NET_RAW)
                n = (ssize_t) telnet_receive(&s->telnet, buf, (size_t) n, reply, &n_reply);
        if (n > 0 && s->ctx.serial_output)
                s->ctx.serial_output(s->ctx.userdata, buf, (size_t) n);
        if (n_reply > 0) {
                r = ser2net_send(s, reply, n_reply);
                if (r < 0)
                        ser2net_lost(s, -r);
        }
}

static int ser2net_on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Ser2net *s = userdata;
        int r;

        if (!s->connected) {
                int error = 0;
                socklen_t len = sizeof error;

                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error != 0) {
                        log_dut_prefix(LOG_DEBUG, error, s->ctx.dut_name, "Failed to connect to %s: %m", s->where);
                        ser2net_close(s);
                        r = ser2net_connect_next(s);
                        if (r < 0)
                                ser2net_failed(s, -r, "connect to");
                        return 0;
                }
                ser2net_on_connected(s);
                return 0;
        }

        if (revents & EPOLLIN) {
                ser2net_read(s);
                return 0;
        }
        if (revents & (EPOLLHUP | EPOLLERR)) {
                ser2net_lost(s, ECONNRESET);
                return 0;
        }
        if (revents & EPOLLOUT) {
                r = write_queue_flush(&s->out, s->fd);
                if (r < 0)
                        ser2net_lost(s, -r);
                else if (r == 0 && sd_event_source_set_io_events(s->io_source, EPOLLIN) >= 0)
                        s->events = EPOLLIN;
        }
        return 0;
}

/* Tries the next address of the lookup: 0 when a connect is under way, -errno when none is left. */
static int ser2net_connect_next(Ser2net *s) {
        int r = -EHOSTUNREACH;

        for (; s->next_address; s->next_address = s->next_address->ai_next) {
                const struct addrinfo *a = s->next_address;
                _cleanup_close_ int fd = -EBADF;
                int one = 1;

                fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd < 0) {
                        r = -errno;
                        continue;
                }
                /* Keystrokes and console lines go out at once: no Nagle batching. Keepalive
                 * notices a ser2net host that vanished without closing. */
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                (void) setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
                if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
                        r = -errno;
                        continue;
                }
                r = sd_event_add_io(s->ctx.event, &s->io_source, fd, EPOLLOUT, ser2net_on_io, s);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(s->io_source, "ser2net");
                s->events = EPOLLOUT;
                s->fd = TAKE_FD(fd);
                s->next_address = a->ai_next;
                return 0;
        }
        return r;
}

static int ser2net_on_lookup(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Ser2net *s = userdata;
        Lookup *l = TAKE_PTR(s->lookup);
        int r;

        s->lookup_source = sd_event_source_disable_unref(s->lookup_source);
        pthread_mutex_lock(&l->lock);
        pthread_mutex_unlock(&l->lock);

        if (l->error != 0) {
                if (!s->gone)
                        log_dut_prefix(LOG_WARNING, 0, s->ctx.dut_name, "Failed to look up ser2net host %s: %s, retrying",
                                       s->host, gai_strerror(l->error));
                s->gone = true;
                lookup_free(l);
                ser2net_schedule_retry(s);
                return 0;
        }
        if (s->addresses)
                freeaddrinfo(s->addresses);
        s->addresses = s->next_address = TAKE_PTR(l->result);
        lookup_free(l);

        r = ser2net_connect_next(s);
        if (r < 0)
                ser2net_failed(s, -r, "connect to");
        return 0;
}

static int ser2net_start_lookup(Ser2net *s) {
        Lookup *l;
        pthread_t thread;
        pthread_attr_t attr;
        char service[16];
        int r;

        l = malloc(sizeof *l);
        if (!l)
                return -ENOMEM;
        *l = (Lookup) { .efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
        (void) pthread_mutex_init(&l->lock, NULL);
        (void) snprintf(service, sizeof service, "%u", s->port);
        l->host = strdup(s->host);
        l->service = strdup(service);
        if (l->efd < 0 || !l->host || !l->service) {
                r = l->efd < 0 ? -errno : -ENOMEM;
                lookup_free(l);
                return r;
        }
        r = sd_event_add_io(s->ctx.event, &s->lookup_source, l->efd, EPOLLIN, ser2net_on_lookup, s);
        if (r < 0) {
                lookup_free(l);
                return r;
        }
        (void) pthread_attr_init(&attr);
        (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = -pthread_create(&thread, &attr, lookup_thread, l);
        (void) pthread_attr_destroy(&attr);
        if (r < 0) {
                s->lookup_source = sd_event_source_disable_unref(s->lookup_source);
                lookup_free(l);
                return r;
        }
        s->lookup = l;
        return 0;
}

/* A numeric address needs no lookup and no thread. */
static int ser2net_resolve_numeric(Ser2net *s) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
        char service[16];

        (void) snprintf(service, sizeof service, "%u", s->port);
        if (s->addresses)
                return 0;
        if (getaddrinfo(s->host, service, &hints, &s->addresses) != 0) {
                s->addresses = NULL;
                return -EADDRNOTAVAIL;
        }
        return 0;
}

static void ser2net_connect(Ser2net *s) {
        int r;

        if (ser2net_resolve_numeric(s) < 0) {
                r = ser2net_start_lookup(s);
                if (r < 0)
                        ser2net_failed(s, -r, "look up");
                return;
        }
        s->next_address = s->addresses;
        r = ser2net_connect_next(s);
        if (r < 0)
                ser2net_failed(s, -r, "connect to");
}

static int ser2net_on_retry(sd_event_source *source, uint64_t usec, void *userdata) {
        ser2net_connect(userdata);
        return 0;
}

/* ser2net closed the connection (it lost its port, or was restarted): the console waits. */
static void ser2net_lost(Ser2net *s, int error) {
        if (!s->gone)
                log_dut_prefix(LOG_WARNING, error, s->ctx.dut_name,
                               "Connection to ser2net at %s lost (%m), reconnecting", s->where);
        s->gone = true;
        ser2net_close(s);
        s->retry_usec = 0;
        ser2net_schedule_retry(s);
}

static void ser2net_input(void *instance, const void *data, size_t n) {
        Ser2net *s = instance;
        const uint8_t *p = data;
        int r = 0;

        if (!s->connected) {
                log_dut_prefix(LOG_DEBUG, 0, s->ctx.dut_name, "Not connected to %s, dropping %zu typed bytes",
                               s->where, n);
                return;
        }
        if (s->protocol == SER2NET_RAW)
                r = ser2net_send(s, data, n);
        else
                while (n > 0 && r >= 0) {
                        uint8_t buf[2 * 1024];
                        size_t k = MIN(n, sizeof buf / 2);

                        r = ser2net_send(s, buf, telnet_escape(p, k, buf));
                        p += k;
                        n -= k;
                }
        if (r < 0)
                ser2net_lost(s, -r);
}

static uint64_t ser2net_log_size(void *instance) {
        Ser2net *s = instance;
        return s->log_size;
}

static void ser2net_get_line(void *instance, struct termios *ret) {
        Ser2net *s = instance;
        serial_line_to_termios(&s->line, ret);
}

static int ser2net_set_line(void *instance, const struct termios *t) {
        Ser2net *s = instance;
        char buf[64];
        int r;

        if (!serial_line_update_from_termios(&s->line, t))
                return 0;
        serial_line_format(&s->line, buf, sizeof buf);
        if (s->protocol != SER2NET_RFC2217) {
                /* Raw and telnet have no way to say it: ser2net's config decides. */
                log_dut_prefix(LOG_NOTICE, 0, s->ctx.dut_name,
                               "Line settings %s asked for, but %s protocol cannot change them at ser2net (use rfc2217)",
                               buf, protocol_table[s->protocol]);
                return -EOPNOTSUPP;
        }
        log_dut_prefix(LOG_INFO, 0, s->ctx.dut_name, "Line settings %s at %s", buf, s->where);
        if (!s->connected)
                return 0; /* sent when connected */
        r = ser2net_send_line(s);
        if (r < 0)
                ser2net_lost(s, -r);
        return r;
}

static const SerialDriverOps ser2net_serial_ops = {
        .input = ser2net_input,
        .log_size = ser2net_log_size,
        .get_line = ser2net_get_line,
        .set_line = ser2net_set_line,
};

static void *ser2net_free(void *instance) {
        Ser2net *s = instance;

        if (!s)
                return NULL;
        ser2net_close(s);
        s->lookup_source = sd_event_source_disable_unref(s->lookup_source);
        lookup_abandon(s->lookup);
        sd_event_source_disable_unref(s->retry_timer);
        if (s->addresses)
                freeaddrinfo(s->addresses);
        write_queue_done(&s->out);
        free(s->host);
        free(s->where);
        free(s);
        return NULL;
}

static void ser2net_freep(Ser2net **s) {
        ser2net_free(*s);
}

static int ser2net_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        _cleanup_(ser2net_freep) Ser2net *s = NULL;
        const char *protocol = driver_config_get_string(config, "protocol");
        uint64_t port = driver_config_get_u64(config, "port", 0);
        int r;

        s = malloc(sizeof *s);
        if (!s)
                return log_oom();
        *s = (Ser2net) { .ctx = *ctx, .fd = -EBADF, .protocol = SER2NET_RAW };

        r = serial_line_from_config(config, ctx->dut_name, &s->line);
        if (r < 0)
                return r;
        if (port == 0 || port > 65535)
                return log_dut_prefix(LOG_ERR, EINVAL, ctx->dut_name, "ser2net: port: %" PRIu64 " is not 1...65535",
                                      port);
        s->port = (unsigned) port;
        if (protocol) {
                s->protocol = _SER2NET_PROTOCOL_INVALID;
                for (size_t i = 0; i < ELEMENTSOF(protocol_table); i++)
                        if (streq(protocol_table[i], protocol))
                                s->protocol = (Ser2netProtocol) i;
                if (s->protocol < 0)
                        return log_dut_prefix(LOG_ERR, EINVAL, ctx->dut_name,
                                              "ser2net: protocol: \"%s\" is not raw, telnet or rfc2217", protocol);
        }
        s->host = strdup(driver_config_get_string(config, "host"));
        if (!s->host || asprintf(&s->where, "%s:%u", s->host, s->port) < 0) {
                s->where = NULL;
                return log_oom();
        }
        s->log_size = driver_config_get_u64(config, "log_size", 0);

        /* Not reachable yet is not an error: the console connects when ser2net is there. */
        ser2net_connect(s);

        *ret = TAKE_PTR(s);
        return 0;
}

const Driver driver_ser2net = {
        .name = "ser2net",
        .new = ser2net_new,
        .free = ser2net_free,
        .serial = &ser2net_serial_ops,
};
