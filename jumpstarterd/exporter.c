/* Exporter role: the DUTs wired to this host, made from the config, and DUTs that come and go */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon-util.h"
#include "exporter.h"
#include "log.h"
#include "macro.h"

typedef struct ExporterDut {
        Dut *dut;
        ExporterConfig *owned;          /* the config of a DUT added at run time, freed with it */
        ExporterReleaseFunc release;    /* set for leased DUTs */
        void *release_userdata;
        uint64_t storage_size;          /* as the listener last heard it */
} ExporterDut;

struct Exporter {
        sd_event *event;
        const ExporterConfig *config;
        ExporterDut *duts;
        size_t n_duts, n_allocated;

        DutPowerChangedFunc power_changed;
        void *power_changed_userdata;
        ExporterDutChangedFunc dut_changed;
        void *dut_changed_userdata;
        json_t *leases;                 /* lease name (= DUT name) -> lease object */

        unsigned n_powering_off;
        void (*powered_off)(void *userdata);
        void *powered_off_userdata;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(ExporterConfig *, exporter_config_free);

static ExporterDut *exporter_find_entry(const Exporter *e, const char *name);

static void exporter_on_power_changed(Dut *d, PowerState state, void *userdata) {
        Exporter *e = userdata;
        ExporterDut *entry;

        if (e->power_changed)
                e->power_changed(d, state, e->power_changed_userdata);

        /* A remote DUT learns its storage size from its first describe, which the exporter answers
         * before the power state that brings us here. */
        entry = exporter_find_entry(e, dut_get_name(d));
        if (entry && entry->storage_size != dut_get_storage_size(d)) {
                entry->storage_size = dut_get_storage_size(d);
                if (e->dut_changed)
                        e->dut_changed(e, d, EXPORTER_DUT_CHANGED, e->dut_changed_userdata);
        }
}

static int exporter_reserve(Exporter *e, size_t n) {
        ExporterDut *p;
        size_t want;

        if (n <= e->n_allocated)
                return 0;
        want = MAX(n, e->n_allocated * 2);
        want = MAX(want, (size_t) 4);
        p = reallocarray(e->duts, want, sizeof *p);
        if (!p)
                return -ENOMEM;
        e->duts = p;
        e->n_allocated = want;
        return 0;
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
        e->event = sd_event_ref(event);
        e->config = config;
        if (exporter_reserve(e, config->n_duts) < 0)
                return log_oom();

        for (size_t i = 0; i < config->n_duts; i++) {
                Dut *d;

                r = dut_new(event, &config->duts[i], exporter_on_power_changed, e, &d);
                if (r < 0)
                        return r;
                e->duts[e->n_duts++] = (ExporterDut) { .dut = d, .storage_size = dut_get_storage_size(d) };
        }

        *ret = TAKE_PTR(e);
        return 0;
}

Exporter *exporter_free(Exporter *e) {
        if (!e)
                return NULL;
        /* Freeing a DUT cancels its power actions; nobody waits for them any more. */
        e->powered_off = NULL;
        e->dut_changed = NULL;
        for (size_t i = 0; i < e->n_duts; i++) {
                dut_free(e->duts[i].dut);
                exporter_config_free(e->duts[i].owned);
        }
        free(e->duts);
        json_decref(e->leases);
        sd_event_unref(e->event);
        free(e);
        return NULL;
}

void exporter_set_power_changed(Exporter *e, DutPowerChangedFunc func, void *userdata) {
        e->power_changed = func;
        e->power_changed_userdata = userdata;
}

void exporter_set_dut_changed(Exporter *e, ExporterDutChangedFunc func, void *userdata) {
        e->dut_changed = func;
        e->dut_changed_userdata = userdata;
}

static ExporterDut *exporter_find_entry(const Exporter *e, const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < e->n_duts; i++)
                if (streq(dut_get_name(e->duts[i].dut), name))
                        return &e->duts[i];
        return NULL;
}

int exporter_add_dut(Exporter *e, ExporterConfig *config_in, const char *name, ExporterReleaseFunc release,
                     void *release_userdata) {
        _cleanup_(exporter_config_freep) ExporterConfig *config = config_in;
        const DutConfig *dc;
        Dut *d;
        int r;

        assert(e);
        assert(config);
        assert(name);

        if (exporter_find_entry(e, name))
                return log_dut_prefix(LOG_ERR, EEXIST, name, "A DUT of this name exists already");
        dc = exporter_config_find_dut(config, name);
        if (!dc)
                return log_dut_prefix(LOG_ERR, ENOENT, name, "The config to add has no such DUT");
        if (exporter_reserve(e, e->n_duts + 1) < 0)
                return log_oom();

        r = dut_new(e->event, dc, exporter_on_power_changed, e, &d);
        if (r < 0)
                return r;
        e->duts[e->n_duts++] = (ExporterDut) {
                .dut = d,
                .owned = TAKE_PTR(config),
                .release = release,
                .release_userdata = release_userdata,
                .storage_size = dut_get_storage_size(d),
        };
        log_dut_prefix(LOG_INFO, 0, name, "DUT added");

        if (e->dut_changed)
                e->dut_changed(e, d, EXPORTER_DUT_ADDED, e->dut_changed_userdata);
        return 0;
}

int exporter_remove_dut(Exporter *e, const char *name) {
        ExporterDut *entry, taken;
        size_t i;

        entry = exporter_find_entry(e, name);
        if (!entry)
                return -ENOENT;

        /* The listener first, while the DUT is whole: it ends the storage sessions it holds on it. */
        if (e->dut_changed)
                e->dut_changed(e, entry->dut, EXPORTER_DUT_REMOVED, e->dut_changed_userdata);

        /* The entry may have moved if the listener changed the set: look again. */
        entry = exporter_find_entry(e, name);
        if (!entry)
                return 0;
        i = (size_t) (entry - e->duts);
        taken = *entry;
        memmove(e->duts + i, e->duts + i + 1, (e->n_duts - i - 1) * sizeof *e->duts);
        e->n_duts--;

        if (taken.release && e->leases)
                (void) json_object_del(e->leases, name);
        log_dut_prefix(LOG_INFO, 0, name, "DUT removed");
        /* The name lives in the config: log before freeing either. */
        dut_free(taken.dut);
        exporter_config_free(taken.owned);
        return 0;
}

int exporter_set_lease(Exporter *e, const char *name, json_t *lease) {
        ExporterDut *entry;
        json_t *old;

        assert(e);
        assert(name);

        if (!lease) {
                if (e->leases)
                        (void) json_object_del(e->leases, name);
                return 0;
        }
        if (!json_is_object(lease))
                return -EINVAL;
        if (!e->leases) {
                e->leases = json_object();
                if (!e->leases)
                        return -ENOMEM;
        }
        old = json_object_get(e->leases, name);
        if (old && json_equal(old, lease))
                return 0;
        if (json_object_set(e->leases, name, lease) < 0)
                return -ENOMEM;

        entry = exporter_find_entry(e, name);
        if (entry && entry->release && e->dut_changed)
                e->dut_changed(e, entry->dut, EXPORTER_DUT_CHANGED, e->dut_changed_userdata);
        return 0;
}

json_t *exporter_get_lease(const Exporter *e, const char *name) {
        ExporterDut *entry = exporter_find_entry(e, name);

        if (!entry || !entry->release)
                return NULL;
        return json_object_get(e->leases, name);
}

int exporter_release_dut(Exporter *e, const char *name, ExporterReleaseDoneFunc done, void *userdata) {
        ExporterDut *entry;

        entry = exporter_find_entry(e, name);
        if (!entry)
                return -ENOENT;
        if (!entry->release)
                return -EPERM;
        return entry->release(e, name, done, userdata, entry->release_userdata);
}

bool exporter_dut_is_releasable(const Exporter *e, const char *name) {
        ExporterDut *entry = exporter_find_entry(e, name);

        return entry && entry->release;
}

int exporter_reload(Exporter *e, const char *path, const char *data, size_t size) {
        _cleanup_(exporter_config_freep) ExporterConfig *config = NULL;
        _cleanup_free_ char *error = NULL, **gone = NULL;
        size_t n_gone = 0;
        int r, n = 0;

        r = exporter_config_parse(path, data, size, &config, &error);
        if (r < 0) {
                if (error)
                        return log_error_errno(r, "Not reloading: %s", error);
                return log_error_errno(r, "Not reloading %s: %m", path);
        }

        /* Names first: removing changes the array. */
        gone = calloc(MAX(e->n_duts, (size_t) 1), sizeof *gone);
        if (!gone)
                return log_oom();
        for (size_t i = 0; i < e->n_duts; i++) {
                const char *name = dut_get_name(e->duts[i].dut);

                if (!e->duts[i].release && !exporter_config_find_dut(config, name))
                        gone[n_gone++] = (char *) name;
        }
        for (size_t i = 0; i < n_gone; i++) {
                _cleanup_free_ char *name = strdup(gone[i]);

                if (!name)
                        return log_oom();
                if (exporter_remove_dut(e, name) >= 0)
                        n++;
        }

        for (size_t i = 0; i < config->n_duts; i++) {
                const char *name = config->duts[i].name;
                _cleanup_free_ char *again_error = NULL;
                ExporterConfig *own = NULL;

                if (exporter_find_entry(e, name)) {
                        if (exporter_dut_is_releasable(e, name))
                                log_dut_prefix(LOG_WARNING, 0, name, "Not added: a leased DUT has this name");
                        continue;
                }
                /* Each added DUT owns a config of its own; the text parsed once already. */
                r = exporter_config_parse(path, data, size, &own, &again_error);
                if (r < 0)
                        return log_error_errno(r, "Failed to parse %s again: %m", path);
                if (exporter_add_dut(e, own, name, NULL, NULL) >= 0)
                        n++;
        }
        return n;
}

int exporter_reload_file(Exporter *e, const char *path) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        char buf[4096];
        FILE *f, *m;
        size_t n;
        int r;

        f = fopen(path, "re");
        if (!f)
                return log_error_errno(errno, "Not reloading: failed to open %s: %m", path);
        m = open_memstream(&data, &size);
        if (!m) {
                fclose(f);
                return log_oom();
        }
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                (void) fwrite(buf, 1, n, m);
        r = ferror(f) ? -EIO : 0;
        fclose(f);
        if (fclose(m) != 0)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "Not reloading: failed to read %s", path);

        r = exporter_reload(e, path, data, size);
        if (r >= 0)
                log_info("Reloaded %s: %d DUT%s added or removed, %zu now", path, r, r == 1 ? "" : "s", e->n_duts);
        return r;
}

size_t exporter_n_duts(const Exporter *e) {
        return e->n_duts;
}

Dut *exporter_get_dut(const Exporter *e, size_t i) {
        return i < e->n_duts ? e->duts[i].dut : NULL;
}

Dut *exporter_find_dut(const Exporter *e, const char *name) {
        ExporterDut *entry = exporter_find_entry(e, name);

        return entry ? entry->dut : NULL;
}

static void exporter_on_powered_off(Dut *d, int r, void *userdata) {
        Exporter *e = userdata;

        if (r < 0 && r != -ECANCELED)
                log_dut_prefix(LOG_WARNING, r, dut_get_name(d), "Failed to power off: %m");

        assert(e->n_powering_off > 0);
        if (--e->n_powering_off == 0 && e->powered_off)
                e->powered_off(e->powered_off_userdata);
}

int exporter_power_off_all(Exporter *e, void (*done)(void *userdata), void *userdata) {
        e->powered_off = done;
        e->powered_off_userdata = userdata;

        for (size_t i = 0; i < e->n_duts; i++) {
                int r = dut_stop(e->duts[i].dut, exporter_on_powered_off, e);

                if (r == 0)
                        e->n_powering_off++;
                else if (r < 0 && r != -EOPNOTSUPP)
                        log_dut_prefix(LOG_WARNING, r, dut_get_name(e->duts[i].dut), "Failed to power off: %m");
        }
        return e->n_powering_off == 0 ? 1 : 0;
}
