/* Prometheus text exposition format 0.0.4, written into a memory buffer */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "macro.h"
#include "metrics-text.h"

int metrics_text_begin(MetricsText *m) {
        *m = (MetricsText) {};
        m->f = open_memstream(&m->buf, &m->size);
        return m->f ? 0 : -ENOMEM;
}

void metrics_text_family(MetricsText *m, const char *name, const char *type, const char *help) {
        fprintf(m->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void write_labels(MetricsText *m, const char *const *labels, const char *le) {
        bool first = true;

        if (!labels && !le)
                return;
        fputc('{', m->f);
        for (size_t i = 0; labels && labels[i]; i += 2) {
                fprintf(m->f, "%s%s=\"", first ? "" : ",", labels[i]);
                for (const char *p = labels[i + 1] ?: ""; *p; p++)
                        if (*p == '\\' || *p == '"')
                                fprintf(m->f, "\\%c", *p);
                        else if (*p == '\n')
                                fputs("\\n", m->f);
                        else
                                fputc(*p, m->f);
                fputc('"', m->f);
                first = false;
        }
        if (le)
                fprintf(m->f, "%sle=\"%s\"", first ? "" : ",", le);
        fputc('}', m->f);
}

void metrics_text_u64(MetricsText *m, const char *name, const char *const *labels, uint64_t value) {
        fputs(name, m->f);
        write_labels(m, labels, NULL);
        fprintf(m->f, " %" PRIu64 "\n", value);
}

void metrics_text_double(MetricsText *m, const char *name, const char *const *labels, double value) {
        fputs(name, m->f);
        write_labels(m, labels, NULL);
        if (isnan(value))
                fputs(" NaN\n", m->f);
        else
                fprintf(m->f, " %.17g\n", value);
}

void metrics_text_histogram(MetricsText *m, const char *name, const double *bounds, const uint64_t *counts, size_t n,
                            double sum) {
        uint64_t cumulative = 0;
        char le[64];

        for (size_t i = 0; i <= n; i++) {
                cumulative += counts[i];
                if (i < n)
                        snprintf(le, sizeof le, "%g", bounds[i]);
                else
                        snprintf(le, sizeof le, "+Inf");
                fprintf(m->f, "%s_bucket", name);
                write_labels(m, NULL, le);
                fprintf(m->f, " %" PRIu64 "\n", cumulative);
        }
        fprintf(m->f, "%s_sum %.17g\n%s_count %" PRIu64 "\n", name, sum, name, cumulative);
}

int metrics_text_end(MetricsText *m, char **ret, size_t *ret_size) {
        bool failed = ferror(m->f);

        if (fclose(m->f) != 0)
                failed = true;
        m->f = NULL;
        if (failed) {
                free(m->buf);
                m->buf = NULL;
                return -ENOMEM;
        }
        *ret = TAKE_PTR(m->buf);
        *ret_size = m->size;
        return 0;
}

void metrics_text_done(MetricsText *m) {
        if (m->f)
                fclose(m->f);
        free(m->buf);
        *m = (MetricsText) {};
}
