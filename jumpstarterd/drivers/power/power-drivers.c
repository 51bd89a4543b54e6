/* Power switch drivers: the table of this family */
#include "driver.h"
#include "power-drivers.h"

const Driver *const drivers_power[] = {
        &driver_http,
        &driver_command,
        NULL,
};
