/* Agent D-Bus API served peer to peer on a private UNIX socket */
#include <assert.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "agent-api.h"
#include "agent-bus.h"
#include "daemon-util.h"
#include "log.h"
#include "macro.h"

typedef struct Connection Connection;
typedef struct StorageSession StorageSession;

struct Connection {
        Agent *agent;
        sd_bus *bus;
        uint64_t id; /* for logs */
        Connection *prev, *next;
};

/* An OpenStorage, until CloseStorage or the end of its connection: a writable one keeps the DUT
 * from powering on, and any one keeps a card behind a mux with the host. */
struct StorageSession {
        uint64_t id;
        Connection *owner;
        Dut *dut;
        bool writable;
        sd_bus_message *opening; /* the OpenStorage to answer while the mux switches to the host */
        StorageSession *next;
};

struct Agent {
        sd_event *event;
        Exporter *exporter;
        char *socket_path;
        bool socket_bound;
        int listen_fd;
        sd_event_source *listen_source;
        Connection *connections;
        uint64_t n_connections_total;
        StorageSession *sessions;
        uint64_t next_session_id;
        /* The lease that local mode implies: the daemon's user holds every DUT since start. */
        char *holder;
        char begin[sizeof "2026-11-29T01:35:00Z" + 8];
};

/* Calls in flight carry the message to reply to once the driver is done. */
typedef struct PowerCall {
        sd_bus_message *message;
        PowerAction action;
} PowerCall;

/* Reads the DUT name that every method takes first, and finds the DUT. */
static int read_dut(sd_bus_message *m, Connection *c, sd_bus_error *error, const char **ret_name, Dut **ret) {
        Dut *d;
        int r;

        r = sd_bus_message_read(m, "s", ret_name);
        if (r < 0)
                return r;
        d = exporter_find_dut(c->agent->exporter, *ret_name);
        if (!d)
                return sd_bus_error_set_errnof(error, ENOENT, "No DUT named '%s'", *ret_name);
        *ret = d;
        return 0;
}

static int power_error(sd_bus_error *error, Dut *d, PowerAction action, int r) {
        const char *name = dut_get_name(d);

        switch (-r) {
        case EBUSY:
                return sd_bus_error_set_errnof(error, EBUSY,
                                               "Storage of DUT %s is open for writing; close it first", name);
        case EOPNOTSUPP:
                return sd_bus_error_set_errnof(error, EOPNOTSUPP, "DUT %s has no power driver", name);
        case ECANCELED:
                return sd_bus_error_set_errnof(error, ECANCELED, "DUT %s went away, or jumpstarterd is shutting down",
                                               name);
        default:
                return sd_bus_error_set_errnof(error, -r, "Failed to power %s DUT %s: %s",
                                               power_action_to_string(action), name, strerror(-r));
        }
}

static int method_list_duts(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        Exporter *e = c->agent->exporter;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; i < exporter_n_duts(e); i++) {
                r = sd_bus_message_append(reply, "s", dut_get_name(exporter_get_dut(e, i)));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_describe_dut(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        Agent *a = c->agent;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const DutConfig *config;
        const char *name;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        config = dut_get_config(d);

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(reply, 'a', "(ss)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < config->n_labels; i++) {
                r = sd_bus_message_append(reply, "(ss)", config->labels[i].key, strempty(config->labels[i].value));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;

        r = sd_bus_message_append(reply, "a(ss)", 5,
                                  "name", name,
                                  "holder", a->holder,
                                  "selector", "",
                                  "begin", a->begin,
                                  "end", "");
        if (r < 0)
                return r;

        r = sd_bus_message_append(reply, "stu", strempty(dut_get_serial_path(d)), dut_get_storage_size(d),
                                  dut_get_classes(d) | (dut_has_power_reading(d) ? AGENT_DUT_POWER_READING : 0));
        if (r < 0)
                return r;

        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_power(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        const char *name;
        PowerState state;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = dut_get_power(d, &state);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "DUT %s has no power driver", name);

        return sd_bus_reply_method_return(m, "s", strna(power_state_to_string(state)));
}

static void power_reading_done(Dut *d, int r, double watts, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = userdata;

        if (r == -ECANCELED)
                r = sd_bus_reply_method_errorf(m, "System.Error.ECANCELED", "jumpstarterd is shutting down");
        else if (r < 0)
                r = sd_bus_reply_method_errnof(m, -r, "Failed to read the power draw of DUT %s: %s",
                                               dut_get_name(d), strerror(-r));
        else
                r = sd_bus_reply_method_return(m, "d", watts);
        /* The caller may have hung up meanwhile; nobody is left to tell. */
        if (r < 0)
                log_debug_errno(r, "Failed to reply to GetPowerReading of %s: %m", dut_get_name(d));
}

static int method_get_power_reading(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        const char *name;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = dut_get_power_reading(d, power_reading_done, sd_bus_message_ref(m));
        if (r < 0) {
                sd_bus_message_unref(m);
                if (r == -EOPNOTSUPP)
                        return sd_bus_error_set_errnof(error, EOPNOTSUPP, "The power driver of DUT %s does not measure",
                                                       name);
                return sd_bus_error_set_errnof(error, -r, "Failed to read the power draw of DUT %s: %s", name,
                                               strerror(-r));
        }
        /* The driver replies through power_reading_done(). */
        return 1;
}

static void power_call_done(Dut *d, int r, void *userdata) {
        PowerCall *call = userdata;

        if (r < 0) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                (void) power_error(&error, d, call->action, r);
                r = sd_bus_reply_method_error(call->message, &error);
        } else
                r = sd_bus_reply_method_return(call->message, NULL);
        /* The caller may have hung up meanwhile; nobody is left to tell. */
        if (r < 0)
                log_debug_errno(r, "Failed to reply to SetPower of %s: %m", dut_get_name(d));

        sd_bus_message_unref(call->message);
        free(call);
}

static int method_set_power(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        const char *name, *action_string;
        PowerAction action;
        PowerCall *call;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "s", &action_string);
        if (r < 0)
                return r;
        action = power_action_from_string(action_string);
        if (action < 0)
                return sd_bus_error_set_errnof(error, EINVAL,
                                               "Unknown power action '%s'; expected on, off or cycle", action_string);

        call = malloc(sizeof *call);
        if (!call)
                return -ENOMEM;
        *call = (PowerCall) { .message = sd_bus_message_ref(m), .action = action };

        r = dut_set_power(d, action, power_call_done, call);
        if (r != 0) {
                sd_bus_message_unref(call->message);
                free(call);
        }
        if (r < 0)
                return power_error(error, d, action, r);
        if (r > 0)
                return sd_bus_reply_method_return(m, NULL);
        /* The driver replies through power_call_done(). */
        return 1;
}

static int method_open_serial_log(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        _cleanup_close_ int fd = -EBADF;
        const char *name;
        uint64_t id;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = dut_open_serial_log(d, &fd, &id);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_set_errnof(error, EOPNOTSUPP, "DUT %s has no serial console", name);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Failed to open the serial log of DUT %s: %s", name,
                                               strerror(-r));

        /* sd-bus sends a duplicate; ours closes on return. */
        return sd_bus_reply_method_return(m, "ht", fd, id);
}

static int method_serial_log_sync(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        const char *name;
        uint64_t id;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "t", &id);
        if (r < 0)
                return r;
        r = dut_sync_serial_log(d, id);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_set_errnof(error, EOPNOTSUPP, "DUT %s has no serial console", name);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "No serial.log reader %" PRIu64 " of DUT %s", id, name);

        return sd_bus_reply_method_return(m, NULL);
}

static int method_serial_log_stat(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        uint64_t bytes, modified;
        const char *name;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = dut_serial_log_stat(d, &bytes, &modified);
        if (r < 0)
                return sd_bus_error_set_errnof(error, EOPNOTSUPP, "DUT %s has no serial console", name);

        return sd_bus_reply_method_return(m, "tt", bytes, modified);
}

static int storage_open_error(sd_bus_error *error, Dut *d, int r) {
        const char *name = dut_get_name(d);
        PowerState state = POWER_OFF;

        switch (-r) {
        case EOPNOTSUPP:
                return sd_bus_error_set_errnof(error, EOPNOTSUPP, "DUT %s has no storage", name);
        case EBUSY:
                if (dut_get_power(d, &state) >= 0 && state != POWER_OFF)
                        return sd_bus_error_set_errnof(error, EBUSY,
                                                       "DUT %s is powered on; power it off before writing its storage",
                                                       name);
                return sd_bus_error_set_errnof(error, EBUSY,
                                               "The storage of DUT %s is busy (a power action is under way, or the "
                                               "block device is mounted on the exporter); see jumpstarterd's log",
                                               name);
        default:
                return sd_bus_error_set_errnof(error, -r, "Failed to open the storage of DUT %s: %s", name,
                                               strerror(-r));
        }
}

static void storage_session_unlink(Agent *a, StorageSession *s) {
        for (StorageSession **link = &a->sessions; *link; link = &(*link)->next)
                if (*link == s) {
                        *link = s->next;
                        return;
                }
}

static void storage_session_opened(Dut *d, int r, int fd_in, uint64_t size, void *userdata) {
        StorageSession *s = userdata;
        Agent *a = s->owner->agent;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = TAKE_PTR(s->opening);
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_close_ int fd = fd_in;

        if (r >= 0) {
                r = sd_bus_reply_method_return(m, "htt", fd, size, s->id);
                if (r >= 0) {
                        log_dut_prefix(LOG_INFO, 0, dut_get_name(d), "Storage opened for %s (session %" PRIu64 ")",
                                       s->writable ? "writing" : "reading", s->id);
                        return;
                }
                dut_close_storage_session(d, s->writable);
        } else if (r == -ECANCELED)
                (void) sd_bus_reply_method_errorf(m, "System.Error.ECANCELED", "jumpstarterd is shutting down");
        else {
                (void) storage_open_error(&error, d, r);
                (void) sd_bus_reply_method_error(m, &error);
        }
        storage_session_unlink(a, s);
        free(s);
}

static int method_open_storage(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        Agent *a = c->agent;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ StorageSession *s = NULL;
        const char *name;
        uint64_t size;
        int writable, r;
        Dut *d = NULL;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "b", &writable);
        if (r < 0)
                return r;

        s = malloc(sizeof *s);
        if (!s)
                return -ENOMEM;
        *s = (StorageSession) { .id = ++a->next_session_id, .owner = c, .dut = d, .writable = writable };

        r = dut_open_storage_session(d, writable, storage_session_opened, s, &fd, &size);
        if (r < 0)
                return storage_open_error(error, d, r);
        if (r == 0) {
                /* The mux switches the card to the host first; storage_session_opened() replies. */
                s->opening = sd_bus_message_ref(m);
                s->next = a->sessions;
                a->sessions = TAKE_PTR(s);
                return 1;
        }

        r = sd_bus_reply_method_return(m, "htt", fd, size, s->id);
        if (r < 0) {
                dut_close_storage_session(d, writable);
                return r;
        }
        log_dut_prefix(LOG_INFO, 0, name, "Storage opened for %s (session %" PRIu64 ")",
                       writable ? "writing" : "reading", s->id);
        s->next = a->sessions;
        a->sessions = TAKE_PTR(s);
        return 1;
}

static void storage_session_end(Agent *a, StorageSession **link) {
        StorageSession *s = *link;

        *link = s->next;
        if (s->opening) {
                /* Its connection went away while the mux switched: nobody to answer. */
                dut_cancel_storage_open(s->dut, s);
                sd_bus_message_unref(s->opening);
        } else {
                dut_close_storage_session(s->dut, s->writable);
                log_dut_prefix(LOG_INFO, 0, dut_get_name(s->dut), "Storage closed (session %" PRIu64 ")", s->id);
        }
        free(s);
}

static int method_close_storage(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        Agent *a = c->agent;
        uint64_t id;
        int r;

        r = sd_bus_message_read(m, "t", &id);
        if (r < 0)
                return r;

        for (StorageSession **link = &a->sessions; *link; link = &(*link)->next) {
                if ((*link)->id != id || (*link)->opening)
                        continue;
                /* Named explicitly: sd-bus would send EPERM as AccessDenied, which reads back as EACCES. */
                if ((*link)->owner != c)
                        return sd_bus_error_setf(error, "System.Error.EPERM",
                                                 "Storage session %" PRIu64 " belongs to another connection", id);
                storage_session_end(a, link);
                return sd_bus_reply_method_return(m, NULL);
        }
        return sd_bus_error_set_errnof(error, ENOENT, "No storage session %" PRIu64, id);
}

static int method_list_gpio(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; i < dut_n_gpio_lines(d); i++) {
                r = sd_bus_message_append(reply, "s", dut_gpio_line_name(d, i));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int gpio_error(sd_bus_error *error, const char *dut, const char *line, const char *what, int r) {
        if (r == -ENOENT)
                return sd_bus_error_set_errnof(error, ENOENT, "DUT %s has no GPIO line '%s'", dut, line);
        return sd_bus_error_set_errnof(error, -r, "Failed to %s GPIO line %s of DUT %s: %s", what, line, dut,
                                       strerror(-r));
}

static int method_get_gpio(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        const char *name, *line;
        bool value;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "s", &line);
        if (r < 0)
                return r;
        r = dut_get_gpio(d, line, &value);
        if (r < 0)
                return gpio_error(error, name, line, "read", r);

        return sd_bus_reply_method_return(m, "b", (int) value);
}

static int method_set_gpio(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        const char *name, *line;
        int value, r;
        Dut *d = NULL;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "sb", &line, &value);
        if (r < 0)
                return r;
        r = dut_set_gpio(d, line, value);
        if (r < 0)
                return gpio_error(error, name, line, "set", r);

        return sd_bus_reply_method_return(m, NULL);
}

static void release_done(int r, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = userdata;
        const char *name = NULL;

        (void) sd_bus_message_rewind(m, true);
        (void) sd_bus_message_read(m, "s", &name);
        if (r < 0)
                r = sd_bus_reply_method_errnof(m, -r, "Failed to end the lease of DUT %s: %s", strna(name),
                                               strerror(-r));
        else
                r = sd_bus_reply_method_return(m, NULL);
        /* The caller may have hung up meanwhile; nobody is left to tell. */
        if (r < 0)
                log_debug_errno(r, "Failed to reply to ReleaseDut of %s: %m", strna(name));
}

static int method_release_dut(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        const char *name;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = exporter_release_dut(c->agent->exporter, name, release_done, sd_bus_message_ref(m));
        if (r < 0) {
                sd_bus_message_unref(m);
                /* Named explicitly: sd-bus would send EPERM as AccessDenied, which reads back as EACCES. */
                if (r == -EPERM)
                        return sd_bus_error_setf(error, "System.Error.EPERM",
                                                 "DUT %s is not a leased DUT: it is in the config of jumpstarterd",
                                                 name);
                return sd_bus_error_set_errnof(error, -r, "Failed to end the lease of DUT %s: %s", name,
                                               strerror(-r));
        }
        /* The hook replies through release_done(). */
        return 1;
}

static const sd_bus_vtable agent_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("ListDuts",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("as", names),
                                method_list_duts, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DescribeDut",
                                SD_BUS_ARGS("s", dut),
                                SD_BUS_RESULT("a(ss)", labels, "a(ss)", lease, "s", serial_path,
                                              "t", storage_size, "u", classes),
                                method_describe_dut, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetPower",
                                SD_BUS_ARGS("s", dut),
                                SD_BUS_RESULT("s", state),
                                method_get_power, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetPowerReading",
                                SD_BUS_ARGS("s", dut),
                                SD_BUS_RESULT("d", watts),
                                method_get_power_reading, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetPower",
                                SD_BUS_ARGS("s", dut, "s", action),
                                SD_BUS_NO_RESULT,
                                method_set_power, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenSerialLog",
                                SD_BUS_ARGS("s", dut),
                                SD_BUS_RESULT("h", fd, "t", reader),
                                method_open_serial_log, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SerialLogSync",
                                SD_BUS_ARGS("s", dut, "t", reader),
                                SD_BUS_NO_RESULT,
                                method_serial_log_sync, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SerialLogStat",
                                SD_BUS_ARGS("s", dut),
                                SD_BUS_RESULT("t", bytes, "t", modified_usec),
                                method_serial_log_stat, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenStorage",
                                SD_BUS_ARGS("s", dut, "b", writable),
                                SD_BUS_RESULT("h", fd, "t", size, "t", session),
                                method_open_storage, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CloseStorage",
                                SD_BUS_ARGS("t", session),
                                SD_BUS_NO_RESULT,
                                method_close_storage, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListGpio",
                                SD_BUS_ARGS("s", dut),
                                SD_BUS_RESULT("as", lines),
                                method_list_gpio, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetGpio",
                                SD_BUS_ARGS("s", dut, "s", line),
                                SD_BUS_RESULT("b", value),
                                method_get_gpio, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetGpio",
                                SD_BUS_ARGS("s", dut, "s", line, "b", value),
                                SD_BUS_NO_RESULT,
                                method_set_gpio, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseDut",
                                SD_BUS_ARGS("s", dut),
                                SD_BUS_NO_RESULT,
                                method_release_dut, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("PowerChanged",
                                SD_BUS_ARGS("s", dut, "s", state),
                                0),
        SD_BUS_SIGNAL_WITH_ARGS("DutAdded",
                                SD_BUS_ARGS("s", dut),
                                0),
        SD_BUS_SIGNAL_WITH_ARGS("DutRemoved",
                                SD_BUS_ARGS("s", dut),
                                0),
        SD_BUS_VTABLE_END,
};

/* busctl and other bus clients greet with Hello even on a direct connection and give up unless
 * it is answered; a unique name per connection satisfies them. Peer-to-peer clients (sd-bus with
 * bus_client off) never call it. */
static int method_hello(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        char name[32];

        snprintf(name, sizeof name, ":1.%" PRIu64, c->id);
        return sd_bus_reply_method_return(m, "s", name);
}

static const sd_bus_vtable hello_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Hello",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("s", unique_name),
                                method_hello, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static Connection *connection_free(Connection *c) {
        Agent *a;

        if (!c)
                return NULL;
        a = c->agent;

        /* Its writable storage sessions end with it: a crashed flasher must not keep the DUT
         * from powering on forever. */
        for (StorageSession **link = &a->sessions; *link;) {
                if ((*link)->owner == c)
                        storage_session_end(a, link);
                else
                        link = &(*link)->next;
        }

        if (c->prev)
                c->prev->next = c->next;
        else if (a->connections == c)
                a->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;

        log_debug("Connection %" PRIu64 " closed", c->id);
        /* No flush: a client that does not read must not block the loop. sd_bus_close() also
         * detaches the bus from the event loop. */
        sd_bus_close_unref(c->bus);
        free(c);
        return NULL;
}

static int connection_on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        connection_free(userdata);
        return 0;
}

static int connection_new(Agent *a, int fd) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        Connection *c;
        sd_id128_t id;
        int r;

        r = sd_bus_new(&bus);
        if (r < 0) {
                safe_close(fd);
                return log_error_errno(r, "Failed to allocate a bus connection: %m");
        }
        r = sd_bus_set_fd(bus, fd, fd);
        if (r < 0) {
                safe_close(fd);
                return log_error_errno(r, "Failed to set the bus connection's socket: %m");
        }
        r = sd_id128_randomize(&id);
        if (r < 0)
                return log_error_errno(r, "Failed to generate a server id: %m");
        r = sd_bus_set_server(bus, 1, id);
        if (r < 0)
                return log_error_errno(r, "Failed to make the connection a server: %m");
        /* Serial logs and storage travel as file descriptors. */
        r = sd_bus_negotiate_fds(bus, 1);
        if (r < 0)
                return log_error_errno(r, "Failed to enable fd passing: %m");

        c = calloc(1, sizeof *c);
        if (!c)
                return log_oom();
        c->agent = a;
        c->id = ++a->n_connections_total;

        r = sd_bus_add_object_vtable(bus, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, agent_vtable, c);
        if (r < 0) {
                free(c);
                return log_error_errno(r, "Failed to register the agent object: %m");
        }
        r = sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/DBus", "org.freedesktop.DBus", hello_vtable, c);
        if (r < 0) {
                free(c);
                return log_error_errno(r, "Failed to register the Hello method: %m");
        }
        r = sd_bus_match_signal(bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                "Disconnected", connection_on_disconnected, c);
        if (r < 0) {
                free(c);
                return log_error_errno(r, "Failed to watch for disconnection: %m");
        }
        r = sd_bus_start(bus);
        if (r < 0) {
                free(c);
                return log_error_errno(r, "Failed to start the bus connection: %m");
        }
        r = sd_bus_attach_event(bus, a->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                free(c);
                return log_error_errno(r, "Failed to attach the bus connection to the event loop: %m");
        }

        c->bus = TAKE_PTR(bus);
        c->next = a->connections;
        if (a->connections)
                a->connections->prev = c;
        a->connections = c;
        log_debug("Connection %" PRIu64 " accepted", c->id);
        return 0;
}

static int agent_on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Agent *a = userdata;
        int cfd;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                /* The client gave up before we got to it, or a signal: nothing to report. */
                if (!(errno == EAGAIN || errno == EINTR || errno == ECONNABORTED || errno == EPROTO))
                        log_warning_errno(errno, "Failed to accept a connection: %m");
                return 0;
        }
        /* A failed connection is that client's problem, not the daemon's. */
        (void) connection_new(a, cfd);
        return 0;
}

static void agent_on_power_changed(Dut *d, PowerState state, void *userdata) {
        Agent *a = userdata;

        for (Connection *c = a->connections; c; c = c->next) {
                int r = sd_bus_emit_signal(c->bus, AGENT_OBJECT_PATH, AGENT_INTERFACE, "PowerChanged", "ss",
                                           dut_get_name(d), power_state_to_string(state));
                if (r < 0)
                        log_debug_errno(r, "Failed to send PowerChanged to connection %" PRIu64 ": %m", c->id);
        }
}

static void agent_emit(Agent *a, const char *member, const char *dut) {
        for (Connection *c = a->connections; c; c = c->next) {
                int r = sd_bus_emit_signal(c->bus, AGENT_OBJECT_PATH, AGENT_INTERFACE, member, "s", dut);
                if (r < 0)
                        log_debug_errno(r, "Failed to send %s to connection %" PRIu64 ": %m", member, c->id);
        }
}

static void agent_on_dut_changed(Exporter *e, Dut *d, bool added, void *userdata) {
        Agent *a = userdata;

        if (added)
                return agent_emit(a, "DutAdded", dut_get_name(d));

        /* The DUT goes: its storage sessions end here (open files of it fail with EIO on the
         * client's side, which learns from DutRemoved), and opens that wait for a mux fail. */
        for (StorageSession **link = &a->sessions; *link;) {
                StorageSession *s = *link;

                if (s->dut != d) {
                        link = &s->next;
                        continue;
                }
                if (s->opening)
                        (void) sd_bus_reply_method_errorf(s->opening, "System.Error.ENODEV",
                                                          "DUT %s went away", dut_get_name(d));
                storage_session_end(a, link);
        }
        agent_emit(a, "DutRemoved", dut_get_name(d));
}

/* A socket file left by a daemon that died is replaced; one that answers is another daemon's. */
static int agent_remove_stale_socket(const struct sockaddr_un *sa, const char *path) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (lstat(path, &st) < 0) {
                if (errno == ENOENT)
                        return 0;
                return log_error_errno(errno, "Failed to check %s: %m", path);
        }
        if (!S_ISSOCK(st.st_mode))
                return log_error_errno(EEXIST, "%s exists and is not a socket; not replacing it", path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create a socket: %m");
        if (connect(fd, (const struct sockaddr *) sa, sizeof *sa) >= 0 || errno == EAGAIN)
                return log_error_errno(EADDRINUSE, "Another process is listening on %s", path);
        if (errno != ECONNREFUSED)
                return log_error_errno(errno, "Failed to check whether %s is in use: %m", path);

        log_debug("Removing stale socket %s", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Failed to remove stale socket %s: %m", path);
        return 0;
}

static int agent_listen(Agent *a) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        mode_t old_umask;
        int r;

        if (strlen(a->socket_path) >= sizeof sa.sun_path)
                return log_error_errno(ENAMETOOLONG, "Socket path %s is too long (at most %zu bytes)",
                                       a->socket_path, sizeof sa.sun_path - 1);
        strcpy(sa.sun_path, a->socket_path);

        r = agent_remove_stale_socket(&sa, a->socket_path);
        if (r < 0)
                return r;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create the listening socket: %m");

        /* Created 0600 from the start, not chmod()ed after: nobody else may connect even briefly. */
        old_umask = umask(0177);
        r = bind(fd, (const struct sockaddr *) &sa, sizeof sa);
        umask(old_umask);
        if (r < 0)
                return log_error_errno(errno, "Failed to bind to %s: %m", a->socket_path);
        a->socket_bound = true;

        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "Failed to listen on %s: %m", a->socket_path);

        r = sd_event_add_io(a->event, &a->listen_source, fd, EPOLLIN, agent_on_accept, a);
        if (r < 0)
                return log_error_errno(r, "Failed to watch %s: %m", a->socket_path);
        (void) sd_event_source_set_description(a->listen_source, "agent-listen");

        a->listen_fd = TAKE_FD(fd);
        return 0;
}

static int agent_init_lease(Agent *a) {
        struct passwd *pw;
        struct tm tm;
        time_t t = time(NULL);

        errno = 0;
        pw = getpwuid(getuid());
        if (pw)
                a->holder = strdup(pw->pw_name);
        else if (asprintf(&a->holder, "%u", (unsigned) getuid()) < 0)
                a->holder = NULL;
        if (!a->holder)
                return log_oom();

        if (!gmtime_r(&t, &tm) || strftime(a->begin, sizeof a->begin, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return log_error_errno(EINVAL, "Failed to format the start time");
        return 0;
}

int agent_new(sd_event *event, Exporter *exporter, const char *socket_path, Agent **ret) {
        _cleanup_(agent_freep) Agent *a = NULL;
        int r;

        assert(event);
        assert(exporter);
        assert(socket_path);
        assert(ret);

        a = calloc(1, sizeof *a);
        if (!a)
                return log_oom();
        a->event = sd_event_ref(event);
        a->exporter = exporter;
        a->listen_fd = -EBADF;
        a->socket_path = strdup(socket_path);
        if (!a->socket_path)
                return log_oom();

        r = agent_init_lease(a);
        if (r < 0)
                return r;

        r = agent_listen(a);
        if (r < 0)
                return r;

        exporter_set_power_changed(exporter, agent_on_power_changed, a);
        exporter_set_dut_changed(exporter, agent_on_dut_changed, a);
        *ret = TAKE_PTR(a);
        return 0;
}

Agent *agent_free(Agent *a) {
        if (!a)
                return NULL;

        exporter_set_power_changed(a->exporter, NULL, NULL);
        exporter_set_dut_changed(a->exporter, NULL, NULL);
        while (a->connections)
                connection_free(a->connections);
        assert(!a->sessions);

        sd_event_source_disable_unref(a->listen_source);
        safe_close(a->listen_fd);
        if (a->socket_bound && unlink(a->socket_path) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Failed to remove %s: %m", a->socket_path);

        sd_event_unref(a->event);
        free(a->socket_path);
        free(a->holder);
        free(a);
        return NULL;
}

size_t agent_n_connections(const Agent *a) {
        size_t n = 0;

        for (Connection *c = a->connections; c; c = c->next)
                n++;
        return n;
}
