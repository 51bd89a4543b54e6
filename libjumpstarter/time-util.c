/* Timestamps as people and the API write them: dates and RFC 3339 times */
#include <errno.h>
#include <time.h>

#include "macro.h"
#include "time-util.h"

static int parse_digits(const char **p, size_t n, int *ret) {
        int v = 0;

        for (size_t i = 0; i < n; i++) {
                if ((*p)[i] < '0' || (*p)[i] > '9')
                        return -EINVAL;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

static int expect_char(const char **p, char c) {
        if (**p != c)
                return -EINVAL;
        (*p)++;
        return 0;
}

int parse_timestamp(const char *s, uint64_t *ret_usec) {
        int year, month, day, hour = 0, minute = 0, second = 0, offset = 0;
        struct tm tm = {}, check;
        const char *p = s;
        time_t t;

        if (!s)
                return -EINVAL;
        if (parse_digits(&p, 4, &year) < 0 || expect_char(&p, '-') < 0 || parse_digits(&p, 2, &month) < 0 ||
            expect_char(&p, '-') < 0 || parse_digits(&p, 2, &day) < 0)
                return -EINVAL;
        if (*p) {
                if ((*p != 'T' && *p != 't') || (p++, parse_digits(&p, 2, &hour)) < 0 || expect_char(&p, ':') < 0 ||
                    parse_digits(&p, 2, &minute) < 0 || expect_char(&p, ':') < 0 || parse_digits(&p, 2, &second) < 0)
                        return -EINVAL;
                /* Fractions of a second: the period's edges are whole seconds. */
                if (*p == '.') {
                        p++;
                        if (*p < '0' || *p > '9')
                                return -EINVAL;
                        while (*p >= '0' && *p <= '9')
                                p++;
                }
                if (*p == 'Z' || *p == 'z')
                        p++;
                else if (*p == '+' || *p == '-') {
                        int sign = *p == '-' ? -1 : 1, oh, om;

                        p++;
                        if (parse_digits(&p, 2, &oh) < 0 || expect_char(&p, ':') < 0 || parse_digits(&p, 2, &om) < 0 ||
                            oh > 23 || om > 59)
                                return -EINVAL;
                        offset = sign * (oh * 3600 + om * 60);
                } else
                        return -EINVAL;
                if (*p)
                        return -EINVAL;
        }
        if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
                return -EINVAL;

        tm = (struct tm) { .tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day,
                           .tm_hour = hour, .tm_min = minute, .tm_sec = second == 60 ? 59 : second };
        t = timegm(&tm);
        /* timegm() normalizes 2026-02-30 to March 2nd: refuse a date that does not exist. */
        if (t == (time_t) -1 || !gmtime_r(&t, &check) || check.tm_mday != day || check.tm_mon != month - 1)
                return -EINVAL;
        t -= offset;
        if (t < 0)
                return -EINVAL;
        *ret_usec = (uint64_t) t * USEC_PER_SEC;
        return 0;
}
