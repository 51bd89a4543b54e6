/* Whole small files: read with a size bound, replaced atomically */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* The first max bytes of the file (all of a shorter one), NUL-terminated, and their number. */
int read_file_at_most(const char *path, size_t max, char **ret, size_t *ret_size);
/* The whole file as a NUL-terminated string of at most max bytes. Returns its length, -EFBIG when
 * it is larger, -EBADMSG when it holds a NUL byte (not text), or another negative errno. */
int read_file_bounded(const char *path, size_t max, char **ret);
/* Replaces path with data: a temporary file in the same directory with mode, fsync()ed, renamed
 * over the old one, and the directory fsync()ed. Returns 0 or a negative errno; path is untouched
 * on failure. */
int write_file_atomic(const char *path, const char *data, size_t size, mode_t mode);
