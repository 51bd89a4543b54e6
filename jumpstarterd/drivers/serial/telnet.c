/* Telnet for ser2net: IAC escaping, minimal option negotiation, RFC 2217 COM-PORT-OPTION */
#include <string.h>

#include "telnet.h"

static bool bit_get(const uint8_t *set, uint8_t o) {
        return set[o / 8] & (1U << (o % 8));
}

static void bit_set(uint8_t *set, uint8_t o, bool b) {
        if (b)
                set[o / 8] |= (uint8_t) (1U << (o % 8));
        else
                set[o / 8] &= (uint8_t) ~(1U << (o % 8));
}

void telnet_init(Telnet *t, bool com_port) {
        *t = (Telnet) { .com_port = com_port };
}

static size_t put_cmd(uint8_t *out, uint8_t cmd, uint8_t option) {
        out[0] = TELNET_IAC;
        out[1] = cmd;
        out[2] = option;
        return 3;
}

size_t telnet_start(Telnet *t, uint8_t *out) {
        size_t n = 0;

        n += put_cmd(out + n, TELNET_WILL, TELNET_OPT_BINARY);
        n += put_cmd(out + n, TELNET_DO, TELNET_OPT_BINARY);
        n += put_cmd(out + n, TELNET_WILL, TELNET_OPT_SGA);
        n += put_cmd(out + n, TELNET_DO, TELNET_OPT_SGA);
        bit_set(t->will, TELNET_OPT_BINARY, true);
        bit_set(t->do_, TELNET_OPT_BINARY, true);
        bit_set(t->will, TELNET_OPT_SGA, true);
        bit_set(t->do_, TELNET_OPT_SGA, true);
        if (t->com_port) {
                n += put_cmd(out + n, TELNET_WILL, TELNET_OPT_COM_PORT);
                bit_set(t->will, TELNET_OPT_COM_PORT, true);
        }
        return n;
}

static bool we_may(const Telnet *t, uint8_t o) {
        return o == TELNET_OPT_BINARY || o == TELNET_OPT_SGA || (t->com_port && o == TELNET_OPT_COM_PORT);
}

static bool peer_may(uint8_t o) {
        /* The server echoing is its business (ser2net does not); binary and SGA we want. */
        return o == TELNET_OPT_BINARY || o == TELNET_OPT_SGA || o == TELNET_OPT_ECHO;
}

/* Answers only a change of state, so that two sides never loop (RFC 1143's rule in short). */
static size_t negotiate(Telnet *t, uint8_t cmd, uint8_t o, uint8_t *reply) {
        switch (cmd) {
        case TELNET_DO:
                if (bit_get(t->will, o))
                        return 0;
                if (!we_may(t, o))
                        return put_cmd(reply, TELNET_WONT, o);
                bit_set(t->will, o, true);
                return put_cmd(reply, TELNET_WILL, o);
        case TELNET_DONT:
                if (!bit_get(t->will, o))
                        return 0;
                bit_set(t->will, o, false);
                return put_cmd(reply, TELNET_WONT, o);
        case TELNET_WILL:
                if (bit_get(t->do_, o))
                        return 0;
                if (!peer_may(o))
                        return put_cmd(reply, TELNET_DONT, o);
                bit_set(t->do_, o, true);
                return put_cmd(reply, TELNET_DO, o);
        case TELNET_WONT:
                if (!bit_get(t->do_, o))
                        return 0;
                bit_set(t->do_, o, false);
                return put_cmd(reply, TELNET_DONT, o);
        }
        return 0;
}

size_t telnet_receive(Telnet *t, uint8_t *buf, size_t n, uint8_t *reply, size_t *ret_reply_len) {
        size_t out = 0, r = 0;

        for (size_t i = 0; i < n; i++) {
                uint8_t c = buf[i];

                switch (t->state) {
                case TELNET_STATE_DATA:
                        if (c == TELNET_IAC)
                                t->state = TELNET_STATE_IAC;
                        else
                                buf[out++] = c;
                        break;
                case TELNET_STATE_IAC:
                        if (c == TELNET_IAC) {
                                buf[out++] = c;
                                t->state = TELNET_STATE_DATA;
                        } else if (c >= TELNET_WILL) {
                                t->command = c;
                                t->state = TELNET_STATE_OPTION;
                        } else if (c == TELNET_SB) {
                                t->sb_len = 0;
                                t->state = TELNET_STATE_SB;
                        } else
                                /* NOP, GA, BRK, ...: nothing for a console to do. */
                                t->state = TELNET_STATE_DATA;
                        break;
                case TELNET_STATE_OPTION:
                        /* Each answer (3 bytes) replaces 3 received bytes, of which two may have come in the
                         * previous chunk: reply holds n + 2. */
                        r += negotiate(t, t->command, c, reply + r);
                        t->state = TELNET_STATE_DATA;
                        break;
                case TELNET_STATE_SB:
                        /* Subnegotiations (RFC 2217's acknowledgements, modem and line state
                         * notifications) carry nothing the console needs. */
                        if (c == TELNET_IAC)
                                t->state = TELNET_STATE_SB_IAC;
                        else if (t->sb_len++ == 0)
                                t->sb_option = c;
                        break;
                case TELNET_STATE_SB_IAC:
                        if (c == TELNET_SE)
                                t->state = TELNET_STATE_DATA;
                        else {
                                /* IAC IAC is a 255 inside; anything else ends it badly: resync. */
                                t->state = c == TELNET_IAC ? TELNET_STATE_SB : TELNET_STATE_DATA;
                                t->sb_len++;
                        }
                        break;
                }
        }
        *ret_reply_len = r;
        return out;
}

size_t telnet_escape(const uint8_t *in, size_t n, uint8_t *out) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                out[k++] = in[i];
                if (in[i] == TELNET_IAC)
                        out[k++] = TELNET_IAC;
        }
        return k;
}

/* IAC SB COM-PORT-OPTION cmd value... IAC SE, with IAC doubled inside. */
static size_t put_sb(uint8_t *out, uint8_t cmd, const uint8_t *value, size_t n) {
        size_t k = 0;

        out[k++] = TELNET_IAC;
        out[k++] = TELNET_SB;
        out[k++] = TELNET_OPT_COM_PORT;
        out[k++] = cmd;
        k += telnet_escape(value, n, out + k);
        out[k++] = TELNET_IAC;
        out[k++] = TELNET_SE;
        return k;
}

size_t telnet_com_port_line(const SerialLine *l, uint8_t *out) {
        uint8_t baud[4] = {
                (uint8_t) (l->baudrate >> 24), (uint8_t) (l->baudrate >> 16),
                (uint8_t) (l->baudrate >> 8), (uint8_t) l->baudrate,
        };
        uint8_t size = (uint8_t) l->databits;
        /* RFC 2217 values: parity 1 none, 2 odd, 3 even; stop size 1 one, 2 two; control 1 none,
         * 2 XON/XOFF, 3 hardware. */
        uint8_t parity = l->parity == SERIAL_PARITY_ODD ? 2 : l->parity == SERIAL_PARITY_EVEN ? 3 : 1;
        uint8_t stop = l->stopbits == 2 ? 2 : 1;
        uint8_t control = l->flow == SERIAL_FLOW_XON_XOFF ? 2 : l->flow == SERIAL_FLOW_RTS_CTS ? 3 : 1;
        size_t k = 0;

        k += put_sb(out + k, COM_PORT_SET_BAUDRATE, baud, sizeof baud);
        k += put_sb(out + k, COM_PORT_SET_DATASIZE, &size, 1);
        k += put_sb(out + k, COM_PORT_SET_PARITY, &parity, 1);
        k += put_sb(out + k, COM_PORT_SET_STOPSIZE, &stop, 1);
        k += put_sb(out + k, COM_PORT_SET_CONTROL, &control, 1);
        return k;
}
