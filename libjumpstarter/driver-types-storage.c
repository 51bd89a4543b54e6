/* Driver types of the storage family, with their options */
#include <stddef.h>

#include "config.h"

static const OptionSpec file_options[] = {
        { "path", OPTION_PATH, true, "image file; relative paths are relative to the config file" },
        { "size", OPTION_SIZE, false, "create the file with this size if missing, or grow it to it" },
        {}
};

static const DriverType driver_type_file = {
        .name = "file",
        .classes = 1U << DRIVER_CLASS_STORAGE,
        .options = file_options,
        .help = "storage backed by an image file",
};

const DriverType *const driver_types_storage[] = {
        &driver_type_file,
        NULL,
};
