/* Parsing of sizes, durations and booleans as config files and command lines write them */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "parse-util.h"

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* Reads "123" or "123.456" from *p. The fraction is kept as digits and a power of ten so that
 * the caller can scale it exactly by the unit. Digits past the ninth are ignored: that keeps
 * scale() within 64 bits and costs at most a few hundred bytes of a TiB. Signs, spaces and an
 * empty number are refused. */
static int parse_decimal(const char **p, uint64_t *ret_int, uint64_t *ret_frac, uint64_t *ret_frac_div) {
        const char *s = *p;
        uint64_t n = 0, frac = 0, div = 1;
        bool any = false;

        for (; is_digit(*s); s++) {
                unsigned d = (unsigned) (*s - '0');

                if (n > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                n = n * 10 + d;
                any = true;
        }
        if (*s == '.') {
                s++;
                if (!is_digit(*s))
                        return -EINVAL;
                for (; is_digit(*s); s++) {
                        if (div < UINT64_C(1000000000)) {
                                frac = frac * 10 + (uint64_t) (*s - '0');
                                div *= 10;
                        }
                        any = true;
                }
        }
        if (!any)
                return -EINVAL;

        *p = s;
        *ret_int = n;
        *ret_frac = frac;
        *ret_frac_div = div;
        return 0;
}

/* n * unit + frac / div * unit, rounded down, or -ERANGE. */
static int scale(uint64_t n, uint64_t frac, uint64_t div, uint64_t unit, uint64_t *ret) {
        uint64_t whole, part;

        if (n != 0 && unit > UINT64_MAX / n)
                return -ERANGE;
        whole = n * unit;

        /* frac < div <= 10^9: splitting the unit keeps both products below 10^18. */
        part = (unit / div) * frac + (unit % div) * frac / div;
        if (whole > UINT64_MAX - part)
                return -ERANGE;
        *ret = whole + part;
        return 0;
}

int parse_uint64(const char *s, uint64_t *ret) {
        uint64_t n = 0;

        assert(s);
        assert(ret);

        if (!is_digit(*s))
                return -EINVAL;
        for (; *s; s++) {
                unsigned d;

                if (!is_digit(*s))
                        return -EINVAL;
                d = (unsigned) (*s - '0');
                if (n > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                n = n * 10 + d;
        }
        *ret = n;
        return 0;
}

typedef struct Unit {
        const char *suffix;
        uint64_t factor;
} Unit;

static const Unit *unit_find(const Unit *table, size_t n, const char *suffix) {
        for (size_t i = 0; i < n; i++)
                if (streq(table[i].suffix, suffix))
                        return &table[i];
        return NULL;
}

int parse_size(const char *s, uint64_t *ret) {
        /* Binary units only: "MB" is refused rather than guessed as 10^6 or 2^20. "m" is refused
         * because it reads as milli or minutes elsewhere in the same file. */
        static const Unit units[] = {
                { "", 1 },
                { "B", 1 },
                { "K", UINT64_C(1) << 10 },
                { "k", UINT64_C(1) << 10 },
                { "KiB", UINT64_C(1) << 10 },
                { "kiB", UINT64_C(1) << 10 },
                { "M", UINT64_C(1) << 20 },
                { "MiB", UINT64_C(1) << 20 },
                { "G", UINT64_C(1) << 30 },
                { "GiB", UINT64_C(1) << 30 },
                { "T", UINT64_C(1) << 40 },
                { "TiB", UINT64_C(1) << 40 },
        };
        uint64_t n, frac, div;
        const Unit *u;
        const char *p;
        int r;

        assert(s);
        assert(ret);

        p = s;
        r = parse_decimal(&p, &n, &frac, &div);
        if (r < 0)
                return r;
        while (*p == ' ')
                p++;
        u = unit_find(units, ELEMENTSOF(units), p);
        if (!u)
                return -EINVAL;
        /* "64 " is a number with trailing junk, not bytes. */
        if (u->suffix[0] == 0 && p > s && p[-1] == ' ')
                return -EINVAL;
        return scale(n, frac, div, u->factor, ret);
}

#define USEC_PER_MINUTE (60 * USEC_PER_SEC)
#define USEC_PER_HOUR (60 * USEC_PER_MINUTE)
#define USEC_PER_DAY (24 * USEC_PER_HOUR)

int parse_duration(const char *s, uint64_t *ret_usec) {
        static const Unit units[] = {
                { "", USEC_PER_SEC },
                { "us", 1 },
                { "usec", 1 },
                { "ms", USEC_PER_MSEC },
                { "msec", USEC_PER_MSEC },
                { "s", USEC_PER_SEC },
                { "sec", USEC_PER_SEC },
                { "m", USEC_PER_MINUTE },
                { "min", USEC_PER_MINUTE },
                { "h", USEC_PER_HOUR },
                { "hr", USEC_PER_HOUR },
                { "d", USEC_PER_DAY },
        };
        uint64_t n, frac, div;
        const Unit *u;
        const char *p;
        int r;

        assert(s);
        assert(ret_usec);

        p = s;
        r = parse_decimal(&p, &n, &frac, &div);
        if (r < 0)
                return r;
        while (*p == ' ')
                p++;
        u = unit_find(units, ELEMENTSOF(units), p);
        if (!u)
                return -EINVAL;
        if (u->suffix[0] == 0 && p > s && p[-1] == ' ')
                return -EINVAL;
        return scale(n, frac, div, u->factor, ret_usec);
}

int parse_boolean(const char *s, bool *ret) {
        static const char *const yes[] = { "1", "true", "yes", "on" };
        static const char *const no[] = { "0", "false", "no", "off" };

        assert(s);
        assert(ret);

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        return -EINVAL;
}

const char *format_duration(char *buf, size_t size, uint64_t usec) {
        static const Unit units[] = {
                { "d", USEC_PER_DAY },
                { "h", USEC_PER_HOUR },
                { "min", USEC_PER_MINUTE },
                { "s", USEC_PER_SEC },
                { "ms", USEC_PER_MSEC },
                { "us", 1 },
        };
        const Unit *u = &units[ELEMENTSOF(units) - 1];
        uint64_t whole, milli;

        assert(buf);
        assert(size > 0);

        if (usec == 0) {
                snprintf(buf, size, "0");
                return buf;
        }
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (usec >= units[i].factor) {
                        u = &units[i];
                        break;
                }

        /* Three decimals at most, rounded to nearest, trailing zeros dropped: "1.5s", "300ms". */
        whole = usec / u->factor;
        /* usec % factor < 8.64e10 (a day), so the product fits. */
        milli = ((usec % u->factor) * 1000 + u->factor / 2) / u->factor;
        if (milli == 1000) {
                whole++;
                milli = 0;
        }
        if (milli == 0)
                snprintf(buf, size, "%" PRIu64 "%s", whole, u->suffix);
        else if (milli % 100 == 0)
                snprintf(buf, size, "%" PRIu64 ".%" PRIu64 "%s", whole, milli / 100, u->suffix);
        else if (milli % 10 == 0)
                snprintf(buf, size, "%" PRIu64 ".%02" PRIu64 "%s", whole, milli / 10, u->suffix);
        else
                snprintf(buf, size, "%" PRIu64 ".%03" PRIu64 "%s", whole, milli, u->suffix);
        return buf;
}
