/* Exporter link: registers this exporter's DUTs with the controller and follows its leases and keys */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "exporter.h"
#include "keyring.h"

typedef struct ExporterLink ExporterLink;

/* c must have an endpoint; c and exporter must outlive the link. Logs its errors (an unreadable tls.ca file). */
int exporter_link_new(sd_event *e, const ExporterConfig *c, Exporter *exporter, ExporterLink **ret);
/* Stops every transfer and timer; runs no callback. */
ExporterLink *exporter_link_free(ExporterLink *l);

/* The stream listener as it listens ("0.0.0.0:PORT", "[::]:PORT", "IP:PORT") and its certificate's
 * fingerprint ("sha256:HEX"). The link advertises the address that clients dial: streams.advertise of the
 * config, or for a wildcard listener the local address of the link's connection, with the listener's port.
 * Call before exporter_link_start(); NULL: no listener is registered. */
void exporter_link_set_streams(ExporterLink *l, const char *address, const char *fingerprint);
/* Starts linking up; from then on the link reconnects by itself. */
int exporter_link_start(ExporterLink *l);

/* The lease that holds this DUT now (NULL: none), with its end (CLOCK_REALTIME usec). */
const char *exporter_link_get_lease(ExporterLink *l, const char *dut, uint64_t *ret_end_usec);
/* The controller's keys as a Keyring for token_verify() (NULL until the first "keys" line). */
Keyring *exporter_link_get_keyring(ExporterLink *l);
/* The controller's name, the "iss" of its tokens (from the "keys" line, else from the exporter's own token);
 * NULL if neither says. */
const char *exporter_link_get_issuer(ExporterLink *l);
/* Called when a DUT's lease begins or ends (lease NULL), so the stream server can cut streams. */
void exporter_link_set_lease_changed(ExporterLink *l, void (*cb)(const char *dut, const char *lease, void *u), void *u);
/* Called for a "dial" line: connect to the router for a routed stream (stream-owner.c). */
void exporter_link_set_dial(ExporterLink *l, void (*cb)(const char *id, const char *router, const char *token, void *u),
                            void *u);
/* The trust of the link, for the router's certificate: the controller's CA as PEM (NULL: the system's
 * CAs), and whether tls.insecure turns verification off. */
const char *exporter_link_get_ca(ExporterLink *l, bool *ret_insecure);
/* The watch is open and the controller has spoken on it. */
bool exporter_link_is_connected(ExporterLink *l);

/* exporter-hooks.c: called when a lease begins (begins true) or ends on a DUT. */
void exporter_link_set_lease_edge(ExporterLink *l, void (*cb)(const char *dut, const char *lease, bool begins, void *u),
                                  void *u);
/* POSTs body to /v1/exporters/NAME/WHAT ("hooks", "health"), after the reports before it, again
 * until the controller takes it. */
int exporter_link_report(ExporterLink *l, const char *what, json_t *body);

static inline void exporter_link_freep(ExporterLink **l) {
        exporter_link_free(*l);
}
