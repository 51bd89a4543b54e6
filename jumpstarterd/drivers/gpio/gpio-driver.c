/* The gpio driver: one GPIO line of a DUT, read and driven as gpio/<name> */
#include <stdlib.h>

#include "daemon-util.h"
#include "gpio-drivers.h"
#include "gpio-line.h"
#include "macro.h"

typedef struct GpioDriver {
        GpioLine *line;
} GpioDriver;

static void *gpio_driver_free(void *instance) {
        GpioDriver *g = instance;

        if (!g)
                return NULL;
        gpio_line_close(g->line);
        free(g);
        return NULL;
}

static int gpio_driver_new(const DriverConfig *c, const DriverContext *ctx, void **ret) {
        _cleanup_free_ GpioDriver *g = NULL;
        GpioLineOptions o;
        int r;

        r = gpio_line_options_from_config(c, ctx->dut_name, &o);
        if (r < 0)
                return r;
        /* The parser allows only 0 and 1. */
        if (driver_config_is_set(c, "initial"))
                o.initial = driver_config_get_u64(c, "initial", 0) > 0;

        g = calloc(1, sizeof *g);
        if (!g)
                return log_oom();
        r = gpio_line_open(ctx->dut_name, &o, &g->line);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(g);
        return 0;
}

static int gpio_driver_get(void *instance) {
        GpioDriver *g = instance;

        return gpio_line_get(g->line);
}

static int gpio_driver_set(void *instance, bool value) {
        GpioDriver *g = instance;

        return gpio_line_set(g->line, value);
}

static const GpioDriverOps gpio_driver_ops = {
        .get = gpio_driver_get,
        .set = gpio_driver_set,
};

const Driver driver_gpio = {
        .name = "gpio",
        .new = gpio_driver_new,
        .free = gpio_driver_free,
        .gpio = &gpio_driver_ops,
};
