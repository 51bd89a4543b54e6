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

        RemoteStorageOpen *opens;
        RemotePump *pumps;
        /* ... and the control and serial streams, in remote.c */
        void *links;

        uint64_t storage_size;
};

/* The token for a new connection (token_file is read anew each time). Logs its errors. */
int remote_get_token(Remote *r, char **ret);
/* The request line of a stream, with its newline. */
char *remote_request_line(Remote *r, const char *token, StreamKind kind, bool writable);
/* Reads the answer line: 0 with the parsed object, or a negative errno (the reason's) with a
 * message. */
int remote_parse_answer(const char *line, size_t n, json_t **ret, char **ret_message);
/* A connection error as a user reads it; its errno (-EHOSTDOWN for the unreachable, -EKEYREJECTED
 * for a certificate that is not the pinned one). */
int remote_connect_error(Remote *r, TlsConn *c, int error, char **ret_message);

/* remote-storage.c */
int remote_storage_open(void *instance, bool writable, StorageOpenFunc done, void *userdata);
void remote_storage_cancel_open(void *instance, void *userdata);
uint64_t remote_storage_size(void *instance);
void remote_storage_free_all(Remote *r);
