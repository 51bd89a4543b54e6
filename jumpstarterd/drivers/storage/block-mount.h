/* Whether a block device, or a partition of it, is mounted */
#pragma once

#include <sys/types.h>

/* sysfs_root is "/sys" and mountinfo "/proc/self/mountinfo" except in tests. Returns 1 and, if
 * ret_where is not NULL, the mount point (escaped as in mountinfo) when devnum or one of its
 * partitions is mounted; 0 when none is; a negative errno when mountinfo cannot be read. */
int block_device_find_mount(const char *sysfs_root, const char *mountinfo, dev_t devnum, char **ret_where);
