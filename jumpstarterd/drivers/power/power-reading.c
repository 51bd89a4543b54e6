/* Power readings: parsing what a meter prints */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "macro.h"
#include "power-reading.h"

int power_reading_parse(const char *s, double *ret) {
        char *end;
        double w;

        if (!s)
                return -EINVAL;
        while (*s == ' ' || *s == '\t')
                s++;
        if (!(*s >= '0' && *s <= '9'))
                return -EINVAL; /* no sign, no "inf", no "nan", no hex */
        errno = 0;
        w = strtod(s, &end);
        if (errno != 0 || end == s || !isfinite(w) || w < 0)
                return -EINVAL;
        while (*end == ' ' || *end == '\t')
                end++;
        if (*end == 'W')
                end++;
        while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
                end++;
        if (*end != '\0')
                return -EINVAL;
        *ret = w;
        return 0;
}
