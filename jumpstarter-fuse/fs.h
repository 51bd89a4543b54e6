/* The file view: state shared by the FUSE operations and the per-file-kind code */
#pragma once

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>

#include "agent-client.h"
#include "cache-invalidator.h"
#include "dut-list.h"
#include "inode-table.h"
#include "storage-io.h"

#define ENTRY_TIMEOUT 1.0
#define ATTR_TIMEOUT 1.0

typedef struct Handle Handle;
typedef struct Filesystem Filesystem;
typedef struct AgentTextFile AgentTextFile;

/* Called once, when the first DUT list is loaded (error 0) or could not be (error < 0). */
typedef void (*fs_ready_t)(Filesystem *fs, int error, void *userdata);

struct Filesystem {
        sd_event *event;
        Agent *agent;
        struct fuse_session *session;   /* set once mounted */
        CacheInvalidator *invalidator;  /* set once mounted */

        fs_ready_t ready;
        void *ready_userdata;
        bool loaded_once;

        InodeTable inodes;
        InodeTable gpio_inodes;         /* "dut/line" names of GPIO line files, see INODE_GPIO_BASE */
        DutList duts;
        Dut **by_slot;                  /* slot -> the DUT in duts, or NULL while absent */
        size_t n_by_slot;
        /* Connected and the DUT list is current: otherwise every DUT operation fails with EIO. */
        bool serving;
        /* A whole list is being loaded; a DUT came or went meanwhile, so load it again after. */
        bool loading, reload_wanted;
        /* DUTs that DutAdded announced and that are being described. */
        struct DutAdd *adds;

        uid_t uid;
        gid_t gid;
        struct timespec start_time;
        /* Running as root for every user (allow_other): calls that act on a DUT name the uid of the
         * FUSE request (the *As methods), and jumpstarterd checks that it holds the DUT. */
        bool act_for_users;

        Handle *handles;                /* every open file */
        StorageIo *storage_io;          /* the threads that read and write storage */

        char *io_buffer;                /* for reads from serial.log */
        size_t io_buffer_size;
};

/* An open file: fi->fh points to it. Referenced by the kernel's open file and by requests in flight. */
struct Handle {
        unsigned n_ref;
        Filesystem *fs;
        Handle *prev, *next;
        FileKind kind;
        char *dut;
        /* The agent connection it was opened on is gone, or it was released: fail with EIO. */
        bool dead;

        int fd;                         /* storage: the device; serial.log: the log socket */
        char *text;                     /* power: the state read at offset 0; labels, lease: a snapshot */
        size_t text_size;
        bool text_valid;

        uint64_t size;                  /* storage */
        uint64_t session;               /* storage: != 0 for a writable open */
        uint64_t reader;                /* serial.log: the daemon's id of this reader */
        char *gpio_line;                /* gpio/<line> (kind FILE_KIND_GPIO): the line's name */

        sd_event_source *io_source;     /* serial.log: waits for data for a poll handle */
        struct fuse_pollhandle *poll_handle;
};

/* A FUSE request waiting for the agent. */
typedef struct PendingRequest {
        Filesystem *fs;
        fuse_req_t req;                 /* NULL once answered */
        Handle *handle;                 /* a reference, or NULL */
        fuse_ino_t ino;
        char *dut;
        size_t size;
        off_t offset;
        struct fuse_file_info fi;
        bool lookup;
        const AgentTextFile *text_file; /* a read of an agent text file: how to turn the reply into text */
        uid_t uid;                      /* of the FUSE request */
} PendingRequest;

int fs_new(sd_event *event, const char *socket_path, fs_ready_t ready, void *userdata, Filesystem **ret);
/* The DUT set changes (DutAdded/DutRemoved): directories appear and go, open files of a DUT that
 * went fail with EIO. */
void fs_dut_added(Filesystem *fs, const char *name);
void fs_dut_removed(Filesystem *fs, const char *name);
/* DutChanged: describes the DUT again (its lease, its storage size) and drops what the kernel
 * cached of its files. */
void fs_dut_changed(Filesystem *fs, const char *name);
Filesystem *fs_free(Filesystem *fs);
/* Connects to the agent and loads the DUT list; ready() is called when that is done. */
int fs_start(Filesystem *fs);
void fs_attach_session(Filesystem *fs, struct fuse_session *se, CacheInvalidator *invalidator);
const struct fuse_lowlevel_ops *fs_lowlevel_ops(void);

/* The DUT and kind of a DUT inode: -EIO while not serving, -ENOENT for what does not exist (now). */
int fs_resolve(Filesystem *fs, fuse_ino_t ino, Dut **ret_dut, FileKind *ret_kind);
/* What every node's attributes share: owner, one link, the mount's start as its times; mode as given. */
void fs_fill_node_attr(Filesystem *fs, fuse_ino_t ino, mode_t mode, struct stat *st);
/* Owner and mode of a DUT's node: a leased DUT's are its holder's (0700 directories, files 0600 or
 * 0400), with its share group's (0750, 0660, 0440); otherwise the view's (root's when mounted for
 * all users). */
void fs_apply_owner(Filesystem *fs, const Dut *d, struct stat *st);
/* Attributes of a node (serial.log: size and mtime 0, see serial_log_file_stat()). */
void fs_fill_attr(Filesystem *fs, fuse_ino_t ino, FileKind kind, const Dut *d, struct stat *st);
void fs_fill_entry(Filesystem *fs, fuse_ino_t ino, FileKind kind, const Dut *d, struct fuse_entry_param *e);
int fs_reply_slice(fuse_req_t req, const char *text, size_t text_size, size_t size, off_t off);
/* Copies the payload of a write that carries a word (power, gpio/<line>) into buf: -EIO when h is
 * dead, -EINVAL when the payload is larger than buf_size. */
int fs_copy_word(Handle *h, struct fuse_bufvec *bufv, char *buf, size_t buf_size, size_t *ret_n);
/* A buffer of at least size bytes, reused between requests. */
char *fs_io_buffer(Filesystem *fs, size_t size);

PendingRequest *pending_request_new(Filesystem *fs, fuse_req_t req, Handle *h);
/* An open of one of dut's files that waits for the agent: keeps the DUT's name and a copy of fi.
 * NULL when out of memory (req is not answered then). */
PendingRequest *pending_request_new_open(Filesystem *fs, fuse_req_t req, const char *dut,
                                         const struct fuse_file_info *fi);
/* Calls method (agent_call()) with p as userdata and pending_request_free() as destroy; when the
 * call cannot be made, answers p's request with that error and frees p. */
void pending_request_call(PendingRequest *p, const char *method, uint64_t timeout_usec, agent_reply_t handler,
                          const char *types, ...);
void pending_request_callv(PendingRequest *p, const char *method, uint64_t timeout_usec, agent_reply_t handler,
                           const char *types, va_list ap);
/* agent_destroy_t: answers EIO if the request is still unanswered, and frees it. */
void pending_request_free(void *userdata);
/* Answers with an error and forgets the request (no-op when already answered). */
void pending_request_fail(PendingRequest *p, int error);

/* handle.c */
Handle *handle_new(Filesystem *fs, FileKind kind, const char *dut);
Handle *handle_ref(Handle *h);
Handle *handle_unref(Handle *h);
/* Stops using the handle's resources (EIO from now on): the connection they belong to is gone. */
void handle_kill(Handle *h);
/* The kernel closed the file (or never got it): kills it, ends what the daemon holds for it, and drops
 * the kernel's reference. */
void handle_release(Handle *h);
/* Replies to an open with h as fh; cleans up if the kernel did not take it. */
void handle_reply_open(Handle *h, fuse_req_t req, struct fuse_file_info *fi);

/* agent-text-file.c: small files whose text is what the agent answers to a call (power,
 * power.reading, gpio/<line>). */
struct AgentTextFile {
        const char *method;
        uint64_t timeout_usec;
        /* Turns the method return into the file's text (a new string): -EIO for a reply that does not
         * parse, -ENOMEM. */
        int (*format)(sd_bus_message *reply, char **ret_text);
};

/* A read of h: at offset 0 calls f->method with the arguments (types as for sd_bus_message_append)
 * and answers from its text, which h keeps; later offsets of the same open are served from that. */
void agent_text_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off, const AgentTextFile *f,
                          const char *types, ...);

/* power-file.c */
typedef enum PowerAction {
        POWER_ACTION_ON,
        POWER_ACTION_OFF,
        POWER_ACTION_CYCLE,
        _POWER_ACTION_MAX,
        _POWER_ACTION_INVALID = -EINVAL,
} PowerAction;

const char *power_action_to_string(PowerAction a);
/* Parses what a write to the power file carries: "on", "off" or "cycle", optionally followed by one
 * newline; anything else is -EINVAL. */
PowerAction power_action_from_payload(const char *buf, size_t size);
void power_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off);
void power_file_write(Filesystem *fs, fuse_req_t req, Handle *h, struct fuse_bufvec *bufv);

/* power-reading-file.c */
void power_reading_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off);

/* gpio-file.c: gpio/ and its files, one per line. Their handles have kind FILE_KIND_GPIO (a
 * directory is never opened as a file) and name the line in gpio_line. */
bool gpio_inode_is(fuse_ino_t ino);
/* The value a write to a line file carries: "0" or "1", optionally followed by one newline;
 * anything else is -EINVAL. */
int gpio_value_from_payload(const char *buf, size_t size);
void gpio_dir_lookup(Filesystem *fs, fuse_req_t req, const Dut *d, const char *name);
/* Adds the entries of d's gpio/ (after "." and ".."): add(pos, name, ino, mode) per line. */
void gpio_dir_list(Filesystem *fs, const Dut *d, void (*add)(void *b, off_t pos, const char *name, fuse_ino_t ino, mode_t mode), void *b);
void gpio_file_getattr(Filesystem *fs, fuse_req_t req, fuse_ino_t ino, int to_set);
void gpio_file_open(Filesystem *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void gpio_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off);
void gpio_file_write(Filesystem *fs, fuse_req_t req, Handle *h, struct fuse_bufvec *bufv);

/* serial-log-file.c */
void serial_log_file_open(Filesystem *fs, fuse_req_t req, const Dut *d, struct fuse_file_info *fi);
void serial_log_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size);
void serial_log_file_poll(Filesystem *fs, fuse_req_t req, Handle *h, struct fuse_pollhandle *ph);
/* Replies to a lookup (lookup true) or getattr with the log's size and mtime from SerialLogStat. */
void serial_log_file_stat(Filesystem *fs, fuse_req_t req, fuse_ino_t ino, const Dut *d, bool lookup);
void serial_log_handle_kill(Handle *h);

/* storage-file.c */
void storage_file_open(Filesystem *fs, fuse_req_t req, const Dut *d, struct fuse_file_info *fi);
void storage_file_read(Filesystem *fs, fuse_req_t req, Handle *h, size_t size, off_t off);
void storage_file_write(Filesystem *fs, fuse_req_t req, Handle *h, struct fuse_bufvec *bufv, off_t off);
void storage_file_fsync(Filesystem *fs, fuse_req_t req, Handle *h);
/* A truncation to size: accepted (and ignored) up to the device size, ENOSPC beyond it. */
int storage_file_check_truncate(const Dut *d, uint64_t size);
void storage_handle_kill(Handle *h);
void storage_handle_release(Handle *h);
