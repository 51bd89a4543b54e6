/* Who the stream server asks about keys and leases: the exporter link, or direct mode's command line */
#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stream-owner.h"
#include "tls-conn.h"
#include "tls.h"

/* The connection to the router and the dial line must be done within this; the router gives up on
 * us after about as long. */
#define DIAL_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* Dials under way at once: a controller that asks for more is not served beyond that. */
#define DIALS_MAX 64

typedef struct Dial Dial;
struct Dial {
        StreamOwner *owner;
        Dial *next;
        TlsConn *conn;
        char *id;
        char *token;
        char router[SOCKET_ADDRESS_MAX];
};

struct StreamOwner {
        sd_event *event;
        StreamServer *server;
        ExporterLink *link;
        SSL_CTX *router_tls; /* made at the first dial */
        Dial *dials;
        size_t n_dials;
        Keyring *keyring;
        char *issuer;
        char **duts, **leases; /* direct mode, NULL-terminated, in step */
};

static const char *linked_lease_of(const char *dut, void *userdata) {
        StreamOwner *o = userdata;
        return exporter_link_get_lease(o->link, dut, NULL);
}

static Keyring *linked_keyring(void *userdata) {
        StreamOwner *o = userdata;
        return exporter_link_get_keyring(o->link);
}

static const char *linked_issuer(void *userdata) {
        StreamOwner *o = userdata;
        return exporter_link_get_issuer(o->link);
}

static void linked_lease_changed(const char *dut, const char *lease, void *userdata) {
        StreamOwner *o = userdata;

        /* Streams belong to the lease they were opened for: whatever came after it, they go. */
        if (o->server)
                stream_server_cut_lease(o->server, dut);
}

static const StreamServerHooks linked_hooks = {
        .lease_of = linked_lease_of,
        .keyring = linked_keyring,
        .issuer = linked_issuer,
};

static void dial_free(Dial *d) {
        StreamOwner *o;

        if (!d)
                return;
        o = d->owner;
        for (Dial **link = &o->dials; *link; link = &(*link)->next)
                if (*link == d) {
                        *link = d->next;
                        o->n_dials--;
                        break;
                }
        tls_conn_free(d->conn);
        free(d->id);
        if (d->token)
                explicit_bzero(d->token, strlen(d->token));
        free(d->token);
        free(d);
}

/* The router's certificate is verified as the link verifies the controller's: same CA, and the
 * address dialed must be in it. The router then hands us a stream as a client would. */
static void dial_on_ready(TlsConn *c, void *userdata) {
        Dial *d = userdata;
        StreamOwner *o = d->owner;
        _cleanup_free_ char *s = NULL, *line = NULL, *peer = NULL;
        json_t *v;
        int r, n;

        v = json_pack("{ssss}", "dial", d->id, "token", d->token);
        s = v ? json_dumps(v, JSON_COMPACT) : NULL;
        json_decref(v);
        n = s ? asprintf(&line, "%s\n", s) : -1;
        if (n < 0) {
                log_oom();
                return dial_free(d);
        }
        r = tls_conn_write(c, line, (size_t) n);
        if (r < 0) {
                log_warning_errno(r, "Failed to send the dial line to the router at %s: %m", d->router);
                return dial_free(d);
        }
        if (asprintf(&peer, "router %s (dial %s)", d->router, d->id) < 0)
                peer = NULL;
        log_debug("Dialed the router at %s for routed stream %s", d->router, d->id);
        /* The connection is the stream server's now. */
        d->conn = NULL;
        r = stream_server_adopt(o->server, c, peer);
        if (r < 0)
                log_warning_errno(r, "Failed to serve routed stream %s: %m", d->id);
        dial_free(d);
}

static void dial_on_closed(TlsConn *c, int error, void *userdata) {
        Dial *d = userdata;

        if (error == -EPERM && tls_conn_get_verify_error(c))
                log_warning("Routed stream %s: the router at %s presented a certificate that the controller's CA "
                            "does not vouch for: %s", d->id, d->router, tls_conn_get_verify_error(c));
        else
                log_warning_errno(error ?: -ECONNRESET, "Routed stream %s: cannot reach the router at %s: %m", d->id,
                                  d->router);
        dial_free(d);
}

static const TlsConnOps dial_ops = {
        .ready = dial_on_ready,
        .closed = dial_on_closed,
};

static int owner_router_tls(StreamOwner *o) {
        bool insecure = false;
        const char *ca;
        int r;

        if (o->router_tls)
                return 0;
        ca = exporter_link_get_ca(o->link, &insecure);
        r = insecure ? tls_client_ctx_new_insecure(&o->router_tls) : tls_client_ctx_new_ca(ca, &o->router_tls);
        if (r < 0)
                return log_error_errno(r, "Failed to set up TLS for the router: %m");
        return 0;
}

static void linked_dial(const char *id, const char *router, const char *token, void *userdata) {
        StreamOwner *o = userdata;
        Dial *d;
        int r;

        if (o->n_dials >= DIALS_MAX) {
                log_warning("The controller asked for routed stream %s while %u dials are under way, ignoring it", id,
                            DIALS_MAX);
                return;
        }
        if (owner_router_tls(o) < 0)
                return;

        d = calloc(1, sizeof *d);
        if (!d) {
                log_oom();
                return;
        }
        d->owner = o;
        d->id = strdup(id);
        d->token = strdup(token);
        (void) snprintf(d->router, sizeof d->router, "%s", router);
        if (!d->id || !d->token) {
                free(d->id);
                free(d->token);
                free(d);
                log_oom();
                return;
        }
        d->next = o->dials;
        o->dials = d;
        o->n_dials++;

        r = tls_conn_connect(o->event, o->router_tls, router, NULL, DIAL_TIMEOUT_USEC, &dial_ops, d, &d->conn);
        if (r < 0) {
                log_warning_errno(r, "Routed stream %s: cannot dial the router at %s: %m", id, router);
                dial_free(d);
                return;
        }
        log_debug("Dialing the router at %s for routed stream %s", router, id);
}

StreamOwner *stream_owner_free(StreamOwner *o) {
        if (!o)
                return NULL;
        if (o->link) {
                exporter_link_set_lease_changed(o->link, NULL, NULL);
                exporter_link_set_dial(o->link, NULL, NULL);
        }
        while (o->dials)
                dial_free(o->dials);
        SSL_CTX_free(o->router_tls);
        sd_event_unref(o->event);
        stream_server_free(o->server);
        keyring_free(o->keyring);
        free(o->issuer);
        for (size_t i = 0; o->duts && o->duts[i]; i++) {
                free(o->duts[i]);
                free(o->leases[i]);
        }
        free(o->duts);
        free(o->leases);
        free(o);
        return NULL;
}

StreamServer *stream_owner_get_server(StreamOwner *o) {
        return o->server;
}

int stream_owner_new_linked(sd_event *event, Exporter *exporter, const char *exporter_name, const char *listen,
                            ExporterLink *link, StreamOwner **ret) {
        _cleanup_(stream_owner_freep) StreamOwner *o = NULL;
        int r;

        o = calloc(1, sizeof *o);
        if (!o)
                return log_oom();
        o->link = link;
        o->event = sd_event_ref(event);
        r = stream_server_new(event, exporter, exporter_name, listen, &linked_hooks, o, &o->server);
        if (r < 0)
                return r;
        exporter_link_set_streams(link, stream_server_get_address(o->server), stream_server_get_fingerprint(o->server));
        exporter_link_set_lease_changed(link, linked_lease_changed, o);
        exporter_link_set_dial(link, linked_dial, o);
        *ret = TAKE_PTR(o);
        return 0;
}

static const char *direct_lease_of(const char *dut, void *userdata) {
        StreamOwner *o = userdata;

        for (size_t i = 0; o->duts && o->duts[i]; i++)
                if (streq(o->duts[i], dut))
                        return o->leases[i];
        return NULL;
}

static Keyring *direct_keyring(void *userdata) {
        StreamOwner *o = userdata;
        return o->keyring;
}

static const char *direct_issuer(void *userdata) {
        StreamOwner *o = userdata;
        return o->issuer;
}

static const StreamServerHooks direct_hooks = {
        .lease_of = direct_lease_of,
        .keyring = direct_keyring,
        .issuer = direct_issuer,
};

int stream_owner_new_direct(sd_event *event, Exporter *exporter, const char *exporter_name, const char *listen,
                            const char *keyring_dir, const char *issuer, char *const *leases, StreamOwner **ret) {
        _cleanup_(stream_owner_freep) StreamOwner *o = NULL;
        _cleanup_free_ char *error = NULL;
        size_t n = 0;
        int r;

        assert(keyring_dir && issuer);

        o = calloc(1, sizeof *o);
        if (!o)
                return log_oom();
        o->issuer = strdup(issuer);
        if (!o->issuer)
                return log_oom();
        r = keyring_load(keyring_dir, &o->keyring, &error);
        if (r < 0)
                return log_error_errno(r, "Failed to load the stream keyring: %s", error ?: strerror(-r));

        while (leases && leases[n])
                n++;
        o->duts = calloc(n + 1, sizeof *o->duts);
        o->leases = calloc(n + 1, sizeof *o->leases);
        if (!o->duts || !o->leases)
                return log_oom();
        for (size_t i = 0; i < n; i++) {
                const char *eq = strchr(leases[i], '=');

                if (!eq || eq == leases[i] || !eq[1])
                        return log_error_errno(EINVAL, "Invalid stream lease '%s': expected DUT=LEASE", leases[i]);
                if (!exporter_find_dut(exporter, strndupa(leases[i], (size_t) (eq - leases[i]))))
                        return log_error_errno(ENOENT, "Invalid stream lease '%s': no DUT of that name", leases[i]);
                o->duts[i] = strndup(leases[i], (size_t) (eq - leases[i]));
                o->leases[i] = strdup(eq + 1);
                if (!o->duts[i] || !o->leases[i])
                        return log_oom();
        }

        r = stream_server_new(event, exporter, exporter_name, listen, &direct_hooks, o, &o->server);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}
