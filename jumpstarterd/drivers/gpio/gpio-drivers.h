/* GPIO line drivers: the drivers of this family */
#pragma once

#include "driver.h"

extern const Driver driver_gpio;
extern const Driver driver_gpio_relay;

/* Reads chip, line, active_low and consumer, which the types of this family share, into o. Logs. */
struct GpioLineOptions;
int gpio_line_options_from_config(const DriverConfig *c, const char *dut, struct GpioLineOptions *o);
