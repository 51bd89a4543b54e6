/* Which serial port a serialport driver means: by path, USB serial number or USB vid:pid */
#pragma once

#include <stddef.h>

typedef struct SerialPortInfo {
        const char *name;       /* "/dev/ttyUSB0" */
        const char *usb_serial; /* NULL when not USB or unknown */
        int vid, pid;           /* -1 when not USB */
} SerialPortInfo;

typedef struct SerialPortMatch {
        const char *path;
        const char *usb_serial;
        int vid, pid; /* -1: any */
} SerialPortMatch;

/* "0403:6001" (hex, as lsusb prints it). -EINVAL when malformed. */
int serialport_parse_vid_pid(const char *s, int *ret_vid, int *ret_pid);

/* The index of the one port that matches; -ENOENT when none does, -ENOTUNIQ when several do
 * (the config must then say which, e.g. by usb_serial). */
int serialport_match_find(const SerialPortMatch *m, const SerialPortInfo *ports, size_t n);
