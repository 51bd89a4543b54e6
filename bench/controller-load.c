/* Controller load: simulated exporters and clients cycling leases against a real controller over TLS */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

/* One thread per simulated client, each with its own keep-alive TLS connection for requests and
 * one for watches (a watch is cut by closing its connection: the protocol has no other way), so
 * that the controller sees 100 independent clients. The exporters are simulated at the API level:
 * a status PUT each, then heartbeats from one thread every heartbeatSeconds. */

#define N_SMALL_POOL 10

static const char *arg_url, *arg_ca, *arg_admin;
static unsigned arg_exporters = 1000, arg_clients = 100, arg_cycles = 50, arg_contended_cycles = 20, arg_idle_cycles = 200;

typedef struct Exporter {
        char name[32];
        char *token;
} Exporter;

typedef struct Samples {
        uint64_t *v;
        size_t n, size;
} Samples;

typedef struct Client {
        unsigned index;
        char name[32];
        char *token;
        pthread_t thread;
        CURL *api, *watch;
        Samples ready_free;  /* create to active, devices free (phase 1) */
        Samples ready_queue; /* create to active, through the queue (phase 2) */
        Samples handoff;     /* a release to this waiter's watch line saying active (phase 2) */
        Samples idle_ready;   /* create to active, one client on an otherwise idle controller */
        Samples idle_handoff; /* a release to the waiter's watch, one holder and one waiter */
        unsigned late_watches; /* active before the watch opened: no handoff sample */
        uint64_t ops, ops_free, ops_contended;
} Client;

static Exporter *exporters;
static Client *clients;
static uint64_t *release_ns; /* per exporter: when its device's last holder sent DELETE */
static pthread_barrier_t barrier;
static sem_t watch_opened; /* phase 4: the waiter's watch said pending, the holder may release */
static volatile int stop_heartbeats;

static uint64_t now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

__attribute__((format(printf, 1, 2))) _Noreturn static void die(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        fputs("controller-load: ", stderr);
        vfprintf(stderr, format, ap);
        fputc('\n', stderr);
        va_end(ap);
        exit(1);
}

static void samples_add(Samples *s, uint64_t v) {
        if (s->n == s->size) {
                s->size = s->size ? s->size * 2 : 256;
                s->v = realloc(s->v, s->size * sizeof *s->v);
                if (!s->v)
                        die("out of memory");
        }
        s->v[s->n++] = v;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* Merges one Samples member of every client, sorted. */
static Samples merge(size_t offset) {
        Samples all = {};

        for (unsigned i = 0; i < arg_clients; i++) {
                const Samples *s = (const Samples *) ((const char *) &clients[i] + offset);

                for (size_t k = 0; k < s->n; k++)
                        samples_add(&all, s->v[k]);
        }
        if (all.n > 0)
                qsort(all.v, all.n, sizeof *all.v, cmp_u64);
        return all;
}

static double pct_ms(const Samples *s, unsigned p) {
        return s->n ? s->v[s->n * p / 100 < s->n ? s->n * p / 100 : s->n - 1] / 1e6 : 0;
}

typedef struct Buffer {
        char *data;
        size_t len;
} Buffer;

static size_t buffer_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Buffer *b = userdata;
        size_t n = size * nmemb;
        char *d = realloc(b->data, b->len + n + 1);

        if (!d)
                return 0;
        memcpy(d + b->len, ptr, n);
        b->data = d;
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

static CURL *conn_new(void) {
        CURL *c = curl_easy_init();

        if (!c)
                die("curl_easy_init failed");
        curl_easy_setopt(c, CURLOPT_CAINFO, arg_ca);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L); /* a guard against a hang, not a measurement */
        return c;
}

/* One request on a keep-alive connection; returns the HTTP status, the body parsed in *ret. Takes
 * body. */
__attribute__((format(printf, 6, 7))) static long request(CURL *c, const char *method, const char *token, json_t *body, json_t **ret, const char *format,
                    ...) {
        char path[256], url[512], auth[2048];
        struct curl_slist *h = NULL;
        Buffer in = {};
        char *text = NULL;
        long status = 0;
        CURLcode cc;
        va_list ap;

        va_start(ap, format);
        vsnprintf(path, sizeof path, format, ap);
        va_end(ap);
        snprintf(url, sizeof url, "%s%s", arg_url, path);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
        if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
                text = body ? json_dumps(body, JSON_COMPACT) : strdup("");
                json_decref(body);
                if (!text)
                        die("out of memory");
                if (body)
                        h = curl_slist_append(h, "Content-Type: application/json");
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long) strlen(text));
        }
        if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buffer_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &in);
        cc = curl_easy_perform(c);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(h);
        free(text);
        if (cc != CURLE_OK)
                die("%s %s: %s", method, path, curl_easy_strerror(cc));
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (ret) {
                json_error_t e;

                *ret = in.len ? json_loadb(in.data, in.len, 0, &e) : NULL;
                if (in.len && !*ret)
                        die("%s %s: answer is not JSON: %s", method, path, in.data);
        }
        if (status >= 300)
                die("%s %s: HTTP %ld: %s", method, path, status, in.data ? in.data : "");
        free(in.data);
        return status;
}

static char *take_token(json_t *answer, const char *what) {
        const char *t = json_string_value(json_object_get(answer, "token"));

        if (!t)
                die("no token for %s", what);
        return strdup(t);
}

static int exporter_index(const char *name) {
        unsigned i;

        if (!name || sscanf(name, "exp-%u", &i) != 1 || i >= arg_exporters)
                die("lease on an unknown exporter %s", name ? name : "(null)");
        return (int) i;
}

/* A group of simulated exporters on one connection: created by the admin, registered with one DUT
 * each, then a heartbeat each every heartbeatSeconds until the end. Groups run in parallel, as
 * exporters do: heartbeats of one group queued behind the clients' requests do not hold up the
 * others. */
typedef struct Group {
        unsigned from, to;
        pthread_t thread;
        unsigned rounds, late;
} Group;

#define N_GROUPS 25
#define HEARTBEAT_NS 3000000000ULL

static pthread_barrier_t setup_done;

static void *exporter_group(void *p) {
        Group *g = p;
        CURL *c = conn_new();

        for (unsigned i = g->from; i < g->to; i++) {
                Exporter *e = &exporters[i];
                json_t *answer = NULL;
                char model[16];

                snprintf(e->name, sizeof e->name, "exp-%04u", i);
                snprintf(model, sizeof model, "widget-v%u", i % 10);
                request(c, "POST", arg_admin,
                        json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "name", e->name, "labels", "vendor", "acme", "model",
                                  model, "rack", i % 2 ? "r1" : "r2", "pool", i < N_SMALL_POOL ? "small" : "large"),
                        &answer, "/v1/exporters");
                e->token = take_token(answer, e->name);
                json_decref(answer);
                request(c, "PUT", e->token,
                        json_pack("{s:[{s:s, s:{s:s}, s:[s,s,s]}], s:{s:s, s:s}}", "duts", "name", "dut1", "labels",
                                  "board", "sim", "classes", "power", "serial", "storage", "streams", "address",
                                  "127.0.0.1:9", "fingerprint",
                                  "sha256:0000000000000000000000000000000000000000000000000000000000000000"),
                        NULL, "/v1/exporters/%s/status", e->name);
        }
        pthread_barrier_wait(&setup_done);

        while (!__atomic_load_n(&stop_heartbeats, __ATOMIC_ACQUIRE)) {
                uint64_t start = now_ns(), spent;

                for (unsigned i = g->from; i < g->to; i++)
                        request(c, "POST", exporters[i].token, NULL, NULL, "/v1/exporters/%s/heartbeat",
                                exporters[i].name);
                g->rounds++;
                spent = now_ns() - start;
                if (spent >= HEARTBEAT_NS) {
                        g->late++;
                        continue;
                }
                /* Sleeps in slices so that the end of the run does not wait for a whole period. */
                for (uint64_t left = HEARTBEAT_NS - spent; left > 0 && !__atomic_load_n(&stop_heartbeats, __ATOMIC_ACQUIRE);) {
                        uint64_t slice = left < 100000000ULL ? left : 100000000ULL;

                        nanosleep(&(struct timespec) { .tv_nsec = (long) slice }, NULL);
                        left -= slice;
                }
        }
        curl_easy_cleanup(c);
        return NULL;
}

/* Follows GET /v1/leases/{name}/watch until the lease is active. */
typedef struct WatchState {
        Buffer buf;
        size_t lines;
        bool first_pending, active, ended;
        sem_t *opened; /* posted when the first line says pending */
        uint64_t active_ns;
        char exporter[32];
} WatchState;

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        WatchState *w = userdata;
        size_t n = size * nmemb;
        char *nl;

        if (buffer_write(ptr, size, nmemb, &w->buf) != n)
                return 0;
        while ((nl = memchr(w->buf.data, '\n', w->buf.len))) {
                size_t len = (size_t) (nl - w->buf.data);
                json_t *line = json_loadb(w->buf.data, len, 0, NULL), *lease;
                const char *state;

                if (!line)
                        die("watch line is not JSON: %.*s", (int) len, w->buf.data);
                memmove(w->buf.data, nl + 1, w->buf.len - len - 1);
                w->buf.len -= len + 1;
                lease = json_object_get(line, "lease");
                state = json_string_value(json_object_get(lease, "state"));
                if (!state) {
                        json_decref(line); /* a ping */
                        continue;
                }
                if (w->lines++ == 0) {
                        w->first_pending = strcmp(state, "pending") == 0;
                        if (w->first_pending && w->opened)
                                sem_post(w->opened);
                }
                if (strcmp(state, "active") == 0) {
                        w->active_ns = now_ns();
                        w->active = true;
                        snprintf(w->exporter, sizeof w->exporter, "%s",
                                 json_string_value(json_object_get(lease, "exporter")) ?: "");
                } else if (strcmp(state, "ended") == 0)
                        w->ended = true;
                json_decref(line);
                if (w->active || w->ended)
                        return 0; /* enough: closes this connection, which ends the watch */
        }
        return n;
}

static void watch_until_active(Client *cl, const char *lease, WatchState *w) {
        char url[512], auth[2048];
        struct curl_slist *h = NULL;
        CURLcode cc;

        snprintf(url, sizeof url, "%s/v1/leases/%s/watch", arg_url, lease);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", cl->token);
        h = curl_slist_append(h, auth);
        curl_easy_setopt(cl->watch, CURLOPT_URL, url);
        curl_easy_setopt(cl->watch, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(cl->watch, CURLOPT_WRITEFUNCTION, watch_write);
        curl_easy_setopt(cl->watch, CURLOPT_WRITEDATA, w);
        cc = curl_easy_perform(cl->watch);
        curl_slist_free_all(h);
        free(w->buf.data);
        w->buf = (Buffer) {};
        if (w->ended)
                die("lease %s ended while waiting", lease);
        if (!w->active)
                die("watch of %s ended without the lease becoming active: %s", lease, curl_easy_strerror(cc));
}

/* Creates a lease and returns once it is active: at once, or through its watch. Returns the
 * exporter's index. */
static int lease_acquire(Client *cl, const char *lease, const char *selector, Samples *ready, Samples *handoffs,
                         sem_t *opened) {
        json_t *answer = NULL;
        const char *state;
        uint64_t t0 = now_ns();
        int idx;

        request(cl->api, "POST", cl->token, json_pack("{s:s, s:s, s:s}", "name", lease, "selector", selector, "duration", "1h"),
                &answer, "/v1/leases");
        cl->ops++;
        state = json_string_value(json_object_get(answer, "state"));
        if (state && strcmp(state, "active") == 0) {
                samples_add(ready, now_ns() - t0);
                idx = exporter_index(json_string_value(json_object_get(answer, "exporter")));
        } else if (state && strcmp(state, "pending") == 0) {
                WatchState w = { .opened = opened };

                watch_until_active(cl, lease, &w);
                samples_add(ready, w.active_ns - t0);
                idx = exporter_index(w.exporter);
                if (handoffs && w.first_pending)
                        samples_add(handoffs, w.active_ns - __atomic_load_n(&release_ns[idx], __ATOMIC_ACQUIRE));
                else
                        cl->late_watches++;
        } else
                die("lease %s in state %s", lease, state ? state : "(none)");
        json_decref(answer);
        return idx;
}

static void lease_release(Client *cl, const char *lease, int idx) {
        __atomic_store_n(&release_ns[idx], now_ns(), __ATOMIC_RELEASE);
        request(cl->api, "DELETE", cl->token, NULL, NULL, "/v1/leases/%s", lease);
        cl->ops++;
}

static void *client_main(void *p) {
        Client *cl = p;
        char selector[128], lease[64];

        cl->api = conn_new();
        cl->watch = conn_new();
        snprintf(selector, sizeof selector, "vendor=acme,pool=large,model in (widget-v%u,widget-v%u)", cl->index % 10,
                 (cl->index + 3) % 10);

        /* Phase 1: pools with free devices: create, active at once, release. */
        pthread_barrier_wait(&barrier);
        for (unsigned i = 0; i < arg_cycles; i++) {
                int idx;

                snprintf(lease, sizeof lease, "%s-free-%u", cl->name, i);
                idx = lease_acquire(cl, lease, selector, &cl->ready_free, NULL, NULL);
                lease_release(cl, lease, idx);
        }
        cl->ops_free = cl->ops;
        pthread_barrier_wait(&barrier);

        /* Phase 2: every client wants one of the 10 devices of pool=small: 10 hold, 90 queue. */
        pthread_barrier_wait(&barrier);
        for (unsigned i = 0; i < arg_contended_cycles; i++) {
                int idx;

                snprintf(lease, sizeof lease, "%s-small-%u", cl->name, i);
                idx = lease_acquire(cl, lease, "pool=small", &cl->ready_queue, &cl->handoff, NULL);
                lease_release(cl, lease, idx);
        }
        cl->ops_contended = cl->ops - cl->ops_free;
        pthread_barrier_wait(&barrier);

        /* Phase 3, everyone else done: one client on free devices, then (phase 4) two clients
         * passing exp-0000's device back and forth, the waiter's watch open before each release. */
        if (cl->index == 0)
                for (unsigned i = 0; i < arg_idle_cycles; i++) {
                        int idx;

                        snprintf(lease, sizeof lease, "%s-idle-%u", cl->name, i);
                        idx = lease_acquire(cl, lease, selector, &cl->idle_ready, NULL, NULL);
                        lease_release(cl, lease, idx);
                }
        pthread_barrier_wait(&barrier);
        if (cl->index <= 1 && arg_clients >= 2) {
                const char *solo = "pool=small,model=widget-v0";
                Samples queued = {}; /* through the queue: not an idle create-to-ready */
                int idx = -1;

                if (cl->index == 0) {
                        snprintf(lease, sizeof lease, "%s-solo-start", cl->name);
                        idx = lease_acquire(cl, lease, solo, &queued, NULL, NULL);
                }
                pthread_barrier_wait(&barrier);
                for (unsigned r = 0; r < arg_idle_cycles; r++) {
                        if ((r % 2 == 0) == (cl->index == 1)) {
                                snprintf(lease, sizeof lease, "%s-solo-%u", cl->name, r);
                                idx = lease_acquire(cl, lease, solo, &queued, &cl->idle_handoff, &watch_opened);
                        } else {
                                sem_wait(&watch_opened);
                                lease_release(cl, lease, idx);
                                idx = -1;
                        }
                }
                if (idx >= 0)
                        lease_release(cl, lease, idx);
                free(queued.v);
        } else
                pthread_barrier_wait(&barrier);
        curl_easy_cleanup(cl->api);
        curl_easy_cleanup(cl->watch);
        return NULL;
}

static unsigned count_online(CURL *c) {
        json_t *answer = NULL, *e;
        unsigned online = 0;
        size_t i;

        request(c, "GET", arg_admin, NULL, &answer, "/v1/exporters");
        json_array_foreach(json_object_get(answer, "items"), i, e) {
                json_t *d = json_array_get(json_object_get(e, "duts"), 0);

                if (strcmp(json_string_value(json_object_get(e, "state")) ?: "", "online") == 0 &&
                    strcmp(json_string_value(json_object_get(d, "state")) ?: "", "online") == 0)
                        online++;
        }
        json_decref(answer);
        return online;
}

static void print_ratio_line(const char *peer, double peer_ms, double ours_ms) {
        printf("  vs %-36s %6.0f ms: %7.0fx faster\n", peer, peer_ms, peer_ms / ours_ms);
}

static void print_against_targets(const char *what, const Samples *s) {
        double p50 = pct_ms(s, 50), p99 = pct_ms(s, 99);

        if (s->n == 0)
                return;
        printf("handoff (%s) against the target and the peers' published figures:\n", what);
        printf("  target <= 10 ms on loopback: p50 %.2f ms (%s), p99 %.2f ms (%s)\n", p50,
               p50 <= 10 ? "met" : "missed", p99, p99 <= 10 ? "met" : "missed");
        print_ratio_line("labgrid (1 s polling)", 1000, p50);
        print_ratio_line("LAVA (20 s scheduler loop)", 20000, p50);
        print_ratio_line("Jumpstarter (1-30 s backoff), best", 1000, p50);
        print_ratio_line("Jumpstarter (1-30 s backoff), worst", 30000, p50);
}

static void help(const char *argv0) {
        printf("Usage: %s [OPTIONS] URL CA-FILE ADMIN-TOKEN\n"
               "  --exporters N          simulated exporters, one DUT each (default 1000; >= %d)\n"
               "  --clients N            simulated clients, one thread each (default 100)\n"
               "  --cycles N             leases per client on free devices (default 50)\n"
               "  --contended-cycles N   leases per client on the %d devices of pool=small (default 20)\n"
               "  --idle-cycles N        leases of one client, and handoffs between two, on an idle controller (default 200)\n",
               argv0, N_SMALL_POOL * 2, N_SMALL_POOL);
}

static unsigned parse_uint(const char *s, unsigned min, const char *what) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v < min || v > 100000)
                die("%s: not a number from %u to 100000: %s", what, min, s);
        return (unsigned) v;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "exporters", required_argument, NULL, 'e' },
                { "clients", required_argument, NULL, 'c' },
                { "cycles", required_argument, NULL, 'n' },
                { "contended-cycles", required_argument, NULL, 'm' },
                { "idle-cycles", required_argument, NULL, 'i' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        unsigned online, rounds = UINT32_MAX, late_rounds = 0;
        Group groups[N_GROUPS] = {};
        uint64_t t0, t1, t2, t3, ops1 = 0, ops2 = 0;
        Samples free_ready, queue_ready, handoff, idle_ready, idle_handoff;
        unsigned late = 0;
        CURL *admin;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'e':
                        arg_exporters = parse_uint(optarg, N_SMALL_POOL * 2, "--exporters");
                        break;
                case 'c':
                        arg_clients = parse_uint(optarg, 1, "--clients");
                        break;
                case 'n':
                        arg_cycles = parse_uint(optarg, 1, "--cycles");
                        break;
                case 'm':
                        arg_contended_cycles = parse_uint(optarg, 1, "--contended-cycles");
                        break;
                case 'i':
                        arg_idle_cycles = parse_uint(optarg, 1, "--idle-cycles");
                        break;
                case 'h':
                        help(argv[0]);
                        return 0;
                default:
                        return 2;
                }
        if (argc - optind != 3) {
                help(argv[0]);
                return 2;
        }
        arg_url = argv[optind];
        arg_ca = argv[optind + 1];
        arg_admin = argv[optind + 2];

        if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
                die("curl_global_init failed");
        exporters = calloc(arg_exporters, sizeof *exporters);
        clients = calloc(arg_clients, sizeof *clients);
        release_ns = calloc(arg_exporters, sizeof *release_ns);
        if (!exporters || !clients || !release_ns)
                die("out of memory");
        admin = conn_new();

        /* Setup: exporter groups in parallel (they go on with heartbeats), then the clients. */
        t0 = now_ns();
        if (pthread_barrier_init(&setup_done, NULL, N_GROUPS + 1))
                die("pthread_barrier_init failed");
        for (unsigned i = 0; i < N_GROUPS; i++) {
                groups[i].from = arg_exporters * i / N_GROUPS;
                groups[i].to = arg_exporters * (i + 1) / N_GROUPS;
                if (pthread_create(&groups[i].thread, NULL, exporter_group, &groups[i]))
                        die("pthread_create failed");
        }
        pthread_barrier_wait(&setup_done);
        for (unsigned i = 0; i < arg_clients; i++) {
                json_t *answer = NULL;

                clients[i].index = i;
                snprintf(clients[i].name, sizeof clients[i].name, "client-%03u", i);
                request(admin, "POST", arg_admin, json_pack("{s:s}", "name", clients[i].name), &answer, "/v1/clients");
                clients[i].token = take_token(answer, clients[i].name);
                json_decref(answer);
        }
        t1 = now_ns();
        online = count_online(admin);
        printf("setup: %u exporters (status PUT, one DUT each) and %u clients in %.2f s; %u DUTs online\n",
               arg_exporters, arg_clients, (t1 - t0) / 1e9, online);
        if (online != arg_exporters)
                die("only %u of %u exporters are online", online, arg_exporters);

        if (pthread_barrier_init(&barrier, NULL, arg_clients + 1) || sem_init(&watch_opened, 0, 0) < 0)
                die("pthread_barrier_init failed");
        for (unsigned i = 0; i < arg_clients; i++)
                if (pthread_create(&clients[i].thread, NULL, client_main, &clients[i]))
                        die("pthread_create failed");

        pthread_barrier_wait(&barrier);
        t0 = now_ns();
        pthread_barrier_wait(&barrier);
        t1 = now_ns();
        pthread_barrier_wait(&barrier);
        t2 = now_ns();
        pthread_barrier_wait(&barrier);
        t3 = now_ns();
        pthread_barrier_wait(&barrier); /* phase 3 done */
        pthread_barrier_wait(&barrier); /* phase 4 started */
        for (unsigned i = 0; i < arg_clients; i++) {
                pthread_join(clients[i].thread, NULL);
                ops1 += clients[i].ops_free;
                ops2 += clients[i].ops_contended;
                late += clients[i].late_watches;
        }
        online = count_online(admin);
        __atomic_store_n(&stop_heartbeats, 1, __ATOMIC_RELEASE);
        for (unsigned i = 0; i < N_GROUPS; i++) {
                pthread_join(groups[i].thread, NULL);
                rounds = groups[i].rounds < rounds ? groups[i].rounds : rounds;
                late_rounds += groups[i].late;
        }

        free_ready = merge(offsetof(Client, ready_free));
        queue_ready = merge(offsetof(Client, ready_queue));
        handoff = merge(offsetof(Client, handoff));
        idle_ready = merge(offsetof(Client, idle_ready));
        idle_handoff = merge(offsetof(Client, idle_handoff));

        printf("heartbeats: every 3 s from %d connections, at least %u rounds each, %u rounds late; %u of %u DUTs "
               "online at the end\n",
               N_GROUPS, rounds, late_rounds, online, arg_exporters);
        printf("free devices: %u clients x %u leases, selector of ~%u%% of the exporters\n", arg_clients, arg_cycles,
               20);
        printf("  lease operations (create or release): %" PRIu64 " in %.2f s: %.0f ops/s\n", ops1, (t1 - t0) / 1e9,
               ops1 / ((t1 - t0) / 1e9));
        printf("  create to ready (201 with state active): p50 %.2f ms  p99 %.2f ms  (%zu)\n", pct_ms(&free_ready, 50),
               pct_ms(&free_ready, 99), free_ready.n);
        printf("contended: %u clients x %u leases on the %d devices of pool=small\n", arg_clients,
               arg_contended_cycles, N_SMALL_POOL);
        printf("  lease operations (create or release): %" PRIu64 " in %.2f s: %.0f ops/s\n", ops2, (t3 - t2) / 1e9,
               ops2 / ((t3 - t2) / 1e9));
        printf("  create to ready (queue wait included): p50 %.2f ms  p99 %.2f ms  (%zu)\n", pct_ms(&queue_ready, 50),
               pct_ms(&queue_ready, 99), queue_ready.n);
        printf("  handoff, release sent to active on the waiter's watch: p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%zu; "
               "%u leases were active before their watch opened)\n",
               pct_ms(&handoff, 50), pct_ms(&handoff, 99), handoff.n ? handoff.v[handoff.n - 1] / 1e6 : 0, handoff.n,
               late);
        printf("idle (heartbeats only): one client on free devices, then two clients passing one device\n");
        printf("  create to ready: p50 %.2f ms  p99 %.2f ms  (%zu)\n", pct_ms(&idle_ready, 50), pct_ms(&idle_ready, 99),
               idle_ready.n);
        printf("  handoff, release sent to active on the waiter's watch: p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%zu)\n",
               pct_ms(&idle_handoff, 50), pct_ms(&idle_handoff, 99),
               idle_handoff.n ? idle_handoff.v[idle_handoff.n - 1] / 1e6 : 0, idle_handoff.n);
        print_against_targets("idle", &idle_handoff);
        print_against_targets("contended, 100 clients", &handoff);
        if (online != arg_exporters)
                die("only %u of %u exporters stayed online", online, arg_exporters);
        curl_easy_cleanup(admin);
        curl_global_cleanup();
        return 0;
}
