/* DUTs of another exporter: the table of this family */
#include "driver.h"
#include "remote.h"

const Driver *const drivers_remote[] = {
        &driver_remote,
        NULL,
};
