/* One GPIO line requested through libgpiod: the helper that GPIO-driven drivers share */
#pragma once

#include <stdbool.h>

/*
 * For drivers that drive a line of their own (the gpio line, the gpio-relay power switch, a GPIO
 * storage mux): open once when the driver starts, get/set from the event loop, close when it
 * stops. Values are logical: with active_low, 1 drives the line low (the kernel inverts, so
 * gpioinfo shows it too). get/set are a single ioctl on the chip's character device each; they do
 * not wait for anything, so they are called on the event loop directly.
 */

typedef struct GpioLine GpioLine;

typedef struct GpioLineOptions {
        const char *chip;     /* as gpiod_chip_open_lookup() takes it: name, number, path or label */
        unsigned offset;
        bool active_low;
        const char *consumer; /* NULL: "jumpstarter" */
        /* 0 or 1: request the line as an output driving that value; -1: request it as it is
         * (direction and value untouched) and make it an output on the first set. */
        int initial;
} GpioLineOptions;

/* Requests the line; logs its errors with dut in front. -ENOENT: no such chip; -EINVAL: the chip
 * has no such line; -EBUSY: someone else holds the line. */
int gpio_line_open(const char *dut, const GpioLineOptions *o, GpioLine **ret);
GpioLine *gpio_line_close(GpioLine *l);
/* 0 or 1, or a negative errno. Does not log. */
int gpio_line_get(GpioLine *l);
/* Drives the line (an output from now on). Returns 0 or a negative errno; does not log. */
int gpio_line_set(GpioLine *l, bool value);

static inline void gpio_line_closep(GpioLine **l) {
        gpio_line_close(*l);
}
