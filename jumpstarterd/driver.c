/* Driver table: which code implements each driver type that a config may name */
#include "driver.h"
#include "macro.h"

/* Each family of drivers (jumpstarterd/drivers/<family>/) lists its drivers in its own
 * NULL-terminated table; adding a driver is adding its file and one line in that table. */
static const Driver *const *const driver_families[] = {
        drivers_sim,
        drivers_serial,
        drivers_power,
        drivers_gpio,
        drivers_storage,
        drivers_qemu,
        drivers_remote,
};

static const char *const power_state_table[_POWER_STATE_MAX] = {
        [POWER_OFF] = "off",
        [POWER_ON] = "on",
        [POWER_UNKNOWN] = "unknown",
};

static const char *const power_action_table[_POWER_ACTION_MAX] = {
        [POWER_ACTION_ON] = "on",
        [POWER_ACTION_OFF] = "off",
        [POWER_ACTION_CYCLE] = "cycle",
};

const Driver *driver_find(const char *name) {
        for (size_t f = 0; f < ELEMENTSOF(driver_families); f++)
                for (const Driver *const *d = driver_families[f]; *d; d++)
                        if (streq((*d)->name, name))
                                return *d;
        return NULL;
}

const char *power_state_to_string(PowerState s) {
        if (s < 0 || s >= _POWER_STATE_MAX)
                return NULL;
        return power_state_table[s];
}

const char *power_action_to_string(PowerAction a) {
        if (a < 0 || a >= _POWER_ACTION_MAX)
                return NULL;
        return power_action_table[a];
}

PowerAction power_action_from_string(const char *s) {
        if (!s)
                return _POWER_ACTION_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(power_action_table); i++)
                if (streq(power_action_table[i], s))
                        return (PowerAction) i;
        return _POWER_ACTION_INVALID;
}
