/* Tests of TLS connections on sd-event: a real handshake on loopback, data both ways, pinning, errors */
#include <netinet/in.h>
#include <sys/socket.h>

#include "tests.h"
#include "tls-conn.h"
#include "tls.h"

typedef struct Peer {
        TlsConn *conn;
        bool ready, closed;
        int error;
        uint8_t *got;
        size_t n_got;
        size_t close_after; /* shut down cleanly once this much came */
        bool detach_on_ready;
} Peer;

static void on_ready(TlsConn *c, void *userdata) {
        Peer *p = userdata;
        p->ready = true;
}

static void on_data(TlsConn *c, const void *data, size_t n, void *userdata) {
        Peer *p = userdata;

        p->got = realloc(p->got, p->n_got + n);
        ASSERT_TRUE(p->got);
        memcpy(p->got + p->n_got, data, n);
        p->n_got += n;
        if (p->close_after && p->n_got >= p->close_after)
                ASSERT_OK(tls_conn_shutdown(c));
}

static void on_closed(TlsConn *c, int error, void *userdata) {
        Peer *p = userdata;

        ASSERT_FALSE(p->closed); /* once */
        p->closed = true;
        p->error = error;
}

static const TlsConnOps ops = { .ready = on_ready, .data = on_data, .closed = on_closed };

typedef struct Server {
        sd_event *event;
        SSL_CTX *ctx;
        int fd;
        sd_event_source *source;
        Peer peer;
        char address[SOCKET_ADDRESS_MAX];
} Server;

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Server *srv = userdata;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        ASSERT_TRUE(c >= 0);
        ASSERT_TRUE(srv->peer.conn == NULL);
        ASSERT_OK(tls_conn_accept(srv->event, srv->ctx, c, 0, &ops, &srv->peer, &srv->peer.conn));
        return 0;
}

static void server_start(sd_event *e, TlsIdentity *id, Server *srv, bool accept_connections) {
        struct sockaddr_storage ss;
        socklen_t len;

        *srv = (Server) { .event = e };
        ASSERT_OK(tls_server_ctx_new(id, &srv->ctx));
        ASSERT_OK(socket_address_parse("127.0.0.1:0", true, &ss, &len));
        srv->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ASSERT_TRUE(srv->fd >= 0);
        ASSERT_TRUE(bind(srv->fd, (struct sockaddr *) &ss, len) == 0);
        ASSERT_TRUE(listen(srv->fd, 8) == 0);
        len = sizeof ss;
        ASSERT_TRUE(getsockname(srv->fd, (struct sockaddr *) &ss, &len) == 0);
        socket_address_format((struct sockaddr *) &ss, srv->address);
        if (accept_connections)
                ASSERT_OK(sd_event_add_io(e, &srv->source, srv->fd, EPOLLIN, on_accept, srv));
}

static void server_stop(Server *srv) {
        sd_event_source_disable_unref(srv->source);
        tls_conn_free(srv->peer.conn);
        free(srv->peer.got);
        safe_close(srv->fd);
        SSL_CTX_free(srv->ctx);
}

/* Runs the loop until cond holds; the loop has nothing else to do, so a test that waits for
 * something that never comes hangs (and meson's timeout reports it) rather than passing. */
#define RUN_UNTIL(e, cond)                                      \
        do {                                                    \
                while (!(cond))                                 \
                        ASSERT_OK(sd_event_run((e), UINT64_MAX)); \
        } while (0)

TEST(fingerprint) {
        TlsIdentity *a, *b;

        ASSERT_OK(tls_identity_new("x", &a));
        ASSERT_OK(tls_identity_new("x", &b));
        ASSERT_TRUE(tls_fingerprint_is_valid(tls_identity_get_fingerprint(a)));
        ASSERT_FALSE(streq(tls_identity_get_fingerprint(a), tls_identity_get_fingerprint(b)));
        ASSERT_FALSE(tls_fingerprint_is_valid("sha256:ABCDEF"));
        ASSERT_FALSE(tls_fingerprint_is_valid(NULL));
        tls_identity_free(a);
        tls_identity_free(b);
}

TEST(addresses) {
        struct sockaddr_storage ss;
        socklen_t len;
        char buf[SOCKET_ADDRESS_MAX];

        ASSERT_OK(socket_address_parse("127.0.0.1:8444", false, &ss, &len));
        socket_address_format((struct sockaddr *) &ss, buf);
        ASSERT_STREQ(buf, "127.0.0.1:8444");
        ASSERT_OK(socket_address_parse("[::1]:80", false, &ss, &len));
        socket_address_format((struct sockaddr *) &ss, buf);
        ASSERT_STREQ(buf, "[::1]:80");
        ASSERT_OK(socket_address_parse(":0", true, &ss, &len));
        ASSERT_EQ(socket_address_parse(":8444", false, &ss, &len), -EINVAL);
        ASSERT_EQ(socket_address_parse("127.0.0.1:0", false, &ss, &len), -EINVAL);
        ASSERT_EQ(socket_address_parse("::1:80", false, &ss, &len), -EINVAL);
        ASSERT_EQ(socket_address_parse("localhost:80", false, &ss, &len), -EINVAL);
        ASSERT_EQ(socket_address_parse("127.0.0.1:65536", false, &ss, &len), -EINVAL);
        ASSERT_EQ(socket_address_parse("127.0.0.1:080", false, &ss, &len), -EINVAL);
        ASSERT_EQ(socket_address_parse("127.0.0.1", false, &ss, &len), -EINVAL);
}

TEST(exchange) {
        sd_event *e = NULL;
        TlsIdentity *id;
        SSL_CTX *cctx;
        Server srv;
        Peer client = {};
        size_t big = 8U * 1024U * 1024U;
        uint8_t *data = malloc(big);

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(tls_identity_new("lab1", &id));
        server_start(e, id, &srv, true);
        ASSERT_OK(tls_client_ctx_new(&cctx));
        ASSERT_OK(tls_conn_connect(e, cctx, srv.address, tls_identity_get_fingerprint(id), 10 * USEC_PER_SEC, &ops,
                                   &client, &client.conn));
        /* Written before the handshake: queued, and sent once it is done. */
        ASSERT_OK(tls_conn_write(client.conn, "hello\n", 6));
        RUN_UNTIL(e, srv.peer.n_got >= 6);
        ASSERT_TRUE(client.ready);
        ASSERT_TRUE(memcmp(srv.peer.got, "hello\n", 6) == 0);

        /* 8 MiB the other way: more than the socket takes at once, so the queue holds the rest. */
        for (size_t i = 0; i < big; i++)
                data[i] = (uint8_t) (i * 7 + i / 4096);
        ASSERT_OK(tls_conn_write(srv.peer.conn, data, big));
        ASSERT_TRUE(tls_conn_get_queued(srv.peer.conn) > 0);
        RUN_UNTIL(e, client.n_got >= big);
        ASSERT_EQ_U(client.n_got, big);
        ASSERT_TRUE(memcmp(client.got, data, big) == 0);
        ASSERT_EQ_U(tls_conn_get_queued(srv.peer.conn), 0);

        /* Back-pressure: nothing is delivered while reading is off, all of it after. */
        ASSERT_OK(tls_conn_set_reading(client.conn, false));
        ASSERT_OK(tls_conn_write(srv.peer.conn, "later", 5));
        RUN_UNTIL(e, tls_conn_get_queued(srv.peer.conn) == 0);
        ASSERT_EQ_U(client.n_got, big);
        ASSERT_OK(tls_conn_set_reading(client.conn, true));
        RUN_UNTIL(e, client.n_got == big + 5);
        ASSERT_TRUE(memcmp(client.got + big, "later", 5) == 0);

        /* A clean close reaches the other side as 0, once. */
        ASSERT_OK(tls_conn_write(client.conn, "bye", 3));
        ASSERT_OK(tls_conn_shutdown(client.conn));
        ASSERT_EQ(tls_conn_write(client.conn, "x", 1), -ENOTCONN);
        RUN_UNTIL(e, client.closed && srv.peer.closed);
        ASSERT_EQ(client.error, 0);
        ASSERT_EQ(srv.peer.error, 0);
        ASSERT_TRUE(memcmp(srv.peer.got + 6, "bye", 3) == 0);

        tls_conn_free(client.conn);
        free(client.got);
        server_stop(&srv);
        SSL_CTX_free(cctx);
        tls_identity_free(id);
        sd_event_unref(e);
        free(data);
}

TEST(pin_mismatch) {
        sd_event *e = NULL;
        TlsIdentity *id, *other;
        SSL_CTX *cctx;
        Server srv;
        Peer client = {};

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(tls_identity_new("lab1", &id));
        ASSERT_OK(tls_identity_new("lab1", &other));
        server_start(e, id, &srv, true);
        ASSERT_OK(tls_client_ctx_new(&cctx));
        ASSERT_OK(tls_conn_connect(e, cctx, srv.address, tls_identity_get_fingerprint(other), 10 * USEC_PER_SEC,
                                   &ops, &client, &client.conn));
        ASSERT_OK(tls_conn_write(client.conn, "secret", 6));
        RUN_UNTIL(e, client.closed);
        ASSERT_EQ(client.error, -EPERM);
        ASSERT_FALSE(client.ready);
        ASSERT_STREQ(tls_conn_get_peer_fingerprint(client.conn), tls_identity_get_fingerprint(id));
        /* The server saw the handshake fail, never the bytes. */
        RUN_UNTIL(e, srv.peer.closed);
        ASSERT_TRUE(srv.peer.error < 0);
        ASSERT_EQ_U(srv.peer.n_got, 0);

        tls_conn_free(client.conn);
        server_stop(&srv);
        SSL_CTX_free(cctx);
        tls_identity_free(id);
        tls_identity_free(other);
        sd_event_unref(e);
}

TEST(refused_and_timeout) {
        sd_event *e = NULL;
        TlsIdentity *id;
        SSL_CTX *cctx;
        Server srv;
        Peer a = {}, b = {};
        char closed_port[SOCKET_ADDRESS_MAX];

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(tls_identity_new("lab1", &id));
        ASSERT_OK(tls_client_ctx_new(&cctx));

        /* Nobody listens: refused. */
        server_start(e, id, &srv, false);
        strcpy(closed_port, srv.address);
        server_stop(&srv);
        ASSERT_OK(tls_conn_connect(e, cctx, closed_port, tls_identity_get_fingerprint(id), 10 * USEC_PER_SEC, &ops,
                                   &a, &a.conn));
        RUN_UNTIL(e, a.closed);
        ASSERT_EQ(a.error, -ECONNREFUSED);

        /* A listener that never answers the handshake: the timeout ends it. */
        server_start(e, id, &srv, false);
        ASSERT_OK(tls_conn_connect(e, cctx, srv.address, tls_identity_get_fingerprint(id), 200 * USEC_PER_MSEC, &ops,
                                   &b, &b.conn));
        RUN_UNTIL(e, b.closed);
        ASSERT_EQ(b.error, -ETIMEDOUT);

        ASSERT_EQ(tls_conn_connect(e, cctx, "nowhere:1", tls_identity_get_fingerprint(id), 0, &ops, &b, &b.conn),
                  -EINVAL);

        tls_conn_free(a.conn);
        tls_conn_free(b.conn);
        server_stop(&srv);
        SSL_CTX_free(cctx);
        tls_identity_free(id);
        sd_event_unref(e);
}

TEST(peer_vanishes_and_detach) {
        sd_event *e = NULL;
        TlsIdentity *id;
        SSL_CTX *cctx;
        Server srv;
        Peer client = {};
        SSL *ssl = NULL;
        int fd = -1;
        char buf[16];

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(tls_identity_new("lab1", &id));
        server_start(e, id, &srv, true);
        ASSERT_OK(tls_client_ctx_new(&cctx));
        ASSERT_OK(tls_conn_connect(e, cctx, srv.address, tls_identity_get_fingerprint(id), 0, &ops, &client,
                                   &client.conn));
        RUN_UNTIL(e, client.ready && srv.peer.conn && tls_conn_is_ready(srv.peer.conn));

        /* The server side goes to blocking I/O; the client still speaks to it. */
        ASSERT_OK(tls_conn_detach(srv.peer.conn, &ssl, &fd));
        ASSERT_OK(tls_conn_write(client.conn, "ping", 4));
        RUN_UNTIL(e, tls_conn_get_queued(client.conn) == 0);
        ASSERT_EQ(SSL_read(ssl, buf, 4), 4);
        ASSERT_TRUE(memcmp(buf, "ping", 4) == 0);

        /* The peer dies without a goodbye: an error, not a clean close. */
        SSL_free(ssl);
        close(fd);
        RUN_UNTIL(e, client.closed);
        ASSERT_TRUE(client.error < 0);

        tls_conn_free(client.conn);
        server_stop(&srv);
        SSL_CTX_free(cctx);
        tls_identity_free(id);
        sd_event_unref(e);
}

TEST_MAIN()
