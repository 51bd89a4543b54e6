/* Which serial port a serialport driver means: by path, USB serial number or USB vid:pid */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "serialport-match.h"

int serialport_parse_vid_pid(const char *s, int *ret_vid, int *ret_pid) {
        unsigned vid, pid;
        int n = 0;

        if (!s || strlen(s) != 9 || s[4] != ':' || strspn(s, "0123456789abcdefABCDEF:") != 9)
                return -EINVAL;
        if (sscanf(s, "%4x:%4x%n", &vid, &pid, &n) != 2 || n != 9)
                return -EINVAL;
        *ret_vid = (int) vid;
        *ret_pid = (int) pid;
        return 0;
}

static int port_matches(const SerialPortMatch *m, const SerialPortInfo *p) {
        if (m->path && !streq_ptr(m->path, p->name))
                return 0;
        if (m->usb_serial && !streq_ptr(m->usb_serial, p->usb_serial))
                return 0;
        if (m->vid >= 0 && (p->vid != m->vid || p->pid != m->pid))
                return 0;
        return 1;
}

int serialport_match_find(const SerialPortMatch *m, const SerialPortInfo *ports, size_t n) {
        int found = -ENOENT;

        for (size_t i = 0; i < n; i++)
                if (port_matches(m, &ports[i])) {
                        if (found >= 0)
                                return -ENOTUNIQ;
                        found = (int) i;
                }
        return found;
}
