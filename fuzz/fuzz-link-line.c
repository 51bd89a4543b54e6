/* Fuzzer for what a controller sends an exporter on its watch: NDJSON cut at any point, each line parsed */
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "fuzz.h"
#include "link-util.h"
#include "macro.h"

static int on_line(const char *line, size_t len, void *userdata) {
        _cleanup_free_ char *error = NULL;
        LinkLine l = {};
        size_t *n = userdata;
        int r;

        CHECK(len > 0 && len <= 4096);
        CHECK(memchr(line, '\n', len) == NULL);
        (*n)++;

        r = link_line_parse(line, len, &l, &error);
        if (r < 0) {
                CHECK(r == -EBADMSG || r == -ENOMEM);
                CHECK(r != -EBADMSG || error);
                return 0;
        }
        CHECK(!error);
        CHECK(l.type >= 0 && l.type < _LINK_LINE_TYPE_MAX);
        for (size_t i = 0; i < l.n_leases; i++)
                CHECK(l.leases[i].name && l.leases[i].dut);
        CHECK(l.type != LINK_LINE_LEASE || l.n_leases == 1);
        CHECK(l.type != LINK_LINE_KEYS || json_is_array(l.keys));
        CHECK(l.type != LINK_LINE_DIAL || (l.dial_id && l.dial_router && l.dial_token));
        link_line_done(&l);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NdjsonSplitter s;
        size_t chunk, n_whole = 0, n_cut = 0;
        char *str;
        uint64_t u;

        if (size == 0)
                return 0;

        /* The first byte picks the read size: lines come out the same however the bytes arrive. */
        chunk = (size_t) data[0] % 17 + 1;
        data++;
        size--;

        ndjson_splitter_init(&s, 4096);
        if (ndjson_splitter_feed(&s, data, size, on_line, &n_whole) < 0)
                n_whole = SIZE_MAX;
        ndjson_splitter_done(&s);

        ndjson_splitter_init(&s, 4096);
        for (size_t off = 0; off < size; off += chunk)
                if (ndjson_splitter_feed(&s, data + off, MIN(chunk, size - off), on_line, &n_cut) < 0) {
                        n_cut = SIZE_MAX;
                        break;
                }
        ndjson_splitter_done(&s);
        CHECK(n_whole == n_cut || n_whole == SIZE_MAX || n_cut == SIZE_MAX);

        str = strndup((const char *) data, size);
        CHECK(str);
        if (parse_rfc3339(str, &u) >= 0)
                CHECK(strlen(str) >= 20);
        free(str);
        return 0;
}
