/* Exporter role: the DUTs wired to this host, made from the config, and DUTs that come and go */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "dut.h"

typedef struct Exporter Exporter;

/* Starts every DUT of config (which must outlive the exporter). Logs its errors. */
int exporter_new(sd_event *event, const ExporterConfig *config, Exporter **ret);
Exporter *exporter_free(Exporter *e);

void exporter_set_power_changed(Exporter *e, DutPowerChangedFunc func, void *userdata);

typedef enum ExporterDutEvent {
        EXPORTER_DUT_ADDED,     /* after it started */
        EXPORTER_DUT_REMOVED,   /* before it is freed, so that the listener can end what it holds of it */
        EXPORTER_DUT_CHANGED,   /* what describes it changed: its lease, or its storage size once known */
        _EXPORTER_DUT_EVENT_MAX,
        _EXPORTER_DUT_EVENT_INVALID = -EINVAL,
} ExporterDutEvent;

/* A DUT came, goes or changed. Added and removed are not called for the DUTs of exporter_new()
 * nor by exporter_free(). */
typedef void (*ExporterDutChangedFunc)(Exporter *e, Dut *d, ExporterDutEvent event, void *userdata);
void exporter_set_dut_changed(Exporter *e, ExporterDutChangedFunc func, void *userdata);

/* Ends the DUT's lease: r is 0 once it is ended (the DUT is removed by then, or will be), or a
 * negative errno. */
typedef void (*ExporterReleaseDoneFunc)(int r, void *userdata);
/* The owner's hook behind exporter_release_dut(): returns 0 and calls done later (never from
 * within), or a negative errno. */
typedef int (*ExporterReleaseFunc)(Exporter *e, const char *dut, ExporterReleaseDoneFunc done, void *done_userdata,
                                   void *userdata);

/* Adds the DUT named dut of config, which the exporter owns from now on, also on failure (a heap
 * config per added DUT: the DUT keeps pointers into it). release (optional) is the hook that
 * exporter_release_dut() calls for it. -EEXIST when a DUT of that name exists, -ENOENT when config
 * has no such DUT, or the DUT's start error (logged). */
int exporter_add_dut(Exporter *e, ExporterConfig *config, const char *dut, ExporterReleaseFunc release,
                     void *release_userdata);
/* Removes a DUT (of the config too): tells the listener, then frees it, which cancels its power
 * actions and closes its serial.log readers; it is not powered off. -ENOENT if there is none. */
int exporter_remove_dut(Exporter *e, const char *name);
/* Calls the DUT's release hook: -ENOENT without the DUT, -EPERM for a DUT without one (those of a
 * local config); else as ExporterReleaseFunc. */
int exporter_release_dut(Exporter *e, const char *name, ExporterReleaseDoneFunc done, void *userdata);
/* Whether the DUT has a release hook (is leased rather than configured). */
bool exporter_dut_is_releasable(const Exporter *e, const char *name);

/* Makes the configured DUTs those of the ExporterConfig text data (the config file re-read by the
 * caller, on SIGHUP): DUTs it lacks are removed, DUTs it adds are added (each from its own parse of
 * data, so that each owns its config). DUTs present in both keep running as they are; leased DUTs
 * (with a release hook) are left alone. A config that does not parse changes nothing. Returns the
 * number of DUTs added or removed, or a negative errno (logged). */
int exporter_reload(Exporter *e, const char *path, const char *data, size_t size);
/* exporter_reload() of the file at path; logs what it did. */
int exporter_reload_file(Exporter *e, const char *path);

/* The lease behind the leased DUT of that name, now or once it is added: a lease object of the
 * controller's API (docs/protocol.md: "name", "client", "selector", "begin", "end"), or NULL to
 * forget it. When the DUT is there and the lease is not the same as before, the listener hears
 * EXPORTER_DUT_CHANGED. The record goes with the DUT. */
int exporter_set_lease(Exporter *e, const char *name, json_t *lease);
/* The lease object of a leased DUT, or NULL (a DUT of the config, or none known yet). */
json_t *exporter_get_lease(const Exporter *e, const char *name);

size_t exporter_n_duts(const Exporter *e);
Dut *exporter_get_dut(const Exporter *e, size_t i);
Dut *exporter_find_dut(const Exporter *e, const char *name);

/* Powers every DUT off for good (see dut_stop()). Returns 1 when all are off already (done is not called), else 0 and
 * calls done once all are. */
int exporter_power_off_all(Exporter *e, void (*done)(void *userdata), void *userdata);

static inline void exporter_freep(Exporter **e) {
        exporter_free(*e);
}
