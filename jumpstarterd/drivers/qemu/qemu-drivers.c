/* QEMU virtual machines as DUTs: the table of this family */
#include "driver.h"
#include "qemu.h"

const Driver *const drivers_qemu[] = {
        &driver_qemu,
        NULL,
};
