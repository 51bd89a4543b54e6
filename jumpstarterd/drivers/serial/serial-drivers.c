/* Serial console drivers: the table of this family */
#include "driver.h"
#include "tty-serial.h"

extern const Driver driver_serialport;
extern const Driver driver_ser2net;

const Driver *const drivers_serial[] = {
        &driver_tty,
        &driver_serialport,
        &driver_ser2net,
        NULL,
};
