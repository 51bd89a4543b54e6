/* Lease scheduler micro-benchmark: 1,000 exporters, 100 clients cycling leases */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lease-scheduler.h"
#include "macro.h"

#define N_EXPORTERS 1000
#define N_CLIENTS 100
#define N_SMALL_POOL 10
#define ROUNDS 200
#define HANDOFFS 20000
#define HOUR_USEC (3600 * USEC_PER_SEC)

typedef struct Bench {
        int active[N_CLIENTS]; /* FIFO of clients holding a lease, filled by the callback */
        size_t head, n_active;
        uint64_t assigned_nsec;
        size_t n_assigned;
} Bench;

static uint64_t now_nsec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static void on_change(LeaseScheduler *s, const Lease *l, LeaseEvent event, void *userdata) {
        Bench *b = userdata;

        if (event != LEASE_EVENT_ASSIGNED)
                return;
        b->assigned_nsec = now_nsec();
        b->n_assigned++;
        b->active[(b->head + b->n_active++) % N_CLIENTS] = atoi(l->name + 1);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static void lease_name(char *buf, size_t size, int client) {
        snprintf(buf, size, "l%d", client);
}

static int create(LeaseScheduler *s, int client, const char *selector) {
        char name[16], owner[16];
        LeaseRequest req = {
                .name = name,
                .client = owner,
                .selector = selector,
                .duration_usec = HOUR_USEC,
        };

        lease_name(name, sizeof(name), client);
        snprintf(owner, sizeof(owner), "client%d", client);
        return lease_scheduler_create(s, &req, NULL, NULL);
}

int main(void) {
        _cleanup_(lease_scheduler_freep) LeaseScheduler *s = NULL;
        sd_event *event = NULL;
        char selectors[N_CLIENTS][96], name[16];
        uint64_t *lat, t0, t1, ops = 0;
        Bench b = {};
        int r;

        r = sd_event_default(&event);
        if (r < 0)
                return fprintf(stderr, "sd_event_default: %s\n", strerror(-r)), 1;
        r = lease_scheduler_new(event, on_change, &b, &s);
        if (r < 0)
                return fprintf(stderr, "lease_scheduler_new: %s\n", strerror(-r)), 1;

        for (int i = 0; i < N_EXPORTERS; i++) {
                char n[32], model[32], rack[16];
                Label labels[] = {
                        { (char *) "vendor", (char *) "acme" },
                        { (char *) "model", model },
                        { (char *) "rack", rack },
                        { (char *) "pool", (char *) (i < N_SMALL_POOL ? "small" : "large") },
                };

                snprintf(n, sizeof(n), "exporter-%04d", i);
                snprintf(model, sizeof(model), "widget-v%d", i % 10);
                snprintf(rack, sizeof(rack), "r%d", i % 50);
                r = lease_scheduler_add_exporter(s, n, labels, ELEMENTSOF(labels), EXPORTER_ONLINE);
                if (r < 0)
                        return fprintf(stderr, "add_exporter: %s\n", strerror(-r)), 1;
        }

        /* 1: pools without contention. Each client holds a lease on one of ~100 matching exporters
         * and cycles it: release, create. Each create scans the 1,000 exporters. */
        for (int c = 0; c < N_CLIENTS; c++) {
                snprintf(selectors[c], sizeof(selectors[c]), "vendor=acme,pool=large,model in (widget-v%d,widget-v%d)",
                         c % 10, (c + 3) % 10);
                if (create(s, c, selectors[c]) < 0)
                        return fprintf(stderr, "create failed\n"), 1;
        }
        t0 = now_nsec();
        for (int round = 0; round < ROUNDS; round++)
                for (int c = 0; c < N_CLIENTS; c++) {
                        lease_name(name, sizeof(name), c);
                        if (lease_scheduler_release(s, name) < 0 || create(s, c, selectors[c]) < 0)
                                return fprintf(stderr, "cycle failed\n"), 1;
                        ops += 2;
                }
        t1 = now_nsec();
        printf("pool cycling: %d exporters, %d clients, %" PRIu64 " operations (release or create) in %.3f s: %.0f ops/s\n",
               N_EXPORTERS, N_CLIENTS, ops, (t1 - t0) / 1e9, ops / ((t1 - t0) / 1e9));
        for (int c = 0; c < N_CLIENTS; c++) {
                lease_name(name, sizeof(name), c);
                (void) lease_scheduler_release(s, name);
        }

        /* 2: contention. 100 clients want the 10 exporters of pool=small: 10 hold, 90 wait. The
         * oldest holder releases and re-queues; latency runs from before the release call to the
         * ASSIGNED callback of the next waiter. */
        b.head = b.n_active = 0;
        for (int c = 0; c < N_CLIENTS; c++)
                if (create(s, c, "pool=small") < 0)
                        return fprintf(stderr, "create failed\n"), 1;
        if (b.n_active != N_SMALL_POOL)
                return fprintf(stderr, "expected %d active, got %zu\n", N_SMALL_POOL, b.n_active), 1;

        lat = calloc(HANDOFFS, sizeof(uint64_t));
        if (!lat)
                return 1;
        ops = 0;
        t0 = now_nsec();
        for (int i = 0; i < HANDOFFS; i++) {
                int c = b.active[b.head];
                size_t before = b.n_assigned;
                uint64_t start;

                b.head = (b.head + 1) % N_CLIENTS;
                b.n_active--;
                lease_name(name, sizeof(name), c);
                start = now_nsec();
                if (lease_scheduler_release(s, name) < 0 || b.n_assigned != before + 1)
                        return fprintf(stderr, "handoff failed\n"), 1;
                lat[i] = b.assigned_nsec - start;
                if (create(s, c, "pool=small") < 0)
                        return fprintf(stderr, "create failed\n"), 1;
                ops += 2;
        }
        t1 = now_nsec();
        qsort(lat, HANDOFFS, sizeof(uint64_t), cmp_u64);
        printf("contended pool: %d exporters, %d waiters, %" PRIu64 " operations in %.3f s: %.0f ops/s\n",
               N_SMALL_POOL, N_CLIENTS - N_SMALL_POOL, ops, (t1 - t0) / 1e9, ops / ((t1 - t0) / 1e9));
        printf("release to next assignment: p50 %.2f us, p99 %.2f us, max %.2f us (%d handoffs)\n",
               lat[HANDOFFS / 2] / 1e3, lat[HANDOFFS * 99 / 100] / 1e3, lat[HANDOFFS - 1] / 1e3, HANDOFFS);

        free(lat);
        s = lease_scheduler_free(s);
        sd_event_unref(event);
        return 0;
}
