/* Controller internals shared by controller.c (state, persistence, watches) and controller-api.c (routes) */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "controller.h"
#include "controller-config.h"
#include "http-server.h"
#include "keyring.h"
#include "lease-scheduler.h"
#include "router.h"
#include "store.h"

#define CONTROLLER_API_AUDIENCE "jumpstarter-api"
#define EXPORTER_HEARTBEAT_SEC 3U
#define EXPORTER_TIMEOUT_SEC 10U
#define WATCH_PING_USEC (3 * USEC_PER_SEC)
#define STREAM_VERBS_DEFAULT "power serial storage gpio"

/* Store collections. */
#define COLLECTION_CLIENTS "clients"
#define COLLECTION_EXPORTERS "exporters"
#define COLLECTION_LEASES "leases"

/* An exporter record and its liveness. Its DUTs are scheduler entries named "EXPORTER/DUT". */
typedef struct CtlExporter {
        Controller *controller;
        char *name;
        json_t *record;          /* the store object, kept equal to it */
        bool online;             /* heard from within EXPORTER_TIMEOUT_SEC */
        uint64_t last_seen_usec; /* CLOCK_REALTIME; 0: not since this controller started */
        sd_event_source *timeout;
        char **devices;          /* scheduler entries it has now */
        size_t n_devices;
} CtlExporter;

/* A lease change the scheduler reported, waiting for its commit. */
typedef struct LeaseChange {
        LeaseEvent event;
        char *name;
        char *client;
        char *device;    /* "EXPORTER/DUT" it holds or held, or NULL */
        json_t *record;  /* the store object; NULL once ended */
        json_t *api;     /* the lease as the API shows it, at the change */
} LeaseChange;

typedef enum WatchType {
        WATCH_LEASES,   /* GET /v1/leases?watch=true */
        WATCH_LEASE,    /* GET /v1/leases/{name}/watch */
        WATCH_EXPORTER, /* GET /v1/exporters/{name}/watch */
} WatchType;

typedef struct Watch Watch;
struct Watch {
        Controller *controller;
        WatchType type;
        HttpRequest *req;
        char *client; /* WATCH_LEASES, WATCH_LEASE: whose leases; NULL: everyone's (an admin) */
        char *name;   /* WATCH_LEASE: the lease; WATCH_EXPORTER: the exporter */
        Watch *prev, *next;
};

/* Who a request comes from (its verified token). */
typedef struct Identity {
        char *name;
        bool exporter;
        bool admin;
} Identity;

struct Controller {
        sd_event *event;
        const ControllerConfig *config;
        char *endpoint;
        char *ca_pem;
        Store *store;
        Keyring *keyring;
        char *keyring_dir;
        LeaseScheduler *scheduler;
        HttpServer *server;
        Router *router; /* routed streams; NULL without router.listen */

        CtlExporter **exporters; /* sorted by name */
        size_t n_exporters;

        LeaseChange *changes;
        size_t n_changes;
        /* Group commit: the transactions of requests (and timers) since the last commit, committed
         * with the lease changes as one group by flush_source, and the requests whose replies
         * wait for that commit. */
        StoreTxn **staged;
        size_t n_staged, n_staged_allocated;
        HttpRequest **held;
        size_t n_held, n_held_allocated;
        sd_event_source *flush_source;

        Watch *watches;
        sd_event_source *ping_timer;
        void *api_bindings; /* controller-api.c */
        struct ControllerMetrics *metrics; /* metrics.c: /metrics, usage, lease journal fields */
        struct ControllerPolicy *policy;   /* policy.c: the access policy (docs/policy.md) */
        bool broken;
};

/* controller.c */
uint64_t now_realtime_usec(void);
/* RFC 3339 UTC with a Z; JSON null for 0. */
json_t *json_timestamp(uint64_t usec);
json_t *json_string_or_null(const char *s);
/* {"key": "value", ...}, or NULL on OOM. */
json_t *labels_to_json(const Label *l, size_t n);

/* Persisted before acknowledged, with group commit (docs/controller.md "What is persisted"): a
 * request stages its transaction, and its reply is held until the group that holds its changes,
 * and every change made before its reply was built, is durable. The group (every staged
 * transaction, each with its own checks, then every lease change the scheduler reported) is
 * committed with one fdatasync() once the loop has handled what is ready; then the changes are
 * streamed to the watchers and the held replies go out. A failed commit breaks the controller (it
 * exits, the held replies never go out): the store's state is the truth, a restart reads it. */
/* Takes t (may be NULL) into the next group. */
int controller_stage(Controller *c, StoreTxn *t);
/* Stages t (may be NULL; takes it) and commits the group now, before returning: for what must be in the store before the
 * next request is even authenticated (clients and exporters created or deleted, start-up). */
int controller_commit(Controller *c, StoreTxn *t);
/* Releases req's held reply now if nothing waits for a commit, else with the next group. */
void controller_hold_reply(Controller *c, HttpRequest *req);
/* Whether the object exists as the staged transactions leave it. */
bool controller_store_exists(Controller *c, const char *collection, const char *name);

CtlExporter *controller_find_exporter(Controller *c, const char *name);
int controller_exporter_new(Controller *c, const char *name, json_t *record, CtlExporter **ret);
/* Takes its DUTs out of the scheduler (their leases end ExporterGone) and frees it. */
void controller_exporter_remove(Controller *c, CtlExporter *e);
/* Brings the scheduler's entries in line with record["duts"] and the exporter's labels. */
int controller_exporter_sync(Controller *c, CtlExporter *e);
/* A status, heartbeat or watch came: online again, timeout rearmed. Puts the record into t if its
 * state changed. */
int controller_exporter_heard(Controller *c, CtlExporter *e, StoreTxn *t);
json_t *controller_exporter_to_json(Controller *c, CtlExporter *e);

json_t *controller_lease_to_json(Controller *c, const Lease *l);
json_t *controller_keys_to_json(Controller *c);
/* Issues an API token (kind "client" or "exporter"); ret_jti is its id, ret_expires CLOCK_REALTIME. */
int controller_issue_api_token(Controller *c, const char *kind, const char *name, uint64_t lifetime_usec,
                               char **ret_token, char **ret_jti, uint64_t *ret_expires);

int controller_watch_new(Controller *c, HttpRequest *req, WatchType type, const char *client, const char *name,
                         Watch **ret);
/* Ends (with the chunked terminator) and frees a watch. */
void controller_watch_end(Watch *w);
int controller_watch_send(Watch *w, json_t *line);
void controller_broadcast_keys(Controller *c);

/* controller-api.c */
int controller_api_register(Controller *c);
int controller_authenticate(HttpRequest *req, const char *token, char **ret_detail, void *userdata);
