/* Console of a DUT: a pty for terminal programs, a ring for serial.log and its readers */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>
#include <termios.h>

typedef struct SerialPort SerialPort;

/* Bytes typed on the terminal. */
typedef void (*SerialInputFunc)(const void *data, size_t n, void *userdata);

int serial_port_new(sd_event *event, const char *dut, size_t log_size, SerialPort **ret);
SerialPort *serial_port_free(SerialPort *p);

void serial_port_set_input(SerialPort *p, SerialInputFunc input, void *userdata);

/* The terminal's line settings changed (speed, stop bits, flow control). */
typedef void (*SerialLineFunc)(const struct termios *t, void *userdata);

/* Puts the speed, stop bits and flow control of initial (if not NULL) on the terminal, then
 * calls line whenever a terminal program changes them. */
int serial_port_watch_line(SerialPort *p, const struct termios *initial, SerialLineFunc line, void *userdata);

/* The pty slave, e.g. "/dev/pts/3". */
const char *serial_port_get_path(const SerialPort *p);

/* Output of the board: into the ring, to the terminal and to the serial.log readers. Never blocks;
 * output that an unread terminal cannot take is dropped there (the ring still has it). */
void serial_port_write(SerialPort *p, const void *data, size_t n);

/* Forgets what the terminal has not read yet (at power on: old output must not look new). */
void serial_port_discard_pending(SerialPort *p);

/* A new serial.log reader: returns the caller's end of a stream socket. */
int serial_port_open_log(SerialPort *p, int *ret_fd, uint64_t *ret_id);
/* Pushes into reader id's socket what it has not had yet, as far as the socket takes it, before
 * returning: a client that finds its socket empty afterwards has seen everything. */
int serial_port_sync_log(SerialPort *p, uint64_t id);

/* Closes every serial.log reader (they see end of file): the lease they were opened under ended. */
void serial_port_close_logs(SerialPort *p);

/* Bytes ever written and the CLOCK_REALTIME usec of the newest (0 = none yet). */
void serial_port_log_stat(const SerialPort *p, uint64_t *ret_bytes, uint64_t *ret_modified_usec);

/* Counters for tests and debugging. */
size_t serial_port_n_readers(const SerialPort *p);
uint64_t serial_port_n_dropped(const SerialPort *p);

static inline void serial_port_freep(SerialPort **p) {
        serial_port_free(*p);
}
