/* Power switch driven by the commands that the config names */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "command.h"
#include "daemon-util.h"
#include "driver.h"
#include "log.h"
#include "queue.h"
#include "macro.h"
#include "power-drivers.h"
#include "power-reading.h"
#include "power-sequence.h"

#define COMMAND_TIMEOUT_DEFAULT_USEC (10 * USEC_PER_SEC)
#define COMMAND_CYCLE_DELAY_DEFAULT_USEC (2 * USEC_PER_SEC)
/* What a reading command prints is kept up to this much. */
#define COMMAND_OUTPUT_MAX 4096

typedef enum CommandKind {
        COMMAND_ON,
        COMMAND_OFF,
        COMMAND_CYCLE,
        COMMAND_STATUS,
        COMMAND_READING,
        _COMMAND_KIND_MAX,
        _COMMAND_KIND_INVALID = -EINVAL,
} CommandKind;

static const char *const command_kind_table[_COMMAND_KIND_MAX] = {
        [COMMAND_ON] = "on",
        [COMMAND_OFF] = "off",
        [COMMAND_CYCLE] = "cycle",
        [COMMAND_STATUS] = "status",
        [COMMAND_READING] = "reading",
};

typedef struct CommandPower CommandPower;
typedef struct CommandOp CommandOp;

/* One command to run. Commands run one at a time, in order. */
struct CommandOp {
        CommandKind kind;
        PowerReadingFunc reading_done;
        void *userdata;
        CommandOp *next;
};

struct CommandPower {
        DriverContext ctx;
        char *const *argv[_COMMAND_KIND_MAX];
        uint64_t timeout_usec;

        CommandOp *queue, *queue_tail;

        /* The command of the queue's head, while it runs. */
        Command *command;

        PowerSequence seq;
};

static void command_power_run(CommandPower *c);

/* The head of the queue is finished with r (< 0: failed), the exit status and the reading. */
static void command_power_finish(CommandPower *c, int r, int status, double watts) {
        CommandOp *op = queue_pop(c->queue, c->queue_tail);

        assert(op);

        switch (op->kind) {
        case COMMAND_ON:
        case COMMAND_OFF:
        case COMMAND_CYCLE:
                power_sequence_switched(&c->seq, r, op->kind == COMMAND_OFF ? POWER_OFF : POWER_ON);
                break;
        case COMMAND_STATUS:
                if (r >= 0)
                        power_sequence_set_state(&c->seq, status == 0 ? POWER_ON : status == 1 ? POWER_OFF : POWER_UNKNOWN);
                break;
        case COMMAND_READING:
                op->reading_done(r, r < 0 ? 0.0 : watts, op->userdata);
                break;
        default:
                assert(!"unknown command kind");
        }
        free(op);
        command_power_run(c);
}

static void command_power_on_exit(Command *command, int r, void *userdata) {
        CommandPower *c = userdata;
        CommandOp *op = c->queue;
        const char *kind = command_kind_table[op->kind];
        double watts = 0.0;
        int status = -1;

        assert(op);

        if (r == -ETIME) {
                log_dut_prefix(LOG_ERR, 0, c->ctx.dut_name, "power %s command timed out after %" PRIu64 " ms; killed it",
                               kind, c->timeout_usec / USEC_PER_MSEC);
                r = -EIO;
        } else if (r < 0)
                r = log_dut_prefix(LOG_ERR, r, c->ctx.dut_name, "power %s command failed: %m", kind);
        else if (WIFEXITED(r)) {
                status = WEXITSTATUS(r);
                r = 0;
                if (status != 0 && op->kind != COMMAND_STATUS) {
                        log_dut_prefix(LOG_ERR, 0, c->ctx.dut_name, "power %s command failed with exit status %i",
                                       kind, status);
                        r = -EIO;
                }
        } else {
                log_dut_prefix(LOG_ERR, 0, c->ctx.dut_name, "power %s command was killed by signal %s", kind,
                               strsignal(WTERMSIG(r)));
                r = -EIO;
        }

        if (r >= 0 && op->kind == COMMAND_READING) {
                const char *out = command_get_stdout(command, NULL);

                r = power_reading_parse(out, &watts);
                if (r < 0) {
                        log_dut_prefix(LOG_ERR, 0, c->ctx.dut_name, "power reading command printed \"%.100s\", not watts",
                                       out);
                        r = -EIO;
                }
        }

        /* Before the next command of the queue starts. */
        c->command = command_free(c->command);
        command_power_finish(c, r, status, watts);
}

static int command_power_start(CommandPower *c) {
        CommandOp *op = c->queue;
        char what[sizeof("power reading command")];

        assert(op);
        assert(c->argv[op->kind]);
        assert(!c->command);

        snprintf(what, sizeof what, "power %s command", command_kind_table[op->kind]);
        return command_run(c->ctx.event, c->argv[op->kind],
                           &(const CommandOptions) {
                                   .dut = c->ctx.dut_name,
                                   .what = what,
                                   .timeout_usec = c->timeout_usec,
                                   .stdout_max = COMMAND_OUTPUT_MAX,
                                   /* A reading's output is its result, not news. */
                                   .stdout_is_data = op->kind == COMMAND_READING,
                           },
                           command_power_on_exit, c, &c->command);
}

static void command_power_run(CommandPower *c) {
        if (c->command || !c->queue)
                return;
        /* command_run() logged why it failed; command_power_finish() runs the rest of the queue. */
        if (command_power_start(c) < 0)
                command_power_finish(c, -EIO, -1, 0.0);
}

static int command_power_enqueue(CommandPower *c, CommandKind kind, PowerReadingFunc reading_done, void *userdata) {
        CommandOp *op;

        op = calloc(1, sizeof *op);
        if (!op)
                return -ENOMEM;
        *op = (CommandOp) {
                .kind = kind,
                .reading_done = reading_done,
                .userdata = userdata,
        };
        queue_push(c->queue, c->queue_tail, op);
        if (!c->command && c->queue == op) {
                int r = command_power_start(c);

                if (r < 0) {
                        queue_pop(c->queue, c->queue_tail);
                        free(op);
                        /* Logged by command_run(). A command that cannot run is a failed one, and
                         * what it did to the power is as unknown. */
                        if (kind != COMMAND_STATUS && kind != COMMAND_READING)
                                power_sequence_set_state(&c->seq, POWER_UNKNOWN);
                        return r == -ENOMEM ? r : -EIO;
                }
        }
        return 0;
}

static int command_power_switch(void *userdata, PowerAction action) {
        static const CommandKind kinds[_POWER_ACTION_MAX] = {
                [POWER_ACTION_ON] = COMMAND_ON,
                [POWER_ACTION_OFF] = COMMAND_OFF,
                [POWER_ACTION_CYCLE] = COMMAND_CYCLE,
        };

        return command_power_enqueue(userdata, kinds[action], NULL, NULL);
}

static int command_power_set(void *instance, PowerAction action, PowerDoneFunc done, void *userdata) {
        CommandPower *c = instance;
        return power_sequence_set(&c->seq, action, done, userdata);
}

static PowerState command_power_get(void *instance) {
        CommandPower *c = instance;
        return c->seq.state;
}

static bool command_power_can_read(void *instance) {
        CommandPower *c = instance;
        return c->argv[COMMAND_READING];
}

static int command_power_read(void *instance, PowerReadingFunc done, void *userdata) {
        CommandPower *c = instance;

        if (!c->argv[COMMAND_READING])
                return -EOPNOTSUPP;
        return command_power_enqueue(c, COMMAND_READING, done, userdata);
}

static void *command_power_free(void *instance) {
        CommandPower *c = instance;
        CommandOp *op;

        if (!c)
                return NULL;
        /* Nobody will hear how it ends: this kills it. */
        command_free(c->command);
        while ((op = queue_pop(c->queue, c->queue_tail)))
                free(op);
        power_sequence_done(&c->seq);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(CommandPower *, command_power_free);

static int command_power_new(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        _cleanup_(command_power_freep) CommandPower *c = NULL;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return log_oom();
        c->ctx = *ctx;
        for (CommandKind k = 0; k < _COMMAND_KIND_MAX; k++)
                c->argv[k] = driver_config_get_strv(config, command_kind_table[k]);
        c->timeout_usec = MAX(driver_config_get_u64(config, "timeout", COMMAND_TIMEOUT_DEFAULT_USEC), USEC_PER_MSEC);
        /* Without a cycle command, a cycle is the off command, a wait and the on command. */
        power_sequence_init(&c->seq, &c->ctx, "command-power-cycle",
                            driver_config_get_u64(config, "cycle_delay", COMMAND_CYCLE_DELAY_DEFAULT_USEC),
                            c->argv[COMMAND_CYCLE], command_power_switch, c);

        /* The state until a command says otherwise: unknown, or what the status command tells. A
         * status command that cannot run leaves it unknown, as one that fails does. */
        if (c->argv[COMMAND_STATUS]) {
                r = command_power_enqueue(c, COMMAND_STATUS, NULL, NULL);
                if (r == -ENOMEM)
                        return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

static const PowerDriverOps command_power_ops = {
        .set = command_power_set,
        .get = command_power_get,
        .can_read = command_power_can_read,
        .read = command_power_read,
};

const Driver driver_command = {
        .name = "command",
        .new = command_power_new,
        .free = command_power_free,
        .power = &command_power_ops,
};
