/* Serial round trip: one byte through a terminal and back, against a bare pty echo */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
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

static void make_raw(int fd) {
        struct termios t;

        if (tcgetattr(fd, &t) == 0) {
                cfmakeraw(&t);
                tcsetattr(fd, TCSANOW, &t);
        }
}

/* Types 'a' and waits for its echo, n times; erases each with DEL (echoed as "\b \b", untimed)
 * so that the board's line never grows. Both sides get the erase: the three extra bytes each way
 * are kernel work (flip-buffer pushes, wakeups) near the next timed byte, so like with like. */
static int measure(int fd, unsigned n, bool erase, uint64_t *samples) {
        char buf[8];

        for (unsigned i = 0; i < n; i++) {
                uint64_t t0 = now_ns();

                if (write(fd, "a", 1) != 1 || read_exact(fd, buf, 1) < 0 || buf[0] != 'a')
                        return -EIO;
                samples[i] = now_ns() - t0;
                if (erase && (write(fd, "\x7f", 1) != 1 || read_exact(fd, buf, 3) < 0))
                        return -EIO;
        }
        return 0;
}

#define BLOCK 100

int main(int argc, char *argv[]) {
        unsigned n = argc > 2 ? (unsigned) atoi(argv[2]) : 5000;
        uint64_t *ours, *bare;
        int master, slave, fd;
        pid_t pid;

        if (argc < 2) {
                fprintf(stderr, "Usage: %s SERIAL [COUNT]\n  SERIAL: /jmp/DUT/serial of a booted sim DUT\n",
                        argv[0]);
                return 2;
        }
        n = (n + BLOCK - 1) / BLOCK * BLOCK;
        ours = calloc(n, sizeof *ours);
        bare = calloc(n, sizeof *bare);
        if (!ours || !bare)
                return 1;

        /* The peer: a bare pty whose far end a second process echoes back. */
        if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
                return perror("openpty"), 1;
        make_raw(slave);
        pid = fork();
        if (pid == 0) {
                const char *cpu = getenv("PEER_CPU");
                char c;

                /* Where the daemon runs, when the caller pinned it there: like with like. */
                if (cpu) {
                        cpu_set_t set;

                        CPU_ZERO(&set);
                        CPU_SET(atoi(cpu), &set);
                        (void) sched_setaffinity(0, sizeof set, &set);
                }
                close(slave);
                /* Echoes like the sim board's shell: DEL erases with "\b \b" in one write, so
                 * that both sides carry the same traffic. */
                while (read(master, &c, 1) == 1)
                        if (c == 0x7f ? write(master, "\b \b", 3) != 3 : write(master, &c, 1) != 1)
                                break;
                _exit(0);
        }
        close(master);

        fd = open(argv[1], O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return perror(argv[1]), 1;
        make_raw(fd);
        tcflush(fd, TCIOFLUSH);

        /* Side by side: blocks of the two alternate, so that both see the same machine (on a small
         * VM the scheduler's placement moves round trips by tens of microseconds over time). */
        for (unsigned i = 0; i < n; i += BLOCK) {
                if (measure(slave, BLOCK, true, bare + i) < 0)
                        return fprintf(stderr, "bare pty echo failed\n"), 1;
                if (measure(fd, BLOCK, true, ours + i) < 0)
                        return fprintf(stderr, "no echo from %s: is the DUT powered on and booted?\n", argv[1]), 1;
        }
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        close(slave);
        close(fd);
        qsort(bare, n, sizeof *bare, cmp_u64);
        qsort(ours, n, sizeof *ours, cmp_u64);

        printf("serial round trip, 1 byte, %u samples each, alternating blocks of %d\n", n, BLOCK);
        printf("  bare pty + echo process: p50 %6.1f us  p99 %6.1f us\n", bare[n / 2] / 1e3, bare[n * 99 / 100] / 1e3);
        printf("  %s (sim board): p50 %6.1f us  p99 %6.1f us\n", argv[1], ours[n / 2] / 1e3,
               ours[n * 99 / 100] / 1e3);
        printf("  ratio p50 ours/bare: %.2f (target <= 3.00: %s)\n", (double) ours[n / 2] / (double) bare[n / 2],
               ours[n / 2] <= 3 * bare[n / 2] ? "met" : "missed");
        free(ours);
        free(bare);
        return 0;
}
