/* Tests of the mounted block device check against fixture files of sysfs and mountinfo */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "block-mount.h"
#include "macro.h"
#include "tests.h"

static void write_file(const char *path, const char *content) {
        FILE *f = fopen(path, "we");

        ASSERT_TRUE(f);
        fputs(content, f);
        ASSERT_EQ(fclose(f), 0);
}

static char dir[] = "/tmp/test-block-mount.XXXXXX";

static void fixture(void) {
        char p[256];

        ASSERT_TRUE(mkdtemp(dir));
        /* sda (8:0) with partitions sda1 (8:1) and sda2 (8:2), and a non-partition entry. */
        snprintf(p, sizeof p, "mkdir -p %s/sys/dev/block/8:0/sda1 %s/sys/dev/block/8:0/sda2 "
                 "%s/sys/dev/block/8:0/queue %s/sys/dev/block/8:16", dir, dir, dir, dir);
        ASSERT_EQ(system(p), 0);
        snprintf(p, sizeof p, "%s/sys/dev/block/8:0/sda1/partition", dir);
        write_file(p, "1\n");
        snprintf(p, sizeof p, "%s/sys/dev/block/8:0/sda1/dev", dir);
        write_file(p, "8:1\n");
        snprintf(p, sizeof p, "%s/sys/dev/block/8:0/sda2/partition", dir);
        write_file(p, "2\n");
        snprintf(p, sizeof p, "%s/sys/dev/block/8:0/sda2/dev", dir);
        write_file(p, "8:2\n");
        snprintf(p, sizeof p, "%s/sys/dev/block/8:0/queue/dev", dir);
        write_file(p, "8:9\n"); /* no "partition" file: not a partition */
        snprintf(p, sizeof p, "%s/mountinfo", dir);
        write_file(p, "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
                      "garbage line\n"
                      "\n"
                      "40 22 8:2 / /media/card\\040one rw,relatime shared:5 - vfat /dev/sda2 rw\n"
                      "41 22 7:0 / /mnt/loop rw - ext4 /dev/loop0 rw\n"
                      "42 22 8:9 / /mnt/notapartition rw - ext4 /dev/x rw\n");
}

TEST(partition_of_device_mounted) {
        char sys[256], mi[256];
        char *where = NULL;

        fixture();
        snprintf(sys, sizeof sys, "%s/sys", dir);
        snprintf(mi, sizeof mi, "%s/mountinfo", dir);

        ASSERT_EQ(block_device_find_mount(sys, mi, makedev(8, 0), &where), 1);
        ASSERT_STREQ(where, "/media/card\\040one");
        free(where);
        where = NULL;

        /* The partition itself, and a whole device without sysfs entries. */
        ASSERT_EQ(block_device_find_mount(sys, mi, makedev(8, 2), NULL), 1);
        ASSERT_EQ(block_device_find_mount(sys, mi, makedev(7, 0), &where), 1);
        ASSERT_STREQ(where, "/mnt/loop");
        free(where);

        /* Not mounted: a sibling partition, another disk, a non-partition entry's number. */
        ASSERT_EQ(block_device_find_mount(sys, mi, makedev(8, 1), NULL), 0);
        ASSERT_EQ(block_device_find_mount(sys, mi, makedev(8, 16), NULL), 0);
        ASSERT_EQ(block_device_find_mount(sys, mi, makedev(8, 32), NULL), 0);

        snprintf(mi, sizeof mi, "%s/nonexistent", dir);
        ASSERT_EQ(block_device_find_mount(sys, mi, makedev(8, 0), NULL), -ENOENT);

        snprintf(sys, sizeof sys, "rm -rf %s", dir);
        ASSERT_EQ(system(sys), 0);
}

TEST_MAIN()
