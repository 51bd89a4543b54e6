/* Exporter role: the DUTs wired to this host, made from the config */
#include <assert.h>
#include <stdlib.h>

#include "daemon-util.h"
#include "exporter.h"
#include "log.h"
#include "macro.h"

struct Exporter {
        const ExporterConfig *config;
        Dut **duts;
        size_t n_duts;

        DutPowerChangedFunc power_changed;
        void *power_changed_userdata;

        unsigned n_powering_off;
        void (*powered_off)(void *userdata);
        void *powered_off_userdata;
};

static void exporter_on_power_changed(Dut *d, PowerState state, void *userdata) {
        Exporter *e = userdata;

        if (e->power_changed)
                e->power_changed(d, state, e->power_changed_userdata);
}

int exporter_new(sd_event *event, const ExporterConfig *config, Exporter **ret) {
        _cleanup_(exporter_freep) Exporter *e = NULL;
        int r;

        assert(event);
        assert(config);
        assert(ret);

        e = calloc(1, sizeof *e);
        if (!e)
                return log_oom();
        e->config = config;
        e->duts = calloc(MAX(config->n_duts, (size_t) 1), sizeof *e->duts);
        if (!e->duts)
                return log_oom();

        for (size_t i = 0; i < config->n_duts; i++) {
                r = dut_new(event, &config->duts[i], exporter_on_power_changed, e, &e->duts[i]);
                if (r < 0)
                        return r;
                e->n_duts++;
        }

        *ret = TAKE_PTR(e);
        return 0;
}

Exporter *exporter_free(Exporter *e) {
        if (!e)
                return NULL;
        /* Freeing a DUT cancels its power actions; nobody waits for them any more. */
        e->powered_off = NULL;
        for (size_t i = 0; i < e->n_duts; i++)
                dut_free(e->duts[i]);
        free(e->duts);
        free(e);
        return NULL;
}

void exporter_set_power_changed(Exporter *e, DutPowerChangedFunc func, void *userdata) {
        e->power_changed = func;
        e->power_changed_userdata = userdata;
}

size_t exporter_n_duts(const Exporter *e) {
        return e->n_duts;
}

Dut *exporter_get_dut(const Exporter *e, size_t i) {
        return i < e->n_duts ? e->duts[i] : NULL;
}

Dut *exporter_find_dut(const Exporter *e, const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < e->n_duts; i++)
                if (streq(dut_get_name(e->duts[i]), name))
                        return e->duts[i];
        return NULL;
}

static void exporter_on_powered_off(Dut *d, int r, void *userdata) {
        Exporter *e = userdata;

        if (r < 0)
                log_dut_prefix(LOG_WARNING, r, dut_get_name(d), "Failed to power off: %m");

        assert(e->n_powering_off > 0);
        if (--e->n_powering_off == 0 && e->powered_off)
                e->powered_off(e->powered_off_userdata);
}

int exporter_power_off_all(Exporter *e, void (*done)(void *userdata), void *userdata) {
        e->powered_off = done;
        e->powered_off_userdata = userdata;

        for (size_t i = 0; i < e->n_duts; i++) {
                int r = dut_stop(e->duts[i], exporter_on_powered_off, e);

                if (r == 0)
                        e->n_powering_off++;
                else if (r < 0 && r != -EOPNOTSUPP)
                        log_dut_prefix(LOG_WARNING, r, dut_get_name(e->duts[i]), "Failed to power off: %m");
        }
        return e->n_powering_off == 0 ? 1 : 0;
}
