/* Tests for the lease scheduler: pools, the queue, handoff, timers, exporter changes, errors */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lease-scheduler.h"
#include "macro.h"
#include "tests.h"

#define N_EVENTS_MAX 64
/* Bounds every wait on the real loop; the timers under test are a few milliseconds. */
#define WAIT_BOUND_USEC (5 * USEC_PER_SEC)

typedef struct Record {
        LeaseEvent event;
        char *lease;
        char *exporter;
        LeaseState state;
        LeaseEndReason reason;
} Record;

typedef struct Recorder {
        Record events[N_EVENTS_MAX];
        size_t n;
} Recorder;

static void recorder_done(Recorder *r) {
        for (size_t i = 0; i < r->n; i++) {
                free(r->events[i].lease);
                free(r->events[i].exporter);
        }
        r->n = 0;
}

static void on_change(LeaseScheduler *s, const Lease *l, LeaseEvent event, void *userdata) {
        Recorder *r = userdata;
        Record *e;

        ASSERT_TRUE(r->n < N_EVENTS_MAX);
        e = &r->events[r->n++];
        e->event = event;
        e->lease = strdup(l->name);
        e->exporter = l->exporter ? strdup(l->exporter) : NULL;
        e->state = l->state;
        e->reason = l->end_reason;
        ASSERT_TRUE(e->lease);
        /* A callback may read the scheduler. */
        ASSERT_EQ(lease_scheduler_get(s, l->name, NULL), event == LEASE_EVENT_ENDED ? -ENOENT : 0);
}

/* The last event about lease, or NULL. */
static const Record *last(Recorder *r, const char *lease) {
        for (size_t i = r->n; i > 0; i--)
                if (streq(r->events[i - 1].lease, lease))
                        return &r->events[i - 1];
        return NULL;
}

typedef struct Fixture {
        sd_event *event;
        LeaseScheduler *s;
        Recorder rec;
} Fixture;

static void fixture_init(Fixture *f) {
        memset(f, 0, sizeof(*f));
        ASSERT_OK(sd_event_new(&f->event));
        ASSERT_OK(lease_scheduler_new(f->event, on_change, &f->rec, &f->s));
}

static void fixture_done(Fixture *f) {
        lease_scheduler_free(f->s);
        sd_event_unref(f->event);
        recorder_done(&f->rec);
}

static void add(Fixture *f, const char *name, const char *labels, ExporterState state) {
        /* "k=v,k=v" */
        Label l[8];
        size_t n = 0;
        char *copy = strdup(labels), *p = copy, *tok;

        ASSERT_TRUE(copy);
        while ((tok = strsep(&p, ",")) && *tok) {
                char *eq = strchr(tok, '=');

                ASSERT_TRUE(eq && n < ELEMENTSOF(l));
                *eq = 0;
                l[n++] = (Label) { tok, eq + 1 };
        }
        ASSERT_OK(lease_scheduler_add_exporter(f->s, name, l, n, state));
        free(copy);
}

static const Lease *create(Fixture *f, const char *name, const char *selector, int priority, uint64_t duration) {
        const Lease *l = NULL;
        LeaseRequest req = {
                .name = name,
                .client = "alice",
                .selector = selector,
                .duration_usec = duration,
                .priority = priority,
        };

        ASSERT_OK(lease_scheduler_create(f->s, &req, &l, NULL));
        ASSERT_TRUE(l);
        return l;
}

static const char *holder(Fixture *f, const char *exporter) {
        const Exporter *e;

        ASSERT_OK(lease_scheduler_get_exporter(f->s, exporter, &e));
        return e->lease ? e->lease->name : NULL;
}

static uint64_t now_mono(void) {
        struct timespec ts;

        ASSERT_OK(clock_gettime(CLOCK_MONOTONIC, &ts));
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* Runs the loop until the lease has an ENDED record, within WAIT_BOUND_USEC. */
static const Record *run_until_ended(Fixture *f, const char *lease) {
        uint64_t deadline = now_mono() + WAIT_BOUND_USEC;

        for (;;) {
                const Record *r = last(&f->rec, lease);

                if (r && r->event == LEASE_EVENT_ENDED)
                        return r;
                ASSERT_TRUE(now_mono() < deadline);
                ASSERT_OK(sd_event_run(f->event, 100 * USEC_PER_MSEC));
        }
}

#define HOUR (3600 * USEC_PER_SEC)

TEST(strings) {
        ASSERT_STREQ(lease_end_reason_to_string(LEASE_END_EXPORTER_GONE), "ExporterGone");
        ASSERT_EQ(lease_end_reason_from_string("WaitTimeout"), LEASE_END_WAIT_TIMEOUT);
        ASSERT_EQ(lease_end_reason_from_string("nope"), -EINVAL);
        ASSERT_TRUE(lease_end_reason_to_string(_LEASE_END_REASON_INVALID) == NULL);
        ASSERT_STREQ(lease_state_to_string(LEASE_PENDING), "pending");
        ASSERT_EQ(exporter_state_from_string("disabled"), EXPORTER_DISABLED);
        ASSERT_EQ(exporter_state_from_string(NULL), -EINVAL);
        ASSERT_STREQ(lease_pending_reason_to_string(LEASE_PENDING_NO_MATCHING_EXPORTER), "NoMatchingExporter");
        ASSERT_EQ(lease_event_from_string("extended"), LEASE_EVENT_EXTENDED);
        ASSERT_TRUE(lease_event_to_string(_LEASE_EVENT_MAX) == NULL);
}

TEST(pool_choice) {
        Fixture f;
        const Lease *a, *b, *c, *d;

        fixture_init(&f);
        add(&f, "w3-b", "vendor=acme,model=widget-v3", EXPORTER_ONLINE);
        add(&f, "w2-a", "vendor=acme,model=widget-v2", EXPORTER_ONLINE);
        add(&f, "w1", "vendor=acme,model=widget-v1", EXPORTER_ONLINE);
        add(&f, "w3-a", "vendor=acme,model=widget-v3", EXPORTER_ONLINE);
        add(&f, "other", "vendor=other,model=widget-v2", EXPORTER_ONLINE);

        /* None used yet: by name. */
        a = create(&f, "a", "vendor=acme,model in (widget-v2,widget-v3)", 0, HOUR);
        ASSERT_EQ(a->state, LEASE_ACTIVE);
        ASSERT_STREQ(a->exporter, "w2-a");
        ASSERT_EQ(f.rec.n, 2u);
        ASSERT_EQ(f.rec.events[0].event, LEASE_EVENT_CREATED);
        ASSERT_EQ(f.rec.events[0].state, LEASE_PENDING);
        ASSERT_EQ(f.rec.events[1].event, LEASE_EVENT_ASSIGNED);
        ASSERT_TRUE(a->begin_usec > 0 && a->end_usec == a->begin_usec + HOUR);

        b = create(&f, "b", "vendor=acme,model in (widget-v2,widget-v3)", 0, HOUR);
        ASSERT_STREQ(b->exporter, "w3-a");
        ASSERT_OK(lease_scheduler_release(f.s, "a"));
        ASSERT_OK(lease_scheduler_release(f.s, "b"));

        /* Least recently used: w3-b was never used, then w2-a (used before w3-a). */
        c = create(&f, "c", "vendor=acme,model in (widget-v2,widget-v3)", 0, HOUR);
        ASSERT_STREQ(c->exporter, "w3-b");
        d = create(&f, "d", "vendor=acme,model in (widget-v2,widget-v3)", 0, HOUR);
        ASSERT_STREQ(d->exporter, "w2-a");
        ASSERT_STREQ(create(&f, "e", "vendor=acme,model in (widget-v2,widget-v3)", 0, HOUR)->exporter, "w3-a");
        ASSERT_EQ(create(&f, "f", "vendor=acme,model in (widget-v2,widget-v3)", 0, HOUR)->state, LEASE_PENDING);

        /* Generated names. */
        const Lease *g = create(&f, NULL, "model=widget-v1", 0, HOUR);
        ASSERT_TRUE(strncmp(g->name, "lease-", 6) == 0 && strlen(g->name) == 22);
        ASSERT_STREQ(g->exporter, "w1");

        fixture_done(&f);
}

TEST(queue_order_and_handoff) {
        Fixture f;
        const Lease *l;
        size_t pos;

        fixture_init(&f);
        add(&f, "dut", "board=rpi4", EXPORTER_ONLINE);
        create(&f, "holder", "board=rpi4", 0, HOUR);
        ASSERT_STREQ(holder(&f, "dut"), "holder");

        /* Three waiters: low first, then two of higher priority; the older of those goes first. */
        create(&f, "low", "board=rpi4", 0, HOUR);
        create(&f, "high-old", "board=rpi4", 5, HOUR);
        l = create(&f, "high-new", "board=rpi4", 5, HOUR);
        ASSERT_EQ(l->state, LEASE_PENDING);
        ASSERT_OK(lease_scheduler_queue_position(f.s, l, &pos));
        ASSERT_EQ(pos, 1u);
        ASSERT_EQ(lease_scheduler_pending_reason(f.s, l), LEASE_PENDING_EXPORTERS_BUSY);

        /* The handoff happens inside release(): no loop iteration, no timer. */
        recorder_done(&f.rec);
        ASSERT_OK(lease_scheduler_release(f.s, "holder"));
        ASSERT_EQ(f.rec.n, 2u);
        ASSERT_EQ(f.rec.events[0].event, LEASE_EVENT_ENDED);
        ASSERT_STREQ(f.rec.events[0].lease, "holder");
        ASSERT_EQ(f.rec.events[0].reason, LEASE_END_RELEASED);
        ASSERT_EQ(f.rec.events[1].event, LEASE_EVENT_ASSIGNED);
        ASSERT_STREQ(f.rec.events[1].lease, "high-old");
        ASSERT_STREQ(holder(&f, "dut"), "high-old");

        ASSERT_OK(lease_scheduler_release(f.s, "high-old"));
        ASSERT_STREQ(holder(&f, "dut"), "high-new");
        ASSERT_OK(lease_scheduler_release(f.s, "high-new"));
        ASSERT_STREQ(holder(&f, "dut"), "low");
        ASSERT_OK(lease_scheduler_release(f.s, "low"));
        ASSERT_TRUE(holder(&f, "dut") == NULL);

        /* Releasing a pending lease leaves the queue. */
        create(&f, "x", "board=rpi4", 0, HOUR);
        create(&f, "y", "board=rpi4", 0, HOUR);
        create(&f, "z", "board=rpi4", 0, HOUR);
        ASSERT_OK(lease_scheduler_release(f.s, "y"));
        ASSERT_EQ(last(&f.rec, "y")->reason, LEASE_END_RELEASED);
        ASSERT_OK(lease_scheduler_release(f.s, "x"));
        ASSERT_STREQ(holder(&f, "dut"), "z");
        ASSERT_EQ(lease_scheduler_release(f.s, "y"), -ENOENT);

        fixture_done(&f);
}

TEST(expiry_and_extension) {
        Fixture f;
        const Lease *l;
        const Record *r;
        uint64_t end, t0;

        fixture_init(&f);
        add(&f, "dut", "board=rpi4", EXPORTER_ONLINE);
        create(&f, "short", "board=rpi4", 0, 20 * USEC_PER_MSEC);
        create(&f, "next", "board=rpi4", 0, 50 * USEC_PER_MSEC);

        r = run_until_ended(&f, "short");
        ASSERT_EQ(r->reason, LEASE_END_EXPIRED);
        /* The expiry handed the exporter on in the same dispatch. */
        ASSERT_STREQ(holder(&f, "dut"), "next");

        /* Extension moves both the timer and end_usec. Before it, "next" would end after ~50 ms;
         * extended by 150 ms it must still be active at ~100 ms and end later. */
        ASSERT_OK(lease_scheduler_get(f.s, "next", &l));
        end = l->end_usec;
        t0 = now_mono();
        ASSERT_OK(lease_scheduler_extend(f.s, "next", 150 * USEC_PER_MSEC));
        ASSERT_EQ(last(&f.rec, "next")->event, LEASE_EVENT_EXTENDED);
        ASSERT_EQ_U(l->end_usec, end + 150 * USEC_PER_MSEC);
        ASSERT_EQ_U(l->duration_usec, 200 * USEC_PER_MSEC);
        r = run_until_ended(&f, "next");
        ASSERT_EQ(r->reason, LEASE_END_EXPIRED);
        ASSERT_TRUE(now_mono() - t0 >= 150 * USEC_PER_MSEC);

        /* Only active leases extend. */
        create(&f, "a", "board=rpi4", 0, HOUR);
        create(&f, "b", "board=rpi4", 0, HOUR);
        ASSERT_EQ(lease_scheduler_extend(f.s, "b", USEC_PER_SEC), -EBUSY);
        ASSERT_EQ(lease_scheduler_extend(f.s, "a", 0), -EINVAL);
        ASSERT_EQ(lease_scheduler_extend(f.s, "nope", USEC_PER_SEC), -ENOENT);
        ASSERT_EQ(lease_scheduler_extend(f.s, "a", UINT64_MAX), -ERANGE);

        fixture_done(&f);
}

TEST(revoke) {
        Fixture f;

        fixture_init(&f);
        add(&f, "dut", "board=rpi4", EXPORTER_ONLINE);
        create(&f, "a", "board=rpi4", 0, HOUR);
        create(&f, "b", "board=rpi4", 0, HOUR);
        create(&f, "c", "board=rpi4", 0, HOUR);

        ASSERT_OK(lease_scheduler_revoke(f.s, "c"));
        ASSERT_EQ(last(&f.rec, "c")->reason, LEASE_END_REVOKED);
        ASSERT_EQ(last(&f.rec, "c")->state, LEASE_ENDED);
        ASSERT_OK(lease_scheduler_revoke(f.s, "a"));
        ASSERT_EQ(last(&f.rec, "a")->reason, LEASE_END_REVOKED);
        ASSERT_STREQ(holder(&f, "dut"), "b");
        ASSERT_EQ(lease_scheduler_revoke(f.s, "a"), -ENOENT);
        ASSERT_EQ(lease_scheduler_get(f.s, "a", NULL), -ENOENT);

        fixture_done(&f);
}

TEST(exporter_gone) {
        Fixture f;
        const Lease *w;

        fixture_init(&f);
        add(&f, "dut1", "board=rpi4", EXPORTER_ONLINE);
        add(&f, "dut2", "board=rpi4", EXPORTER_ONLINE);
        create(&f, "a", "board=rpi4", 0, HOUR);
        create(&f, "b", "board=rpi4", 0, HOUR);
        w = create(&f, "waiter", "board=rpi4", 0, HOUR);

        ASSERT_OK(lease_scheduler_set_exporter_state(f.s, "dut1", EXPORTER_OFFLINE));
        ASSERT_EQ(last(&f.rec, "a")->event, LEASE_EVENT_ENDED);
        ASSERT_EQ(last(&f.rec, "a")->reason, LEASE_END_EXPORTER_GONE);
        ASSERT_STREQ(last(&f.rec, "a")->exporter, "dut1");
        /* The waiter stays queued: dut1 is offline. */
        ASSERT_EQ(w->state, LEASE_PENDING);
        ASSERT_TRUE(holder(&f, "dut1") == NULL);

        /* Removal ends the lease the same way; the waiter still waits. */
        ASSERT_OK(lease_scheduler_remove_exporter(f.s, "dut2"));
        ASSERT_EQ(last(&f.rec, "b")->reason, LEASE_END_EXPORTER_GONE);
        ASSERT_EQ(w->state, LEASE_PENDING);
        ASSERT_EQ(lease_scheduler_pending_reason(f.s, w), LEASE_PENDING_EXPORTERS_UNAVAILABLE);
        ASSERT_EQ(lease_scheduler_remove_exporter(f.s, "dut2"), -ENOENT);

        /* Back online: the waiter gets it at once. */
        ASSERT_OK(lease_scheduler_set_exporter_state(f.s, "dut1", EXPORTER_ONLINE));
        ASSERT_EQ(w->state, LEASE_ACTIVE);
        ASSERT_STREQ(w->exporter, "dut1");

        /* Disabled drains: the lease keeps running, the next waiter doesn't get it. */
        create(&f, "next", "board=rpi4", 0, HOUR);
        ASSERT_OK(lease_scheduler_set_exporter_state(f.s, "dut1", EXPORTER_DISABLED));
        ASSERT_EQ(w->state, LEASE_ACTIVE);
        ASSERT_OK(lease_scheduler_release(f.s, "waiter"));
        ASSERT_TRUE(holder(&f, "dut1") == NULL);
        ASSERT_OK(lease_scheduler_set_exporter_state(f.s, "dut1", EXPORTER_ONLINE));
        ASSERT_STREQ(holder(&f, "dut1"), "next");
        ASSERT_EQ(lease_scheduler_set_exporter_state(f.s, "dut1", _EXPORTER_STATE_MAX), -EINVAL);

        fixture_done(&f);
}

TEST(late_exporter_and_label_update) {
        Fixture f;
        const Lease *l, *m;
        Label v3[] = { { (char *) "vendor", (char *) "acme" }, { (char *) "model", (char *) "widget-v3" } };

        fixture_init(&f);
        l = create(&f, "early", "vendor=acme,model in (widget-v2,widget-v3)", 0, HOUR);
        ASSERT_EQ(l->state, LEASE_PENDING);
        ASSERT_EQ(lease_scheduler_pending_reason(f.s, l), LEASE_PENDING_NO_MATCHING_EXPORTER);

        add(&f, "nomatch", "vendor=acme,model=widget-v1", EXPORTER_ONLINE);
        ASSERT_EQ(l->state, LEASE_PENDING);
        add(&f, "late", "vendor=acme,model=widget-v2", EXPORTER_ONLINE);
        ASSERT_EQ(l->state, LEASE_ACTIVE);
        ASSERT_STREQ(l->exporter, "late");

        /* A label change makes "nomatch" match: the next waiter gets it at once. */
        m = create(&f, "second", "vendor=acme,model in (widget-v2,widget-v3)", 0, HOUR);
        ASSERT_EQ(m->state, LEASE_PENDING);
        ASSERT_OK(lease_scheduler_update_exporter_labels(f.s, "nomatch", v3, ELEMENTSOF(v3)));
        ASSERT_EQ(m->state, LEASE_ACTIVE);
        ASSERT_STREQ(m->exporter, "nomatch");

        /* A change that stops matching leaves an active lease alone. */
        ASSERT_OK(lease_scheduler_update_exporter_labels(f.s, "late", NULL, 0));
        ASSERT_EQ(l->state, LEASE_ACTIVE);
        ASSERT_EQ(lease_scheduler_update_exporter_labels(f.s, "nope", NULL, 0), -ENOENT);

        /* An exporter added offline or disabled serves nobody. */
        create(&f, "third", "model=widget-v9", 0, HOUR);
        add(&f, "off", "model=widget-v9", EXPORTER_OFFLINE);
        add(&f, "dis", "model=widget-v9", EXPORTER_DISABLED);
        ASSERT_OK(lease_scheduler_get(f.s, "third", &l));
        ASSERT_EQ(l->state, LEASE_PENDING);

        fixture_done(&f);
}

TEST(selector_errors) {
        Fixture f;
        char *error = NULL;
        const Lease *l = NULL;
        LeaseRequest req = { .client = "alice", .duration_usec = HOUR };

        fixture_init(&f);
        add(&f, "dut", "board=rpi4", EXPORTER_ONLINE);

        req.selector = "board in x";
        ASSERT_EQ(lease_scheduler_create(f.s, &req, &l, &error), -EINVAL);
        ASSERT_CONTAINS(error, "column");
        free(error), error = NULL;

        req.selector = "board=a,board=b";
        ASSERT_EQ(lease_scheduler_create(f.s, &req, &l, &error), -EDOM);
        ASSERT_CONTAINS(error, "can never match");
        free(error), error = NULL;
        ASSERT_EQ(lease_scheduler_create(f.s, &req, &l, NULL), -EDOM);

        /* Refusals leave no trace. */
        ASSERT_EQ(f.rec.n, 0u);
        ASSERT_TRUE(l == NULL);

        req.selector = "board=rpi4";
        req.duration_usec = 0;
        ASSERT_EQ(lease_scheduler_create(f.s, &req, &l, NULL), -EINVAL);
        req.duration_usec = HOUR;
        req.client = NULL;
        ASSERT_EQ(lease_scheduler_create(f.s, &req, &l, NULL), -EINVAL);
        req.client = "alice";
        req.name = "Bad Name";
        ASSERT_EQ(lease_scheduler_create(f.s, &req, &l, NULL), -EINVAL);
        req.name = "dut1";
        req.metadata = (Label[]) { { (char *) "team", (char *) "platform" } };
        req.n_metadata = 1;
        ASSERT_OK(lease_scheduler_create(f.s, &req, &l, NULL));
        ASSERT_STREQ(l->metadata[0].value, "platform");
        ASSERT_STREQ(l->client, "alice");
        ASSERT_EQ(lease_scheduler_create(f.s, &req, &l, NULL), -EEXIST);

        ASSERT_EQ(lease_scheduler_add_exporter(f.s, "dut", NULL, 0, EXPORTER_ONLINE), -EEXIST);
        ASSERT_EQ(lease_scheduler_add_exporter(f.s, "-x", NULL, 0, EXPORTER_ONLINE), -EINVAL);

        fixture_done(&f);
}

TEST(wait_deadline) {
        Fixture f;
        const Lease *l;
        const Record *r;
        LeaseRequest req = {
                .name = "impatient",
                .client = "bob",
                .selector = "board=rpi4",
                .duration_usec = HOUR,
                .wait_usec = 20 * USEC_PER_MSEC,
        };

        fixture_init(&f);
        add(&f, "dut", "board=rpi4", EXPORTER_ONLINE);
        create(&f, "holder", "board=rpi4", 0, HOUR);
        ASSERT_OK(lease_scheduler_create(f.s, &req, &l, NULL));
        ASSERT_EQ(l->state, LEASE_PENDING);
        r = run_until_ended(&f, "impatient");
        ASSERT_EQ(r->reason, LEASE_END_WAIT_TIMEOUT);
        ASSERT_STREQ(holder(&f, "dut"), "holder");

        /* Served before its deadline: the deadline no longer applies, the lease runs its duration. */
        req.name = "patient";
        req.duration_usec = 60 * USEC_PER_MSEC;
        req.wait_usec = 30 * USEC_PER_MSEC;
        ASSERT_OK(lease_scheduler_create(f.s, &req, &l, NULL));
        ASSERT_OK(lease_scheduler_release(f.s, "holder"));
        ASSERT_EQ(l->state, LEASE_ACTIVE);
        r = run_until_ended(&f, "patient");
        ASSERT_EQ(r->reason, LEASE_END_EXPIRED);

        fixture_done(&f);
}

TEST(list) {
        Fixture f;
        _cleanup_free_ const Lease **a = NULL;
        size_t n;

        fixture_init(&f);
        add(&f, "dut", "", EXPORTER_ONLINE);
        create(&f, "one", "", 0, HOUR);
        create(&f, "two", "", 0, HOUR);
        ASSERT_OK(lease_scheduler_list(f.s, &a, &n));
        ASSERT_EQ(n, 2u);
        ASSERT_STREQ(a[0]->name, "one");
        ASSERT_EQ(a[0]->state, LEASE_ACTIVE);
        ASSERT_STREQ(a[1]->name, "two");
        ASSERT_EQ(a[1]->state, LEASE_PENDING);
        ASSERT_EQ(lease_scheduler_n_exporters(f.s), 1u);
        ASSERT_STREQ(lease_scheduler_exporter_at(f.s, 0)->name, "dut");
        ASSERT_TRUE(lease_scheduler_exporter_at(f.s, 1) == NULL);

        fixture_done(&f);
}

static uint64_t now_real(void) {
        struct timespec ts;

        ASSERT_OK(clock_gettime(CLOCK_REALTIME, &ts));
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

TEST(device_names) {
        Fixture f;

        fixture_init(&f);
        add(&f, "exp1/dut1", "a=1", EXPORTER_ONLINE);
        ASSERT_EQ(lease_scheduler_add_exporter(f.s, "exp1/", NULL, 0, EXPORTER_ONLINE), -EINVAL);
        ASSERT_EQ(lease_scheduler_add_exporter(f.s, "/dut1", NULL, 0, EXPORTER_ONLINE), -EINVAL);
        ASSERT_EQ(lease_scheduler_add_exporter(f.s, "a/b/c", NULL, 0, EXPORTER_ONLINE), -EINVAL);
        ASSERT_EQ(lease_scheduler_add_exporter(f.s, "Exp/dut", NULL, 0, EXPORTER_ONLINE), -EINVAL);
        create(&f, "l1", "a=1", 0, HOUR);
        ASSERT_STREQ(holder(&f, "exp1/dut1"), "l1");
        fixture_done(&f);
}

/* What a controller restart does: exporters, then the stored leases in creation order. */
TEST(restore) {
        uint64_t now = now_real();
        const Lease *l;
        size_t pos;
        Fixture f;

        fixture_init(&f);
        add(&f, "e1", "a=1", EXPORTER_ONLINE);
        add(&f, "e2", "a=1", EXPORTER_ONLINE);
        add(&f, "gone", "a=1", EXPORTER_OFFLINE);

        /* Active on e1 with its original times; then two waiters of equal priority and one higher. */
        ASSERT_OK(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "active", .client = "alice", .selector = "a=1", .duration_usec = HOUR,
                .created_usec = now - HOUR / 2, .state = LEASE_ACTIVE, .exporter = "e1",
                .begin_usec = now - HOUR / 2, .end_usec = now + HOUR / 2 }, NULL));
        ASSERT_OK(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "old", .client = "bob", .selector = "a=1", .duration_usec = HOUR,
                .created_usec = now - 20, .state = LEASE_PENDING }, NULL));
        ASSERT_OK(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "new", .client = "bob", .selector = "a=1", .duration_usec = HOUR,
                .created_usec = now - 10, .state = LEASE_PENDING }, NULL));
        ASSERT_OK(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "high", .client = "bob", .selector = "a=1", .duration_usec = HOUR, .priority = 3,
                .created_usec = now - 5, .state = LEASE_PENDING }, NULL));
        /* Already expired while the controller was down: it ends from the loop. */
        ASSERT_OK(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "late", .client = "alice", .duration_usec = HOUR, .created_usec = now - 2 * HOUR,
                .state = LEASE_ACTIVE, .exporter = "gone", .begin_usec = now - 2 * HOUR, .end_usec = now - HOUR }, NULL));

        /* Refusals. */
        ASSERT_EQ(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "old", .client = "bob", .duration_usec = HOUR, .state = LEASE_PENDING }, NULL), -EEXIST);
        ASSERT_EQ(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "x", .client = "bob", .duration_usec = HOUR, .state = LEASE_ACTIVE, .exporter = "nope",
                .begin_usec = now, .end_usec = now + 1 }, NULL), -ENOENT);
        ASSERT_EQ(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "x", .client = "bob", .duration_usec = HOUR, .state = LEASE_ACTIVE, .exporter = "e1",
                .begin_usec = now, .end_usec = now + 1 }, NULL), -EBUSY);
        ASSERT_EQ(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "x", .client = "bob", .duration_usec = HOUR, .state = LEASE_ENDED }, NULL), -EINVAL);
        ASSERT_EQ(f.rec.n, 0U); /* restoring reports nothing */

        ASSERT_OK(lease_scheduler_get(f.s, "active", &l));
        ASSERT_EQ(l->state, LEASE_ACTIVE);
        ASSERT_EQ_U(l->begin_usec, now - HOUR / 2);
        ASSERT_EQ_U(l->end_usec, now + HOUR / 2);
        ASSERT_EQ_U(l->created_usec, now - HOUR / 2);

        /* The "late" lease on an offline exporter ends ExporterGone; free e2 goes to the best waiter. */
        lease_scheduler_restore_done(f.s);
        ASSERT_EQ(last(&f.rec, "late")->event, LEASE_EVENT_ENDED);
        ASSERT_EQ(last(&f.rec, "late")->reason, LEASE_END_EXPORTER_GONE);
        ASSERT_STREQ(holder(&f, "e2"), "high");
        ASSERT_OK(lease_scheduler_get(f.s, "old", &l));
        ASSERT_OK(lease_scheduler_queue_position(f.s, l, &pos));
        ASSERT_EQ_U(pos, 0);
        ASSERT_OK(lease_scheduler_get(f.s, "new", &l));
        ASSERT_OK(lease_scheduler_queue_position(f.s, l, &pos));
        ASSERT_EQ_U(pos, 1);

        /* The handoff keeps the restored order: older first. */
        ASSERT_OK(lease_scheduler_release(f.s, "active"));
        ASSERT_STREQ(holder(&f, "e1"), "old");
        fixture_done(&f);
}

/* What ran out while the controller was down ends in restore_done(): the waiter first, so that the
 * exporter an expiry frees does not go to a waiter whose deadline passed. */
TEST(restore_expired) {
        uint64_t now = now_real();
        const Record *r;
        Fixture f;

        fixture_init(&f);
        add(&f, "e1", "", EXPORTER_ONLINE);
        ASSERT_OK(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "past", .client = "alice", .duration_usec = HOUR, .created_usec = now - 2 * HOUR,
                .state = LEASE_ACTIVE, .exporter = "e1", .begin_usec = now - 2 * HOUR, .end_usec = now - HOUR }, NULL));
        ASSERT_OK(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "waiting", .client = "alice", .duration_usec = HOUR, .wait_usec = HOUR,
                .created_usec = now - 2 * HOUR, .state = LEASE_PENDING }, NULL));
        lease_scheduler_restore_done(f.s);
        ASSERT_EQ(f.rec.n, 2U);
        r = last(&f.rec, "waiting");
        ASSERT_EQ(r->event, LEASE_EVENT_ENDED);
        ASSERT_EQ(r->reason, LEASE_END_WAIT_TIMEOUT);
        r = last(&f.rec, "past");
        ASSERT_EQ(r->event, LEASE_EVENT_ENDED);
        ASSERT_EQ(r->reason, LEASE_END_EXPIRED);
        ASSERT_TRUE(!holder(&f, "e1"));

        /* One that ends soon after the restart expires from the loop. */
        ASSERT_OK(lease_scheduler_restore(f.s, &(LeaseRestore) {
                .name = "soon", .client = "alice", .duration_usec = HOUR, .created_usec = now - HOUR,
                .state = LEASE_ACTIVE, .exporter = "e1", .begin_usec = now - HOUR, .end_usec = now + 20 * USEC_PER_MSEC }, NULL));
        lease_scheduler_restore_done(f.s);
        r = run_until_ended(&f, "soon");
        ASSERT_EQ(r->reason, LEASE_END_EXPIRED);
        fixture_done(&f);
}

TEST_MAIN()
