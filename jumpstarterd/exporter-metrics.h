/* Exporter metrics: GET /metrics on a plain HTTP listener of its own, and the counters behind it */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"

typedef struct Exporter Exporter;
typedef struct ExporterLink ExporterLink;
typedef struct ExporterMetrics ExporterMetrics;

/* Serves /metrics (docs/metrics.md) on config->metrics_listen. link may be NULL (local mode).
 * Every sample is built from memory and /proc when scraped: nothing waits. Logs its errors. */
int exporter_metrics_new(sd_event *event, const ExporterConfig *config, Exporter *exporter, ExporterLink *link,
                         ExporterMetrics **ret);
ExporterMetrics *exporter_metrics_free(ExporterMetrics *m);
static inline void exporter_metrics_freep(ExporterMetrics **m) {
        if (*m)
                exporter_metrics_free(*m);
}
/* The port it listens on (the one the kernel picked for port 0). */
uint16_t exporter_metrics_get_port(ExporterMetrics *m);

/* Process-wide counters that the DUT and stream code bump; kept whether or not /metrics is served.
 * Labels are DUT, driver type and operation names: bounded by the config. */
/* A power action finished (r < 0: failed; a failure also counts as a driver error). From the loop. */
void exporter_metrics_count_power(const char *dut, const char *driver, const char *action, int r);
/* A driver operation ("power.on", "gpio.set", "storage.open", ...) failed. From the loop. */
void exporter_metrics_count_driver_error(const char *driver, const char *operation);
/* Bytes a storage stream read or wrote. From any thread. */
void exporter_metrics_add_storage_bytes(bool write, uint64_t n);
