/* Prometheus text exposition format 0.0.4, written into a memory buffer */
#pragma once

#include <stdint.h>
#include <stdio.h>

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct MetricsText {
        FILE *f;
        char *buf;
        size_t size;
} MetricsText;

int metrics_text_begin(MetricsText *m);
/* "# HELP" and "# TYPE" of a family: once, before its samples. */
void metrics_text_family(MetricsText *m, const char *name, const char *type, const char *help);
/* One sample. labels: NULL, or "key", "value", ..., NULL; values are escaped. */
void metrics_text_u64(MetricsText *m, const char *name, const char *const *labels, uint64_t value);
void metrics_text_double(MetricsText *m, const char *name, const char *const *labels, double value);
/* A histogram's _bucket, _sum and _count samples; bounds[n] ascending, counts[n + 1] per bucket (not
 * cumulative; the last is +Inf). */
void metrics_text_histogram(MetricsText *m, const char *name, const double *bounds, const uint64_t *counts, size_t n,
                            double sum);
/* Hands the text over (caller frees); -ENOMEM if any write failed. */
int metrics_text_end(MetricsText *m, char **ret, size_t *ret_size);
void metrics_text_done(MetricsText *m);

#define METRICS_LABELS(...) ((const char *const[]) { __VA_ARGS__, NULL })
