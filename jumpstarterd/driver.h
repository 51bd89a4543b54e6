/* Driver interface: one small vtable per device class, and the table of driver types */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"

struct termios;

typedef enum PowerState {
        POWER_OFF,
        POWER_ON,
        POWER_UNKNOWN,
        _POWER_STATE_MAX,
        _POWER_STATE_INVALID = -EINVAL,
} PowerState;

typedef enum PowerAction {
        POWER_ACTION_ON,
        POWER_ACTION_OFF,
        POWER_ACTION_CYCLE,
        _POWER_ACTION_MAX,
        _POWER_ACTION_INVALID = -EINVAL,
} PowerAction;

const char *power_state_to_string(PowerState s);
const char *power_action_to_string(PowerAction a);
PowerAction power_action_from_string(const char *s);

/* What a driver may call back into: the DUT it belongs to. The callbacks may be NULL. */
typedef struct DriverContext {
        sd_event *event;
        const char *dut_name;
        /* Console output of the board, as a UART would send it. */
        void (*serial_output)(void *userdata, const void *data, size_t n);
        /* The power state changed (also the intermediate "off" of a cycle). */
        void (*power_changed)(void *userdata, PowerState state);
        void *userdata;
} DriverContext;

/* Called once when an action that set() left pending is finished. */
typedef void (*PowerDoneFunc)(int r, void *userdata);
/* A power reading: r is 0 and watts the draw, or r is a negative errno. */
typedef void (*PowerReadingFunc)(int r, double watts, void *userdata);

typedef struct PowerDriverOps {
        /* Returns 1 when done at once (done is not called), 0 when pending (done is called later,
         * never from within set()), or a negative errno. The caller never starts a second action
         * before the first is done. */
        int (*set)(void *instance, PowerAction action, PowerDoneFunc done, void *userdata);
        PowerState (*get)(void *instance);
        /* Optional: whether this instance measures the power draw (its config may say no). */
        bool (*can_read)(void *instance);
        /* Optional: measures the power draw. Returns 0 and calls done later (never from within
         * read()), or a negative errno. May run while an action is pending. */
        int (*read)(void *instance, PowerReadingFunc done, void *userdata);
} PowerDriverOps;

typedef struct SerialDriverOps {
        /* Bytes typed on the console. */
        void (*input)(void *instance, const void *data, size_t n);
        /* Size of the serial.log ring; 0 means the default. */
        uint64_t (*log_size)(void *instance);
        /* Optional: the line settings the port starts with, so that the DUT's terminal shows them
         * (stty -F /jmp/dut1/serial). */
        void (*get_line)(void *instance, struct termios *ret);
        /* Optional: a terminal program changed the line settings of the DUT's terminal (its
         * tcsetattr: speed, stop bits, flow control; a pty keeps no data bits or parity), and the
         * real port should follow. Returns 0 or a negative errno; the driver logs. */
        int (*set_line)(void *instance, const struct termios *t);
} SerialDriverOps;

/* Called once when a mux switch that attach()/detach() left pending is finished. */
typedef void (*StorageDoneFunc)(int r, void *userdata);
/* Called once when an open_async() finished: r is 0 with fd (the caller's to close) and the storage
 * size, or a negative errno (fd is -EBADF then). */
typedef void (*StorageOpenFunc)(int r, int fd, uint64_t size, void *userdata);

typedef struct StorageDriverOps {
        uint64_t (*size)(void *instance);
        /* Returns a new O_CLOEXEC fd of the storage, O_RDWR or O_RDONLY, or a negative errno.
         * With a mux, only between a finished attach() and the next detach(). */
        int (*open)(void *instance, bool writable);
        /* Optional, for storage behind a mux (NULL: the host always has it). attach() hands the
         * card to the host before the first open, detach() back to the DUT after the last close.
         * Return 1 when done at once (done is not called), 0 when pending (done is called later,
         * never from within), or a negative errno. The caller never starts a switch before the
         * previous one is done, and never attaches while the DUT is powered. */
        int (*attach)(void *instance, StorageDoneFunc done, void *userdata);
        int (*detach)(void *instance, StorageDoneFunc done, void *userdata);
        /* Optional, instead of open(), for storage that takes a while to reach (on another host):
         * returns 0 and calls done later (never from within), or a negative errno. Such a driver
         * enforces the storage rules itself (EBUSY while powered: its remote end does); the DUT
         * then applies none of its own. The fd may be a socket that speaks the block protocol of
         * docs/protocol.md ("Data streams", storage) instead of a file. */
        int (*open_async)(void *instance, bool writable, StorageOpenFunc done, void *userdata);
        /* With open_async: forgets a pending open (by userdata); done is not called. */
        void (*cancel_open)(void *instance, void *userdata);
} StorageDriverOps;

/* One GPIO line (a DUT's gpio/<name>). Values are logical: active_low is the driver's business. The
 * calls are register accesses through the GPIO character device and do not wait. */
typedef struct GpioDriverOps {
        /* 0 or 1, or a negative errno. */
        int (*get)(void *instance);
        /* Returns 0 or a negative errno. */
        int (*set)(void *instance, bool value);
} GpioDriverOps;

typedef struct Driver {
        const char *name; /* the config's "type:" */
        /* Creates an instance for one DUT. Logs its own errors. ctx is copied. */
        int (*new)(const DriverConfig *config, const DriverContext *ctx, void **ret);
        void *(*free)(void *instance);
        /* The classes this driver serves; NULL for the others. */
        const PowerDriverOps *power;
        const SerialDriverOps *serial;
        const StorageDriverOps *storage;
        const GpioDriverOps *gpio;
} Driver;

/* The driver table (driver.c). */
const Driver *driver_find(const char *name);

/* The families' tables, NULL-terminated, each defined in jumpstarterd/drivers/<family>/. */
extern const Driver *const drivers_sim[];
extern const Driver *const drivers_serial[];
extern const Driver *const drivers_power[];
extern const Driver *const drivers_gpio[];
extern const Driver *const drivers_storage[];
extern const Driver *const drivers_qemu[];
extern const Driver *const drivers_remote[];

extern const Driver driver_sim;
extern const Driver driver_file;
