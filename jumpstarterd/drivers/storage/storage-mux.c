/* Storage mux: what hands a card to the host or to the DUT (a command or a GPIO line), off the event loop */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "command.h"
#include "daemon-util.h"
#include "gpio-line.h"
#include "log.h"
#include "macro.h"
#include "storage-mux.h"

struct StorageMux {
        sd_event *event;
        char *dut;

        /* A mux of commands: one command line per side, and the one that runs. */
        char **argv[_STORAGE_MUX_SIDE_MAX];
        uint64_t timeout_usec;
        Command *command;

        /* A mux on a GPIO line: setting it does not wait, but done is posted to the loop all the
         * same, as the contract has it. */
        GpioLine *line;
        bool host_value;
        sd_event_source *done_source;

        /* The switch under way (done is set while one is). */
        StorageMuxSide side;
        StorageMuxDoneFunc done;
        void *userdata;
};

static const char *const side_table[_STORAGE_MUX_SIDE_MAX] = {
        [STORAGE_MUX_HOST] = "host",
        [STORAGE_MUX_DUT] = "dut",
};

const char *storage_mux_side_to_string(StorageMuxSide s) {
        if (s < 0 || s >= _STORAGE_MUX_SIDE_MAX)
                return NULL;
        return side_table[s];
}

static char **strv_copy(char *const *l) {
        size_t n = 0;
        char **c;

        while (l[n])
                n++;
        c = calloc(n + 1, sizeof *c);
        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                c[i] = strdup(l[i]);
                if (!c[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(c[j]);
                        free(c);
                        return NULL;
                }
        }
        return c;
}

static void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

StorageMux *storage_mux_free(StorageMux *m) {
        if (!m)
                return NULL;
        /* Shutting down: a command that runs is killed (and reaped) at once. */
        command_free(m->command);
        sd_event_source_disable_unref(m->done_source);
        gpio_line_close(m->line);
        for (StorageMuxSide s = 0; s < _STORAGE_MUX_SIDE_MAX; s++)
                strv_free(m->argv[s]);
        free(m->dut);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

static StorageMux *storage_mux_alloc(sd_event *event, const char *dut) {
        StorageMux *m;

        m = calloc(1, sizeof *m);
        if (!m)
                return NULL;
        m->event = sd_event_ref(event);
        m->dut = strdup(dut);
        if (!m->dut)
                return storage_mux_free(m);
        return m;
}

int storage_mux_new(sd_event *event, const char *dut, char *const *argv[_STORAGE_MUX_SIDE_MAX],
                    uint64_t timeout_usec, StorageMux **ret) {
        StorageMux *m;

        m = storage_mux_alloc(event, dut);
        if (!m)
                return -ENOMEM;
        m->timeout_usec = timeout_usec;
        for (StorageMuxSide s = 0; s < _STORAGE_MUX_SIDE_MAX; s++) {
                assert(argv[s] && argv[s][0]);
                m->argv[s] = strv_copy(argv[s]);
                if (!m->argv[s]) {
                        storage_mux_free(m);
                        return -ENOMEM;
                }
        }
        *ret = m;
        return 0;
}

int storage_mux_new_gpio(sd_event *event, const char *dut, const GpioLineOptions *o, bool host_value,
                         StorageMux **ret) {
        GpioLineOptions as_it_is = *o;
        StorageMux *m;
        int r;

        m = storage_mux_alloc(event, dut);
        if (!m)
                return -ENOMEM;
        m->host_value = host_value;
        /* Requested as it is: the switch to the DUT when the daemon starts drives it. */
        as_it_is.initial = -1;
        r = gpio_line_open(dut, &as_it_is, &m->line);
        if (r < 0) {
                storage_mux_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

static void storage_mux_finish(StorageMux *m, int r) {
        StorageMuxDoneFunc done = m->done;
        void *userdata = m->userdata;

        if (r >= 0)
                log_dut_prefix(LOG_INFO, 0, m->dut, "Storage switched to the %s", storage_mux_side_to_string(m->side));
        m->done = NULL;
        m->userdata = NULL;
        done(r, userdata);
}

static void storage_mux_on_command_exit(Command *command, int r, void *userdata) {
        StorageMux *m = userdata;
        const char *side = storage_mux_side_to_string(m->side), *program = m->argv[m->side][0];

        if (r == -ETIME) {
                log_dut_prefix(LOG_ERR, ETIMEDOUT, m->dut, "Mux command '%s' (%s) did not finish in %" PRIu64 " ms; killed it",
                               program, side, m->timeout_usec / USEC_PER_MSEC);
                r = -EIO;
        } else if (r < 0) {
                log_dut_prefix(LOG_ERR, r, m->dut, "Mux command '%s' (%s) failed: %m", program, side);
                r = -EIO;
        } else if (WIFEXITED(r) && WEXITSTATUS(r) == 0)
                r = 0;
        else if (WIFEXITED(r)) {
                log_dut_prefix(LOG_ERR, EIO, m->dut, "Mux command '%s' (%s) failed with exit status %i", program, side,
                               WEXITSTATUS(r));
                r = -EIO;
        } else {
                log_dut_prefix(LOG_ERR, EIO, m->dut, "Mux command '%s' (%s) was killed by signal %s", program, side,
                               strsignal(WTERMSIG(r)));
                r = -EIO;
        }
        m->command = command_free(m->command);
        storage_mux_finish(m, r);
}

static int storage_mux_on_gpio_done(sd_event_source *s, void *userdata) {
        StorageMux *m = userdata;

        m->done_source = sd_event_source_disable_unref(m->done_source);
        storage_mux_finish(m, 0);
        return 0;
}

static int storage_mux_switch_gpio(StorageMux *m, StorageMuxSide side) {
        int r;

        r = gpio_line_set(m->line, side == STORAGE_MUX_HOST ? m->host_value : !m->host_value);
        if (r < 0) {
                log_dut_prefix(LOG_ERR, r, m->dut, "Failed to switch the mux's GPIO line to the %s: %m",
                               storage_mux_side_to_string(side));
                return -EIO;
        }
        r = sd_event_add_defer(m->event, &m->done_source, storage_mux_on_gpio_done, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(m->done_source, "storage-mux-gpio");
        return 0;
}

static int storage_mux_switch_command(StorageMux *m, StorageMuxSide side) {
        char what[sizeof("host mux command")];
        int r;

        snprintf(what, sizeof what, "%s mux command", storage_mux_side_to_string(side));
        r = command_run(m->event, m->argv[side],
                        &(const CommandOptions) {
                                .dut = m->dut,
                                .what = what,
                                .timeout_usec = m->timeout_usec,
                        },
                        storage_mux_on_command_exit, m, &m->command);
        /* command_run() logged why. */
        if (r < 0)
                return r == -ENOMEM ? r : -EIO;
        return 0;
}

int storage_mux_switch(StorageMux *m, StorageMuxSide side, StorageMuxDoneFunc done, void *userdata) {
        int r;

        assert(m);
        assert(done);
        assert(side >= 0 && side < _STORAGE_MUX_SIDE_MAX);

        if (m->done)
                return -EBUSY;

        m->side = side;
        r = m->line ? storage_mux_switch_gpio(m, side) : storage_mux_switch_command(m, side);
        if (r < 0)
                return r;
        m->done = done;
        m->userdata = userdata;
        return 0;
}
