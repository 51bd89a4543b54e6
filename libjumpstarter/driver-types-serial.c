/* Driver types of the serial console family, with their options */
#include <stddef.h>

#include "config.h"

/* The line settings that every serial driver takes. Enumerations (parity, flow, stop bits, data
 * bits) are checked by the driver when the daemon starts, before it reports ready. */
#define SERIAL_LINE_OPTIONS                                                                        \
        { "baudrate", OPTION_UINT, false, "line speed in bit/s (default 115200)" },                \
        { "databits", OPTION_UINT, false, "data bits: 5, 6, 7 or 8 (default 8)" },                 \
        { "parity", OPTION_STRING, false, "none, even or odd (default none)" },                    \
        { "stopbits", OPTION_UINT, false, "stop bits: 1 or 2 (default 1)" },                       \
        { "flow", OPTION_STRING, false, "flow control: none, rts-cts or xon-xoff (default none)" }, \
        { "log_size", OPTION_SIZE, false, "size of the serial.log ring (default 1MiB)" }

static const OptionSpec tty_options[] = {
        { "path", OPTION_PATH, true, "the terminal device, e.g. /dev/ttyUSB0 or a pty link" },
        SERIAL_LINE_OPTIONS,
        {}
};

static const DriverType driver_type_tty = {
        .name = "tty",
        .classes = 1U << DRIVER_CLASS_SERIAL,
        .options = tty_options,
        .help = "a serial console on any terminal device, configured with termios",
};

static const OptionSpec serialport_options[] = {
        { "path", OPTION_PATH, false, "the port's device, e.g. /dev/ttyUSB0" },
        { "usb_serial", OPTION_STRING, false, "the USB serial number of the adapter" },
        { "usb_vid_pid", OPTION_STRING, false, "USB vendor and product id of the adapter, e.g. 0403:6001" },
        SERIAL_LINE_OPTIONS,
        {}
};

static const DriverType driver_type_serialport = {
        .name = "serialport",
        .classes = 1U << DRIVER_CLASS_SERIAL,
        .options = serialport_options,
        .help = "a serial console on a USB or UART port found with libserialport",
};

static const OptionSpec ser2net_options[] = {
        { "host", OPTION_STRING, true, "host name or address of the ser2net server" },
        { "port", OPTION_UINT, true, "TCP port of the ser2net connection" },
        { "protocol", OPTION_STRING, false, "raw, telnet or rfc2217 (default raw)" },
        SERIAL_LINE_OPTIONS,
        {}
};

static const DriverType driver_type_ser2net = {
        .name = "ser2net",
        .classes = 1U << DRIVER_CLASS_SERIAL,
        .options = ser2net_options,
        .help = "a serial console served over TCP by ser2net (raw, telnet or RFC 2217)",
};

const DriverType *const driver_types_serial[] = {
        &driver_type_tty,
        &driver_type_serialport,
        &driver_type_ser2net,
        NULL,
};
