/* A local-mode instance: the daemons that `jmp local start` started for one mount point */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

typedef struct LocalInstance {
        char *mountpoint;  /* absolute */
        char *dir;         /* runtime state directory of this mount point */
        char *socket_path; /* jumpstarterd's agent socket */
        char *config_path; /* as recorded at start, or NULL */
        pid_t daemon_pid;  /* 0 when not recorded or no longer running */
        pid_t fuse_pid;
} LocalInstance;

/* The runtime directory: $JMP_RUNTIME_DIR, else /run/jumpstarter for root, else
 * $XDG_RUNTIME_DIR/jumpstarter. */
int runtime_dir(char **ret);

/* Fills in paths for mountpoint (made absolute; need not exist) and reads what the state directory
 * records: pids are only kept when that process still runs the program that was recorded. */
int local_instance_open(const char *mountpoint, LocalInstance **ret);
/* The one instance that runs when mountpoint is NULL: -ENOENT if none, -ENOTUNIQ if several. */
int local_instance_find(const char *mountpoint, LocalInstance **ret);
LocalInstance *local_instance_free(LocalInstance *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(LocalInstance *, local_instance_free);

bool local_instance_is_running(const LocalInstance *i);
/* Whether mountpoint is a mount point now, and whether it is ours (fuse.jumpstarter). */
int mountpoint_state(const char *path, bool *ret_mounted, bool *ret_ours);

/* Starts program with argv, detached in its own session, stdout/stderr appended to log_path,
 * NOTIFY_SOCKET set to a socket of ours; waits until it sends READY=1, exits or timeout_usec
 * passes. On failure the process is killed and *ret_status says why (caller frees). */
int spawn_and_wait_ready(const char *dir, const char *name, char *const argv[], const char *log_path,
                         uint64_t timeout_usec, pid_t *ret_pid, char **ret_status);

int local_instance_record(LocalInstance *i, const char *config_path);
/* SIGTERM, wait up to timeout, then SIGKILL. No-op for pid 0. */
int process_stop(pid_t pid, const char *what, uint64_t timeout_usec);
/* Stops fuse (unmounting, lazily if files are open), then the daemon (which powers the DUTs
 * off), and removes the state directory. */
int local_instance_stop(LocalInstance *i);

/* The last lines of a log file, for error messages. Caller frees. */
char *log_tail(const char *path, size_t max_bytes);
/* Finds a program next to jmp (build tree and installed layouts), or in SBINDIR. */
int find_program(const char *name, char **ret);
