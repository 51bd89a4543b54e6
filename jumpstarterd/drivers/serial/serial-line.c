/* Line settings of a serial port: speed, data bits, parity, stop bits, flow control */
#include <inttypes.h>
#include <stdio.h>

#include "daemon-util.h"
#include "log.h"
#include "macro.h"
#include "serial-line.h"

static const char *const parity_table[_SERIAL_PARITY_MAX] = {
        [SERIAL_PARITY_NONE] = "none",
        [SERIAL_PARITY_EVEN] = "even",
        [SERIAL_PARITY_ODD] = "odd",
};

static const char *const flow_table[_SERIAL_FLOW_MAX] = {
        [SERIAL_FLOW_NONE] = "none",
        [SERIAL_FLOW_RTS_CTS] = "rts-cts",
        [SERIAL_FLOW_XON_XOFF] = "xon-xoff",
};

static const struct {
        unsigned baudrate;
        speed_t speed;
} speed_table[] = {
        { 50, B50 }, { 75, B75 }, { 110, B110 }, { 134, B134 }, { 150, B150 }, { 200, B200 },
        { 300, B300 }, { 600, B600 }, { 1200, B1200 }, { 1800, B1800 }, { 2400, B2400 },
        { 4800, B4800 }, { 9600, B9600 }, { 19200, B19200 }, { 38400, B38400 }, { 57600, B57600 },
        { 115200, B115200 }, { 230400, B230400 }, { 460800, B460800 }, { 500000, B500000 },
        { 576000, B576000 }, { 921600, B921600 }, { 1000000, B1000000 }, { 1152000, B1152000 },
        { 1500000, B1500000 }, { 2000000, B2000000 }, { 2500000, B2500000 }, { 3000000, B3000000 },
        { 3500000, B3500000 }, { 4000000, B4000000 },
};

const char *serial_parity_to_string(SerialParity p) {
        if (p < 0 || p >= _SERIAL_PARITY_MAX)
                return NULL;
        return parity_table[p];
}

SerialParity serial_parity_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(parity_table); i++)
                if (streq(parity_table[i], s))
                        return (SerialParity) i;
        return _SERIAL_PARITY_INVALID;
}

const char *serial_flow_to_string(SerialFlow f) {
        if (f < 0 || f >= _SERIAL_FLOW_MAX)
                return NULL;
        return flow_table[f];
}

SerialFlow serial_flow_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(flow_table); i++)
                if (streq(flow_table[i], s))
                        return (SerialFlow) i;
        return _SERIAL_FLOW_INVALID;
}

speed_t serial_baudrate_to_speed(unsigned baudrate) {
        for (size_t i = 0; i < ELEMENTSOF(speed_table); i++)
                if (speed_table[i].baudrate == baudrate)
                        return speed_table[i].speed;
        return B0;
}

unsigned serial_speed_to_baudrate(speed_t speed) {
        for (size_t i = 0; i < ELEMENTSOF(speed_table); i++)
                if (speed_table[i].speed == speed)
                        return speed_table[i].baudrate;
        return 0;
}

int serial_line_from_config(const DriverConfig *c, const char *dut, SerialLine *ret) {
        SerialLine l = SERIAL_LINE_DEFAULT;
        uint64_t u;
        const char *s;

        u = driver_config_get_u64(c, "baudrate", l.baudrate);
        if (u > UINT32_MAX || serial_baudrate_to_speed((unsigned) u) == B0)
                return log_dut_prefix(LOG_ERR, EINVAL, dut,
                                      "%s: baudrate: %" PRIu64 " is not a speed this port supports "
                                      "(50 ... 4000000 in the standard steps, e.g. 9600, 115200, 921600)",
                                      c->type->name, u);
        l.baudrate = (unsigned) u;

        u = driver_config_get_u64(c, "databits", l.databits);
        if (u < 5 || u > 8)
                return log_dut_prefix(LOG_ERR, EINVAL, dut, "%s: databits: %" PRIu64 " is not 5, 6, 7 or 8",
                                      c->type->name, u);
        l.databits = (unsigned) u;

        u = driver_config_get_u64(c, "stopbits", l.stopbits);
        if (u != 1 && u != 2)
                return log_dut_prefix(LOG_ERR, EINVAL, dut, "%s: stopbits: %" PRIu64 " is not 1 or 2",
                                      c->type->name, u);
        l.stopbits = (unsigned) u;

        s = driver_config_get_string(c, "parity");
        if (s) {
                l.parity = serial_parity_from_string(s);
                if (l.parity < 0)
                        return log_dut_prefix(LOG_ERR, EINVAL, dut,
                                              "%s: parity: \"%s\" is not none, even or odd", c->type->name, s);
        }

        s = driver_config_get_string(c, "flow");
        if (s) {
                l.flow = serial_flow_from_string(s);
                if (l.flow < 0)
                        return log_dut_prefix(LOG_ERR, EINVAL, dut,
                                              "%s: flow: \"%s\" is not none, rts-cts or xon-xoff", c->type->name, s);
        }

        *ret = l;
        return 0;
}

void serial_line_to_termios(const SerialLine *l, struct termios *t) {
        static const tcflag_t sizes[] = { CS5, CS6, CS7, CS8 };
        speed_t speed = serial_baudrate_to_speed(l->baudrate);

        cfmakeraw(t);
        t->c_cflag |= CREAD | CLOCAL;
        t->c_cflag &= ~(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
        t->c_cflag |= sizes[MIN(MAX(l->databits, 5u), 8u) - 5];
        if (l->parity != SERIAL_PARITY_NONE)
                t->c_cflag |= PARENB | (l->parity == SERIAL_PARITY_ODD ? PARODD : 0);
        if (l->stopbits == 2)
                t->c_cflag |= CSTOPB;
        t->c_iflag &= ~(IXON | IXOFF | IXANY);
        if (l->flow == SERIAL_FLOW_RTS_CTS)
                t->c_cflag |= CRTSCTS;
        else if (l->flow == SERIAL_FLOW_XON_XOFF)
                t->c_iflag |= IXON | IXOFF;
        /* Non-blocking reads return what is there. */
        t->c_cc[VMIN] = 1;
        t->c_cc[VTIME] = 0;
        if (speed != B0) {
                (void) cfsetispeed(t, speed);
                (void) cfsetospeed(t, speed);
        }
}

bool serial_line_update_from_termios(SerialLine *l, const struct termios *t) {
        SerialLine n = *l;
        unsigned baudrate = serial_speed_to_baudrate(cfgetospeed(t));

        /* B0 means "hang up" on a real port, not a speed; keep the one we have. */
        if (baudrate > 0)
                n.baudrate = baudrate;
        n.stopbits = (t->c_cflag & CSTOPB) ? 2 : 1;
        if (t->c_cflag & CRTSCTS)
                n.flow = SERIAL_FLOW_RTS_CTS;
        else if (t->c_iflag & IXOFF)
                n.flow = SERIAL_FLOW_XON_XOFF;
        else
                n.flow = SERIAL_FLOW_NONE;

        if (n.baudrate == l->baudrate && n.stopbits == l->stopbits && n.flow == l->flow)
                return false;
        *l = n;
        return true;
}

void serial_line_format(const SerialLine *l, char *buf, size_t size) {
        (void) snprintf(buf, size, "%u %u%c%u%s%s", l->baudrate, l->databits,
                        "NEO"[l->parity < 0 || l->parity >= _SERIAL_PARITY_MAX ? 0 : l->parity], l->stopbits,
                        l->flow != SERIAL_FLOW_NONE ? " " : "",
                        l->flow != SERIAL_FLOW_NONE ? strna(serial_flow_to_string(l->flow)) : "");
}
