/* Serial round trip by message size (1, 80, 1024 bytes) over several paths side by side, and an echo board */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pty.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* "echo LINK": the board. A pty whose slave is LINK (what a serial driver opens) and whose master
 * this process echoes back byte for byte, as a board's console in raw mode would. It holds the
 * slave open itself, so that the pty lives while drivers close and reopen it.
 *
 * "rtt COUNT NAME=TARGET...": for each message size, writes the message on each TARGET (a terminal
 * path, or tcp:IPv4:PORT) and times until all of it came back. The targets take turns in blocks,
 * so that all see the same machine. */

#define BLOCK 100

static const size_t sizes[] = { 1, 80, 1024 };
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static void make_raw(int fd) {
        struct termios t;

        if (tcgetattr(fd, &t) == 0) {
                cfmakeraw(&t);
                tcsetattr(fd, TCSANOW, &t);
        }
}

static int echo_board(const char *link) {
        int master, slave;
        char buf[65536];

        if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
                return perror("openpty"), 1;
        make_raw(slave);
        (void) unlink(link);
        if (symlink(ptsname(master), link) < 0)
                return perror("symlink"), 1;
        for (;;) {
                ssize_t n = read(master, buf, sizeof buf), done = 0;

                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0)
                        return perror("read"), 1;
                while (done < n) {
                        ssize_t k = write(master, buf + done, (size_t) (n - done));

                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                return perror("write"), 1;
                        done += k;
                }
        }
}

typedef struct Target {
        const char *name;
        int fd;
        uint64_t *samples[N_SIZES];
} Target;

static int target_open(Target *t, const char *spec) {
        if (strncmp(spec, "tcp:", 4) == 0) {
                struct sockaddr_in sa = { .sin_family = AF_INET };
                char host[64];
                const char *colon = strrchr(spec + 4, ':');
                int one = 1;

                if (!colon || (size_t) (colon - spec - 4) >= sizeof host)
                        return -EINVAL;
                snprintf(host, sizeof host, "%.*s", (int) (colon - spec - 4), spec + 4);
                sa.sin_port = htons((uint16_t) atoi(colon + 1));
                if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                        return -EINVAL;
                t->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (t->fd < 0 || connect(t->fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                        return -errno;
                (void) setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                return 0;
        }
        t->fd = open(spec, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (t->fd < 0)
                return -errno;
        make_raw(t->fd);
        tcflush(t->fd, TCIOFLUSH);
        return 0;
}

static int read_exact(int fd, char *buf, size_t n) {
        while (n > 0) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t k;

                if (poll(&p, 1, 5000) <= 0)
                        return -ETIMEDOUT;
                k = read(fd, buf, n);
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                buf += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Drops whatever is still arriving (a line that came up while the connection was set up). */
static void drain(int fd) {
        char buf[4096];
        struct pollfd p = { .fd = fd, .events = POLLIN };

        while (poll(&p, 1, 200) > 0 && read(fd, buf, sizeof buf) > 0)
                ;
}

static int measure(Target *t, size_t size, uint64_t *samples, unsigned n) {
        char out[1024], in[1024];

        for (unsigned i = 0; i < n; i++) {
                uint64_t t0;

                for (size_t k = 0; k < size; k++)
                        out[k] = (char) ('a' + (i + k) % 26);
                t0 = now_ns();
                if (write(t->fd, out, size) != (ssize_t) size || read_exact(t->fd, in, size) < 0)
                        return -EIO;
                samples[i] = now_ns() - t0;
                if (memcmp(in, out, size) != 0)
                        return -EBADMSG;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        Target *targets;
        unsigned count, n;

        if (argc == 3 && strcmp(argv[1], "echo") == 0)
                return echo_board(argv[2]);
        if (argc < 4 || strcmp(argv[1], "rtt") != 0) {
                fprintf(stderr,
                        "Usage: %s echo LINK\n"
                        "       %s rtt COUNT NAME=TARGET...   (TARGET: a terminal path or tcp:IPv4:PORT of an echo)\n",
                        argv[0], argv[0]);
                return 2;
        }
        count = (unsigned) atoi(argv[2]);
        count = (count + BLOCK - 1) / BLOCK * BLOCK;
        if (count == 0)
                return fprintf(stderr, "COUNT must be positive\n"), 2;
        n = (unsigned) argc - 3;
        targets = calloc(n, sizeof *targets);
        if (!targets)
                return 1;
        for (unsigned i = 0; i < n; i++) {
                char *eq = strchr(argv[3 + i], '=');
                int r;

                if (!eq)
                        return fprintf(stderr, "%s: not NAME=TARGET\n", argv[3 + i]), 2;
                *eq = '\0';
                targets[i].name = argv[3 + i];
                r = target_open(&targets[i], eq + 1);
                if (r < 0)
                        return fprintf(stderr, "%s: %s\n", eq + 1, strerror(-r)), 1;
                drain(targets[i].fd);
                for (size_t s = 0; s < N_SIZES; s++)
                        if (!(targets[i].samples[s] = calloc(count, sizeof(uint64_t))))
                                return 1;
        }

        for (size_t s = 0; s < N_SIZES; s++)
                for (unsigned b = 0; b < count; b += BLOCK)
                        for (unsigned i = 0; i < n; i++) {
                                int r = measure(&targets[i], sizes[s], targets[i].samples[s] + b, BLOCK);

                                if (r < 0)
                                        return fprintf(stderr, "%s: %zu-byte echo %s\n", targets[i].name, sizes[s],
                                                       r == -EBADMSG ? "came back different" : "failed or timed out"),
                                               1;
                        }

        printf("serial round trip: write a message, read all of it back; %u samples per size, alternating blocks of %d\n",
               count, BLOCK);
        printf("  %-28s %20s %20s %20s\n", "", "1 B p50 / p99", "80 B p50 / p99", "1024 B p50 / p99");
        for (unsigned i = 0; i < n; i++) {
                printf("  %-28s", targets[i].name);
                for (size_t s = 0; s < N_SIZES; s++) {
                        uint64_t *v = targets[i].samples[s];

                        qsort(v, count, sizeof *v, cmp_u64);
                        printf("   %7.1f / %7.1f us", v[count / 2] / 1e3, v[count * 99 / 100] / 1e3);
                }
                printf("\n");
        }
        /* Machine-readable p50s for the script: "p50 NAME SIZE NS". */
        for (unsigned i = 0; i < n; i++)
                for (size_t s = 0; s < N_SIZES; s++)
                        fprintf(stderr, "p50 %s %zu %llu\n", targets[i].name, sizes[s],
                                (unsigned long long) targets[i].samples[s][count / 2]);
        return 0;
}
