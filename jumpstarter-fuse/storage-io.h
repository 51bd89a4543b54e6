/* Storage I/O off the event loop: a small pool of worker threads */
#pragma once

#include <fuse_lowlevel.h>
#include <sys/types.h>

typedef struct StorageIo StorageIo;

/* Starts the workers (signals stay with the loop's thread). */
int storage_io_new(StorageIo **ret);
/* Lets the workers finish (and answer) every queued request, then joins them. NULL-safe. */
StorageIo *storage_io_free(StorageIo *s);

/* A storage fd that is a socket (a remote DUT's storage stream) speaks the block protocol of
 * docs/protocol.md ("Data streams", storage) instead of pread()/pwrite()/fsync(), with several requests
 * in flight per socket, split at 4 MiB; a lost connection is EIO. Writes to such a socket are answered
 * once sent (write-behind, a bounded window): fsync answers once all of them landed, and a failed one
 * makes every later request, fsync and flush of that socket fail with EIO.
 *
 * Each takes a request that is answered by a worker: fuse_reply_buf() with what pread() on fd returned,
 * fuse_reply_write() with what was written, or fuse_reply_err(). fd is dup'ed, so the caller may close its
 * own at any time. The write's payload is copied out of bufv before this returns. On failure (-errno) the
 * request is not answered. */
int storage_io_read(StorageIo *s, fuse_req_t req, int fd, size_t size, off_t off);
int storage_io_write(StorageIo *s, fuse_req_t req, int fd, struct fuse_bufvec *bufv, size_t size, off_t off);
int storage_io_fsync(StorageIo *s, fuse_req_t req, int fd);
/* close(): answers once every write sent on fd's socket is answered, with EIO if one failed or the
 * stream is over; at once for a storage that is not a socket (its writes are answered when done). */
int storage_io_flush(StorageIo *s, fuse_req_t req, int fd);
