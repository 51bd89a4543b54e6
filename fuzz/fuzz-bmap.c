/* Fuzzer for the block map parser: any bytes give a consistent map or one error message */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmap.h"
#include "fuzz-check.h"
#include "fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(bmap_freep) Bmap *b = NULL;
        _cleanup_free_ char *error = NULL;
        uint64_t mapped = 0, bytes = 0;
        int r;

        r = bmap_parse((const char *) data, size, &b, &error);
        if (r < 0) {
                CHECK(!b);
                if (r != -ENOMEM) {
                        CHECK(r == -EINVAL);
                        CHECK(error && strncmp(error, "line ", 5) == 0);
                }
                return 0;
        }
        CHECK(r == 0 && b && !error);
        /* What the flasher relies on: ranges in order, disjoint, inside the image. */
        CHECK(b->block_size > 0 && (b->block_size & (b->block_size - 1)) == 0);
        CHECK(b->blocks_count * b->block_size >= b->image_size);
        for (size_t i = 0; i < b->n_ranges; i++) {
                const BmapRange *rg = &b->ranges[i];

                CHECK(rg->first <= rg->last && rg->last < b->blocks_count);
                CHECK(i == 0 || b->ranges[i - 1].last < rg->first);
                CHECK(bmap_range_offset(b, rg) + bmap_range_length(b, rg) <= b->image_size);
                CHECK(bmap_range_length(b, rg) > 0);
                mapped += rg->last - rg->first + 1;
                bytes += bmap_range_length(b, rg);
        }
        CHECK(mapped == b->mapped_blocks);
        CHECK(bytes <= b->image_size);
        if (b->has_file_checksum)
                CHECK(b->file_checksum_offset + 64 <= size);
        return 0;
}
