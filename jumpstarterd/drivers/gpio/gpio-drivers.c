/* GPIO line drivers: the table of this family */
#include <inttypes.h>
#include <limits.h>

#include "daemon-util.h"
#include "gpio-drivers.h"
#include "gpio-line.h"

const Driver *const drivers_gpio[] = {
        &driver_gpio,
        &driver_gpio_relay,
        NULL,
};

int gpio_line_options_from_config(const DriverConfig *c, const char *dut, GpioLineOptions *o) {
        uint64_t offset = driver_config_get_u64(c, "line", 0);

        if (offset > UINT_MAX)
                return log_dut_prefix(LOG_ERR, ERANGE, dut, "GPIO line offset %" PRIu64 " is out of range", offset);
        *o = (GpioLineOptions) {
                .chip = driver_config_get_string(c, "chip"),
                .offset = (unsigned) offset,
                .active_low = driver_config_get_bool(c, "active_low", false),
                .consumer = driver_config_get_string(c, "consumer"),
                .initial = -1,
        };
        return 0;
}
