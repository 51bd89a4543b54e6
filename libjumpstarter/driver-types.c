/* The driver types a config may name, with their classes and options */
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "macro.h"

/* Defaults are applied by the drivers (driver_config_get_u64(c, name, default)); the help text
 * states them so that docs and error messages can. Adding a driver type is adding a table below
 * and a line in its family's table. */

static const OptionSpec sim_options[] = {
        { "storage", OPTION_PATH, false,
          "backing image file for the storage; without it the storage is held in memory" },
        { "size", OPTION_SIZE, false, "storage size when the storage is created (default 64MiB)" },
        { "boot_time", OPTION_DURATION, false, "how long the boot log takes after power on (default 300ms)" },
        { "cycle_delay", OPTION_DURATION, false, "off time of a power cycle (default 200ms)" },
        { "log_size", OPTION_SIZE, false, "size of the serial.log ring, at most 1GiB (default 1MiB)",
          .min = 1, .max = UINT64_C(1) << 30 },
        { "prompt", OPTION_STRING, false, "shell prompt printed after boot (default \"<dut>:~# \")" },
        {}
};

static const DriverType driver_type_sim = {
        .name = "sim",
        .classes = 1U << DRIVER_CLASS_POWER | 1U << DRIVER_CLASS_SERIAL | 1U << DRIVER_CLASS_STORAGE,
        .options = sim_options,
        .help = "a simulated board: power switch, serial console with a boot log, and storage",
};

const DriverType *const driver_types_sim[] = {
        &driver_type_sim,
        NULL,
};

/* One NULL-terminated table per family of drivers, in driver-types-<family>.c. */
static const DriverType *const *const families[] = {
        driver_types_sim,
        driver_types_serial,
        driver_types_power,
        driver_types_gpio,
        driver_types_storage,
        driver_types_qemu,
        driver_types_remote,
};

const DriverType *driver_type_next(const DriverType *prev) {
        bool found = !prev;

        for (size_t f = 0; f < ELEMENTSOF(families); f++)
                for (const DriverType *const *t = families[f]; *t; t++) {
                        if (found)
                                return *t;
                        if (*t == prev)
                                found = true;
                }
        return NULL;
}

const DriverType *driver_type_find(const char *name) {
        if (!name)
                return NULL;
        for (const DriverType *t = driver_type_next(NULL); t; t = driver_type_next(t))
                if (streq(t->name, name))
                        return t;
        return NULL;
}
