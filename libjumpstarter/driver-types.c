/* The driver types a config may name, with their classes and options */
#include <stddef.h>

#include "config.h"
#include "macro.h"

/* Defaults are applied by the drivers (driver_config_get_u64(c, name, default)); the help text
 * states them so that docs and error messages can. Adding a driver type is adding a table below
 * and a line in driver_types[]. */

static const OptionSpec sim_options[] = {
        { "storage", OPTION_PATH, false,
          "backing image file for the storage; without it the storage is held in memory" },
        { "size", OPTION_SIZE, false, "storage size when the storage is created (default 64MiB)" },
        { "boot_time", OPTION_DURATION, false, "how long the boot log takes after power on (default 300ms)" },
        { "cycle_delay", OPTION_DURATION, false, "off time of a power cycle (default 200ms)" },
        { "log_size", OPTION_SIZE, false, "size of the serial.log ring (default 1MiB)" },
        { "prompt", OPTION_STRING, false, "shell prompt printed after boot (default \"<dut>:~# \")" },
        {}
};

static const DriverType driver_type_sim = {
        .name = "sim",
        .classes = 1U << DRIVER_CLASS_POWER | 1U << DRIVER_CLASS_SERIAL | 1U << DRIVER_CLASS_STORAGE,
        .options = sim_options,
        .help = "a simulated board: power switch, serial console with a boot log, and storage",
};

static const OptionSpec file_options[] = {
        { "path", OPTION_PATH, true, "image file; relative paths are relative to the config file" },
        { "size", OPTION_SIZE, false, "create the file with this size if missing, or grow it to it" },
        {}
};

static const DriverType driver_type_file = {
        .name = "file",
        .classes = 1U << DRIVER_CLASS_STORAGE,
        .options = file_options,
        .help = "storage backed by an image file",
};

const DriverType *const driver_types[] = {
        &driver_type_sim,
        &driver_type_file,
        NULL,
};

const DriverType *driver_type_find(const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; driver_types[i]; i++)
                if (streq(driver_types[i]->name, name))
                        return driver_types[i];
        return NULL;
}
