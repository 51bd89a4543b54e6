/* Access policy in the controller: loading and SIGHUP reload, the scheduler's filter, the API's checks */
#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller-internal.h"
#include "device-admin.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "policy-config.h"
#include "policy.h"

struct ControllerPolicy {
        Controller *controller;
        Policy *policy; /* NULL: no policy configured, all allowed */
        sd_event_source *sighup;
        void *bindings; /* device-admin.c's routes */
};

/* A client's labels, team and admin flag, from the store. */
typedef struct ClientInfo {
        Label *labels;
        size_t n_labels;
        bool admin;
        bool exists;
        const char *team; /* points into labels */
} ClientInfo;

static void client_info_done(ClientInfo *ci) {
        for (size_t i = 0; i < ci->n_labels; i++) {
                free(ci->labels[i].key);
                free(ci->labels[i].value);
        }
        free(ci->labels);
        *ci = (ClientInfo) {};
}

static int client_info(Controller *c, const char *name, ClientInfo *ret) {
        _cleanup_(json_decrefp) json_t *record = NULL;
        json_t *labels, *v;
        const char *k;
        int r;

        *ret = (ClientInfo) {};
        r = store_get(c->store, COLLECTION_CLIENTS, name, &record, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        ret->exists = true;
        ret->admin = json_is_true(json_object_get(record, "admin"));
        labels = json_object_get(record, "labels");
        ret->labels = calloc(MAX(json_object_size(labels), (size_t) 1), sizeof(Label));
        if (!ret->labels)
                return -ENOMEM;
        json_object_foreach(labels, k, v) {
                Label *l = &ret->labels[ret->n_labels];

                l->key = strdup(k);
                l->value = strdup(strempty(json_string_value(v)));
                ret->n_labels++;
                if (!l->key || !l->value) {
                        client_info_done(ret);
                        return -ENOMEM;
                }
                if (streq(k, "team"))
                        ret->team = l->value;
        }
        return 0;
}

static Policy *policy_of(Controller *c) {
        return c->policy ? c->policy->policy : NULL;
}

/* The scheduler's filter: may this lease hold this device? */
static bool policy_filter(const Lease *l, const Exporter *e, void *userdata) {
        Controller *c = userdata;
        Policy *p = policy_of(c);
        ClientInfo ci;
        bool ok;

        if (!p)
                return true;
        if (client_info(c, l->client, &ci) < 0)
                return false; /* out of memory: not now; the next change tries again */
        ok = ci.admin || policy_allows_lease(p, ci.labels, ci.n_labels, e->labels, e->n_labels, l->duration_usec);
        client_info_done(&ci);
        return ok;
}

int controller_policy_reload(Controller *c) {
        _cleanup_free_ char *error = NULL;
        Policy *p = NULL;
        int r;

        if (!c->config->policy)
                return 0;
        r = policy_load(c->config->policy, &p, &error);
        if (r < 0)
                return log_error_errno(r, "Refusing the access policy, the one in force stays: %s",
                                       error ?: strerror(-r));
        policy_free(c->policy->policy);
        c->policy->policy = p;
        log_notice("Access policy %s in force: %zu role%s.", p->path, p->n_roles, p->n_roles == 1 ? "" : "s");
        /* Leases that waited for a device the old policy refused them may be served now. Active
         * leases keep their devices until they end (docs/policy.md). */
        lease_scheduler_reschedule(c->scheduler);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Controller *c = userdata;

        log_info("Received SIGHUP, reloading the access policy %s.", c->config->policy);
        (void) controller_policy_reload(c);
        return 0;
}

int controller_policy_new(Controller *c, ControllerPolicy **ret) {
        _cleanup_free_ char *error = NULL;
        ControllerPolicy *cp;
        int r;

        cp = calloc(1, sizeof(ControllerPolicy));
        if (!cp)
                return log_oom();
        cp->controller = c;
        *ret = cp;
        if (!c->config->policy) {
                log_info("No access policy configured: every client may lease every device.");
                return 0;
        }
        r = policy_load(c->config->policy, &cp->policy, &error);
        if (r < 0)
                return log_error_errno(r, "Failed to load the access policy: %s", error ?: strerror(-r));
        log_info("Access policy %s: %zu role%s.", cp->policy->path, cp->policy->n_roles,
                 cp->policy->n_roles == 1 ? "" : "s");
        lease_scheduler_set_filter(c->scheduler, policy_filter, c);

        /* jumpstarterd blocks SIGHUP before the loop starts (main.c). */
        r = sd_event_add_signal(c->event, &cp->sighup, SIGHUP, on_sighup, c);
        if (r < 0)
                log_warning_errno(r, "Cannot reload the access policy on SIGHUP: %m");
        return 0;
}

ControllerPolicy *controller_policy_free(ControllerPolicy *p) {
        if (!p)
                return NULL;
        sd_event_source_disable_unref(p->sighup);
        free(p->bindings);
        policy_free(p->policy);
        free(p);
        return NULL;
}

static int no_access(HttpRequest *req, const char *client, const char *reason) {
        log_info("Access policy: %s: %s", client, reason);
        http_request_reply_error(req, API_ERROR_NO_ACCESS, "%s", reason);
        return -EPERM;
}

/* Live leases of the client, and of every client of its team. */
static int count_leases(Controller *c, const char *client, const char *team, size_t *ret_client, size_t *ret_team) {
        _cleanup_free_ const Lease **leases = NULL;
        size_t n = 0;
        int r;

        *ret_client = *ret_team = 0;
        r = lease_scheduler_list(c->scheduler, &leases, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                ClientInfo ci;

                if (streq(leases[i]->client, client)) {
                        (*ret_client)++;
                        (*ret_team)++;
                        continue;
                }
                if (!team)
                        continue;
                r = client_info(c, leases[i]->client, &ci);
                if (r < 0)
                        return r;
                if (streq_ptr(ci.team, team))
                        (*ret_team)++;
                client_info_done(&ci);
        }
        return 0;
}

int controller_policy_check_lease(Controller *c, HttpRequest *req, const char *client, const char *selector,
                                  uint64_t duration_usec, bool priority_given, int *priority) {
        _cleanup_(policy_lease_decision_done) PolicyLeaseDecision d = {};
        _cleanup_free_ char *reason = NULL;
        Policy *p = policy_of(c);
        Selector *sel = NULL;
        ClientInfo ci;
        size_t n_client, n_team;
        int r;

        if (!p)
                return 0;
        /* A selector that does not parse is the scheduler's to refuse, with its message. */
        if (selector_parse(strempty(selector), &sel, NULL) < 0)
                return 0;
        r = client_info(c, client, &ci);
        if (r < 0) {
                selector_free(sel);
                return r;
        }
        if (ci.admin) {
                selector_free(sel);
                client_info_done(&ci);
                return 0;
        }
        r = policy_judge_lease(p, client, ci.labels, ci.n_labels, sel, duration_usec, &d);
        selector_free(sel);
        if (r < 0)
                goto finish;
        if (!d.allowed) {
                r = no_access(req, client, d.reason);
                goto finish;
        }

        /* One event loop: the count and the lease it admits happen with nothing in between, so a burst of
         * parallel requests cannot slip past the limit. */
        r = count_leases(c, client, ci.team, &n_client, &n_team);
        if (r < 0)
                goto finish;
        if (d.max_leases_per_client != POLICY_LIMIT_NONE && n_client >= d.max_leases_per_client) {
                if (asprintf(&reason, "Client '%s' holds %zu lease%s (pending or active), the most its roles allow "
                             "(maxLeasesPerClient: %u): release one, or it needs a role with a higher "
                             "maxLeasesPerClient", client, n_client, n_client == 1 ? "" : "s",
                             d.max_leases_per_client) < 0)
                        r = -ENOMEM;
                else
                        r = no_access(req, client, reason);
                goto finish;
        }
        /* A client without a team label is in no team: only its own limit holds. */
        if (ci.team && d.max_leases_per_team != POLICY_LIMIT_NONE && n_team >= d.max_leases_per_team) {
                if (asprintf(&reason, "Team '%s' holds %zu lease%s (pending or active), the most the roles of "
                             "client '%s' allow (maxLeasesPerTeam: %u): it needs a role with a higher "
                             "maxLeasesPerTeam", ci.team, n_team, n_team == 1 ? "" : "s", client,
                             d.max_leases_per_team) < 0)
                        r = -ENOMEM;
                else
                        r = no_access(req, client, reason);
                goto finish;
        }
        if (!priority_given || *priority > d.priority)
                *priority = d.priority;
        r = 0;
finish:
        client_info_done(&ci);
        return r;
}

int controller_policy_check_extend(Controller *c, HttpRequest *req, const Lease *l, uint64_t by_usec) {
        _cleanup_free_ char *reason = NULL;
        Policy *p = policy_of(c);
        const Exporter *device;
        ClientInfo ci;
        int r;

        if (!p || l->state != LEASE_ACTIVE || lease_scheduler_get_exporter(c->scheduler, l->exporter, &device) < 0)
                return 0;
        if (by_usec > UINT64_MAX / 4 || l->duration_usec > UINT64_MAX / 4 - by_usec)
                return 0; /* the scheduler refuses it as out of range */
        r = client_info(c, l->client, &ci);
        if (r < 0)
                return r;
        if (!ci.admin &&
            !policy_allows_lease(p, ci.labels, ci.n_labels, device->labels, device->n_labels, l->duration_usec + by_usec)) {
                char a[32];

                if (asprintf(&reason, "Extending lease '%s' to %s is longer than the roles of client '%s' allow on "
                             "%s (maxDuration): it needs a role with a longer maxDuration", l->name,
                             format_duration(a, sizeof(a), l->duration_usec + by_usec), l->client, l->exporter) < 0)
                        r = -ENOMEM;
                else
                        r = no_access(req, l->client, reason);
        }
        client_info_done(&ci);
        return r;
}

int controller_policy_stream_verbs(Controller *c, HttpRequest *req, const Lease *l, const char *requested,
                                   char **ret) {
        _cleanup_free_ char *reason = NULL, *missing = NULL;
        Policy *p = policy_of(c);
        const Exporter *device;
        unsigned granted, want = POLICY_STREAM_VERBS;
        ClientInfo ci;
        int r;

        *ret = NULL;
        if (requested && policy_verbs_from_string(requested, &want) < 0)
                return -EINVAL; /* checked by the caller */
        if (!p)
                granted = POLICY_STREAM_VERBS;
        else {
                if (lease_scheduler_get_exporter(c->scheduler, l->exporter, &device) < 0)
                        return -ENOENT;
                r = client_info(c, l->client, &ci);
                if (r < 0)
                        return r;
                granted = ci.admin ? POLICY_STREAM_VERBS
                                   : policy_device_verbs(p, ci.labels, ci.n_labels, device->labels, device->n_labels);
                client_info_done(&ci);
        }
        granted &= POLICY_STREAM_VERBS;
        if (requested && (want & ~granted)) {
                missing = policy_verbs_to_string(want & ~granted);
                if (!missing || asprintf(&reason, "No role of client '%s' grants '%s' on %s: it needs a role with "
                                         "those verbs whose exporters selector matches that device", l->client,
                                         missing, l->exporter) < 0)
                        return -ENOMEM;
                return no_access(req, l->client, reason);
        }
        if (requested) {
                /* Granted as asked: the token carries the words as the client wrote them. */
                *ret = strdup(requested);
                return *ret ? 0 : -ENOMEM;
        }
        want &= granted;
        if (want == 0)
                return 0;
        *ret = policy_verbs_to_string(want);
        return *ret ? 0 : -ENOMEM;
}

unsigned controller_policy_device_verbs(Controller *c, const char *client, const char *device) {
        Policy *p = policy_of(c);
        const Exporter *x;
        ClientInfo ci;
        unsigned verbs;

        if (!p)
                return (1U << _POLICY_VERB_MAX) - 1;
        if (lease_scheduler_get_exporter(c->scheduler, device, &x) < 0 || client_info(c, client, &ci) < 0)
                return 0;
        verbs = ci.admin ? (1U << _POLICY_VERB_MAX) - 1
                         : policy_device_verbs(p, ci.labels, ci.n_labels, x->labels, x->n_labels);
        client_info_done(&ci);
        return verbs;
}

int controller_policy_register_routes(Controller *c) {
        int r;

        r = controller_device_admin_register(c, &c->policy->bindings);
        if (r < 0)
                return log_error_errno(r, "Failed to register the device admin routes: %m");
        return 0;
}
