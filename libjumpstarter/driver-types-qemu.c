/* Driver types of the QEMU virtual machine family, with their options */
#include <stddef.h>

#include "config.h"

const DriverType *const driver_types_qemu[] = {
        NULL,
};
