/* QEMU virtual machine as a DUT: power starts and stops the VM, serial is its console, storage its disk */
#pragma once

#include "driver.h"
#include "qemu-command.h"

typedef struct Qemu Qemu;

/* Checks the options and the files they name, and opens (or creates) the disk image. Logs its errors. */
int qemu_new(const QemuOptions *o, const DriverContext *ctx, Qemu **ret);

extern const Driver driver_qemu;
