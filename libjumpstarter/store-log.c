/* Embedded store backend: an append-only log of transactions over a snapshot, replayed at open */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "store.h"

/* The directory holds "snapshot" (the state at some revision, absent until the first compaction),
 * "log" (every transaction after the revision its header names), and "lock". Both data files are
 * sequences of records: a 16-byte header (magic, payload length, CRC32C of the payload, CRC32C of
 * the first 12 header bytes) and a compact JSON payload. Format details: docs/store.md. */
#define LOG_FILE "log"
#define LOG_TMP "log.tmp"
#define SNAPSHOT_FILE "snapshot"
#define SNAPSHOT_TMP "snapshot.tmp"
#define LOCK_FILE "lock"
#define FORMAT_VERSION 1

#define RECORD_HEADER_SIZE 16U
/* A snapshot record wraps one object in a few more bytes than the transaction that put it. */
#define RECORD_SIZE_LIMIT (STORE_RECORD_SIZE_MAX + 64U * 1024U)
#define SNAPSHOT_FLUSH_SIZE (1024U * 1024U)
/* 0xfe never occurs in UTF-8, so a magic never occurs inside a JSON payload: a scan for it finds
 * only record starts. */
static const uint8_t record_magic[4] = { 0xfe, 'J', 'S', 'R' };

#define JSON_LOAD_FLAGS (JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)

typedef struct Entry {
        char *name;
        json_t *value;
        uint64_t revision;
} Entry;

typedef struct Collection {
        char *name;
        Entry *entries; /* sorted by name */
        size_t n_entries, n_allocated;
} Collection;

typedef struct LogStore {
        Store base;
        int dir_fd, lock_fd, log_fd;
        uint64_t log_base;  /* the revision the log continues from */
        uint64_t log_size;  /* end of the last good record: where the next one goes */
        uint64_t revision;
        uint64_t history_next;
        uint64_t n_objects;
        uint64_t recovered_bytes;
        Collection *collections; /* sorted by name */
        size_t n_collections;
        StoreHistoryEntry *history; /* by sequence number */
        size_t n_history, history_allocated;
        /* A failure that left memory and disk possibly apart: every call fails until reopened. */
        int broken;
} LogStore;

static const uint32_t crc32c_table[256] = {
        0x00000000U, 0xf26b8303U, 0xe13b70f7U, 0x1350f3f4U, 0xc79a971fU, 0x35f1141cU,
        0x26a1e7e8U, 0xd4ca64ebU, 0x8ad958cfU, 0x78b2dbccU, 0x6be22838U, 0x9989ab3bU,
        0x4d43cfd0U, 0xbf284cd3U, 0xac78bf27U, 0x5e133c24U, 0x105ec76fU, 0xe235446cU,
        0xf165b798U, 0x030e349bU, 0xd7c45070U, 0x25afd373U, 0x36ff2087U, 0xc494a384U,
        0x9a879fa0U, 0x68ec1ca3U, 0x7bbcef57U, 0x89d76c54U, 0x5d1d08bfU, 0xaf768bbcU,
        0xbc267848U, 0x4e4dfb4bU, 0x20bd8edeU, 0xd2d60dddU, 0xc186fe29U, 0x33ed7d2aU,
        0xe72719c1U, 0x154c9ac2U, 0x061c6936U, 0xf477ea35U, 0xaa64d611U, 0x580f5512U,
        0x4b5fa6e6U, 0xb93425e5U, 0x6dfe410eU, 0x9f95c20dU, 0x8cc531f9U, 0x7eaeb2faU,
        0x30e349b1U, 0xc288cab2U, 0xd1d83946U, 0x23b3ba45U, 0xf779deaeU, 0x05125dadU,
        0x1642ae59U, 0xe4292d5aU, 0xba3a117eU, 0x4851927dU, 0x5b016189U, 0xa96ae28aU,
        0x7da08661U, 0x8fcb0562U, 0x9c9bf696U, 0x6ef07595U, 0x417b1dbcU, 0xb3109ebfU,
        0xa0406d4bU, 0x522bee48U, 0x86e18aa3U, 0x748a09a0U, 0x67dafa54U, 0x95b17957U,
        0xcba24573U, 0x39c9c670U, 0x2a993584U, 0xd8f2b687U, 0x0c38d26cU, 0xfe53516fU,
        0xed03a29bU, 0x1f682198U, 0x5125dad3U, 0xa34e59d0U, 0xb01eaa24U, 0x42752927U,
        0x96bf4dccU, 0x64d4cecfU, 0x77843d3bU, 0x85efbe38U, 0xdbfc821cU, 0x2997011fU,
        0x3ac7f2ebU, 0xc8ac71e8U, 0x1c661503U, 0xee0d9600U, 0xfd5d65f4U, 0x0f36e6f7U,
        0x61c69362U, 0x93ad1061U, 0x80fde395U, 0x72966096U, 0xa65c047dU, 0x5437877eU,
        0x4767748aU, 0xb50cf789U, 0xeb1fcbadU, 0x197448aeU, 0x0a24bb5aU, 0xf84f3859U,
        0x2c855cb2U, 0xdeeedfb1U, 0xcdbe2c45U, 0x3fd5af46U, 0x7198540dU, 0x83f3d70eU,
        0x90a324faU, 0x62c8a7f9U, 0xb602c312U, 0x44694011U, 0x5739b3e5U, 0xa55230e6U,
        0xfb410cc2U, 0x092a8fc1U, 0x1a7a7c35U, 0xe811ff36U, 0x3cdb9bddU, 0xceb018deU,
        0xdde0eb2aU, 0x2f8b6829U, 0x82f63b78U, 0x709db87bU, 0x63cd4b8fU, 0x91a6c88cU,
        0x456cac67U, 0xb7072f64U, 0xa457dc90U, 0x563c5f93U, 0x082f63b7U, 0xfa44e0b4U,
        0xe9141340U, 0x1b7f9043U, 0xcfb5f4a8U, 0x3dde77abU, 0x2e8e845fU, 0xdce5075cU,
        0x92a8fc17U, 0x60c37f14U, 0x73938ce0U, 0x81f80fe3U, 0x55326b08U, 0xa759e80bU,
        0xb4091bffU, 0x466298fcU, 0x1871a4d8U, 0xea1a27dbU, 0xf94ad42fU, 0x0b21572cU,
        0xdfeb33c7U, 0x2d80b0c4U, 0x3ed04330U, 0xccbbc033U, 0xa24bb5a6U, 0x502036a5U,
        0x4370c551U, 0xb11b4652U, 0x65d122b9U, 0x97baa1baU, 0x84ea524eU, 0x7681d14dU,
        0x2892ed69U, 0xdaf96e6aU, 0xc9a99d9eU, 0x3bc21e9dU, 0xef087a76U, 0x1d63f975U,
        0x0e330a81U, 0xfc588982U, 0xb21572c9U, 0x407ef1caU, 0x532e023eU, 0xa145813dU,
        0x758fe5d6U, 0x87e466d5U, 0x94b49521U, 0x66df1622U, 0x38cc2a06U, 0xcaa7a905U,
        0xd9f75af1U, 0x2b9cd9f2U, 0xff56bd19U, 0x0d3d3e1aU, 0x1e6dcdeeU, 0xec064eedU,
        0xc38d26c4U, 0x31e6a5c7U, 0x22b65633U, 0xd0ddd530U, 0x0417b1dbU, 0xf67c32d8U,
        0xe52cc12cU, 0x1747422fU, 0x49547e0bU, 0xbb3ffd08U, 0xa86f0efcU, 0x5a048dffU,
        0x8ecee914U, 0x7ca56a17U, 0x6ff599e3U, 0x9d9e1ae0U, 0xd3d3e1abU, 0x21b862a8U,
        0x32e8915cU, 0xc083125fU, 0x144976b4U, 0xe622f5b7U, 0xf5720643U, 0x07198540U,
        0x590ab964U, 0xab613a67U, 0xb831c993U, 0x4a5a4a90U, 0x9e902e7bU, 0x6cfbad78U,
        0x7fab5e8cU, 0x8dc0dd8fU, 0xe330a81aU, 0x115b2b19U, 0x020bd8edU, 0xf0605beeU,
        0x24aa3f05U, 0xd6c1bc06U, 0xc5914ff2U, 0x37faccf1U, 0x69e9f0d5U, 0x9b8273d6U,
        0x88d28022U, 0x7ab90321U, 0xae7367caU, 0x5c18e4c9U, 0x4f48173dU, 0xbd23943eU,
        0xf36e6f75U, 0x0105ec76U, 0x12551f82U, 0xe03e9c81U, 0x34f4f86aU, 0xc69f7b69U,
        0xd5cf889dU, 0x27a40b9eU, 0x79b737baU, 0x8bdcb4b9U, 0x988c474dU, 0x6ae7c44eU,
        0xbe2da0a5U, 0x4c4623a6U, 0x5f16d052U, 0xad7d5351U,
};

/* CRC-32C (Castagnoli), as in iSCSI, ext4 and etcd's WAL. */
static uint32_t crc32c(const void *data, size_t n) {
        const uint8_t *p = data;
        uint32_t crc = UINT32_MAX;

        while (n-- > 0)
                crc = crc32c_table[(crc ^ *p++) & 0xffU] ^ (crc >> 8);
        return ~crc;
}

static void put_le32(uint8_t *p, uint32_t v) {
        p[0] = v & 0xffU;
        p[1] = (v >> 8) & 0xffU;
        p[2] = (v >> 16) & 0xffU;
        p[3] = (v >> 24) & 0xffU;
}

static uint32_t get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static void record_header(uint8_t h[static RECORD_HEADER_SIZE], const void *payload, size_t size) {
        memcpy(h, record_magic, sizeof(record_magic));
        put_le32(h + 4, (uint32_t) size);
        put_le32(h + 8, crc32c(payload, size));
        put_le32(h + 12, crc32c(h, 12));
}

typedef enum RecordState {
        RECORD_VALID,
        RECORD_SHORT, /* runs past the end of the file */
        RECORD_BAD,
} RecordState;

static RecordState record_check(const uint8_t *map, uint64_t size, uint64_t offset, uint32_t *ret_size) {
        const uint8_t *h = map + offset;
        uint32_t n;

        if (size - offset < RECORD_HEADER_SIZE)
                return RECORD_SHORT;
        if (memcmp(h, record_magic, sizeof(record_magic)) != 0 || crc32c(h, 12) != get_le32(h + 12))
                return RECORD_BAD;
        n = get_le32(h + 4);
        if (n > RECORD_SIZE_LIMIT)
                return RECORD_BAD;
        if (size - offset - RECORD_HEADER_SIZE < n)
                return RECORD_SHORT;
        if (crc32c(h + RECORD_HEADER_SIZE, n) != get_le32(h + 8))
                return RECORD_BAD;
        *ret_size = n;
        return RECORD_VALID;
}

/* Whether a complete, valid record starts anywhere after offset. A write that a crash cut short
 * is the last thing in the log, since every record was fdatasync()ed before the next one was
 * written: a damaged record with a good one after it is damage to acknowledged data. */
static bool record_follows(const uint8_t *map, uint64_t size, uint64_t offset) {
        for (uint64_t o = offset + 1; o + RECORD_HEADER_SIZE <= size;) {
                const uint8_t *p = memmem(map + o, size - o, record_magic, sizeof(record_magic));
                uint32_t n;

                if (!p)
                        return false;
                o = (uint64_t) (p - map);
                if (record_check(map, size, o, &n) == RECORD_VALID)
                        return true;
                o++;
        }
        return false;
}

static int open_error(char **ret_error, int error, const char *format, ...) _printf_(3, 4);
static int open_error(char **ret_error, int error, const char *format, ...) {
        va_list ap;

        if (ret_error) {
                free(*ret_error);
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        /* Cannot fail for CLOCK_REALTIME. */
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static int pwrite_all(int fd, const void *data, size_t size, uint64_t offset) {
        const uint8_t *p = data;

        while (size > 0) {
                ssize_t n = pwrite(fd, p, size, (off_t) offset);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                size -= (size_t) n;
                offset += (uint64_t) n;
        }
        return 0;
}

/* The in-memory state: sorted arrays, found by binary search. */

static Collection *collection_find(LogStore *s, const char *name, size_t *ret_index) {
        size_t lo = 0, hi = s->n_collections;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(s->collections[mid].name, name);

                if (c == 0) {
                        if (ret_index)
                                *ret_index = mid;
                        return s->collections + mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (ret_index)
                *ret_index = lo;
        return NULL;
}

static int collection_add(LogStore *s, const char *name, Collection **ret) {
        _cleanup_free_ char *n = NULL;
        Collection *c;
        size_t i;

        c = collection_find(s, name, &i);
        if (c) {
                *ret = c;
                return 0;
        }
        n = strdup(name);
        if (!n)
                return -ENOMEM;
        c = reallocarray(s->collections, s->n_collections + 1, sizeof(Collection));
        if (!c)
                return -ENOMEM;
        s->collections = c;
        memmove(c + i + 1, c + i, (s->n_collections - i) * sizeof(Collection));
        c[i] = (Collection) { .name = TAKE_PTR(n) };
        s->n_collections++;
        *ret = c + i;
        return 0;
}

static Entry *entry_find(const Collection *c, const char *name, size_t *ret_index) {
        size_t lo = 0, hi = c ? c->n_entries : 0;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int r = strcmp(c->entries[mid].name, name);

                if (r == 0) {
                        if (ret_index)
                                *ret_index = mid;
                        return c->entries + mid;
                }
                if (r < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (ret_index)
                *ret_index = lo;
        return NULL;
}

static Entry *object_find(LogStore *s, const char *collection, const char *name) {
        return entry_find(collection_find(s, collection, NULL), name, NULL);
}

/* Takes the reference to value. */
static int object_set(LogStore *s, const char *collection, const char *name, json_t *value, uint64_t revision) {
        _cleanup_(json_decrefp) json_t *v = value;
        _cleanup_free_ char *n = NULL;
        Collection *c;
        Entry *e;
        size_t i;
        int r;

        r = collection_add(s, collection, &c);
        if (r < 0)
                return r;
        e = entry_find(c, name, &i);
        if (e) {
                json_decref(e->value);
                e->value = TAKE_PTR(v);
                e->revision = revision;
                return 0;
        }
        n = strdup(name);
        if (!n)
                return -ENOMEM;
        if (c->n_entries >= c->n_allocated) {
                size_t k = MAX(c->n_allocated * 2, (size_t) 16);

                e = reallocarray(c->entries, k, sizeof(Entry));
                if (!e)
                        return -ENOMEM;
                c->entries = e;
                c->n_allocated = k;
        }
        memmove(c->entries + i + 1, c->entries + i, (c->n_entries - i) * sizeof(Entry));
        c->entries[i] = (Entry) { .name = TAKE_PTR(n), .value = TAKE_PTR(v), .revision = revision };
        c->n_entries++;
        s->n_objects++;
        return 0;
}

static int object_remove(LogStore *s, const char *collection, const char *name) {
        Collection *c = collection_find(s, collection, NULL);
        Entry *e;
        size_t i;

        e = entry_find(c, name, &i);
        if (!e)
                return -ENOENT;
        free(e->name);
        json_decref(e->value);
        memmove(c->entries + i, c->entries + i + 1, (c->n_entries - i - 1) * sizeof(Entry));
        c->n_entries--;
        s->n_objects--;
        return 0;
}

/* Takes the reference to value. */
static int history_add(LogStore *s, uint64_t seq, uint64_t time_usec, json_t *value) {
        if (s->n_history >= s->history_allocated) {
                size_t k = MAX(s->history_allocated * 2, (size_t) 64);
                StoreHistoryEntry *h = reallocarray(s->history, k, sizeof(StoreHistoryEntry));

                if (!h) {
                        json_decref(value);
                        return -ENOMEM;
                }
                s->history = h;
                s->history_allocated = k;
        }
        s->history[s->n_history++] = (StoreHistoryEntry) { .seq = seq, .time_usec = time_usec, .value = value };
        return 0;
}

static void history_drop_before(LogStore *s, uint64_t before_usec) {
        size_t k = 0;

        /* Commit times only grow unless the clock was set back, so keep whatever is newer. */
        for (size_t i = 0; i < s->n_history; i++) {
                if (s->history[i].time_usec < before_usec)
                        json_decref(s->history[i].value);
                else
                        s->history[k++] = s->history[i];
        }
        s->n_history = k;
}

static void state_free(LogStore *s) {
        for (size_t i = 0; i < s->n_collections; i++) {
                Collection *c = s->collections + i;

                for (size_t j = 0; j < c->n_entries; j++) {
                        free(c->entries[j].name);
                        json_decref(c->entries[j].value);
                }
                free(c->entries);
                free(c->name);
        }
        free(s->collections);
        s->collections = NULL;
        s->n_collections = 0;
        s->history = store_history_free(s->history, s->n_history);
        s->n_history = s->history_allocated = 0;
        s->n_objects = 0;
}

static int json_get_u64(json_t *o, const char *key, uint64_t *ret) {
        json_t *v = json_object_get(o, key);

        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return -EBADMSG;
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

static int reason(const char **ret_reason, const char *why, int error) {
        *ret_reason = why;
        return error;
}

/* Applies one transaction record: {"r":REV,"t":USEC,"ops":[...]}, each op one of
 * {"o":"put","c":C,"n":N,"v":{...}}, {"o":"del","c":C,"n":N}, {"o":"hist","s":SEQ,"v":{...}}.
 * The same code runs at commit and at replay, so memory holds exactly what a restart will see. */
static int record_apply(LogStore *s, json_t *rec, const char **ret_reason) {
        uint64_t rev, t;
        json_t *ops, *op;
        size_t i;
        int r;

        if (json_get_u64(rec, "r", &rev) < 0 || json_get_u64(rec, "t", &t) < 0 ||
            !json_is_array(ops = json_object_get(rec, "ops")))
                return reason(ret_reason, "not a transaction", -EBADMSG);
        if (rev != s->revision + 1)
                return reason(ret_reason, "revision out of sequence", -EBADMSG);

        json_array_foreach(ops, i, op) {
                const char *type = json_string_value(json_object_get(op, "o"));
                const char *c = json_string_value(json_object_get(op, "c"));
                const char *n = json_string_value(json_object_get(op, "n"));
                json_t *v = json_object_get(op, "v");
                uint64_t seq;

                if (!type)
                        return reason(ret_reason, "operation without a type", -EBADMSG);
                if (streq(type, "hist")) {
                        if (json_get_u64(op, "s", &seq) < 0 || !json_is_object(v))
                                return reason(ret_reason, "invalid history entry", -EBADMSG);
                        if (seq != s->history_next)
                                return reason(ret_reason, "history sequence number out of sequence", -EBADMSG);
                        r = history_add(s, seq, t, json_incref(v));
                        if (r < 0)
                                return reason(ret_reason, "out of memory", r);
                        s->history_next++;
                        continue;
                }
                if (!store_collection_is_valid(c) || !store_name_is_valid(n))
                        return reason(ret_reason, "invalid collection or object name", -EBADMSG);
                if (streq(type, "put")) {
                        if (!json_is_object(v))
                                return reason(ret_reason, "object value is not a JSON object", -EBADMSG);
                        r = object_set(s, c, n, json_incref(v), rev);
                        if (r < 0)
                                return reason(ret_reason, "out of memory", r);
                } else if (streq(type, "del")) {
                        if (object_remove(s, c, n) < 0)
                                return reason(ret_reason, "deletes an object that does not exist", -EBADMSG);
                } else
                        return reason(ret_reason, "unknown operation", -EBADMSG);
        }
        s->revision = rev;
        return 0;
}

static int json_set_u64(json_t *o, const char *key, uint64_t v) {
        return json_object_set_new(o, key, json_integer((json_int_t) v));
}

static int json_set_str(json_t *o, const char *key, const char *v) {
        return json_object_set_new(o, key, json_string(v));
}

/* A read-only view of a whole data file. */
typedef struct Mapping {
        const uint8_t *map;
        uint64_t size;
} Mapping;

static int mapping_init(Mapping *m, int fd) {
        struct stat st;
        void *p;

        *m = (Mapping) { 0 };
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size == 0)
                return 0;
        if ((uint64_t) st.st_size > SIZE_MAX)
                return -EFBIG;
        p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        m->map = p;
        m->size = (uint64_t) st.st_size;
        return 0;
}

static void mapping_done(Mapping *m) {
        if (m->map)
                (void) munmap((void *) m->map, (size_t) m->size);
        *m = (Mapping) { 0 };
}

static json_t *record_parse(const Mapping *m, uint64_t offset, uint32_t size) {
        return json_loadb((const char *) m->map + offset + RECORD_HEADER_SIZE, size, JSON_LOAD_FLAGS, NULL);
}

/* Returns 1 if there is a snapshot, 0 if there is none. It was complete when it was renamed into
 * place, so unlike the log it has no torn tail: any damage is an error. */
static int snapshot_load(LogStore *s, const char *dir, char **ret_error) {
        _cleanup_(mapping_done) Mapping m = { 0 };
        _cleanup_close_ int fd = -EBADF;
        uint64_t offset = 0, revision = 0, history_next = 0, count = 0, last_seq = 0;
        bool header = false, end = false, in_history = false;
        int r;

        fd = openat(s->dir_fd, SNAPSHOT_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                return open_error(ret_error, -errno, "%s/" SNAPSHOT_FILE ": %s", dir, strerror(errno));
        }
        r = mapping_init(&m, fd);
        if (r < 0)
                return open_error(ret_error, r, "%s/" SNAPSHOT_FILE ": %s", dir, strerror(-r));

        while (offset < m.size) {
                _cleanup_(json_decrefp) json_t *rec = NULL;
                const char *c, *n, *why = NULL;
                uint64_t rev, seq, t;
                uint32_t size;
                json_t *v;

                if (end)
                        return open_error(ret_error, -EBADMSG, "%s/" SNAPSHOT_FILE ": data after the end record at offset %" PRIu64,
                                          dir, offset);
                if (record_check(m.map, m.size, offset, &size) != RECORD_VALID)
                        return open_error(ret_error, -EBADMSG, "%s/" SNAPSHOT_FILE ": corrupt record at offset %" PRIu64,
                                          dir, offset);
                rec = record_parse(&m, offset, size);
                if (!rec)
                        return open_error(ret_error, -EBADMSG, "%s/" SNAPSHOT_FILE ": invalid JSON in the record at offset %" PRIu64,
                                          dir, offset);

                if (!header) {
                        uint64_t version;

                        if (json_get_u64(rec, "snapshot", &version) < 0 || json_get_u64(rec, "r", &revision) < 0 ||
                            json_get_u64(rec, "hs", &history_next) < 0 || history_next == 0)
                                return open_error(ret_error, -EBADMSG, "%s/" SNAPSHOT_FILE ": no snapshot header at offset %" PRIu64,
                                                  dir, offset);
                        if (version != FORMAT_VERSION)
                                return open_error(ret_error, -EPROTONOSUPPORT,
                                                  "%s/" SNAPSHOT_FILE ": format version %" PRIu64 " is not supported", dir, version);
                        header = true;
                } else if (json_object_get(rec, "end")) {
                        if (json_get_u64(rec, "end", &t) < 0 || t != count)
                                why = "the end record does not match the number of records";
                        end = true;
                } else if (json_object_get(rec, "h")) {
                        v = json_object_get(rec, "v");
                        if (json_get_u64(rec, "h", &seq) < 0 || json_get_u64(rec, "t", &t) < 0 || !json_is_object(v))
                                why = "invalid history entry";
                        else if (seq <= last_seq || seq >= history_next)
                                why = "history sequence number out of order";
                        else {
                                r = history_add(s, seq, t, json_incref(v));
                                if (r < 0)
                                        return open_error(ret_error, r, "%s/" SNAPSHOT_FILE ": %s", dir, strerror(-r));
                                last_seq = seq;
                        }
                        in_history = true;
                        count++;
                } else {
                        Collection *last = s->n_collections > 0 ? s->collections + s->n_collections - 1 : NULL;

                        c = json_string_value(json_object_get(rec, "c"));
                        n = json_string_value(json_object_get(rec, "n"));
                        v = json_object_get(rec, "v");
                        if (!store_collection_is_valid(c) || !store_name_is_valid(n) ||
                            json_get_u64(rec, "r", &rev) < 0 || rev == 0 || rev > revision || !json_is_object(v))
                                why = "invalid object";
                        /* Sorted and unique; objects before history. */
                        else if (in_history || (last && (strcmp(last->name, c) > 0 ||
                                                         (streq(last->name, c) && last->n_entries > 0 &&
                                                          strcmp(last->entries[last->n_entries - 1].name, n) >= 0))))
                                why = "object out of order";
                        else {
                                r = object_set(s, c, n, json_incref(v), rev);
                                if (r < 0)
                                        return open_error(ret_error, r, "%s/" SNAPSHOT_FILE ": %s", dir, strerror(-r));
                        }
                        count++;
                }
                if (why)
                        return open_error(ret_error, -EBADMSG, "%s/" SNAPSHOT_FILE ": %s at offset %" PRIu64, dir, why, offset);
                offset += RECORD_HEADER_SIZE + size;
        }
        if (!end)
                return open_error(ret_error, -EBADMSG, "%s/" SNAPSHOT_FILE ": ends without its end record at offset %" PRIu64,
                                  dir, offset);

        s->revision = revision;
        s->history_next = history_next;
        return 1;
}

/* One transaction record of the log: it must follow *prev. A compaction that a crash interrupted
 * after renaming the snapshot leaves the old log, whose older records the snapshot already holds. */
static int replay_txn(LogStore *s, json_t *txn, uint64_t snapshot_revision, uint64_t *prev, const char **ret_reason) {
        uint64_t rev;

        if (json_get_u64(txn, "r", &rev) < 0 || rev != *prev + 1)
                return reason(ret_reason, "revision out of sequence", -EBADMSG);
        *prev = rev;
        return rev > snapshot_revision ? record_apply(s, txn, ret_reason) : 0;
}

/* Replays the log on top of the snapshot (revision snapshot_revision, if has_snapshot). A torn
 * tail is cut off; anything else that is wrong is an error. -ENOENT without a log. */
static int log_replay(LogStore *s, const char *dir, bool has_snapshot, uint64_t snapshot_revision, char **ret_error) {
        _cleanup_(mapping_done) Mapping m = { 0 };
        _cleanup_close_ int fd = -EBADF;
        uint64_t offset = 0, prev = 0;
        bool header = false;
        int r;

        fd = openat(s->dir_fd, LOG_FILE, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno == ENOENT)
                        return -ENOENT;
                return open_error(ret_error, -errno, "%s/" LOG_FILE ": %s", dir, strerror(errno));
        }
        r = mapping_init(&m, fd);
        if (r < 0)
                return open_error(ret_error, r, "%s/" LOG_FILE ": %s", dir, strerror(-r));

        while (offset < m.size) {
                _cleanup_(json_decrefp) json_t *rec = NULL;
                const char *why = NULL;
                uint32_t size;

                if (record_check(m.map, m.size, offset, &size) != RECORD_VALID) {
                        /* The header went in through a rename after an fsync(): it is never torn. */
                        if (!header || record_follows(m.map, m.size, offset))
                                return open_error(ret_error, -EBADMSG, "%s/" LOG_FILE ": corrupt record at offset %" PRIu64,
                                                  dir, offset);
                        break;
                }
                rec = record_parse(&m, offset, size);
                if (!rec)
                        return open_error(ret_error, -EBADMSG, "%s/" LOG_FILE ": invalid JSON in the record at offset %" PRIu64,
                                          dir, offset);

                if (!header) {
                        uint64_t version, base;

                        if (json_get_u64(rec, "log", &version) < 0 || json_get_u64(rec, "base", &base) < 0)
                                return open_error(ret_error, -EBADMSG, "%s/" LOG_FILE ": no log header at offset %" PRIu64,
                                                  dir, offset);
                        if (version != FORMAT_VERSION)
                                return open_error(ret_error, -EPROTONOSUPPORT,
                                                  "%s/" LOG_FILE ": format version %" PRIu64 " is not supported", dir, version);
                        /* A log that starts past the snapshot would leave a gap: revisions lost. */
                        if (base > snapshot_revision || (!has_snapshot && base != 0))
                                return open_error(ret_error, -EBADMSG,
                                                  "%s/" LOG_FILE ": continues from revision %" PRIu64 ", but %s",
                                                  dir, base, has_snapshot ? "the snapshot is older" : "there is no snapshot");
                        s->log_base = prev = base;
                        header = true;
                } else {
                        /* A transaction, or a group commit's {"g":[...]} of several. */
                        json_t *group = json_object_get(rec, "g"), *txn;
                        size_t i;

                        if (!group)
                                r = replay_txn(s, rec, snapshot_revision, &prev, &why);
                        else if (!json_is_array(group) || json_array_size(group) == 0)
                                r = reason(&why, "invalid group of transactions", -EBADMSG);
                        else
                                json_array_foreach(group, i, txn) {
                                        r = replay_txn(s, txn, snapshot_revision, &prev, &why);
                                        if (r < 0)
                                                break;
                                }
                        if (r < 0)
                                return open_error(ret_error, r, "%s/" LOG_FILE ": %s in the record at offset %" PRIu64,
                                                  dir, why, offset);
                }
                offset += RECORD_HEADER_SIZE + size;
        }
        if (!header)
                return open_error(ret_error, -EBADMSG, "%s/" LOG_FILE ": empty, without its header", dir);

        if (offset < m.size) {
                uint64_t size = m.size;

                /* An interrupted write: never acknowledged, so nothing acknowledged goes with it.
                 * Durably gone before anything is appended in its place. */
                mapping_done(&m);
                if (ftruncate(fd, (off_t) offset) < 0 || fsync(fd) < 0)
                        return open_error(ret_error, -errno, "%s/" LOG_FILE ": cannot truncate the torn tail at offset %" PRIu64 ": %s",
                                          dir, offset, strerror(errno));
                s->recovered_bytes = size - offset;
                log_debug("%s/" LOG_FILE ": truncated an interrupted write of %" PRIu64 " bytes at offset %" PRIu64,
                          dir, s->recovered_bytes, offset);
        }
        s->log_fd = TAKE_FD(fd);
        s->log_size = offset;
        return 0;
}

/* Appends records to a new file through a buffer. */
typedef struct Writer {
        int fd;
        uint8_t *buf;
        size_t n, allocated;
        uint64_t offset;
} Writer;

static void writer_done(Writer *w) {
        free(w->buf);
        w->buf = NULL;
}

static int writer_flush(Writer *w) {
        int r;

        r = pwrite_all(w->fd, w->buf, w->n, w->offset);
        if (r < 0)
                return r;
        w->offset += w->n;
        w->n = 0;
        return 0;
}

static int writer_add(Writer *w, const json_t *rec) {
        _cleanup_free_ char *payload = NULL;
        size_t size;

        payload = json_dumps(rec, JSON_COMPACT);
        if (!payload)
                return -ENOMEM;
        size = strlen(payload);
        if (size > RECORD_SIZE_LIMIT)
                return -E2BIG;
        if (w->n + RECORD_HEADER_SIZE + size > w->allocated) {
                size_t k = MAX(w->allocated * 2, w->n + RECORD_HEADER_SIZE + size);
                uint8_t *b = realloc(w->buf, k);

                if (!b)
                        return -ENOMEM;
                w->buf = b;
                w->allocated = k;
        }
        record_header(w->buf + w->n, payload, size);
        memcpy(w->buf + w->n + RECORD_HEADER_SIZE, payload, size);
        w->n += RECORD_HEADER_SIZE + size;
        return w->n >= SNAPSHOT_FLUSH_SIZE ? writer_flush(w) : 0;
}

/* Writes a file that rename() will put in place: fsync()ed, 0600, a fresh inode. */
static int tmpfile_open(LogStore *s, const char *name) {
        int fd;

        if (unlinkat(s->dir_fd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        fd = openat(s->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        return fd < 0 ? -errno : fd;
}

/* A new log under LOG_TMP that continues from revision base; the caller renames it into place. */
static int log_new(LogStore *s, uint64_t base, int *ret_fd, uint64_t *ret_size) {
        _cleanup_(json_decrefp) json_t *rec = NULL;
        _cleanup_(writer_done) Writer w = { .fd = -EBADF };
        _cleanup_close_ int fd = -EBADF;
        int r;

        rec = json_object();
        if (!rec || json_set_u64(rec, "log", FORMAT_VERSION) < 0 || json_set_u64(rec, "base", base) < 0)
                return -ENOMEM;
        fd = tmpfile_open(s, LOG_TMP);
        if (fd < 0)
                return fd;
        w.fd = fd;
        r = writer_add(&w, rec);
        if (r >= 0)
                r = writer_flush(&w);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(s->dir_fd, LOG_TMP, 0);
                return r;
        }
        *ret_fd = TAKE_FD(fd);
        *ret_size = w.offset;
        return 0;
}

/* Renames a log from log_new() over the current one and makes it the one we append to. */
static int log_install(LogStore *s, int fd, uint64_t size, uint64_t base) {
        if (renameat(s->dir_fd, LOG_TMP, s->dir_fd, LOG_FILE) < 0) {
                int r = -errno;

                (void) unlinkat(s->dir_fd, LOG_TMP, 0);
                safe_close(fd);
                return r;
        }
        safe_close(s->log_fd);
        s->log_fd = fd;
        s->log_size = size;
        s->log_base = base;
        /* Until the rename is durable a crash may bring the old log back, and with it the loss
         * of whatever we append to the new one. */
        if (fsync(s->dir_fd) < 0)
                return s->broken = -errno;
        return 0;
}

/* Writes the live state to SNAPSHOT_TMP and renames it over the snapshot: header
 * {"snapshot":1,"r":REV,"hs":NEXT_SEQ,"t":USEC}, then {"c":C,"n":N,"r":REV,"v":{...}} per object
 * in (collection, name) order, {"h":SEQ,"t":USEC,"v":{...}} per history entry, {"end":COUNT}. */
static int snapshot_write(LogStore *s, uint64_t history_before_usec) {
        _cleanup_(json_decrefp) json_t *hdr = NULL, *end = NULL;
        _cleanup_(writer_done) Writer w = { .fd = -EBADF };
        _cleanup_close_ int fd = -EBADF;
        uint64_t count = 0;
        int r;

        hdr = json_object();
        if (!hdr || json_set_u64(hdr, "snapshot", FORMAT_VERSION) < 0 || json_set_u64(hdr, "r", s->revision) < 0 ||
            json_set_u64(hdr, "hs", s->history_next) < 0 || json_set_u64(hdr, "t", now_usec()) < 0)
                return -ENOMEM;

        fd = tmpfile_open(s, SNAPSHOT_TMP);
        if (fd < 0)
                return fd;
        w.fd = fd;
        r = writer_add(&w, hdr);
        for (size_t i = 0; r >= 0 && i < s->n_collections; i++) {
                const Collection *c = s->collections + i;

                for (size_t j = 0; r >= 0 && j < c->n_entries; j++) {
                        _cleanup_(json_decrefp) json_t *rec = json_object();

                        if (!rec || json_set_str(rec, "c", c->name) < 0 || json_set_str(rec, "n", c->entries[j].name) < 0 ||
                            json_set_u64(rec, "r", c->entries[j].revision) < 0 ||
                            json_object_set(rec, "v", c->entries[j].value) < 0)
                                r = -ENOMEM;
                        else
                                r = writer_add(&w, rec);
                        count++;
                }
        }
        for (size_t i = 0; r >= 0 && i < s->n_history; i++) {
                _cleanup_(json_decrefp) json_t *rec = NULL;

                if (s->history[i].time_usec < history_before_usec)
                        continue;
                rec = json_object();
                if (!rec || json_set_u64(rec, "h", s->history[i].seq) < 0 ||
                    json_set_u64(rec, "t", s->history[i].time_usec) < 0 ||
                    json_object_set(rec, "v", s->history[i].value) < 0)
                        r = -ENOMEM;
                else
                        r = writer_add(&w, rec);
                count++;
        }
        if (r >= 0) {
                end = json_object();
                r = !end || json_set_u64(end, "end", count) < 0 ? -ENOMEM : writer_add(&w, end);
        }
        if (r >= 0)
                r = writer_flush(&w);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(s->dir_fd, SNAPSHOT_TMP, s->dir_fd, SNAPSHOT_FILE) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(s->dir_fd, SNAPSHOT_TMP, 0);
                return r;
        }
        /* Before the new log replaces the old one: with the old snapshot and the new log, the
         * revisions in between would be nowhere. */
        if (fsync(s->dir_fd) < 0)
                return -errno;
        return 0;
}

static LogStore *log_store(Store *base) {
        return (LogStore *) base;
}

static int log_get(Store *base, const char *collection, const char *name, json_t **ret_value, uint64_t *ret_revision) {
        LogStore *s = log_store(base);
        Entry *e;

        if (s->broken)
                return -EIO;
        e = object_find(s, collection, name);
        if (!e)
                return -ENOENT;
        if (ret_value) {
                /* A copy: what the caller changes is not in the store until it commits it. */
                *ret_value = json_deep_copy(e->value);
                if (!*ret_value)
                        return -ENOMEM;
        }
        if (ret_revision)
                *ret_revision = e->revision;
        return 0;
}

static int log_list(Store *base, const char *collection, StoreObject **ret, size_t *ret_n) {
        LogStore *s = log_store(base);
        const Collection *c;
        StoreObject *o;

        if (s->broken)
                return -EIO;
        c = collection_find(s, collection, NULL);
        if (!c || c->n_entries == 0) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        o = calloc(c->n_entries, sizeof(StoreObject));
        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_entries; i++) {
                o[i] = (StoreObject) {
                        .name = strdup(c->entries[i].name),
                        .value = json_deep_copy(c->entries[i].value),
                        .revision = c->entries[i].revision,
                };
                if (!o[i].name || !o[i].value) {
                        store_objects_free(o, i + 1);
                        return -ENOMEM;
                }
        }
        *ret = o;
        *ret_n = c->n_entries;
        return 0;
}

static int log_history(Store *base, uint64_t from_seq, size_t max, StoreHistoryEntry **ret, size_t *ret_n) {
        LogStore *s = log_store(base);
        size_t lo = 0, hi = s->n_history, n;
        StoreHistoryEntry *h;

        if (s->broken)
                return -EIO;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (s->history[mid].seq < from_seq)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        n = s->n_history - lo;
        if (max > 0)
                n = MIN(n, max);
        if (n == 0) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        h = calloc(n, sizeof(StoreHistoryEntry));
        if (!h)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                h[i] = s->history[lo + i];
                h[i].value = json_deep_copy(s->history[lo + i].value);
                if (!h[i].value) {
                        store_history_free(h, i);
                        return -ENOMEM;
                }
        }
        *ret = h;
        *ret_n = n;
        return 0;
}

/* Builds the record of a transaction whose checks passed, as revision rev with history entries
 * from seq on. */
static int txn_record(const StoreTxn *t, uint64_t rev, uint64_t seq, json_t **ret) {
        _cleanup_(json_decrefp) json_t *rec = NULL;
        json_t *ops;

        rec = json_object();
        ops = json_array();
        if (!rec || !ops || json_object_set_new(rec, "ops", ops) < 0 ||
            json_set_u64(rec, "r", rev) < 0 || json_set_u64(rec, "t", now_usec()) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_ops; i++) {
                const StoreOp *op = t->ops + i;
                json_t *o;

                if (op->type == STORE_OP_CHECK)
                        continue;
                o = json_object();
                if (!o || json_array_append_new(ops, o) < 0)
                        return -ENOMEM;
                switch (op->type) {
                case STORE_OP_PUT:
                        if (json_set_str(o, "o", "put") < 0 || json_set_str(o, "c", op->collection) < 0 ||
                            json_set_str(o, "n", op->name) < 0 || json_object_set(o, "v", op->value) < 0)
                                return -ENOMEM;
                        break;
                case STORE_OP_DELETE:
                        if (json_set_str(o, "o", "del") < 0 || json_set_str(o, "c", op->collection) < 0 ||
                            json_set_str(o, "n", op->name) < 0)
                                return -ENOMEM;
                        break;
                case STORE_OP_HISTORY:
                        if (json_set_str(o, "o", "hist") < 0 || json_set_u64(o, "s", seq++) < 0 ||
                            json_object_set(o, "v", op->value) < 0)
                                return -ENOMEM;
                        break;
                default:
                        return -EINVAL;
                }
        }
        *ret = TAKE_PTR(rec);
        return 0;
}

/* Appends one record and makes it durable. */
static int log_append(LogStore *s, const char *payload, size_t size) {
        _cleanup_free_ uint8_t *buf = NULL;
        int r;

        buf = malloc(RECORD_HEADER_SIZE + size);
        if (!buf)
                return -ENOMEM;
        record_header(buf, payload, size);
        memcpy(buf + RECORD_HEADER_SIZE, payload, size);

        r = pwrite_all(s->log_fd, buf, RECORD_HEADER_SIZE + size, s->log_size);
        if (r < 0) {
                /* A partial record must not stay in front of the next one. */
                if (ftruncate(s->log_fd, (off_t) s->log_size) < 0)
                        s->broken = -EIO;
                return r;
        }
        /* After a failed fdatasync() the kernel may have dropped the dirty pages and forgotten the
         * error: nothing tells whether the record is on disk. Only a reopen finds out. */
        if (fdatasync(s->log_fd) < 0)
                return s->broken = -errno;
        s->log_size += RECORD_HEADER_SIZE + size;
        return 0;
}

/* A transaction of a group that passed its checks and has writes: its record, as text and parsed
 * back. */
typedef struct Accepted {
        size_t txn;     /* index in the group */
        uint64_t revision;
        char *payload;
        size_t size;
        json_t *parsed;
} Accepted;

static void accepted_free(Accepted *a, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(a[i].payload);
                json_decref(a[i].parsed);
        }
        free(a);
}

/* The revision that txns[i] sees for an object: the last write to it by a transaction accepted
 * earlier in the group, else the store's. Returns false if it does not exist. */
static bool group_lookup(LogStore *s, const StoreTxn *const *txns, const Accepted *a, size_t n_a,
                         const char *collection, const char *name, uint64_t *ret_revision) {
        const Entry *e;

        for (size_t k = n_a; k > 0; k--) {
                const StoreTxn *t = txns[a[k - 1].txn];

                /* At most one write per object per transaction. */
                for (size_t j = 0; j < t->n_ops; j++) {
                        const StoreOp *op = t->ops + j;

                        if ((op->type != STORE_OP_PUT && op->type != STORE_OP_DELETE) ||
                            !streq(op->collection, collection) || !streq(op->name, name))
                                continue;
                        *ret_revision = op->type == STORE_OP_PUT ? a[k - 1].revision : STORE_REVISION_ABSENT;
                        return op->type == STORE_OP_PUT;
                }
        }
        e = object_find(s, collection, name);
        *ret_revision = e ? e->revision : STORE_REVISION_ABSENT;
        return e;
}

/* Decides one transaction of a group: 0 and *ret_writes, or why it fails alone. */
static int group_check(LogStore *s, const StoreTxn *const *txns, size_t i, const Accepted *a, size_t n_a,
                       bool *ret_writes, size_t *ret_n_history) {
        const StoreTxn *t = txns[i];
        size_t n_history = 0;
        bool writes = false;

        for (size_t j = 0; j < t->n_ops; j++) {
                const StoreOp *op = t->ops + j;
                uint64_t rev;
                bool exists;

                if (op->type == STORE_OP_HISTORY) {
                        writes = true;
                        n_history++;
                        continue;
                }
                exists = group_lookup(s, txns, a, n_a, op->collection, op->name, &rev);
                if (op->expect != STORE_REVISION_ANY && op->expect != rev)
                        return -ESTALE;
                if (op->type == STORE_OP_DELETE && !exists)
                        return -ENOENT;
                if (op->type != STORE_OP_CHECK)
                        writes = true;
        }
        *ret_writes = writes;
        *ret_n_history = n_history;
        return 0;
}

/* Writes a[0..n) as one record and makes it durable: a transaction's own record, or for several
 * {"g":[REC,REC,...]}, so that a crash keeps all of them or none (docs/store.md). */
static int group_append(LogStore *s, const Accepted *a, size_t n) {
        _cleanup_free_ char *payload = NULL;
        size_t size = 0;

        if (n == 1)
                return log_append(s, a[0].payload, a[0].size);

        for (size_t i = 0; i < n; i++)
                size += a[i].size + 1;
        payload = malloc(size + sizeof("{\"g\":[]}"));
        if (!payload)
                return -ENOMEM;
        size = 0;
        memcpy(payload, "{\"g\":[", 6);
        size = 6;
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        payload[size++] = ',';
                memcpy(payload + size, a[i].payload, a[i].size);
                size += a[i].size;
        }
        memcpy(payload + size, "]}", 2);
        size += 2;
        return log_append(s, payload, size);
}

static int log_commit_group(Store *base, const StoreTxn *const *txns, size_t n, int *ret_results,
                            uint64_t *ret_revisions) {
        LogStore *s = log_store(base);
        Accepted *a = NULL;
        size_t n_a = 0, first;
        uint64_t rev, seq;
        int r = 0;

        if (s->broken)
                return -EIO;
        if (n == 0)
                return 0;
        a = calloc(n, sizeof(Accepted));
        if (!a)
                return -ENOMEM;

        /* Decide every transaction in order, as if each were committed alone after the ones before
         * it: revisions and history numbers follow on. Nothing is written yet. */
        rev = s->revision;
        seq = s->history_next;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(json_decrefp) json_t *rec = NULL;
                _cleanup_free_ char *payload = NULL;
                size_t n_history = 0, size;
                bool writes = false;
                json_t *parsed;

                ret_results[i] = group_check(s, txns, i, a, n_a, &writes, &n_history);
                if (ret_results[i] < 0)
                        continue;
                if (!writes) {
                        if (ret_revisions)
                                ret_revisions[i] = rev;
                        continue;
                }
                r = txn_record(txns[i], rev + 1, seq, &rec);
                if (r < 0)
                        goto finish;
                payload = json_dumps(rec, JSON_COMPACT);
                if (!payload) {
                        ret_results[i] = -EINVAL;
                        continue;
                }
                size = strlen(payload);
                if (size > STORE_RECORD_SIZE_MAX) {
                        ret_results[i] = -E2BIG;
                        continue;
                }
                /* What a restart will read back, and so what memory holds: values that do not
                 * survive the trip through JSON are refused here rather than found at the next open. */
                parsed = json_loadb(payload, size, JSON_LOAD_FLAGS, NULL);
                if (!parsed) {
                        ret_results[i] = -EINVAL;
                        continue;
                }
                rev++;
                seq += n_history;
                a[n_a++] = (Accepted) {
                        .txn = i,
                        .revision = rev,
                        .size = size,
                        .payload = TAKE_PTR(payload),
                        .parsed = parsed,
                };
                if (ret_revisions)
                        ret_revisions[i] = rev;
        }

        /* As few records as fit the record size limit: one, unless the group is huge. Each is
         * durable before it is applied, with the same code that replays the log at open. */
        for (size_t i = 0; i < n_a; i = first) {
                size_t size = 16;

                first = i;
                while (first < n_a && (first == i || size + a[first].size + 1 <= STORE_RECORD_SIZE_MAX))
                        size += a[first++].size + 1;
                r = group_append(s, a + i, first - i);
                if (r < 0)
                        goto finish;
                for (size_t k = i; k < first; k++) {
                        const char *why;

                        r = record_apply(s, a[k].parsed, &why);
                        if (r < 0) {
                                /* Durable, but memory is behind the disk. */
                                s->broken = r;
                                goto finish;
                        }
                }
        }
        r = 0;

finish:
        accepted_free(a, n_a);
        return r;
}

static int log_compact(Store *base, uint64_t history_before_usec) {
        LogStore *s = log_store(base);
        uint64_t size;
        int fd, r;

        if (s->broken)
                return -EIO;

        /* Each step leaves a store that opens with everything: until the new snapshot is in
         * place the old snapshot and log hold all; after, the old log continues from an older
         * revision and replay skips what the snapshot holds; the new log goes in last. */
        r = snapshot_write(s, history_before_usec);
        if (r < 0)
                return r;
        r = log_new(s, s->revision, &fd, &size);
        if (r < 0)
                return r;
        r = log_install(s, fd, size, s->revision);
        if (r < 0)
                return r;
        history_drop_before(s, history_before_usec);
        log_debug("Compacted the store at revision %" PRIu64 ": %" PRIu64 " objects, %zu history entries",
                  s->revision, s->n_objects, s->n_history);
        return 0;
}

static void log_status(Store *base, StoreStatus *ret) {
        LogStore *s = log_store(base);

        *ret = (StoreStatus) {
                .revision = s->revision,
                .history_next = s->history_next,
                .n_history = s->n_history,
                .n_objects = s->n_objects,
                .log_size = s->log_size,
                .recovered_bytes = s->recovered_bytes,
        };
}

static LogStore *log_store_free(LogStore *s) {
        if (!s)
                return NULL;
        state_free(s);
        safe_close(s->log_fd);
        safe_close(s->dir_fd);
        /* Last: the lock goes with it. */
        safe_close(s->lock_fd);
        free(s);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(LogStore *, log_store_free);

static void log_close(Store *base) {
        log_store_free(log_store(base));
}

static const StoreOps log_store_ops = {
        .name = "log",
        .get = log_get,
        .list = log_list,
        .history = log_history,
        .commit = log_commit_group,
        .compact = log_compact,
        .status = log_status,
        .close = log_close,
};

/* A directory we created is only there after a crash once its parent is synced. */
static int mkdir_durable(const char *dir) {
        _cleanup_free_ char *copy = NULL;
        _cleanup_close_ int fd = -EBADF;

        if (mkdir(dir, 0700) < 0)
                return errno == EEXIST ? 0 : -errno;
        copy = strdup(dir);
        if (!copy)
                return -ENOMEM;
        fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

int store_log_open(const char *dir, Store **ret, char **ret_error) {
        _cleanup_(log_store_freep) LogStore *s = NULL;
        uint64_t snapshot_revision, size;
        bool has_snapshot;
        int fd, r;

        assert(dir);
        assert(ret);

        if (ret_error)
                *ret_error = NULL;

        s = calloc(1, sizeof(LogStore));
        if (!s)
                return -ENOMEM;
        *s = (LogStore) {
                .base.ops = &log_store_ops,
                .dir_fd = -EBADF,
                .lock_fd = -EBADF,
                .log_fd = -EBADF,
                .history_next = 1,
        };

        r = mkdir_durable(dir);
        if (r < 0)
                return open_error(ret_error, r, "%s: %s", dir, strerror(-r));
        s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->dir_fd < 0)
                return open_error(ret_error, -errno, "%s: %s", dir, strerror(errno));
        s->lock_fd = openat(s->dir_fd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (s->lock_fd < 0)
                return open_error(ret_error, -errno, "%s/" LOCK_FILE ": %s", dir, strerror(errno));
        /* flock() locks belong to the open file description: the kernel drops it when the
         * process dies, however it dies. */
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return open_error(ret_error, -EBUSY, "%s: the store is in use by another process", dir);
                return open_error(ret_error, -errno, "%s/" LOCK_FILE ": %s", dir, strerror(errno));
        }

        /* Leftovers of an interrupted compaction; never part of the store. */
        (void) unlinkat(s->dir_fd, SNAPSHOT_TMP, 0);
        (void) unlinkat(s->dir_fd, LOG_TMP, 0);

        r = snapshot_load(s, dir, ret_error);
        if (r < 0)
                return r;
        has_snapshot = r > 0;
        snapshot_revision = s->revision;

        r = log_replay(s, dir, has_snapshot, snapshot_revision, ret_error);
        if (r == -ENOENT) {
                if (has_snapshot)
                        return open_error(ret_error, -EBADMSG, "%s/" LOG_FILE ": missing, but there is a snapshot", dir);
                r = log_new(s, 0, &fd, &size);
                if (r >= 0)
                        r = log_install(s, fd, size, 0);
                if (r < 0)
                        return open_error(ret_error, r, "%s/" LOG_FILE ": %s", dir, strerror(-r));
        } else if (r < 0)
                return r;
        else if (s->log_base < snapshot_revision) {
                /* A crash interrupted a compaction after the snapshot went in: finish it, so that
                 * new records follow the snapshot's revision. */
                r = log_compact(&s->base, 0);
                if (r < 0)
                        return open_error(ret_error, r, "%s: cannot finish an interrupted compaction: %s",
                                          dir, strerror(-r));
        }

        *ret = &TAKE_PTR(s)->base;
        return 0;
}
