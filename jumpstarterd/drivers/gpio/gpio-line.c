/* One GPIO line requested through libgpiod: the helper that GPIO-driven drivers share */
#include <errno.h>
#include <gpiod.h>
#include <stdlib.h>

#include "daemon-util.h"
#include "gpio-line.h"
#include "log.h"
#include "macro.h"

struct GpioLine {
        struct gpiod_chip *chip;
        struct gpiod_line *line; /* owned by chip */
        bool output;
};

/* libgpiod reports through errno; a failure must never read as success. */
static int errno_or_eio(void) {
        return errno > 0 ? errno : EIO;
}

GpioLine *gpio_line_close(GpioLine *l) {
        if (!l)
                return NULL;
        if (l->line)
                gpiod_line_release(l->line);
        if (l->chip)
                gpiod_chip_close(l->chip);
        free(l);
        return NULL;
}

int gpio_line_open(const char *dut, const GpioLineOptions *o, GpioLine **ret) {
        _cleanup_(gpio_line_closep) GpioLine *l = NULL;
        struct gpiod_line_request_config config = {
                .consumer = o->consumer ? o->consumer : "jumpstarter",
                .request_type = o->initial >= 0 ? GPIOD_LINE_REQUEST_DIRECTION_OUTPUT
                                                : GPIOD_LINE_REQUEST_DIRECTION_AS_IS,
                .flags = o->active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0,
        };
        struct gpiod_line *line;

        l = calloc(1, sizeof *l);
        if (!l)
                return log_oom();

        errno = 0;
        l->chip = gpiod_chip_open_lookup(o->chip);
        if (!l->chip) {
                /* libgpiod leaves the errno of its last lookup attempt; a missing chip is what it means. */
                int e = errno > 0 ? errno : ENOENT;

                if (e == ENOENT)
                        return log_dut_prefix(LOG_ERR, e, dut, "GPIO chip %s not found", o->chip);
                return log_dut_prefix(LOG_ERR, e, dut, "Failed to open GPIO chip %s: %m", o->chip);
        }

        line = gpiod_chip_get_line(l->chip, o->offset);
        if (!line) {
                int e = errno_or_eio();

                if (e == EINVAL)
                        return log_dut_prefix(LOG_ERR, EINVAL, dut, "GPIO chip %s has no line %u", o->chip, o->offset);
                return log_dut_prefix(LOG_ERR, e, dut, "Failed to get line %u of GPIO chip %s: %m", o->offset,
                                      o->chip);
        }

        if (gpiod_line_request(line, &config, o->initial > 0) < 0) {
                int e = errno_or_eio();

                if (e == EBUSY)
                        return log_dut_prefix(LOG_ERR, EBUSY, dut, "Line %u of GPIO chip %s is in use by another consumer",
                                              o->offset, o->chip);
                return log_dut_prefix(LOG_ERR, e, dut, "Failed to request line %u of GPIO chip %s: %m", o->offset,
                                      o->chip);
        }
        l->line = line;
        /* A line requested as it is may already be an output; then set_value() is enough. */
        l->output = o->initial >= 0 || gpiod_line_direction(line) == GPIOD_LINE_DIRECTION_OUTPUT;

        *ret = TAKE_PTR(l);
        return 0;
}

int gpio_line_get(GpioLine *l) {
        int v = gpiod_line_get_value(l->line);

        if (v < 0)
                return -errno_or_eio();
        return v ? 1 : 0;
}

int gpio_line_set(GpioLine *l, bool value) {
        int r;

        if (l->output)
                r = gpiod_line_set_value(l->line, value);
        else
                r = gpiod_line_set_direction_output(l->line, value);
        if (r < 0)
                return -errno_or_eio();
        l->output = true;
        return 0;
}
