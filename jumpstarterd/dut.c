/* A device under test: its drivers per class, power state and storage writers */
#include <assert.h>
#include <stdlib.h>

#include "agent-api.h"
#include "daemon-util.h"
#include "dut.h"
#include "log.h"
#include "macro.h"
#include "serial-port.h"

typedef struct DriverInstance {
        const Driver *driver;
        const DriverConfig *config;
        void *instance;
} DriverInstance;

typedef struct PowerRequest PowerRequest;
struct PowerRequest {
        PowerAction action;
        DutPowerDoneFunc done;
        void *userdata;
        PowerRequest *next;
};

struct Dut {
        sd_event *event;
        const DutConfig *config;
        DutPowerChangedFunc power_changed;
        void *userdata;

        DriverInstance *drivers;
        size_t n_drivers;

        const PowerDriverOps *power;
        void *power_instance;
        const SerialDriverOps *serial;
        void *serial_instance;
        const StorageDriverOps *storage;
        void *storage_instance;

        SerialPort *serial_port;

        /* FIFO; the head is with the driver while power_in_flight. */
        PowerRequest *power_queue, *power_queue_tail;
        bool power_in_flight;

        unsigned n_storage_writers;
        bool stopping; /* the daemon is going down: nothing powers on any more */
};

const char *dut_get_name(const Dut *d) {
        return d->config->name;
}

const DutConfig *dut_get_config(const Dut *d) {
        return d->config;
}

unsigned dut_get_classes(const Dut *d) {
        unsigned mask = 0;

        for (DriverClass c = 0; c < _DRIVER_CLASS_MAX; c++)
                if (d->config->classes[c])
                        mask |= DRIVER_CLASS_MASK(c);
        return mask;
}

static void dut_on_serial_output(void *userdata, const void *data, size_t n) {
        Dut *d = userdata;

        if (d->serial_port)
                serial_port_write(d->serial_port, data, n);
}

static void dut_on_serial_input(const void *data, size_t n, void *userdata) {
        Dut *d = userdata;

        if (d->serial && d->serial->input)
                d->serial->input(d->serial_instance, data, n);
}

static void dut_on_power_changed(void *userdata, PowerState state) {
        Dut *d = userdata;

        log_dut_prefix(LOG_INFO, 0, dut_get_name(d), "Powered %s", power_state_to_string(state));

        /* A terminal opened later must not show the console of an earlier power cycle as if it
         * were new; serial.log keeps it all. */
        if (state == POWER_ON && d->serial_port)
                serial_port_discard_pending(d->serial_port);

        if (d->power_changed)
                d->power_changed(d, state, d->userdata);
}

int dut_get_power(Dut *d, PowerState *ret) {
        if (!d->power)
                return -EOPNOTSUPP;
        *ret = d->power->get(d->power_instance);
        return 0;
}

static int dut_power_start(Dut *d, PowerAction action);

static PowerRequest *dut_power_queue_pop(Dut *d) {
        PowerRequest *q = d->power_queue;

        if (q) {
                d->power_queue = q->next;
                if (!d->power_queue)
                        d->power_queue_tail = NULL;
        }
        return q;
}

static void dut_power_queue_push(Dut *d, PowerRequest *q) {
        q->next = NULL;
        if (d->power_queue_tail)
                d->power_queue_tail->next = q;
        else
                d->power_queue = q;
        d->power_queue_tail = q;
}

static void dut_power_run_queue(Dut *d) {
        while (!d->power_in_flight && d->power_queue) {
                PowerRequest *q;
                int r;

                r = dut_power_start(d, d->power_queue->action);
                if (r == 0) {
                        d->power_in_flight = true;
                        return;
                }
                q = dut_power_queue_pop(d);
                q->done(d, r < 0 ? r : 0, q->userdata);
                free(q);
        }
}

static void dut_on_power_done(int r, void *userdata) {
        Dut *d = userdata;
        PowerRequest *q;

        assert(d->power_in_flight);
        d->power_in_flight = false;
        q = dut_power_queue_pop(d);
        assert(q);

        if (r < 0)
                log_dut_prefix(LOG_ERR, r, dut_get_name(d), "Failed to power %s: %m",
                               power_action_to_string(q->action));
        q->done(d, r < 0 ? r : 0, q->userdata);
        free(q);

        dut_power_run_queue(d);
}

static int dut_power_start(Dut *d, PowerAction action) {
        int r;

        if (action == POWER_ACTION_ON || action == POWER_ACTION_CYCLE) {
                if (d->stopping)
                        return -ECANCELED;
                if (d->n_storage_writers > 0)
                        return -EBUSY;
        }

        r = d->power->set(d->power_instance, action, dut_on_power_done, d);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, dut_get_name(d), "Failed to power %s: %m",
                                      power_action_to_string(action));
        return r;
}

int dut_set_power(Dut *d, PowerAction action, DutPowerDoneFunc done, void *userdata) {
        PowerRequest *q;
        int r;

        assert(d);
        assert(done);

        if (!d->power)
                return -EOPNOTSUPP;
        if (action < 0 || action >= _POWER_ACTION_MAX)
                return -EINVAL;

        q = malloc(sizeof *q);
        if (!q)
                return -ENOMEM;
        *q = (PowerRequest) { .action = action, .done = done, .userdata = userdata };

        if (!d->power_in_flight && !d->power_queue) {
                r = dut_power_start(d, action);
                if (r != 0) {
                        free(q);
                        return r;
                }
                d->power_in_flight = true;
        }
        dut_power_queue_push(d, q);
        return 0;
}

int dut_stop(Dut *d, DutPowerDoneFunc done, void *userdata) {
        d->stopping = true;
        return dut_set_power(d, POWER_ACTION_OFF, done, userdata);
}

const char *dut_get_serial_path(const Dut *d) {
        return d->serial_port ? serial_port_get_path(d->serial_port) : NULL;
}

int dut_open_serial_log(Dut *d, int *ret_fd, uint64_t *ret_id) {
        if (!d->serial_port)
                return -EOPNOTSUPP;
        return serial_port_open_log(d->serial_port, ret_fd, ret_id);
}

int dut_sync_serial_log(Dut *d, uint64_t id) {
        if (!d->serial_port)
                return -EOPNOTSUPP;
        return serial_port_sync_log(d->serial_port, id);
}

int dut_serial_log_stat(Dut *d, uint64_t *ret_bytes, uint64_t *ret_modified_usec) {
        if (!d->serial_port)
                return -EOPNOTSUPP;
        serial_port_log_stat(d->serial_port, ret_bytes, ret_modified_usec);
        return 0;
}

uint64_t dut_get_storage_size(const Dut *d) {
        return d->storage ? d->storage->size(d->storage_instance) : 0;
}

int dut_open_storage(Dut *d, bool writable, int *ret_fd, uint64_t *ret_size) {
        int fd;

        if (!d->storage)
                return -EOPNOTSUPP;

        if (writable && d->power &&
            (d->power->get(d->power_instance) != POWER_OFF || d->power_in_flight || d->power_queue))
                return -EBUSY;

        fd = d->storage->open(d->storage_instance, writable);
        if (fd < 0)
                return log_dut_prefix(LOG_ERR, fd, dut_get_name(d), "Failed to open storage: %m");

        if (writable)
                d->n_storage_writers++;
        *ret_fd = fd;
        *ret_size = d->storage->size(d->storage_instance);
        return 0;
}

void dut_release_storage_writer(Dut *d) {
        assert(d->n_storage_writers > 0);
        d->n_storage_writers--;
}

unsigned dut_n_storage_writers(const Dut *d) {
        return d->n_storage_writers;
}

static DriverInstance *dut_find_instance(Dut *d, const DriverConfig *config) {
        for (size_t i = 0; i < d->n_drivers; i++)
                if (d->drivers[i].config == config)
                        return &d->drivers[i];
        return NULL;
}

static int dut_bind_classes(Dut *d) {
        const char *name = dut_get_name(d);

        for (DriverClass c = 0; c < _DRIVER_CLASS_MAX; c++) {
                const DriverConfig *config = d->config->classes[c];
                DriverInstance *di;
                bool ok = false;

                if (!config)
                        continue;
                di = dut_find_instance(d, config);
                if (!di)
                        return log_dut_prefix(LOG_ERR, EINVAL, name, "Class %s names a driver the DUT does not have",
                                              driver_class_to_string(c));

                switch (c) {
                case DRIVER_CLASS_POWER:
                        d->power = di->driver->power;
                        d->power_instance = di->instance;
                        ok = d->power;
                        break;
                case DRIVER_CLASS_SERIAL:
                        d->serial = di->driver->serial;
                        d->serial_instance = di->instance;
                        ok = d->serial;
                        break;
                case DRIVER_CLASS_STORAGE:
                        d->storage = di->driver->storage;
                        d->storage_instance = di->instance;
                        ok = d->storage;
                        break;
                default:
                        break;
                }
                if (!ok)
                        return log_dut_prefix(LOG_ERR, EOPNOTSUPP, name, "Driver %s does not implement class %s",
                                              di->driver->name, strna(driver_class_to_string(c)));
        }
        return 0;
}

int dut_new(sd_event *event, const DutConfig *config, DutPowerChangedFunc power_changed, void *userdata,
            Dut **ret) {
        _cleanup_(dut_freep) Dut *d = NULL;
        int r;

        assert(event);
        assert(config);
        assert(ret);

        d = malloc(sizeof *d);
        if (!d)
                return log_oom();
        *d = (Dut) {
                .event = sd_event_ref(event),
                .config = config,
                .power_changed = power_changed,
                .userdata = userdata,
        };

        d->drivers = calloc(MAX(config->n_drivers, (size_t) 1), sizeof *d->drivers);
        if (!d->drivers)
                return log_oom();

        for (size_t i = 0; i < config->n_drivers; i++) {
                const DriverConfig *dc = config->drivers[i];
                const DriverContext ctx = {
                        .event = event,
                        .dut_name = config->name,
                        .serial_output = dut_on_serial_output,
                        .power_changed = dut_on_power_changed,
                        .userdata = d,
                };
                const Driver *driver = driver_find(dc->type->name);

                if (!driver)
                        return log_dut_prefix(LOG_ERR, EOPNOTSUPP, config->name,
                                              "Driver type %s is not implemented by this jumpstarterd", dc->type->name);

                r = driver->new(dc, &ctx, &d->drivers[i].instance);
                if (r < 0)
                        return r;
                d->drivers[i].driver = driver;
                d->drivers[i].config = dc;
                d->n_drivers++;
        }

        r = dut_bind_classes(d);
        if (r < 0)
                return r;

        if (d->serial) {
                uint64_t size = d->serial->log_size ? d->serial->log_size(d->serial_instance) : 0;

                r = serial_port_new(event, config->name, size > 0 ? (size_t) size : 1024 * 1024, &d->serial_port);
                if (r < 0)
                        return r;
                serial_port_set_input(d->serial_port, dut_on_serial_input, d);
        }

        *ret = TAKE_PTR(d);
        return 0;
}

Dut *dut_free(Dut *d) {
        PowerRequest *q;

        if (!d)
                return NULL;

        /* Drivers first: they stop their timers and call nothing back after this. */
        for (size_t i = 0; i < d->n_drivers; i++)
                d->drivers[i].driver->free(d->drivers[i].instance);
        free(d->drivers);
        d->power = NULL;
        d->power_in_flight = false;

        while ((q = dut_power_queue_pop(d))) {
                q->done(d, -ECANCELED, q->userdata);
                free(q);
        }

        serial_port_free(d->serial_port);
        sd_event_unref(d->event);
        free(d);
        return NULL;
}
