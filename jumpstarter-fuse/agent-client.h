/* Connection to jumpstarterd: peer-to-peer D-Bus, asynchronous calls, reconnecting after a loss */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

typedef struct Agent Agent;

typedef struct AgentCallbacks {
        /* A connection is up (calls may be made now). */
        void (*connected)(Agent *a, void *userdata);
        /* The connection was lost; every call still pending has already been failed with -EIO. A new
         * connection is attempted every second. */
        void (*disconnected)(Agent *a, void *userdata);
        /* The signals DutAdded, DutRemoved and DutChanged, with a valid DUT name (others are
         * ignored), in the order they came among the replies. */
        void (*dut_added)(Agent *a, const char *dut, void *userdata);
        void (*dut_removed)(Agent *a, const char *dut, void *userdata);
        void (*dut_changed)(Agent *a, const char *dut, void *userdata);
} AgentCallbacks;

/* The reply of a call: error is 0 and reply the method return, or error is a negative errno (the
 * daemon's System.Error.E*, or -EIO when the connection was lost) and reply the error message or NULL. */
typedef void (*agent_reply_t)(sd_bus_message *reply, int error, void *userdata);
/* Called exactly once for every call that agent_call() accepted, after the reply handler if that
 * ran at all (it doesn't when the agent is freed with calls pending). */
typedef void (*agent_destroy_t)(void *userdata);

int agent_new(sd_event *event, const char *socket_path, const AgentCallbacks *callbacks, void *userdata, Agent **ret);
Agent *agent_free(Agent *a);

/* The first connection; fails synchronously when the socket cannot be connected. */
int agent_connect(Agent *a);
/* Drops the current connection (as if lost) and reconnects later. */
void agent_drop(Agent *a);

bool agent_is_connected(const Agent *a);
/* Counts connections; changes whenever a connection is lost. */
uint64_t agent_generation(const Agent *a);

/* Calls method of the agent interface with arguments (types as for sd_bus_message_append). On
 * success the call is pending and destroy (if set) will be called; on failure (-EIO when not
 * connected) neither handler nor destroy is called. */
int agent_call(Agent *a, const char *method, uint64_t timeout_usec, agent_reply_t handler,
               void *userdata, agent_destroy_t destroy, const char *types, ...);
/* agent_callv() of method's "As" variant on behalf of uid (the uid of a FUSE request): the uid goes
 * first, then the arguments (libjumpstarter/agent-api.h). */
int agent_callv_as(Agent *a, uid_t uid, const char *method, uint64_t timeout_usec, agent_reply_t handler,
                   void *userdata, agent_destroy_t destroy, const char *types, va_list ap);
/* agent_call() with the arguments as a va_list, for wrappers that pass their own on. */
int agent_callv(Agent *a, const char *method, uint64_t timeout_usec, agent_reply_t handler,
                void *userdata, agent_destroy_t destroy, const char *types, va_list ap);
