/* QEMU virtual machine: its options and the command line built from them */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "macro.h"

#define QEMU_DEFAULT_BINARY       "qemu-system-x86_64"
#define QEMU_DEFAULT_MEMORY       (UINT64_C(256) << 20)
#define QEMU_DEFAULT_CPUS         UINT64_C(1)
#define QEMU_DEFAULT_STOP_TIMEOUT (UINT64_C(5) * USEC_PER_SEC)
#define QEMU_DEFAULT_LOG_SIZE     (UINT64_C(1) << 20)
#define QEMU_MEMORY_MIN           (UINT64_C(16) << 20)
#define QEMU_CPUS_MAX             UINT64_C(64)

/* The sockets QEMU inherits: the command line names these fd numbers. */
#define QEMU_CONSOLE_FD 3
#define QEMU_QMP_FD     4

typedef struct QemuOptions {
        const char *binary;
        const char *kernel;
        const char *initrd;
        const char *append;
        const char *disk;
        bool disk_size_set;
        uint64_t disk_size;
        uint64_t memory;
        uint64_t cpus;
        uint64_t stop_timeout_usec;
        uint64_t log_size;
} QemuOptions;

/* Fills o from a config of type qemu, with the defaults for what is unset. Points into config. */
void qemu_options_from_config(QemuOptions *o, const DriverConfig *config);

/* Checks combinations and ranges. The config parser has checked them already (the table and hook
 * in libjumpstarter/driver-types-qemu.c); this is for options that come from elsewhere. Returns 0,
 * or -EINVAL with a static message in *ret_error. */
int qemu_options_verify(const QemuOptions *o, const char **ret_error);

/* The argv (NULL-terminated, caller frees with qemu_strv_free()) that starts the VM, with argv[0] =
 * binary as given (the caller resolves it). The console is a stream socket at fd QEMU_CONSOLE_FD,
 * the QMP monitor one at QEMU_QMP_FD. */
int qemu_command_build(const QemuOptions *o, char ***ret);

char **qemu_strv_free(char **l);
static inline void qemu_strv_freep(char ***l) {
        qemu_strv_free(*l);
}
