/* The file view: FUSE low-level operations and the DUT list they serve */
#include <assert.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <time.h>

#include "config.h"
#include "fs.h"
#include "log.h"
#include "macro.h"

#define IO_BUFFER_MIN (128U * 1024U)
/* Ending a lease asks the controller, which may be slow to answer. */
#define RELEASE_TIMEOUT_USEC (60 * USEC_PER_SEC)

static Filesystem *req_fs(fuse_req_t req) {
        return fuse_req_userdata(req);
}

static Handle *fi_handle(const struct fuse_file_info *fi) {
        return fi ? (Handle *) (uintptr_t) fi->fh : NULL;
}

PendingRequest *pending_request_new(Filesystem *fs, fuse_req_t req, Handle *h) {
        PendingRequest *p;

        p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        p->fs = fs;
        p->req = req;
        p->handle = handle_ref(h);
        p->uid = req ? fuse_req_ctx(req)->uid : fs->uid;
        return p;
}

PendingRequest *pending_request_new_open(Filesystem *fs, fuse_req_t req, const char *dut,
                                         const struct fuse_file_info *fi) {
        PendingRequest *p;

        p = pending_request_new(fs, req, NULL);
        if (!p)
                return NULL;
        p->dut = strdup(dut);
        if (!p->dut) {
                free(p);
                return NULL;
        }
        p->fi = *fi;
        return p;
}

/* The methods that hand out a stream or act on the DUT: jumpstarterd re-checks them for the user. */
static bool method_acts(const char *method) {
        return STR_IN_SET(method, "SetPower", "OpenSerialLog", "SerialLogSync", "OpenStorage", "SetGpio",
                          "ReleaseDut");
}

void pending_request_callv(PendingRequest *p, const char *method, uint64_t timeout_usec, agent_reply_t handler,
                           const char *types, va_list ap) {
        int r;

        if (p->fs->act_for_users && p->uid != p->fs->uid && method_acts(method))
                r = agent_callv_as(p->fs->agent, p->uid, method, timeout_usec, handler, p, pending_request_free,
                                   types, ap);
        else
                r = agent_callv(p->fs->agent, method, timeout_usec, handler, p, pending_request_free, types, ap);
        if (r < 0) {
                pending_request_fail(p, r);
                pending_request_free(p);
        }
}

void pending_request_call(PendingRequest *p, const char *method, uint64_t timeout_usec, agent_reply_t handler,
                          const char *types, ...) {
        va_list ap;

        va_start(ap, types);
        pending_request_callv(p, method, timeout_usec, handler, types, ap);
        va_end(ap);
}

void pending_request_fail(PendingRequest *p, int error) {
        if (!p->req)
                return;
        (void) fuse_reply_err(p->req, abs(error));
        p->req = NULL;
}

void pending_request_free(void *userdata) {
        PendingRequest *p = userdata;

        if (!p)
                return;
        /* Never answered: the connection went away under it. */
        pending_request_fail(p, EIO);
        handle_unref(p->handle);
        free(p->dut);
        free(p);
}

int fs_reply_slice(fuse_req_t req, const char *text, size_t text_size, size_t size, off_t off) {
        if (off < 0 || (uint64_t) off >= text_size)
                return fuse_reply_buf(req, NULL, 0);
        return fuse_reply_buf(req, text + off, MIN(size, text_size - (size_t) off));
}

int fs_copy_word(Handle *h, struct fuse_bufvec *bufv, char *buf, size_t buf_size, size_t *ret_n) {
        size_t size = fuse_buf_size(bufv);
        struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
        ssize_t n;

        if (h->dead)
                return -EIO;
        if (size > buf_size)
                return -EINVAL;

        dst.buf[0].mem = buf;
        n = fuse_buf_copy(&dst, bufv, 0);
        if (n < 0)
                return (int) n;
        *ret_n = (size_t) n;
        return 0;
}

char *fs_io_buffer(Filesystem *fs, size_t size) {
        size = MAX(size, IO_BUFFER_MIN);
        if (size > fs->io_buffer_size) {
                char *b = realloc(fs->io_buffer, size);

                if (!b)
                        return NULL;
                fs->io_buffer = b;
                fs->io_buffer_size = size;
        }
        return fs->io_buffer;
}

/* The slot of a DUT that is in the list (and so in the table). */
static size_t fs_slot_of(Filesystem *fs, const char *name) {
        size_t slot = 0;
        int r;

        r = inode_table_slot(&fs->inodes, name, false, &slot);
        assert(r >= 0);
        (void) r;
        return slot;
}

int fs_resolve(Filesystem *fs, fuse_ino_t ino, Dut **ret_dut, FileKind *ret_kind) {
        FileKind kind;
        size_t slot;
        Dut *d;
        int r;

        if (!fs->serving)
                return -EIO;
        r = inode_parse(&fs->inodes, ino, &slot, &kind);
        if (r < 0)
                return r;
        d = slot < fs->n_by_slot ? fs->by_slot[slot] : NULL;
        if (!d || !dut_has_class(d, file_kind_driver_class(kind)))
                return -ENOENT;
        *ret_dut = d;
        *ret_kind = kind;
        return 0;
}

void fs_fill_node_attr(Filesystem *fs, fuse_ino_t ino, mode_t mode, struct stat *st) {
        *st = (struct stat) {
                .st_ino = ino,
                .st_mode = mode,
                .st_uid = fs->uid,
                .st_gid = fs->gid,
                .st_nlink = 1,
                .st_blksize = 4096,
                .st_atim = fs->start_time,
                .st_mtim = fs->start_time,
                .st_ctim = fs->start_time,
        };
}

static void fs_fill_kind_attr(FileKind kind, const Dut *d, struct stat *st);

void fs_apply_owner(Filesystem *fs, const Dut *d, struct stat *st) {
        mode_t user;

        if (!d || !d->leased)
                return;
        st->st_uid = d->holder_uid;
        /* A symlink's mode means nothing; the terminal it points to is the holder's. */
        if (S_ISLNK(st->st_mode))
                return;
        user = st->st_mode & 0700;
        if (d->share_gid != (gid_t) -1) {
                st->st_gid = d->share_gid;
                st->st_mode = (st->st_mode & ~07777) | user | ((user >> 3) & (S_ISDIR(st->st_mode) ? 050 : 070));
        } else
                st->st_mode = (st->st_mode & ~07777) | user;
}

void fs_fill_attr(Filesystem *fs, fuse_ino_t ino, FileKind kind, const Dut *d, struct stat *st) {
        fs_fill_node_attr(fs, ino, 0, st);

        if (ino == INODE_ROOT) {
                st->st_mode = S_IFDIR | 0755;
                st->st_nlink = 2 + fs->duts.n_duts;
                return;
        }
        fs_fill_kind_attr(kind, d, st);
        fs_apply_owner(fs, d, st);
}

static void fs_fill_kind_attr(FileKind kind, const Dut *d, struct stat *st) {
        switch (kind) {
        case FILE_KIND_DIR:
                /* Owned by the lease holder; others get EACCES. */
                st->st_mode = S_IFDIR | 0700;
                st->st_nlink = 2;
                break;
        case FILE_KIND_GPIO:
                st->st_mode = S_IFDIR | 0755;
                st->st_nlink = 2;
                break;
        case FILE_KIND_POWER:
                st->st_mode = S_IFREG | 0644;
                break;
        case FILE_KIND_SERIAL:
                st->st_mode = S_IFLNK | 0777;
                st->st_size = (off_t) strlen(d->serial_path);
                break;
        case FILE_KIND_SERIAL_LOG:
        case FILE_KIND_POWER_READING:
                st->st_mode = S_IFREG | 0444;
                break;
        case FILE_KIND_STORAGE:
                st->st_mode = S_IFREG | 0644;
                st->st_size = (off_t) MIN(d->storage_size, (uint64_t) INT64_MAX);
                st->st_blocks = (blkcnt_t) ((d->storage_size + 511) / 512);
                break;
        case FILE_KIND_LABELS:
                st->st_mode = S_IFREG | 0444;
                st->st_size = (off_t) strlen(d->labels_text);
                break;
        case FILE_KIND_LEASE:
                st->st_mode = S_IFREG | 0444;
                st->st_size = (off_t) strlen(d->lease_text);
                break;
        default:
                assert(false);
        }
}

void fs_fill_entry(Filesystem *fs, fuse_ino_t ino, FileKind kind, const Dut *d, struct fuse_entry_param *e) {
        *e = (struct fuse_entry_param) {
                .ino = ino,
                .generation = 1,
                .entry_timeout = ENTRY_TIMEOUT,
                .attr_timeout = kind == FILE_KIND_SERIAL_LOG ? 0 : ATTR_TIMEOUT,
        };
        fs_fill_attr(fs, ino, kind, d, &e->attr);
}

/* Loading and replacing the DUT list */

static void fs_call_ready(Filesystem *fs, int error) {
        fs_ready_t ready = fs->ready;

        fs->ready = NULL;
        if (ready)
                ready(fs, error, fs->ready_userdata);
}

/* Makes by_slot point into fs->duts again (after it changed). */
static int fs_reindex(Filesystem *fs) {
        _cleanup_free_ Dut **by_slot = NULL;
        size_t slot;
        int r;

        for (size_t i = 0; i < fs->duts.n_duts; i++) {
                r = inode_table_slot(&fs->inodes, fs->duts.duts[i].name, true, &slot);
                if (r < 0)
                        return r;
        }
        by_slot = calloc(MAX(fs->inodes.n_names, 1U), sizeof *by_slot);
        if (!by_slot)
                return -ENOMEM;
        for (size_t i = 0; i < fs->duts.n_duts; i++)
                by_slot[fs_slot_of(fs, fs->duts.duts[i].name)] = &fs->duts.duts[i];

        free(fs->by_slot);
        fs->by_slot = TAKE_PTR(by_slot);
        fs->n_by_slot = fs->inodes.n_names;
        return 0;
}

/* A DUT came or went: drop what the kernel cached of its name and of its inodes (a DUT that comes
 * back under the same name has the same inode numbers, and may be another device). */
static void fs_invalidate_dut(Filesystem *fs, const char *name) {
        size_t slot;

        if (!fs->invalidator)
                return;
        (void) cache_invalidator_entry(fs->invalidator, INODE_ROOT, name);
        if (inode_table_slot(&fs->inodes, name, false, &slot) >= 0)
                for (FileKind k = 0; k < _FILE_KIND_MAX; k++)
                        (void) cache_invalidator_inode(fs->invalidator, inode_make(slot, k));
        (void) cache_invalidator_inode(fs->invalidator, INODE_ROOT);
}

/* Open files of a DUT that went away fail with EIO from now on; the daemon ended their sessions. */
static void fs_kill_handles_of(Filesystem *fs, const char *name) {
        for (Handle *h = fs->handles; h; h = h->next)
                if (streq(h->dut, name))
                        handle_kill(h);
}

static int fs_install(Filesystem *fs, DutList *list) {
        DutList old = fs->duts;
        int r;

        /* Slots first, so that nothing changes if that fails. */
        for (size_t i = 0; i < list->n_duts; i++) {
                size_t slot;

                r = inode_table_slot(&fs->inodes, list->duts[i].name, true, &slot);
                if (r < 0)
                        return r;
        }

        fs->duts = *list;
        *list = (DutList) {};
        r = fs_reindex(fs);
        if (r < 0) {
                *list = fs->duts;
                fs->duts = old;
                return r;
        }

        /* DUTs that came or went, and those whose files may have changed: drop what the kernel
         * cached about them. Entries are re-looked-up when used next. */
        for (size_t i = 0; i < old.n_duts; i++)
                if (!dut_list_find(&fs->duts, old.duts[i].name)) {
                        fs_kill_handles_of(fs, old.duts[i].name);
                        fs_invalidate_dut(fs, old.duts[i].name);
                }
        if (fs->invalidator) {
                for (size_t i = 0; i < fs->duts.n_duts; i++)
                        (void) cache_invalidator_entry(fs->invalidator, INODE_ROOT, fs->duts.duts[i].name);
                (void) cache_invalidator_inode(fs->invalidator, INODE_ROOT);
        }

        dut_list_done(&old);
        fs->serving = true;
        return 0;
}

static void fs_on_loaded(DutList *list, int error, void *userdata);

/* Loads the whole list (again); one load at a time. */
static void fs_reload(Filesystem *fs) {
        int r;

        if (fs->loading) {
                fs->reload_wanted = true;
                return;
        }
        fs->loading = true;
        fs->reload_wanted = false;
        r = dut_list_load(fs->agent, fs_on_loaded, fs);
        if (r < 0) {
                fs->loading = false;
                log_warning_errno(r, "Failed to load the DUT list, reconnecting: %m");
                agent_drop(fs->agent);
        }
}

typedef struct DutAdd {
        Filesystem *fs;
        char *name;
        bool cancelled;         /* the DUT went away (or the connection) before it was described */
        bool changed;           /* DutChanged of a DUT in the list, not DutAdded */
        struct DutAdd *prev, *next;
} DutAdd;

static void dut_add_free(DutAdd *a) {
        if (!a)
                return;
        if (a->prev)
                a->prev->next = a->next;
        else
                a->fs->adds = a->next;
        if (a->next)
                a->next->prev = a->prev;
        free(a->name);
        free(a);
}

static void fs_on_added_loaded(DutList *list, int error, void *userdata) {
        DutAdd *a = userdata;
        Filesystem *fs = a->fs;
        _cleanup_free_ char *name = TAKE_PTR(a->name);
        bool cancelled = a->cancelled, changed = a->changed;
        int r;

        dut_add_free(a);
        if (cancelled)
                return;
        if (error == -ENOENT) {
                log_debug("DUT %s went away before it was described.", name);
                return;
        }
        if (error < 0) {
                log_warning_errno(error, "Failed to describe the new DUT %s, reloading the list: %m", name);
                return fs_reload(fs);
        }
        if (!fs->serving)
                return;

        /* Another lease (or none): what was opened under the old one stops working, as jumpstarterd
         * ended its streams. */
        {
                Dut *old = dut_list_find(&fs->duts, name);

                if (old && !streq_ptr(old->lease_name, list->duts[0].lease_name)) {
                        log_info("The lease of DUT %s changed, closing its open files.", name);
                        fs_kill_handles_of(fs, name);
                }
        }

        r = dut_list_put(&fs->duts, &list->duts[0]);
        if (r >= 0)
                r = fs_reindex(fs);
        if (r < 0) {
                log_warning_errno(r, "Failed to add DUT %s, reconnecting: %m", name);
                return agent_drop(fs->agent);
        }
        fs_invalidate_dut(fs, name);
        if (changed)
                log_debug("DUT %s described again.", name);
        else
                log_info("DUT %s added.", name);
}

static void fs_describe_dut(Filesystem *fs, const char *name, bool changed) {
        DutAdd *a;
        int r;

        /* A list that is loading may or may not have it (as it is now): load it again afterwards. */
        if (fs->loading || !fs->serving) {
                fs->reload_wanted = true;
                return;
        }

        a = calloc(1, sizeof *a);
        if (!a || !(a->name = strdup(name))) {
                free(a);
                log_oom();
                return fs_reload(fs);
        }
        a->fs = fs;
        a->changed = changed;
        a->next = fs->adds;
        if (a->next)
                a->next->prev = a;
        fs->adds = a;

        r = dut_list_load_one(fs->agent, name, fs_on_added_loaded, a);
        if (r < 0) {
                dut_add_free(a);
                log_warning_errno(r, "Failed to describe the new DUT %s, reloading the list: %m", name);
                fs_reload(fs);
        }
}

void fs_dut_added(Filesystem *fs, const char *name) {
        fs_describe_dut(fs, name, false);
}

void fs_dut_changed(Filesystem *fs, const char *name) {
        /* One that is not in the list yet is being described already, as it is now. */
        if (!fs->loading && fs->serving && !dut_list_find(&fs->duts, name))
                return;
        fs_describe_dut(fs, name, true);
}

void fs_dut_removed(Filesystem *fs, const char *name) {
        for (DutAdd *a = fs->adds; a; a = a->next)
                if (streq(a->name, name))
                        a->cancelled = true;
        /* A list that is loading may still have it: load it again afterwards. */
        if (fs->loading)
                fs->reload_wanted = true;

        /* Its open files fail at once, whatever the list. */
        fs_kill_handles_of(fs, name);
        if (dut_list_remove(&fs->duts, name) > 0) {
                if (fs_reindex(fs) < 0) {
                        log_oom();
                        /* by_slot points into the old array: stop serving until reconnected. */
                        fs->serving = false;
                        return agent_drop(fs->agent);
                }
                fs_invalidate_dut(fs, name);
                log_info("DUT %s removed.", name);
        }
}

static void fs_on_agent_dut_added(Agent *a, const char *dut, void *userdata) {
        fs_dut_added(userdata, dut);
}

static void fs_on_agent_dut_removed(Agent *a, const char *dut, void *userdata) {
        fs_dut_removed(userdata, dut);
}

static void fs_on_agent_dut_changed(Agent *a, const char *dut, void *userdata) {
        fs_dut_changed(userdata, dut);
}

static void fs_on_loaded(DutList *list, int error, void *userdata) {
        Filesystem *fs = userdata;
        int r;

        fs->loading = false;
        if (error < 0) {
                if (fs->ready)
                        return fs_call_ready(fs, error);
                log_warning_errno(error, "Failed to load the DUT list, reconnecting: %m");
                return agent_drop(fs->agent);
        }

        r = fs_install(fs, list);
        if (r < 0) {
                if (fs->ready)
                        return fs_call_ready(fs, r);
                log_warning_errno(r, "Failed to install the DUT list, reconnecting: %m");
                return agent_drop(fs->agent);
        }

        log_info("Serving %zu DUT%s.", fs->duts.n_duts, fs->duts.n_duts == 1 ? "" : "s");
        fs_call_ready(fs, 0);
        if (fs->reload_wanted)
                fs_reload(fs);
}

static void fs_on_connected(Agent *a, void *userdata) {
        Filesystem *fs = userdata;
        int r;

        /* What a lost connection was loading is gone with it. */
        fs->loading = true;
        fs->reload_wanted = false;
        r = dut_list_load(a, fs_on_loaded, fs);
        if (r < 0) {
                fs->loading = false;
                if (fs->ready)
                        return fs_call_ready(fs, r);
                log_warning_errno(r, "Failed to load the DUT list, reconnecting: %m");
                agent_drop(a);
        }
}

static void fs_on_disconnected(Agent *a, void *userdata) {
        Filesystem *fs = userdata;

        fs->serving = false;
        for (DutAdd *add = fs->adds; add; add = add->next)
                add->cancelled = true;
        /* Open files belong to the lost connection: EIO from now on, also after a reconnection. */
        for (Handle *h = fs->handles; h; h = h->next)
                handle_kill(h);
        if (fs->ready)
                fs_call_ready(fs, -EIO);
}

int fs_new(sd_event *event, const char *socket_path, fs_ready_t ready, void *userdata, Filesystem **ret) {
        static const AgentCallbacks callbacks = {
                .connected = fs_on_connected,
                .disconnected = fs_on_disconnected,
                .dut_added = fs_on_agent_dut_added,
                .dut_removed = fs_on_agent_dut_removed,
                .dut_changed = fs_on_agent_dut_changed,
        };
        Filesystem *fs;
        int r;

        fs = calloc(1, sizeof *fs);
        if (!fs)
                return -ENOMEM;
        fs->event = sd_event_ref(event);
        fs->ready = ready;
        fs->ready_userdata = userdata;
        fs->uid = getuid();
        fs->gid = getgid();
        fs->act_for_users = fs->uid == 0;
        (void) clock_gettime(CLOCK_REALTIME, &fs->start_time);

        r = storage_io_new(&fs->storage_io);
        if (r < 0) {
                fs_free(fs);
                return r;
        }
        r = agent_new(event, socket_path, &callbacks, fs, &fs->agent);
        if (r < 0) {
                fs_free(fs);
                return r;
        }
        *ret = fs;
        return 0;
}

int fs_start(Filesystem *fs) {
        return agent_connect(fs->agent);
}

void fs_attach_session(Filesystem *fs, struct fuse_session *se, CacheInvalidator *invalidator) {
        fs->session = se;
        fs->invalidator = invalidator;
}

Filesystem *fs_free(Filesystem *fs) {
        if (!fs)
                return NULL;

        /* Kill the handles first, so that nothing calls the agent any more, then let the agent fail
         * what still waits for it (EIO), then drop the kernel's references. */
        for (Handle *h = fs->handles; h; h = h->next)
                handle_kill(h);
        fs->agent = agent_free(fs->agent);
        while (fs->handles)
                handle_release(fs->handles);
        /* Storage requests in flight still hold the session: they finish and are answered before the
         * caller unmounts. */
        fs->storage_io = storage_io_free(fs->storage_io);
        /* Descriptions that the agent never answered. */
        while (fs->adds)
                dut_add_free(fs->adds);

        dut_list_done(&fs->duts);
        free(fs->by_slot);
        inode_table_done(&fs->inodes);
        inode_table_done(&fs->gpio_inodes);
        free(fs->io_buffer);
        sd_event_unref(fs->event);
        free(fs);
        return NULL;
}

/* Operations */

static void fs_op_init(void *userdata, struct fuse_conn_info *conn) {
        /* O_TRUNC on storage (or power) is handed to open() instead of becoming a truncation. */
        if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
                conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
        /* Lets libfuse hand large writes over in a pipe where it can; storage-io copies the payload
         * out either way (fuse_buf_copy), and on this kernel and libfuse writes arrive by read(). */
        if (conn->capable & FUSE_CAP_SPLICE_READ)
                conn->want |= FUSE_CAP_SPLICE_READ;
        conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
        Filesystem *fs = req_fs(req);
        struct fuse_entry_param e;
        FileKind kind, parent_kind;
        size_t slot;
        Dut *d;
        int r;

        if (parent == INODE_ROOT) {
                if (!fs->serving)
                        return (void) fuse_reply_err(req, EIO);
                if (!dut_name_is_valid(name) || inode_table_slot(&fs->inodes, name, false, &slot) < 0 ||
                    slot >= fs->n_by_slot || !fs->by_slot[slot])
                        return (void) fuse_reply_err(req, ENOENT);
                fs_fill_entry(fs, inode_make(slot, FILE_KIND_DIR), FILE_KIND_DIR, fs->by_slot[slot], &e);
                return (void) fuse_reply_entry(req, &e);
        }

        if (gpio_inode_is(parent))
                return (void) fuse_reply_err(req, ENOTDIR);
        r = fs_resolve(fs, parent, &d, &parent_kind);
        if (r < 0)
                return (void) fuse_reply_err(req, -r);
        if (parent_kind == FILE_KIND_GPIO)
                return gpio_dir_lookup(fs, req, d, name);
        if (parent_kind != FILE_KIND_DIR)
                return (void) fuse_reply_err(req, ENOTDIR);

        kind = file_kind_from_string(name);
        if (kind < 0 || !dut_has_class(d, file_kind_driver_class(kind)))
                return (void) fuse_reply_err(req, ENOENT);
        slot = fs_slot_of(fs, d->name);

        if (kind == FILE_KIND_SERIAL_LOG)
                return serial_log_file_stat(fs, req, inode_make(slot, kind), d, true);

        fs_fill_entry(fs, inode_make(slot, kind), kind, d, &e);
        (void) fuse_reply_entry(req, &e);
}

static void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
        /* Inode numbers are never reused (see InodeTable): nothing to count. */
        fuse_reply_none(req);
}

static void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
        fuse_reply_none(req);
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        Filesystem *fs = req_fs(req);
        struct stat st;
        FileKind kind;
        Dut *d;
        int r;

        if (ino == INODE_ROOT) {
                fs_fill_attr(fs, ino, FILE_KIND_DIR, NULL, &st);
                return (void) fuse_reply_attr(req, &st, ATTR_TIMEOUT);
        }
        if (gpio_inode_is(ino))
                return gpio_file_getattr(fs, req, ino, 0);

        r = fs_resolve(fs, ino, &d, &kind);
        /* Names are looked up first (ENOENT there): an inode the kernel still holds whose DUT went
         * away is an open file of it (fstat), which fails as its reads do. */
        if (r == -ENOENT)
                r = -EIO;
        if (r < 0)
                return (void) fuse_reply_err(req, -r);
        if (kind == FILE_KIND_SERIAL_LOG)
                return serial_log_file_stat(fs, req, ino, d, false);

        fs_fill_attr(fs, ino, kind, d, &st);
        (void) fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
        Filesystem *fs = req_fs(req);
        struct stat st;
        FileKind kind;
        Dut *d;
        int r;

        if (ino == INODE_ROOT)
                return (void) fuse_reply_err(req, EPERM);
        if (gpio_inode_is(ino))
                return gpio_file_getattr(fs, req, ino, to_set);
        r = fs_resolve(fs, ino, &d, &kind);
        if (r < 0)
                return (void) fuse_reply_err(req, -r);

        /* Ownership and modes are the view's, not the caller's. */
        if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
                return (void) fuse_reply_err(req, EPERM);

        if (to_set & FUSE_SET_ATTR_SIZE) {
                switch (kind) {
                case FILE_KIND_STORAGE:
                        /* A device has its size: a truncation within it (dd's ftruncate) changes nothing. */
                        r = storage_file_check_truncate(d, (uint64_t) attr->st_size);
                        if (r < 0)
                                return (void) fuse_reply_err(req, -r);
                        break;
                case FILE_KIND_POWER:
                        /* Shells truncate before writing a word; nothing to truncate. */
                        break;
                case FILE_KIND_DIR:
                case FILE_KIND_GPIO:
                        return (void) fuse_reply_err(req, EISDIR);
                default:
                        return (void) fuse_reply_err(req, EACCES);
                }
        }

        /* Time stamps are not kept: touch succeeds and changes nothing. */
        fs_fill_attr(fs, ino, kind, d, &st);
        (void) fuse_reply_attr(req, &st, kind == FILE_KIND_SERIAL_LOG ? 0 : ATTR_TIMEOUT);
}

static void fs_op_readlink(fuse_req_t req, fuse_ino_t ino) {
        Filesystem *fs = req_fs(req);
        FileKind kind;
        Dut *d;
        int r;

        r = fs_resolve(fs, ino, &d, &kind);
        if (r < 0)
                return (void) fuse_reply_err(req, -r);
        if (kind != FILE_KIND_SERIAL)
                return (void) fuse_reply_err(req, EINVAL);
        (void) fuse_reply_readlink(req, d->serial_path);
}

static void fs_op_create_denied(fuse_req_t req) {
        /* The view has a fixed set of files: nothing can be created, removed or renamed. */
        (void) fuse_reply_err(req, EACCES);
}

static void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
        fs_op_create_denied(req);
}

static void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
        fs_op_create_denied(req);
}

static void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
        fs_op_create_denied(req);
}

static void on_release_reply(sd_bus_message *reply, int error, void *userdata) {
        PendingRequest *p = userdata;

        /* EPERM for a DUT of the daemon's own config. On success DutRemoved came before this reply:
         * the directory is gone already. */
        if (error < 0) {
                log_debug_errno(error, "ReleaseDut(%s) failed: %m", p->dut);
                return pending_request_fail(p, error);
        }
        (void) fuse_reply_err(p->req, 0);
        p->req = NULL;
}

static void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
        Filesystem *fs = req_fs(req);
        PendingRequest *p;

        /* rmdir of a DUT directory gives the DUT back: its lease ends. Nothing else is removed. */
        if (parent != INODE_ROOT)
                return fs_op_create_denied(req);
        if (!fs->serving)
                return (void) fuse_reply_err(req, EIO);
        if (!dut_name_is_valid(name) || !dut_list_find(&fs->duts, name))
                return (void) fuse_reply_err(req, ENOENT);

        p = pending_request_new(fs, req, NULL);
        if (!p)
                return (void) fuse_reply_err(req, ENOMEM);
        p->dut = strdup(name);
        if (!p->dut) {
                pending_request_fail(p, ENOMEM);
                return pending_request_free(p);
        }
        pending_request_call(p, "ReleaseDut", RELEASE_TIMEOUT_USEC, on_release_reply, "s", name);
}

static void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
        fs_op_create_denied(req);
}

static void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                         const char *newname, unsigned flags) {
        fs_op_create_denied(req);
}

static void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
        fs_op_create_denied(req);
}

static void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
        fs_op_create_denied(req);
}

static void fs_open_text(Filesystem *fs, fuse_req_t req, const Dut *d, FileKind kind, struct fuse_file_info *fi) {
        const char *text = kind == FILE_KIND_LABELS ? d->labels_text : d->lease_text;
        Handle *h;

        h = handle_new(fs, kind, d->name);
        if (!h)
                return (void) fuse_reply_err(req, ENOMEM);
        h->text = strdup(text);
        if (!h->text) {
                handle_release(h);
                return (void) fuse_reply_err(req, ENOMEM);
        }
        h->text_size = strlen(text);
        h->text_valid = true;
        fi->direct_io = 1;
        handle_reply_open(h, req, fi);
}

static void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        Filesystem *fs = req_fs(req);
        bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
        FileKind kind;
        Handle *h;
        Dut *d;
        int r;

        if (ino == INODE_ROOT)
                return (void) fuse_reply_err(req, EISDIR);
        if (gpio_inode_is(ino))
                return gpio_file_open(fs, req, ino, fi);
        r = fs_resolve(fs, ino, &d, &kind);
        if (r < 0)
                return (void) fuse_reply_err(req, -r);

        /* Read-only files are refused here too: root passes default_permissions' mode checks. */
        switch (kind) {
        case FILE_KIND_DIR:
        case FILE_KIND_GPIO:
                return (void) fuse_reply_err(req, EISDIR);
        case FILE_KIND_SERIAL:
                return (void) fuse_reply_err(req, ELOOP);
        case FILE_KIND_POWER:
                h = handle_new(fs, kind, d->name);
                if (!h)
                        return (void) fuse_reply_err(req, ENOMEM);
                fi->direct_io = 1;
                return handle_reply_open(h, req, fi);
        case FILE_KIND_POWER_READING:
                if (writing)
                        return (void) fuse_reply_err(req, EACCES);
                h = handle_new(fs, kind, d->name);
                if (!h)
                        return (void) fuse_reply_err(req, ENOMEM);
                /* A fresh measurement per read at offset 0, not the page cache's. */
                fi->direct_io = 1;
                return handle_reply_open(h, req, fi);
        case FILE_KIND_SERIAL_LOG:
                return serial_log_file_open(fs, req, d, fi);
        case FILE_KIND_STORAGE:
                return storage_file_open(fs, req, d, fi);
        case FILE_KIND_LABELS:
        case FILE_KIND_LEASE:
                if (writing)
                        return (void) fuse_reply_err(req, EACCES);
                return fs_open_text(fs, req, d, kind, fi);
        default:
                return (void) fuse_reply_err(req, ENOENT);
        }
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        Filesystem *fs = req_fs(req);
        Handle *h = fi_handle(fi);

        if (!h)
                return (void) fuse_reply_err(req, EBADF);
        switch (h->kind) {
        case FILE_KIND_POWER:
                return power_file_read(fs, req, h, size, off);
        case FILE_KIND_GPIO:
                return gpio_file_read(fs, req, h, size, off);
        case FILE_KIND_POWER_READING:
                return power_reading_file_read(fs, req, h, size, off);
        case FILE_KIND_SERIAL_LOG:
                return serial_log_file_read(fs, req, h, size);
        case FILE_KIND_STORAGE:
                return storage_file_read(fs, req, h, size, off);
        default:
                if (h->dead)
                        return (void) fuse_reply_err(req, EIO);
                (void) fs_reply_slice(req, h->text, h->text_size, size, off);
        }
}

static void fs_op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off, struct fuse_file_info *fi) {
        Filesystem *fs = req_fs(req);
        Handle *h = fi_handle(fi);

        if (!h)
                return (void) fuse_reply_err(req, EBADF);
        switch (h->kind) {
        case FILE_KIND_POWER:
                return power_file_write(fs, req, h, bufv);
        case FILE_KIND_GPIO:
                return gpio_file_write(fs, req, h, bufv);
        case FILE_KIND_STORAGE:
                return storage_file_write(fs, req, h, bufv, off);
        default:
                return (void) fuse_reply_err(req, EACCES);
        }
}

static void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        Handle *h = fi_handle(fi);

        /* Writes to a storage that was lost may not have reached it: say so at close. */
        if (h && h->kind == FILE_KIND_STORAGE && h->dead)
                return (void) fuse_reply_err(req, EIO);
        /* A remote storage's writes are answered once sent: close waits for them (storage-io.c). */
        if (h && h->kind == FILE_KIND_STORAGE && h->fd >= 0) {
                int r = storage_io_flush(req_fs(req)->storage_io, req, h->fd);

                if (r < 0)
                        (void) fuse_reply_err(req, -r);
                return;
        }
        (void) fuse_reply_err(req, 0);
}

static void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        handle_release(fi_handle(fi));
        (void) fuse_reply_err(req, 0);
}

static void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
        Filesystem *fs = req_fs(req);
        Handle *h = fi_handle(fi);

        if (!h)
                return (void) fuse_reply_err(req, EBADF);
        if (h->kind == FILE_KIND_STORAGE)
                return storage_file_fsync(fs, req, h);
        (void) fuse_reply_err(req, h->dead ? EIO : 0);
}

static void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        Filesystem *fs = req_fs(req);
        FileKind kind;
        Dut *d;
        int r;

        if (gpio_inode_is(ino))
                return (void) fuse_reply_err(req, ENOTDIR);
        if (ino != INODE_ROOT) {
                r = fs_resolve(fs, ino, &d, &kind);
                if (r < 0)
                        return (void) fuse_reply_err(req, -r);
                if (kind != FILE_KIND_DIR && kind != FILE_KIND_GPIO)
                        return (void) fuse_reply_err(req, ENOTDIR);
        }
        fi->fh = 0;
        (void) fuse_reply_open(req, fi);
}

typedef struct DirBuffer {
        fuse_req_t req;
        char *buf;
        size_t size, used;
        off_t off;      /* the position to start from */
        bool full;
} DirBuffer;

/* Adds the entry at position pos (its offset cookie is pos + 1) if it is at or after the start. */
static void dir_buffer_add(DirBuffer *b, off_t pos, const char *name, fuse_ino_t ino, mode_t mode);

static void dir_buffer_add_cb(void *b, off_t pos, const char *name, fuse_ino_t ino, mode_t mode) {
        dir_buffer_add(b, pos, name, ino, mode);
}

static void dir_buffer_add(DirBuffer *b, off_t pos, const char *name, fuse_ino_t ino, mode_t mode) {
        struct stat st = { .st_ino = ino, .st_mode = mode };
        size_t n;

        if (b->full || pos < b->off)
                return;
        n = fuse_add_direntry(b->req, b->buf + b->used, b->size - b->used, name, &st, pos + 1);
        if (n > b->size - b->used) {
                b->full = true;
                return;
        }
        b->used += n;
}

static void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        Filesystem *fs = req_fs(req);
        _cleanup_free_ char *buf = NULL;
        DirBuffer b;
        FileKind kind;
        size_t slot;
        Dut *d;
        int r;

        if (!fs->serving)
                return (void) fuse_reply_err(req, EIO);

        buf = malloc(MAX(size, 1U));
        if (!buf)
                return (void) fuse_reply_err(req, ENOMEM);
        b = (DirBuffer) { .req = req, .buf = buf, .size = size, .off = off };

        /* Positions are stable across reloads: a slot or a file kind per position. */
        if (ino == INODE_ROOT) {
                dir_buffer_add(&b, 0, ".", INODE_ROOT, S_IFDIR);
                dir_buffer_add(&b, 1, "..", INODE_ROOT, S_IFDIR);
                for (size_t i = 0; i < fs->n_by_slot; i++)
                        if (fs->by_slot[i])
                                dir_buffer_add(&b, 2 + (off_t) i, fs->by_slot[i]->name,
                                               inode_make(i, FILE_KIND_DIR), S_IFDIR);
        } else if (gpio_inode_is(ino))
                return (void) fuse_reply_err(req, ENOTDIR);
        else {
                r = fs_resolve(fs, ino, &d, &kind);
                if (r < 0)
                        return (void) fuse_reply_err(req, -r);
                slot = fs_slot_of(fs, d->name);
                if (kind == FILE_KIND_GPIO) {
                        dir_buffer_add(&b, 0, ".", ino, S_IFDIR);
                        dir_buffer_add(&b, 1, "..", inode_make(slot, FILE_KIND_DIR), S_IFDIR);
                        gpio_dir_list(fs, d, dir_buffer_add_cb, &b);
                        return (void) fuse_reply_buf(req, buf, b.used);
                }
                if (kind != FILE_KIND_DIR)
                        return (void) fuse_reply_err(req, ENOTDIR);

                dir_buffer_add(&b, 0, ".", ino, S_IFDIR);
                dir_buffer_add(&b, 1, "..", INODE_ROOT, S_IFDIR);
                for (FileKind k = FILE_KIND_DIR + 1; k < _FILE_KIND_MAX; k++) {
                        struct stat st;

                        if (!dut_has_class(d, file_kind_driver_class(k)))
                                continue;
                        fs_fill_attr(fs, inode_make(slot, k), k, d, &st);
                        dir_buffer_add(&b, 1 + (off_t) k, file_kind_to_string(k), st.st_ino, st.st_mode);
                }
        }

        (void) fuse_reply_buf(req, buf, b.used);
}

static void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        (void) fuse_reply_err(req, 0);
}

static void fs_op_statfs(fuse_req_t req, fuse_ino_t ino) {
        Filesystem *fs = req_fs(req);
        struct statvfs st = {
                .f_bsize = 4096,
                .f_frsize = 4096,
                .f_files = 1 + fs->inodes.n_names * INODE_BLOCK,
                .f_namemax = 255,
        };

        (void) fuse_reply_statfs(req, &st);
}

static void fs_op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph) {
        Filesystem *fs = req_fs(req);
        Handle *h = fi_handle(fi);

        if (h && h->kind == FILE_KIND_SERIAL_LOG)
                return serial_log_file_poll(fs, req, h, ph);

        /* Everything else is always ready, like a regular file. */
        if (ph)
                fuse_pollhandle_destroy(ph);
        if (h && h->dead)
                return (void) fuse_reply_poll(req, POLLERR);
        (void) fuse_reply_poll(req, POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
}

static const struct fuse_lowlevel_ops fs_ops = {
        .init = fs_op_init,
        .lookup = fs_op_lookup,
        .forget = fs_op_forget,
        .forget_multi = fs_op_forget_multi,
        .getattr = fs_op_getattr,
        .setattr = fs_op_setattr,
        .readlink = fs_op_readlink,
        .mknod = fs_op_mknod,
        .mkdir = fs_op_mkdir,
        .unlink = fs_op_unlink,
        .rmdir = fs_op_rmdir,
        .symlink = fs_op_symlink,
        .rename = fs_op_rename,
        .link = fs_op_link,
        .create = fs_op_create,
        .open = fs_op_open,
        .read = fs_op_read,
        .write_buf = fs_op_write_buf,
        .flush = fs_op_flush,
        .release = fs_op_release,
        .fsync = fs_op_fsync,
        .opendir = fs_op_opendir,
        .readdir = fs_op_readdir,
        .releasedir = fs_op_releasedir,
        .statfs = fs_op_statfs,
        .poll = fs_op_poll,
};

const struct fuse_lowlevel_ops *fs_lowlevel_ops(void) {
        return &fs_ops;
}
