/* Block maps (bmaptool's .bmap XML): which blocks of a sparse image hold data, with checksums */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct BmapRange {
        uint64_t first, last;  /* blocks, inclusive */
        uint8_t sha256[32];
} BmapRange;

typedef struct Bmap {
        uint64_t image_size;
        uint64_t block_size;
        uint64_t blocks_count;
        uint64_t mapped_blocks;  /* the sum over the ranges */
        BmapRange *ranges;       /* sorted, disjoint, within blocks_count */
        size_t n_ranges;
        /* BmapFileChecksum: the sha256 of the file with this field's 64 digits set to '0'. */
        bool has_file_checksum;
        uint8_t file_checksum[32];
        size_t file_checksum_offset;  /* of the 64 digits in the parsed text */
} Bmap;

/* Parses bmap format 2.x (ChecksumType sha256). Checks the structure, the numbers and that the
 * ranges are sorted, disjoint and inside the image. On failure returns -EINVAL (or -ENOMEM) and a
 * one-line message in *ret_error ("line N: ...", caller frees). */
int bmap_parse(const char *data, size_t size, Bmap **ret, char **ret_error);
Bmap *bmap_free(Bmap *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(Bmap *, bmap_free);

/* Byte range of a block range within the image (the last block may be short). */
uint64_t bmap_range_offset(const Bmap *b, const BmapRange *r);
uint64_t bmap_range_length(const Bmap *b, const BmapRange *r);
