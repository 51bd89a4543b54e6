/* Lease scheduler: exporters, leases, the priority queue and lease timers, in memory */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "selector.h"

/* The rules this file implements are written down in docs/leases.md.
 *
 * The scheduler does no I/O. Every change to a lease, including the ones that happen on their own
 * (expiry, a wait deadline, the handoff of a released exporter to the next waiter), is reported
 * through one callback, so that the controller can persist it (store.h) and stream it to watchers.
 * Exporter changes are not reported: they only ever happen because the caller asked for them. */

typedef enum ExporterState {
        EXPORTER_ONLINE,   /* linked to the controller: may be leased */
        EXPORTER_OFFLINE,  /* link lost: its lease ends (ExporterGone), it gets no new one */
        EXPORTER_DISABLED, /* taken out by an admin: its lease runs to its end, it gets no new one */
        _EXPORTER_STATE_MAX,
        _EXPORTER_STATE_INVALID = -EINVAL,
} ExporterState;

typedef enum LeaseState {
        LEASE_PENDING, /* in the queue */
        LEASE_ACTIVE,  /* holds an exporter until end_usec */
        LEASE_ENDED,   /* only ever seen in the LEASE_EVENT_ENDED callback */
        _LEASE_STATE_MAX,
        _LEASE_STATE_INVALID = -EINVAL,
} LeaseState;

/* Stable strings, in the style of the API's reasons: the strings are the contract. */
typedef enum LeaseEndReason {
        LEASE_END_RELEASED,      /* "Released": by its holder, pending or active */
        LEASE_END_EXPIRED,       /* "Expired": its duration ran out */
        LEASE_END_REVOKED,       /* "Revoked": by an admin, pending or active */
        LEASE_END_EXPORTER_GONE, /* "ExporterGone": its exporter went offline or was removed */
        LEASE_END_WAIT_TIMEOUT,  /* "WaitTimeout": still pending when its wait deadline passed */
        _LEASE_END_REASON_MAX,
        _LEASE_END_REASON_INVALID = -EINVAL, /* not ended */
} LeaseEndReason;

/* Why a lease is pending, for "jmp lease create --wait" to show while it waits. */
typedef enum LeasePendingReason {
        LEASE_PENDING_NO_MATCHING_EXPORTER, /* "NoMatchingExporter": no registered exporter matches (yet) */
        LEASE_PENDING_EXPORTERS_UNAVAILABLE, /* "ExportersUnavailable": matching ones are offline or disabled */
        LEASE_PENDING_EXPORTERS_BUSY,       /* "ExportersBusy": a matching one is online but leased */
        _LEASE_PENDING_REASON_MAX,
        _LEASE_PENDING_REASON_INVALID = -EINVAL,
} LeasePendingReason;

typedef enum LeaseEvent {
        LEASE_EVENT_CREATED,  /* entered the scheduler, pending; ASSIGNED follows at once if an exporter is free */
        LEASE_EVENT_ASSIGNED, /* pending -> active */
        LEASE_EVENT_EXTENDED, /* end_usec moved later */
        LEASE_EVENT_ENDED,    /* -> ended; the lease is freed when the callback returns */
        _LEASE_EVENT_MAX,
        _LEASE_EVENT_INVALID = -EINVAL,
} LeaseEvent;

const char *exporter_state_to_string(ExporterState s);
ExporterState exporter_state_from_string(const char *s);
const char *lease_state_to_string(LeaseState s);
LeaseState lease_state_from_string(const char *s);
const char *lease_end_reason_to_string(LeaseEndReason r);
LeaseEndReason lease_end_reason_from_string(const char *s);
const char *lease_pending_reason_to_string(LeasePendingReason r);
LeasePendingReason lease_pending_reason_from_string(const char *s);
const char *lease_event_to_string(LeaseEvent e);
LeaseEvent lease_event_from_string(const char *s);

typedef struct Lease Lease;
typedef struct Exporter Exporter;
typedef struct LeaseScheduler LeaseScheduler;

/* Read-only for users. Times are CLOCK_REALTIME microseconds, for people and the store; the timers
 * behind them run on CLOCK_BOOTTIME (see lease-scheduler.c). */
struct Exporter {
        char *name;
        Label *labels;
        size_t n_labels;
        ExporterState state;
        Lease *lease;          /* the active lease holding it, or NULL */
        uint64_t last_used;    /* scheduler sequence number of its last assignment; 0: never leased */
};

struct Lease {
        char *name;
        char *client;
        char *selector_text;   /* canonical form */
        Selector *selector;
        Label *metadata;
        size_t n_metadata;
        int priority;          /* higher first */
        uint64_t duration_usec;
        uint64_t wait_usec;    /* how long it may stay pending; 0: as long as it takes */
        uint64_t created_usec;
        uint64_t begin_usec;   /* 0 while pending */
        uint64_t end_usec;     /* while active: when it expires; once ended: when it ended */
        LeaseState state;
        LeaseEndReason end_reason;
        char *exporter;        /* name of the exporter it holds or held; NULL if never assigned */
        uint64_t seq;          /* creation order: "age" in the queue; only the order means anything */

        /* Private. */
        LeaseScheduler *scheduler;
        sd_event_source *timer; /* expiry while active, wait deadline while pending */
};

/* Called for every lease change, after the change. The callback may read the scheduler but must
 * not change it (that is asserted): it persists and streams, it doesn't decide. */
typedef void (*lease_scheduler_handler_t)(LeaseScheduler *s, const Lease *lease, LeaseEvent event,
                                          void *userdata);

/* Whether the lease may hold the exporter beyond its selector (the access policy, docs/policy.md);
 * consulted wherever the selector is. It must not change the scheduler. */
typedef bool (*lease_scheduler_filter_t)(const Lease *lease, const Exporter *exporter, void *userdata);
void lease_scheduler_set_filter(LeaseScheduler *s, lease_scheduler_filter_t allowed, void *userdata);
/* Hands every free exporter to its best waiter: after the filter changed its mind. */
void lease_scheduler_reschedule(LeaseScheduler *s);

int lease_scheduler_new(sd_event *event, lease_scheduler_handler_t on_change, void *userdata,
                        LeaseScheduler **ret);
/* Drops every lease and timer without callbacks: shutting down is not a lease change, the leases
 * live on in the store. */
LeaseScheduler *lease_scheduler_free(LeaseScheduler *s);
static inline void lease_scheduler_freep(LeaseScheduler **s) {
        if (*s)
                lease_scheduler_free(*s);
}

/* Exporters. Names as DUT names (dut_name_is_valid()), or "EXPORTER/DUT" with each part a DUT name (the
 * controller's devices); labels are copied. -EEXIST, -ENOENT,
 * -EINVAL. Each of these hands a newly usable exporter to the best waiter before returning. */
int lease_scheduler_add_exporter(LeaseScheduler *s, const char *name, const Label *labels, size_t n_labels,
                                 ExporterState state);
/* An active lease keeps its exporter even if the new labels no longer match its selector. */
int lease_scheduler_update_exporter_labels(LeaseScheduler *s, const char *name, const Label *labels,
                                           size_t n_labels);
int lease_scheduler_set_exporter_state(LeaseScheduler *s, const char *name, ExporterState state);
int lease_scheduler_remove_exporter(LeaseScheduler *s, const char *name);
int lease_scheduler_get_exporter(LeaseScheduler *s, const char *name, const Exporter **ret);
/* In name order. */
size_t lease_scheduler_n_exporters(LeaseScheduler *s);
const Exporter *lease_scheduler_exporter_at(LeaseScheduler *s, size_t i);

typedef struct LeaseRequest {
        const char *name;       /* NULL: "lease-" and 16 random hex digits */
        const char *client;     /* required */
        const char *selector;   /* NULL or "": any exporter */
        uint64_t duration_usec; /* required, > 0 */
        uint64_t wait_usec;     /* 0: no wait deadline */
        int priority;
        const Label *metadata;  /* copied */
        size_t n_metadata;
} LeaseRequest;

/* Returns at once with the lease active (a free matching exporter was found) or pending (queued).
 * Errors: -EINVAL with *ret_error set to the parser's message for a bad selector, or without a
 * message for a bad name, client, duration or metadata; -EDOM with *ret_error set for a selector
 * that no set of labels can ever match (the API's "Unsatisfiable"): such a lease is refused, not
 * queued, since it would wait forever. A selector that only no *registered* exporter matches is
 * queued: the exporter may register later (lease_scheduler_pending_reason() says
 * NoMatchingExporter). -EEXIST if a live lease has that name. *ret stays valid until the lease ends. */
int lease_scheduler_create(LeaseScheduler *s, const LeaseRequest *req, const Lease **ret, char **ret_error);

/* End a pending or active lease: Released (its holder) or Revoked (an admin). -ENOENT. */
int lease_scheduler_release(LeaseScheduler *s, const char *name);
int lease_scheduler_revoke(LeaseScheduler *s, const char *name);
/* Only active leases: -EBUSY while pending. -ERANGE on overflow. */
int lease_scheduler_extend(LeaseScheduler *s, const char *name, uint64_t by_usec);

/* Live (pending or active) leases only: ended ones belong to the store's history. */
int lease_scheduler_get(LeaseScheduler *s, const char *name, const Lease **ret);
/* Live leases in creation order; the array is the caller's, the leases are not. */
int lease_scheduler_list(LeaseScheduler *s, const Lease ***ret, size_t *ret_n);
/* 0 for the head of the queue; -EBUSY if the lease is not pending. */
int lease_scheduler_queue_position(LeaseScheduler *s, const Lease *lease, size_t *ret);
LeasePendingReason lease_scheduler_pending_reason(LeaseScheduler *s, const Lease *lease);

/* Restoring the live leases of a store after a restart. */
typedef struct LeaseRestore {
        const char *name;       /* required, a DUT name */
        const char *client;     /* required */
        const char *selector;   /* NULL or "": any exporter */
        int priority;
        const Label *metadata;
        size_t n_metadata;
        uint64_t duration_usec; /* > 0; for an active lease, including its extensions */
        uint64_t wait_usec;     /* 0: no wait deadline */
        uint64_t created_usec;  /* CLOCK_REALTIME, as reported before the restart */
        LeaseState state;       /* LEASE_PENDING or LEASE_ACTIVE */
        const char *exporter;   /* LEASE_ACTIVE: the exporter it holds, which must exist and be unleased */
        uint64_t begin_usec;    /* LEASE_ACTIVE: CLOCK_REALTIME */
        uint64_t end_usec;      /* LEASE_ACTIVE: CLOCK_REALTIME */
} LeaseRestore;

/* Puts a live lease back, with its original times, without a callback and without scheduling. Call it
 * after the exporters are added, once per lease in creation order: the queue keeps that order among
 * equal priorities. Timers count from the stored times; lease_scheduler_restore_done() ends what ran out
 * while the controller was down.
 * -EINVAL, -EEXIST for a live name, -ENOENT for an unknown exporter, -EBUSY if it is leased already. */
int lease_scheduler_restore(LeaseScheduler *s, const LeaseRestore *r, char **ret_error);
/* After the last lease_scheduler_restore(), with callbacks: ends what ran out while the controller was
 * down (WaitTimeout, then Expired) and the active leases of offline exporters (ExporterGone), then hands
 * every free exporter to its best waiter. */
void lease_scheduler_restore_done(LeaseScheduler *s);
