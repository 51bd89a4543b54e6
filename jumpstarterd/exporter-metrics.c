/* Exporter metrics: GET /metrics on a plain HTTP listener of its own, and the counters behind it */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dut.h"
#include "exporter-link.h"
#include "exporter-metrics.h"
#include "exporter.h"
#include "http-server.h"
#include "log.h"
#include "macro.h"
#include "metrics-text.h"

struct ExporterMetrics {
        const ExporterConfig *config;
        Exporter *exporter;
        ExporterLink *link;
        HttpServer *server;
        uint64_t start_realtime_usec, start_monotonic_usec;
};

/* Counters */

typedef struct Counter {
        char *a, *b, *c; /* label values */
        uint64_t n;
} Counter;

static Counter *power_counters, *error_counters;
static size_t n_power_counters, n_error_counters;
static uint64_t storage_bytes[2]; /* read, written: atomics, the storage workers are threads */

static void counter_add(Counter **array, size_t *n, const char *a, const char *b, const char *c) {
        Counter *x;

        for (size_t i = 0; i < *n; i++)
                if (streq((*array)[i].a, a) && streq((*array)[i].b, b) && streq((*array)[i].c, c)) {
                        (*array)[i].n++;
                        return;
                }
        x = reallocarray(*array, *n + 1, sizeof(Counter));
        if (!x)
                return (void) log_oom();
        *array = x;
        x[*n] = (Counter) { .a = strdup(a), .b = strdup(b), .c = strdup(c), .n = 1 };
        if (!x[*n].a || !x[*n].b || !x[*n].c) {
                free(x[*n].a);
                free(x[*n].b);
                free(x[*n].c);
                return (void) log_oom();
        }
        (*n)++;
}

void exporter_metrics_count_power(const char *dut, const char *driver, const char *action, int r) {
        counter_add(&power_counters, &n_power_counters, strempty(dut), strempty(action), r < 0 ? "failed" : "done");
        if (r < 0 && r != -ECANCELED && r != -EBUSY) {
                char op[64];

                snprintf(op, sizeof op, "power.%s", strempty(action));
                exporter_metrics_count_driver_error(driver, op);
        }
}

void exporter_metrics_count_driver_error(const char *driver, const char *operation) {
        counter_add(&error_counters, &n_error_counters, strempty(driver), strempty(operation), "");
}

void exporter_metrics_add_storage_bytes(bool write, uint64_t n) {
        __atomic_add_fetch(&storage_bytes[write], n, __ATOMIC_RELAXED);
}

/* /proc */

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000U;
}

static void write_host_cpu(MetricsText *t) {
        static const char *const modes[] = { "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal" };
        unsigned long long v[ELEMENTSOF(modes)] = {};
        long hz = sysconf(_SC_CLK_TCK);
        FILE *f = fopen("/proc/stat", "re");
        int k = 0;

        if (f) {
                k = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                           &v[6], &v[7]);
                fclose(f);
        }
        if (k < 4 || hz <= 0)
                return;
        metrics_text_family(t, "jumpstarter_host_cpu_seconds_total", "counter",
                            "CPU time of the host (all CPUs) by mode, from /proc/stat.");
        for (int i = 0; i < k; i++)
                metrics_text_double(t, "jumpstarter_host_cpu_seconds_total", METRICS_LABELS("mode", modes[i]),
                                    (double) v[i] / (double) hz);
        metrics_text_family(t, "jumpstarter_host_cpus", "gauge", "CPUs of the host that are online.");
        metrics_text_u64(t, "jumpstarter_host_cpus", NULL, (uint64_t) MAX(sysconf(_SC_NPROCESSORS_ONLN), 1L));
}

static void write_host_memory(MetricsText *t) {
        unsigned long long total = 0, available = 0, v;
        char line[256], key[64];
        FILE *f = fopen("/proc/meminfo", "re");

        if (!f)
                return;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "%63[^:]: %llu kB", key, &v) == 2) {
                        if (streq(key, "MemTotal"))
                                total = v * 1024;
                        else if (streq(key, "MemAvailable"))
                                available = v * 1024;
                }
        fclose(f);
        metrics_text_family(t, "jumpstarter_host_memory_total_bytes", "gauge", "Memory of the host.");
        metrics_text_u64(t, "jumpstarter_host_memory_total_bytes", NULL, total);
        metrics_text_family(t, "jumpstarter_host_memory_available_bytes", "gauge",
                            "Memory of the host available for new work (MemAvailable).");
        metrics_text_u64(t, "jumpstarter_host_memory_available_bytes", NULL, available);
}

static void write_host_io(MetricsText *t) {
        unsigned long long read_sectors = 0, written_sectors = 0, io_ms = 0;
        char line[512], name[64], path[128];
        FILE *f = fopen("/proc/diskstats", "re");
        double load = 0;

        if (f) {
                while (fgets(line, sizeof line, f)) {
                        unsigned long long rs, ws, ioms, skip;
                        unsigned major, minor;

                        /* major minor name reads merged sectors ms writes merged sectors ms inflight io_ms */
                        if (sscanf(line, " %u %u %63s %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &major, &minor,
                                   name, &skip, &skip, &rs, &skip, &skip, &skip, &ws, &skip, &skip, &ioms) != 13)
                                continue;
                        /* Whole disks only (partitions would count twice), and no loop or RAM disks. */
                        snprintf(path, sizeof path, "/sys/block/%s", name);
                        if (access(path, F_OK) < 0 || strncmp(name, "loop", 4) == 0 || strncmp(name, "ram", 3) == 0)
                                continue;
                        read_sectors += rs;
                        written_sectors += ws;
                        io_ms += ioms;
                }
                fclose(f);
                metrics_text_family(t, "jumpstarter_host_disk_read_bytes_total", "counter",
                                    "Bytes read from the host's disks, from /proc/diskstats.");
                metrics_text_u64(t, "jumpstarter_host_disk_read_bytes_total", NULL, read_sectors * 512);
                metrics_text_family(t, "jumpstarter_host_disk_written_bytes_total", "counter",
                                    "Bytes written to the host's disks, from /proc/diskstats.");
                metrics_text_u64(t, "jumpstarter_host_disk_written_bytes_total", NULL, written_sectors * 512);
                metrics_text_family(t, "jumpstarter_host_disk_io_seconds_total", "counter",
                                    "Time the host's disks were busy (sum over the disks).");
                metrics_text_double(t, "jumpstarter_host_disk_io_seconds_total", NULL, (double) io_ms / 1000.0);
        }

        f = fopen("/proc/loadavg", "re");
        if (f) {
                if (fscanf(f, "%lf", &load) == 1) {
                        metrics_text_family(t, "jumpstarter_host_load1", "gauge", "The host's load average over 1 minute.");
                        metrics_text_double(t, "jumpstarter_host_load1", NULL, load);
                }
                fclose(f);
        }
}

static void write_process(MetricsText *t) {
        unsigned long long size, resident;
        long page = sysconf(_SC_PAGESIZE);
        FILE *f = fopen("/proc/self/statm", "re");

        if (!f)
                return;
        if (fscanf(f, "%llu %llu", &size, &resident) == 2 && page > 0) {
                metrics_text_family(t, "jumpstarter_process_resident_memory_bytes", "gauge",
                                    "Resident memory of jumpstarterd.");
                metrics_text_u64(t, "jumpstarter_process_resident_memory_bytes", NULL, resident * (uint64_t) page);
        }
        fclose(f);
}

/* GET /metrics */

static const char *dut_power_driver(Dut *d) {
        const DriverConfig *c = dut_get_config(d)->classes[DRIVER_CLASS_POWER];

        return c ? c->type->name : NULL;
}

static int metrics_render(ExporterMetrics *m, char **ret, size_t *ret_size) {
        Exporter *e = m->exporter;
        size_t n = exporter_n_duts(e);
        MetricsText t;
        int r;

        r = metrics_text_begin(&t);
        if (r < 0)
                return r;

        metrics_text_family(&t, "jumpstarter_exporter_info", "gauge", "The exporter's name (always 1).");
        metrics_text_u64(&t, "jumpstarter_exporter_info", METRICS_LABELS("exporter", m->config->name), 1);
        metrics_text_family(&t, "jumpstarter_exporter_start_time_seconds", "gauge",
                            "When jumpstarterd started, in seconds since the epoch.");
        metrics_text_u64(&t, "jumpstarter_exporter_start_time_seconds", NULL, m->start_realtime_usec / USEC_PER_SEC);
        metrics_text_family(&t, "jumpstarter_exporter_uptime_seconds", "gauge", "Seconds since jumpstarterd started.");
        metrics_text_double(&t, "jumpstarter_exporter_uptime_seconds", NULL,
                            (double) (now_usec(CLOCK_MONOTONIC) - m->start_monotonic_usec) / (double) USEC_PER_SEC);
        metrics_text_family(&t, "jumpstarter_exporter_linked", "gauge",
                            "Whether the link to the controller is up (1) or not (0; always 0 in local mode).");
        metrics_text_u64(&t, "jumpstarter_exporter_linked", NULL, m->link && exporter_link_is_connected(m->link));

        metrics_text_family(&t, "jumpstarter_duts", "gauge", "DUTs this exporter serves.");
        metrics_text_u64(&t, "jumpstarter_duts", NULL, n);
        metrics_text_family(&t, "jumpstarter_dut_leased", "gauge", "Whether the DUT is held by a lease (1) or not (0).");
        for (size_t i = 0; i < n; i++) {
                Dut *d = exporter_get_dut(e, i);
                uint64_t end;

                /* A linked exporter's DUTs are leased at the controller; the agent's are leases themselves. */
                metrics_text_u64(&t, "jumpstarter_dut_leased", METRICS_LABELS("dut", dut_get_name(d)),
                                 exporter_get_lease(e, dut_get_name(d)) != NULL ||
                                 (m->link && exporter_link_get_lease(m->link, dut_get_name(d), &end) != NULL));
        }
        metrics_text_family(&t, "jumpstarter_dut_power_state", "gauge",
                            "The DUT's power state: 1 for the state it is in (on, off, unknown), 0 for the others.");
        for (size_t i = 0; i < n; i++) {
                Dut *d = exporter_get_dut(e, i);
                PowerState s;

                if (dut_get_power(d, &s) < 0)
                        continue;
                for (PowerState k = 0; k < _POWER_STATE_MAX; k++)
                        metrics_text_u64(&t, "jumpstarter_dut_power_state",
                                         METRICS_LABELS("dut", dut_get_name(d), "state", power_state_to_string(k)), s == k);
        }
        metrics_text_family(&t, "jumpstarter_dut_power_actions_total", "counter",
                            "Power actions (on, off, cycle) by DUT, action and result (done, failed).");
        for (size_t i = 0; i < n_power_counters; i++)
                metrics_text_u64(&t, "jumpstarter_dut_power_actions_total",
                                 METRICS_LABELS("dut", power_counters[i].a, "action", power_counters[i].b, "result",
                                                power_counters[i].c),
                                 power_counters[i].n);
        metrics_text_family(&t, "jumpstarter_dut_serial_bytes_total", "counter",
                            "Console bytes received from the DUT (what serial.log holds, before it wraps).");
        for (size_t i = 0; i < n; i++) {
                Dut *d = exporter_get_dut(e, i);
                uint64_t bytes, modified;

                if (dut_serial_log_stat(d, &bytes, &modified) >= 0)
                        metrics_text_u64(&t, "jumpstarter_dut_serial_bytes_total", METRICS_LABELS("dut", dut_get_name(d)),
                                         bytes);
        }
        metrics_text_family(&t, "jumpstarter_storage_bytes_total", "counter",
                            "Bytes read from and written to DUT storage over data streams, by direction.");
        metrics_text_u64(&t, "jumpstarter_storage_bytes_total", METRICS_LABELS("direction", "read"),
                         __atomic_load_n(&storage_bytes[0], __ATOMIC_RELAXED));
        metrics_text_u64(&t, "jumpstarter_storage_bytes_total", METRICS_LABELS("direction", "write"),
                         __atomic_load_n(&storage_bytes[1], __ATOMIC_RELAXED));
        metrics_text_family(&t, "jumpstarter_driver_errors_total", "counter",
                            "Failed driver operations, by driver type and operation (power.on, gpio.set, ...).");
        /* Every power driver of the config, at 0, so that rate() has a series before the first error. */
        for (size_t i = 0; i < n; i++) {
                const char *driver = dut_power_driver(exporter_get_dut(e, i));
                bool seen = false;

                for (size_t j = 0; driver && j < n_error_counters && !seen; j++)
                        seen = streq(error_counters[j].a, driver);
                for (size_t j = 0; driver && j < i && !seen; j++)
                        seen = streq_ptr(dut_power_driver(exporter_get_dut(e, j)), driver);
                if (driver && !seen)
                        metrics_text_u64(&t, "jumpstarter_driver_errors_total",
                                         METRICS_LABELS("driver", driver, "operation", "power.on"), 0);
        }
        for (size_t i = 0; i < n_error_counters; i++)
                metrics_text_u64(&t, "jumpstarter_driver_errors_total",
                                 METRICS_LABELS("driver", error_counters[i].a, "operation", error_counters[i].b),
                                 error_counters[i].n);

        write_host_cpu(&t);
        write_host_memory(&t);
        write_host_io(&t);
        write_process(&t);
        return metrics_text_end(&t, ret, ret_size);
}

static int on_metrics(HttpRequest *req, void *userdata) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        r = metrics_render(userdata, &text, &size);
        if (r < 0)
                return r;
        return http_request_reply(req, 200, METRICS_CONTENT_TYPE, text, size);
}

int exporter_metrics_new(sd_event *event, const ExporterConfig *config, Exporter *exporter, ExporterLink *link,
                         ExporterMetrics **ret) {
        ExporterMetrics *m;
        int r;

        m = calloc(1, sizeof(ExporterMetrics));
        if (!m)
                return log_oom();
        *m = (ExporterMetrics) {
                .config = config,
                .exporter = exporter,
                .link = link,
                .start_realtime_usec = now_usec(CLOCK_REALTIME),
                .start_monotonic_usec = now_usec(CLOCK_MONOTONIC),
        };
        /* Plain HTTP: metrics are public, as on the controller; bind it to an address that only the
         * Prometheus server reaches. */
        r = http_server_new(event, &(HttpServerConfig) { .listen = config->metrics_listen, .plain_http = true },
                            &m->server);
        if (r < 0) {
                exporter_metrics_free(m);
                return log_error_errno(r, "Failed to serve metrics on %s: %m", config->metrics_listen);
        }
        r = http_server_add_route(m->server, HTTP_METHOD_GET, "/metrics", HTTP_ROUTE_PUBLIC, on_metrics, m);
        if (r < 0) {
                exporter_metrics_free(m);
                return log_error_errno(r, "Failed to add the /metrics route: %m");
        }
        log_info("Serving metrics on %s (port %u), GET /metrics.", config->metrics_listen,
                 http_server_get_port(m->server));
        *ret = m;
        return 0;
}

ExporterMetrics *exporter_metrics_free(ExporterMetrics *m) {
        if (!m)
                return NULL;
        http_server_free(m->server);
        free(m);
        return NULL;
}

uint16_t exporter_metrics_get_port(ExporterMetrics *m) {
        return m ? http_server_get_port(m->server) : 0;
}
