/* The gpio-relay driver: DUT power through a relay on a GPIO line */
#include <stdlib.h>

#include "daemon-util.h"
#include "gpio-drivers.h"
#include "gpio-line.h"
#include "macro.h"

#define GPIO_RELAY_CYCLE_DELAY_DEFAULT (1 * USEC_PER_SEC)

typedef struct GpioRelay {
        DriverContext ctx;
        GpioLine *line;
        uint64_t cycle_delay;
        /* A cycle waits with the relay open: the off time is a timer, never a sleep. */
        sd_event_source *cycle_timer;
        PowerDoneFunc done;
        void *done_userdata;
} GpioRelay;

static void *gpio_relay_free(void *instance) {
        GpioRelay *g = instance;

        if (!g)
                return NULL;
        sd_event_source_disable_unref(g->cycle_timer);
        gpio_line_close(g->line);
        free(g);
        return NULL;
}

static int gpio_relay_new(const DriverConfig *c, const DriverContext *ctx, void **ret) {
        _cleanup_free_ GpioRelay *g = NULL;
        GpioLineOptions o;
        int r;

        r = gpio_line_options_from_config(c, ctx->dut_name, &o);
        if (r < 0)
                return r;

        g = calloc(1, sizeof *g);
        if (!g)
                return log_oom();
        g->ctx = *ctx;
        g->cycle_delay = driver_config_get_u64(c, "cycle_delay", GPIO_RELAY_CYCLE_DELAY_DEFAULT);
        /* Requested as it is: restarting the daemon must not switch a running DUT off. */
        r = gpio_line_open(ctx->dut_name, &o, &g->line);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(g);
        return 0;
}

static void gpio_relay_changed(GpioRelay *g, PowerState state) {
        if (g->ctx.power_changed)
                g->ctx.power_changed(g->ctx.userdata, state);
}

static int gpio_relay_switch(GpioRelay *g, bool on) {
        int r;

        r = gpio_line_set(g->line, on);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, g->ctx.dut_name, "Failed to switch the relay %s: %m",
                                      on ? "on" : "off");
        gpio_relay_changed(g, on ? POWER_ON : POWER_OFF);
        return 0;
}

static int gpio_relay_on_cycle_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        GpioRelay *g = userdata;
        PowerDoneFunc done = g->done;
        int r;

        g->cycle_timer = sd_event_source_disable_unref(g->cycle_timer);
        g->done = NULL;
        r = gpio_relay_switch(g, true);
        done(r, g->done_userdata);
        return 0;
}

static int gpio_relay_set(void *instance, PowerAction action, PowerDoneFunc done, void *userdata) {
        GpioRelay *g = instance;
        int r;

        switch (action) {
        case POWER_ACTION_ON:
        case POWER_ACTION_OFF:
                r = gpio_relay_switch(g, action == POWER_ACTION_ON);
                return r < 0 ? r : 1;

        case POWER_ACTION_CYCLE:
                r = gpio_relay_switch(g, false);
                if (r < 0)
                        return r;
                r = sd_event_add_time_relative(g->ctx.event, &g->cycle_timer, CLOCK_MONOTONIC, g->cycle_delay, 0,
                                               gpio_relay_on_cycle_timer, g);
                if (r < 0)
                        return log_dut_prefix(LOG_ERR, r, g->ctx.dut_name, "Failed to arm the power cycle timer: %m");
                (void) sd_event_source_set_description(g->cycle_timer, "gpio-relay-cycle");
                g->done = done;
                g->done_userdata = userdata;
                return 0;

        default:
                return -EINVAL;
        }
}

/* Read back from the line: what the relay is told, also when someone else changed it. */
static PowerState gpio_relay_get(void *instance) {
        GpioRelay *g = instance;
        int v = gpio_line_get(g->line);

        if (v < 0)
                return POWER_UNKNOWN;
        return v ? POWER_ON : POWER_OFF;
}

static const PowerDriverOps gpio_relay_power_ops = {
        .set = gpio_relay_set,
        .get = gpio_relay_get,
};

const Driver driver_gpio_relay = {
        .name = "gpio-relay",
        .new = gpio_relay_new,
        .free = gpio_relay_free,
        .power = &gpio_relay_power_ops,
};
