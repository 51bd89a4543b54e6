/* Parsing of sizes, durations and booleans as config files and command lines write them */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* "4096", "64KiB", "64MiB", "1GiB", "1G", "512k", "2M"; K/M/G/T with or without "iB" are powers of
 * 1024. Returns 0 or -EINVAL / -ERANGE. */
int parse_size(const char *s, uint64_t *ret);
/* "300ms", "2s", "1.5s", "5m", "1h", "250us"; a bare number is seconds. Result in usec. */
int parse_duration(const char *s, uint64_t *ret_usec);
/* true/false/yes/no/on/off/1/0 */
int parse_boolean(const char *s, bool *ret);
/* a decimal unsigned integer, no sign, no trailing junk */
int parse_uint64(const char *s, uint64_t *ret);
/* Formats usec as "1.5s", "300ms", "5min" into buf. */
const char *format_duration(char *buf, size_t size, uint64_t usec);
