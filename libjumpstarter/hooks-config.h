/* Lease hooks and health checks of a DUT: the "hooks:" and "health:" keys of the ExporterConfig */
#pragma once

#include <errno.h>
#include <stdint.h>

#include "config-parse.h"
#include "macro.h"
#include "yaml-tree.h"

#define HOOK_TIMEOUT_DEFAULT_USEC (5ULL * 60 * USEC_PER_SEC)
#define HEALTH_INTERVAL_DEFAULT_USEC (10ULL * 60 * USEC_PER_SEC)
#define HEALTH_TIMEOUT_DEFAULT_USEC (60ULL * USEC_PER_SEC)

typedef enum HookFailure {
        HOOK_FAILURE_WARN,      /* "warn": logged and reported, nothing else */
        HOOK_FAILURE_END_LEASE, /* "endLease": the controller ends the lease */
        HOOK_FAILURE_DISABLE,   /* "disable": the DUT is marked unhealthy, out of the pool */
        _HOOK_FAILURE_MAX,
        _HOOK_FAILURE_INVALID = -EINVAL,
} HookFailure;

const char *hook_failure_to_string(HookFailure f);
HookFailure hook_failure_from_string(const char *s);

typedef struct HookConfig {
        char **argv;           /* NULL: no such hook; run directly, never by a shell */
        uint64_t timeout_usec;
        HookFailure on_failure;
} HookConfig;

typedef struct DutHooks {
        HookConfig before_lease;
        HookConfig after_lease;
        char **health_argv;    /* NULL: no health check */
        uint64_t health_interval_usec;
        uint64_t health_timeout_usec;
} DutHooks;

/* Parses the "hooks" and "health" keys of a DUT's mapping; *ret is NULL when it has neither. */
int dut_hooks_parse(ConfigParser *p, const YamlNode *dut, DutHooks **ret);
DutHooks *dut_hooks_free(DutHooks *h);
