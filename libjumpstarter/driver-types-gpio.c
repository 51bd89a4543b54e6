/* Driver types of the GPIO line family, with their options */
#include <stddef.h>

#include "config.h"

const DriverType *const driver_types_gpio[] = {
        NULL,
};
