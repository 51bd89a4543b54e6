/* The DUTs jumpstarterd shows this caller: their descriptions and loading them */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "dut-list.h"
#include "log.h"
#include "macro.h"

#define LOAD_TIMEOUT_USEC (10 * USEC_PER_SEC)

void dut_done(Dut *d) {
        free(d->name);
        free(d->serial_path);
        free(d->labels_text);
        free(d->lease_text);
        free(d->lease_name);
        for (char **s = d->gpio_lines; s && *s; s++)
                free(*s);
        free(d->gpio_lines);
        *d = (Dut) {};
}

void dut_list_done(DutList *l) {
        for (size_t i = 0; i < l->n_duts; i++)
                dut_done(&l->duts[i]);
        free(l->duts);
        *l = (DutList) {};
}

Dut *dut_list_find(const DutList *l, const char *name) {
        for (size_t i = 0; i < l->n_duts; i++)
                if (streq(l->duts[i].name, name))
                        return &l->duts[i];
        return NULL;
}

int dut_list_put(DutList *l, Dut *d) {
        Dut *old = dut_list_find(l, d->name), *duts;

        if (old) {
                dut_done(old);
                *old = *d;
                *d = (Dut) {};
                return 0;
        }
        duts = reallocarray(l->duts, l->n_duts + 1, sizeof *duts);
        if (!duts)
                return -ENOMEM;
        l->duts = duts;
        l->duts[l->n_duts++] = *d;
        *d = (Dut) {};
        return 0;
}

int dut_list_remove(DutList *l, const char *name) {
        Dut *d = dut_list_find(l, name);
        size_t i;

        if (!d)
                return 0;
        i = (size_t) (d - l->duts);
        dut_done(d);
        memmove(l->duts + i, l->duts + i + 1, (l->n_duts - i - 1) * sizeof *l->duts);
        l->n_duts--;
        return 1;
}

bool dut_has_class(const Dut *d, int driver_class) {
        if (driver_class == DRIVER_CLASS_GPIO_LINES)
                return d->gpio_lines;
        return driver_class < 0 || (d->classes & (1U << driver_class));
}

bool dut_has_gpio_line(const Dut *d, const char *line) {
        for (char **s = d->gpio_lines; s && *s; s++)
                if (streq(*s, line))
                        return true;
        return false;
}

typedef struct Pair {
        const char *key;
        const char *value;
} Pair;

static int pair_compare(const void *a, const void *b) {
        return strcmp(((const Pair *) a)->key, ((const Pair *) b)->key);
}

int render_pairs(char *const *keys, char *const *values, size_t n, bool sort, char **ret) {
        _cleanup_free_ Pair *pairs = NULL;
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        pairs = calloc(MAX(n, 1U), sizeof *pairs);
        if (!pairs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                pairs[i] = (Pair) { keys[i], values[i] };
        if (sort && n > 1)
                qsort(pairs, n, sizeof *pairs, pair_compare);

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s=%s\n", pairs[i].key, pairs[i].value);
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

static void strv_free_n(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static int read_pairs(sd_bus_message *m, bool sort, char **ret) {
        char **keys = NULL, **values = NULL;
        size_t n = 0, allocated = 0;
        const char *k, *v;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(ss)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "(ss)", &k, &v)) > 0) {
                if (n == allocated) {
                        size_t na = MAX(allocated * 2, 8U);
                        char **nk = reallocarray(keys, na, sizeof *nk), **nv;

                        if (!nk) {
                                r = -ENOMEM;
                                break;
                        }
                        keys = nk;
                        nv = reallocarray(values, na, sizeof *nv);
                        if (!nv) {
                                r = -ENOMEM;
                                break;
                        }
                        values = nv;
                        allocated = na;
                }
                keys[n] = strdup(k);
                values[n] = strdup(v);
                n++;
                if (!keys[n - 1] || !values[n - 1]) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0)
                r = render_pairs(keys, values, n, sort, ret);

        strv_free_n(keys, n);
        strv_free_n(values, n);
        return r < 0 ? r : 0;
}

int dut_parse_description(Dut *d, sd_bus_message *reply) {
        const char *serial_path;
        uint64_t storage_size;
        uint32_t classes;
        int r;

        r = read_pairs(reply, true, &d->labels_text);
        if (r < 0)
                return r;
        r = read_pairs(reply, false, &d->lease_text);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "stu", &serial_path, &storage_size, &classes);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;
        d->serial_path = strdup(serial_path);
        if (!d->serial_path)
                return -ENOMEM;
        d->storage_size = storage_size;
        d->classes = classes;
        /* A serial class without a pty path has nothing to link to. */
        if (!d->serial_path[0])
                d->classes &= ~(1U << DRIVER_CLASS_SERIAL);
        return 0;
}

int dut_parse_access(Dut *d, sd_bus_message *reply) {
        uint32_t uid, gid;
        const char *lease;
        int leased, r;

        r = sd_bus_message_read(reply, "buus", &leased, &uid, &gid, &lease);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;
        free(d->lease_name);
        d->lease_name = strdup(lease);
        if (!d->lease_name)
                return -ENOMEM;
        d->leased = leased;
        d->holder_uid = (uid_t) uid;
        d->share_gid = (gid_t) gid;
        return 0;
}

static size_t strv_length(char **v) {
        size_t n = 0;

        while (v && v[n])
                n++;
        return n;
}

static void strv_free_all(char **v) {
        strv_free_n(v, strv_length(v));
}

typedef struct DutLoader {
        unsigned n_ref;
        Agent *agent;
        DutList list;
        size_t n_pending;
        int error;
        bool finished;
        dut_list_loaded_t done;
        void *userdata;
} DutLoader;

typedef struct DescribeCall {
        DutLoader *loader;
        size_t index;
} DescribeCall;

static DutLoader *dut_loader_ref(DutLoader *l) {
        l->n_ref++;
        return l;
}

static void dut_loader_unref(void *userdata) {
        DutLoader *l = userdata;

        if (!l || --l->n_ref > 0)
                return;
        dut_list_done(&l->list);
        free(l);
}

static void dut_loader_finish(DutLoader *l) {
        if (l->finished || l->n_pending > 0)
                return;
        l->finished = true;
        if (l->error < 0)
                l->done(NULL, l->error, l->userdata);
        else
                l->done(&l->list, 0, l->userdata);
}

static void describe_call_free(void *userdata) {
        DescribeCall *c = userdata;

        dut_loader_unref(c->loader);
        free(c);
}

static void on_describe_reply(sd_bus_message *reply, int error, void *userdata) {
        DescribeCall *c = userdata;
        DutLoader *l = c->loader;
        Dut *d = &l->list.duts[c->index];
        int r;

        if (error < 0) {
                /* ENOENT: it went away meanwhile (DutRemoved follows). */
                log_full_errno(error == -ENOENT ? LOG_DEBUG : LOG_WARNING, error, "DescribeDut(%s) failed: %m",
                               d->name);
                l->error = error;
        } else {
                r = dut_parse_description(d, reply);
                if (r < 0) {
                        log_warning_errno(r, "Failed to parse the description of %s: %m", d->name);
                        l->error = r;
                }
        }
        l->n_pending--;
        dut_loader_finish(l);
}

static void on_access_reply(sd_bus_message *reply, int error, void *userdata) {
        DescribeCall *c = userdata;
        DutLoader *l = c->loader;
        Dut *d = &l->list.duts[c->index];
        int r;

        if (error < 0) {
                log_full_errno(error == -ENOENT ? LOG_DEBUG : LOG_WARNING, error, "GetDutAccess(%s) failed: %m",
                               d->name);
                l->error = error;
        } else {
                r = dut_parse_access(d, reply);
                if (r < 0) {
                        log_warning_errno(r, "Failed to parse the access of %s: %m", d->name);
                        l->error = r;
                }
        }
        l->n_pending--;
        dut_loader_finish(l);
}

static void on_list_gpio_reply(sd_bus_message *reply, int error, void *userdata) {
        DescribeCall *c = userdata;
        DutLoader *l = c->loader;
        Dut *d = &l->list.duts[c->index];
        char **names = NULL;
        size_t n = 0;
        int r;

        if (error < 0) {
                log_full_errno(error == -ENOENT ? LOG_DEBUG : LOG_WARNING, error, "ListGpio(%s) failed: %m",
                               d->name);
                l->error = error;
                goto finish;
        }
        r = sd_bus_message_read_strv(reply, &names);
        if (r < 0) {
                l->error = log_warning_errno(r, "Failed to parse the GPIO lines of %s: %m", d->name);
                goto finish;
        }
        /* Names become file names: only valid ones. */
        for (size_t i = 0; names && names[i]; i++) {
                if (gpio_line_name_is_valid(names[i]))
                        names[n++] = names[i];
                else {
                        log_warning("Ignoring GPIO line \"%s\" of %s: not a valid line name.", names[i], d->name);
                        free(names[i]);
                }
        }
        if (names)
                names[n] = NULL;
        if (n > 0)
                d->gpio_lines = TAKE_PTR(names);
finish:
        strv_free_all(names);
        l->n_pending--;
        dut_loader_finish(l);
}

/* Asks the agent about the DUT at index of the list being loaded; the reply is awaited before the
 * loader finishes. */
static int dut_loader_call(DutLoader *l, const char *method, agent_reply_t handler, size_t index) {
        DescribeCall *c;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (DescribeCall) { .loader = dut_loader_ref(l), .index = index };
        r = agent_call(l->agent, method, LOAD_TIMEOUT_USEC, handler, c, describe_call_free, "s",
                       l->list.duts[index].name);
        if (r < 0) {
                describe_call_free(c);
                return r;
        }
        l->n_pending++;
        return 0;
}

static void on_list_reply(sd_bus_message *reply, int error, void *userdata) {
        DutLoader *l = userdata;
        char **names = NULL;
        int r;

        if (error < 0) {
                l->error = log_warning_errno(error, "ListDuts failed: %m");
                goto finish;
        }

        r = sd_bus_message_read_strv(reply, &names);
        if (r < 0) {
                l->error = log_warning_errno(r, "Failed to parse the DUT list: %m");
                goto finish;
        }

        l->list.duts = calloc(MAX(strv_length(names), 1U), sizeof(Dut));
        if (!l->list.duts) {
                l->error = -ENOMEM;
                goto finish;
        }

        /* Hold the loader open while the calls are issued. */
        l->n_pending++;
        for (size_t i = 0; names && names[i]; i++) {
                Dut *d;

                if (!dut_name_is_valid(names[i]) || dut_list_find(&l->list, names[i])) {
                        log_warning("Ignoring DUT name \"%s\": not a valid DUT name, or listed twice.", names[i]);
                        continue;
                }
                d = &l->list.duts[l->list.n_duts];
                d->name = strdup(names[i]);
                if (!d->name) {
                        l->error = -ENOMEM;
                        break;
                }
                l->list.n_duts++;

                r = dut_loader_call(l, "DescribeDut", on_describe_reply, l->list.n_duts - 1);
                if (r >= 0)
                        r = dut_loader_call(l, "ListGpio", on_list_gpio_reply, l->list.n_duts - 1);
                if (r >= 0)
                        r = dut_loader_call(l, "GetDutAccess", on_access_reply, l->list.n_duts - 1);
                if (r < 0) {
                        l->error = r;
                        break;
                }
        }
        l->n_pending--;

finish:
        strv_free_all(names);
        dut_loader_finish(l);
}

int dut_list_load_one(Agent *a, const char *name, dut_list_loaded_t done, void *userdata) {
        DutLoader *l;
        int r;

        if (!dut_name_is_valid(name))
                return -EINVAL;

        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        *l = (DutLoader) {
                .n_ref = 1,
                .agent = a,
                .done = done,
                .userdata = userdata,
        };
        l->list.duts = calloc(1, sizeof(Dut));
        if (!l->list.duts) {
                dut_loader_unref(l);
                return -ENOMEM;
        }
        l->list.duts[0].name = strdup(name);
        if (!l->list.duts[0].name) {
                dut_loader_unref(l);
                return -ENOMEM;
        }
        l->list.n_duts = 1;

        /* Held while the calls are issued: a failure of the second must not finish the first. */
        r = dut_loader_call(l, "DescribeDut", on_describe_reply, 0);
        if (r >= 0)
                r = dut_loader_call(l, "ListGpio", on_list_gpio_reply, 0);
        if (r >= 0)
                r = dut_loader_call(l, "GetDutAccess", on_access_reply, 0);
        if (r < 0 && l->n_pending > 0) {
                /* A call is out: it finishes the loader, with this error. */
                l->error = r;
                dut_loader_unref(l);
                return 0;
        }
        dut_loader_unref(l);
        return r;
}

int dut_list_load(Agent *a, dut_list_loaded_t done, void *userdata) {
        DutLoader *l;
        int r;

        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        *l = (DutLoader) {
                .n_ref = 1,
                .agent = a,
                .done = done,
                .userdata = userdata,
        };
        r = agent_call(a, "ListDuts", LOAD_TIMEOUT_USEC, on_list_reply, l, dut_loader_unref, NULL);
        if (r < 0) {
                free(l);
                return r;
        }
        return 0;
}
