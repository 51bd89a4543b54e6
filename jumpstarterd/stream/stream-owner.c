/* Who the stream server asks about keys and leases: the exporter link, or direct mode's command line */
#include <assert.h>
#include <stdlib.h>

#include "log.h"
#include "stream-owner.h"

struct StreamOwner {
        StreamServer *server;
        ExporterLink *link;
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

StreamOwner *stream_owner_free(StreamOwner *o) {
        if (!o)
                return NULL;
        if (o->link)
                exporter_link_set_lease_changed(o->link, NULL, NULL);
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
        r = stream_server_new(event, exporter, exporter_name, listen, &linked_hooks, o, &o->server);
        if (r < 0)
                return r;
        exporter_link_set_streams(link, stream_server_get_address(o->server), stream_server_get_fingerprint(o->server));
        exporter_link_set_lease_changed(link, linked_lease_changed, o);
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
