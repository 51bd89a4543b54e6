/* Timestamps as people and the API write them: dates and RFC 3339 times */
#pragma once

#include <stdint.h>

/* "2026-11-01" (midnight UTC) or RFC 3339 "2026-11-01T10:00:00Z", "...T10:00:00.5Z", "...+02:00" ->
 * CLOCK_REALTIME usec (fractions of a second are dropped). -EINVAL for anything else, including
 * dates that do not exist (2026-02-30) and times before 1970. */
int parse_timestamp(const char *s, uint64_t *ret_usec);
