/* GPIO line drivers: the table of this family */
#include "driver.h"

const Driver *const drivers_gpio[] = {
        NULL,
};
