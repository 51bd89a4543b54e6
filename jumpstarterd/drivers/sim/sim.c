/* Simulated board: a power switch, a console with a boot log and a tiny shell, and storage */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>

#include "daemon-util.h"
#include "driver.h"
#include "file-storage.h"
#include "log.h"
#include "macro.h"
#include "sim.h"

#define SIM_LINE_MAX       1024
#define SIM_OUT_MAX        4096
#define FLOOD_LINE_SIZE    64
#define FLOOD_CHUNK_LINES  256

struct Sim {
        DriverContext ctx;
        char *name;
        char *prompt;
        uint64_t boot_time_usec;
        uint64_t cycle_delay_usec;
        uint64_t log_size;

        int storage_fd;
        uint64_t storage_size;

        PowerState state;
        uint64_t power_on_usec; /* CLOCK_MONOTONIC */
        bool booted;
        unsigned boot_step;
        sd_event_source *boot_timer;

        sd_event_source *cycle_timer;
        PowerDoneFunc cycle_done;
        void *cycle_userdata;

        sd_event_source *flood_source;
        unsigned flood_next, flood_last;

        char line[SIM_LINE_MAX];
        size_t line_len;
        bool last_was_cr;

        /* Output of one input chunk goes out in one write: typing a line costs one terminal write
         * per keystroke, not per echoed character. */
        bool buffering;
        char out[SIM_OUT_MAX];
        size_t out_len;
};

typedef struct BootLine {
        const char *text;
        bool with_name; /* followed by the DUT name */
} BootLine;

static const BootLine boot_lines[] = {
        { "U-Boot 2024.01 (sim)" },
        { "DRAM:  512 MiB" },
        { "Hit any key to stop autoboot:  0" },
        { "Starting kernel ..." },
        { "[    0.000000] Linux version 6.1.0-sim (jumpstarter) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT" },
        { "[    0.000000] Machine model: Jumpstarter simulated board ", true },
        { "[    0.412000] Run /sbin/init as init process" },
        { "Welcome to ", true },
        { "boot complete" },
};

static void sim_flush(Sim *s) {
        if (s->out_len > 0 && s->ctx.serial_output)
                s->ctx.serial_output(s->ctx.userdata, s->out, s->out_len);
        s->out_len = 0;
}

static void sim_write(Sim *s, const void *data, size_t n) {
        if (!s->buffering) {
                if (s->ctx.serial_output)
                        s->ctx.serial_output(s->ctx.userdata, data, n);
                return;
        }
        if (s->out_len + n > sizeof s->out) {
                sim_flush(s);
                if (n > sizeof s->out) {
                        if (s->ctx.serial_output)
                                s->ctx.serial_output(s->ctx.userdata, data, n);
                        return;
                }
        }
        memcpy(s->out + s->out_len, data, n);
        s->out_len += n;
}

static void sim_puts(Sim *s, const char *text) {
        sim_write(s, text, strlen(text));
}

_printf_(2, 3) static void sim_printf(Sim *s, const char *format, ...) {
        char buf[SIM_LINE_MAX + 128];
        va_list ap;
        int n;

        va_start(ap, format);
        n = vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);
        if (n > 0)
                sim_write(s, buf, MIN((size_t) n, sizeof buf - 1));
}

static void sim_prompt(Sim *s) {
        sim_puts(s, s->prompt);
}

static void sim_power_changed(Sim *s, PowerState state) {
        if (s->state == state)
                return;
        s->state = state;
        if (s->ctx.power_changed)
                s->ctx.power_changed(s->ctx.userdata, state);
}

static void sim_flood_stop(Sim *s) {
        s->flood_source = sd_event_source_disable_unref(s->flood_source);
}

static int sim_on_flood(sd_event_source *source, void *userdata) {
        Sim *s = userdata;
        static const char filler[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        char buf[FLOOD_CHUNK_LINES * (FLOOD_LINE_SIZE + 8)];
        size_t n = 0;

        for (unsigned i = 0; i < FLOOD_CHUNK_LINES && s->flood_next <= s->flood_last; i++, s->flood_next++) {
                int k = snprintf(buf + n, sizeof buf - n, "flood %06u ", s->flood_next);

                assert(k > 0);
                n += (size_t) k;
                /* Pad each line to FLOOD_LINE_SIZE bytes including "\r\n". */
                k = FLOOD_LINE_SIZE - 2 - k;
                if (k > 0) {
                        memcpy(buf + n, filler, (size_t) k);
                        n += (size_t) k;
                }
                memcpy(buf + n, "\r\n", 2);
                n += 2;
        }
        sim_write(s, buf, n);

        if (s->flood_next > s->flood_last) {
                sim_flood_stop(s);
                sim_prompt(s);
        }
        return 0;
}

static int sim_flood_start(Sim *s, unsigned lines) {
        int r;

        r = sd_event_add_defer(s->ctx.event, &s->flood_source, sim_on_flood, s);
        if (r < 0)
                return r;
        /* Everything else first: the bus, keystrokes and serial.log readers stay responsive, and
         * readers that keep up get all of it. */
        (void) sd_event_source_set_priority(s->flood_source, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_description(s->flood_source, "sim-flood");
        /* Defer sources are oneshot by default; this one runs until the flood is done. */
        r = sd_event_source_set_enabled(s->flood_source, SD_EVENT_ON);
        if (r < 0) {
                sim_flood_stop(s);
                return r;
        }
        s->flood_next = 1;
        s->flood_last = lines;
        return 0;
}

static void sim_cmd_help(Sim *s) {
        sim_puts(s,
                 "Commands:\r\n"
                 "  help               this list\r\n"
                 "  echo ARGS...       print the arguments\r\n"
                 "  uname [-a]         the system name\r\n"
                 "  uptime             seconds since power on\r\n"
                 "  cat /etc/hostname  the board's name\r\n"
                 "  flood N            print N numbered lines of 64 bytes (N <= 1000000)\r\n");
}

static void sim_cmd_uname(Sim *s, int argc, char **argv) {
        if (argc == 1 || (argc == 2 && streq(argv[1], "-s")))
                sim_puts(s, "Linux\r\n");
        else if (argc == 2 && streq(argv[1], "-a"))
                sim_printf(s, "Linux %s 6.1.0-sim #1 SMP PREEMPT jumpstarter aarch64 GNU/Linux\r\n", s->name);
        else if (argc == 2 && streq(argv[1], "-n"))
                sim_printf(s, "%s\r\n", s->name);
        else if (argc == 2 && streq(argv[1], "-r"))
                sim_puts(s, "6.1.0-sim\r\n");
        else
                sim_printf(s, "uname: unrecognized option '%s'\r\n", argv[1]);
}

static void sim_cmd_uptime(Sim *s) {
        uint64_t t = 0;

        (void) sd_event_now(s->ctx.event, CLOCK_MONOTONIC, &t);
        sim_printf(s, "up %" PRIu64 " seconds\r\n", t > s->power_on_usec ? (t - s->power_on_usec) / USEC_PER_SEC : 0);
}

static void sim_cmd_cat(Sim *s, int argc, char **argv) {
        if (argc < 2) {
                sim_puts(s, "cat: missing operand\r\n");
                return;
        }
        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "/etc/hostname"))
                        sim_printf(s, "%s\r\n", s->name);
                else
                        sim_printf(s, "cat: %s: No such file or directory\r\n", argv[i]);
        }
}

/* Returns true when the command prints the prompt itself later. */
static bool sim_cmd_flood(Sim *s, int argc, char **argv) {
        char *end;
        unsigned long n;
        int r;

        if (argc != 2) {
                sim_puts(s, "usage: flood N\r\n");
                return false;
        }
        errno = 0;
        n = strtoul(argv[1], &end, 10);
        if (errno != 0 || *end != '\0' || argv[1][0] < '0' || argv[1][0] > '9' || n < 1 || n > SIM_FLOOD_MAX) {
                sim_printf(s, "flood: %s: not a number of lines between 1 and %u\r\n", argv[1], SIM_FLOOD_MAX);
                return false;
        }
        r = sim_flood_start(s, (unsigned) n);
        if (r < 0) {
                sim_printf(s, "flood: %s\r\n", strerror(-r));
                return false;
        }
        return true;
}

static void sim_run_line(Sim *s) {
        char *argv[64], *state = NULL, *w;
        int argc = 0;

        s->line[s->line_len] = '\0';
        s->line_len = 0;

        for (w = strtok_r(s->line, " \t", &state); w && argc < (int) ELEMENTSOF(argv);
             w = strtok_r(NULL, " \t", &state))
                argv[argc++] = w;

        if (argc == 0)
                ;
        else if (streq(argv[0], "help"))
                sim_cmd_help(s);
        else if (streq(argv[0], "echo")) {
                for (int i = 1; i < argc; i++) {
                        if (i > 1)
                                sim_puts(s, " ");
                        sim_puts(s, argv[i]);
                }
                sim_puts(s, "\r\n");
        } else if (streq(argv[0], "uname"))
                sim_cmd_uname(s, argc, argv);
        else if (streq(argv[0], "uptime"))
                sim_cmd_uptime(s);
        else if (streq(argv[0], "cat"))
                sim_cmd_cat(s, argc, argv);
        else if (streq(argv[0], "flood")) {
                if (sim_cmd_flood(s, argc, argv))
                        return;
        } else
                sim_printf(s, "sh: %s: not found\r\n", argv[0]);

        sim_prompt(s);
}

static void sim_input_byte(Sim *s, uint8_t c) {
        bool was_cr = s->last_was_cr;

        s->last_was_cr = c == '\r';

        if (s->flood_source) {
                /* A running command reads nothing but an interrupt. */
                if (c == 0x03) {
                        sim_flood_stop(s);
                        sim_puts(s, "^C\r\n");
                        sim_prompt(s);
                }
                return;
        }

        switch (c) {
        case '\n':
                if (was_cr)
                        return; /* the second half of "\r\n" */
                __attribute__((fallthrough));
        case '\r':
                sim_puts(s, "\r\n");
                sim_run_line(s);
                return;
        case 0x7f: /* DEL */
        case '\b':
                if (s->line_len > 0) {
                        s->line_len--;
                        sim_puts(s, "\b \b");
                }
                return;
        case 0x03: /* ^C */
                s->line_len = 0;
                sim_puts(s, "^C\r\n");
                sim_prompt(s);
                return;
        case 0x15: /* ^U */
                while (s->line_len > 0) {
                        s->line_len--;
                        sim_puts(s, "\b \b");
                }
                return;
        case '\t':
                c = ' ';
                break;
        default:
                if (c < 0x20 || c == 0x7f)
                        return;
        }

        if (s->line_len + 1 >= sizeof s->line)
                return;
        s->line[s->line_len++] = (char) c;
        sim_write(s, &c, 1);
}

static void sim_input(void *instance, const void *data, size_t n) {
        Sim *s = instance;
        const uint8_t *p = data;

        s->buffering = true;
        for (size_t i = 0; i < n; i++) {
                /* A board that is off or still booting has no shell to read keystrokes. */
                if (s->state != POWER_ON || !s->booted)
                        break;
                sim_input_byte(s, p[i]);
        }
        s->buffering = false;
        sim_flush(s);
}

static int sim_boot_schedule(Sim *s) {
        uint64_t at = s->power_on_usec + (s->boot_step + 1) * s->boot_time_usec / ELEMENTSOF(boot_lines);
        int r;

        r = sd_event_source_set_time(s->boot_timer, at);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s->boot_timer, SD_EVENT_ONESHOT);
}

static int sim_on_boot_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        Sim *s = userdata;
        const BootLine *l;
        int r;

        assert(s->boot_step < ELEMENTSOF(boot_lines));
        l = &boot_lines[s->boot_step++];
        sim_printf(s, "%s%s\r\n", l->text, l->with_name ? s->name : "");

        if (s->boot_step < ELEMENTSOF(boot_lines)) {
                r = sim_boot_schedule(s);
                if (r < 0)
                        return log_dut_prefix(LOG_ERR, r, s->name, "Failed to schedule the boot log: %m");
                return 0;
        }

        s->booted = true;
        s->line_len = 0;
        sim_prompt(s);
        return 0;
}

static void sim_power_off(Sim *s) {
        s->boot_timer = sd_event_source_disable_unref(s->boot_timer);
        s->cycle_timer = sd_event_source_disable_unref(s->cycle_timer);
        s->cycle_done = NULL;
        sim_flood_stop(s);
        s->booted = false;
        s->line_len = 0;
        sim_power_changed(s, POWER_OFF);
}

static int sim_power_on(Sim *s) {
        int r;

        if (s->state == POWER_ON)
                return 0;

        (void) sd_event_now(s->ctx.event, CLOCK_MONOTONIC, &s->power_on_usec);
        s->booted = false;
        s->boot_step = 0;
        s->line_len = 0;
        s->last_was_cr = false;

        /* Accuracy 1us: the default lets sd-event coalesce wakeups by up to 250ms, longer than
         * the whole boot. */
        r = sd_event_add_time(s->ctx.event, &s->boot_timer, CLOCK_MONOTONIC, s->power_on_usec, 1,
                              sim_on_boot_timer, s);
        if (r < 0)
                return log_dut_prefix(LOG_ERR, r, s->name, "Failed to start the boot log: %m");
        (void) sd_event_source_set_description(s->boot_timer, "sim-boot");
        r = sim_boot_schedule(s);
        if (r < 0) {
                s->boot_timer = sd_event_source_disable_unref(s->boot_timer);
                return log_dut_prefix(LOG_ERR, r, s->name, "Failed to schedule the boot log: %m");
        }

        sim_power_changed(s, POWER_ON);
        return 0;
}

static int sim_on_cycle_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        Sim *s = userdata;
        PowerDoneFunc done = s->cycle_done;
        void *done_userdata = s->cycle_userdata;
        int r;

        s->cycle_timer = sd_event_source_disable_unref(s->cycle_timer);
        s->cycle_done = NULL;

        r = sim_power_on(s);
        if (done)
                done(r, done_userdata);
        return 0;
}

static int sim_set_power(void *instance, PowerAction action, PowerDoneFunc done, void *userdata) {
        Sim *s = instance;
        int r;

        switch (action) {
        case POWER_ACTION_ON:
                r = sim_power_on(s);
                return r < 0 ? r : 1;

        case POWER_ACTION_OFF:
                sim_power_off(s);
                return 1;

        case POWER_ACTION_CYCLE:
                sim_power_off(s);
                r = sd_event_add_time_relative(s->ctx.event, &s->cycle_timer, CLOCK_MONOTONIC,
                                               s->cycle_delay_usec, 1, sim_on_cycle_timer, s);
                if (r < 0)
                        return log_dut_prefix(LOG_ERR, r, s->name, "Failed to start the power cycle delay: %m");
                (void) sd_event_source_set_description(s->cycle_timer, "sim-cycle");
                s->cycle_done = done;
                s->cycle_userdata = userdata;
                return 0;

        default:
                return -EINVAL;
        }
}

static PowerState sim_get_power(void *instance) {
        Sim *s = instance;
        return s->state;
}

static uint64_t sim_log_size(void *instance) {
        Sim *s = instance;
        return s->log_size;
}

static uint64_t sim_storage_size(void *instance) {
        Sim *s = instance;
        return s->storage_size;
}

static int sim_storage_open(void *instance, bool writable) {
        Sim *s = instance;
        return file_storage_reopen(s->storage_fd, writable);
}

static void *sim_free(void *instance) {
        Sim *s = instance;

        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->boot_timer);
        sd_event_source_disable_unref(s->cycle_timer);
        sd_event_source_disable_unref(s->flood_source);
        sd_event_unref(s->ctx.event);
        safe_close(s->storage_fd);
        free(s->prompt);
        free(s->name);
        free(s);
        return NULL;
}

static inline void sim_freep(Sim **s) {
        sim_free(*s);
}

static int sim_storage_init(Sim *s, const SimOptions *o) {
        _cleanup_close_ int fd = -EBADF;
        char name[128];

        if (o->storage)
                return file_storage_open(s->name, o->storage, o->size_set, o->size, &s->storage_fd, &s->storage_size);

        snprintf(name, sizeof name, "dut-%s", s->name);
        fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0)
                return log_dut_prefix(LOG_ERR, errno, s->name, "Failed to create the in-memory storage: %m");
        /* Sparse: 64MiB of storage costs nothing until written. */
        if (ftruncate(fd, (off_t) o->size) < 0)
                return log_dut_prefix(LOG_ERR, errno, s->name,
                                      "Failed to size the in-memory storage to %" PRIu64 " bytes: %m", o->size);
        s->storage_fd = TAKE_FD(fd);
        s->storage_size = o->size;
        return 0;
}

int sim_new(const SimOptions *o, const DriverContext *ctx, Sim **ret) {
        _cleanup_(sim_freep) Sim *s = NULL;
        int r;

        assert(o);
        assert(ctx);
        assert(ctx->event);
        assert(ctx->dut_name);

        if (o->log_size == 0 || o->log_size > (UINT64_C(1) << 30))
                return log_dut_prefix(LOG_ERR, EINVAL, ctx->dut_name, "log_size must be between 1 byte and 1GiB");

        s = malloc(sizeof *s);
        if (!s)
                return log_oom();
        *s = (Sim) {
                .ctx = *ctx,
                .boot_time_usec = o->boot_time_usec,
                .cycle_delay_usec = o->cycle_delay_usec,
                .log_size = o->log_size,
                .storage_fd = -EBADF,
                .state = POWER_OFF,
        };
        sd_event_ref(s->ctx.event);
        s->name = strdup(ctx->dut_name);
        if (!s->name)
                return log_oom();
        s->ctx.dut_name = s->name;

        if (o->prompt)
                s->prompt = strdup(o->prompt);
        else if (asprintf(&s->prompt, "%s:~# ", s->name) < 0)
                s->prompt = NULL;
        if (!s->prompt)
                return log_oom();

        r = sim_storage_init(s, o);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

static int sim_new_from_config(const DriverConfig *config, const DriverContext *ctx, void **ret) {
        SimOptions o = {
                .storage = driver_config_get_string(config, "storage"),
                .size_set = driver_config_is_set(config, "size"),
                .size = driver_config_get_u64(config, "size", SIM_DEFAULT_SIZE),
                .boot_time_usec = driver_config_get_u64(config, "boot_time", SIM_DEFAULT_BOOT_TIME),
                .cycle_delay_usec = driver_config_get_u64(config, "cycle_delay", SIM_DEFAULT_CYCLE_DELAY),
                .log_size = driver_config_get_u64(config, "log_size", SIM_DEFAULT_LOG_SIZE),
                .prompt = driver_config_get_string(config, "prompt"),
        };
        Sim *s;
        int r;

        r = sim_new(&o, ctx, &s);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

static const PowerDriverOps sim_power_ops = {
        .set = sim_set_power,
        .get = sim_get_power,
};

static const SerialDriverOps sim_serial_ops = {
        .input = sim_input,
        .log_size = sim_log_size,
};

static const StorageDriverOps sim_storage_ops = {
        .size = sim_storage_size,
        .open = sim_storage_open,
};

const Driver driver_sim = {
        .name = "sim",
        .new = sim_new_from_config,
        .free = sim_free,
        .power = &sim_power_ops,
        .serial = &sim_serial_ops,
        .storage = &sim_storage_ops,
};
