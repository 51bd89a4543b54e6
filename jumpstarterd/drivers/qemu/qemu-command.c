/* QEMU virtual machine: its options and the command line built from them */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "macro.h"
#include "qemu-command.h"

void qemu_options_from_config(QemuOptions *o, const DriverConfig *config) {
        *o = (QemuOptions) {
                .binary = driver_config_get_string(config, "binary") ?: QEMU_DEFAULT_BINARY,
                .kernel = driver_config_get_string(config, "kernel"),
                .initrd = driver_config_get_string(config, "initrd"),
                .append = driver_config_get_string(config, "append"),
                .disk = driver_config_get_string(config, "disk"),
                .disk_size_set = driver_config_is_set(config, "disk_size"),
                .disk_size = driver_config_get_u64(config, "disk_size", 0),
                .memory = driver_config_get_u64(config, "memory", QEMU_DEFAULT_MEMORY),
                .cpus = driver_config_get_u64(config, "cpus", QEMU_DEFAULT_CPUS),
                .stop_timeout_usec = driver_config_get_u64(config, "stop_timeout", QEMU_DEFAULT_STOP_TIMEOUT),
                .log_size = driver_config_get_u64(config, "log_size", QEMU_DEFAULT_LOG_SIZE),
        };
}

int qemu_options_verify(const QemuOptions *o, const char **ret_error) {
        const char *e = NULL;

        if (!o->kernel && !o->disk)
                e = "nothing to boot: set kernel or disk";
        else if (o->initrd && !o->kernel)
                e = "initrd needs kernel";
        else if (o->append && !o->kernel)
                e = "append needs kernel";
        else if (o->disk_size_set && !o->disk)
                e = "disk_size needs disk";
        else if (o->disk_size_set && o->disk_size == 0)
                e = "disk_size must not be 0";
        else if (o->binary[0] == '\0')
                e = "binary must not be empty";
        else if (o->memory < QEMU_MEMORY_MIN || o->memory % (UINT64_C(1) << 20) != 0 ||
                 o->memory > (UINT64_C(1) << 40))
                e = "memory must be a whole number of MiB between 16MiB and 1TiB";
        else if (o->cpus < 1 || o->cpus > QEMU_CPUS_MAX)
                e = "cpus must be between 1 and 64";
        else if (o->stop_timeout_usec == 0)
                e = "stop_timeout must not be 0";
        else if (o->log_size == 0 || o->log_size > (UINT64_C(1) << 30))
                e = "log_size must be between 1 byte and 1GiB";

        if (e) {
                *ret_error = e;
                return -EINVAL;
        }
        return 0;
}

char **qemu_strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

/* QEMU splits option values at commas; a literal comma is written twice. */
static char *qemu_escape_commas(const char *s) {
        size_t n = strlen(s), extra = 0;
        char *r, *p;

        for (const char *i = s; *i; i++)
                extra += *i == ',';
        r = malloc(n + extra + 1);
        if (!r)
                return NULL;
        p = r;
        for (const char *i = s; *i; i++) {
                *p++ = *i;
                if (*i == ',')
                        *p++ = ',';
        }
        *p = '\0';
        return r;
}

typedef struct Argv {
        char **l;
        size_t n;
        bool oom;
} Argv;

static void argv_add(Argv *a, const char *s) {
        char **l;

        if (a->oom)
                return;
        l = reallocarray(a->l, a->n + 2, sizeof *l);
        if (!l)
                goto oom;
        a->l = l;
        a->l[a->n] = s ? strdup(s) : NULL;
        if (!a->l[a->n])
                goto oom;
        a->l[++a->n] = NULL;
        return;
oom:
        a->oom = true;
}

static void argv_addf(Argv *a, const char *format, ...) _printf_(2, 3);
static void argv_addf(Argv *a, const char *format, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int k;

        va_start(ap, format);
        k = vasprintf(&s, format, ap);
        va_end(ap);
        if (k < 0) {
                s = NULL;
                a->oom = true;
                return;
        }
        argv_add(a, s);
}

int qemu_command_build(const QemuOptions *o, char ***ret) {
        Argv a = {};

        argv_add(&a, o->binary);
        /* No KVM on the lab hosts this is made for; TCG works everywhere. -no-reboot: a reboot
         * of the guest ends QEMU, which the driver reports as power off. */
        argv_add(&a, "-accel");
        argv_add(&a, "tcg");
        argv_add(&a, "-nographic");
        argv_add(&a, "-nodefaults");
        argv_add(&a, "-no-user-config");
        argv_add(&a, "-no-reboot");
        argv_add(&a, "-m");
        argv_addf(&a, "%" PRIu64 "M", o->memory >> 20);
        argv_add(&a, "-smp");
        argv_addf(&a, "%" PRIu64, o->cpus);
        /* The console is a socket the daemon already holds: no path to race for, no pty of
         * QEMU's to find, and non-blocking on our side. */
        argv_add(&a, "-chardev");
        argv_addf(&a, "socket,id=console,fd=%d", QEMU_CONSOLE_FD);
        argv_add(&a, "-serial");
        argv_add(&a, "chardev:console");
        /* QMP tells when the machine is up (power on returns then) and why it failed. */
        argv_add(&a, "-chardev");
        argv_addf(&a, "socket,id=qmp,fd=%d", QEMU_QMP_FD);
        argv_add(&a, "-mon");
        argv_add(&a, "chardev=qmp,mode=control");
        if (o->kernel) {
                argv_add(&a, "-kernel");
                argv_add(&a, o->kernel);
        }
        if (o->initrd) {
                argv_add(&a, "-initrd");
                argv_add(&a, o->initrd);
        }
        if (o->append) {
                argv_add(&a, "-append");
                argv_add(&a, o->append);
        }
        if (o->disk) {
                _cleanup_free_ char *escaped = qemu_escape_commas(o->disk);

                if (!escaped)
                        a.oom = true;
                else {
                        argv_add(&a, "-drive");
                        argv_addf(&a, "file=%s,format=raw,if=virtio", escaped);
                }
        }

        if (a.oom) {
                qemu_strv_free(a.l);
                return -ENOMEM;
        }
        *ret = a.l;
        return 0;
}
