/* Fuzzer for the exporter config parser: any bytes give a whole config or one error message */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "fuzz-check.h"
#include "fuzz.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(ExporterConfig *, exporter_config_free);

#define FUZZ_PATH "/fuzz/exporter.yaml"


static void check_labels(const Label *l, size_t n) {
        for (size_t i = 0; i < n; i++) {
                CHECK(l[i].key && l[i].value);
                CHECK(i == 0 || strcmp(l[i - 1].key, l[i].key) < 0);
        }
}

/* What users of a parsed config rely on. */
static void check_config(const ExporterConfig *c) {
        CHECK(c->path && streq(c->path, FUZZ_PATH));
        CHECK(c->name && *c->name);
        CHECK(c->n_duts > 0);
        check_labels(c->labels, c->n_labels);

        for (size_t i = 0; i < c->n_duts; i++) {
                const DutConfig *d = &c->duts[i];
                bool any = false;

                CHECK(dut_name_is_valid(d->name));
                CHECK(exporter_config_find_dut(c, d->name) == d);
                check_labels(d->labels, d->n_labels);

                for (size_t j = 0; j < d->n_drivers; j++) {
                        const DriverConfig *drv = d->drivers[j];
                        bool serves = false;

                        CHECK(drv && drv->type && driver_type_find(drv->type->name) == drv->type);
                        for (size_t k = 0; k < j; k++)
                                CHECK(d->drivers[k] != drv);
                        for (DriverClass cl = 0; cl < _DRIVER_CLASS_MAX; cl++)
                                serves = serves || d->classes[cl] == drv;
                        CHECK(serves);
                        for (size_t k = 0; k < drv->n_values; k++) {
                                const OptionValue *v = &drv->values[k];

                                CHECK(v->spec == &drv->type->options[k]);
                                CHECK(driver_config_is_set(drv, v->spec->name) == v->set);
                                if (v->set && v->spec->type == OPTION_PATH)
                                        CHECK(v->string && v->string[0] == '/');
                                if (v->set && v->spec->type == OPTION_STRING)
                                        CHECK(v->string);
                                if (!v->set)
                                        CHECK(!v->string);
                        }
                        CHECK(drv->type->options[drv->n_values].name == NULL);
                }
                for (DriverClass cl = 0; cl < _DRIVER_CLASS_MAX; cl++) {
                        bool listed = false;

                        if (!d->classes[cl])
                                continue;
                        any = true;
                        CHECK(d->classes[cl]->type->classes & (1U << cl));
                        for (size_t j = 0; j < d->n_drivers; j++)
                                listed = listed || d->drivers[j] == d->classes[cl];
                        CHECK(listed);
                }
                CHECK(any);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = exporter_config_parse(FUZZ_PATH, (const char *) data, size, &c, &error);
        if (r < 0) {
                check_config_error(r, c, error, FUZZ_PATH);
                return 0;
        }
        CHECK(r == 0 && c && !error);
        check_config(c);
        return 0;
}
