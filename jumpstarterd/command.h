/* A configured command run asynchronously on the event loop */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

/*
 * For drivers whose hardware is worked by a program that the exporter config names (a relay tool,
 * a mux tool): argv is run directly, never by a shell, and nothing in it comes from a client. The
 * command gets its own process group, /dev/null as stdin, and pipes as stdout and stderr that the
 * loop reads: stdout is kept (up to a bound) for the caller, and the lines of both go to the log
 * with the DUT's name. Its end is watched with sd_event_add_child(), so SIGCHLD must be blocked
 * in the whole process (jumpstarterd's main() does it before anything starts; command_run()
 * blocks it in the calling thread, for processes without that main(), such as tests).
 */

typedef struct Command Command;

/* How the command ended: r >= 0 is its wait status as waitpid() stores it (WIFEXITED(r),
 * WEXITSTATUS(r), WIFSIGNALED(r), WTERMSIG(r)); -ETIME means it ran past its timeout and its
 * whole process group was killed. Called once, from the event loop, never from within
 * command_run(); command_free() may be called from within. */
typedef void (*CommandDoneFunc)(Command *c, int r, void *userdata);

typedef struct CommandOptions {
        const char *dut;       /* in front of every log message */
        const char *what;      /* "power on command": lines are logged as "<what> output: <line>"
                                * (stdout) and "<what> error: <line>" (stderr) */
        uint64_t timeout_usec; /* 0: none */
        size_t stdout_max;     /* bytes of stdout kept for command_get_stdout(); the rest is dropped */
        bool stdout_is_data;   /* stdout is a result (a reading), not logged */
} CommandOptions;

/* Starts argv[0] (looked up in PATH without a slash) with argv. Returns 0 and calls done later, or
 * a negative errno, logged with the program's name: -ENOENT when there is no such program,
 * -EACCES when it cannot be executed. Waits only until the program is executed (to report just
 * that), never for the command itself. */
int command_run(sd_event *event, char *const *argv, const CommandOptions *o, CommandDoneFunc done,
                void *userdata, Command **ret);

/* Kills the whole process group of a command that still runs (SIGKILL) and reaps it; its done is
 * not called. Accepts NULL, returns NULL. */
Command *command_free(Command *c);

static inline void command_freep(Command **c) {
        command_free(*c);
}

/* The first stdout_max bytes the command wrote to stdout, NUL-terminated (the output may hold NULs
 * itself: *ret_size, if not NULL, is its length). Complete once done is called. */
const char *command_get_stdout(const Command *c, size_t *ret_size);

/* The process (and process group) ID; 0 once the command has ended. */
pid_t command_get_pid(const Command *c);
