/* Tests of the block map parser: bmaptool's own output, and what it must refuse */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmap.h"
#include "tests.h"

#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"
#define HEAD "<bmap version=\"2.0\"><ImageSize>10000</ImageSize><BlockSize>4096</BlockSize>" \
             "<BlocksCount>3</BlocksCount><ChecksumType>sha256</ChecksumType>"

static Bmap *parse_ok(const char *text) {
        Bmap *b = NULL;
        char *error = NULL;
        int r = bmap_parse(text, strlen(text), &b, &error);

        if (r < 0)
                ASSERT_FAIL("parses: %s", error ?: "no message");
        return b;
}

static void parse_fails(const char *text, const char *message) {
        Bmap *b = NULL;
        char *error = NULL;

        ASSERT_EQ(bmap_parse(text, strlen(text), &b, &error), -EINVAL);
        ASSERT_TRUE(!b);
        ASSERT_TRUE(error);
        ASSERT_CONTAINS(error, message);
        free(error);
}

TEST(bmaptool_output) {
        FILE *f;
        char buf[8192];
        size_t n;
        Bmap *b;

        f = fopen(SOURCE_ROOT "/fuzz/corpus/bmap/valid-bmaptool.bmap", "re");
        ASSERT_TRUE(f);
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;

        b = parse_ok(buf);
        ASSERT_EQ_U(b->image_size, 10485760);
        ASSERT_EQ_U(b->block_size, 4096);
        ASSERT_EQ_U(b->blocks_count, 2560);
        ASSERT_EQ_U(b->n_ranges, 2);
        ASSERT_EQ_U(b->ranges[0].first, 5);
        ASSERT_EQ_U(b->ranges[0].last, 7);
        ASSERT_EQ_U(b->ranges[1].first, 2000);
        ASSERT_EQ_U(b->ranges[1].last, 2000);
        ASSERT_EQ_U(b->mapped_blocks, 4);
        ASSERT_EQ(b->ranges[0].sha256[0], 0x46);
        ASSERT_EQ(b->ranges[1].sha256[31], 0x75);
        ASSERT_TRUE(b->has_file_checksum);
        ASSERT_EQ(b->file_checksum[0], 0xc5);
        ASSERT_EQ(memcmp(buf + b->file_checksum_offset, "c51f75f2", 8), 0);
        ASSERT_EQ_U(bmap_range_offset(b, &b->ranges[1]), 2000 * 4096);
        ASSERT_EQ_U(bmap_range_length(b, &b->ranges[0]), 3 * 4096);
        bmap_free(b);
}

TEST(short_last_block) {
        Bmap *b = parse_ok(HEAD "<BlockMap><Range chksum='" ZEROS "'>1-2</Range></BlockMap></bmap>\n");

        /* 10000 bytes: the third block has 10000 - 8192. */
        ASSERT_EQ_U(bmap_range_length(b, &b->ranges[0]), 10000 - 4096);
        bmap_free(b);

        b = parse_ok(HEAD "<BlockMap/></bmap>");
        ASSERT_EQ_U(b->n_ranges, 0);
        bmap_free(b);
}

TEST(refused) {
        parse_fails("", "expected '<'");
        parse_fails("<foo/>", "not a block map");
        parse_fails(HEAD "<BlockMap><Range chksum='" ZEROS "'>1-3</Range></BlockMap></bmap>", "past the end");
        parse_fails(HEAD "<BlockMap><Range chksum='" ZEROS "'>2-1</Range></BlockMap></bmap>", "ends before");
        parse_fails(HEAD "<BlockMap><Range chksum='" ZEROS "'>0-1</Range><Range chksum='" ZEROS "'>1</Range>"
                    "</BlockMap></bmap>", "overlap");
        parse_fails(HEAD "<BlockMap><Range>0</Range></BlockMap></bmap>", "without a chksum");
        parse_fails(HEAD "<BlockMap><Range chksum='abc'>0</Range></BlockMap></bmap>", "sha256");
        parse_fails(HEAD "<BlockMap><Range chksum='" ZEROS "'>x</Range></BlockMap></bmap>", "not a number");
        parse_fails(HEAD "<BlockMap><Range chksum='" ZEROS "'>99999999999999999999</Range></BlockMap></bmap>",
                    "too large");
        parse_fails(HEAD "<ImageSize>1</ImageSize><BlockMap/></bmap>", "duplicate");
        parse_fails(HEAD "<Evil>1</Evil><BlockMap/></bmap>", "unknown element");
        parse_fails(HEAD "</bmap>", "needs ImageSize");
        parse_fails("<bmap version=\"1.4\"><ImageSize>4096</ImageSize><BlockSize>4096</BlockSize>"
                    "<BlocksCount>1</BlocksCount><ChecksumType>sha1</ChecksumType><BlockMap/></bmap>",
                    "only sha256");
        parse_fails("<bmap><ImageSize>8192</ImageSize><BlockSize>4096</BlockSize><BlocksCount>3</BlocksCount>"
                    "<ChecksumType>sha256</ChecksumType><BlockMap/></bmap>", "does not match");
        parse_fails("<bmap><ImageSize>8192</ImageSize><BlockSize>3000</BlockSize><BlocksCount>3</BlocksCount>"
                    "<ChecksumType>sha256</ChecksumType><BlockMap/></bmap>", "power of two");
        parse_fails(HEAD "<BlockMap/></bmap>trailing", "after </bmap>");
        parse_fails(HEAD "<BlockMap/></bmap><!-- open", "unterminated comment");
        parse_fails("<!DOCTYPE x><bmap/>", "DTDs");
        parse_fails(HEAD "<BlockMap><Range chksum='" ZEROS "'>&amp;</Range></BlockMap></bmap>", "entities");
        {
                static const char nul[] = "<bmap>\0</bmap>";
                Bmap *b = NULL;
                char *error = NULL;

                ASSERT_EQ(bmap_parse(nul, sizeof nul - 1, &b, &error), -EINVAL);
                ASSERT_CONTAINS(error, "NUL");
                free(error);
        }
}

TEST_MAIN()
