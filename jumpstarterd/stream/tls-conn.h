/* A non-blocking TLS connection on sd-event: connect, handshake, reads, a write queue, close */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "tls.h"

typedef struct TlsConn TlsConn;

typedef struct TlsConnOps {
        /* The handshake finished; bytes written before now go out. Optional. */
        void (*ready)(TlsConn *c, void *userdata);
        /* Bytes arrived, as they come: a read boundary means nothing. Not while reading is off. */
        void (*data)(TlsConn *c, const void *data, size_t n, void *userdata);
        /* The write queue went empty. Optional. */
        void (*drained)(TlsConn *c, void *userdata);
        /* The connection is over: 0 for a clean close (the peer's close_notify, or tls_conn_shutdown()
         * done), else a negative errno: -ETIMEDOUT (the timeout), -EPERM (the server's certificate
         * does not have the pinned fingerprint, or its CA does not vouch for it), -EPROTO (TLS failed), -ECONNRESET, -ECONNREFUSED,
         * ... Called once, never from within a tls_conn_*() call; nothing is called after it. The
         * callbacks may free the connection. */
        void (*closed)(TlsConn *c, int error, void *userdata);
} TlsConnOps;

/* "IPv4:PORT", "[IPv6]:PORT", or for a listener also ":PORT" (every address). Numeric only: no
 * name lookup can block the loop. */
int socket_address_parse(const char *s, bool listen, struct sockaddr_storage *ret, socklen_t *ret_len);
/* The same back: "127.0.0.1:8444", "[::1]:8444". ret has room for SOCKET_ADDRESS_MAX bytes. */
#define SOCKET_ADDRESS_MAX 64
void socket_address_format(const struct sockaddr *sa, char *ret);
/* A non-blocking TCP listener on ss (from socket_address_parse() with listen; an IPv6 wildcard takes
 * both families), with the address it got in *ret_bound (the port the kernel picked). Returns the
 * fd or a negative errno. */
int socket_listen(const struct sockaddr_storage *ss, socklen_t len, struct sockaddr_storage *ret_bound);
/* accept4() of a listener (non-blocking, close-on-exec) with the peer's address in peer (room for
 * SOCKET_ADDRESS_MAX bytes). Returns the fd, or a negative errno: -EAGAIN, -EINTR and
 * -ECONNABORTED mean nothing to do, others are logged by the caller. */
int socket_accept(int fd, char *peer);

/* Connects to address and shakes hands as a client that pins the server's certificate to
 * fingerprint, or with fingerprint NULL, that lets ctx verify it (tls_client_ctx_new_ca()) and
 * checks that it names the address's IP. The timeout (0: none) runs from now until tls_conn_set_timeout() changes it: it
 * covers the connect, the handshake, and whatever the caller waits for next. */
int tls_conn_connect(sd_event *event, SSL_CTX *ctx, const char *address, const char *fingerprint,
                     uint64_t timeout_usec, const TlsConnOps *ops, void *userdata, TlsConn **ret);
/* Serves an accepted socket (taken over, also on failure). */
int tls_conn_accept(sd_event *event, SSL_CTX *ctx, int fd, uint64_t timeout_usec, const TlsConnOps *ops,
                    void *userdata, TlsConn **ret);
/* Drops the connection at once, without close_notify; no callback. NULL-safe. */
TlsConn *tls_conn_free(TlsConn *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(TlsConn *, tls_conn_free);

void tls_conn_set_userdata(TlsConn *c, const TlsConnOps *ops, void *userdata);
/* Arms the timeout anew (0: off). When it passes, closed() gets -ETIMEDOUT. */
int tls_conn_set_timeout(TlsConn *c, uint64_t usec);

/* Queues bytes and sends what the socket takes at once (no batching, TCP_NODELAY). The queue has
 * no bound: callers that may produce faster than the peer reads watch tls_conn_get_queued().
 * -ENOTCONN once the connection failed or is shutting down. */
int tls_conn_write(TlsConn *c, const void *data, size_t n);
size_t tls_conn_get_queued(const TlsConn *c);
/* Back-pressure: while off, nothing is read (and the peer's sending stalls in TCP). */
int tls_conn_set_reading(TlsConn *c, bool on);
/* Closes cleanly: sends what is queued, then close_notify, then closed(0). */
int tls_conn_shutdown(TlsConn *c);

/* Takes the TLS session and its socket away from the loop, for a thread that does blocking I/O on
 * them (the socket is made blocking). Only after ready() and with an empty write queue (-EBUSY).
 * Afterwards the connection calls nothing and only tls_conn_free() is left. */
int tls_conn_detach(TlsConn *c, SSL **ret_ssl, int *ret_fd);

bool tls_conn_is_ready(const TlsConn *c);
/* After closed(-EPERM): the fingerprint the server presented. */
const char *tls_conn_get_peer_fingerprint(const TlsConn *c);
/* After closed(-EPERM) of a connection without a pinned fingerprint: why its CA refused the
 * server's certificate ("certificate has expired", "IP address mismatch", ...). */
const char *tls_conn_get_verify_error(const TlsConn *c);
/* "ADDRESS:PORT" of the peer, for messages. */
const char *tls_conn_get_peer(const TlsConn *c);

/* Socket options every stream socket gets: TCP_NODELAY (serial latency: nothing waits to be
 * batched), keepalive and TCP_USER_TIMEOUT (a peer that vanished is noticed within about 30 s). */
int stream_socket_setup(int fd);
