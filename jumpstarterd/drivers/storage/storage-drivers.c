/* Storage drivers: the table of this family */
#include "driver.h"

const Driver *const drivers_storage[] = {
        &driver_file,
        NULL,
};
