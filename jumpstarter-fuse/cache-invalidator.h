/* Kernel cache invalidation off the event loop */
#pragma once

#include <stdint.h>

struct fuse_session;

/* fuse_lowlevel_notify_inval_entry() takes the parent directory's lock in the kernel; when a lookup
 * in that directory is queued for us at that moment, the notification waits for the lookup and the
 * lookup waits for our loop. So notifications are sent by a worker thread, never by the loop. */
typedef struct CacheInvalidator CacheInvalidator;

int cache_invalidator_new(struct fuse_session *se, CacheInvalidator **ret);
/* Stops the worker: call after the session is unmounted, so that nothing can still block it. */
CacheInvalidator *cache_invalidator_free(CacheInvalidator *c);

int cache_invalidator_entry(CacheInvalidator *c, uint64_t parent, const char *name);
int cache_invalidator_inode(CacheInvalidator *c, uint64_t ino);
