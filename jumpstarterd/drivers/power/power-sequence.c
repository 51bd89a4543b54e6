/* Power actions of a switch: one at a time, cycle as off, delay, on */
#include <assert.h>

#include "daemon-util.h"
#include "log.h"
#include "power-sequence.h"

void power_sequence_init(PowerSequence *s, const DriverContext *ctx, const char *timer_description,
                         uint64_t cycle_delay_usec, bool can_cycle, PowerSwitchFunc switch_power, void *userdata) {
        assert(s);
        assert(ctx);
        assert(switch_power);

        *s = (PowerSequence) {
                .ctx = ctx,
                .timer_description = timer_description,
                .cycle_delay_usec = cycle_delay_usec,
                .can_cycle = can_cycle,
                .switch_power = switch_power,
                .userdata = userdata,
                .state = POWER_UNKNOWN,
        };
}

void power_sequence_done(PowerSequence *s) {
        if (!s)
                return;
        s->cycle_timer = sd_event_source_disable_unref(s->cycle_timer);
}

void power_sequence_set_state(PowerSequence *s, PowerState state) {
        if (s->state == state)
                return;
        s->state = state;
        if (s->ctx->power_changed)
                s->ctx->power_changed(s->ctx->userdata, state);
}

static void power_sequence_finish(PowerSequence *s, int r) {
        PowerDoneFunc done = s->done;

        assert(done);
        s->done = NULL;
        done(r < 0 ? r : 0, s->done_userdata);
}

static int power_sequence_on_cycle_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        PowerSequence *s = userdata;
        int r;

        s->cycle_timer = sd_event_source_disable_unref(s->cycle_timer);
        s->cycle_on = true;
        r = s->switch_power(s->userdata, POWER_ACTION_ON);
        s->cycle_on = false;
        if (r != 0)
                power_sequence_finish(s, r);
        return 0;
}

static int power_sequence_arm_cycle_timer(PowerSequence *s) {
        int r;

        r = sd_event_add_time_relative(s->ctx->event, &s->cycle_timer, CLOCK_MONOTONIC, s->cycle_delay_usec, 0,
                                       power_sequence_on_cycle_timer, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->cycle_timer, s->timer_description);
        return 0;
}

int power_sequence_set(PowerSequence *s, PowerAction action, PowerDoneFunc done, void *userdata) {
        bool cycle = false;
        int r;

        assert(!s->done);
        assert(!s->cycle_timer);

        switch (action) {
        case POWER_ACTION_ON:
        case POWER_ACTION_OFF:
                break;
        case POWER_ACTION_CYCLE:
                /* Off, wait, on, each step checked: a switch's own "reboot" may answer before it is
                 * done, and only one that waits for its own on (a cycle command) may do it itself. */
                if (!s->can_cycle) {
                        action = POWER_ACTION_OFF;
                        cycle = true;
                }
                break;
        default:
                return -EINVAL;
        }

        r = s->switch_power(s->userdata, action);
        if (r < 0)
                return r;
        if (r > 0 && !cycle)
                return 1;

        s->done = done;
        s->done_userdata = userdata;
        s->cycle = cycle && r == 0;
        if (r > 0) {
                /* Off at once: the wait starts now. */
                r = power_sequence_arm_cycle_timer(s);
                if (r < 0) {
                        s->done = NULL;
                        return log_dut_prefix(LOG_ERR, r, s->ctx->dut_name, "Failed to arm the power cycle timer: %m");
                }
        }
        return 0;
}

void power_sequence_switched(PowerSequence *s, int r, PowerState state) {
        assert(s->done);

        /* After a failure nobody knows what the switch did. */
        power_sequence_set_state(s, r < 0 ? POWER_UNKNOWN : state);
        if (r >= 0 && s->cycle) {
                s->cycle = false;
                r = power_sequence_arm_cycle_timer(s);
                if (r >= 0)
                        return;
        }
        s->cycle = false;
        power_sequence_finish(s, r);
}
