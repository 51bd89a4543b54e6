/* Power readings: parsing what a meter prints and formatting what power.reading shows */
#pragma once

#include <stddef.h>

/* "12.5", "12.5 W", "12.5W\n": a finite, non-negative number of watts. -EINVAL otherwise. */
int power_reading_parse(const char *s, double *ret);
