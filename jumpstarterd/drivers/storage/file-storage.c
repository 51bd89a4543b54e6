/* Storage backed by an image file or block device */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "daemon-util.h"
#include "driver.h"
#include "file-storage.h"
#include "log.h"
#include "macro.h"

typedef struct FileStorage {
        int fd;
        uint64_t size;
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

static int file_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        _cleanup_free_ FileStorage *f = NULL;
        int r;

        f = malloc(sizeof *f);
        if (!f)
                return log_oom();
        *f = (FileStorage) { .fd = -EBADF };

        r = file_storage_open(ctx->dut_name, driver_config_get_string(config, "path"),
                              driver_config_is_set(config, "size"), driver_config_get_u64(config, "size", 0),
                              &f->fd, &f->size);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(f);
        return 0;
}

static void *file_free(void *instance) {
        FileStorage *f = instance;

        if (!f)
                return NULL;
        safe_close(f->fd);
        free(f);
        return NULL;
}

static uint64_t file_size(void *instance) {
        FileStorage *f = instance;
        return f->size;
}

static int file_open(void *instance, bool writable) {
        FileStorage *f = instance;
        return file_storage_reopen(f->fd, writable);
}

static const StorageDriverOps file_storage_ops = {
        .size = file_size,
        .open = file_open,
};

const Driver driver_file = {
        .name = "file",
        .new = file_new,
        .free = file_free,
        .storage = &file_storage_ops,
};
