/* Storage backed by an image file or block device (shared with the boards that take a storage file) */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "driver.h"

/* Opens path O_RDWR. With want_size set, a missing file is created and a smaller one grown to
 * size; without it the file must exist and its size is the device size. Logs its errors. */
int file_storage_open(const char *dut, const char *path, bool want_size, uint64_t size,
                      int *ret_fd, uint64_t *ret_size);

/* A new open file description of fd's file, so that each user has its own flags and offset. */
int file_storage_reopen(int fd, bool writable);

/* -EBUSY (logged) when fd is a block device that is mounted, or a partition of it is. */
int file_storage_check_unmounted(const char *dut, int fd, const char *path);

/* The drivers of file-storage.c besides driver_file: a card behind a mux. */
extern const Driver driver_usbsdmux;
extern const Driver driver_sdwire;
extern const Driver driver_mux_command;
extern const Driver driver_mux_gpio;
