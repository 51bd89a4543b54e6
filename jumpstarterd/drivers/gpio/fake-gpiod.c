/* A stand-in for the libgpiod v1 calls of gpio-line.c, for tests: a chip of files instead of hardware */
#include <errno.h>
#include <fcntl.h>
#include <gpiod.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"

/*
 * This kernel has no GPIO (no gpiochip, no gpio-sim), so tests link this instead of libgpiod.
 * $JMP_FAKE_GPIO_DIR/<chip>/ is a chip and $JMP_FAKE_GPIO_DIR/<chip>/<offset> one of its lines,
 * holding the physical level "0" or "1": a test reads it to see what the driver drove and writes
 * it to play the hardware. Lookup is as libgpiod's: "3" means gpiochip3, "/dev/gpiochip3" its
 * name. Requests are remembered in this process, so a second request of a line is EBUSY as the
 * kernel would answer. Direction is kept in memory; lines start as inputs.
 */

#define FAKE_LINES_MAX 64

struct gpiod_line {
        struct gpiod_chip *chip;
        unsigned offset;
        bool requested, output, active_low;
};

struct gpiod_chip {
        char *name;
        char *dir;
        struct gpiod_line *lines[FAKE_LINES_MAX];
};

/* Requested lines of the whole process, "chip/offset", as the kernel knows them. */
static char *requested[FAKE_LINES_MAX];

static const char *fake_dir(void) {
        const char *d = getenv("JMP_FAKE_GPIO_DIR");

        return d && *d ? d : "/nonexistent";
}

struct gpiod_chip *gpiod_chip_open_lookup(const char *descr) {
        struct gpiod_chip *chip;
        char name[NAME_MAX + 1];
        struct stat st;

        if (!descr || !*descr || strlen(descr) > 64) {
                errno = ENOENT;
                return NULL;
        }
        if (strspn(descr, "0123456789") == strlen(descr))
                snprintf(name, sizeof name, "gpiochip%s", descr);
        else if (strncmp(descr, "/dev/", 5) == 0)
                snprintf(name, sizeof name, "%s", descr + 5);
        else
                snprintf(name, sizeof name, "%s", descr);
        if (strchr(name, '/') || name[0] == '.') {
                errno = ENOENT;
                return NULL;
        }

        chip = calloc(1, sizeof *chip);
        if (!chip)
                return NULL;
        chip->name = strdup(name);
        if (!chip->name || asprintf(&chip->dir, "%s/%s", fake_dir(), name) < 0) {
                free(chip->name);
                free(chip);
                errno = ENOMEM;
                return NULL;
        }
        if (stat(chip->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                free(chip->dir);
                free(chip->name);
                free(chip);
                errno = ENOENT;
                return NULL;
        }
        return chip;
}

void gpiod_line_release(struct gpiod_line *line) {
        char key[NAME_MAX + 16];

        if (!line || !line->requested)
                return;
        snprintf(key, sizeof key, "%s/%u", line->chip->name, line->offset);
        for (size_t i = 0; i < ELEMENTSOF(requested); i++)
                if (requested[i] && streq(requested[i], key)) {
                        free(requested[i]);
                        requested[i] = NULL;
                }
        line->requested = false;
}

void gpiod_chip_close(struct gpiod_chip *chip) {
        if (!chip)
                return;
        for (size_t i = 0; i < ELEMENTSOF(chip->lines); i++) {
                gpiod_line_release(chip->lines[i]);
                free(chip->lines[i]);
        }
        free(chip->dir);
        free(chip->name);
        free(chip);
}

static int line_path(struct gpiod_line *line, char *buf, size_t size) {
        if ((size_t) snprintf(buf, size, "%s/%u", line->chip->dir, line->offset) >= size)
                return -ENAMETOOLONG;
        return 0;
}

struct gpiod_line *gpiod_chip_get_line(struct gpiod_chip *chip, unsigned int offset) {
        struct gpiod_line probe = { .chip = chip, .offset = offset };
        char path[PATH_MAX];

        if (offset >= FAKE_LINES_MAX || line_path(&probe, path, sizeof path) < 0 || access(path, F_OK) < 0) {
                errno = EINVAL;
                return NULL;
        }
        if (!chip->lines[offset]) {
                chip->lines[offset] = calloc(1, sizeof(struct gpiod_line));
                if (!chip->lines[offset])
                        return NULL;
                *chip->lines[offset] = probe;
        }
        return chip->lines[offset];
}

static int level_read(struct gpiod_line *line) {
        char path[PATH_MAX], c = 0;
        int fd;
        ssize_t n;

        if (line_path(line, path, sizeof path) < 0)
                return -1;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        n = read(fd, &c, 1);
        close(fd);
        if (n != 1 || (c != '0' && c != '1')) {
                errno = EIO;
                return -1;
        }
        return c - '0';
}

/* Replaced whole (rename), so that a test reading it never sees it half written. */
static int level_write(struct gpiod_line *line, int level) {
        char path[PATH_MAX], tmp[PATH_MAX + 8];
        int fd;

        if (line_path(line, path, sizeof path) < 0)
                return -1;
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -1;
        if (write(fd, level ? "1\n" : "0\n", 2) != 2) {
                close(fd);
                errno = EIO;
                return -1;
        }
        close(fd);
        return rename(tmp, path);
}

int gpiod_line_request(struct gpiod_line *line, const struct gpiod_line_request_config *config, int default_val) {
        char key[NAME_MAX + 16];
        size_t free_slot = ELEMENTSOF(requested);

        snprintf(key, sizeof key, "%s/%u", line->chip->name, line->offset);
        for (size_t i = 0; i < ELEMENTSOF(requested); i++) {
                if (requested[i] && streq(requested[i], key)) {
                        errno = EBUSY;
                        return -1;
                }
                if (!requested[i] && free_slot == ELEMENTSOF(requested))
                        free_slot = i;
        }
        if (free_slot == ELEMENTSOF(requested)) {
                errno = ENOMEM;
                return -1;
        }

        line->active_low = config->flags & GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW;
        if (config->request_type == GPIOD_LINE_REQUEST_DIRECTION_OUTPUT) {
                if (level_write(line, !!default_val ^ line->active_low) < 0)
                        return -1;
                line->output = true;
        } else if (config->request_type == GPIOD_LINE_REQUEST_DIRECTION_INPUT)
                line->output = false;

        requested[free_slot] = strdup(key);
        if (!requested[free_slot]) {
                errno = ENOMEM;
                return -1;
        }
        line->requested = true;
        return 0;
}

int gpiod_line_direction(struct gpiod_line *line) {
        return line->output ? GPIOD_LINE_DIRECTION_OUTPUT : GPIOD_LINE_DIRECTION_INPUT;
}

int gpiod_line_get_value(struct gpiod_line *line) {
        int level;

        if (!line->requested) {
                errno = EPERM;
                return -1;
        }
        level = level_read(line);
        return level < 0 ? -1 : level ^ line->active_low;
}

int gpiod_line_set_value(struct gpiod_line *line, int value) {
        /* The kernel refuses to drive a line that is not an output. */
        if (!line->requested || !line->output) {
                errno = EPERM;
                return -1;
        }
        return level_write(line, !!value ^ line->active_low) < 0 ? -1 : 0;
}

int gpiod_line_set_direction_output(struct gpiod_line *line, int value) {
        if (!line->requested) {
                errno = EPERM;
                return -1;
        }
        if (level_write(line, !!value ^ line->active_low) < 0)
                return -1;
        line->output = true;
        return 0;
}
