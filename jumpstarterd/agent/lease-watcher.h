/* Agent role: follows the client's leases at the controller and turns each active one into a DUT */
#pragma once

#include <systemd/sd-event.h>

#include "client-config.h"
#include "exporter.h"

typedef struct LeaseWatcher LeaseWatcher;

/* Follows GET /v1/leases?watch=true of the controller in config (copied). For each active lease it
 * fetches a stream token, writes it to token_dir/<lease>.token (mode 0600; the directory is made
 * and is the watcher's) and adds a DUT named after the lease, of type remote, to exporter; it
 * refreshes the token before it expires and removes the DUT when the lease ends. ReleaseDut of
 * such a DUT ends its lease (DELETE /v1/leases/NAME). The watch reconnects with backoff; DUTs of
 * leases that are still active survive a blip. Logs its errors. */
int lease_watcher_new(sd_event *event, Exporter *exporter, const ClientConfig *config, const char *token_dir,
                      LeaseWatcher **ret);
/* Removes the DUTs it added, their token files and the directory. */
LeaseWatcher *lease_watcher_free(LeaseWatcher *w);

static inline void lease_watcher_freep(LeaseWatcher **w) {
        lease_watcher_free(*w);
}
