/* Kernel cache invalidation off the event loop */
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cache-invalidator.h"
#include "log.h"
#include "macro.h"

typedef struct Invalidation {
        struct Invalidation *next;
        uint64_t ino;           /* the parent for an entry */
        char *name;             /* NULL: the inode itself */
} Invalidation;

struct CacheInvalidator {
        struct fuse_session *session;
        pthread_t thread;
        pthread_mutex_t mutex;
        pthread_cond_t cond;
        Invalidation *head, **tail;
        bool stop;
};

static void invalidation_free(Invalidation *i) {
        if (!i)
                return;
        free(i->name);
        free(i);
}

static void *cache_invalidator_thread(void *userdata) {
        CacheInvalidator *c = userdata;

        pthread_mutex_lock(&c->mutex);
        for (;;) {
                Invalidation *i;
                int r;

                while (!c->head && !c->stop)
                        pthread_cond_wait(&c->cond, &c->mutex);
                if (c->stop)
                        break;

                i = c->head;
                c->head = i->next;
                if (!c->head)
                        c->tail = &c->head;
                pthread_mutex_unlock(&c->mutex);

                if (i->name)
                        r = fuse_lowlevel_notify_inval_entry(c->session, i->ino, i->name, strlen(i->name));
                else
                        r = fuse_lowlevel_notify_inval_inode(c->session, i->ino, 0, 0);
                /* -ENOENT: the kernel had nothing cached. */
                if (r < 0 && r != -ENOENT)
                        log_debug_errno(r, "Failed to invalidate inode %" PRIu64 "%s%s: %m", i->ino,
                                        i->name ? " entry " : "", strempty(i->name));
                invalidation_free(i);

                pthread_mutex_lock(&c->mutex);
        }
        pthread_mutex_unlock(&c->mutex);
        return NULL;
}

int cache_invalidator_new(struct fuse_session *se, CacheInvalidator **ret) {
        CacheInvalidator *c;
        sigset_t all, saved;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->session = se;
        c->tail = &c->head;
        pthread_mutex_init(&c->mutex, NULL);
        pthread_cond_init(&c->cond, NULL);

        /* Signals are for the loop's thread only. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        r = -pthread_create(&c->thread, NULL, cache_invalidator_thread, c);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0) {
                pthread_cond_destroy(&c->cond);
                pthread_mutex_destroy(&c->mutex);
                free(c);
                return r;
        }

        *ret = c;
        return 0;
}

CacheInvalidator *cache_invalidator_free(CacheInvalidator *c) {
        if (!c)
                return NULL;

        pthread_mutex_lock(&c->mutex);
        c->stop = true;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->mutex);
        pthread_join(c->thread, NULL);

        while (c->head) {
                Invalidation *i = c->head;

                c->head = i->next;
                invalidation_free(i);
        }
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->mutex);
        free(c);
        return NULL;
}

static int cache_invalidator_push(CacheInvalidator *c, uint64_t ino, const char *name) {
        Invalidation *i;

        i = calloc(1, sizeof *i);
        if (!i)
                return -ENOMEM;
        i->ino = ino;
        if (name) {
                i->name = strdup(name);
                if (!i->name) {
                        free(i);
                        return -ENOMEM;
                }
        }

        pthread_mutex_lock(&c->mutex);
        *c->tail = i;
        c->tail = &i->next;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->mutex);
        return 0;
}

int cache_invalidator_entry(CacheInvalidator *c, uint64_t parent, const char *name) {
        return cache_invalidator_push(c, parent, name);
}

int cache_invalidator_inode(CacheInvalidator *c, uint64_t ino) {
        return cache_invalidator_push(c, ino, NULL);
}
