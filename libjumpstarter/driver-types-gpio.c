/* Driver types of the GPIO line family, with their options */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

static const OptionSpec gpio_options[] = {
        { "chip", OPTION_STRING, true,
          "GPIO chip as gpiod_chip_open_lookup() takes it: name (gpiochip0), number (0), path "
          "(/dev/gpiochip0) or label" },
        { "line", OPTION_UINT, true, "line offset on the chip", .max = UINT32_MAX },
        { "active_low", OPTION_BOOL, false, "the line is active when low: 1 drives it low (default false)" },
        { "initial", OPTION_UINT, false,
          "0 or 1: set when jumpstarterd starts (default: the line is left as it is until written)", .max = 1 },
        { "consumer", OPTION_STRING, false, "consumer label the kernel shows for the line (default jumpstarter)" },
        {}
};

static const DriverType driver_type_gpio = {
        .name = "gpio",
        .classes = DRIVER_TYPE_GPIO_LINE,
        .options = gpio_options,
        .help = "one GPIO line through libgpiod, shown as gpio/<name>",
};

static const OptionSpec gpio_relay_options[] = {
        { "chip", OPTION_STRING, true,
          "GPIO chip as gpiod_chip_open_lookup() takes it: name (gpiochip0), number (0), path "
          "(/dev/gpiochip0) or label" },
        { "line", OPTION_UINT, true, "line offset on the chip", .max = UINT32_MAX },
        { "active_low", OPTION_BOOL, false, "the relay closes when the line is low (default false)" },
        { "cycle_delay", OPTION_DURATION, false, "off time of a power cycle (default 1s)" },
        { "consumer", OPTION_STRING, false, "consumer label the kernel shows for the line (default jumpstarter)" },
        {}
};

static const DriverType driver_type_gpio_relay = {
        .name = "gpio-relay",
        .classes = 1U << DRIVER_CLASS_POWER,
        .options = gpio_relay_options,
        .help = "power through a relay on a GPIO line: on = line active",
};

const DriverType *const driver_types_gpio[] = {
        &driver_type_gpio,
        &driver_type_gpio_relay,
        NULL,
};
