/* Serial console on a USB or UART port found with libserialport */
#include <libserialport.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon-util.h"
#include "log.h"
#include "macro.h"
#include "serialport-match.h"
#include "tty-serial.h"

static int serialport_match_from_config(const DriverConfig *c, SerialPortMatch *ret) {
        *ret = (SerialPortMatch) {
                .path = driver_config_get_string(c, "path"),
                .usb_serial = driver_config_get_string(c, "usb_serial"),
                .vid = -1,
                .pid = -1,
        };
        if (driver_config_is_set(c, "usb_vid_pid"))
                return serialport_parse_vid_pid(driver_config_get_string(c, "usb_vid_pid"), &ret->vid, &ret->pid);
        return 0;
}

/* Enumerates the ports again on every (re)open: a USB adapter may come back under another name. */
static int serialport_resolve(const DriverConfig *c, char **ret_path) {
        struct sp_port **list = NULL;
        SerialPortInfo *infos = NULL;
        SerialPortMatch m;
        size_t n = 0;
        int r;

        r = serialport_match_from_config(c, &m);
        if (r < 0)
                return r;
        /* A path names the device itself: nothing to look up (and libserialport lists only
         * devices with a /sys/class/tty entry of a real port). */
        if (m.path) {
                *ret_path = strdup(m.path);
                return *ret_path ? 0 : -ENOMEM;
        }

        if (sp_list_ports(&list) != SP_OK)
                return -EIO;
        while (list[n])
                n++;
        infos = calloc(MAX(n, (size_t) 1), sizeof *infos);
        if (!infos) {
                sp_free_port_list(list);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                infos[i] = (SerialPortInfo) { .name = sp_get_port_name(list[i]), .vid = -1, .pid = -1 };
                if (sp_get_port_transport(list[i]) == SP_TRANSPORT_USB) {
                        infos[i].usb_serial = sp_get_port_usb_serial(list[i]);
                        if (sp_get_port_usb_vid_pid(list[i], &infos[i].vid, &infos[i].pid) != SP_OK)
                                infos[i].vid = infos[i].pid = -1;
                }
        }
        r = serialport_match_find(&m, infos, n);
        if (r >= 0) {
                *ret_path = strdup(infos[r].name);
                r = *ret_path ? 0 : -ENOMEM;
        }
        free(infos);
        sp_free_port_list(list);
        return r;
}

static int serialport_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        _cleanup_free_ char *label = NULL;
        SerialPortMatch m;
        SerialLine line;
        unsigned n_ways;
        Tty *t;
        int r;

        r = serial_line_from_config(config, ctx->dut_name, &line);
        if (r < 0)
                return r;
        n_ways = driver_config_is_set(config, "path") +
                 (driver_config_is_set(config, "usb_serial") || driver_config_is_set(config, "usb_vid_pid"));
        if (n_ways != 1)
                return log_dut_prefix(LOG_ERR, EINVAL, ctx->dut_name,
                                      "serialport: set either path, or usb_serial and/or usb_vid_pid");
        r = serialport_match_from_config(config, &m);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, ctx->dut_name,
                                      "serialport: usb_vid_pid: \"%s\" is not VID:PID in hex, e.g. 0403:6001",
                                      driver_config_get_string(config, "usb_vid_pid"));

        if (m.path)
                label = strdup(m.path);
        else if (asprintf(&label, "%s%s%s%s", m.usb_serial ? "usb_serial=" : "", strempty(m.usb_serial),
                          m.usb_serial && m.vid >= 0 ? " usb_vid_pid=" : m.vid >= 0 ? "usb_vid_pid=" : "",
                          m.vid >= 0 ? driver_config_get_string(config, "usb_vid_pid") : "") < 0)
                label = NULL;
        if (!label)
                return log_oom();

        r = tty_new_full(config, ctx, &line, serialport_resolve, true, label, &t);
        if (r < 0)
                return r;
        *ret = t;
        return 0;
}

const Driver driver_serialport = {
        .name = "serialport",
        .new = serialport_new,
        .free = tty_free,
        .serial = &tty_serial_ops,
};
