/* Power switch drivers: the table of this family */
#include "driver.h"

const Driver *const drivers_power[] = {
        NULL,
};
