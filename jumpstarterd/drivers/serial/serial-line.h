/* Line settings of a serial port: speed, data bits, parity, stop bits, flow control */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <termios.h>

#include "config.h"

typedef enum SerialParity {
        SERIAL_PARITY_NONE,
        SERIAL_PARITY_EVEN,
        SERIAL_PARITY_ODD,
        _SERIAL_PARITY_MAX,
        _SERIAL_PARITY_INVALID = -EINVAL,
} SerialParity;

typedef enum SerialFlow {
        SERIAL_FLOW_NONE,
        SERIAL_FLOW_RTS_CTS,
        SERIAL_FLOW_XON_XOFF,
        _SERIAL_FLOW_MAX,
        _SERIAL_FLOW_INVALID = -EINVAL,
} SerialFlow;

typedef struct SerialLine {
        unsigned baudrate;
        unsigned databits; /* 5..8 */
        SerialParity parity;
        unsigned stopbits; /* 1 or 2 */
        SerialFlow flow;
} SerialLine;

#define SERIAL_LINE_DEFAULT \
        ((SerialLine) { .baudrate = 115200, .databits = 8, .parity = SERIAL_PARITY_NONE, .stopbits = 1 })

const char *serial_parity_to_string(SerialParity p);
SerialParity serial_parity_from_string(const char *s);
const char *serial_flow_to_string(SerialFlow f);
SerialFlow serial_flow_from_string(const char *s);

/* termios speed constant of a baud rate; B0 when termios has none for it. */
speed_t serial_baudrate_to_speed(unsigned baudrate);
/* The baud rate of a termios speed constant; 0 when unknown. */
unsigned serial_speed_to_baudrate(speed_t speed);

/* The line options of a serial driver's config (baudrate, databits, parity, stopbits, flow), with
 * defaults. Logs an error that names the option and returns -EINVAL on a bad value. */
int serial_line_from_config(const DriverConfig *c, const char *dut, SerialLine *ret);

/* Makes t raw and sets the line settings into it. */
void serial_line_to_termios(const SerialLine *l, struct termios *t);

/* Takes over what a terminal program set on the DUT's terminal: speed, stop bits and flow
 * control. Data bits and parity stay as they are: a pty resets them to 8N, so they say nothing
 * about the user's wishes. Returns true when something changed. */
bool serial_line_update_from_termios(SerialLine *l, const struct termios *t);

/* "115200 8N1 rts-cts" */
void serial_line_format(const SerialLine *l, char *buf, size_t size);
