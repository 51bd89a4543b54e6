/* A device under test: its drivers per class, power state and storage writers */
#include <assert.h>
#include <stdlib.h>

#include "agent-api.h"
#include "daemon-util.h"
#include "dut.h"
#include "exporter-metrics.h"
#include "log.h"
#include "macro.h"
#include "remote.h"
#include "serial-port.h"

typedef struct DriverInstance {
        const Driver *driver;
        const DriverConfig *config;
        void *instance;
} DriverInstance;

/* An open that waits for the mux to hand the storage to the host, or for a driver's open_async(). */
typedef struct StorageOpen StorageOpen;
struct StorageOpen {
        Dut *dut;
        bool writable;
        DutStorageOpenFunc done;
        void *userdata;
        int r, fd; /* the result, between the switch and the reply */
        uint64_t size;
        StorageOpen *next;
};

typedef struct PowerRequest PowerRequest;
struct PowerRequest {
        PowerAction action;
        DutPowerDoneFunc done;
        void *userdata;
        PowerRequest *next;
};

/* A power reading asked of the driver; kept so that the DUT can cancel it when it goes away. */
typedef struct ReadingRequest ReadingRequest;
struct ReadingRequest {
        Dut *dut;
        DutPowerReadingFunc done;
        void *userdata;
        ReadingRequest *next;
};

/* Someone who follows console output and power changes besides the owner (a data stream). */
typedef struct DutListener {
        DutSerialOutputFunc serial_output;
        DutPowerChangedFunc power_changed;
        void *userdata;
        bool removed;
} DutListener;

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
        ReadingRequest *readings; /* with the driver */

        /* One per "gpio:" line of the config, in its order. */
        DriverInstance *gpio_lines;
        size_t n_gpio_lines;

        unsigned n_storage_writers;
        bool stopping; /* the daemon is going down: nothing powers on any more */

        /* Storage sessions (every open through the agent). Storage behind a mux is attached to
         * the host from the first open to the last close; opens wait while a switch runs, and so
         * does a power on that was asked while the card goes back to the DUT. */
        unsigned n_storage_sessions;
        bool storage_attached, storage_switching, storage_attaching, power_waits_for_storage;
        StorageOpen *storage_waiters;
        /* Opens with the driver's open_async(). */
        StorageOpen *storage_async_opens;

        /* Removed entries stay until no call runs through the array. */
        DutListener *listeners;
        size_t n_listeners;
        unsigned listeners_busy;
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

static void dut_listeners_gc(Dut *d) {
        size_t j = 0;

        if (d->listeners_busy > 0)
                return;
        for (size_t i = 0; i < d->n_listeners; i++)
                if (!d->listeners[i].removed)
                        d->listeners[j++] = d->listeners[i];
        d->n_listeners = j;
}

int dut_add_listener(Dut *d, DutSerialOutputFunc serial_output, DutPowerChangedFunc power_changed, void *userdata) {
        DutListener *l;

        assert(d);
        l = realloc(d->listeners, (d->n_listeners + 1) * sizeof *l);
        if (!l)
                return -ENOMEM;
        d->listeners = l;
        d->listeners[d->n_listeners++] = (DutListener) {
                .serial_output = serial_output,
                .power_changed = power_changed,
                .userdata = userdata,
        };
        return 0;
}

void dut_remove_listener(Dut *d, void *userdata) {
        for (size_t i = 0; i < d->n_listeners; i++)
                if (d->listeners[i].userdata == userdata)
                        d->listeners[i].removed = true;
        dut_listeners_gc(d);
}

static void dut_notify_listeners(Dut *d, const void *data, size_t n, bool power, PowerState state) {
        /* Entries added meanwhile are not called this time; removed ones are skipped. */
        size_t count = d->n_listeners;

        d->listeners_busy++;
        for (size_t i = 0; i < count; i++) {
                DutListener l = d->listeners[i];

                if (l.removed)
                        continue;
                if (power && l.power_changed)
                        l.power_changed(d, state, l.userdata);
                else if (!power && l.serial_output)
                        l.serial_output(d, data, n, l.userdata);
        }
        d->listeners_busy--;
        dut_listeners_gc(d);
}

int dut_write_serial(Dut *d, const void *data, size_t n) {
        if (!d->serial)
                return -EOPNOTSUPP;
        if (d->serial->input && n > 0)
                d->serial->input(d->serial_instance, data, n);
        return 0;
}

int dut_set_stream_token(Dut *d, const char *token) {
        int r = -EOPNOTSUPP;

        for (size_t i = 0; i < d->n_drivers; i++)
                if (d->drivers[i].driver == &driver_remote) {
                        r = remote_set_token(d->drivers[i].instance, token);
                        if (r < 0)
                                return r;
                }
        return r;
}

static void dut_on_serial_output(void *userdata, const void *data, size_t n) {
        Dut *d = userdata;

        if (d->serial_port)
                serial_port_write(d->serial_port, data, n);
        if (d->n_listeners > 0)
                dut_notify_listeners(d, data, n, false, POWER_UNKNOWN);
}

static void dut_on_serial_input(const void *data, size_t n, void *userdata) {
        Dut *d = userdata;

        if (d->serial && d->serial->input)
                d->serial->input(d->serial_instance, data, n);
}

static void dut_on_serial_line(const struct termios *t, void *userdata) {
        Dut *d = userdata;

        /* The driver logs what it could not apply; the terminal keeps working either way. */
        if (d->serial && d->serial->set_line)
                (void) d->serial->set_line(d->serial_instance, t);
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
        if (d->n_listeners > 0)
                dut_notify_listeners(d, NULL, 0, true, state);
}

int dut_get_power(Dut *d, PowerState *ret) {
        if (!d->power)
                return -EOPNOTSUPP;
        *ret = d->power->get(d->power_instance);
        return 0;
}

bool dut_has_power_reading(const Dut *d) {
        return d->power && d->power->read && d->power->can_read && d->power->can_read(d->power_instance);
}

static void dut_on_power_reading(int r, double watts, void *userdata) {
        ReadingRequest *q = userdata, **p;
        Dut *d = q->dut;

        for (p = &d->readings; *p && *p != q; p = &(*p)->next)
                ;
        assert(*p);
        *p = q->next;
        q->done(d, r, watts, q->userdata);
        free(q);
}

int dut_get_power_reading(Dut *d, DutPowerReadingFunc done, void *userdata) {
        ReadingRequest *q;
        int r;

        assert(done);

        if (!dut_has_power_reading(d))
                return -EOPNOTSUPP;

        q = malloc(sizeof *q);
        if (!q)
                return -ENOMEM;
        *q = (ReadingRequest) { .dut = d, .done = done, .userdata = userdata, .next = d->readings };
        r = d->power->read(d->power_instance, dut_on_power_reading, q);
        if (r < 0) {
                free(q);
                return r;
        }
        d->readings = q;
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
        exporter_metrics_count_power(dut_get_name(d), d->config->classes[DRIVER_CLASS_POWER] ?
                                     d->config->classes[DRIVER_CLASS_POWER]->type->name : NULL,
                                     power_action_to_string(q->action), r); /* exporter-metrics.c */
        q->done(d, r < 0 ? r : 0, q->userdata);
        free(q);

        dut_power_run_queue(d);
}

static int dut_power_start(Dut *d, PowerAction action) {
        int r;

        if (action == POWER_ACTION_ON || action == POWER_ACTION_CYCLE) {
                if (d->stopping)
                        return -ECANCELED;
                /* Storage on another host: its exporter refuses, and its error comes back. */
                if (!(d->storage && d->storage->open_async) &&
                    (d->n_storage_writers > 0 || d->storage_waiters ||
                     (d->storage && d->storage->attach && d->n_storage_sessions > 0)))
                        return -EBUSY;
                /* The card is on its way back to the DUT: power on once it is there. */
                if (d->storage_switching) {
                        d->power_waits_for_storage = true;
                        return 0;
                }
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

void dut_close_serial_logs(Dut *d) {
        if (d->serial_port)
                serial_port_close_logs(d->serial_port);
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

        if (!d->storage || !d->storage->open)
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

static bool dut_storage_is_muxed(const Dut *d) {
        return d->storage && d->storage->attach;
}

static bool dut_is_powered_or_switching(Dut *d) {
        return d->power &&
               (d->power->get(d->power_instance) != POWER_OFF || d->power_in_flight || d->power_queue);
}

static int dut_storage_open_now(Dut *d, bool writable, int *ret_fd, uint64_t *ret_size) {
        int fd;

        fd = d->storage->open(d->storage_instance, writable);
        if (fd < 0)
                return log_dut_prefix(LOG_ERR, fd, dut_get_name(d), "Failed to open storage: %m");
        d->n_storage_sessions++;
        if (writable)
                d->n_storage_writers++;
        *ret_fd = fd;
        *ret_size = d->storage->size(d->storage_instance);
        return 0;
}

static void dut_on_storage_switched(int r, void *userdata);

static void dut_storage_start_switch(Dut *d, bool to_host) {
        int r;

        d->storage_attached = false;
        r = to_host ? d->storage->attach(d->storage_instance, dut_on_storage_switched, d)
                    : d->storage->detach(d->storage_instance, dut_on_storage_switched, d);
        if (r == 0) {
                d->storage_switching = true;
                d->storage_attaching = to_host;
                return;
        }
        /* Done at once, or failed to start: the same as a switch that finished. */
        d->storage_attaching = to_host;
        dut_on_storage_switched(r < 0 ? r : 0, d);
}

/* A switch finished: hand the card to the waiting opens, or back to the DUT when none is left,
 * or let a power on that waited go ahead. */
static void dut_on_storage_switched(int r, void *userdata) {
        Dut *d = userdata;
        StorageOpen *waiters = NULL, *w;
        const char *name = dut_get_name(d);

        d->storage_switching = false;

        if (d->storage_attaching) {
                d->storage_attaching = false;
                waiters = TAKE_PTR(d->storage_waiters);
                if (r < 0)
                        log_dut_prefix(LOG_ERR, r, name, "Failed to switch the storage to the host: %m");
                else
                        d->storage_attached = true;

                /* Every fd first, then the replies: a reply that fails closes its session, and
                 * the card must not go back to the DUT while later ones still get theirs. */
                for (w = waiters; w; w = w->next) {
                        if (r >= 0)
                                w->r = dut_storage_open_now(d, w->writable, &w->fd, &w->size);
                        else
                                w->r = r;
                }
                while ((w = waiters)) {
                        waiters = w->next;
                        w->done(d, w->r, w->r < 0 ? -EBADF : w->fd, w->size, w->userdata);
                        free(w);
                }
                if (d->storage_attached && d->n_storage_sessions == 0 && !d->storage_switching)
                        dut_storage_start_switch(d, false);
                return;
        }

        if (r < 0)
                log_dut_prefix(LOG_ERR, r, name, "Failed to switch the storage back to the DUT: %m");

        if (d->storage_waiters)
                return dut_storage_start_switch(d, true);

        if (d->power_waits_for_storage) {
                d->power_waits_for_storage = false;
                r = d->power->set(d->power_instance, d->power_queue->action, dut_on_power_done, d);
                if (r != 0)
                        dut_on_power_done(r < 0 ? r : 0, d);
        }
}

static void dut_on_storage_async_opened(int r, int fd, uint64_t size, void *userdata) {
        StorageOpen *w = userdata;
        Dut *d = w->dut;

        for (StorageOpen **link = &d->storage_async_opens; *link; link = &(*link)->next)
                if (*link == w) {
                        *link = w->next;
                        break;
                }
        if (r >= 0) {
                d->n_storage_sessions++;
                if (w->writable)
                        d->n_storage_writers++;
        } else
                log_dut_prefix(LOG_ERR, r, dut_get_name(d), "Failed to open storage: %m");
        w->done(d, r, r < 0 ? -EBADF : fd, size, w->userdata);
        free(w);
}

/* The driver reaches the storage in the background (on another host, whose rules apply there). */
static int dut_open_storage_async(Dut *d, bool writable, DutStorageOpenFunc done, void *userdata) {
        StorageOpen *w;
        int r;

        w = malloc(sizeof *w);
        if (!w)
                return -ENOMEM;
        *w = (StorageOpen) { .dut = d, .writable = writable, .done = done, .userdata = userdata, .fd = -EBADF };
        r = d->storage->open_async(d->storage_instance, writable, dut_on_storage_async_opened, w);
        if (r < 0) {
                free(w);
                return r;
        }
        w->next = d->storage_async_opens;
        d->storage_async_opens = w;
        return 0;
}

int dut_open_storage_session(Dut *d, bool writable, DutStorageOpenFunc done, void *userdata,
                             int *ret_fd, uint64_t *ret_size) {
        StorageOpen *w, **tail;
        int r;

        assert(d);
        assert(done);

        if (!d->storage)
                return -EOPNOTSUPP;
        if (d->storage->open_async)
                return dut_open_storage_async(d, writable, done, userdata);
        /* Reading storage that stays with the host while the DUT runs is harmless; a card behind
         * a mux is with the DUT then. */
        if ((writable || dut_storage_is_muxed(d)) && dut_is_powered_or_switching(d))
                return -EBUSY;

        if (!dut_storage_is_muxed(d) || (d->storage_attached && !d->storage_switching)) {
                r = dut_storage_open_now(d, writable, ret_fd, ret_size);
                return r < 0 ? r : 1;
        }

        w = malloc(sizeof *w);
        if (!w)
                return -ENOMEM;
        *w = (StorageOpen) { .writable = writable, .done = done, .userdata = userdata, .fd = -EBADF };
        for (tail = &d->storage_waiters; *tail; tail = &(*tail)->next)
                ;
        *tail = w;

        /* Otherwise the running switch starts the next one when it is done. */
        if (!d->storage_switching)
                dut_storage_start_switch(d, true);
        return 0;
}

void dut_cancel_storage_open(Dut *d, void *userdata) {
        for (StorageOpen **link = &d->storage_async_opens; *link; link = &(*link)->next)
                if ((*link)->userdata == userdata) {
                        StorageOpen *w = *link;

                        *link = w->next;
                        if (d->storage->cancel_open)
                                d->storage->cancel_open(d->storage_instance, w);
                        free(w);
                        return;
                }
        for (StorageOpen **link = &d->storage_waiters; *link; link = &(*link)->next)
                if ((*link)->userdata == userdata) {
                        StorageOpen *w = *link;

                        *link = w->next;
                        free(w);
                        return;
                }
}

void dut_close_storage_session(Dut *d, bool writable) {
        assert(d->n_storage_sessions > 0);
        d->n_storage_sessions--;
        if (writable) {
                assert(d->n_storage_writers > 0);
                d->n_storage_writers--;
        }
        if (dut_storage_is_muxed(d) && d->n_storage_sessions == 0 && d->storage_attached && !d->storage_switching)
                dut_storage_start_switch(d, false);
}

unsigned dut_n_storage_sessions(const Dut *d) {
        return d->n_storage_sessions;
}

size_t dut_n_gpio_lines(const Dut *d) {
        return d->n_gpio_lines;
}

const char *dut_gpio_line_name(const Dut *d, size_t i) {
        return i < d->n_gpio_lines ? d->config->gpio_lines[i].name : NULL;
}

static DriverInstance *dut_find_gpio_line(Dut *d, const char *line) {
        for (size_t i = 0; i < d->n_gpio_lines; i++)
                if (streq(d->config->gpio_lines[i].name, line))
                        return &d->gpio_lines[i];
        return NULL;
}

int dut_get_gpio(Dut *d, const char *line, bool *ret) {
        DriverInstance *di = dut_find_gpio_line(d, line);
        int r;

        if (!di)
                return -ENOENT;
        r = di->driver->gpio->get(di->instance);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, dut_get_name(d), "Failed to read GPIO line %s: %m", line);
        *ret = r > 0;
        return 0;
}

int dut_set_gpio(Dut *d, const char *line, bool value) {
        DriverInstance *di = dut_find_gpio_line(d, line);
        int r;

        if (!di)
                return -ENOENT;
        r = di->driver->gpio->set(di->instance, value);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, dut_get_name(d), "Failed to set GPIO line %s to %d: %m", line,
                                      value);
        log_dut_prefix(LOG_INFO, 0, dut_get_name(d), "GPIO line %s set to %d", line, value);
        return 0;
}

/* The "gpio:" lines: each its own driver instance, with the same context as the DUT's drivers. */
static int dut_start_gpio_lines(Dut *d, const DriverContext *ctx) {
        const DutConfig *config = d->config;
        int r;

        if (config->n_gpio_lines == 0)
                return 0;
        d->gpio_lines = calloc(config->n_gpio_lines, sizeof *d->gpio_lines);
        if (!d->gpio_lines)
                return log_oom();

        for (size_t i = 0; i < config->n_gpio_lines; i++) {
                const GpioLineConfig *gl = &config->gpio_lines[i];
                const Driver *driver = driver_find(gl->driver->type->name);

                if (!driver || !driver->gpio)
                        return log_dut_prefix(LOG_ERR, EOPNOTSUPP, config->name,
                                              "GPIO line %s: driver type %s is not implemented by this jumpstarterd",
                                              gl->name, gl->driver->type->name);
                r = driver->new(gl->driver, ctx, &d->gpio_lines[i].instance);
                if (r < 0)
                        return log_dut_prefix(LOG_ERR, r, config->name, "Failed to start GPIO line %s: %m", gl->name);
                d->gpio_lines[i].driver = driver;
                d->gpio_lines[i].config = gl->driver;
                d->n_gpio_lines++;
        }
        return 0;
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

        r = dut_start_gpio_lines(d, &(const DriverContext) {
                .event = event,
                .dut_name = config->name,
                .userdata = d,
        });
        if (r < 0)
                return r;

        if (d->serial) {
                uint64_t size = d->serial->log_size ? d->serial->log_size(d->serial_instance) : 0;

                r = serial_port_new(event, config->name, size > 0 ? (size_t) size : 1024 * 1024, &d->serial_port);
                if (r < 0)
                        return r;
                serial_port_set_input(d->serial_port, dut_on_serial_input, d);

                if (d->serial->set_line) {
                        struct termios t = {};

                        if (d->serial->get_line)
                                d->serial->get_line(d->serial_instance, &t);
                        r = serial_port_watch_line(d->serial_port, d->serial->get_line ? &t : NULL,
                                                   dut_on_serial_line, d);
                        if (r < 0)
                                return r;
                }
        }

        /* Whatever side a mux is on (a crash may have left the card with the host), the DUT has
         * the card while no session is open. The switch runs in the background; a power on waits
         * for it as for the switch after a close, an open for the switch back to the host. */
        if (dut_storage_is_muxed(d))
                dut_storage_start_switch(d, false);

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
        for (size_t i = 0; i < d->n_gpio_lines; i++)
                d->gpio_lines[i].driver->free(d->gpio_lines[i].instance);
        free(d->gpio_lines);
        d->power = NULL;
        d->power_in_flight = false;

        while ((q = dut_power_queue_pop(d))) {
                q->done(d, -ECANCELED, q->userdata);
                free(q);
        }

        for (ReadingRequest *rq; (rq = d->readings);) {
                d->readings = rq->next;
                rq->done(d, -ECANCELED, 0.0, rq->userdata);
                free(rq);
        }

        for (StorageOpen *w; (w = d->storage_waiters);) {
                d->storage_waiters = w->next;
                w->done(d, -ECANCELED, -EBADF, 0, w->userdata);
                free(w);
        }
        /* The drivers are gone: they call none of these back any more. */
        for (StorageOpen *w; (w = d->storage_async_opens);) {
                d->storage_async_opens = w->next;
                w->done(d, -ECANCELED, -EBADF, 0, w->userdata);
                free(w);
        }
        free(d->listeners);

        serial_port_free(d->serial_port);
        sd_event_unref(d->event);
        free(d);
        return NULL;
}
