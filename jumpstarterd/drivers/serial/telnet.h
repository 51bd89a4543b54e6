/* Telnet for ser2net: IAC escaping, minimal option negotiation, RFC 2217 COM-PORT-OPTION */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "serial-line.h"

#define TELNET_IAC  255
#define TELNET_DONT 254
#define TELNET_DO   253
#define TELNET_WONT 252
#define TELNET_WILL 251
#define TELNET_SB   250
#define TELNET_SE   240

#define TELNET_OPT_BINARY   0
#define TELNET_OPT_ECHO     1
#define TELNET_OPT_SGA      3
#define TELNET_OPT_COM_PORT 44

/* RFC 2217 client-to-server commands. */
#define COM_PORT_SET_BAUDRATE 1
#define COM_PORT_SET_DATASIZE 2
#define COM_PORT_SET_PARITY   3
#define COM_PORT_SET_STOPSIZE 4
#define COM_PORT_SET_CONTROL  5

typedef enum TelnetState {
        TELNET_STATE_DATA,
        TELNET_STATE_IAC,
        TELNET_STATE_OPTION, /* after WILL/WONT/DO/DONT */
        TELNET_STATE_SB,
        TELNET_STATE_SB_IAC,
} TelnetState;

typedef struct Telnet {
        bool com_port;         /* offer RFC 2217 */
        TelnetState state;
        uint8_t command;       /* the WILL/WONT/DO/DONT awaiting its option */
        uint8_t sb_option;     /* first byte of the subnegotiation */
        size_t sb_len;
        uint8_t will[32];      /* bitsets of options we said WILL / DO to */
        uint8_t do_[32];
} Telnet;

void telnet_init(Telnet *t, bool com_port);

/* What a client says first: binary both ways, SGA, and COM-PORT-OPTION for RFC 2217. Returns
 * the length written to out (at most 18 bytes). */
size_t telnet_start(Telnet *t, uint8_t *out);

/* Decodes received bytes in place: returns how many data bytes are at the start of buf. Answers
 * to the peer's negotiation go to reply (it must hold n + 2 bytes); *ret_reply_len is their length. */
size_t telnet_receive(Telnet *t, uint8_t *buf, size_t n, uint8_t *reply, size_t *ret_reply_len);

/* Doubles IAC bytes; out must hold 2 * n bytes. Returns the length written. */
size_t telnet_escape(const uint8_t *in, size_t n, uint8_t *out);

/* The RFC 2217 commands that put a line's settings on the server's port. Returns the length
 * written to out (at most 64 bytes). */
size_t telnet_com_port_line(const SerialLine *l, uint8_t *out);
