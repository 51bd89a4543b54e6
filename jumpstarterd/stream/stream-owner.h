/* Who the stream server asks about keys and leases: the exporter link, or direct mode's command line */
#pragma once

#include <systemd/sd-event.h>

#include "exporter-link.h"
#include "exporter.h"
#include "stream-server.h"

typedef struct StreamOwner StreamOwner;

/* Distributed mode: the controller's keys, its name and the leases come from the link, and a lease
 * that ends (or changes hands) cuts the DUT's streams. Call before exporter_link_start(): it tells
 * the link the listener's address and fingerprint. */
int stream_owner_new_linked(sd_event *event, Exporter *exporter, const char *exporter_name, const char *listen,
                            ExporterLink *link, StreamOwner **ret);

/* Direct mode, without a controller: the keys of a keyring directory (only public halves are
 * needed), the issuer the tokens must name, and fixed leases "DUT=LEASE". */
int stream_owner_new_direct(sd_event *event, Exporter *exporter, const char *exporter_name, const char *listen,
                            const char *keyring_dir, const char *issuer, char *const *leases, StreamOwner **ret);

StreamOwner *stream_owner_free(StreamOwner *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(StreamOwner *, stream_owner_free);
StreamServer *stream_owner_get_server(StreamOwner *o);
