/* Tests of the exporter's stream server: a sim DUT served to a real TLS client on loopback */
#include <time.h>

#include "block-protocol.h"
#include "config.h"
#include "exporter.h"
#include "stream-server.h"
#include "tests.h"
#include "tls-conn.h"
#include "token.h"

static Keyring *ring;
static const char *lease = "lease1";

static const char *hook_lease_of(const char *dut, void *u) {
        return streq(dut, "dut1") ? lease : NULL;
}
static Keyring *hook_keyring(void *u) {
        return ring;
}
static const char *hook_issuer(void *u) {
        return "lab";
}
static const StreamServerHooks hooks = { hook_lease_of, hook_keyring, hook_issuer };

typedef struct Client {
        TlsConn *conn;
        bool closed;
        int error;
        char *got;
        size_t n_got;
} Client;

static void on_data(TlsConn *c, const void *data, size_t n, void *userdata) {
        Client *cl = userdata;

        cl->got = realloc(cl->got, cl->n_got + n + 1);
        ASSERT_TRUE(cl->got);
        memcpy(cl->got + cl->n_got, data, n);
        cl->n_got += n;
        cl->got[cl->n_got] = 0;
}

static void on_closed(TlsConn *c, int error, void *userdata) {
        Client *cl = userdata;
        cl->closed = true;
        cl->error = error;
}

static const TlsConnOps ops = { .data = on_data, .closed = on_closed };

#define RUN_UNTIL(e, cond)                                        \
        do {                                                      \
                while (!(cond))                                   \
                        ASSERT_OK(sd_event_run((e), UINT64_MAX)); \
        } while (0)

static char *mint(const char *verbs) {
        struct timespec ts;
        TokenClaims c = { .iss = (char *) "lab", .sub = (char *) "alice", .aud = (char *) "exporter/lab1",
                          .kind = (char *) TOKEN_KIND_STREAM, .dut = (char *) "dut1", .lease = (char *) "lease1",
                          .verbs = (char *) verbs };
        char *t;

        clock_gettime(CLOCK_REALTIME, &ts);
        c.iat_usec = (uint64_t) ts.tv_sec * USEC_PER_SEC;
        c.exp_usec = c.iat_usec + 600 * USEC_PER_SEC;
        ASSERT_OK(token_issue(ring, &c, &t));
        return t;
}

static void client_open(sd_event *e, SSL_CTX *ctx, StreamServer *s, Client *cl, const char *verbs, const char *stream,
                        bool writable) {
        char *t = mint(verbs), *line;

        *cl = (Client) {};
        ASSERT_OK(tls_conn_connect(e, ctx, stream_server_get_address(s), stream_server_get_fingerprint(s),
                                   10 * USEC_PER_SEC, &ops, cl, &cl->conn));
        ASSERT_TRUE(asprintf(&line, "{\"token\":\"%s\",\"dut\":\"dut1\",\"stream\":\"%s\",\"writable\":%s}\n", t,
                             stream, writable ? "true" : "false") > 0);
        ASSERT_OK(tls_conn_write(cl->conn, line, strlen(line)));
        free(line);
        free(t);
}

static void client_done(Client *cl) {
        tls_conn_free(cl->conn);
        free(cl->got);
}

static const char config_yaml[] =
        "apiVersion: jumpstarter.dev/v1alpha1\n"
        "kind: ExporterConfig\n"
        "metadata:\n"
        "  name: lab1\n"
        "export:\n"
        "  dut1:\n"
        "    type: sim\n"
        "    config:\n"
        "      size: 1MiB\n"
        "      boot_time: 10ms\n";

TEST(streams) {
        sd_event *e = NULL;
        ExporterConfig *config = NULL;
        Exporter *x = NULL;
        StreamServer *s = NULL;
        SSL_CTX *ctx = NULL;
        char *error = NULL;
        Client control, serial, storage, refused;
        uint8_t req[BLOCK_REQUEST_SIZE];
        int32_t result;

        ASSERT_OK(keyring_new(&ring));
        ASSERT_OK(keyring_rotate(ring, NULL));
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(exporter_config_parse("/tmp/test.yaml", config_yaml, sizeof config_yaml - 1, &config, &error));
        ASSERT_OK(exporter_new(e, config, &x));
        ASSERT_OK(stream_server_new(e, x, "lab1", "127.0.0.1:0", &hooks, NULL, &s));
        ASSERT_OK(tls_client_ctx_new(&ctx));

        /* A token without the storage verb gets a reason and a close. */
        client_open(e, ctx, s, &refused, "power serial", "storage", true);
        RUN_UNTIL(e, refused.closed);
        ASSERT_CONTAINS(refused.got, "\"reason\":\"Forbidden\"");
        ASSERT_CONTAINS(refused.got, "does not allow 'storage'");
        client_done(&refused);

        /* Control without the power verb: describe works, power.set is refused. */
        client_open(e, ctx, s, &control, "serial", "control", false);
        ASSERT_OK(tls_conn_write(control.conn, "{\"id\":1,\"op\":\"describe\"}\n{\"id\":2,\"op\":\"power.set\",\"action\":\"on\"}\n",
                                 strlen("{\"id\":1,\"op\":\"describe\"}\n{\"id\":2,\"op\":\"power.set\",\"action\":\"on\"}\n")));
        RUN_UNTIL(e, control.got && strstr(control.got, "\"id\":2"));
        ASSERT_CONTAINS(control.got, "{\"ok\":true}\n");
        ASSERT_CONTAINS(control.got, "\"storageSize\":1048576");
        ASSERT_CONTAINS(control.got, "\"classes\":[\"power\",\"serial\",\"storage\"]");
        ASSERT_CONTAINS(control.got, "{\"id\":2,\"error\":{\"reason\":\"Forbidden\"");
        client_done(&control);

        /* With it: power on, the event, and the boot on the serial stream. */
        client_open(e, ctx, s, &serial, "serial", "serial", false);
        client_open(e, ctx, s, &control, "power", "control", false);
        ASSERT_OK(tls_conn_write(control.conn, "{\"id\":7,\"op\":\"power.set\",\"action\":\"on\"}\n",
                                 strlen("{\"id\":7,\"op\":\"power.set\",\"action\":\"on\"}\n")));
        RUN_UNTIL(e, control.got && strstr(control.got, "\"id\":7"));
        ASSERT_CONTAINS(control.got, "{\"event\":\"power\",\"state\":\"on\"}");
        ASSERT_CONTAINS(control.got, "{\"id\":7,\"result\":{\"state\":\"on\"}}");
        RUN_UNTIL(e, serial.got && strstr(serial.got, "boot complete"));

        /* While powered, writable storage is refused by the DUT's rules. */
        client_open(e, ctx, s, &storage, "storage", "storage", true);
        RUN_UNTIL(e, storage.closed);
        ASSERT_CONTAINS(storage.got, "\"reason\":\"Busy\"");
        client_done(&storage);

        /* The lease ends: every stream of the DUT closes. */
        ASSERT_EQ_U(stream_server_n_streams(s), 2);
        stream_server_cut_lease(s, "dut1");
        RUN_UNTIL(e, serial.closed && control.closed);
        client_done(&serial);
        client_done(&control);
        RUN_UNTIL(e, stream_server_n_streams(s) == 0);

        /* And a token of that lease is refused from now on. */
        lease = "lease2";
        client_open(e, ctx, s, &refused, "serial", "serial", false);
        RUN_UNTIL(e, refused.closed);
        ASSERT_CONTAINS(refused.got, "\"reason\":\"Expired\"");
        client_done(&refused);
        lease = "lease1";

        /* Storage (powered off now): a write and a read through the block protocol. */
        {
                Client p;
                PowerState st;

                client_open(e, ctx, s, &p, "power", "control", false);
                ASSERT_OK(tls_conn_write(p.conn, "{\"id\":1,\"op\":\"power.set\",\"action\":\"off\"}\n",
                                         strlen("{\"id\":1,\"op\":\"power.set\",\"action\":\"off\"}\n")));
                RUN_UNTIL(e, p.got && strstr(p.got, "\"id\":1"));
                ASSERT_OK(dut_get_power(exporter_find_dut(x, "dut1"), &st));
                ASSERT_EQ(st, POWER_OFF);
                client_done(&p);
        }
        client_open(e, ctx, s, &storage, "storage", "storage", true);
        RUN_UNTIL(e, storage.got && strchr(storage.got, '\n'));
        ASSERT_STREQ(storage.got, "{\"ok\":true,\"size\":1048576}\n");
        storage.n_got = 0;
        block_request_encode(&(BlockRequest) { .op = BLOCK_OP_WRITE, .length = 5, .offset = 1048574 }, req);
        ASSERT_OK(tls_conn_write(storage.conn, req, sizeof req));
        ASSERT_OK(tls_conn_write(storage.conn, "abcde", 5));
        block_request_encode(&(BlockRequest) { .op = BLOCK_OP_READ, .length = 16, .offset = 1048570 }, req);
        ASSERT_OK(tls_conn_write(storage.conn, req, sizeof req));
        block_request_encode(&(BlockRequest) { .op = BLOCK_OP_WRITE, .length = 1, .offset = 1048576 }, req);
        ASSERT_OK(tls_conn_write(storage.conn, req, sizeof req));
        ASSERT_OK(tls_conn_write(storage.conn, "z", 1));
        RUN_UNTIL(e, storage.n_got >= 8 + 8 + 6 + 8);
        ASSERT_TRUE(block_answer_decode((uint8_t *) storage.got, &result));
        ASSERT_EQ(result, 2); /* what fits */
        ASSERT_TRUE(block_answer_decode((uint8_t *) storage.got + 8, &result));
        ASSERT_EQ(result, 6); /* up to the end */
        ASSERT_TRUE(memcmp(storage.got + 16, "\0\0\0\0ab", 6) == 0);
        ASSERT_TRUE(block_answer_decode((uint8_t *) storage.got + 22, &result));
        ASSERT_EQ(result, -ENOSPC);
        ASSERT_EQ(dut_n_storage_sessions(exporter_find_dut(x, "dut1")), 1);

        /* Pipelined: more requests in flight than the worker has slots, all sent before any answer is
         * read. Answers come in request order, the fsync after the writes, and a read after a write
         * sees it. */
        {
                enum { N = 10, LEN = 65536 };
                static uint8_t data[N][LEN];
                size_t at = 0;

                storage.n_got = 0;
                for (size_t i = 0; i < N; i++) {
                        memset(data[i], 'A' + (int) i, LEN);
                        block_request_encode(&(BlockRequest) { .op = BLOCK_OP_WRITE, .length = LEN,
                                                                .offset = i * LEN }, req);
                        ASSERT_OK(tls_conn_write(storage.conn, req, sizeof req));
                        ASSERT_OK(tls_conn_write(storage.conn, data[i], LEN));
                }
                block_request_encode(&(BlockRequest) { .op = BLOCK_OP_FSYNC }, req);
                ASSERT_OK(tls_conn_write(storage.conn, req, sizeof req));
                for (size_t i = 0; i < N; i++) {
                        block_request_encode(&(BlockRequest) { .op = BLOCK_OP_READ, .length = LEN,
                                                                .offset = (N - 1 - i) * LEN }, req);
                        ASSERT_OK(tls_conn_write(storage.conn, req, sizeof req));
                }
                RUN_UNTIL(e, storage.n_got >= (size_t) (N * 8 + 8 + N * (8 + LEN)));
                ASSERT_EQ(storage.n_got, (size_t) (N * 8 + 8 + N * (8 + LEN)));
                for (size_t i = 0; i < N; i++, at += 8) {
                        ASSERT_TRUE(block_answer_decode((uint8_t *) storage.got + at, &result));
                        ASSERT_EQ(result, LEN);
                }
                ASSERT_TRUE(block_answer_decode((uint8_t *) storage.got + at, &result));
                ASSERT_EQ(result, 0);
                at += 8;
                for (size_t i = 0; i < N; i++, at += 8 + LEN) {
                        ASSERT_TRUE(block_answer_decode((uint8_t *) storage.got + at, &result));
                        ASSERT_EQ(result, LEN);
                        ASSERT_TRUE(memcmp(storage.got + at + 8, data[N - 1 - i], LEN) == 0);
                }
        }

        /* A request that breaks the protocol ends the stream and the session. */
        ASSERT_OK(tls_conn_write(storage.conn, "garbage garbage!", 16));
        RUN_UNTIL(e, storage.closed);
        RUN_UNTIL(e, dut_n_storage_sessions(exporter_find_dut(x, "dut1")) == 0);
        client_done(&storage);

        /* A DUT that goes away takes its streams along at once; the client sees the end. */
        client_open(e, ctx, s, &serial, "serial", "serial", false);
        RUN_UNTIL(e, serial.got && strstr(serial.got, "{\"ok\":true}"));
        ASSERT_EQ_U(stream_server_n_streams(s), 1);
        stream_server_drop_dut(s, exporter_find_dut(x, "dut1"));
        ASSERT_EQ_U(stream_server_n_streams(s), 0);
        RUN_UNTIL(e, serial.closed);
        client_done(&serial);

        stream_server_free(s);
        SSL_CTX_free(ctx);
        exporter_free(x);
        exporter_config_free(config);
        keyring_free(ring);
        sd_event_unref(e);
}

TEST_MAIN()
