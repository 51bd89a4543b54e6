/* Driver types of the serial console family, with their options */
#include <stddef.h>

#include "config.h"

const DriverType *const driver_types_serial[] = {
        NULL,
};
