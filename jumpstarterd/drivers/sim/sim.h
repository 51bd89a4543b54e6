/* Simulated board: its options, for tests that drive a board without a config file */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "driver.h"

typedef struct SimOptions {
        const char *storage;     /* image file; NULL = in memory */
        uint64_t size;
        bool size_set;
        uint64_t boot_time_usec;
        uint64_t cycle_delay_usec;
        uint64_t log_size;
        const char *prompt;      /* NULL = "<dut>:~# " */
} SimOptions;

#define SIM_DEFAULT_SIZE        (UINT64_C(64) * 1024 * 1024)
#define SIM_DEFAULT_BOOT_TIME   (UINT64_C(300) * 1000)
#define SIM_DEFAULT_CYCLE_DELAY (UINT64_C(200) * 1000)
#define SIM_DEFAULT_LOG_SIZE    (UINT64_C(1024) * 1024)
#define SIM_FLOOD_MAX           1000000U

#define SIM_OPTIONS_DEFAULT                                     \
        ((SimOptions) {                                         \
                .size = SIM_DEFAULT_SIZE,                       \
                .boot_time_usec = SIM_DEFAULT_BOOT_TIME,        \
                .cycle_delay_usec = SIM_DEFAULT_CYCLE_DELAY,    \
                .log_size = SIM_DEFAULT_LOG_SIZE,               \
        })

typedef struct Sim Sim;

/* The instance that driver_sim.new() makes from a config; use driver_sim's ops on it. */
int sim_new(const SimOptions *options, const DriverContext *ctx, Sim **ret);
