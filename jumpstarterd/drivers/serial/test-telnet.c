/* Tests of the telnet layer: IAC escaping, negotiation answers, subnegotiations, RFC 2217 */
#include "telnet.h"
#include "tests.h"

#define IAC TELNET_IAC

static size_t receive(Telnet *t, const uint8_t *in, size_t n, uint8_t *data, uint8_t *reply, size_t *n_reply) {
        memcpy(data, in, n);
        return telnet_receive(t, data, n, reply, n_reply);
}

TEST(escape) {
        const uint8_t in[] = { 'a', IAC, 'b', IAC, IAC };
        uint8_t out[10];
        size_t n = telnet_escape(in, sizeof in, out);

        ASSERT_EQ(n, 8);
        ASSERT_TRUE(memcmp(out, (const uint8_t[]) { 'a', IAC, IAC, 'b', IAC, IAC, IAC, IAC }, 8) == 0);
}

TEST(data_and_escaped_iac) {
        Telnet t;
        const uint8_t in[] = { 'h', 'i', IAC, IAC, '!', IAC, 241 /* NOP */, '\r', '\n' };
        uint8_t data[sizeof in], reply[sizeof in + 2];
        size_t n_reply, n;

        telnet_init(&t, false);
        n = receive(&t, in, sizeof in, data, reply, &n_reply);
        ASSERT_EQ(n, 6);
        ASSERT_TRUE(memcmp(data, (const uint8_t[]) { 'h', 'i', IAC, '!', '\r', '\n' }, 6) == 0);
        ASSERT_EQ(n_reply, 0);
}

TEST(split_across_chunks) {
        Telnet t;
        uint8_t data[8], reply[8];
        size_t n_reply;

        telnet_init(&t, true);
        /* IAC | DO | COM-PORT: the answer comes with the last byte. */
        ASSERT_EQ(receive(&t, (const uint8_t[]) { 'x', IAC }, 2, data, reply, &n_reply), 1);
        ASSERT_EQ(n_reply, 0);
        ASSERT_EQ(receive(&t, (const uint8_t[]) { TELNET_DO }, 1, data, reply, &n_reply), 0);
        ASSERT_EQ(receive(&t, (const uint8_t[]) { TELNET_OPT_COM_PORT, 'y' }, 2, data, reply, &n_reply), 1);
        ASSERT_EQ(data[0], 'y');
        ASSERT_EQ(n_reply, 3);
        ASSERT_TRUE(memcmp(reply, (const uint8_t[]) { IAC, TELNET_WILL, TELNET_OPT_COM_PORT }, 3) == 0);
        /* Asked again: no answer, no loop. */
        ASSERT_EQ(receive(&t, (const uint8_t[]) { IAC, TELNET_DO, TELNET_OPT_COM_PORT }, 3, data, reply, &n_reply), 0);
        ASSERT_EQ(n_reply, 0);
        /* Escaped IAC split after the first IAC. */
        ASSERT_EQ(receive(&t, (const uint8_t[]) { IAC }, 1, data, reply, &n_reply), 0);
        ASSERT_EQ(receive(&t, (const uint8_t[]) { IAC, 'z' }, 2, data, reply, &n_reply), 2);
        ASSERT_EQ(data[0], IAC);
        ASSERT_EQ(data[1], 'z');
}

TEST(negotiation) {
        Telnet t;
        uint8_t start[32], data[32], reply[34];
        size_t n_reply, n;

        telnet_init(&t, false);
        n = telnet_start(&t, start);
        ASSERT_EQ(n, 12);
        /* ser2net's answers to what we offered: nothing more to say. */
        n = receive(&t, (const uint8_t[]) { IAC, TELNET_DO, TELNET_OPT_BINARY, IAC, TELNET_WILL, TELNET_OPT_SGA },
                    6, data, reply, &n_reply);
        ASSERT_EQ(n, 0);
        ASSERT_EQ(n_reply, 0);
        /* Without RFC 2217 we refuse COM-PORT; an unknown option is refused; ECHO is accepted. */
        n = receive(&t,
                    (const uint8_t[]) { IAC, TELNET_DO, TELNET_OPT_COM_PORT, IAC, TELNET_WILL, 24, IAC, TELNET_WILL,
                                        TELNET_OPT_ECHO, IAC, TELNET_DO, 31 },
                    12, data, reply, &n_reply);
        ASSERT_EQ(n, 0);
        ASSERT_EQ(n_reply, 12);
        ASSERT_TRUE(memcmp(reply,
                           (const uint8_t[]) { IAC, TELNET_WONT, TELNET_OPT_COM_PORT, IAC, TELNET_DONT, 24, IAC, TELNET_DO,
                                               TELNET_OPT_ECHO, IAC, TELNET_WONT, 31 },
                           12) == 0);
        /* The server turns binary off: we acknowledge once. */
        receive(&t, (const uint8_t[]) { IAC, TELNET_DONT, TELNET_OPT_BINARY }, 3, data, reply, &n_reply);
        ASSERT_EQ(n_reply, 3);
        ASSERT_EQ(reply[1], TELNET_WONT);
        receive(&t, (const uint8_t[]) { IAC, TELNET_DONT, TELNET_OPT_BINARY }, 3, data, reply, &n_reply);
        ASSERT_EQ(n_reply, 0);
}

TEST(subnegotiation_skipped) {
        Telnet t;
        /* RFC 2217 acknowledgement of SET-BAUDRATE 9600 (101 = 1 + 100), then data; an escaped IAC inside. */
        const uint8_t in[] = { IAC, TELNET_SB, TELNET_OPT_COM_PORT, 101, 0, 0, 0x25, 0x80, IAC, IAC, IAC, TELNET_SE,
                               'o', 'k' };
        uint8_t data[sizeof in], reply[sizeof in + 2];
        size_t n_reply;

        telnet_init(&t, true);
        ASSERT_EQ(receive(&t, in, sizeof in, data, reply, &n_reply), 2);
        ASSERT_EQ(data[0], 'o');
        ASSERT_EQ(data[1], 'k');
        ASSERT_EQ(n_reply, 0);
}

TEST(com_port_line) {
        SerialLine l = { .baudrate = 9600, .databits = 7, .parity = SERIAL_PARITY_EVEN, .stopbits = 2,
                         .flow = SERIAL_FLOW_RTS_CTS };
        uint8_t out[64];
        size_t n = telnet_com_port_line(&l, out);
        const uint8_t want[] = {
                IAC, TELNET_SB, 44, 1, 0, 0, 0x25, 0x80, IAC, TELNET_SE,
                IAC, TELNET_SB, 44, 2, 7, IAC, TELNET_SE,
                IAC, TELNET_SB, 44, 3, 3, IAC, TELNET_SE,
                IAC, TELNET_SB, 44, 4, 2, IAC, TELNET_SE,
                IAC, TELNET_SB, 44, 5, 3, IAC, TELNET_SE,
        };

        ASSERT_EQ(n, sizeof want);
        ASSERT_TRUE(memcmp(out, want, n) == 0);

        /* A 0xff byte in a value is doubled. */
        l = (SerialLine) { .baudrate = 0x0001c2ff, .databits = 8, .stopbits = 1 };
        n = telnet_com_port_line(&l, out);
        ASSERT_EQ(n, sizeof want + 1);
        ASSERT_TRUE(memcmp(out, (const uint8_t[]) { IAC, TELNET_SB, 44, 1, 0, 1, 0xc2, IAC, IAC, IAC, TELNET_SE }, 11) == 0);
}

TEST_MAIN()
