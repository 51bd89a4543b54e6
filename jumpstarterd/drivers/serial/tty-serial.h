/* Serial console on a terminal device: termios, reopened with backoff when it vanishes */
#pragma once

#include "driver.h"
#include "serial-line.h"

typedef struct Tty Tty;

/* Finds the device to open; returns -ENOENT (and logs nothing) while it is not there. */
typedef int (*TtyResolveFunc)(const DriverConfig *config, char **ret_path);

/* The engine behind the tty and serialport drivers. resolve may be NULL (the config's "path" is
 * the device). exclusive: TIOCEXCL as well as flock(), for real ports. label names the port in
 * messages while it is not found. */
int tty_new_full(const DriverConfig *config, const DriverContext *ctx, const SerialLine *line,
                 TtyResolveFunc resolve, bool exclusive, const char *label, Tty **ret);
void *tty_free(void *instance);

extern const SerialDriverOps tty_serial_ops;
extern const Driver driver_tty;
