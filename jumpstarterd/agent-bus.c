/* Agent D-Bus API: peer to peer on a private UNIX socket, and on the system bus under polkit */
#include <assert.h>
#include <grp.h>
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
#include "block-server.h"
#include "daemon-util.h"
#include "log.h"
#include "macro.h"
#include "polkit.h"
#include "selector.h"

/* Longer leases than this are a typo, and their end would not fit the clock. */
#define LOCAL_LEASE_MAX_USEC (366ULL * 24 * 3600 * USEC_PER_SEC)

typedef struct Connection Connection;
typedef struct StorageSession StorageSession;
typedef struct LocalLease LocalLease;
typedef struct PolkitQuery PolkitQuery;

struct Connection {
        Agent *agent;
        sd_bus *bus;
        uint64_t id; /* for logs */
        /* The system bus: many callers, each checked (polkit, lease holder); else a peer-to-peer
         * connection of the private socket, whose peer is as trusted as the daemon's own user. */
        bool system;
        uid_t peer_uid;
        /* A *As method of jumpstarter-fuse (root) runs on behalf of acting_uid, the uid of the FUSE request. */
        bool acting;
        uid_t acting_uid;
        Connection *prev, *next;
};

/* An OpenStorage, until CloseStorage or the end of its connection: a writable one keeps the DUT
 * from powering on, and any one keeps a card behind a mux with the host. */
struct StorageSession {
        uint64_t id;
        Connection *owner;
        /* On the system bus: the caller, whose going away ends the session as a connection's would. */
        sd_bus_track *track;
        Dut *dut;
        bool writable;
        sd_bus_message *opening; /* the OpenStorage to answer while the mux switches to the host */
        /* A user on the system bus gets the storage through a block server, whose socket ends
         * with the session (the lease): a passed fd of the image itself could not be taken back. */
        bool revocable;
        BlockServer *block;
        StorageSession *next;
};

/* A lease of a DUT of this host taken on the system bus (Leases1.CreateLease): its holder uid owns
 * the DUT's files and terminal, and nobody else may use it, until it is released or ends. */
struct LocalLease {
        Agent *agent;
        char *name;
        char *dut;
        char *selector;
        uid_t uid;
        char *holder;                   /* the holder's user name (or uid) */
        uint64_t begin_usec, end_usec;  /* CLOCK_REALTIME */
        sd_event_source *timer;
        /* The terminal as it was before the lease gave it to the holder. */
        bool pty_taken;
        uid_t pty_uid;
        gid_t pty_gid;
        mode_t pty_mode;
        LocalLease *next;
};

/* A call that waits for polkit; the handler runs again once polkit said yes. */
struct PolkitQuery {
        Connection *connection;
        sd_bus_message *message;
        sd_bus_message_handler_t handler;
        char *action;
        char *dut;
        sd_bus_slot *slot;
        PolkitQuery *prev, *next;
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

        /* The system bus (agent_attach_system_bus()), NULL without. */
        Connection *system;
        LocalLease *leases;
        uint64_t next_lease_id;
        /* Members of this group share every leased DUT with its holder. */
        bool have_share_group;
        gid_t share_gid;
        PolkitQuery *queries;
        /* The call whose handler runs again after polkit said yes. */
        sd_bus_message *authorized;
};

/* Calls in flight carry the message to reply to once the driver is done. */
typedef struct PowerCall {
        sd_bus_message *message;
        PowerAction action;
} PowerCall;

static const sd_bus_error_map agent_error_map[] = {
        SD_BUS_ERROR_MAP(AGENT_ERROR_NOT_AUTHORIZED, EACCES),
        SD_BUS_ERROR_MAP_END,
};

static void storage_session_end(Agent *a, StorageSession **link);
static void agent_emit(Agent *a, const char *member, const char *dut);
static void local_lease_end(LocalLease *l, const char *why);

static const char *format_iso8601(char *buf, size_t size, uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return "";
        return buf;
}

/* Access: who calls, may they use this DUT, and does polkit agree */

typedef struct Caller {
        uid_t uid;
        bool trusted;   /* root on the bus, or the private socket's peer: no checks */
        bool acting;    /* jumpstarter-fuse on behalf of uid: the lease holder check, no polkit */
} Caller;

static int caller_get(Connection *c, sd_bus_message *m, Caller *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        if (c->acting) {
                *ret = (Caller) { .uid = c->acting_uid, .acting = true };
                return 0;
        }
        if (!c->system) {
                *ret = (Caller) { .uid = c->peer_uid, .trusted = true };
                return 0;
        }
        /* The bus daemon knows the sender's uid (a call to it, as systemd's services make: it is
         * local and answers from memory). */
        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return r;
        *ret = (Caller) { .uid = uid, .trusted = uid == 0 };
        return 0;
}

static bool uid_in_group(uid_t uid, gid_t gid) {
        struct passwd pw, *result = NULL;
        char buf[4096];
        gid_t groups[256];
        int n = (int) ELEMENTSOF(groups);

        /* NSS on the loop: the host's own user database, as the kernel's file checks use. */
        if (getpwuid_r(uid, &pw, buf, sizeof buf, &result) != 0 || !result)
                return false;
        if (pw.pw_gid == gid)
                return true;
        if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
                return false;
        for (int i = 0; i < n; i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

static LocalLease *local_lease_by_dut(Agent *a, const char *dut) {
        for (LocalLease *l = a->leases; l; l = l->next)
                if (streq(l->dut, dut))
                        return l;
        return NULL;
}

static LocalLease *local_lease_by_name(Agent *a, const char *name) {
        for (LocalLease *l = a->leases; l; l = l->next)
                if (streq(l->name, name))
                        return l;
        return NULL;
}

/* The holder, or a member of the share group. */
static bool local_lease_admits(Agent *a, const LocalLease *l, uid_t uid) {
        return uid == l->uid || (a->have_share_group && uid_in_group(uid, a->share_gid));
}

static PolkitQuery *polkit_query_free(PolkitQuery *q) {
        Agent *a;

        if (!q)
                return NULL;
        a = q->connection->agent;
        if (q->prev)
                q->prev->next = q->next;
        else if (a->queries == q)
                a->queries = q->next;
        if (q->next)
                q->next->prev = q->prev;
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->message);
        free(q->action);
        free(q->dut);
        free(q);
        return NULL;
}

static void polkit_query_done(int r, void *userdata) {
        PolkitQuery *q = userdata;
        Connection *c = q->connection;
        Agent *a = c->agent;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = sd_bus_message_ref(q->message);
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message_handler_t handler = q->handler;
        _cleanup_free_ char *action = TAKE_PTR(q->action), *dut = TAKE_PTR(q->dut);

        polkit_query_free(q);

        if (r > 0) {
                /* Polkit said yes: the call runs from the start, and every check but polkit's again
                 * (the DUT may have gone, or been leased meanwhile). */
                (void) sd_bus_message_rewind(m, true);
                a->authorized = m;
                r = handler(m, c, &error);
                a->authorized = NULL;
                if (r < 0 && !sd_bus_error_is_set(&error))
                        (void) sd_bus_error_set_errno(&error, r);
                if (sd_bus_error_is_set(&error))
                        (void) sd_bus_reply_method_error(m, &error);
                return;
        }

        if (r < 0)
                (void) sd_bus_reply_method_errorf(m, AGENT_ERROR_NOT_AUTHORIZED,
                                                  "Not authorized: polkit could not be asked about action %s%s%s (%s)",
                                                  action, dut ? " on DUT " : "", strempty(dut), strerror(-r));
        else
                (void) sd_bus_reply_method_errorf(m, AGENT_ERROR_NOT_AUTHORIZED,
                                                  "Not authorized: polkit refused action %s%s%s",
                                                  action, dut ? " on DUT " : "", strempty(dut));
}

/* Before any side effect of a call: returns 1 to go on, 0 when the call waits for polkit (the
 * handler runs again once it said yes, or the call is answered with the refusal; the handler then
 * returns 1, as sd-bus takes 0 for "not handled, try elsewhere"), or a negative
 * errno with error set. Root and the private socket's peer pass; a DUT leased by someone else is
 * EACCES whatever polkit says; a caller through the file view (acting) may use only its own leases. */
static int agent_authorize(Connection *c, sd_bus_message *m, Dut *d, const char *action,
                           sd_bus_message_handler_t handler, sd_bus_error *error) {
        Agent *a = c->agent;
        const char *name = d ? dut_get_name(d) : NULL;
        PolkitQuery *q;
        LocalLease *l;
        Caller caller;
        int r;

        r = caller_get(c, m, &caller);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Failed to identify the caller: %s", strerror(-r));
        if (caller.trusted)
                return 1;

        /* EACCES by name: sd-bus would send AccessDenied, whose message busctl does not show. */
        if (d) {
                l = local_lease_by_dut(a, name);
                if (l && !local_lease_admits(a, l, caller.uid))
                        return sd_bus_error_setf(error, "System.Error.EACCES", "DUT %s is leased by %s", name, l->holder);
                /* In the file view a DUT that nobody leased belongs to root. */
                if (!l && caller.acting)
                        return sd_bus_error_setf(error, "System.Error.EACCES",
                                                       "DUT %s is not leased by you; lease it first (jmp lease create)",
                                                       name);
        }
        if (caller.acting || a->authorized == m)
                return 1;

        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        *q = (PolkitQuery) {
                .connection = c,
                .message = sd_bus_message_ref(m),
                .handler = handler,
                .action = strdup(action),
                .dut = name ? strdup(name) : NULL,
        };
        q->next = a->queries;
        if (q->next)
                q->next->prev = q;
        a->queries = q;
        if (!q->action || (name && !q->dut)) {
                polkit_query_free(q);
                return -ENOMEM;
        }
        r = polkit_check_async(m, action, name, polkit_query_done, q, &q->slot);
        if (r < 0) {
                polkit_query_free(q);
                return sd_bus_error_setf(error, AGENT_ERROR_NOT_AUTHORIZED,
                                         "Not authorized: polkit could not be asked about action %s (%s)", action,
                                         strerror(-r));
        }
        return 0;
}

/* The *As methods: jumpstarter-fuse (root) on behalf of the uid of a FUSE request. */
static int agent_call_as(sd_bus_message *m, Connection *c, sd_bus_error *error, sd_bus_message_handler_t handler) {
        uint32_t uid;
        Caller caller;
        int r;

        r = sd_bus_message_read(m, "u", &uid);
        if (r < 0)
                return r;
        r = caller_get(c, m, &caller);
        if (r < 0)
                return r;
        /* Only a peer as privileged as the daemon may speak for others. */
        if (!(caller.trusted && (caller.uid == 0 || caller.uid == getuid())))
                return sd_bus_error_setf(error, "System.Error.EPERM",
                                         "Only root may call %s", sd_bus_message_get_member(m));
        if (uid == 0 || uid == caller.uid)
                return handler(m, c, error);

        c->acting = true;
        c->acting_uid = uid;
        r = handler(m, c, error);
        c->acting = false;
        return r;
}

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
        json_t *lease;
        LocalLease *l;
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

        /* A leased DUT shows its lease at the controller; a DUT of the config the one local mode implies. */
        lease = exporter_get_lease(a->exporter, name);
        l = local_lease_by_dut(a, name);
        if (l) {
                char begin[64], end[64];

                r = sd_bus_message_append(reply, "a(ss)", 5,
                                          "name", l->name,
                                          "holder", l->holder,
                                          "selector", strempty(l->selector),
                                          "begin", format_iso8601(begin, sizeof begin, l->begin_usec),
                                          "end", format_iso8601(end, sizeof end, l->end_usec));
        } else if (lease)
                r = sd_bus_message_append(reply, "a(ss)", 5,
                                          "name", strempty(json_string_value(json_object_get(lease, "name"))),
                                          "holder", strempty(json_string_value(json_object_get(lease, "client"))),
                                          "selector", strempty(json_string_value(json_object_get(lease, "selector"))),
                                          "begin", strempty(json_string_value(json_object_get(lease, "begin"))),
                                          "end", strempty(json_string_value(json_object_get(lease, "end"))));
        else
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
        r = agent_authorize(c, m, d, POLKIT_ACTION_POWER, method_set_power, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* 0: it waits for polkit */

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
        r = agent_authorize(c, m, d, POLKIT_ACTION_SERIAL, method_open_serial_log, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* 0: it waits for polkit */
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
        r = agent_authorize(c, m, d, POLKIT_ACTION_SERIAL, method_serial_log_sync, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* 0: it waits for polkit */
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

/* Answers an OpenStorage with the storage fd, or with a block server's socket for a revocable
 * session. Takes *fd. */
static int storage_session_reply(StorageSession *s, sd_bus_message *m, int *fd, uint64_t size) {
        _cleanup_close_ int storage = TAKE_FD(*fd), client = -EBADF;
        int r;

        if (!s->revocable)
                return sd_bus_reply_method_return(m, "htt", storage, size, s->id);
        r = block_server_start(storage, size, s->writable, &client, &s->block);
        if (r < 0)
                return r;
        storage = -EBADF; /* the block server's now */
        r = sd_bus_reply_method_return(m, "htt", client, size, s->id);
        if (r < 0)
                s->block = block_server_free(s->block);
        return r;
}

static void storage_session_opened(Dut *d, int r, int fd_in, uint64_t size, void *userdata) {
        StorageSession *s = userdata;
        Agent *a = s->owner->agent;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = TAKE_PTR(s->opening);
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_close_ int fd = fd_in;

        if (r >= 0) {
                r = storage_session_reply(s, m, &fd, size);
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
        sd_bus_track_unref(s->track);
        free(s);
}

/* The system bus caller that opened a session went away: the session ends with it. */
static int storage_session_on_caller_gone(sd_bus_track *track, void *userdata) {
        Agent *a = userdata;

        for (StorageSession **link = &a->sessions; *link; link = &(*link)->next)
                if ((*link)->track == track) {
                        storage_session_end(a, link);
                        break;
                }
        return 0;
}

static int method_open_storage(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        Agent *a = c->agent;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(sd_bus_track_unrefp) sd_bus_track *track = NULL;
        _cleanup_free_ StorageSession *s = NULL;
        const char *name;
        Caller caller;
        uint64_t size;
        int writable, r;
        Dut *d = NULL;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "b", &writable);
        if (r < 0)
                return r;
        r = agent_authorize(c, m, d, POLKIT_ACTION_STORAGE, method_open_storage, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* 0: it waits for polkit */
        r = caller_get(c, m, &caller);
        if (r < 0)
                return r;

        /* On the system bus the session is the caller's, and ends when it goes away. */
        if (c->system) {
                r = sd_bus_track_new(c->bus, &track, storage_session_on_caller_gone, a);
                if (r >= 0)
                        r = sd_bus_track_add_sender(track, m);
                if (r < 0)
                        return r;
        }

        s = malloc(sizeof *s);
        if (!s)
                return -ENOMEM;
        *s = (StorageSession) { .id = ++a->next_session_id, .owner = c, .dut = d, .writable = writable,
                                .revocable = c->system && !caller.trusted && !caller.acting };

        r = dut_open_storage_session(d, writable, storage_session_opened, s, &fd, &size);
        if (r < 0)
                return storage_open_error(error, d, r);
        s->track = TAKE_PTR(track);
        if (r == 0) {
                /* The mux switches the card to the host first; storage_session_opened() replies. */
                s->opening = sd_bus_message_ref(m);
                s->next = a->sessions;
                a->sessions = TAKE_PTR(s);
                return 1;
        }

        r = storage_session_reply(s, m, &fd, size);
        if (r < 0) {
                dut_close_storage_session(d, writable);
                sd_bus_track_unref(s->track);
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
                s->block = block_server_free(s->block);
                dut_close_storage_session(s->dut, s->writable);
                log_dut_prefix(LOG_INFO, 0, dut_get_name(s->dut), "Storage closed (session %" PRIu64 ")", s->id);
        }
        sd_bus_track_unref(s->track);
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
                if ((*link)->owner != c ||
                    ((*link)->track && !sd_bus_track_count_sender((*link)->track, m)))
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
        /* GPIO lines are the board's reset and boot switches: the power verb. */
        r = agent_authorize(c, m, d, POLKIT_ACTION_POWER, method_set_gpio, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* 0: it waits for polkit */
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
        LocalLease *l;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        r = agent_authorize(c, m, d, POLKIT_ACTION_LEASE, method_release_dut, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* 0: it waits for polkit */
        /* A DUT of this host leased on the system bus: rmdir gives it back. */
        l = local_lease_by_dut(c->agent, name);
        if (l) {
                local_lease_end(l, "released");
                return sd_bus_reply_method_return(m, NULL);
        }
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

/* Leases of this host's DUTs (Leases1 on the system bus) */

static char *dut_object_path(const char *dut) {
        char *path = NULL;

        return sd_bus_path_encode(AGENT_DUT_OBJECT_PREFIX, dut, &path) < 0 ? NULL : path;
}

/* The lease properties of the DUT's object changed. */
static void agent_emit_lease_properties(Agent *a, const char *dut) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (!a->system || !(path = dut_object_path(dut)))
                return;
        r = sd_bus_emit_properties_changed(a->system->bus, path, AGENT_DUT_INTERFACE, "Leased", "Holder", "HolderUid",
                                           "Lease", "LeaseEnd", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to send PropertiesChanged of %s: %m", dut);
}

/* The terminal goes to the holder (0600: nobody else writes to it either) and comes back at the end. */
static void local_lease_take_pty(LocalLease *l, Dut *d) {
        const char *path = dut_get_serial_path(d);
        struct stat st;

        if (!path)
                return;
        if (stat(path, &st) < 0) {
                log_dut_prefix(LOG_WARNING, errno, l->dut, "Failed to look at the terminal %s: %m", path);
                return;
        }
        if (chown(path, l->uid, (gid_t) -1) < 0 || chmod(path, 0600) < 0) {
                log_dut_prefix(LOG_WARNING, errno, l->dut, "Failed to give the terminal %s to %s: %m", path, l->holder);
                return;
        }
        l->pty_taken = true;
        l->pty_uid = st.st_uid;
        l->pty_gid = st.st_gid;
        l->pty_mode = st.st_mode & 07777;
}

static void local_lease_return_pty(LocalLease *l, Dut *d) {
        const char *path = d ? dut_get_serial_path(d) : NULL;

        if (!l->pty_taken || !path)
                return;
        if (chown(path, l->pty_uid, l->pty_gid) < 0 || chmod(path, l->pty_mode) < 0)
                log_dut_prefix(LOG_WARNING, errno, l->dut, "Failed to take the terminal %s back: %m", path);
        l->pty_taken = false;
}

static LocalLease *local_lease_free(LocalLease *l) {
        if (!l)
                return NULL;
        sd_event_source_disable_unref(l->timer);
        free(l->name);
        free(l->dut);
        free(l->selector);
        free(l->holder);
        free(l);
        return NULL;
}

/* Ends what was opened under the lease: serial.log readers see end of file, storage sessions end
 * (the file view fails their open files), the terminal goes back. */
static void local_lease_revoke(LocalLease *l) {
        Agent *a = l->agent;
        Dut *d = exporter_find_dut(a->exporter, l->dut);

        if (!d)
                return;
        dut_close_serial_logs(d);
        for (StorageSession **link = &a->sessions; *link;) {
                StorageSession *s = *link;

                if (s->dut != d) {
                        link = &s->next;
                        continue;
                }
                if (s->opening)
                        (void) sd_bus_reply_method_errorf(s->opening, "System.Error.ENODEV",
                                                          "The lease of DUT %s ended", l->dut);
                storage_session_end(a, link);
        }
        local_lease_return_pty(l, d);
}

static void local_lease_end(LocalLease *l, const char *why) {
        Agent *a = l->agent;
        _cleanup_free_ char *dut = NULL, *name = NULL;

        for (LocalLease **link = &a->leases; *link; link = &(*link)->next)
                if (*link == l) {
                        *link = l->next;
                        break;
                }
        log_dut_prefix(LOG_INFO, 0, l->dut, "Lease %s of %s %s", l->name, l->holder, why);
        local_lease_revoke(l);
        dut = TAKE_PTR(l->dut);
        name = TAKE_PTR(l->name);
        local_lease_free(l);

        if (a->system) {
                int r = sd_bus_emit_signal(a->system->bus, AGENT_OBJECT_PATH, AGENT_LEASES_INTERFACE, "LeaseEnded",
                                           "ss", name, dut);
                if (r < 0)
                        log_debug_errno(r, "Failed to send LeaseEnded: %m");
        }
        agent_emit_lease_properties(a, dut);
        /* jumpstarter-fuse describes it again: the files go back to root, open ones fail. */
        agent_emit(a, "DutChanged", dut);
}

static int local_lease_on_expired(sd_event_source *s, uint64_t usec, void *userdata) {
        local_lease_end(userdata, "expired");
        return 0;
}

static int local_lease_new(Agent *a, Dut *d, uid_t uid, const char *selector, uint64_t duration_usec,
                           LocalLease **ret) {
        struct passwd pw, *result = NULL;
        char buf[4096];
        LocalLease *l;
        int r;

        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->agent = a;
        l->uid = uid;
        l->begin_usec = now_usec(CLOCK_REALTIME);
        l->end_usec = l->begin_usec + duration_usec;
        if (asprintf(&l->name, "lease-%" PRIu64, ++a->next_lease_id) < 0)
                l->name = NULL;
        l->dut = strdup(dut_get_name(d));
        l->selector = selector ? strdup(selector) : NULL;
        if (getpwuid_r(uid, &pw, buf, sizeof buf, &result) == 0 && result)
                l->holder = strdup(pw.pw_name);
        else if (asprintf(&l->holder, "%u", (unsigned) uid) < 0)
                l->holder = NULL;
        if (!l->name || !l->dut || (selector && !l->selector) || !l->holder) {
                local_lease_free(l);
                return -ENOMEM;
        }
        r = sd_event_add_time(a->event, &l->timer, CLOCK_REALTIME, l->end_usec, USEC_PER_SEC / 10,
                              local_lease_on_expired, l);
        if (r < 0) {
                local_lease_free(l);
                return r;
        }
        (void) sd_event_source_set_description(l->timer, "local-lease");

        /* What a previous holder still has open of the DUT ends here too. */
        local_lease_revoke(l);
        local_lease_take_pty(l, d);
        l->next = a->leases;
        a->leases = l;
        log_dut_prefix(LOG_INFO, 0, l->dut, "Leased to %s (uid %u) as %s until %s", l->holder, (unsigned) uid, l->name,
                       format_iso8601(buf, sizeof buf, l->end_usec));

        if (a->system) {
                r = sd_bus_emit_signal(a->system->bus, AGENT_OBJECT_PATH, AGENT_LEASES_INTERFACE, "LeaseStarted",
                                       "ssu", l->name, l->dut, (uint32_t) uid);
                if (r < 0)
                        log_debug_errno(r, "Failed to send LeaseStarted: %m");
        }
        agent_emit_lease_properties(a, l->dut);
        agent_emit(a, "DutChanged", l->dut);
        *ret = l;
        return 0;
}

/* A DUT named so, else the first DUT that nobody leased whose labels match the selector. */
static int lease_pick_dut(Agent *a, const char *what, sd_bus_error *error, Dut **ret) {
        _cleanup_free_ char *parse_error = NULL;
        Selector *sel = NULL;
        Dut *d;
        int r;

        if (dut_name_is_valid(what) && (d = exporter_find_dut(a->exporter, what))) {
                *ret = d;
                return 0;
        }
        r = selector_parse(what, &sel, &parse_error);
        if (r < 0)
                return sd_bus_error_set_errnof(error, EINVAL, "'%s' is neither a DUT nor a label selector: %s", what,
                                               parse_error ?: strerror(-r));
        d = NULL;
        for (size_t i = 0; i < exporter_n_duts(a->exporter); i++) {
                Dut *candidate = exporter_get_dut(a->exporter, i);
                const DutConfig *config = dut_get_config(candidate);

                if (exporter_dut_is_releasable(a->exporter, dut_get_name(candidate)) ||
                    !selector_matches(sel, config->labels, config->n_labels))
                        continue;
                if (!d)
                        d = candidate;
                if (!local_lease_by_dut(a, dut_get_name(candidate))) {
                        d = candidate;
                        break;
                }
        }
        selector_free(sel);
        if (!d)
                return sd_bus_error_set_errnof(error, ENOENT, "No DUT of this host matches '%s'", what);
        *ret = d;
        return 0;
}

static int method_create_lease(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        Agent *a = c->agent;
        const char *what, *name;
        uint64_t duration;
        LocalLease *l;
        Caller caller;
        Dut *d = NULL;
        int r;

        r = sd_bus_message_read(m, "st", &what, &duration);
        if (r < 0)
                return r;
        if (duration == 0 || duration > LOCAL_LEASE_MAX_USEC)
                return sd_bus_error_set_errnof(error, EINVAL, "A lease lasts more than 0 and at most 366 days");
        r = lease_pick_dut(a, what, error, &d);
        if (r < 0)
                return r;
        name = dut_get_name(d);
        if (exporter_dut_is_releasable(a->exporter, name))
                return sd_bus_error_setf(error, "System.Error.EPERM",
                                         "DUT %s is leased from a controller; lease it there", name);
        l = local_lease_by_dut(a, name);
        if (l)
                return sd_bus_error_set_errnof(error, EBUSY, "DUT %s is leased by %s until %s", name, l->holder,
                                               format_iso8601((char[64]) { 0 }, 64, l->end_usec));
        r = agent_authorize(c, m, d, POLKIT_ACTION_LEASE, method_create_lease, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* 0: it waits for polkit */
        r = caller_get(c, m, &caller);
        if (r < 0)
                return r;

        r = local_lease_new(a, d, caller.uid, streq(what, name) ? NULL : what, duration, &l);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Failed to lease DUT %s: %s", name, strerror(-r));
        return sd_bus_reply_method_return(m, "sst", l->name, l->dut, l->end_usec);
}

/* The lease of that name, else the lease of the DUT of that name. */
static LocalLease *local_lease_find(Agent *a, const char *what) {
        return local_lease_by_name(a, what) ?: local_lease_by_dut(a, what);
}

/* The holder (or root) may end and extend a lease; anyone else needs the admin action. */
static int lease_authorize(Connection *c, sd_bus_message *m, LocalLease *l, sd_bus_message_handler_t handler,
                           sd_bus_error *error) {
        Agent *a = c->agent;
        Dut *d = exporter_find_dut(a->exporter, l->dut);
        Caller caller;
        int r;

        r = caller_get(c, m, &caller);
        if (r < 0)
                return r;
        if (caller.trusted || local_lease_admits(a, l, caller.uid))
                return agent_authorize(c, m, d, POLKIT_ACTION_LEASE, handler, error);
        if (caller.acting)
                return sd_bus_error_setf(error, "System.Error.EACCES", "Lease %s is %s's", l->name, l->holder);
        /* Not through agent_authorize(): the holder check would refuse before polkit is asked. */
        if (a->authorized == m)
                return 1;
        {
                PolkitQuery *q = calloc(1, sizeof *q);

                if (!q)
                        return -ENOMEM;
                *q = (PolkitQuery) {
                        .connection = c,
                        .message = sd_bus_message_ref(m),
                        .handler = handler,
                        .action = strdup(POLKIT_ACTION_ADMIN),
                        .dut = strdup(l->dut),
                };
                q->next = a->queries;
                if (q->next)
                        q->next->prev = q;
                a->queries = q;
                if (!q->action || !q->dut) {
                        polkit_query_free(q);
                        return -ENOMEM;
                }
                r = polkit_check_async(m, POLKIT_ACTION_ADMIN, l->dut, polkit_query_done, q, &q->slot);
                if (r < 0) {
                        polkit_query_free(q);
                        return sd_bus_error_setf(error, AGENT_ERROR_NOT_AUTHORIZED,
                                                 "Not authorized: lease %s is %s's, and polkit could not be asked "
                                                 "about action %s (%s)", l->name, l->holder, POLKIT_ACTION_ADMIN,
                                                 strerror(-r));
                }
        }
        return 0;
}

static int method_release_lease(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        const char *what;
        LocalLease *l;
        int r;

        r = sd_bus_message_read(m, "s", &what);
        if (r < 0)
                return r;
        l = local_lease_find(c->agent, what);
        if (!l)
                return sd_bus_error_set_errnof(error, ENOENT, "No lease or leased DUT named '%s'", what);
        r = lease_authorize(c, m, l, method_release_lease, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* 0: it waits for polkit */
        local_lease_end(l, "released");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_extend_lease(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        const char *what;
        uint64_t by;
        LocalLease *l;
        int r;

        r = sd_bus_message_read(m, "st", &what, &by);
        if (r < 0)
                return r;
        l = local_lease_find(c->agent, what);
        if (!l)
                return sd_bus_error_set_errnof(error, ENOENT, "No lease or leased DUT named '%s'", what);
        if (by == 0 || by > LOCAL_LEASE_MAX_USEC || l->end_usec + by - now_usec(CLOCK_REALTIME) > LOCAL_LEASE_MAX_USEC)
                return sd_bus_error_set_errnof(error, EINVAL, "A lease lasts at most 366 days from now");
        r = lease_authorize(c, m, l, method_extend_lease, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* 0: it waits for polkit */
        l->end_usec += by;
        r = sd_event_source_set_time(l->timer, l->end_usec);
        if (r < 0)
                return r;
        log_dut_prefix(LOG_INFO, 0, l->dut, "Lease %s extended", l->name);
        agent_emit_lease_properties(c->agent, l->dut);
        agent_emit(c->agent, "DutChanged", l->dut);
        return sd_bus_reply_method_return(m, "t", l->end_usec);
}

static int method_list_leases(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sssutt)");
        if (r < 0)
                return r;
        for (LocalLease *l = c->agent->leases; l; l = l->next) {
                r = sd_bus_message_append(reply, "(sssutt)", l->name, l->dut, l->holder, (uint32_t) l->uid,
                                          l->begin_usec, l->end_usec);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_dut_access(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Connection *c = userdata;
        Agent *a = c->agent;
        const char *name;
        LocalLease *l;
        Dut *d = NULL;
        int r;

        r = read_dut(m, c, error, &name, &d);
        if (r < 0)
                return r;
        l = local_lease_by_dut(a, name);
        if (!l)
                return sd_bus_reply_method_return(m, "buus", 0, (uint32_t) -1, (uint32_t) -1, "");
        return sd_bus_reply_method_return(m, "buus", 1, (uint32_t) l->uid,
                                          a->have_share_group ? (uint32_t) a->share_gid : (uint32_t) -1, l->name);
}

static int method_set_power_as(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return agent_call_as(m, userdata, error, method_set_power);
}

static int method_open_serial_log_as(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return agent_call_as(m, userdata, error, method_open_serial_log);
}

static int method_serial_log_sync_as(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return agent_call_as(m, userdata, error, method_serial_log_sync);
}

static int method_open_storage_as(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return agent_call_as(m, userdata, error, method_open_storage);
}

static int method_set_gpio_as(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return agent_call_as(m, userdata, error, method_set_gpio);
}

static int method_release_dut_as(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return agent_call_as(m, userdata, error, method_release_dut);
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
        SD_BUS_METHOD_WITH_ARGS("GetDutAccess",
                                SD_BUS_ARGS("s", dut),
                                SD_BUS_RESULT("b", leased, "u", holder_uid, "u", share_gid, "s", lease),
                                method_get_dut_access, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetPowerAs",
                                SD_BUS_ARGS("u", uid, "s", dut, "s", action),
                                SD_BUS_NO_RESULT,
                                method_set_power_as, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenSerialLogAs",
                                SD_BUS_ARGS("u", uid, "s", dut),
                                SD_BUS_RESULT("h", fd, "t", reader),
                                method_open_serial_log_as, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SerialLogSyncAs",
                                SD_BUS_ARGS("u", uid, "s", dut, "t", reader),
                                SD_BUS_NO_RESULT,
                                method_serial_log_sync_as, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenStorageAs",
                                SD_BUS_ARGS("u", uid, "s", dut, "b", writable),
                                SD_BUS_RESULT("h", fd, "t", size, "t", session),
                                method_open_storage_as, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetGpioAs",
                                SD_BUS_ARGS("u", uid, "s", dut, "s", line, "b", value),
                                SD_BUS_NO_RESULT,
                                method_set_gpio_as, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseDutAs",
                                SD_BUS_ARGS("u", uid, "s", dut),
                                SD_BUS_NO_RESULT,
                                method_release_dut_as, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("PowerChanged",
                                SD_BUS_ARGS("s", dut, "s", state),
                                0),
        SD_BUS_SIGNAL_WITH_ARGS("DutAdded",
                                SD_BUS_ARGS("s", dut),
                                0),
        SD_BUS_SIGNAL_WITH_ARGS("DutChanged",
                                SD_BUS_ARGS("s", dut),
                                0),
        SD_BUS_SIGNAL_WITH_ARGS("DutRemoved",
                                SD_BUS_ARGS("s", dut),
                                0),
        SD_BUS_VTABLE_END,
};


static const sd_bus_vtable leases_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("CreateLease",
                                SD_BUS_ARGS("s", dut_or_selector, "t", duration_usec),
                                SD_BUS_RESULT("s", lease, "s", dut, "t", end_usec),
                                method_create_lease, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseLease",
                                SD_BUS_ARGS("s", lease_or_dut),
                                SD_BUS_NO_RESULT,
                                method_release_lease, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ExtendLease",
                                SD_BUS_ARGS("s", lease_or_dut, "t", by_usec),
                                SD_BUS_RESULT("t", end_usec),
                                method_extend_lease, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListLeases",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssutt)", leases),
                                method_list_leases, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("LeaseStarted",
                                SD_BUS_ARGS("s", lease, "s", dut, "u", holder_uid),
                                0),
        SD_BUS_SIGNAL_WITH_ARGS("LeaseEnded",
                                SD_BUS_ARGS("s", lease, "s", dut),
                                0),
        SD_BUS_VTABLE_END,
};

/* One object per DUT: /dev/jumpstarter/dut/<escaped name> */

static Dut *dut_from_path(Agent *a, const char *path) {
        _cleanup_free_ char *name = NULL;

        if (sd_bus_path_decode(path, AGENT_DUT_OBJECT_PREFIX, &name) <= 0 || !name)
                return NULL;
        return exporter_find_dut(a->exporter, name);
}

static int dut_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                           sd_bus_error *error) {
        Agent *a = userdata;

        if (!dut_from_path(a, path))
                return 0;
        *ret_found = a;
        return 1;
}

static int dut_object_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                                sd_bus_error *error) {
        Agent *a = userdata;
        size_t n = exporter_n_duts(a->exporter);
        char **nodes;

        nodes = calloc(n + 1, sizeof *nodes);
        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                nodes[i] = dut_object_path(dut_get_name(exporter_get_dut(a->exporter, i)));
                if (!nodes[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(nodes[j]);
                        free(nodes);
                        return -ENOMEM;
                }
        }
        *ret_nodes = nodes;
        return 0;
}

static int dut_property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        Dut *d = dut_from_path(a, path);
        PowerState state;
        LocalLease *l;

        if (!d)
                return sd_bus_error_set_errnof(error, ENOENT, "The DUT went away");
        l = local_lease_by_dut(a, dut_get_name(d));

        if (streq(property, "Name"))
                return sd_bus_message_append(reply, "s", dut_get_name(d));
        if (streq(property, "Power"))
                return sd_bus_message_append(reply, "s",
                                             dut_get_power(d, &state) < 0 ? "" : strna(power_state_to_string(state)));
        if (streq(property, "Leased"))
                return sd_bus_message_append(reply, "b", (int) !!l);
        if (streq(property, "Holder"))
                return sd_bus_message_append(reply, "s", l ? l->holder : "");
        if (streq(property, "HolderUid"))
                return sd_bus_message_append(reply, "u", l ? (uint32_t) l->uid : (uint32_t) -1);
        if (streq(property, "Lease"))
                return sd_bus_message_append(reply, "s", l ? l->name : "");
        if (streq(property, "LeaseEnd"))
                return sd_bus_message_append(reply, "t", l ? l->end_usec : UINT64_C(0));
        return -ENOENT;
}

static const sd_bus_vtable dut_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", dut_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Power", "s", dut_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Leased", "b", dut_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Holder", "s", dut_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HolderUid", "u", dut_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Lease", "s", dut_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LeaseEnd", "t", dut_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
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
         * detaches the bus from the event loop. The system bus is flushed: it is the bus daemon,
         * which reads, and the last signals should reach it. */
        if (c->system) {
                (void) sd_bus_flush(c->bus);
                sd_bus_detach_event(c->bus);
        }
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
        {
                struct ucred ucred;
                socklen_t len = sizeof ucred;

                /* Who may speak for others (the *As methods): root, or the daemon's own user. */
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &ucred, &len) < 0) {
                        free(c);
                        return log_error_errno(errno, "Failed to get the peer's credentials: %m");
                }
                c->peer_uid = ucred.uid;
        }

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

        if (a->system) {
                _cleanup_free_ char *path = dut_object_path(dut_get_name(d));
                int r;

                r = sd_bus_emit_signal(a->system->bus, AGENT_OBJECT_PATH, AGENT_INTERFACE, "PowerChanged", "ss",
                                       dut_get_name(d), power_state_to_string(state));
                if (r >= 0 && path)
                        r = sd_bus_emit_properties_changed(a->system->bus, path, AGENT_DUT_INTERFACE, "Power", NULL);
                if (r < 0)
                        log_debug_errno(r, "Failed to send PowerChanged on the system bus: %m");
        }
        for (Connection *c = a->connections; c; c = c->next) {
                int r = sd_bus_emit_signal(c->bus, AGENT_OBJECT_PATH, AGENT_INTERFACE, "PowerChanged", "ss",
                                           dut_get_name(d), power_state_to_string(state));
                if (r < 0)
                        log_debug_errno(r, "Failed to send PowerChanged to connection %" PRIu64 ": %m", c->id);
        }
}

static void agent_emit(Agent *a, const char *member, const char *dut) {
        if (a->system) {
                int r = sd_bus_emit_signal(a->system->bus, AGENT_OBJECT_PATH, AGENT_INTERFACE, member, "s", dut);
                if (r < 0)
                        log_debug_errno(r, "Failed to send %s on the system bus: %m", member);
        }
        for (Connection *c = a->connections; c; c = c->next) {
                int r = sd_bus_emit_signal(c->bus, AGENT_OBJECT_PATH, AGENT_INTERFACE, member, "s", dut);
                if (r < 0)
                        log_debug_errno(r, "Failed to send %s to connection %" PRIu64 ": %m", member, c->id);
        }
}

/* ObjectManager's InterfacesAdded/Removed for a DUT's object. */
static void agent_emit_object(Agent *a, Dut *d, bool added) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (!a->system || !(path = dut_object_path(dut_get_name(d))))
                return;
        r = added ? sd_bus_emit_object_added(a->system->bus, path) : sd_bus_emit_object_removed(a->system->bus, path);
        if (r < 0)
                log_debug_errno(r, "Failed to announce the object of %s: %m", dut_get_name(d));
}

static void agent_on_dut_changed(Exporter *e, Dut *d, ExporterDutEvent event, void *userdata) {
        Agent *a = userdata;
        LocalLease *l;

        if (event == EXPORTER_DUT_ADDED) {
                agent_emit_object(a, d, true);
                return agent_emit(a, "DutAdded", dut_get_name(d));
        }
        if (event == EXPORTER_DUT_CHANGED)
                return agent_emit(a, "DutChanged", dut_get_name(d));

        /* Its lease goes with it (quietly: DutRemoved says it all). */
        l = local_lease_by_dut(a, dut_get_name(d));
        if (l) {
                for (LocalLease **link = &a->leases; *link; link = &(*link)->next)
                        if (*link == l) {
                                *link = l->next;
                                break;
                        }
                local_lease_revoke(l);
                local_lease_free(l);
        }
        agent_emit_object(a, d, false);

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
        while (a->queries)
                polkit_query_free(a->queries);
        while (a->leases) {
                LocalLease *l = a->leases;

                a->leases = l->next;
                local_lease_return_pty(l, exporter_find_dut(a->exporter, l->dut));
                local_lease_free(l);
        }
        while (a->connections)
                connection_free(a->connections);
        if (a->system) {
                connection_free(a->system);
                a->system = NULL;
        }
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

void agent_set_share_group(Agent *a, gid_t gid) {
        a->have_share_group = true;
        a->share_gid = gid;
}

int agent_attach_system_bus(Agent *a, sd_bus *bus) {
        Connection *c;
        int r;

        assert(a);
        assert(bus);
        assert(!a->system);

        c = calloc(1, sizeof *c);
        if (!c)
                return log_oom();
        c->agent = a;
        c->system = true;
        c->id = ++a->n_connections_total;
        c->bus = sd_bus_ref(bus);
        a->system = c;

        (void) sd_bus_error_add_map(agent_error_map);
        /* Objects first, then the name: a caller that sees the name finds everything. */
        r = sd_bus_add_object_vtable(bus, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, agent_vtable, c);
        if (r < 0)
                return log_error_errno(r, "Failed to register the agent object on the system bus: %m");
        r = sd_bus_add_object_vtable(bus, NULL, AGENT_OBJECT_PATH, AGENT_LEASES_INTERFACE, leases_vtable, c);
        if (r < 0)
                return log_error_errno(r, "Failed to register the leases interface: %m");
        r = sd_bus_add_fallback_vtable(bus, NULL, AGENT_DUT_OBJECT_PREFIX, AGENT_DUT_INTERFACE, dut_vtable,
                                       dut_object_find, a);
        if (r < 0)
                return log_error_errno(r, "Failed to register the DUT objects: %m");
        r = sd_bus_add_node_enumerator(bus, NULL, AGENT_DUT_OBJECT_PREFIX, dut_object_enumerate, a);
        if (r < 0)
                return log_error_errno(r, "Failed to register the DUT object enumerator: %m");
        r = sd_bus_add_object_manager(bus, NULL, AGENT_DUT_OBJECT_PREFIX);
        if (r < 0)
                return log_error_errno(r, "Failed to register the object manager: %m");

        r = sd_bus_attach_event(bus, a->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the system bus to the event loop: %m");
        /* Without the bus nobody can reach us there: exit, and let systemd restart us. */
        r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the system bus connection: %m");

        r = sd_bus_request_name(bus, AGENT_BUS_NAME, 0);
        if (r == -EEXIST)
                return log_error_errno(r, "Another process owns %s on the system bus already", AGENT_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Failed to take the name %s on the system bus (is %s installed in "
                                       "dbus-1/system.d?): %m", AGENT_BUS_NAME, AGENT_BUS_NAME ".conf");
        log_info("Serving on the system bus as %s", AGENT_BUS_NAME);
        return 0;
}
