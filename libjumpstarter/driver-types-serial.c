/* Driver types of the serial console family, with their options */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

/* The speeds termios has a constant for (B50 ... B4000000 on Linux); serial-line.c maps them.
 * test-serial-line checks that every one here has its constant. */
static const char *const serial_baudrates[] = {
        "50", "75", "110", "134", "150", "200", "300", "600", "1200", "1800", "2400", "4800", "9600", "19200",
        "38400", "57600", "115200", "230400", "460800", "500000", "576000", "921600", "1000000", "1152000",
        "1500000", "2000000", "2500000", "3000000", "3500000", "4000000", NULL,
};
static const char *const serial_stopbits[] = { "1", "2", NULL };
static const char *const serial_parities[] = { "none", "even", "odd", NULL };
static const char *const serial_flows[] = { "none", "rts-cts", "xon-xoff", NULL };
static const char *const ser2net_protocols[] = { "raw", "telnet", "rfc2217", NULL };

/* The line settings that every serial driver takes. The parser checks each value against these
 * specs; the drivers check again when they start. */
#define SERIAL_LINE_OPTIONS                                                                             \
        { "baudrate", OPTION_UINT, false, "line speed in bit/s, a standard termios speed (default 115200)", \
          .values = serial_baudrates },                                                                 \
        { "databits", OPTION_UINT, false, "data bits: 5, 6, 7 or 8 (default 8)", .min = 5, .max = 8 },    \
        { "parity", OPTION_STRING, false, "none, even or odd (default none)", .values = serial_parities }, \
        { "stopbits", OPTION_UINT, false, "stop bits: 1 or 2 (default 1)", .values = serial_stopbits },   \
        { "flow", OPTION_STRING, false, "flow control: none, rts-cts or xon-xoff (default none)",         \
          .values = serial_flows },                                                                     \
        { "log_size", OPTION_SIZE, false, "size of the serial.log ring, at most 1GiB (default 1MiB)",     \
          .min = 1, .max = UINT64_C(1) << 30 }

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

/* "0403:6001": as serialport_parse_vid_pid() reads it. */
static bool vid_pid_is_valid(const char *s) {
        return strlen(s) == 9 && s[4] == ':' && strspn(s, "0123456789abcdefABCDEF") == 4 &&
               strspn(s + 5, "0123456789abcdefABCDEF") == 4;
}

static int serialport_validate(const DriverConfig *c, char **ret_problem, const char **ret_option) {
        bool by_path = driver_config_is_set(c, "path");
        bool by_usb = driver_config_is_set(c, "usb_serial") || driver_config_is_set(c, "usb_vid_pid");

        /* One way to name the port: a path and USB ids could disagree, and then which one wins? */
        if (by_path && by_usb)
                return driver_config_problem(ret_problem, ret_option, "path",
                                             "give either path, or usb_serial and/or usb_vid_pid, not both");
        if (!by_path && !by_usb)
                return driver_config_problem(ret_problem, ret_option, NULL,
                                             "no port: set path, or usb_serial and/or usb_vid_pid");
        if (driver_config_is_set(c, "usb_vid_pid") && !vid_pid_is_valid(driver_config_get_string(c, "usb_vid_pid")))
                return driver_config_problem(ret_problem, ret_option, "usb_vid_pid",
                                             "expected VID:PID in hex such as 0403:6001");
        return 0;
}

static const DriverType driver_type_serialport = {
        .name = "serialport",
        .classes = 1U << DRIVER_CLASS_SERIAL,
        .options = serialport_options,
        .help = "a serial console on a USB or UART port found with libserialport",
        .validate = serialport_validate,
};

static const OptionSpec ser2net_options[] = {
        { "host", OPTION_STRING, true, "host name or address of the ser2net server" },
        { "port", OPTION_UINT, true, "TCP port of the ser2net connection", .min = 1, .max = 65535 },
        { "protocol", OPTION_STRING, false, "raw, telnet or rfc2217 (default raw)", .values = ser2net_protocols },
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
