/* Tests of the QEMU driver's options and command line */
#include <stdio.h>

#include "config.h"
#include "qemu-command.h"
#include "tests.h"

static QemuOptions defaults(void) {
        return (QemuOptions) {
                .binary = QEMU_DEFAULT_BINARY,
                .kernel = "/k/vmlinuz",
                .memory = QEMU_DEFAULT_MEMORY,
                .cpus = QEMU_DEFAULT_CPUS,
                .stop_timeout_usec = QEMU_DEFAULT_STOP_TIMEOUT,
                .log_size = QEMU_DEFAULT_LOG_SIZE,
        };
}

static char *join(char **argv) {
        size_t n = 1;
        char *s;

        for (char **a = argv; *a; a++)
                n += strlen(*a) + 1;
        s = calloc(1, n);
        ASSERT_TRUE(s);
        for (char **a = argv; *a; a++) {
                if (a != argv)
                        strcat(s, " ");
                strcat(s, *a);
        }
        return s;
}

TEST(command_minimal) {
        QemuOptions o = defaults();
        char **argv = NULL, *s;

        ASSERT_OK(qemu_command_build(&o, &argv));
        s = join(argv);
        ASSERT_STREQ(s, "qemu-system-x86_64 -accel tcg -nographic -nodefaults -no-user-config -no-reboot -m 256M "
                        "-smp 1 -chardev socket,id=console,fd=3 -serial chardev:console "
                        "-chardev socket,id=qmp,fd=4 -mon chardev=qmp,mode=control -kernel /k/vmlinuz");
        free(s);
        qemu_strv_free(argv);
}

TEST(command_full) {
        QemuOptions o = defaults();
        char **argv = NULL, *s;

        o.binary = "/opt/qemu/bin/qemu-system-x86_64";
        o.initrd = "/k/initrd.gz";
        /* One argument each, whatever they contain: no shell, no splitting. */
        o.append = "console=ttyS0 quiet root=/dev/vda rw";
        o.disk = "/images/a,b.img";
        o.memory = UINT64_C(1) << 30;
        o.cpus = 2;
        ASSERT_OK(qemu_command_build(&o, &argv));
        s = join(argv);
        ASSERT_CONTAINS(s, " -m 1024M -smp 2 ");
        ASSERT_CONTAINS(s, " -initrd /k/initrd.gz ");
        ASSERT_CONTAINS(s, " -drive file=/images/a,,b.img,format=raw,if=virtio");
        ASSERT_STREQ(argv[0], "/opt/qemu/bin/qemu-system-x86_64");
        for (size_t i = 0; argv[i]; i++)
                if (strcmp(argv[i], "-append") == 0)
                        ASSERT_STREQ(argv[i + 1], "console=ttyS0 quiet root=/dev/vda rw");
        free(s);
        qemu_strv_free(argv);
}

TEST(command_disk_only) {
        QemuOptions o = defaults();
        char **argv = NULL, *s;

        o.kernel = NULL;
        o.disk = "/d.img";
        ASSERT_OK(qemu_command_build(&o, &argv));
        s = join(argv);
        ASSERT_TRUE(!strstr(s, "-kernel"));
        ASSERT_CONTAINS(s, "-drive file=/d.img,format=raw,if=virtio");
        free(s);
        qemu_strv_free(argv);
}

static void expect_invalid(QemuOptions o, const char *message) {
        const char *error = NULL;

        ASSERT_EQ(qemu_options_verify(&o, &error), -EINVAL);
        ASSERT_CONTAINS(error, message);
}

TEST(verify) {
        QemuOptions o = defaults();
        const char *error = NULL;

        ASSERT_OK(qemu_options_verify(&o, &error));

        o = defaults();
        o.kernel = NULL;
        expect_invalid(o, "set kernel or disk");
        o.initrd = "/i";
        o.disk = "/d";
        expect_invalid(o, "initrd needs kernel");
        o.initrd = NULL;
        o.append = "console=ttyS0";
        expect_invalid(o, "append needs kernel");

        o = defaults();
        o.disk_size_set = true;
        o.disk_size = 1 << 20;
        expect_invalid(o, "disk_size needs disk");

        o = defaults();
        o.memory = 8 << 20;
        expect_invalid(o, "memory");
        o.memory = (256 << 20) + 4096;
        expect_invalid(o, "whole number of MiB");

        o = defaults();
        o.cpus = 0;
        expect_invalid(o, "cpus");
        o.cpus = 65;
        expect_invalid(o, "cpus");

        o = defaults();
        o.stop_timeout_usec = 0;
        expect_invalid(o, "stop_timeout");

        o = defaults();
        o.binary = "";
        expect_invalid(o, "binary");
}

TEST(from_config) {
        static const char yaml[] =
                "apiVersion: jumpstarter.dev/v1alpha1\n"
                "kind: ExporterConfig\n"
                "metadata:\n"
                "  name: test\n"
                "export:\n"
                "  vm1:\n"
                "    type: qemu\n"
                "    config:\n"
                "      kernel: vmlinuz\n"
                "      append: console=ttyS0\n"
                "      memory: 512MiB\n"
                "      cpus: 2\n"
                "      stop_timeout: 300ms\n";
        ExporterConfig *c = NULL;
        char *error = NULL;
        const DutConfig *d;
        QemuOptions o;

        ASSERT_OK(exporter_config_parse("/etc/jmp/exporter.yaml", yaml, strlen(yaml), &c, &error));
        d = exporter_config_find_dut(c, "vm1");
        ASSERT_TRUE(d);
        ASSERT_TRUE(d->classes[DRIVER_CLASS_POWER] == d->classes[DRIVER_CLASS_SERIAL]);
        ASSERT_TRUE(d->classes[DRIVER_CLASS_STORAGE] == d->classes[DRIVER_CLASS_SERIAL]);
        qemu_options_from_config(&o, d->classes[DRIVER_CLASS_POWER]);
        ASSERT_STREQ(o.binary, "qemu-system-x86_64");
        ASSERT_STREQ(o.kernel, "/etc/jmp/vmlinuz");
        ASSERT_STREQ(o.append, "console=ttyS0");
        ASSERT_TRUE(!o.initrd && !o.disk && !o.disk_size_set);
        ASSERT_EQ_U(o.memory, UINT64_C(512) << 20);
        ASSERT_EQ_U(o.cpus, 2);
        ASSERT_EQ_U(o.stop_timeout_usec, 300 * 1000);
        ASSERT_EQ_U(o.log_size, QEMU_DEFAULT_LOG_SIZE);
        exporter_config_free(c);
}

TEST(config_rejects_unknown_options) {
        static const char yaml[] =
                "apiVersion: jumpstarter.dev/v1alpha1\n"
                "kind: ExporterConfig\n"
                "metadata:\n"
                "  name: test\n"
                "export:\n"
                "  vm1:\n"
                "    type: qemu\n"
                "    config:\n"
                "      kernel: vmlinuz\n"
                "      extra_args: -device foo\n";
        ExporterConfig *c = NULL;
        char *error = NULL;

        ASSERT_EQ(exporter_config_parse("/x.yaml", yaml, strlen(yaml), &c, &error), -EINVAL);
        ASSERT_CONTAINS(error, "/x.yaml:10:");
        ASSERT_CONTAINS(error, "extra_args");
        free(error);
}

TEST_MAIN();
