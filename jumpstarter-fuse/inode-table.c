/* Inode registry: stable inode numbers for the mount root, the DUT directories and their files */
#include <stdlib.h>
#include <string.h>

#include "agent-api.h"
#include "config.h"
#include "inode-table.h"
#include "macro.h"

static const char *const file_kind_table[_FILE_KIND_MAX] = {
        [FILE_KIND_DIR] = NULL,
        [FILE_KIND_POWER] = "power",
        [FILE_KIND_POWER_READING] = "power.reading",
        [FILE_KIND_SERIAL] = "serial",
        [FILE_KIND_SERIAL_LOG] = "serial.log",
        [FILE_KIND_STORAGE] = "storage",
        [FILE_KIND_LABELS] = "labels",
        [FILE_KIND_LEASE] = "lease",
        [FILE_KIND_GPIO] = "gpio",
};

static const int file_kind_class_table[_FILE_KIND_MAX] = {
        [FILE_KIND_DIR] = -1,
        [FILE_KIND_POWER] = DRIVER_CLASS_POWER,
        /* Not a class: DescribeDut sets this bit beside the classes when the power driver measures. */
        [FILE_KIND_POWER_READING] = AGENT_DUT_POWER_READING_BIT,
        [FILE_KIND_SERIAL] = DRIVER_CLASS_SERIAL,
        [FILE_KIND_SERIAL_LOG] = DRIVER_CLASS_SERIAL,
        [FILE_KIND_STORAGE] = DRIVER_CLASS_STORAGE,
        [FILE_KIND_LABELS] = -1,
        [FILE_KIND_LEASE] = -1,
        /* Set in Dut.classes when the DUT has GPIO lines. */
        [FILE_KIND_GPIO] = DRIVER_CLASS_GPIO_LINES,
};

const char *file_kind_to_string(FileKind k) {
        if (k < 0 || k >= _FILE_KIND_MAX)
                return NULL;
        return file_kind_table[k];
}

FileKind file_kind_from_string(const char *s) {
        if (!s)
                return _FILE_KIND_INVALID;
        for (FileKind k = 0; k < _FILE_KIND_MAX; k++)
                if (file_kind_table[k] && streq(file_kind_table[k], s))
                        return k;
        return _FILE_KIND_INVALID;
}

int file_kind_driver_class(FileKind k) {
        if (k < 0 || k >= _FILE_KIND_MAX)
                return -1;
        return file_kind_class_table[k];
}

void inode_table_done(InodeTable *t) {
        for (size_t i = 0; i < t->n_names; i++)
                free(t->names[i]);
        free(t->names);
        t->names = NULL;
        t->n_names = 0;
}

int inode_table_slot(InodeTable *t, const char *name, bool create, size_t *ret_slot) {
        _cleanup_free_ char *copy = NULL;
        char **n;

        for (size_t i = 0; i < t->n_names; i++)
                if (streq(t->names[i], name)) {
                        *ret_slot = i;
                        return 0;
                }
        if (!create)
                return -ENOENT;

        copy = strdup(name);
        if (!copy)
                return -ENOMEM;
        n = reallocarray(t->names, t->n_names + 1, sizeof *n);
        if (!n)
                return -ENOMEM;
        t->names = n;
        t->names[t->n_names] = TAKE_PTR(copy);
        *ret_slot = t->n_names++;
        return 1;
}

const char *inode_table_name(const InodeTable *t, size_t slot) {
        return slot < t->n_names ? t->names[slot] : NULL;
}

_Static_assert(_FILE_KIND_MAX <= INODE_BLOCK, "a DUT's inode block holds every kind");

uint64_t inode_make(size_t slot, FileKind kind) {
        return INODE_ROOT + 1 + (uint64_t) slot * INODE_BLOCK + (uint64_t) kind;
}

int inode_parse(const InodeTable *t, uint64_t ino, size_t *ret_slot, FileKind *ret_kind) {
        uint64_t slot, kind;

        if (ino <= INODE_ROOT)
                return -ENOENT;
        slot = (ino - INODE_ROOT - 1) / INODE_BLOCK;
        kind = (ino - INODE_ROOT - 1) % INODE_BLOCK;
        if (slot >= t->n_names || kind >= _FILE_KIND_MAX)
                return -ENOENT;
        *ret_slot = slot;
        *ret_kind = (FileKind) kind;
        return 0;
}
