/* Driver types of the power switch family, with their options */
#include <stddef.h>

#include "config.h"

const DriverType *const driver_types_power[] = {
        NULL,
};
