/* Tests of serial line settings: speeds, termios both ways, what a pty change may change */
#include <stdlib.h>

#include "macro.h"
#include "serial-line.h"
#include "tests.h"

TEST(speeds) {
        ASSERT_TRUE(serial_baudrate_to_speed(115200) == B115200);
        ASSERT_TRUE(serial_baudrate_to_speed(9600) == B9600);
        ASSERT_TRUE(serial_baudrate_to_speed(4000000) == B4000000);
        ASSERT_TRUE(serial_baudrate_to_speed(12345) == B0);
        ASSERT_TRUE(serial_baudrate_to_speed(0) == B0);
        ASSERT_EQ(serial_speed_to_baudrate(B57600), 57600);
        ASSERT_EQ(serial_speed_to_baudrate(B0), 0);
}

/* The parser lets exactly the speeds through that termios has: a config never names one the driver
 * would refuse, and every one the driver can set can be configured. */
TEST(config_speeds) {
        const DriverType *t = driver_type_find("tty");
        const OptionSpec *baudrate = NULL;
        size_t n_allowed = 0, n_speeds = 0;

        ASSERT_TRUE(t);
        for (const OptionSpec *o = t->options; o->name; o++)
                if (streq(o->name, "baudrate"))
                        baudrate = o;
        ASSERT_TRUE(baudrate && baudrate->values);
        for (const char *const *v = baudrate->values; *v; v++, n_allowed++)
                if (serial_baudrate_to_speed((unsigned) strtoul(*v, NULL, 10)) == B0)
                        ASSERT_FAIL("baudrate %s has no termios speed", *v);
        /* Linux numbers the speeds B50..B38400 1..15 and B57600.. from 010001 on. */
        for (speed_t s = 1; s <= 010017; s = s == 017 ? 010001 : s + 1)
                n_speeds += serial_speed_to_baudrate(s) > 0;
        ASSERT_EQ_U(n_allowed, n_speeds);
}

TEST(enums) {
        ASSERT_EQ(serial_parity_from_string("even"), SERIAL_PARITY_EVEN);
        ASSERT_EQ(serial_parity_from_string("mark"), -EINVAL);
        ASSERT_EQ(serial_parity_from_string(NULL), -EINVAL);
        ASSERT_STREQ(serial_parity_to_string(SERIAL_PARITY_ODD), "odd");
        ASSERT_EQ(serial_flow_from_string("rts-cts"), SERIAL_FLOW_RTS_CTS);
        ASSERT_EQ(serial_flow_from_string("xon-xoff"), SERIAL_FLOW_XON_XOFF);
        ASSERT_EQ(serial_flow_from_string("RTS-CTS"), -EINVAL);
        ASSERT_TRUE(serial_flow_to_string(_SERIAL_FLOW_MAX) == NULL);
}

TEST(to_termios) {
        SerialLine l = { .baudrate = 9600, .databits = 7, .parity = SERIAL_PARITY_ODD, .stopbits = 2,
                         .flow = SERIAL_FLOW_RTS_CTS };
        struct termios t = {};

        t.c_lflag = ECHO | ICANON;
        t.c_iflag = ICRNL | IXON;
        serial_line_to_termios(&l, &t);
        ASSERT_TRUE(cfgetospeed(&t) == B9600);
        ASSERT_TRUE(cfgetispeed(&t) == B9600);
        ASSERT_EQ(t.c_cflag & CSIZE, CS7);
        ASSERT_EQ(t.c_cflag & (PARENB | PARODD), PARENB | PARODD);
        ASSERT_TRUE(t.c_cflag & CSTOPB);
        ASSERT_TRUE(t.c_cflag & CRTSCTS);
        ASSERT_TRUE(t.c_cflag & CLOCAL);
        ASSERT_EQ(t.c_lflag & (ECHO | ICANON), 0);
        ASSERT_EQ(t.c_iflag & (ICRNL | IXON | IXOFF), 0);

        l = SERIAL_LINE_DEFAULT;
        l.parity = SERIAL_PARITY_EVEN;
        l.flow = SERIAL_FLOW_XON_XOFF;
        serial_line_to_termios(&l, &t);
        ASSERT_TRUE(cfgetospeed(&t) == B115200);
        ASSERT_EQ(t.c_cflag & CSIZE, CS8);
        ASSERT_EQ(t.c_cflag & (PARENB | PARODD), PARENB);
        ASSERT_FALSE(t.c_cflag & (CSTOPB | CRTSCTS));
        ASSERT_EQ(t.c_iflag & (IXON | IXOFF), IXON | IXOFF);
}

TEST(from_termios) {
        SerialLine l = { .baudrate = 115200, .databits = 7, .parity = SERIAL_PARITY_EVEN, .stopbits = 1 };
        struct termios t = {};
        char buf[64];

        /* What a pty shows: 8N (it forces that), the user's speed. */
        t.c_cflag = CS8 | CREAD;
        cfsetospeed(&t, B9600);
        cfsetispeed(&t, B9600);
        ASSERT_TRUE(serial_line_update_from_termios(&l, &t));
        ASSERT_EQ(l.baudrate, 9600);
        ASSERT_EQ(l.databits, 7);
        ASSERT_EQ(l.parity, SERIAL_PARITY_EVEN);
        ASSERT_EQ(l.stopbits, 1);
        ASSERT_EQ(l.flow, SERIAL_FLOW_NONE);
        ASSERT_FALSE(serial_line_update_from_termios(&l, &t));

        t.c_cflag |= CSTOPB | CRTSCTS;
        ASSERT_TRUE(serial_line_update_from_termios(&l, &t));
        ASSERT_EQ(l.stopbits, 2);
        ASSERT_EQ(l.flow, SERIAL_FLOW_RTS_CTS);
        serial_line_format(&l, buf, sizeof buf);
        ASSERT_STREQ(buf, "9600 7E2 rts-cts");

        /* B0 is a hangup request, not a speed. */
        t.c_cflag &= ~(tcflag_t) (CSTOPB | CRTSCTS);
        t.c_iflag = IXON | IXOFF;
        cfsetospeed(&t, B0);
        ASSERT_TRUE(serial_line_update_from_termios(&l, &t));
        ASSERT_EQ(l.baudrate, 9600);
        ASSERT_EQ(l.flow, SERIAL_FLOW_XON_XOFF);
        serial_line_format(&l, buf, sizeof buf);
        ASSERT_STREQ(buf, "9600 7E1 xon-xoff");
}

TEST_MAIN()
