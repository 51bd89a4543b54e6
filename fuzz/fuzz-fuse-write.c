/* Fuzzer for the payloads of FUSE writes that carry a word: the power file's "on"/"off"/"cycle"
 * and a GPIO line file's "0"/"1", each with at most one trailing newline. Exactly those are
 * accepted, as the write path sees them (fs_copy_word(), then the parser). */
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "fuzz-check.h"
#include "fuzz.h"
#include "macro.h"

/* What power-file.c and gpio-file.c copy a payload into. */
#define WORD_BUFFER_SIZE 16

static bool is_word(const uint8_t *data, size_t size, const char *word) {
        size_t n = strlen(word);

        return (size == n || (size == n + 1 && data[n] == '\n')) && memcmp(data, word, n) == 0;
}

static PowerAction power_expected(const uint8_t *data, size_t size) {
        if (is_word(data, size, "on"))
                return POWER_ACTION_ON;
        if (is_word(data, size, "off"))
                return POWER_ACTION_OFF;
        if (is_word(data, size, "cycle"))
                return POWER_ACTION_CYCLE;
        return _POWER_ACTION_INVALID;
}

static int gpio_expected(const uint8_t *data, size_t size) {
        if (is_word(data, size, "0"))
                return 0;
        if (is_word(data, size, "1"))
                return 1;
        return -EINVAL;
}

static void check_parsers(const uint8_t *data, size_t size) {
        PowerAction a = power_action_from_payload((const char *) data, size);
        int v = gpio_value_from_payload((const char *) data, size);

        CHECK(a == power_expected(data, size));
        if (a >= 0)
                CHECK(power_action_to_string(a) && is_word(data, size, power_action_to_string(a)));
        CHECK(v == gpio_expected(data, size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ uint8_t *payload = NULL;
        struct fuse_bufvec src = FUSE_BUFVEC_INIT(size);
        char *buf;
        Handle h = {};
        size_t n = SIZE_MAX;
        int r;

        /* The parsers on their own, whatever the size. */
        check_parsers(data, size);

        /* The write path: the payload is copied into a small buffer first. Both buffers are
         * allocated to their exact size, so that ASan sees any access past them. */
        payload = malloc(MAX(size, (size_t) 1));
        buf = malloc(WORD_BUFFER_SIZE);
        CHECK(payload && buf);
        if (size > 0)
                memcpy(payload, data, size);
        src.buf[0].mem = payload;

        r = fs_copy_word(&h, &src, buf, WORD_BUFFER_SIZE, &n);
        if (size > WORD_BUFFER_SIZE)
                CHECK(r == -EINVAL && n == SIZE_MAX);
        else {
                CHECK(r == 0 && n == size);
                CHECK(size == 0 || memcmp(buf, data, size) == 0);
                check_parsers((const uint8_t *) buf, n);
        }
        free(buf);

        /* A dead handle takes nothing. */
        h.dead = true;
        n = SIZE_MAX;
        CHECK(fs_copy_word(&h, &src, (char[WORD_BUFFER_SIZE]) {}, WORD_BUFFER_SIZE, &n) == -EIO && n == SIZE_MAX);
        return 0;
}
