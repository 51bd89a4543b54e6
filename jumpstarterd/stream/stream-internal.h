/* Data streams on the exporter: what the server, the control operations and the storage workers share */
#pragma once

#include <jansson.h>
#include <openssl/ssl.h>
#include <pthread.h>

#include "dut.h"
#include "stream-request.h"
#include "stream-server.h"
#include "tls-conn.h"

/* Control requests are short lines; anything longer is not one. */
#define STREAM_CONTROL_LINE_MAX (64U * 1024U)
/* Console output that a slow client has not taken yet; beyond that it is dropped, as a terminal
 * that nobody reads drops it (serial.log on the exporter still has it). */
#define STREAM_SERIAL_QUEUE_MAX (1024U * 1024U)

typedef struct Stream Stream;
typedef struct ControlOp ControlOp;
typedef struct StorageWorker StorageWorker;

struct Stream {
        StreamServer *server;
        Stream *next;
        TlsConn *conn;
        char peer[SOCKET_ADDRESS_MAX];

        /* Until the request line is judged: kind is _STREAM_KIND_INVALID. */
        StreamKind kind;
        char *buf; /* the request line, then partial control lines */
        size_t buf_len;

        Dut *dut;
        char *dut_name;
        char *lease;
        char *verbs;
        bool writable;
        bool judged;      /* the request line was read (and accepted or refused) */
        bool listening;   /* a DUT listener is registered */
        bool opening;     /* storage: waiting for the DUT to open it */
        bool dropping;    /* serial: output is being dropped (logged once per episode) */
        uint64_t n_dropped;

        ControlOp *ops;   /* control requests the DUT still works on */
        StorageWorker *worker;
};

/* stream-server.c */
void stream_free(Stream *st);
void stream_refuse(Stream *st, ApiError e, const char *message, const char *detail);
int stream_send_json(Stream *st, json_t *v);

/* stream-control.c: one line of a control stream (without the newline). */
void stream_control_line(Stream *st, const char *line, size_t n);
void stream_control_power_changed(Dut *d, PowerState state, void *userdata);
void stream_control_detach_ops(Stream *st);

/* storage-worker.c: serves the block protocol on ssl/fd (blocking) in a thread, after sending the
 * answer line with the size. pending holds bytes that came after the request line. done runs on
 * the loop once the thread is over. */
int storage_worker_start(sd_event *event, SSL *ssl, int fd, int storage_fd, uint64_t size, bool writable,
                         const void *pending, size_t n_pending, void (*done)(StorageWorker *w, void *userdata),
                         void *userdata, StorageWorker **ret);
/* Makes the thread stop at its next read of the connection. */
void storage_worker_cut(StorageWorker *w);
/* Joins the thread (it must be over, or cut) and frees it. */
StorageWorker *storage_worker_free(StorageWorker *w);
