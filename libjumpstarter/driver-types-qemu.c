/* Driver types of the QEMU virtual machine family, with their options */
#include <inttypes.h>
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
        { "disk_size", OPTION_SIZE, false,
          "create the disk image with this size if missing, or grow it to it; needs disk", .min = 1 },
        { "memory", OPTION_SIZE, false, "guest RAM, a whole number of MiB from 16MiB to 1TiB (default 256MiB)",
          .min = UINT64_C(16) << 20, .max = UINT64_C(1) << 40 },
        { "cpus", OPTION_UINT, false, "virtual CPUs, 1 to 64 (default 1)", .min = 1, .max = 64 },
        { "stop_timeout", OPTION_DURATION, false,
          "how long power off waits after SIGTERM before SIGKILL (default 5s)", .min = 1 },
        { "log_size", OPTION_SIZE, false, "size of the serial.log ring, at most 1GiB (default 1MiB)",
          .min = 1, .max = UINT64_C(1) << 30 },
        {}
};

/* Combinations of options. jumpstarterd/drivers/qemu/qemu-command.c checks them again, and at start
 * what only the running system can tell (a readable kernel, an executable binary). */
static int qemu_validate(const DriverConfig *c, char **ret_problem, const char **ret_option) {
        bool kernel = driver_config_is_set(c, "kernel");
        const char *binary = driver_config_get_string(c, "binary");
        uint64_t memory = driver_config_get_u64(c, "memory", 0);

        if (!kernel && !driver_config_is_set(c, "disk"))
                return driver_config_problem(ret_problem, ret_option, NULL, "nothing to boot: set kernel or disk");
        if (!kernel && driver_config_is_set(c, "initrd"))
                return driver_config_problem(ret_problem, ret_option, "initrd",
                                             "needs kernel: an initrd is loaded with a directly booted kernel");
        if (!kernel && driver_config_is_set(c, "append"))
                return driver_config_problem(ret_problem, ret_option, "append",
                                             "needs kernel: the command line goes to a directly booted kernel");
        if (driver_config_is_set(c, "disk_size") && !driver_config_is_set(c, "disk"))
                return driver_config_problem(ret_problem, ret_option, "disk_size",
                                             "needs disk: it is the size of the disk image");
        if (binary && !*binary)
                return driver_config_problem(ret_problem, ret_option, "binary",
                                             "expected a program name or an absolute path, got \"\"");
        /* QEMU's -m takes MiB. */
        if (memory % (UINT64_C(1) << 20) != 0)
                return driver_config_problem(ret_problem, ret_option, "memory",
                                             "expected a whole number of MiB, got %" PRIu64 " bytes", memory);
        return 0;
}

static const DriverType driver_type_qemu = {
        .name = "qemu",
        .classes = 1U << DRIVER_CLASS_POWER | 1U << DRIVER_CLASS_SERIAL | 1U << DRIVER_CLASS_STORAGE,
        .options = qemu_options,
        .help = "a QEMU x86-64 virtual machine (TCG): power starts and stops it, serial is its console, "
                "storage its disk image",
        .validate = qemu_validate,
};

const DriverType *const driver_types_qemu[] = {
        &driver_type_qemu,
        NULL,
};
