/* Access policy: the AccessPolicy YAML (roles) and its evaluation, without I/O beyond reading the file */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "macro.h"
#include "selector.h"

/* The rules are written down in docs/policy.md. */
#define POLICY_CONFIG_KIND "AccessPolicy"
#define POLICY_ROLES_MAX 1024
#define POLICY_LIMIT_NONE UINT32_MAX

typedef enum PolicyVerb {
        POLICY_VERB_LEASE,
        POLICY_VERB_POWER,
        POLICY_VERB_SERIAL,
        POLICY_VERB_STORAGE,
        POLICY_VERB_GPIO,
        POLICY_VERB_ADMIN,
        _POLICY_VERB_MAX,
        _POLICY_VERB_INVALID = -EINVAL,
} PolicyVerb;

const char *policy_verb_to_string(PolicyVerb v);
PolicyVerb policy_verb_from_string(const char *s);

#define POLICY_VERB_BIT(v) (1U << (v))
/* The verbs a stream token can carry (docs/protocol.md "Data streams"). */
#define POLICY_STREAM_VERBS (POLICY_VERB_BIT(POLICY_VERB_POWER) | POLICY_VERB_BIT(POLICY_VERB_SERIAL) | \
                             POLICY_VERB_BIT(POLICY_VERB_STORAGE) | POLICY_VERB_BIT(POLICY_VERB_GPIO))

typedef struct PolicyRole {
        char *name;
        Selector *clients;             /* on the client's labels */
        Selector *exporters;           /* on the device's labels (exporter's merged with the DUT's) */
        unsigned verbs;                /* POLICY_VERB_BIT()s */
        uint64_t max_duration_usec;    /* 0: no limit */
        uint32_t max_leases_per_client; /* POLICY_LIMIT_NONE: no limit */
        uint32_t max_leases_per_team;
        int priority;
} PolicyRole;

typedef struct Policy {
        char *path;
        PolicyRole *roles;
        size_t n_roles;
} Policy;

/* Parses and validates a whole AccessPolicy. On failure returns a negative errno and, in *ret_error,
 * "FILE:LINE:COLUMN: KEY.PATH: what is wrong" (caller frees). */
int policy_load(const char *path, Policy **ret, char **ret_error);
int policy_parse(const char *path, const char *data, size_t size, Policy **ret, char **ret_error);
Policy *policy_free(Policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Policy *, policy_free);

bool policy_role_matches_client(const PolicyRole *r, const Label *client, size_t n_client);
bool policy_role_matches_device(const PolicyRole *r, const Label *device, size_t n_device);

/* Whether the client may hold a lease of duration_usec on the device: one role matches both, grants
 * "lease", and allows that long (0: do not judge the duration). */
bool policy_allows_lease(const Policy *p, const Label *client, size_t n_client, const Label *device,
                         size_t n_device, uint64_t duration_usec);
/* The verbs the roles that match the client and the device grant, together. */
unsigned policy_device_verbs(const Policy *p, const Label *client, size_t n_client, const Label *device,
                             size_t n_device);

/* The decision on a lease request before it is queued (docs/policy.md "Leases"). */
typedef struct PolicyLeaseDecision {
        bool allowed;
        char *reason;              /* why not, naming the rule that would be needed; NULL if allowed */
        uint32_t max_leases_per_client; /* the most generous limits of the client's roles */
        uint32_t max_leases_per_team;
        int priority;              /* the highest priority of the roles that grant the request */
} PolicyLeaseDecision;

void policy_lease_decision_done(PolicyLeaseDecision *d);

/* client_name is for messages. Judges the client's roles against the request's selector (a role
 * whose exporters selector contradicts it cannot serve it) and duration. 0 or -ENOMEM. */
int policy_judge_lease(const Policy *p, const char *client_name, const Label *client, size_t n_client,
                       const Selector *selector, uint64_t duration_usec, PolicyLeaseDecision *ret);

/* "lease power serial": the verbs of mask in table order; "" for none. NULL on OOM. */
char *policy_verbs_to_string(unsigned mask);
/* Space-separated verbs; -EINVAL for an unknown one. */
int policy_verbs_from_string(const char *s, unsigned *ret);
