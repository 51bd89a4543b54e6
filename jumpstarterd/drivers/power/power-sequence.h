/* Power actions of a switch: one at a time, cycle as off, delay, on */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "driver.h"

/* Switches the power on or off, or cycles it when the switch can do that itself (can_cycle).
 * Returns 1 when done at once, 0 when power_sequence_switched() follows later (never from within),
 * or a negative errno, logged. */
typedef int (*PowerSwitchFunc)(void *userdata, PowerAction action);

typedef struct PowerSequence {
        const DriverContext *ctx;
        const char *timer_description;
        uint64_t cycle_delay_usec;
        bool can_cycle;
        PowerSwitchFunc switch_power;
        void *userdata;

        /* For drivers that do not read the state back from the switch: what it last did. */
        PowerState state;

        /* The action that set() left pending. */
        PowerDoneFunc done;
        void *done_userdata;
        bool cycle;                     /* the "off" half of a cycle is pending: the "on" half follows */
        /* The "on" half of a cycle is starting: set() has returned, so its failure goes to done. */
        bool cycle_on;
        sd_event_source *cycle_timer;
} PowerSequence;

void power_sequence_init(PowerSequence *s, const DriverContext *ctx, const char *timer_description,
                         uint64_t cycle_delay_usec, bool can_cycle, PowerSwitchFunc switch_power, void *userdata);
void power_sequence_done(PowerSequence *s);

/* The PowerDriverOps.set() of the driver. */
int power_sequence_set(PowerSequence *s, PowerAction action, PowerDoneFunc done, void *userdata);

/* A switch that returned 0 is finished: r < 0 failed, else the switch is in state now. */
void power_sequence_switched(PowerSequence *s, int r, PowerState state);

/* Records the state and tells the DUT when it changed. */
void power_sequence_set_state(PowerSequence *s, PowerState state);
