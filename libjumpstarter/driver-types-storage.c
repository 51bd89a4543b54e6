/* Driver types of the storage family, with their options */
#include <stddef.h>

#include "config.h"

/* A mux is a driver type of its own that wraps the storage's path, rather than options of "file":
 * then the parser checks what each mux needs (usbsdmux's device, sdwire's serial) with a
 * FILE:LINE:COLUMN error, before anything starts. */

#define STORAGE_PATH_OPTIONS(what)                                                                      \
        { "path", OPTION_PATH, true, what "; relative paths are relative to the config file" },         \
        { "size", OPTION_SIZE, false, "create the file with this size if missing, or grow it to it" }

#define MUX_TIMEOUT_OPTION \
        { "timeout", OPTION_DURATION, false, "how long a switch of the mux may take (default 10s)" }

static const OptionSpec file_options[] = {
        STORAGE_PATH_OPTIONS("image file or block device"),
        {}
};

static const DriverType driver_type_file = {
        .name = "file",
        .classes = 1U << DRIVER_CLASS_STORAGE,
        .options = file_options,
        .help = "storage backed by an image file or a block device",
};

static const OptionSpec usbsdmux_options[] = {
        STORAGE_PATH_OPTIONS("the card's block device while the mux gives it to the host"),
        { "device", OPTION_PATH, true, "the mux's SCSI generic device (/dev/sg0, or a /dev/usb-sd-mux/ link)" },
        { "command", OPTION_PATH, false, "the usbsdmux program (default: usbsdmux from PATH)" },
        MUX_TIMEOUT_OPTION,
        {}
};

static const DriverType driver_type_usbsdmux = {
        .name = "usbsdmux",
        .classes = 1U << DRIVER_CLASS_STORAGE,
        .options = usbsdmux_options,
        .help = "an SD card behind a Linux Automation USB-SD-Mux (usbsdmux DEVICE host|dut)",
};

static const OptionSpec sdwire_options[] = {
        STORAGE_PATH_OPTIONS("the card's block device while the mux gives it to the host"),
        { "serial", OPTION_STRING, true, "the SDWire's USB serial number" },
        { "command", OPTION_PATH, false, "the sd-mux-ctrl program (default: sd-mux-ctrl from PATH)" },
        MUX_TIMEOUT_OPTION,
        {}
};

static const DriverType driver_type_sdwire = {
        .name = "sdwire",
        .classes = 1U << DRIVER_CLASS_STORAGE,
        .options = sdwire_options,
        .help = "an SD card behind an SDWire (sd-mux-ctrl --device-serial=SERIAL --ts|--dut)",
};

static const OptionSpec mux_command_options[] = {
        STORAGE_PATH_OPTIONS("the storage while the mux gives it to the host"),
        { "host", OPTION_ARGV, true, "command that hands the storage to the host (never run by a shell)" },
        { "dut", OPTION_ARGV, true, "command that hands the storage to the DUT (never run by a shell)" },
        MUX_TIMEOUT_OPTION,
        {}
};

static const DriverType driver_type_mux_command = {
        .name = "mux-command",
        .classes = 1U << DRIVER_CLASS_STORAGE,
        .options = mux_command_options,
        .help = "storage behind a mux that two commands switch",
};

static const OptionSpec mux_gpio_options[] = {
        STORAGE_PATH_OPTIONS("the storage while the mux gives it to the host"),
        { "chip", OPTION_STRING, true,
          "GPIO chip as gpiod_chip_open_lookup() takes it: name (gpiochip0), number (0), path "
          "(/dev/gpiochip0) or label" },
        { "line", OPTION_UINT, true, "offset of the line that switches the mux" },
        { "active_low", OPTION_BOOL, false, "the line is active when low: 1 drives it low (default false)" },
        { "host_value", OPTION_UINT, false, "0 or 1: the (logical) line value that connects the card to the host (default 1)",
          .max = 1 },
        { "consumer", OPTION_STRING, false, "consumer label the kernel shows for the line (default jumpstarter)" },
        { "timeout", OPTION_DURATION, false, "how long the card may take to appear on the host (default 10s)" },
        {}
};

static const DriverType driver_type_mux_gpio = {
        .name = "mux-gpio",
        .classes = 1U << DRIVER_CLASS_STORAGE,
        .options = mux_gpio_options,
        .help = "storage behind a mux that a GPIO line switches",
};

const DriverType *const driver_types_storage[] = {
        &driver_type_file,
        &driver_type_usbsdmux,
        &driver_type_sdwire,
        &driver_type_mux_command,
        &driver_type_mux_gpio,
        NULL,
};
