/* Storage mux: what hands a card to the host or to the DUT (a command or a GPIO line), off the event loop */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef enum StorageMuxSide {
        STORAGE_MUX_HOST,
        STORAGE_MUX_DUT,
        _STORAGE_MUX_SIDE_MAX,
        _STORAGE_MUX_SIDE_INVALID = -EINVAL,
} StorageMuxSide;

typedef struct StorageMux StorageMux;
struct GpioLineOptions;
/* r is 0 when the switch is done (the command exited 0), -EIO when it failed or timed out (the log
 * says which). */
typedef void (*StorageMuxDoneFunc)(int r, void *userdata);

const char *storage_mux_side_to_string(StorageMuxSide s);

/* argv[side] is the command line for each side (copied); argv[x][0] without a slash is looked
 * up in PATH. Nothing of it comes from a client. */
int storage_mux_new(sd_event *event, const char *dut, char *const *argv[_STORAGE_MUX_SIDE_MAX],
                    uint64_t timeout_usec, StorageMux **ret);
/* A mux on a GPIO line (o->initial is ignored: the line is requested as it is): the host side is
 * the line at host_value, the DUT side the other value. Logs its errors (see gpio_line_open()). */
int storage_mux_new_gpio(sd_event *event, const char *dut, const struct GpioLineOptions *o, bool host_value,
                         StorageMux **ret);
/* Kills a command that still runs; its done is not called. */
StorageMux *storage_mux_free(StorageMux *m);

/* Starts the switch to side (runs its command, or sets the line). Returns 0 and calls done later
 * (never from within), -EBUSY while another switch runs, or a negative errno (-EIO, logged) when
 * the command cannot be started or the line cannot be set. */
int storage_mux_switch(StorageMux *m, StorageMuxSide side, StorageMuxDoneFunc done, void *userdata);
