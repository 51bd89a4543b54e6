/* The exporter's data stream listener: TLS, the request line, the token, then serial, control or storage */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

#include "exporter.h"
#include "keyring.h"
#include "macro.h"
#include "tls-conn.h"

typedef struct StreamServer StreamServer;

/* What the owner (the exporter link, or direct mode) knows; each is asked at every request. */
typedef struct StreamServerHooks {
        /* The lease that holds the DUT now, or NULL. */
        const char *(*lease_of)(const char *dut, void *userdata);
        /* The controller's public keys; NULL while unknown (every request is refused then). */
        Keyring *(*keyring)(void *userdata);
        /* The controller's name: the tokens' "iss". */
        const char *(*issuer)(void *userdata);
} StreamServerHooks;

/* Listens on listen ("IP:PORT", "[IPv6]:PORT" or ":PORT"; port 0: any) with a new self-signed
 * certificate. Tokens must have aud "exporter/<exporter_name>". Logs its errors. */
int stream_server_new(sd_event *event, Exporter *exporter, const char *exporter_name, const char *listen_address,
                      const StreamServerHooks *hooks, void *userdata, StreamServer **ret);
/* Closes every stream; waits for storage workers to finish the request they are in. */
StreamServer *stream_server_free(StreamServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(StreamServer *, stream_server_free);

/* The bound address, "IP:PORT" (the port the kernel picked, for port 0). */
const char *stream_server_get_address(const StreamServer *s);
/* "sha256:<hex>" of the certificate: what clients pin. */
const char *stream_server_get_fingerprint(const StreamServer *s);

/* Serves a connection that did not come through the listener as if it had been accepted: a routed
 * stream, which the exporter dialed out to the controller's router (docs/protocol.md "Routed
 * streams"). conn is ready (its handshake done) and taken over, also on failure; the next line it
 * reads is the request. peer (NULL: the connection's) names it in messages. */
int stream_server_adopt(StreamServer *s, TlsConn *conn, const char *peer);

/* Closes every stream of the DUT (its lease ended, or the DUT goes away). */
void stream_server_cut_lease(StreamServer *s, const char *dut);
/* Frees every stream of the DUT at once (the DUT is about to be freed: exporter_remove_dut()). */
void stream_server_drop_dut(StreamServer *s, Dut *d);
size_t stream_server_n_streams(const StreamServer *s);
