/* Tests of the inode registry */
#include "config.h"
#include "inode-table.h"
#include "tests.h"

TEST(file_kinds) {
        ASSERT_EQ(file_kind_from_string("power"), FILE_KIND_POWER);
        ASSERT_EQ(file_kind_from_string("serial.log"), FILE_KIND_SERIAL_LOG);
        ASSERT_EQ(file_kind_from_string("lease"), FILE_KIND_LEASE);
        ASSERT_EQ(file_kind_from_string(""), _FILE_KIND_INVALID);
        ASSERT_EQ(file_kind_from_string("nope"), _FILE_KIND_INVALID);
        ASSERT_EQ(file_kind_from_string(NULL), _FILE_KIND_INVALID);
        ASSERT_TRUE(file_kind_to_string(FILE_KIND_DIR) == NULL);
        ASSERT_STREQ(file_kind_to_string(FILE_KIND_STORAGE), "storage");
        ASSERT_EQ(file_kind_driver_class(FILE_KIND_SERIAL_LOG), DRIVER_CLASS_SERIAL);
        ASSERT_EQ(file_kind_driver_class(FILE_KIND_LABELS), -1);
        ASSERT_TRUE(_FILE_KIND_MAX <= INODE_BLOCK);
}

TEST(slots_are_stable) {
        InodeTable t = {};
        size_t a, b, again;

        ASSERT_EQ(inode_table_slot(&t, "dut1", false, &a), -ENOENT);
        ASSERT_EQ(inode_table_slot(&t, "dut1", true, &a), 1);
        ASSERT_EQ(inode_table_slot(&t, "dut2", true, &b), 1);
        ASSERT_TRUE(a != b);
        ASSERT_EQ(inode_table_slot(&t, "dut1", true, &again), 0);
        ASSERT_EQ_U(again, a);
        ASSERT_EQ(inode_table_slot(&t, "dut2", false, &again), 0);
        ASSERT_EQ_U(again, b);
        ASSERT_STREQ(inode_table_name(&t, b), "dut2");
        ASSERT_TRUE(inode_table_name(&t, 7) == NULL);
        inode_table_done(&t);
        ASSERT_EQ_U(t.n_names, 0);
}

TEST(inode_numbers) {
        InodeTable t = {};
        size_t a, b, slot;
        FileKind kind;
        uint64_t seen[2 * _FILE_KIND_MAX];
        size_t n = 0;

        ASSERT_OK(inode_table_slot(&t, "dut1", true, &a));
        ASSERT_OK(inode_table_slot(&t, "dut2", true, &b));

        /* Every (slot, kind) maps to a distinct number above the root, and back. */
        for (size_t s = 0; s < 2; s++)
                for (FileKind k = 0; k < _FILE_KIND_MAX; k++) {
                        uint64_t ino = inode_make(s, k);

                        ASSERT_TRUE(ino > INODE_ROOT);
                        for (size_t i = 0; i < n; i++)
                                ASSERT_TRUE(seen[i] != ino);
                        seen[n++] = ino;
                        ASSERT_OK(inode_parse(&t, ino, &slot, &kind));
                        ASSERT_EQ_U(slot, s);
                        ASSERT_EQ(kind, k);
                }

        ASSERT_EQ(inode_parse(&t, INODE_ROOT, &slot, &kind), -ENOENT);
        ASSERT_EQ(inode_parse(&t, 0, &slot, &kind), -ENOENT);
        /* Unused numbers inside a block, and blocks of unknown slots. */
        ASSERT_EQ(inode_parse(&t, inode_make(0, 0) + _FILE_KIND_MAX, &slot, &kind), -ENOENT);
        ASSERT_EQ(inode_parse(&t, inode_make(2, FILE_KIND_DIR), &slot, &kind), -ENOENT);
        inode_table_done(&t);
}

TEST_MAIN()
