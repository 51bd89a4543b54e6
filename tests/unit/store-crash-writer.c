/* Commits store transactions in a loop and prints each sequence number once it is acknowledged */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "store.h"

/* Usage: store-crash-writer DIR COMPACT_EVERY HISTORY_KEEP_MSEC [GROUP_MAX]
 * Transaction SEQ writes meta/counter {"seq":SEQ} (compare-and-swap on its revision),
 * items/item-(SEQ % 50) with a padding whose length depends on SEQ, creates tmp/t-SEQ and deletes
 * tmp/t-(SEQ-1), and appends {"seq":SEQ} to the history. Every COMPACT_EVERY commits (0: never)
 * it compacts, keeping HISTORY_KEEP_MSEC of history (0: all). Prints "A SEQ LOG_SIZE" after each
 * commit and "C LOG_SIZE" after each compaction. With GROUP_MAX > 1 it commits groups of 1 to
 * GROUP_MAX transactions with store_commit_group(), each transaction's compare-and-swap expecting
 * what the one before it in the group wrote, and prints "A LAST_SEQ LOG_SIZE" per group. The
 * parent kills it with SIGKILL and checks the store against what it printed (test-store.c). */

/* test-store.c has copies of these three. */
#define CRASH_WRITER_ITEMS 50
#define CRASH_WRITER_GROUP_MAX 8
static size_t crash_writer_pad_length(uint64_t seq) {
        /* Now and then a record of many pages, so that kills land inside large writes too. */
        return seq % 17 == 0 ? 300000 : (size_t) ((seq * 2654435761U) % 3000);
}
static char crash_writer_pad_char(uint64_t seq) {
        return (char) ('a' + seq % 26);
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* Transaction seq; its compare-and-swap expects the counter at revision rev. */
static int txn_build(uint64_t seq, uint64_t rev, StoreTxn **ret) {
        _cleanup_(store_txn_freep) StoreTxn *t = NULL;
        json_auto_t *counter = NULL, *item = NULL, *tmp = NULL, *hist = NULL;
        _cleanup_free_ char *pad = NULL;
        char name[64];
        size_t n = crash_writer_pad_length(seq);
        int r;

        pad = malloc(n + 1);
        if (!pad)
                return -ENOMEM;
        memset(pad, crash_writer_pad_char(seq), n);
        pad[n] = 0;

        counter = json_pack("{s:I}", "seq", (json_int_t) seq);
        item = json_pack("{s:I,s:s}", "seq", (json_int_t) seq, "pad", pad);
        tmp = json_pack("{s:I}", "seq", (json_int_t) seq);
        hist = json_pack("{s:I}", "seq", (json_int_t) seq);
        if (!counter || !item || !tmp || !hist)
                return -ENOMEM;

        r = store_txn_new(&t);
        if (r < 0)
                return r;
        r = store_txn_put(t, "meta", "counter", counter, rev);
        if (r < 0)
                return r;
        snprintf(name, sizeof(name), "item-%02" PRIu64, seq % CRASH_WRITER_ITEMS);
        r = store_txn_put(t, "items", name, item, STORE_REVISION_ANY);
        if (r < 0)
                return r;
        snprintf(name, sizeof(name), "t-%" PRIu64, seq);
        r = store_txn_put(t, "tmp", name, tmp, STORE_REVISION_ABSENT);
        if (r < 0)
                return r;
        if (seq > 1) {
                snprintf(name, sizeof(name), "t-%" PRIu64, seq - 1);
                r = store_txn_delete(t, "tmp", name, STORE_REVISION_ANY);
                if (r < 0)
                        return r;
        }
        r = store_txn_append_history(t, hist);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

/* Transactions seq + 1 .. seq + n in one group; *rev is the counter's revision before and after. */
static int commit_group(Store *s, uint64_t seq, size_t n, uint64_t *rev) {
        StoreTxn *txns[CRASH_WRITER_GROUP_MAX] = {};
        int results[CRASH_WRITER_GROUP_MAX];
        uint64_t revisions[CRASH_WRITER_GROUP_MAX];
        int r = 0;

        for (size_t i = 0; i < n && r >= 0; i++)
                /* Each transaction's revision is the next one: the group's checks see each other. */
                r = txn_build(seq + 1 + i, *rev + i, &txns[i]);
        if (r >= 0)
                r = n == 1 ? store_commit(s, txns[0], &revisions[0])
                           : store_commit_group(s, (const StoreTxn *const *) txns, n, results, revisions);
        for (size_t i = 0; i < n; i++) {
                if (r >= 0 && n > 1 && results[i] < 0)
                        r = results[i];
                store_txn_free(txns[i]);
        }
        if (r >= 0)
                *rev = revisions[n - 1];
        return r;
}

int main(int argc, char *argv[]) {
        _cleanup_(store_closep) Store *s = NULL;
        _cleanup_free_ char *error = NULL;
        json_auto_t *counter = NULL;
        uint64_t seq = 0, rev = STORE_REVISION_ABSENT, compact_every, keep_msec, group_max = 1;
        StoreStatus st;
        int r;

        if (argc != 4 && argc != 5) {
                fprintf(stderr, "Usage: %s DIR COMPACT_EVERY HISTORY_KEEP_MSEC [GROUP_MAX]\n", argv[0]);
                return EXIT_FAILURE;
        }
        compact_every = strtoull(argv[2], NULL, 10);
        keep_msec = strtoull(argv[3], NULL, 10);
        if (argc == 5)
                group_max = strtoull(argv[4], NULL, 10);
        if (group_max < 1 || group_max > CRASH_WRITER_GROUP_MAX) {
                fprintf(stderr, "GROUP_MAX must be 1 to %d\n", CRASH_WRITER_GROUP_MAX);
                return EXIT_FAILURE;
        }
        srandom((unsigned) getpid());

        r = store_log_open(argv[1], &s, &error);
        if (r < 0) {
                fprintf(stderr, "Failed to open the store: %s\n", error ?: strerror(-r));
                return EXIT_FAILURE;
        }
        r = store_get(s, "meta", "counter", &counter, &rev);
        if (r >= 0)
                seq = (uint64_t) json_integer_value(json_object_get(counter, "seq"));
        else if (r != -ENOENT) {
                fprintf(stderr, "Failed to read the counter: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }

        for (;;) {
                size_t n = 1 + (size_t) ((uint64_t) random() % group_max);
                bool compact;

                r = commit_group(s, seq, n, &rev);
                if (r < 0) {
                        fprintf(stderr, "Failed to commit %" PRIu64 ": %s\n", seq + 1, strerror(-r));
                        return EXIT_FAILURE;
                }
                /* Whether a multiple of COMPACT_EVERY is among the group's. */
                compact = compact_every > 0 && (seq + n) / compact_every > seq / compact_every;
                seq += n;
                /* The acknowledgement: only now may the parent count on it. With the log's size,
                 * so that the parent can play power loss on what lies beyond. */
                store_status(s, &st);
                printf("A %" PRIu64 " %" PRIu64 "\n", seq, st.log_size);
                fflush(stdout);

                if (compact) {
                        uint64_t now = now_usec();

                        r = store_compact(s, keep_msec > 0 ? now - keep_msec * USEC_PER_MSEC : 0);
                        if (r < 0) {
                                fprintf(stderr, "Failed to compact: %s\n", strerror(-r));
                                return EXIT_FAILURE;
                        }
                        store_status(s, &st);
                        printf("C %" PRIu64 "\n", st.log_size);
                        fflush(stdout);
                }
        }
}
