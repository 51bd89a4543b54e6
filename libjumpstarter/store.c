/* Controller store: transactions, name rules and the calls every backend shares */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "store.h"

bool store_collection_is_valid(const char *collection) {
        size_t n;

        if (!collection)
                return false;
        n = strlen(collection);
        if (n == 0 || n > STORE_COLLECTION_MAX)
                return false;
        /* The history lives beside the collections; an etcd layout puts both under one prefix. */
        if (streq(collection, "history"))
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = collection[i];

                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                        return false;
        }
        return true;
}

bool store_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > STORE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) name[i] <= ' ' || (unsigned char) name[i] >= 0x7f)
                        return false;
        return true;
}

int store_txn_new(StoreTxn **ret) {
        StoreTxn *t;

        assert(ret);

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

StoreTxn *store_txn_free(StoreTxn *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_ops; i++) {
                free(t->ops[i].collection);
                free(t->ops[i].name);
                json_decref(t->ops[i].value);
        }
        free(t->ops);
        free(t);
        return NULL;
}

static int txn_add(StoreTxn *t, StoreOpType type, const char *collection, const char *name, json_t *value,
                   uint64_t expect) {
        _cleanup_free_ char *c = NULL, *n = NULL;
        StoreOp *ops;

        assert(t);

        if (t->n_ops >= STORE_TXN_OPS_MAX)
                return -E2BIG;
        if ((type == STORE_OP_PUT || type == STORE_OP_HISTORY) && !json_is_object(value))
                return -EINVAL;
        if (type != STORE_OP_HISTORY) {
                if (!store_collection_is_valid(collection) || !store_name_is_valid(name))
                        return -EINVAL;
                /* One write per object keeps "all compares see the state before" unambiguous. */
                if (type != STORE_OP_CHECK)
                        for (size_t i = 0; i < t->n_ops; i++)
                                if ((t->ops[i].type == STORE_OP_PUT || t->ops[i].type == STORE_OP_DELETE) &&
                                    streq(t->ops[i].collection, collection) && streq(t->ops[i].name, name))
                                        return -EEXIST;
                c = strdup(collection);
                n = strdup(name);
                if (!c || !n)
                        return -ENOMEM;
        }

        ops = reallocarray(t->ops, t->n_ops + 1, sizeof(StoreOp));
        if (!ops)
                return -ENOMEM;
        t->ops = ops;
        t->ops[t->n_ops++] = (StoreOp) {
                .type = type,
                .collection = TAKE_PTR(c),
                .name = TAKE_PTR(n),
                .value = value ? json_incref(value) : NULL,
                .expect = expect,
        };
        return 0;
}

int store_txn_check(StoreTxn *t, const char *collection, const char *name, uint64_t expect) {
        return txn_add(t, STORE_OP_CHECK, collection, name, NULL, expect);
}

int store_txn_put(StoreTxn *t, const char *collection, const char *name, json_t *value, uint64_t expect) {
        return txn_add(t, STORE_OP_PUT, collection, name, value, expect);
}

int store_txn_delete(StoreTxn *t, const char *collection, const char *name, uint64_t expect) {
        return txn_add(t, STORE_OP_DELETE, collection, name, NULL, expect);
}

int store_txn_append_history(StoreTxn *t, json_t *value) {
        return txn_add(t, STORE_OP_HISTORY, NULL, NULL, value, STORE_REVISION_ANY);
}

int store_get(Store *s, const char *collection, const char *name, json_t **ret_value, uint64_t *ret_revision) {
        assert(s);

        if (!store_collection_is_valid(collection) || !store_name_is_valid(name))
                return -EINVAL;
        return s->ops->get(s, collection, name, ret_value, ret_revision);
}

int store_list(Store *s, const char *collection, StoreObject **ret, size_t *ret_n) {
        assert(s);
        assert(ret);
        assert(ret_n);

        if (!store_collection_is_valid(collection))
                return -EINVAL;
        return s->ops->list(s, collection, ret, ret_n);
}

StoreObject *store_objects_free(StoreObject *o, size_t n) {
        if (!o)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                free(o[i].name);
                json_decref(o[i].value);
        }
        free(o);
        return NULL;
}

int store_history(Store *s, uint64_t from_seq, size_t max, StoreHistoryEntry **ret, size_t *ret_n) {
        assert(s);
        assert(ret);
        assert(ret_n);

        return s->ops->history(s, from_seq, max, ret, ret_n);
}

StoreHistoryEntry *store_history_free(StoreHistoryEntry *h, size_t n) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < n; i++)
                json_decref(h[i].value);
        free(h);
        return NULL;
}

int store_commit(Store *s, const StoreTxn *t, uint64_t *ret_revision) {
        uint64_t revision = 0;
        int result = 0, r;

        assert(s);
        assert(t);

        r = s->ops->commit(s, &t, 1, &result, &revision);
        if (r < 0)
                return r;
        if (result < 0)
                return result;
        if (ret_revision)
                *ret_revision = revision;
        return 0;
}

int store_commit_group(Store *s, const StoreTxn *const *txns, size_t n, int *ret_results, uint64_t *ret_revisions) {
        assert(s);
        assert(txns || n == 0);
        assert(ret_results || n == 0);

        for (size_t i = 0; i < n; i++)
                assert(txns[i]);
        return s->ops->commit(s, txns, n, ret_results, ret_revisions);
}

int store_compact(Store *s, uint64_t history_before_usec) {
        assert(s);

        return s->ops->compact(s, history_before_usec);
}

void store_status(Store *s, StoreStatus *ret) {
        assert(s);
        assert(ret);

        *ret = (StoreStatus) { 0 };
        s->ops->status(s, ret);
}

Store *store_close(Store *s) {
        if (s)
                s->ops->close(s);
        return NULL;
}
