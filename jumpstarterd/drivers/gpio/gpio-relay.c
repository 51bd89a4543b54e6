/* The gpio-relay driver: DUT power through a relay on a GPIO line */
#include <stdlib.h>

#include "daemon-util.h"
#include "gpio-drivers.h"
#include "gpio-line.h"
#include "macro.h"
#include "power-sequence.h"

#define GPIO_RELAY_CYCLE_DELAY_DEFAULT (1 * USEC_PER_SEC)

typedef struct GpioRelay {
        DriverContext ctx;
        GpioLine *line;
        /* A cycle waits with the relay open: the off time is a timer, never a sleep. */
        PowerSequence seq;
} GpioRelay;

static void *gpio_relay_free(void *instance) {
        GpioRelay *g = instance;

        if (!g)
                return NULL;
        power_sequence_done(&g->seq);
        gpio_line_close(g->line);
        free(g);
        return NULL;
}

static int gpio_relay_switch(void *userdata, PowerAction action);

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
        power_sequence_init(&g->seq, &g->ctx, "gpio-relay-cycle",
                            driver_config_get_u64(c, "cycle_delay", GPIO_RELAY_CYCLE_DELAY_DEFAULT), false,
                            gpio_relay_switch, g);
        /* Requested as it is: restarting the daemon must not switch a running DUT off. */
        r = gpio_line_open(ctx->dut_name, &o, &g->line);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(g);
        return 0;
}

/* Synchronous: done at once. The state is read back from the line, not kept, and every switch is
 * news, also one to the state the line had. */
static int gpio_relay_switch(void *userdata, PowerAction action) {
        GpioRelay *g = userdata;
        bool on = action == POWER_ACTION_ON;
        int r;

        r = gpio_line_set(g->line, on);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, g->ctx.dut_name, "Failed to switch the relay %s: %m",
                                      on ? "on" : "off");
        if (g->ctx.power_changed)
                g->ctx.power_changed(g->ctx.userdata, on ? POWER_ON : POWER_OFF);
        return 1;
}

static int gpio_relay_set(void *instance, PowerAction action, PowerDoneFunc done, void *userdata) {
        GpioRelay *g = instance;
        return power_sequence_set(&g->seq, action, done, userdata);
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
