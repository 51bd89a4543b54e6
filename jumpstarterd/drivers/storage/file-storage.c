/* Storage backed by an image file or block device */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "daemon-util.h"
#include "driver.h"
#include "block-mount.h"
#include "file-storage.h"
#include "gpio-drivers.h"
#include "gpio-line.h"
#include "log.h"
#include "macro.h"
#include "storage-mux.h"

typedef struct FileStorage {
        sd_event *event;
        char *dut;
        char *path;
        int fd; /* -EBADF for a muxed card that is not there yet */
        uint64_t size;
        StorageMux *mux;
        uint64_t timeout_usec;

        /* A switch to the host under way: the card's device node may appear some time after the
         * mux command exits (USB enumeration, udev), so it is waited for. */
        StorageDoneFunc done;
        void *userdata;
        uint64_t appear_deadline;
        sd_event_source *appear_source;
} FileStorage;

int file_storage_open(const char *dut, const char *path, bool want_size, uint64_t size,
                      int *ret_fd, uint64_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        uint64_t device_size;

        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | (want_size ? O_CREAT : 0), 0644);
        if (fd < 0) {
                if (errno == ENOENT)
                        return log_dut_prefix(LOG_ERR, errno, dut,
                                              "Storage file %s does not exist; create it or set the driver's size option",
                                              path);
                return log_dut_prefix(LOG_ERR, errno, dut, "Failed to open storage file %s: %m", path);
        }
        if (fstat(fd, &st) < 0)
                return log_dut_prefix(LOG_ERR, errno, dut, "Failed to stat storage file %s: %m", path);

        if (S_ISBLK(st.st_mode)) {
                if (ioctl(fd, BLKGETSIZE64, &device_size) < 0)
                        return log_dut_prefix(LOG_ERR, errno, dut, "Failed to get the size of block device %s: %m",
                                              path);
                if (want_size && size > device_size)
                        return log_dut_prefix(LOG_ERR, ENOSPC, dut,
                                              "Block device %s has %" PRIu64 " bytes, less than size %" PRIu64,
                                              path, device_size, size);
        } else if (S_ISREG(st.st_mode)) {
                device_size = (uint64_t) st.st_size;
                if (want_size && device_size < size) {
                        /* Grows sparse: an image of many GiB costs nothing until written. */
                        if (ftruncate(fd, (off_t) size) < 0)
                                return log_dut_prefix(LOG_ERR, errno, dut,
                                                      "Failed to grow storage file %s to %" PRIu64 " bytes: %m",
                                                      path, size);
                        device_size = size;
                } else if (want_size && device_size > size)
                        log_dut_prefix(LOG_NOTICE, 0, dut,
                                       "Storage file %s is larger than size %" PRIu64 "; using its size %" PRIu64,
                                       path, size, device_size);
        } else
                return log_dut_prefix(LOG_ERR, EINVAL, dut, "Storage %s is neither a regular file nor a block device",
                                      path);

        *ret_fd = TAKE_FD(fd);
        *ret_size = device_size;
        return 0;
}

int file_storage_reopen(int fd, bool writable) {
        char path[sizeof("/proc/self/fd/") + 12];
        int r;

        snprintf(path, sizeof path, "/proc/self/fd/%i", fd);
        r = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
        if (r < 0)
                return negative_errno();
        return r;
}

int file_storage_check_unmounted(const char *dut, int fd, const char *path) {
        _cleanup_free_ char *where = NULL;
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return log_dut_prefix(LOG_ERR, errno, dut, "Failed to stat storage %s: %m", path);
        if (!S_ISBLK(st.st_mode))
                return 0;
        /* Writing under a mounted file system corrupts it, and the kernel does not stop us. */
        r = block_device_find_mount("/sys", "/proc/self/mountinfo", st.st_rdev, &where);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, dut, "Failed to check whether %s is mounted: %m", path);
        if (r > 0)
                return log_dut_prefix(LOG_ERR, EBUSY, dut,
                                      "Block device %s (or a partition of it) is mounted at %s on this host; not writing it",
                                      path, where);
        return 0;
}

/* The drivers of this file: "file", and the muxes that wrap a path. */
typedef enum FileStorageKind {
        FILE_STORAGE_PLAIN,
        FILE_STORAGE_USBSDMUX,
        FILE_STORAGE_SDWIRE,
        FILE_STORAGE_MUX_COMMAND,
        FILE_STORAGE_MUX_GPIO,
} FileStorageKind;

static void *file_free(void *instance);

static int file_mux_new(FileStorage *f, const DriverConfig *config, const DriverContext *ctx,
                        FileStorageKind kind) {
        const char *command, *device, *serial;
        _cleanup_free_ char *serial_arg = NULL;
        char *const *argv[_STORAGE_MUX_SIDE_MAX];
        GpioLineOptions line;
        uint64_t host_value;
        int r;

        switch (kind) {
        case FILE_STORAGE_USBSDMUX:
                command = driver_config_get_string(config, "command") ?: "usbsdmux";
                device = driver_config_get_string(config, "device");
                argv[STORAGE_MUX_HOST] = (char *const[]) { (char *) command, (char *) device, (char *) "host", NULL };
                argv[STORAGE_MUX_DUT] = (char *const[]) { (char *) command, (char *) device, (char *) "dut", NULL };
                r = storage_mux_new(ctx->event, ctx->dut_name, argv, f->timeout_usec, &f->mux);
                break;
        case FILE_STORAGE_SDWIRE:
                command = driver_config_get_string(config, "command") ?: "sd-mux-ctrl";
                serial = driver_config_get_string(config, "serial");
                if (asprintf(&serial_arg, "--device-serial=%s", serial) < 0)
                        return log_oom();
                argv[STORAGE_MUX_HOST] = (char *const[]) { (char *) command, serial_arg, (char *) "--ts", NULL };
                argv[STORAGE_MUX_DUT] = (char *const[]) { (char *) command, serial_arg, (char *) "--dut", NULL };
                r = storage_mux_new(ctx->event, ctx->dut_name, argv, f->timeout_usec, &f->mux);
                break;
        case FILE_STORAGE_MUX_COMMAND:
                argv[STORAGE_MUX_HOST] = driver_config_get_strv(config, "host");
                argv[STORAGE_MUX_DUT] = driver_config_get_strv(config, "dut");
                r = storage_mux_new(ctx->event, ctx->dut_name, argv, f->timeout_usec, &f->mux);
                break;
        case FILE_STORAGE_MUX_GPIO:
                host_value = driver_config_get_u64(config, "host_value", 1);
                if (host_value > 1)
                        return log_dut_prefix(LOG_ERR, EINVAL, ctx->dut_name,
                                              "mux-gpio: host_value must be 0 or 1, not %" PRIu64, host_value);
                r = gpio_line_options_from_config(config, ctx->dut_name, &line);
                if (r < 0)
                        return r;
                r = storage_mux_new_gpio(ctx->event, ctx->dut_name, &line, host_value, &f->mux);
                break;
        default:
                return 0;
        }
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, ctx->dut_name, "Failed to set up the storage mux: %m");
        return 0;
}

static int file_new_kind(const DriverConfig *config, const DriverContext *ctx, FileStorageKind kind, void **ret) {
        FileStorage *f;
        const char *path = driver_config_get_string(config, "path");
        bool want_size = driver_config_is_set(config, "size");
        uint64_t size = driver_config_get_u64(config, "size", 0);
        int r;

        f = calloc(1, sizeof *f);
        if (!f)
                return log_oom();
        f->fd = -EBADF;
        f->event = sd_event_ref(ctx->event);
        f->timeout_usec = kind == FILE_STORAGE_PLAIN ? 0 : driver_config_get_u64(config, "timeout", 10 * USEC_PER_SEC);
        f->dut = strdup(ctx->dut_name);
        f->path = strdup(path);
        if (!f->dut || !f->path) {
                file_free(f);
                return log_oom();
        }

        if (kind != FILE_STORAGE_PLAIN && access(path, F_OK) < 0 && errno == ENOENT) {
                /* A card behind a mux shows up on the host only while the mux gives it to the host;
                 * a missing path is never created (it would be a file in /dev). */
                log_dut_prefix(LOG_NOTICE, 0, ctx->dut_name,
                               "Storage %s is not there yet; expecting it when the mux switches to the host", path);
                f->size = size;
        } else {
                r = file_storage_open(ctx->dut_name, path, want_size, size, &f->fd, &f->size);
                if (r < 0) {
                        file_free(f);
                        return r;
                }
        }

        r = file_mux_new(f, config, ctx, kind);
        if (r < 0) {
                file_free(f);
                return r;
        }
        *ret = f;
        return 0;
}

static int file_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        return file_new_kind(config, ctx, FILE_STORAGE_PLAIN, ret);
}
static int usbsdmux_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        return file_new_kind(config, ctx, FILE_STORAGE_USBSDMUX, ret);
}
static int sdwire_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        return file_new_kind(config, ctx, FILE_STORAGE_SDWIRE, ret);
}
static int mux_command_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        return file_new_kind(config, ctx, FILE_STORAGE_MUX_COMMAND, ret);
}
static int mux_gpio_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        return file_new_kind(config, ctx, FILE_STORAGE_MUX_GPIO, ret);
}

static void *file_free(void *instance) {
        FileStorage *f = instance;

        if (!f)
                return NULL;
        sd_event_source_disable_unref(f->appear_source);
        storage_mux_free(f->mux);
        safe_close(f->fd);
        free(f->path);
        free(f->dut);
        sd_event_unref(f->event);
        free(f);
        return NULL;
}

static uint64_t file_size(void *instance) {
        FileStorage *f = instance;
        return f->size;
}

static int file_open(void *instance, bool writable) {
        FileStorage *f = instance;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (!f->mux)
                fd = file_storage_reopen(f->fd, writable);
        else {
                /* By name: the device node of a card may be a new one after each switch. */
                fd = open(f->path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        fd = log_dut_prefix(LOG_ERR, errno, f->dut, "Failed to open storage %s: %m", f->path);
        }
        if (fd < 0)
                return fd;

        if (writable) {
                r = file_storage_check_unmounted(f->dut, fd, f->path);
                if (r < 0)
                        return r;
        }
        if (f->mux && fstat(fd, &st) >= 0) {
                uint64_t size = 0;

                if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) >= 0)
                        f->size = size;
                else if (S_ISREG(st.st_mode))
                        f->size = (uint64_t) st.st_size;
        }
        return TAKE_FD(fd);
}

static void file_attach_finish(FileStorage *f, int r) {
        StorageDoneFunc done = f->done;
        void *userdata = f->userdata;

        f->appear_source = sd_event_source_disable_unref(f->appear_source);
        f->done = NULL;
        f->userdata = NULL;
        done(r, userdata);
}

static int file_on_appear_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        FileStorage *f = userdata;

        if (access(f->path, F_OK) >= 0)
                return file_attach_finish(f, 0), 0;
        if (usec >= f->appear_deadline) {
                log_dut_prefix(LOG_ERR, ENODEV, f->dut, "Storage %s did not appear after the mux switched to the host",
                               f->path);
                return file_attach_finish(f, -EIO), 0;
        }
        (void) sd_event_source_set_time_relative(s, 100 * USEC_PER_MSEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static void file_on_switched_to_host(int r, void *userdata) {
        FileStorage *f = userdata;

        if (r < 0 || access(f->path, F_OK) >= 0)
                return file_attach_finish(f, r);

        r = sd_event_now(f->event, CLOCK_MONOTONIC, &f->appear_deadline);
        if (r < 0)
                return file_attach_finish(f, r);
        f->appear_deadline += f->timeout_usec;
        r = sd_event_add_time_relative(f->event, &f->appear_source, CLOCK_MONOTONIC,
                                       100 * USEC_PER_MSEC, 0, file_on_appear_timer, f);
        if (r < 0)
                return file_attach_finish(f, r);
}

static int file_attach(void *instance, StorageDoneFunc done, void *userdata) {
        FileStorage *f = instance;
        int r;

        if (!f->mux)
                return 1;
        r = storage_mux_switch(f->mux, STORAGE_MUX_HOST, file_on_switched_to_host, f);
        if (r < 0)
                return r;
        f->done = done;
        f->userdata = userdata;
        return 0;
}

static int file_detach(void *instance, StorageDoneFunc done, void *userdata) {
        FileStorage *f = instance;

        if (!f->mux)
                return 1;
        return storage_mux_switch(f->mux, STORAGE_MUX_DUT, done, userdata);
}

static const StorageDriverOps file_storage_ops = {
        .size = file_size,
        .open = file_open,
};

/* The same file, behind a mux. */
static const StorageDriverOps muxed_storage_ops = {
        .size = file_size,
        .open = file_open,
        .attach = file_attach,
        .detach = file_detach,
};

const Driver driver_file = {
        .name = "file",
        .new = file_new,
        .free = file_free,
        .storage = &file_storage_ops,
};

const Driver driver_usbsdmux = {
        .name = "usbsdmux",
        .new = usbsdmux_new,
        .free = file_free,
        .storage = &muxed_storage_ops,
};

const Driver driver_sdwire = {
        .name = "sdwire",
        .new = sdwire_new,
        .free = file_free,
        .storage = &muxed_storage_ops,
};

const Driver driver_mux_command = {
        .name = "mux-command",
        .new = mux_command_new,
        .free = file_free,
        .storage = &muxed_storage_ops,
};

const Driver driver_mux_gpio = {
        .name = "mux-gpio",
        .new = mux_gpio_new,
        .free = file_free,
        .storage = &muxed_storage_ops,
};
