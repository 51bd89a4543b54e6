/* Controller store: named JSON objects in collections, with revisions, and an append-only history */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The controller keeps exporters, clients, leases and keys here, and lease history. Objects are
 * addressed by collection and name and carry the revision of the commit that last wrote them:
 * one store-wide counter that every commit increments, as etcd's mod_revision does, so that a
 * deleted and re-created object never comes back with a revision a compare-and-swap expects.
 * History entries get consecutive sequence numbers and the commit time. A commit returns once
 * the data is durable. The interface is a vtable so that a replicated engine can carry the same
 * data; store-log.c is the embedded backend (docs/store.md). A Store is not thread-safe. */

/* Kubernetes' limit for object names (a DNS subdomain). */
#define STORE_NAME_MAX 253
#define STORE_COLLECTION_MAX 63
/* Largest transaction or snapshot record a backend writes or accepts. */
#define STORE_RECORD_SIZE_MAX (16U * 1024U * 1024U)
#define STORE_TXN_OPS_MAX 4096U

/* Expected revisions in a compare-and-swap: no check, or "must not exist". */
#define STORE_REVISION_ANY UINT64_MAX
#define STORE_REVISION_ABSENT UINT64_C(0)

typedef enum StoreOpType {
        STORE_OP_CHECK,   /* compare only */
        STORE_OP_PUT,
        STORE_OP_DELETE,
        STORE_OP_HISTORY, /* append to the history */
        _STORE_OP_TYPE_MAX,
        _STORE_OP_TYPE_INVALID = -EINVAL,
} StoreOpType;

typedef struct StoreOp {
        StoreOpType type;
        char *collection;  /* NULL for STORE_OP_HISTORY */
        char *name;        /* NULL for STORE_OP_HISTORY */
        json_t *value;     /* a JSON object, for STORE_OP_PUT and STORE_OP_HISTORY */
        uint64_t expect;   /* revision, STORE_REVISION_ANY or STORE_REVISION_ABSENT */
} StoreOp;

/* A write transaction: checks, puts, deletes and history appends that commit all or nothing.
 * Every check and expected revision compares against the state before the transaction; an
 * object may be put or deleted at most once per transaction. Built with the functions below,
 * read by backends. */
typedef struct StoreTxn {
        StoreOp *ops;
        size_t n_ops;
} StoreTxn;

typedef struct StoreObject {
        char *name;
        json_t *value;
        uint64_t revision;
} StoreObject;

typedef struct StoreHistoryEntry {
        uint64_t seq;
        uint64_t time_usec; /* CLOCK_REALTIME of the commit that appended it */
        json_t *value;
} StoreHistoryEntry;

typedef struct StoreStatus {
        uint64_t revision;        /* of the newest commit, 0 for an empty store */
        uint64_t history_next;    /* the sequence number the next history entry gets */
        uint64_t n_history;
        uint64_t n_objects;
        uint64_t log_size;        /* bytes written since the last compaction: a hint for when to compact */
        uint64_t recovered_bytes; /* of an interrupted write, truncated away at open */
} StoreStatus;

typedef struct Store Store;

typedef struct StoreOps {
        const char *name;
        int (*get)(Store *s, const char *collection, const char *name, json_t **ret_value, uint64_t *ret_revision);
        int (*list)(Store *s, const char *collection, StoreObject **ret, size_t *ret_n);
        int (*history)(Store *s, uint64_t from_seq, size_t max, StoreHistoryEntry **ret, size_t *ret_n);
        /* store_commit_group(); store_commit() is a group of one. */
        int (*commit)(Store *s, const StoreTxn *const *txns, size_t n, int *ret_results, uint64_t *ret_revisions);
        int (*compact)(Store *s, uint64_t history_before_usec);
        void (*status)(Store *s, StoreStatus *ret);
        void (*close)(Store *s);
} StoreOps;

/* Backends embed this as their first member. */
struct Store {
        const StoreOps *ops;
};

/* Collections: 1-63 of [a-z0-9_-]; "history" is taken. Names: 1-253 printable ASCII characters
 * other than space. */
bool store_collection_is_valid(const char *collection);
bool store_name_is_valid(const char *name);

int store_txn_new(StoreTxn **ret);
StoreTxn *store_txn_free(StoreTxn *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(StoreTxn *, store_txn_free);
/* These take a reference to value; it is serialized at commit, so leave it unchanged until then.
 * -EINVAL for a bad name or a value that is not an object, -EEXIST if the object already has a
 * put or delete in this transaction, -E2BIG past STORE_TXN_OPS_MAX operations. */
int store_txn_check(StoreTxn *t, const char *collection, const char *name, uint64_t expect);
int store_txn_put(StoreTxn *t, const char *collection, const char *name, json_t *value, uint64_t expect);
int store_txn_delete(StoreTxn *t, const char *collection, const char *name, uint64_t expect);
int store_txn_append_history(StoreTxn *t, json_t *value);

/* Opens the embedded store in dir (created 0700 if missing), replaying its log. -EBUSY if another
 * process (or another Store in this one) has it open. A damaged store is an error with a one-line
 * message in *ret_error that names the file and the byte offset: -EBADMSG for corruption,
 * -EPROTONOSUPPORT for an unknown format version. */
int store_log_open(const char *dir, Store **ret, char **ret_error);

/* A copy of the object and its revision; -ENOENT if there is none. */
int store_get(Store *s, const char *collection, const char *name, json_t **ret_value, uint64_t *ret_revision);
/* Copies of every object of the collection in name (byte) order; an unknown collection is empty. */
int store_list(Store *s, const char *collection, StoreObject **ret, size_t *ret_n);
StoreObject *store_objects_free(StoreObject *o, size_t n);
/* Up to max history entries (0: all) with seq >= from_seq, oldest first. */
int store_history(Store *s, uint64_t from_seq, size_t max, StoreHistoryEntry **ret, size_t *ret_n);
StoreHistoryEntry *store_history_free(StoreHistoryEntry *h, size_t n);

/* Applies the transaction atomically and returns after it is durable, with the revision it gave
 * the objects it put. -ESTALE if an expected revision does not match (nothing is written),
 * -ENOENT for deleting an object that does not exist, -E2BIG if the transaction exceeds
 * STORE_RECORD_SIZE_MAX. A transaction without writes only checks and returns the current
 * revision. Any other error leaves the outcome unknown until the store is reopened: the store
 * refuses further use (-EIO) after a failure it cannot undo, such as a failed fdatasync(). */
int store_commit(Store *s, const StoreTxn *t, uint64_t *ret_revision);
/* Group commit: several transactions made durable together, with one write and one fdatasync().
 * They apply in order, each all or nothing with its own checks, as if each were committed alone
 * with store_commit() right after the ones before it: a check sees what the earlier transactions
 * of the group wrote, and each successful one with writes gets the next revision. For each,
 * ret_results[i] is 0 or what store_commit() would have returned for it at that point (-ESTALE,
 * -ENOENT, -E2BIG, -EINVAL; such a one writes nothing and the others go on), and
 * ret_revisions[i] (optional) its revision. Returns 0 once every successful one is durable. A
 * negative return means what it means for store_commit(): none of them is acknowledged, and any
 * may or may not be on disk. */
int store_commit_group(Store *s, const StoreTxn *const *txns, size_t n, int *ret_results, uint64_t *ret_revisions);
/* Rewrites the store as its live state and starts a fresh log, dropping history entries
 * committed before history_before_usec (CLOCK_REALTIME; 0 keeps all). */
int store_compact(Store *s, uint64_t history_before_usec);
void store_status(Store *s, StoreStatus *ret);
Store *store_close(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_close);
