/* Driver interface: one small vtable per device class, and the table of driver types */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"

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

typedef struct PowerDriverOps {
        /* Returns 1 when done at once (done is not called), 0 when pending (done is called later,
         * never from within set()), or a negative errno. The caller never starts a second action
         * before the first is done. */
        int (*set)(void *instance, PowerAction action, PowerDoneFunc done, void *userdata);
        PowerState (*get)(void *instance);
} PowerDriverOps;

typedef struct SerialDriverOps {
        /* Bytes typed on the console. */
        void (*input)(void *instance, const void *data, size_t n);
        /* Size of the serial.log ring; 0 means the default. */
        uint64_t (*log_size)(void *instance);
} SerialDriverOps;

typedef struct StorageDriverOps {
        uint64_t (*size)(void *instance);
        /* Returns a new O_CLOEXEC fd of the storage, O_RDWR or O_RDONLY, or a negative errno. */
        int (*open)(void *instance, bool writable);
} StorageDriverOps;

typedef struct Driver {
        const char *name; /* the config's "type:" */
        /* Creates an instance for one DUT. Logs its own errors. ctx is copied. */
        int (*new)(const DriverConfig *config, const DriverContext *ctx, void **ret);
        void *(*free)(void *instance);
        /* The classes this driver serves; NULL for the others. */
        const PowerDriverOps *power;
        const SerialDriverOps *serial;
        const StorageDriverOps *storage;
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

extern const Driver driver_sim;
extern const Driver driver_file;
