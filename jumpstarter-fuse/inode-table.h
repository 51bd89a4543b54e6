/* Inode registry: stable inode numbers for the mount root, the DUT directories and their files */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The kinds of node in a DUT directory; the order is the readdir order. */
typedef enum FileKind {
        FILE_KIND_DIR,
        FILE_KIND_POWER,
        FILE_KIND_POWER_READING, /* only where the power driver measures */
        FILE_KIND_SERIAL,
        FILE_KIND_SERIAL_LOG,
        FILE_KIND_STORAGE,
        FILE_KIND_LABELS,
        FILE_KIND_LEASE,
        FILE_KIND_GPIO,         /* the directory gpio/; its files have inodes of their own (INODE_GPIO_BASE) */
        _FILE_KIND_MAX,
        _FILE_KIND_INVALID = -EINVAL,
} FileKind;

/* The file name of a kind ("power", ...); NULL for FILE_KIND_DIR, which has no name of its own. */
const char *file_kind_to_string(FileKind k);
FileKind file_kind_from_string(const char *s);

/* The device class a kind belongs to (DriverClass), or -1 for files every DUT has. */
int file_kind_driver_class(FileKind k);

#define INODE_ROOT UINT64_C(1)
/* Each DUT owns a block of inode numbers: its directory, then one per FileKind. */
#define INODE_BLOCK UINT64_C(16)
/* GPIO line files (gpio/<line>): INODE_GPIO_BASE + their slot in a table of "dut/line" names, far
 * above any DUT block. */
#define INODE_GPIO_BASE (UINT64_C(1) << 40)

/* Maps DUT names to slots, and slots to blocks of inode numbers. A slot is never reused for another
 * name, so an inode number means the same file for the whole life of the mount, also when a DUT
 * goes away and comes back; the kernel's forget needs no bookkeeping. */
typedef struct InodeTable {
        char **names;
        size_t n_names;
} InodeTable;

void inode_table_done(InodeTable *t);

/* Finds the slot of name; with create, adds it if missing. -ENOENT if missing and !create. */
int inode_table_slot(InodeTable *t, const char *name, bool create, size_t *ret_slot);
const char *inode_table_name(const InodeTable *t, size_t slot);

uint64_t inode_make(size_t slot, FileKind kind);
/* Splits a DUT inode number; -ENOENT for the root and numbers outside any known slot. */
int inode_parse(const InodeTable *t, uint64_t ino, size_t *ret_slot, FileKind *ret_kind);
