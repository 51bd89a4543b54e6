/* Simulated boards: the table of this family */
#include "driver.h"

const Driver *const drivers_sim[] = {
        &driver_sim,
        NULL,
};
