/* Connection to jumpstarterd: peer-to-peer D-Bus, asynchronous calls, reconnecting after a loss */
#include <stdarg.h>
#include <stdlib.h>

#include "agent-api.h"
#include "agent-client.h"
#include "config.h"
#include "log.h"
#include "macro.h"

#define RECONNECT_USEC USEC_PER_SEC

struct Agent {
        sd_event *event;
        char *socket_path;
        char *address;
        AgentCallbacks callbacks;
        void *userdata;

        sd_bus *bus;
        /* A bus that was lost; released from the reconnect timer rather than from its own callback. */
        sd_bus *dead_bus;
        bool connected;
        uint64_t generation;
        sd_event_source *reconnect_source;
};

typedef struct AgentCall {
        char *method;
        agent_reply_t handler;
        agent_destroy_t destroy;
        void *userdata;
} AgentCall;

static int agent_on_reconnect(sd_event_source *s, uint64_t usec, void *userdata);

int agent_new(sd_event *event, const char *socket_path, const AgentCallbacks *callbacks, void *userdata, Agent **ret) {
        Agent *a;
        int r;

        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->event = sd_event_ref(event);
        a->callbacks = *callbacks;
        a->userdata = userdata;
        a->socket_path = strdup(socket_path);
        if (!a->socket_path || asprintf(&a->address, "unix:path=%s", socket_path) < 0) {
                agent_free(a);
                return -ENOMEM;
        }

        r = sd_event_add_time_relative(event, &a->reconnect_source, CLOCK_MONOTONIC, RECONNECT_USEC, 0,
                                       agent_on_reconnect, a);
        if (r < 0) {
                agent_free(a);
                return r;
        }
        (void) sd_event_source_set_enabled(a->reconnect_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(a->reconnect_source, "agent-reconnect");

        *ret = a;
        return 0;
}

static sd_bus *bus_release(sd_bus *bus) {
        if (!bus)
                return NULL;
        (void) sd_bus_detach_event(bus);
        /* Pending calls are destroyed here (their destroy callbacks run). */
        return sd_bus_flush_close_unref(bus);
}

Agent *agent_free(Agent *a) {
        if (!a)
                return NULL;
        a->connected = false;
        a->bus = bus_release(a->bus);
        a->dead_bus = bus_release(a->dead_bus);
        sd_event_source_disable_unref(a->reconnect_source);
        sd_event_unref(a->event);
        free(a->socket_path);
        free(a->address);
        free(a);
        return NULL;
}

bool agent_is_connected(const Agent *a) {
        return a && a->connected;
}

uint64_t agent_generation(const Agent *a) {
        return a->generation;
}

static void agent_schedule_reconnect(Agent *a) {
        (void) sd_event_source_set_time_relative(a->reconnect_source, RECONNECT_USEC);
        (void) sd_event_source_set_enabled(a->reconnect_source, SD_EVENT_ONESHOT);
}

static void agent_lost(Agent *a) {
        if (!a->connected)
                return;
        a->connected = false;
        a->generation++;
        /* The bus is still dispatching: keep it until the reconnect timer. */
        bus_release(a->dead_bus);
        a->dead_bus = TAKE_PTR(a->bus);
        agent_schedule_reconnect(a);
        if (a->callbacks.disconnected)
                a->callbacks.disconnected(a, a->userdata);
}

static int agent_on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Agent *a = userdata;

        log_warning("Lost the connection to jumpstarterd at %s.", a->socket_path);
        agent_lost(a);
        return 0;
}

void agent_drop(Agent *a) {
        /* A connection that is closing already delivers Disconnected by itself. */
        if (!a->connected || sd_bus_is_open(a->bus) <= 0)
                return;
        log_debug("Dropping the connection to jumpstarterd.");
        /* sd_bus_close() fails nothing by itself: the calls still pending are destroyed (and their
         * requests answered) when the reconnect timer releases the bus. */
        sd_bus_close(a->bus);
        agent_lost(a);
}

static int agent_on_dut_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Agent *a = userdata;
        const char *dut;
        int r;

        r = sd_bus_message_read(m, "s", &dut);
        if (r <= 0 || !dut_name_is_valid(dut)) {
                log_warning("Ignoring a %s signal without a valid DUT name.", sd_bus_message_get_member(m));
                return 0;
        }
        log_debug("%s %s", sd_bus_message_get_member(m), dut);
        if (sd_bus_message_is_signal(m, AGENT_INTERFACE, "DutAdded")) {
                if (a->callbacks.dut_added)
                        a->callbacks.dut_added(a, dut, a->userdata);
        } else if (sd_bus_message_is_signal(m, AGENT_INTERFACE, "DutRemoved")) {
                if (a->callbacks.dut_removed)
                        a->callbacks.dut_removed(a, dut, a->userdata);
        } else if (a->callbacks.dut_changed)
                a->callbacks.dut_changed(a, dut, a->userdata);
        return 0;
}

static int agent_open(Agent *a) {
        static const char *const dut_signals[] = { "DutAdded", "DutRemoved", "DutChanged" };
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, a->address);
        if (r < 0)
                return r;
        r = sd_bus_negotiate_fds(bus, true);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", agent_on_disconnected, a);
        if (r < 0)
                return r;
        /* Peer to peer there is no bus to add matches to: the filters are local. */
        for (size_t i = 0; i < ELEMENTSOF(dut_signals); i++) {
                r = sd_bus_match_signal(bus, NULL, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, dut_signals[i],
                                        agent_on_dut_signal, a);
                if (r < 0)
                        return r;
        }
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, a->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;

        a->bus = TAKE_PTR(bus);
        a->connected = true;
        return 0;
}

int agent_connect(Agent *a) {
        int r;

        r = agent_open(a);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to jumpstarterd at %s: %m", a->socket_path);
        log_debug("Connected to jumpstarterd at %s.", a->socket_path);
        if (a->callbacks.connected)
                a->callbacks.connected(a, a->userdata);
        return 0;
}

static int agent_on_reconnect(sd_event_source *s, uint64_t usec, void *userdata) {
        Agent *a = userdata;
        int r;

        a->dead_bus = bus_release(a->dead_bus);
        if (a->connected)
                return 0;

        r = agent_open(a);
        if (r < 0) {
                log_debug_errno(r, "Reconnecting to jumpstarterd at %s failed, retrying: %m", a->socket_path);
                agent_schedule_reconnect(a);
                return 0;
        }
        log_info("Reconnected to jumpstarterd at %s.", a->socket_path);
        if (a->callbacks.connected)
                a->callbacks.connected(a, a->userdata);
        return 0;
}

static AgentCall *agent_call_free(AgentCall *c) {
        if (!c)
                return NULL;
        free(c->method);
        free(c);
        return NULL;
}

static void agent_call_destroy(void *userdata) {
        AgentCall *c = userdata;

        if (c->destroy)
                c->destroy(c->userdata);
        agent_call_free(c);
}

static int agent_call_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        AgentCall *c = userdata;
        int r = 0;

        if (sd_bus_message_is_method_error(m, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(m);

                if (sd_bus_is_open(sd_bus_message_get_bus(m)) <= 0)
                        r = -EIO; /* the connection is gone: the call's fate is unknown */
                else {
                        r = -sd_bus_error_get_errno(e);
                        if (r == 0)
                                r = -EIO;
                }
                log_debug_errno(r, "%s failed: %s: %s", c->method, strna(e ? e->name : NULL),
                                strna(e ? e->message : NULL));
        }

        c->handler(m, r, c->userdata);
        return 0;
}

static int agent_callv_full(Agent *a, const uid_t *as_uid, const char *method, uint64_t timeout_usec,
                            agent_reply_t handler, void *userdata, agent_destroy_t destroy, const char *types,
                            va_list ap) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_free_ char *member = NULL;
        AgentCall *c;
        int r;

        if (!a->connected || !a->bus)
                return -EIO;

        if (as_uid && asprintf(&member, "%sAs", method) < 0)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(a->bus, &m, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, member ?: method);
        if (r < 0)
                return r;
        if (as_uid) {
                r = sd_bus_message_append(m, "u", (uint32_t) *as_uid);
                if (r < 0)
                        return r;
        }
        if (types) {
                r = sd_bus_message_appendv(m, types, ap);
                if (r < 0)
                        return r;
        }

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (AgentCall) {
                .method = strdup(method),
                .handler = handler,
                .destroy = destroy,
                .userdata = userdata,
        };
        if (!c->method) {
                agent_call_free(c);
                return -ENOMEM;
        }

        r = sd_bus_call_async(a->bus, &slot, m, agent_call_reply, c, timeout_usec);
        if (r < 0) {
                agent_call_free(c);
                return r == -ENOTCONN ? -EIO : r;
        }
        /* From here on the slot owns c: the bus keeps the slot until the reply was handled. */
        (void) sd_bus_slot_set_destroy_callback(slot, agent_call_destroy);
        (void) sd_bus_slot_set_floating(slot, true);
        return 0;
}

int agent_callv(Agent *a, const char *method, uint64_t timeout_usec, agent_reply_t handler,
                void *userdata, agent_destroy_t destroy, const char *types, va_list ap) {
        return agent_callv_full(a, NULL, method, timeout_usec, handler, userdata, destroy, types, ap);
}

int agent_callv_as(Agent *a, uid_t uid, const char *method, uint64_t timeout_usec, agent_reply_t handler,
                   void *userdata, agent_destroy_t destroy, const char *types, va_list ap) {
        return agent_callv_full(a, &uid, method, timeout_usec, handler, userdata, destroy, types, ap);
}

int agent_call(Agent *a, const char *method, uint64_t timeout_usec, agent_reply_t handler,
               void *userdata, agent_destroy_t destroy, const char *types, ...) {
        va_list ap;
        int r;

        va_start(ap, types);
        r = agent_callv(a, method, timeout_usec, handler, userdata, destroy, types, ap);
        va_end(ap);
        return r;
}
