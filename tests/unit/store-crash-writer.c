/* Commits store transactions in a loop and prints each sequence number once it is acknowledged */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "store.h"

/* Usage: store-crash-writer DIR COMPACT_EVERY HISTORY_KEEP_MSEC
 * Transaction SEQ writes meta/counter {"seq":SEQ} (compare-and-swap on its revision),
 * items/item-(SEQ % 50) with a padding whose length depends on SEQ, creates tmp/t-SEQ and deletes
 * tmp/t-(SEQ-1), and appends {"seq":SEQ} to the history. Every COMPACT_EVERY commits (0: never)
 * it compacts, keeping HISTORY_KEEP_MSEC of history (0: all). Prints "A SEQ LOG_SIZE" after each
 * commit and "C LOG_SIZE" after each compaction. The parent kills it with SIGKILL and checks the
 * store against what it printed (test-store.c). */

/* test-store.c has copies of these three. */
#define CRASH_WRITER_ITEMS 50
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

static int commit_one(Store *s, uint64_t seq, uint64_t *rev) {
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
        r = store_txn_put(t, "meta", "counter", counter, *rev);
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
        return store_commit(s, t, rev);
}

int main(int argc, char *argv[]) {
        _cleanup_(store_closep) Store *s = NULL;
        _cleanup_free_ char *error = NULL;
        json_auto_t *counter = NULL;
        uint64_t seq = 0, rev = STORE_REVISION_ABSENT, compact_every, keep_msec;
        StoreStatus st;
        int r;

        if (argc != 4) {
                fprintf(stderr, "Usage: %s DIR COMPACT_EVERY HISTORY_KEEP_MSEC\n", argv[0]);
                return EXIT_FAILURE;
        }
        compact_every = strtoull(argv[2], NULL, 10);
        keep_msec = strtoull(argv[3], NULL, 10);

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
                seq++;
                r = commit_one(s, seq, &rev);
                if (r < 0) {
                        fprintf(stderr, "Failed to commit %" PRIu64 ": %s\n", seq, strerror(-r));
                        return EXIT_FAILURE;
                }
                /* The acknowledgement: only now may the parent count on it. With the log's size,
                 * so that the parent can play power loss on what lies beyond. */
                store_status(s, &st);
                printf("A %" PRIu64 " %" PRIu64 "\n", seq, st.log_size);
                fflush(stdout);

                if (compact_every > 0 && seq % compact_every == 0) {
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
