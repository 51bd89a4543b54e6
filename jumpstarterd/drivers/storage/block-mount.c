/* Whether a block device, or a partition of it, is mounted */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "block-mount.h"
#include "macro.h"

#define MAX_DEVICES 256

static int read_devnum_at(int dirfd, const char *path, dev_t *ret) {
        char buf[32];
        unsigned maj, min;
        ssize_t n;
        int fd;

        fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return -EIO;
        buf[n] = 0;
        if (sscanf(buf, "%u:%u", &maj, &min) != 2)
                return -EINVAL;
        *ret = makedev(maj, min);
        return 0;
}

/* The device and its partitions: /sys/dev/block/M:m/<part>/ with a "partition" file. A missing
 * sysfs entry leaves just the device itself, which mountinfo still catches. */
static size_t collect_devices(const char *sysfs_root, dev_t devnum, dev_t *devs) {
        char path[512];
        size_t n = 0;
        DIR *dir;
        struct dirent *de;

        devs[n++] = devnum;
        snprintf(path, sizeof path, "%s/dev/block/%u:%u", sysfs_root, major(devnum), minor(devnum));
        dir = opendir(path);
        if (!dir)
                return n;
        while ((de = readdir(dir)) && n < MAX_DEVICES) {
                char sub[300];
                dev_t part;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(sub, sizeof sub, "%s/partition", de->d_name);
                if (faccessat(dirfd(dir), sub, F_OK, 0) < 0)
                        continue;
                snprintf(sub, sizeof sub, "%s/dev", de->d_name);
                if (read_devnum_at(dirfd(dir), sub, &part) >= 0)
                        devs[n++] = part;
        }
        closedir(dir);
        return n;
}

int block_device_find_mount(const char *sysfs_root, const char *mountinfo, dev_t devnum, char **ret_where) {
        dev_t devs[MAX_DEVICES];
        _cleanup_free_ char *line = NULL;
        size_t n_devs, allocated = 0;
        FILE *f;
        int r = 0;

        n_devs = collect_devices(sysfs_root, devnum, devs);

        f = fopen(mountinfo, "re");
        if (!f)
                return negative_errno();
        while (getline(&line, &allocated, f) >= 0) {
                unsigned maj, min;
                char where[4096];
                dev_t d;

                /* "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": third and fifth fields. */
                if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, where) != 3)
                        continue;
                d = makedev(maj, min);
                for (size_t i = 0; i < n_devs; i++)
                        if (devs[i] == d) {
                                if (ret_where) {
                                        *ret_where = strdup(where);
                                        if (!*ret_where)
                                                r = -ENOMEM;
                                }
                                fclose(f);
                                return r < 0 ? r : 1;
                        }
        }
        fclose(f);
        return 0;
}
