/* A device under test: its drivers per class, power state and storage writers */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "driver.h"

typedef struct Dut Dut;

typedef void (*DutPowerChangedFunc)(Dut *d, PowerState state, void *userdata);
/* A power action finished: r is 0 or a negative errno (-ECANCELED when the DUT went away). */
typedef void (*DutPowerDoneFunc)(Dut *d, int r, void *userdata);

/* Starts the drivers of config (which must outlive the DUT). Logs its errors. Storage behind a mux
 * is switched to the DUT side in the background; a failure of that switch is logged, not returned. */
int dut_new(sd_event *event, const DutConfig *config, DutPowerChangedFunc power_changed, void *userdata,
            Dut **ret);
Dut *dut_free(Dut *d);

const char *dut_get_name(const Dut *d);
const DutConfig *dut_get_config(const Dut *d);
/* Bitmask of DRIVER_CLASS_MASK() of the classes this DUT has. */
unsigned dut_get_classes(const Dut *d);

/* -EOPNOTSUPP without a power driver. */
int dut_get_power(Dut *d, PowerState *ret);

/* A power reading: r is 0 and watts the draw, or a negative errno (-ECANCELED when the DUT went away). */
typedef void (*DutPowerReadingFunc)(Dut *d, int r, double watts, void *userdata);
/* Whether the power driver measures the draw (power.reading exists). */
bool dut_has_power_reading(const Dut *d);
/* Returns 0 and calls done later, or a negative errno: -EOPNOTSUPP without readings. */
int dut_get_power_reading(Dut *d, DutPowerReadingFunc done, void *userdata);
/* Actions run one at a time in the order asked. Returns 1 when done at once (done is not called),
 * 0 when done will be called later, or a negative errno: -EOPNOTSUPP without a power driver,
 * -EBUSY when the action would power on while storage is open for writing. */
int dut_set_power(Dut *d, PowerAction action, DutPowerDoneFunc done, void *userdata);

/* Powers off for good, after the actions already queued; later ones that would power on fail
 * with -ECANCELED. Returns as dut_set_power(). */
int dut_stop(Dut *d, DutPowerDoneFunc done, void *userdata);

/* Console output of the board, as the terminal gets it. */
typedef void (*DutSerialOutputFunc)(Dut *d, const void *data, size_t n, void *userdata);
/* Another party that follows the DUT (a data stream): console output and power changes go to it
 * too (either function may be NULL) until dut_remove_listener() with the same userdata. The
 * functions may remove listeners, their own included. */
int dut_add_listener(Dut *d, DutSerialOutputFunc serial_output, DutPowerChangedFunc power_changed, void *userdata);
void dut_remove_listener(Dut *d, void *userdata);
/* Keystrokes for the console, as if typed on the DUT's terminal. -EOPNOTSUPP without a serial
 * driver. */
int dut_write_serial(Dut *d, const void *data, size_t n);
/* Gives a driver that reaches its device with a stream token (type remote) a new token for its
 * next connections. -EOPNOTSUPP if the DUT has no such driver. */
int dut_set_stream_token(Dut *d, const char *token);

/* NULL without a serial driver. */
const char *dut_get_serial_path(const Dut *d);
int dut_open_serial_log(Dut *d, int *ret_fd, uint64_t *ret_id);
int dut_sync_serial_log(Dut *d, uint64_t id);
/* Closes every serial.log reader of the DUT (end of file for them); no-op without serial. */
void dut_close_serial_logs(Dut *d);
int dut_serial_log_stat(Dut *d, uint64_t *ret_bytes, uint64_t *ret_modified_usec);

/* 0 without a storage driver. */
uint64_t dut_get_storage_size(const Dut *d);
/* A writable open counts as a writer until dut_release_storage_writer(); -EBUSY while the DUT is
 * powered or a power action is under way. */
int dut_open_storage(Dut *d, bool writable, int *ret_fd, uint64_t *ret_size);
void dut_release_storage_writer(Dut *d);
unsigned dut_n_storage_writers(const Dut *d);

/* An open finished: r is 0 and fd (the caller's to close) and size are set, or r is a negative
 * errno (-ECANCELED when the DUT went away). */
typedef void (*DutStorageOpenFunc)(Dut *d, int r, int fd, uint64_t size, void *userdata);
/* Opens the storage for a session that lasts until dut_close_storage_session(). Storage behind a
 * mux is switched to the host before the first session opens and back to the DUT after the last
 * one closes. Returns 1 with *ret_fd and *ret_size set when done at once; 0 when done is called
 * later (never from within); -EBUSY while the DUT is powered or a power action is under way, for
 * writable opens, and for any open of storage behind a mux; another negative errno on failure. */
int dut_open_storage_session(Dut *d, bool writable, DutStorageOpenFunc done, void *userdata,
                             int *ret_fd, uint64_t *ret_size);
/* Forgets an open that has not called done yet (matched by userdata): done is not called. */
void dut_cancel_storage_open(Dut *d, void *userdata);
void dut_close_storage_session(Dut *d, bool writable);
unsigned dut_n_storage_sessions(const Dut *d);

/* The "gpio:" lines, in config order. get/set return -ENOENT for a name the DUT does not have;
 * set logs the driver's failure. */
size_t dut_n_gpio_lines(const Dut *d);
const char *dut_gpio_line_name(const Dut *d, size_t i);
int dut_get_gpio(Dut *d, const char *line, bool *ret);
int dut_set_gpio(Dut *d, const char *line, bool value);

static inline void dut_freep(Dut **d) {
        dut_free(*d);
}
