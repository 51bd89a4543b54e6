/* Fuzzer for the controller's "Authorization" header parsing: a token only from "Bearer <token>",
 * the scheme in any case, the token whole (no blank, CR, LF, comma or quote), nothing else. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "fuzz-check.h"
#include "fuzz.h"
#include "http-server.h"
#include "macro.h"

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

/* The rule, written out independently of the parser: the offset of the token, or -1. */
static ssize_t bearer_expected(const char *h) {
        size_t i = 0, t;

        while (is_blank(h[i]))
                i++;
        if (strlen(h + i) < 6 || strncasecmp(h + i, "bearer", 6) != 0)
                return -1;
        i += 6;
        if (!is_blank(h[i]))
                return -1;
        while (is_blank(h[i]))
                i++;
        t = i;
        if (!h[t])
                return -1;
        for (; h[i]; i++)
                if (is_blank(h[i]) || h[i] == '\r' || h[i] == '\n' || h[i] == ',' || h[i] == '"')
                        return -1;
        return (ssize_t) t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *header = NULL;
        const char *token;
        ssize_t expected;

        /* A header value is a C string: it ends at the first NUL. */
        header = strndup((const char *) data, size);
        CHECK(header);

        token = http_bearer_parse(header);
        expected = bearer_expected(header);
        if (expected < 0) {
                CHECK(!token);
                return 0;
        }
        CHECK(token == header + expected);
        CHECK(*token);
        CHECK(strncasecmp(header + strspn(header, " \t"), "Bearer", 6) == 0);
        CHECK(http_bearer_parse(NULL) == NULL);
        return 0;
}
