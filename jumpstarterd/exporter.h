/* Exporter role: the DUTs wired to this host, made from the config */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "dut.h"

typedef struct Exporter Exporter;

/* Starts every DUT of config (which must outlive the exporter). Logs its errors. */
int exporter_new(sd_event *event, const ExporterConfig *config, Exporter **ret);
Exporter *exporter_free(Exporter *e);

void exporter_set_power_changed(Exporter *e, DutPowerChangedFunc func, void *userdata);

size_t exporter_n_duts(const Exporter *e);
Dut *exporter_get_dut(const Exporter *e, size_t i);
Dut *exporter_find_dut(const Exporter *e, const char *name);

/* Powers every DUT off for good (see dut_stop()). Returns 1 when all are off already (done is not called), else 0 and
 * calls done once all are. */
int exporter_power_off_all(Exporter *e, void (*done)(void *userdata), void *userdata);

static inline void exporter_freep(Exporter **e) {
        exporter_free(*e);
}
