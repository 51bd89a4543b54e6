/* Lease scheduler: exporters, leases, the priority queue and lease timers, in memory */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lease-scheduler.h"
#include "macro.h"

/* Lease timers run on CLOCK_BOOTTIME. A lease is an interval granted at a point in time: "30m"
 * must stay 30 minutes when NTP steps the wall clock or an admin sets it (CLOCK_REALTIME would
 * end leases early or late), and must keep counting while the controller host is suspended
 * (CLOCK_MONOTONIC stops, so a suspended controller would hand out free time on wake). The
 * realtime begin/end stamps are only for people and the store. */
#define LEASE_TIMER_CLOCK CLOCK_BOOTTIME
/* A handoff target of 10 ms leaves no room for sd-event's default 250 ms timer slack. */
#define LEASE_TIMER_ACCURACY_USEC USEC_PER_MSEC

#define LEASE_NAME_RANDOM_BYTES 8

#define IN_SET_STATE(st) ((st) == LEASE_PENDING || (st) == LEASE_ACTIVE)

struct LeaseScheduler {
        sd_event *event;
        lease_scheduler_handler_t on_change;
        void *userdata;

        Exporter **exporters; /* sorted by name */
        size_t n_exporters;

        Lease **leases;       /* live leases, in creation order */
        size_t n_leases;

        Lease **queue;        /* pending leases: priority descending, then seq ascending */
        size_t n_queue;

        uint64_t seq;         /* orders lease creation and exporter use */
        unsigned in_callback;

        lease_scheduler_filter_t allowed; /* the access policy (policy.c); NULL: all allowed */
        void *allowed_userdata;
};

static const char *const exporter_state_table[_EXPORTER_STATE_MAX] = {
        [EXPORTER_ONLINE]   = "online",
        [EXPORTER_OFFLINE]  = "offline",
        [EXPORTER_DISABLED] = "disabled",
};

static const char *const lease_state_table[_LEASE_STATE_MAX] = {
        [LEASE_PENDING] = "pending",
        [LEASE_ACTIVE]  = "active",
        [LEASE_ENDED]   = "ended",
};

static const char *const lease_end_reason_table[_LEASE_END_REASON_MAX] = {
        [LEASE_END_RELEASED]      = "Released",
        [LEASE_END_EXPIRED]       = "Expired",
        [LEASE_END_REVOKED]       = "Revoked",
        [LEASE_END_EXPORTER_GONE] = "ExporterGone",
        [LEASE_END_WAIT_TIMEOUT]  = "WaitTimeout",
};

static const char *const lease_pending_reason_table[_LEASE_PENDING_REASON_MAX] = {
        [LEASE_PENDING_NO_MATCHING_EXPORTER]  = "NoMatchingExporter",
        [LEASE_PENDING_EXPORTERS_UNAVAILABLE] = "ExportersUnavailable",
        [LEASE_PENDING_EXPORTERS_BUSY]        = "ExportersBusy",
};

static const char *const lease_event_table[_LEASE_EVENT_MAX] = {
        [LEASE_EVENT_CREATED]  = "created",
        [LEASE_EVENT_ASSIGNED] = "assigned",
        [LEASE_EVENT_EXTENDED] = "extended",
        [LEASE_EVENT_ENDED]    = "ended",
};

static const char *table_to_string(const char *const *table, size_t n, int i) {
        return i >= 0 && (size_t) i < n ? table[i] : NULL;
}

static int table_from_string(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (streq(table[i], s))
                        return (int) i;
        return -EINVAL;
}

#define DEFINE_STRING_TABLE(name, type, table)                                          \
        const char *name##_to_string(type x) {                                          \
                return table_to_string(table, ELEMENTSOF(table), x);                    \
        }                                                                               \
        type name##_from_string(const char *s) {                                        \
                return (type) table_from_string(table, ELEMENTSOF(table), s);           \
        }

DEFINE_STRING_TABLE(exporter_state, ExporterState, exporter_state_table)
DEFINE_STRING_TABLE(lease_state, LeaseState, lease_state_table)
DEFINE_STRING_TABLE(lease_end_reason, LeaseEndReason, lease_end_reason_table)
DEFINE_STRING_TABLE(lease_pending_reason, LeasePendingReason, lease_pending_reason_table)
DEFINE_STRING_TABLE(lease_event, LeaseEvent, lease_event_table)

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                abort(); /* only with a bad clock id, a programmer error */
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* Labels */

static void labels_free(Label *labels, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(labels[i].key);
                free(labels[i].value);
        }
        free(labels);
}

static int labels_copy(const Label *labels, size_t n, Label **ret) {
        Label *c;

        assert(ret);

        if (n > 0 && !labels)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!labels[i].key || !labels[i].value || !*labels[i].key)
                        return -EINVAL;

        c = calloc(MAX(n, (size_t) 1), sizeof(Label));
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                c[i].key = strdup(labels[i].key);
                c[i].value = strdup(labels[i].value);
                if (!c[i].key || !c[i].value) {
                        labels_free(c, i + 1);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

/* Callbacks */

static void emit(LeaseScheduler *s, Lease *l, LeaseEvent event) {
        if (!s->on_change)
                return;
        s->in_callback++;
        s->on_change(s, l, event, s->userdata);
        s->in_callback--;
}

/* Exporters */

static Exporter *exporter_free(Exporter *e) {
        if (!e)
                return NULL;
        free(e->name);
        labels_free(e->labels, e->n_labels);
        free(e);
        return NULL;
}

/* Index of name in s->exporters, or where it would go as ~index. */
static ssize_t exporter_find(LeaseScheduler *s, const char *name) {
        size_t lo = 0, hi = s->n_exporters;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(name, s->exporters[mid]->name);

                if (c == 0)
                        return (ssize_t) mid;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return ~(ssize_t) lo;
}

static Exporter *exporter_get(LeaseScheduler *s, const char *name) {
        ssize_t i;

        if (!name)
                return NULL;
        i = exporter_find(s, name);
        return i >= 0 ? s->exporters[i] : NULL;
}

/* A DUT name, or "EXPORTER/DUT" with both parts DUT names: the controller's devices. */
static bool device_name_is_valid(const char *name) {
        _cleanup_free_ char *copy = NULL;
        char *slash;

        if (!name)
                return false;
        slash = strchr(name, '/');
        if (!slash)
                return dut_name_is_valid(name);
        copy = strdup(name);
        if (!copy)
                return false;
        copy[slash - name] = 0;
        return dut_name_is_valid(copy) && dut_name_is_valid(copy + (slash - name) + 1);
}

static bool exporter_is_free(const Exporter *e) {
        return e->state == EXPORTER_ONLINE && !e->lease;
}

static bool exporter_matches(const Exporter *e, const Lease *l) {
        const LeaseScheduler *s = l->scheduler;

        return selector_matches(l->selector, e->labels, e->n_labels) &&
               (!s->allowed || s->allowed(l, e, s->allowed_userdata));
}

/* Least recently used first, so that a pool wears evenly and a DUT that just came back from a
 * lease gets a moment before the next one; then by name, so that the choice is reproducible. */
static bool exporter_better(const Exporter *a, const Exporter *b) {
        if (a->last_used != b->last_used)
                return a->last_used < b->last_used;
        return strcmp(a->name, b->name) < 0;
}

/* Leases */

static Lease *lease_free(Lease *l) {
        if (!l)
                return NULL;
        sd_event_source_disable_unref(l->timer);
        free(l->name);
        free(l->client);
        free(l->selector_text);
        selector_free(l->selector);
        labels_free(l->metadata, l->n_metadata);
        free(l->exporter);
        free(l);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Lease *, lease_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(Selector *, selector_free);

static Lease *lease_get(LeaseScheduler *s, const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < s->n_leases; i++)
                if (streq(s->leases[i]->name, name))
                        return s->leases[i];
        return NULL;
}

/* Does a precede b in the queue? */
static bool lease_before(const Lease *a, const Lease *b) {
        if (a->priority != b->priority)
                return a->priority > b->priority;
        return a->seq < b->seq;
}

static void queue_insert(LeaseScheduler *s, Lease *l) {
        size_t lo = 0, hi = s->n_queue;

        /* After every lease it does not precede: equal keys cannot happen, seq is unique. */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (lease_before(l, s->queue[mid]))
                        hi = mid;
                else
                        lo = mid + 1;
        }
        memmove(s->queue + lo + 1, s->queue + lo, (s->n_queue - lo) * sizeof(Lease *));
        s->queue[lo] = l;
        s->n_queue++;
}

static ssize_t queue_index(LeaseScheduler *s, const Lease *l) {
        for (size_t i = 0; i < s->n_queue; i++)
                if (s->queue[i] == l)
                        return (ssize_t) i;
        return -ENOENT;
}

static void queue_remove(LeaseScheduler *s, Lease *l) {
        ssize_t i = queue_index(s, l);

        assert(i >= 0);
        memmove(s->queue + i, s->queue + i + 1, (s->n_queue - (size_t) i - 1) * sizeof(Lease *));
        s->n_queue--;
}

static void leases_remove(LeaseScheduler *s, Lease *l) {
        for (size_t i = 0; i < s->n_leases; i++)
                if (s->leases[i] == l) {
                        memmove(s->leases + i, s->leases + i + 1, (s->n_leases - i - 1) * sizeof(Lease *));
                        s->n_leases--;
                        return;
                }
        assert(false);
}

static void schedule_exporter(LeaseScheduler *s, Exporter *e);

/* Ends a live lease, reports it, frees it, and hands its exporter on. */
static void lease_end(Lease *l, LeaseEndReason reason) {
        LeaseScheduler *s = l->scheduler;
        Exporter *e = NULL;

        assert(l->state != LEASE_ENDED);

        l->timer = sd_event_source_disable_unref(l->timer);
        if (l->state == LEASE_PENDING)
                queue_remove(s, l);
        else {
                e = exporter_get(s, l->exporter);
                assert(e && e->lease == l);
                e->lease = NULL;
        }
        leases_remove(s, l);

        l->state = LEASE_ENDED;
        l->end_reason = reason;
        l->end_usec = now_usec(CLOCK_REALTIME);
        emit(s, l, LEASE_EVENT_ENDED);
        lease_free(l);

        /* The next waiter gets the exporter in this same call: no timer, no poll. */
        if (e)
                schedule_exporter(s, e);
}

static int on_lease_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        Lease *l = userdata;

        lease_end(l, l->state == LEASE_ACTIVE ? LEASE_END_EXPIRED : LEASE_END_WAIT_TIMEOUT);
        return 0;
}

static int lease_arm_timer(Lease *l, uint64_t usec) {
        LeaseScheduler *s = l->scheduler;
        sd_event_source *timer = NULL;
        int r;

        /* The old timer stays armed unless the new one exists: a failed assignment keeps the
         * lease's wait deadline. */
        if (usec > 0) {
                r = sd_event_add_time_relative(s->event, &timer, LEASE_TIMER_CLOCK, usec,
                                               LEASE_TIMER_ACCURACY_USEC, on_lease_timer, l);
                if (r < 0)
                        return r;
        }
        sd_event_source_disable_unref(l->timer);
        l->timer = timer;
        return 0;
}

/* The only way a lease becomes active. Cannot fail half-way: the timer is set up first. */
static int lease_assign(Lease *l, Exporter *e) {
        LeaseScheduler *s = l->scheduler;
        _cleanup_free_ char *name = NULL;
        int r;

        assert(l->state == LEASE_PENDING);
        assert(exporter_is_free(e));

        name = strdup(e->name);
        if (!name)
                return -ENOMEM;
        r = lease_arm_timer(l, l->duration_usec);
        if (r < 0)
                return r;

        queue_remove(s, l);
        free(l->exporter);
        l->exporter = TAKE_PTR(name);
        l->state = LEASE_ACTIVE;
        l->begin_usec = now_usec(CLOCK_REALTIME);
        l->end_usec = l->begin_usec + l->duration_usec;
        e->lease = l;
        e->last_used = ++s->seq;
        emit(s, l, LEASE_EVENT_ASSIGNED);
        return 0;
}

/* An exporter became usable: the best waiter that matches takes it. Every change that can make
 * an exporter usable calls this, which keeps the invariant "no free exporter matches a pending
 * lease", so that a new lease taking a free exporter never jumps the queue. */
static void schedule_exporter(LeaseScheduler *s, Exporter *e) {
        if (!exporter_is_free(e))
                return;
        for (size_t i = 0; i < s->n_queue; i++) {
                Lease *l = s->queue[i];

                if (!exporter_matches(e, l))
                        continue;
                /* Out of memory for a timer: this waiter stays queued, try the next one. */
                if (lease_assign(l, e) >= 0)
                        return;
        }
}

/* A new lease: the best free matching exporter, if any. */
static int schedule_lease(LeaseScheduler *s, Lease *l) {
        Exporter *best = NULL;

        for (size_t i = 0; i < s->n_exporters; i++) {
                Exporter *e = s->exporters[i];

                if (!exporter_is_free(e) || !exporter_matches(e, l))
                        continue;
                if (!best || exporter_better(e, best))
                        best = e;
        }
        return best ? lease_assign(l, best) : 0;
}

/* Scheduler */

void lease_scheduler_set_filter(LeaseScheduler *s, lease_scheduler_filter_t allowed, void *userdata) {
        assert(s && s->in_callback == 0);

        s->allowed = allowed;
        s->allowed_userdata = userdata;
}

void lease_scheduler_reschedule(LeaseScheduler *s) {
        assert(s && s->in_callback == 0);

        for (size_t i = 0; i < s->n_exporters; i++)
                schedule_exporter(s, s->exporters[i]);
}

int lease_scheduler_new(sd_event *event, lease_scheduler_handler_t on_change, void *userdata,
                        LeaseScheduler **ret) {
        LeaseScheduler *s;

        if (!event || !ret)
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->on_change = on_change;
        s->userdata = userdata;
        *ret = s;
        return 0;
}

LeaseScheduler *lease_scheduler_free(LeaseScheduler *s) {
        if (!s)
                return NULL;
        assert(s->in_callback == 0);
        for (size_t i = 0; i < s->n_leases; i++)
                lease_free(s->leases[i]);
        free(s->leases);
        free(s->queue);
        for (size_t i = 0; i < s->n_exporters; i++)
                exporter_free(s->exporters[i]);
        free(s->exporters);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

/* Exporter operations */

int lease_scheduler_add_exporter(LeaseScheduler *s, const char *name, const Label *labels, size_t n_labels,
                                 ExporterState state) {
        Exporter **a, *e;
        ssize_t i;
        int r;

        assert(s && s->in_callback == 0);

        if (!name || !device_name_is_valid(name) || state < 0 || state >= _EXPORTER_STATE_MAX)
                return -EINVAL;
        i = exporter_find(s, name);
        if (i >= 0)
                return -EEXIST;
        i = ~i;

        a = reallocarray(s->exporters, s->n_exporters + 1, sizeof(Exporter *));
        if (!a)
                return -ENOMEM;
        s->exporters = a;

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->name = strdup(name);
        if (!e->name) {
                exporter_free(e);
                return -ENOMEM;
        }
        r = labels_copy(labels, n_labels, &e->labels);
        if (r < 0) {
                exporter_free(e);
                return r;
        }
        e->n_labels = n_labels;
        e->state = state;

        memmove(s->exporters + i + 1, s->exporters + i, (s->n_exporters - (size_t) i) * sizeof(Exporter *));
        s->exporters[i] = e;
        s->n_exporters++;

        schedule_exporter(s, e);
        return 0;
}

int lease_scheduler_update_exporter_labels(LeaseScheduler *s, const char *name, const Label *labels,
                                           size_t n_labels) {
        Exporter *e;
        Label *copy;
        int r;

        assert(s && s->in_callback == 0);

        e = exporter_get(s, name);
        if (!e)
                return -ENOENT;
        r = labels_copy(labels, n_labels, &copy);
        if (r < 0)
                return r;
        labels_free(e->labels, e->n_labels);
        e->labels = copy;
        e->n_labels = n_labels;

        schedule_exporter(s, e);
        return 0;
}

int lease_scheduler_set_exporter_state(LeaseScheduler *s, const char *name, ExporterState state) {
        Exporter *e;

        assert(s && s->in_callback == 0);

        if (state < 0 || state >= _EXPORTER_STATE_MAX)
                return -EINVAL;
        e = exporter_get(s, name);
        if (!e)
                return -ENOENT;
        if (e->state == state)
                return 0;
        e->state = state;

        /* Offline: the lease holder has lost its DUT, say so at once rather than at expiry. The
         * waiters were never bound to this exporter, they stay queued. Disabled: drain, i.e. the
         * current lease runs to its end and no new one comes. */
        if (state == EXPORTER_OFFLINE && e->lease)
                lease_end(e->lease, LEASE_END_EXPORTER_GONE);
        schedule_exporter(s, e);
        return 0;
}

int lease_scheduler_remove_exporter(LeaseScheduler *s, const char *name) {
        Exporter *e;
        ssize_t i;

        assert(s && s->in_callback == 0);

        if (!name)
                return -ENOENT;
        i = exporter_find(s, name);
        if (i < 0)
                return -ENOENT;
        e = s->exporters[i];

        /* Offline first, so that lease_end() does not hand it to a waiter. */
        e->state = EXPORTER_OFFLINE;
        if (e->lease)
                lease_end(e->lease, LEASE_END_EXPORTER_GONE);

        memmove(s->exporters + i, s->exporters + i + 1, (s->n_exporters - (size_t) i - 1) * sizeof(Exporter *));
        s->n_exporters--;
        exporter_free(e);
        return 0;
}

int lease_scheduler_get_exporter(LeaseScheduler *s, const char *name, const Exporter **ret) {
        Exporter *e;

        assert(s);

        e = exporter_get(s, name);
        if (!e)
                return -ENOENT;
        if (ret)
                *ret = e;
        return 0;
}

size_t lease_scheduler_n_exporters(LeaseScheduler *s) {
        assert(s);
        return s->n_exporters;
}

const Exporter *lease_scheduler_exporter_at(LeaseScheduler *s, size_t i) {
        assert(s);
        return i < s->n_exporters ? s->exporters[i] : NULL;
}

/* Lease operations */

static int lease_name_generate(LeaseScheduler *s, char **ret) {
        uint8_t b[LEASE_NAME_RANDOM_BYTES];
        char *name;

        for (unsigned attempt = 0; attempt < 16; attempt++) {
                if (getrandom(b, sizeof(b), 0) != (ssize_t) sizeof(b))
                        return negative_errno();

                name = malloc(strlen("lease-") + 2 * sizeof(b) + 1);
                if (!name)
                        return -ENOMEM;
                strcpy(name, "lease-");
                for (size_t i = 0; i < sizeof(b); i++)
                        sprintf(name + strlen("lease-") + 2 * i, "%02x", b[i]);
                if (!lease_get(s, name)) {
                        *ret = name;
                        return 0;
                }
                free(name);
        }
        return -EEXIST;
}

/* Room for one more lease in both the lease array and the queue, before anything becomes visible,
 * so that adding the lease then cannot fail. */
static int reserve_lease_slot(LeaseScheduler *s) {
        Lease **a;

        a = reallocarray(s->leases, s->n_leases + 1, sizeof(Lease *));
        if (!a)
                return -ENOMEM;
        s->leases = a;
        a = reallocarray(s->queue, s->n_queue + 1, sizeof(Lease *));
        if (!a)
                return -ENOMEM;
        s->queue = a;
        return 0;
}

int lease_scheduler_create(LeaseScheduler *s, const LeaseRequest *req, const Lease **ret, char **ret_error) {
        _cleanup_(lease_freep) Lease *l = NULL;
        _cleanup_(selector_freep) Selector *sel = NULL;
        Lease *p;
        int r;

        assert(s && s->in_callback == 0);

        if (!req || !req->client || !*req->client || req->duration_usec == 0)
                return -EINVAL;
        if (req->duration_usec > UINT64_MAX / 4 || req->wait_usec > UINT64_MAX / 4)
                return -ERANGE;
        if (req->name) {
                if (!dut_name_is_valid(req->name))
                        return -EINVAL;
                if (lease_get(s, req->name))
                        return -EEXIST;
        }

        r = selector_parse(strempty(req->selector), &sel, ret_error);
        if (r < 0)
                return r;
        if (!selector_satisfiable(sel)) {
                if (ret_error && asprintf(ret_error, "selector \"%s\" can never match any exporter",
                                          req->selector) < 0)
                        *ret_error = NULL;
                return -EDOM;
        }

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->scheduler = s;
        l->state = LEASE_PENDING;
        l->end_reason = _LEASE_END_REASON_INVALID;
        l->selector = TAKE_PTR(sel);
        l->selector_text = selector_to_string(l->selector);
        l->client = strdup(req->client);
        if (req->name)
                l->name = strdup(req->name);
        else {
                r = lease_name_generate(s, &l->name);
                if (r < 0)
                        return r;
        }
        if (!l->selector_text || !l->client || !l->name)
                return -ENOMEM;
        r = labels_copy(req->metadata, req->n_metadata, &l->metadata);
        if (r < 0)
                return r;
        l->n_metadata = req->n_metadata;
        l->priority = req->priority;
        l->duration_usec = req->duration_usec;
        l->wait_usec = req->wait_usec;
        l->created_usec = now_usec(CLOCK_REALTIME);

        r = lease_arm_timer(l, l->wait_usec);
        if (r < 0)
                return r;

        r = reserve_lease_slot(s);
        if (r < 0)
                return r;

        l->seq = ++s->seq;
        p = TAKE_PTR(l);
        s->leases[s->n_leases++] = p;
        queue_insert(s, p);
        emit(s, p, LEASE_EVENT_CREATED);

        /* Without memory for the expiry timer the lease stays queued: it is valid, only not yet served. */
        (void) schedule_lease(s, p);

        if (ret)
                *ret = p;
        return 0;
}

int lease_scheduler_release(LeaseScheduler *s, const char *name) {
        Lease *l;

        assert(s && s->in_callback == 0);

        l = lease_get(s, name);
        if (!l)
                return -ENOENT;
        lease_end(l, LEASE_END_RELEASED);
        return 0;
}

int lease_scheduler_revoke(LeaseScheduler *s, const char *name) {
        Lease *l;

        assert(s && s->in_callback == 0);

        l = lease_get(s, name);
        if (!l)
                return -ENOENT;
        lease_end(l, LEASE_END_REVOKED);
        return 0;
}

int lease_scheduler_extend(LeaseScheduler *s, const char *name, uint64_t by_usec) {
        uint64_t deadline;
        Lease *l;
        int r;

        assert(s && s->in_callback == 0);

        l = lease_get(s, name);
        if (!l)
                return -ENOENT;
        if (l->state != LEASE_ACTIVE)
                return -EBUSY;
        if (by_usec == 0)
                return -EINVAL;
        if (by_usec > UINT64_MAX / 4 || l->duration_usec > UINT64_MAX / 4 - by_usec)
                return -ERANGE;

        r = sd_event_source_get_time(l->timer, &deadline);
        if (r < 0)
                return r;
        r = sd_event_source_set_time(l->timer, deadline + by_usec);
        if (r < 0)
                return r;
        l->duration_usec += by_usec;
        l->end_usec += by_usec;
        emit(s, l, LEASE_EVENT_EXTENDED);
        return 0;
}

int lease_scheduler_get(LeaseScheduler *s, const char *name, const Lease **ret) {
        Lease *l;

        assert(s);

        l = lease_get(s, name);
        if (!l)
                return -ENOENT;
        if (ret)
                *ret = l;
        return 0;
}

int lease_scheduler_list(LeaseScheduler *s, const Lease ***ret, size_t *ret_n) {
        const Lease **a;

        assert(s && ret && ret_n);

        a = calloc(MAX(s->n_leases, (size_t) 1), sizeof(Lease *));
        if (!a)
                return -ENOMEM;
        if (s->n_leases > 0)
                memcpy(a, s->leases, s->n_leases * sizeof(Lease *));
        *ret = a;
        *ret_n = s->n_leases;
        return 0;
}

int lease_scheduler_queue_position(LeaseScheduler *s, const Lease *lease, size_t *ret) {
        ssize_t i;

        assert(s && lease && ret);

        if (lease->state != LEASE_PENDING)
                return -EBUSY;
        i = queue_index(s, lease);
        if (i < 0)
                return (int) i;
        *ret = (size_t) i;
        return 0;
}

LeasePendingReason lease_scheduler_pending_reason(LeaseScheduler *s, const Lease *lease) {
        bool matched = false;

        assert(s && lease);

        if (lease->state != LEASE_PENDING)
                return _LEASE_PENDING_REASON_INVALID;
        for (size_t i = 0; i < s->n_exporters; i++) {
                const Exporter *e = s->exporters[i];

                if (!exporter_matches(e, lease))
                        continue;
                if (e->state == EXPORTER_ONLINE)
                        return LEASE_PENDING_EXPORTERS_BUSY;
                matched = true;
        }
        return matched ? LEASE_PENDING_EXPORTERS_UNAVAILABLE : LEASE_PENDING_NO_MATCHING_EXPORTER;
}

/* Restore */

static int lease_restore_error(char **ret_error, int r, const char *format, ...) _printf_(3, 4);
static int lease_restore_error(char **ret_error, int r, const char *format, ...) {
        va_list ap;

        if (!ret_error)
                return r;
        va_start(ap, format);
        if (vasprintf(ret_error, format, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return r;
}

/* usec from now until the CLOCK_REALTIME deadline, at least 1 (0 arms no timer): a deadline that
 * passed while the controller was down fires at once, from the loop. */
static uint64_t realtime_remaining(uint64_t deadline) {
        uint64_t now = now_usec(CLOCK_REALTIME);

        return deadline > now ? deadline - now : 1;
}

int lease_scheduler_restore(LeaseScheduler *s, const LeaseRestore *req, char **ret_error) {
        _cleanup_(lease_freep) Lease *l = NULL;
        _cleanup_(selector_freep) Selector *sel = NULL;
        Exporter *e = NULL;
        Lease *p;
        int r;

        assert(s && s->in_callback == 0);

        if (!req || !req->client || !*req->client || req->duration_usec == 0 ||
            !dut_name_is_valid(req->name) || !IN_SET_STATE(req->state))
                return lease_restore_error(ret_error, -EINVAL, "invalid lease record");
        if (req->duration_usec > UINT64_MAX / 4 || req->wait_usec > UINT64_MAX / 4)
                return lease_restore_error(ret_error, -ERANGE, "duration out of range");
        if (lease_get(s, req->name))
                return lease_restore_error(ret_error, -EEXIST, "lease %s is restored twice", req->name);
        if (req->state == LEASE_ACTIVE) {
                e = exporter_get(s, req->exporter);
                if (!e)
                        return lease_restore_error(ret_error, -ENOENT, "lease %s holds %s, which does not exist",
                                                   req->name, strna(req->exporter));
                if (e->lease)
                        return lease_restore_error(ret_error, -EBUSY, "lease %s holds %s, which %s holds too",
                                                   req->name, e->name, e->lease->name);
                if (req->end_usec <= req->begin_usec)
                        return lease_restore_error(ret_error, -EINVAL, "lease %s ends before it begins", req->name);
        }

        r = selector_parse(strempty(req->selector), &sel, ret_error);
        if (r < 0)
                return r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->scheduler = s;
        l->state = LEASE_PENDING;
        l->end_reason = _LEASE_END_REASON_INVALID;
        l->selector = TAKE_PTR(sel);
        l->selector_text = selector_to_string(l->selector);
        l->client = strdup(req->client);
        l->name = strdup(req->name);
        if (!l->selector_text || !l->client || !l->name)
                return -ENOMEM;
        r = labels_copy(req->metadata, req->n_metadata, &l->metadata);
        if (r < 0)
                return r;
        l->n_metadata = req->n_metadata;
        l->priority = req->priority;
        l->duration_usec = req->duration_usec;
        l->wait_usec = req->wait_usec;
        l->created_usec = req->created_usec;

        if (req->state == LEASE_ACTIVE) {
                l->exporter = strdup(e->name);
                if (!l->exporter)
                        return -ENOMEM;
                r = lease_arm_timer(l, realtime_remaining(req->end_usec));
        } else
                r = l->wait_usec > 0 ? lease_arm_timer(l, realtime_remaining(l->created_usec + l->wait_usec)) : 0;
        if (r < 0)
                return r;

        r = reserve_lease_slot(s);
        if (r < 0)
                return r;

        l->seq = ++s->seq;
        p = TAKE_PTR(l);
        s->leases[s->n_leases++] = p;
        if (req->state == LEASE_ACTIVE) {
                p->state = LEASE_ACTIVE;
                p->begin_usec = req->begin_usec;
                p->end_usec = req->end_usec;
                e->lease = p;
                e->last_used = p->seq;
        } else
                queue_insert(s, p);
        return 0;
}

void lease_scheduler_restore_done(LeaseScheduler *s) {
        uint64_t now = now_usec(CLOCK_REALTIME);

        assert(s && s->in_callback == 0);

        /* What ran out while the controller was down ends now, waiters first, so that an exporter
         * freed by an expiry never goes to a waiter whose deadline has passed. Restarting each scan
         * after an end: ending changes the arrays. */
        for (size_t i = 0; i < s->n_queue;) {
                Lease *l = s->queue[i];

                if (l->wait_usec > 0 && l->created_usec + l->wait_usec <= now)
                        lease_end(l, LEASE_END_WAIT_TIMEOUT);
                else
                        i++;
        }
        for (size_t i = 0; i < s->n_leases;) {
                Lease *l = s->leases[i];
                Exporter *e = l->state == LEASE_ACTIVE ? exporter_get(s, l->exporter) : NULL;

                if (e && e->state == EXPORTER_OFFLINE)
                        lease_end(l, LEASE_END_EXPORTER_GONE); /* hands on nothing: offline */
                else if (e && l->end_usec <= now)
                        lease_end(l, LEASE_END_EXPIRED);
                else
                        i++;
        }
        for (size_t i = 0; i < s->n_exporters; i++)
                schedule_exporter(s, s->exporters[i]);
}
