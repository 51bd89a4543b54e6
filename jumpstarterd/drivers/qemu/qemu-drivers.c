/* QEMU virtual machines as DUTs: the table of this family */
#include "driver.h"

const Driver *const drivers_qemu[] = {
        NULL,
};
