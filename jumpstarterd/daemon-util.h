/* Small helpers of the daemon: clocks and running out of memory */
#pragma once

#include <stdint.h>
#include <time.h>

#include "log.h"

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")

static inline uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* log_dut() with the DUT's name in front of the message, as systemd's log_unit_*() put the unit's:
 * on stderr, where there are no journal fields, a line must still say which DUT it is about. */
#define log_dut_prefix(level, error, dut, format, ...) \
        log_dut((level), (error), (dut), "%s: " format, (dut), ##__VA_ARGS__)
