/* Logging to stderr and, under systemd, to the journal */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
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
                char extra[4][256] = {};
                size_t n = 0;

                for (size_t i = 0; fields && fields[i] && fields[i + 1] && n < ELEMENTSOF(extra); i += 2)
                        snprintf(extra[n++], sizeof extra[0], "%s%s", fields[i], fields[i + 1]);

                sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", level & LOG_PRIMASK,
                                "CODE_FILE=%s", file, "CODE_LINE=%i", line, "CODE_FUNC=%s", func,
                                "ERRNO=%i", error, "SYSLOG_IDENTIFIER=%s", program_name,
                                n > 0 ? extra[0] : NULL, n > 1 ? extra[1] : NULL, n > 2 ? extra[2] : NULL,
                                n > 3 ? extra[3] : NULL, NULL);
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
