/* Logging to stderr and, under systemd, to the journal */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

static const char *program_name = "jumpstarter";
static int max_level = LOG_INFO;
static int use_journal = -1;

void log_setup(const char *program) {
        const char *e;

        program_name = program;
        e = getenv("JMP_LOG_LEVEL");
        if (e && streq(e, "debug"))
                max_level = LOG_DEBUG;
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

/* Under systemd, stderr is connected to the journal already and JOURNAL_STREAM names it; then we
 * send structured entries directly and skip stderr so that nothing is logged twice. */
static bool journal_wanted(void) {
        if (use_journal < 0) {
                const char *e = getenv("JOURNAL_STREAM");
                struct stat st;
                unsigned long dev, ino;

                use_journal = false;
                if (e && sscanf(e, "%lu:%lu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) >= 0 &&
                    st.st_dev == dev && st.st_ino == ino)
                        use_journal = true;
        }
        return use_journal;
}

_printf_(7, 0) static int log_dispatch(int level, int error, const char *file, int line, const char *func,
                        const char *const *fields, const char *format, va_list ap) {
        char buf[2048];
        int saved = errno;

        if (error < 0)
                error = -error;
        if ((level & LOG_PRIMASK) > max_level)
                return -error;

        errno = error;
        vsnprintf(buf, sizeof buf, format, ap);

        if (journal_wanted()) {
                /* Up to 8 fields (a lease event has LEASE=, DUT=, EXPORTER=, CLIENT=, TEAM=). As iovecs,
                 * not formats: a field's value may hold a '%'. */
                char std[7][256], extra[8][256];
                struct iovec iov[ELEMENTSOF(std) + ELEMENTSOF(extra)];
                size_t n = 0;

                snprintf(std[0], sizeof std[0], "PRIORITY=%i", level & LOG_PRIMASK);
                snprintf(std[1], sizeof std[1], "CODE_FILE=%s", file);
                snprintf(std[2], sizeof std[2], "CODE_LINE=%i", line);
                snprintf(std[3], sizeof std[3], "CODE_FUNC=%s", func);
                snprintf(std[4], sizeof std[4], "ERRNO=%i", error);
                snprintf(std[5], sizeof std[5], "SYSLOG_IDENTIFIER=%s", program_name);
                for (size_t i = 0; i < 6; i++)
                        iov[n++] = (struct iovec) { .iov_base = std[i], .iov_len = strlen(std[i]) };
                for (size_t i = 0, k = 0; fields && fields[i] && fields[i + 1] && k < ELEMENTSOF(extra); i += 2, k++) {
                        snprintf(extra[k], sizeof extra[k], "%s%s", fields[i], fields[i + 1]);
                        iov[n++] = (struct iovec) { .iov_base = extra[k], .iov_len = strlen(extra[k]) };
                }
                {
                        _cleanup_free_ char *message = NULL;

                        if (asprintf(&message, "MESSAGE=%s", buf) >= 0) {
                                iov[n++] = (struct iovec) { .iov_base = message, .iov_len = strlen(message) };
                                (void) sd_journal_sendv(iov, (int) n);
                        }
                }
        } else
                fprintf(stderr, "%s: %s\n", program_name, buf);

        errno = saved;
        return -error;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_dispatch(level, error, file, line, func, NULL, format, ap);
        va_end(ap);
        return r;
}

int log_struct_internal(int level, int error, const char *file, int line, const char *func,
                        const char *const *fields, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_dispatch(level, error, file, line, func, fields, format, ap);
        va_end(ap);
        return r;
}
