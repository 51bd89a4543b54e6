/* Lease hooks and health checks: configured commands at a lease's edges and on a schedule, reported to the controller */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "command.h"
#include "daemon-util.h"
#include "exporter-hooks.h"
#include "hooks-config.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"

#define HOOK_OUTPUT_MAX 4096
#define HEALTH_FIRST_USEC (1 * USEC_PER_SEC)

typedef struct DutRun {
        ExporterHooks *hooks;
        const DutConfig *dut;
        Command *hook;
        const char *hook_name;  /* "beforeLease", "afterLease" */
        const HookConfig *hook_config;
        char *hook_lease;
        Command *health;
        sd_event_source *health_timer;
} DutRun;

struct ExporterHooks {
        sd_event *event;
        ExporterLink *link;
        DutRun *runs;
        size_t n_runs;
};

static char *mfree_str(char *s) {
        free(s);
        return NULL;
}

static DutRun *find_run(ExporterHooks *h, const char *dut) {
        for (size_t i = 0; i < h->n_runs; i++)
                if (streq(h->runs[i].dut->name, dut))
                        return &h->runs[i];
        return NULL;
}

/* "exit status 3", "killed by signal 9", "timed out after 5s", then the command's output. */
static char *outcome(Command *c, int r, uint64_t timeout_usec, bool *ret_ok) {
        const char *out = c ? command_get_stdout(c, NULL) : NULL;
        char buf[32], *s = NULL;
        int k;

        *ret_ok = r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0;
        if (r == -ETIME)
                k = asprintf(&s, "timed out after %s and was killed", format_duration(buf, sizeof buf, timeout_usec));
        else if (r < 0)
                k = asprintf(&s, "could not run: %s", strerror(-r));
        else if (WIFEXITED(r))
                k = asprintf(&s, "exit status %d", WEXITSTATUS(r));
        else
                k = asprintf(&s, "killed by signal %d", WIFSIGNALED(r) ? WTERMSIG(r) : 0);
        if (k >= 0 && out && *out) {
                char *t = NULL;

                k = asprintf(&t, "%s; output: %s", s, out);
                free(s);
                s = k >= 0 ? t : NULL;
        }
        return k >= 0 ? s : NULL;
}

static void health_run(DutRun *run);

static void on_hook_done(Command *c, int r, void *userdata) {
        DutRun *run = userdata;
        _cleanup_(json_decrefp) json_t *report = NULL;
        _cleanup_free_ char *message = NULL;
        bool ok;

        message = outcome(c, r, run->hook_config->timeout_usec, &ok);
        log_dut_prefix(ok ? LOG_INFO : LOG_WARNING, 0, run->dut->name, "%s hook of lease %s %s: %s",
                       run->hook_name, run->hook_lease, ok ? "succeeded" : "failed", strna(message));
        report = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s}", "dut", run->dut->name, "lease", run->hook_lease, "hook",
                           run->hook_name, "ok", ok, "message", message ?: "", "onFailure",
                           hook_failure_to_string(run->hook_config->on_failure));
        if (!report || exporter_link_report(run->hooks->link, "hooks", report) < 0)
                log_dut_prefix(LOG_WARNING, 0, run->dut->name, "Cannot report the %s hook to the controller",
                               run->hook_name);
        run->hook = command_free(run->hook);
        run->hook_lease = mfree_str(run->hook_lease);
        /* A failed hook may mean a broken DUT: check it now. */
        if (!ok && run->dut->hooks->health_argv)
                health_run(run);
}

static void on_lease_edge(const char *dut, const char *lease, bool begins, void *u) {
        ExporterHooks *h = u;
        DutRun *run = find_run(h, dut);
        const HookConfig *hc;
        int r;

        if (!run)
                return;
        hc = begins ? &run->dut->hooks->before_lease : &run->dut->hooks->after_lease;
        if (!hc->argv)
                return;
        if (run->hook) {
                log_dut_prefix(LOG_WARNING, 0, dut, "The %s hook of lease %s was still running: killed", run->hook_name,
                               run->hook_lease);
                run->hook = command_free(run->hook);
                run->hook_lease = mfree_str(run->hook_lease);
        }
        run->hook_name = begins ? "beforeLease" : "afterLease";
        run->hook_config = hc;
        run->hook_lease = strdup(lease);
        if (!run->hook_lease)
                return (void) log_oom();
        log_dut_prefix(LOG_INFO, 0, dut, "Running the %s hook of lease %s", run->hook_name, lease);
        r = command_run(h->event, hc->argv,
                        &(CommandOptions) { .dut = dut, .what = run->hook_name, .timeout_usec = hc->timeout_usec,
                                            .stdout_max = HOOK_OUTPUT_MAX },
                        on_hook_done, run, &run->hook);
        if (r < 0)
                on_hook_done(NULL, r, run);
}

static void on_health_done(Command *c, int r, void *userdata) {
        DutRun *run = userdata;
        _cleanup_(json_decrefp) json_t *report = NULL;
        _cleanup_free_ char *message = NULL;
        bool ok;

        message = outcome(c, r, run->dut->hooks->health_timeout_usec, &ok);
        log_dut_prefix(ok ? LOG_DEBUG : LOG_WARNING, 0, run->dut->name, "Health check %s: %s",
                       ok ? "passed" : "failed", strna(message));
        report = json_pack("{s:s, s:b, s:s}", "dut", run->dut->name, "healthy", ok, "message", message ?: "");
        if (!report || exporter_link_report(run->hooks->link, "health", report) < 0)
                log_dut_prefix(LOG_WARNING, 0, run->dut->name, "Cannot report the health check to the controller");
        run->health = command_free(run->health);
}

static void health_run(DutRun *run) {
        int r;

        if (run->health)
                return; /* one at a time */
        r = command_run(run->hooks->event, run->dut->hooks->health_argv,
                        &(CommandOptions) { .dut = run->dut->name, .what = "health check",
                                            .timeout_usec = run->dut->hooks->health_timeout_usec,
                                            .stdout_max = HOOK_OUTPUT_MAX },
                        on_health_done, run, &run->health);
        if (r < 0)
                on_health_done(NULL, r, run);
}

static int on_health_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        DutRun *run = userdata;

        (void) sd_event_source_set_time_relative(s, run->dut->hooks->health_interval_usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        /* Between leases only, as LAVA does: a check may power the DUT or write its console. */
        if (exporter_link_get_lease(run->hooks->link, run->dut->name, NULL) || run->hook)
                return 0;
        health_run(run);
        return 0;
}

int exporter_hooks_new(sd_event *event, const ExporterConfig *config, ExporterLink *link, ExporterHooks **ret) {
        _cleanup_(exporter_hooks_freep) ExporterHooks *h = NULL;
        int r;

        h = calloc(1, sizeof(ExporterHooks));
        if (!h)
                return log_oom();
        h->event = sd_event_ref(event);
        h->link = link;
        h->runs = calloc(MAX(config->n_duts, (size_t) 1), sizeof(DutRun));
        if (!h->runs)
                return log_oom();
        for (size_t i = 0; i < config->n_duts; i++) {
                DutRun *run;

                if (!config->duts[i].hooks)
                        continue;
                run = &h->runs[h->n_runs++];
                *run = (DutRun) { .hooks = h, .dut = &config->duts[i] };
                if (!run->dut->hooks->health_argv)
                        continue;
                r = sd_event_add_time_relative(event, &run->health_timer, CLOCK_MONOTONIC, HEALTH_FIRST_USEC,
                                               USEC_PER_MSEC * 100, on_health_timer, run);
                if (r < 0)
                        return log_error_errno(r, "Failed to add the health check timer: %m");
        }
        exporter_link_set_lease_edge(link, on_lease_edge, h);
        *ret = TAKE_PTR(h);
        return 0;
}

ExporterHooks *exporter_hooks_free(ExporterHooks *h) {
        if (!h)
                return NULL;
        if (h->link)
                exporter_link_set_lease_edge(h->link, NULL, NULL);
        for (size_t i = 0; i < h->n_runs; i++) {
                command_free(h->runs[i].hook);
                command_free(h->runs[i].health);
                free(h->runs[i].hook_lease);
                sd_event_source_disable_unref(h->runs[i].health_timer);
        }
        free(h->runs);
        sd_event_unref(h->event);
        free(h);
        return NULL;
}
