/* Driver types of the QEMU virtual machine family, with their options */
#include <stddef.h>

#include "config.h"

/* Every piece of QEMU's command line comes from one of these named options: there is no free-form
 * argument list, so a config names exactly what runs and a client can add nothing. */
static const OptionSpec qemu_options[] = {
        { "binary", OPTION_STRING, false,
          "the QEMU program, a name looked up in PATH or an absolute path (default qemu-system-x86_64)" },
        { "kernel", OPTION_PATH, false, "kernel image booted directly (-kernel); kernel or disk is required" },
        { "initrd", OPTION_PATH, false, "initramfs passed with the kernel (-initrd); needs kernel" },
        { "append", OPTION_STRING, false, "kernel command line (-append); needs kernel; include console=ttyS0" },
        { "disk", OPTION_PATH, false, "raw disk image: the VM's virtio disk and the DUT's storage" },
        { "disk_size", OPTION_SIZE, false, "create the disk image with this size if missing, or grow it to it" },
        { "memory", OPTION_SIZE, false, "guest RAM, a whole number of MiB, at least 16MiB (default 256MiB)" },
        { "cpus", OPTION_UINT, false, "virtual CPUs, 1 to 64 (default 1)" },
        { "stop_timeout", OPTION_DURATION, false,
          "how long power off waits after SIGTERM before SIGKILL (default 5s)" },
        { "log_size", OPTION_SIZE, false, "size of the serial.log ring (default 1MiB)" },
        {}
};

static const DriverType driver_type_qemu = {
        .name = "qemu",
        .classes = 1U << DRIVER_CLASS_POWER | 1U << DRIVER_CLASS_SERIAL | 1U << DRIVER_CLASS_STORAGE,
        .options = qemu_options,
        .help = "a QEMU x86-64 virtual machine (TCG): power starts and stops it, serial is its console, "
                "storage its disk image",
};

const DriverType *const driver_types_qemu[] = {
        &driver_type_qemu,
        NULL,
};
