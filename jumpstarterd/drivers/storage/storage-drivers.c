/* Storage drivers: the table of this family */
#include "driver.h"
#include "file-storage.h"

const Driver *const drivers_storage[] = {
        &driver_file,
        &driver_usbsdmux,
        &driver_sdwire,
        &driver_mux_command,
        &driver_mux_gpio,
        NULL,
};
