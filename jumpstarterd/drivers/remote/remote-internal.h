/* A DUT of another exporter: what the driver and its storage streams share */
#pragma once

#include <jansson.h>
#include <pthread.h>

#include "driver.h"
#include "stream-request.h"
#include "tls-conn.h"

typedef struct Remote Remote;
typedef struct RemotePump RemotePump;
typedef struct RemoteStorageOpen RemoteStorageOpen;

/* One stream's way to the exporter: straight to its stream listener, or through the controller's
 * router when it cannot be reached (docs/protocol.md "Routed streams"). */
typedef struct RemoteAttempt {
        bool routed;
        bool fell_back; /* the other way was tried already */
} RemoteAttempt;

struct Remote {
        DriverContext ctx;
        char *name;        /* this DUT's name, for messages */
        char *address;
        char *dut;         /* the DUT's name on the exporter */
        char *fingerprint;
        char *token;
        char *token_file;
        uint64_t connect_timeout_usec;
        SSL_CTX *tls;
        char *router;        /* "IP:PORT" of the controller's router; NULL: direct only */
        SSL_CTX *router_tls; /* verifies the router's certificate with router_ca */
        bool routed;         /* the way that worked last, where new streams start */

        RemoteStorageOpen *opens;
        RemotePump *pumps;
        /* ... and the control and serial streams, in remote.c */
        void *links;

        uint64_t storage_size;
};

/* The token for a new connection (token_file is read anew each time). Logs its errors. */
int remote_get_token(Remote *r, char **ret);
/* The request line of a stream, with its newline; route for the router. */
char *remote_request_line(Remote *r, const char *token, StreamKind kind, bool writable, bool route);

/* Connects a new stream the way that worked last; when that way cannot connect at once, the other. */
int remote_connect(Remote *r, RemoteAttempt *a, const TlsConnOps *ops, void *userdata, TlsConn **ret);
/* The connection of attempt a failed with error before the stream was answered. When the way is
 * closed (refused, unreachable, timed out) and there is a router to try, tries the other way: 1 with
 * the new connection in *ret, or the other way's negative errno if it fails at once (a then names
 * that way). 0 when there is nothing else to try. */
int remote_fall_back(Remote *r, RemoteAttempt *a, int error, const TlsConnOps *ops, void *userdata, TlsConn **ret);
/* The handshake is done: the rest of the connection timeout applies to the answer. */
void remote_attempt_ready(Remote *r, RemoteAttempt *a, TlsConn *c);
/* The stream was answered: later streams start this way. */
void remote_attempt_worked(Remote *r, RemoteAttempt *a);
/* "the exporter at ADDRESS" or "the exporter at ADDRESS via the router at ROUTER", for messages. */
const char *remote_way(Remote *r, const RemoteAttempt *a, char *buf, size_t size);
#define REMOTE_WAY_MAX 160
/* Reads the answer line: 0 with the parsed object, or a negative errno (the reason's) with a
 * message. */
int remote_parse_answer(const char *line, size_t n, json_t **ret, char **ret_message);
/* A connection error as a user reads it; its errno (-EHOSTDOWN for the unreachable, -EKEYREJECTED
 * for a certificate that is not the pinned one, or that router_ca does not vouch for). */
int remote_connect_error(Remote *r, const RemoteAttempt *a, TlsConn *c, int error, char **ret_message);

/* remote-storage.c */
int remote_storage_open(void *instance, bool writable, StorageOpenFunc done, void *userdata);
void remote_storage_cancel_open(void *instance, void *userdata);
uint64_t remote_storage_size(void *instance);
void remote_storage_free_all(Remote *r);
