/* Tests for the controller's HTTPS + JSON API server, against a real server and libcurl clients */
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "api-error.h"
#include "http-server.h"
#include "log.h"
#include "macro.h"
#include "tests.h"

#define BODY_MAX 4096
#define N_CONCURRENT 50
#define DEADLINE_USEC (120 * USEC_PER_SEC)

/* ---- Test certificates: a CA and a server certificate it signs, made with OpenSSL ---- */

static char tmpdir[] = "/tmp/test-http-server-XXXXXX";
static char ca_path[PATH_MAX], other_ca_path[PATH_MAX], cert_path[PATH_MAX], key_path[PATH_MAX], other_key_path[PATH_MAX],
        garbage_path[PATH_MAX];

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        ASSERT_TRUE(ext);
        ASSERT_TRUE(X509_add_ext(x, ext, -1) == 1);
        X509_EXTENSION_free(ext);
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long serial) {
        X509 *x = X509_new();
        X509_NAME *name;

        ASSERT_TRUE(x);
        ASSERT_TRUE(X509_set_version(x, 2) == 1);
        ASSERT_TRUE(ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1);
        ASSERT_TRUE(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
        ASSERT_TRUE(X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600));
        ASSERT_TRUE(X509_set_pubkey(x, key) == 1);
        name = X509_get_subject_name(x);
        ASSERT_TRUE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0) == 1);
        ASSERT_TRUE(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) == 1);

        add_ext(x, issuer ?: x, NID_subject_key_identifier, "hash");
        if (issuer) {
                add_ext(x, issuer, NID_authority_key_identifier, "keyid");
                add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
                add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
                add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
                add_ext(x, issuer, NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost");
        } else {
                add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
                add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
        }
        ASSERT_TRUE(X509_sign(x, issuer_key, EVP_sha256()) > 0);
        return x;
}

static void write_pem(const char *path, X509 *x, EVP_PKEY *key) {
        FILE *f = fopen(path, "we");

        ASSERT_TRUE(f);
        if (x)
                ASSERT_TRUE(PEM_write_X509(f, x) == 1);
        if (key)
                ASSERT_TRUE(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);
        ASSERT_EQ(fclose(f), 0);
}

static void make_certificates(void) {
        EVP_PKEY *ca_key, *key, *other_key;
        X509 *ca, *cert, *other;
        FILE *f;

        if (ca_path[0])
                return;
        ASSERT_TRUE(mkdtemp(tmpdir));
        snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", tmpdir);
        snprintf(other_ca_path, sizeof(other_ca_path), "%s/other-ca.pem", tmpdir);
        snprintf(cert_path, sizeof(cert_path), "%s/server.pem", tmpdir);
        snprintf(key_path, sizeof(key_path), "%s/server.key", tmpdir);
        snprintf(other_key_path, sizeof(other_key_path), "%s/other.key", tmpdir);
        snprintf(garbage_path, sizeof(garbage_path), "%s/garbage.pem", tmpdir);

        ca_key = EVP_EC_gen("P-256");
        key = EVP_EC_gen("P-256");
        other_key = EVP_EC_gen("P-256");
        ASSERT_TRUE(ca_key && key && other_key);
        ca = make_cert(ca_key, "Jumpstarter test CA", NULL, ca_key, 1);
        cert = make_cert(key, "localhost", ca, ca_key, 2);
        /* A CA of the same name that did not sign the server's certificate. */
        other = make_cert(other_key, "Jumpstarter test CA", NULL, other_key, 1);
        write_pem(ca_path, ca, NULL);
        write_pem(other_ca_path, other, NULL);
        write_pem(cert_path, cert, NULL);
        write_pem(key_path, NULL, key);
        write_pem(other_key_path, NULL, other_key);
        X509_free(ca);
        X509_free(cert);
        X509_free(other);
        EVP_PKEY_free(other_key);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(key);

        f = fopen(garbage_path, "we");
        ASSERT_TRUE(f);
        fputs("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n", f);
        ASSERT_EQ(fclose(f), 0);
}

static void remove_certificates(void) {
        if (!ca_path[0])
                return;
        (void) unlink(ca_path);
        (void) unlink(other_ca_path);
        (void) unlink(cert_path);
        (void) unlink(key_path);
        (void) unlink(other_key_path);
        (void) unlink(garbage_path);
        (void) rmdir(tmpdir);
}

/* ---- The server side: handlers on the test's event loop ---- */

typedef struct Server {
        sd_event *event;
        HttpServer *server;
        char base[128];
        bool tls;

        unsigned n_slow_from_timer;
        unsigned n_pending;
        unsigned n_pending_cancelled;
        unsigned n_watch_cancelled;
        unsigned n_watch_ended;
        HttpRequest *barrier[N_CONCURRENT];
        unsigned n_barrier, max_barrier;
} Server;

static int on_authenticate(HttpRequest *req, const char *token, char **ret_detail, void *userdata) {
        if (streq(token, "good")) {
                char *who = strdup("alice");

                if (!who)
                        return -ENOMEM;
                http_request_set_identity(req, who, free);
                return 0;
        }
        if (streq(token, "expired")) {
                *ret_detail = strdup("expired");
                return -EACCES;
        }
        return -EKEYREJECTED;
}

static int on_ping(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:b}", "pong", 1);

        return http_request_reply_json(req, 200, j);
}

static int on_echo(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *j = NULL;

        j = json_pack("{s:O?, s:s?}", "echo", http_request_get_json(req), "identity",
                      (const char *) http_request_get_identity(req));
        return http_request_reply_json(req, 200, j);
}

static int on_list_leases(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:[]}", "leases");

        return http_request_reply_json(req, 200, j);
}

static int on_create_lease(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        json_t *body = http_request_get_json(req);
        const char *selector = json_string_value(json_object_get(body, "selector"));

        if (!selector)
                return http_request_reply_error(req, API_ERROR_INVALID_SELECTOR, "A lease needs a \"selector\"");
        ASSERT_OK(http_request_add_header(req, "Location", "/v1/leases/lease1"));
        j = json_pack("{s:s, s:s}", "name", "lease1", "selector", selector);
        return http_request_reply_json(req, 201, j);
}

static int on_get_lease(HttpRequest *req, void *userdata) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *name = http_request_get_param(req, "name");

        ASSERT_TRUE(name);
        if (streq(name, "missing"))
                return -ENOENT; /* through the error table */
        if (streq(name, "offline"))
                return -EHOSTDOWN;
        j = json_pack("{s:s, s:s?}", "name", name, "view", http_request_get_query(req, "view"));
        return http_request_reply_json(req, 200, j);
}

static int on_delete_lease(HttpRequest *req, void *userdata) {
        return http_request_reply(req, 204, NULL, NULL, 0);
}

/* Replies later, from a timer. */
typedef struct Later {
        Server *srv;
        HttpRequest *req;
        sd_event_source *timer;
} Later;

static int on_slow_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        Later *l = userdata;
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:b}", "late", 1);

        ASSERT_FALSE(http_request_is_cancelled(l->req));
        ASSERT_OK(http_request_reply_json(l->req, 200, j));
        ASSERT_EQ(http_request_reply_json(l->req, 200, j), -EALREADY);
        l->srv->n_slow_from_timer++;
        http_request_unref(l->req);
        sd_event_source_disable_unref(l->timer);
        free(l);
        return 0;
}

static int on_slow(HttpRequest *req, void *userdata) {
        Server *srv = userdata;
        Later *l = calloc(1, sizeof(Later));
        uint64_t now;

        ASSERT_TRUE(l);
        l->srv = srv;
        l->req = http_request_ref(req);
        ASSERT_OK(sd_event_now(srv->event, CLOCK_MONOTONIC, &now));
        ASSERT_OK(sd_event_add_time(srv->event, &l->timer, CLOCK_MONOTONIC, now + 50 * USEC_PER_MSEC, 1,
                                    on_slow_timer, l));
        return 0;
}

/* Never replies; the client gives up. */
static void on_pending_cancel(HttpRequest *req, void *userdata) {
        Server *srv = userdata;

        ASSERT_TRUE(http_request_is_cancelled(req));
        ASSERT_EQ(http_request_reply_json(req, 200, NULL), -ECONNRESET);
        srv->n_pending_cancelled++;
        http_request_unref(req);
}

static int on_pending(HttpRequest *req, void *userdata) {
        Server *srv = userdata;

        http_request_ref(req);
        http_request_set_cancel_callback(req, on_pending_cancel, srv);
        srv->n_pending++;
        return 0;
}

/* Holds every request until N_CONCURRENT wait at once, then answers them all: only a server that
 * keeps them all open on one loop gets there. */
static int on_barrier(HttpRequest *req, void *userdata) {
        Server *srv = userdata;

        srv->barrier[srv->n_barrier++] = http_request_ref(req);
        srv->max_barrier = MAX(srv->max_barrier, srv->n_barrier);
        if (srv->n_barrier < N_CONCURRENT)
                return 0;

        for (unsigned i = 0; i < srv->n_barrier; i++) {
                _cleanup_(json_decrefp) json_t *j = json_pack("{s:i}", "i", (int) i);

                ASSERT_OK(http_request_reply_json(srv->barrier[i], 200, j));
                srv->barrier[i] = http_request_unref(srv->barrier[i]);
        }
        srv->n_barrier = 0;
        return 0;
}

/* GET /v1/watch?lines=N[&end=1][&tick=MS]: N lines, one per tick; then the end of the stream, or
 * silence until the client goes away. */
typedef struct Watch {
        Server *srv;
        HttpRequest *req;
        sd_event_source *timer;
        unsigned seq, lines;
        uint64_t tick_usec;
        bool end;
} Watch;

static Watch *watch_free(Watch *w) {
        sd_event_source_disable_unref(w->timer);
        http_request_unref(w->req);
        free(w);
        return NULL;
}

static void on_watch_cancel(HttpRequest *req, void *userdata) {
        Watch *w = userdata;

        w->srv->n_watch_cancelled++;
        watch_free(w);
}

static int on_watch_tick(sd_event_source *es, uint64_t usec, void *userdata) {
        Watch *w = userdata;
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:i, s:s}", "seq", (int) w->seq, "type", "lease");
        int r;

        r = http_request_stream_json(w->req, j);
        if (r == -ECONNRESET)
                return 0; /* the cancel callback is on its way */
        ASSERT_OK(r);
        if (++w->seq < w->lines) {
                ASSERT_OK(sd_event_source_set_time_relative(es, w->tick_usec));
                ASSERT_OK(sd_event_source_set_enabled(es, SD_EVENT_ONESHOT));
                return 0;
        }
        if (w->end) {
                ASSERT_OK(http_request_stream_end(w->req));
                ASSERT_EQ(http_request_stream_json(w->req, j), -EALREADY);
                w->srv->n_watch_ended++;
                watch_free(w);
        }
        return 0;
}

static int on_watch(HttpRequest *req, void *userdata) {
        Server *srv = userdata;
        const char *lines = http_request_get_query(req, "lines"), *tick = http_request_get_query(req, "tick");
        Watch *w = calloc(1, sizeof(Watch));

        ASSERT_TRUE(w);
        w->srv = srv;
        w->req = http_request_ref(req);
        w->lines = lines ? (unsigned) atoi(lines) : 3;
        w->tick_usec = (tick ? (uint64_t) atoi(tick) : 10) * USEC_PER_MSEC;
        w->end = streq_ptr(http_request_get_query(req, "end"), "1");
        http_request_set_cancel_callback(req, on_watch_cancel, w);

        ASSERT_OK(http_request_reply_stream(req, 200));
        ASSERT_OK(sd_event_add_time_relative(srv->event, &w->timer, CLOCK_MONOTONIC, 0, 1, on_watch_tick, w));
        return 0;
}

static void server_start_full(Server *srv, const char *listen, bool tls) {
        HttpServerConfig config = {
                .listen = listen,
                .certificate_file = tls ? cert_path : NULL,
                .key_file = tls ? key_path : NULL,
                .plain_http = !tls,
                .body_max = BODY_MAX,
                .authenticate = on_authenticate,
        };
        const char *host = strchr(listen, '[') ? "[::1]" : "127.0.0.1";

        make_certificates();
        *srv = (Server) { .tls = tls };
        ASSERT_OK(sd_event_new(&srv->event));
        ASSERT_OK(http_server_new(srv->event, &config, &srv->server));
        ASSERT_TRUE(http_server_get_port(srv->server) > 0);
        snprintf(srv->base, sizeof(srv->base), "%s://%s:%u", tls ? "https" : "http", host,
                 http_server_get_port(srv->server));

        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_GET, "/", HTTP_ROUTE_PUBLIC, on_ping, srv));
        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_GET, "/v1/ping", HTTP_ROUTE_PUBLIC, on_ping, srv));
        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_POST, "/v1/echo", 0, on_echo, srv));
        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_GET, "/v1/leases", 0, on_list_leases, srv));
        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_POST, "/v1/leases", 0, on_create_lease, srv));
        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_GET, "/v1/leases/{name}", 0, on_get_lease, srv));
        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_DELETE, "/v1/leases/{name}", 0, on_delete_lease, srv));
        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_GET, "/v1/slow", 0, on_slow, srv));
        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_GET, "/v1/pending", 0, on_pending, srv));
        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_GET, "/v1/barrier", 0, on_barrier, srv));
        ASSERT_OK(http_server_add_route(srv->server, HTTP_METHOD_GET, "/v1/watch", 0, on_watch, srv));
}

static void server_start(Server *srv) {
        server_start_full(srv, "127.0.0.1:0", true);
}

static void server_stop(Server *srv) {
        srv->server = http_server_free(srv->server);
        srv->event = sd_event_unref(srv->event);
}

/* ---- The client side: libcurl in a thread, while the loop runs here ---- */

typedef struct Client Client;
typedef void (*ClientFunc)(Client *c);

struct Client {
        Server *srv;
        ClientFunc func;
        void *arg;
        int done_fd;
        bool done;
        pthread_t thread;
        sd_event_source *done_source;
};

static void *client_thread(void *p) {
        Client *c = p;
        uint64_t one = 1;

        c->func(c);
        ASSERT_EQ(write(c->done_fd, &one, sizeof(one)), (ssize_t) sizeof(one));
        return NULL;
}

static int on_client_done(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Client *c = userdata;

        c->done = true;
        return sd_event_source_set_enabled(es, SD_EVENT_OFF);
}

static void client_start(Server *srv, Client *c, ClientFunc func, void *arg) {
        *c = (Client) { .srv = srv, .func = func, .arg = arg };
        c->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ASSERT_TRUE(c->done_fd >= 0);
        ASSERT_OK(sd_event_add_io(srv->event, &c->done_source, c->done_fd, EPOLLIN, on_client_done, c));
        ASSERT_EQ(pthread_create(&c->thread, NULL, client_thread, c), 0);
}

static void client_join(Client *c) {
        ASSERT_EQ(pthread_join(c->thread, NULL), 0);
        c->done_source = sd_event_source_disable_unref(c->done_source);
        safe_close(c->done_fd);
}

typedef bool (*Condition)(Server *srv, void *arg);

static bool client_is_done(Server *srv, void *arg) {
        return ((Client *) arg)->done;
}

static int on_deadline(sd_event_source *es, uint64_t usec, void *userdata) {
        ASSERT_FAIL("%s", "the test ran past its deadline");
}

/* Runs the server's loop until cond holds. */
static void run_until(Server *srv, Condition cond, void *arg) {
        sd_event_source *deadline = NULL;

        ASSERT_OK(sd_event_add_time_relative(srv->event, &deadline, CLOCK_MONOTONIC, DEADLINE_USEC, 0, on_deadline, NULL));
        /* Wake up now and then: a condition may depend on what a client thread saw. */
        while (!cond(srv, arg))
                ASSERT_OK(sd_event_run(srv->event, 10 * USEC_PER_MSEC));
        sd_event_source_disable_unref(deadline);
}

static bool server_is_idle(Server *srv, void *arg) {
        return http_server_get_n_requests(srv->server) == 0;
}

/* The client may see the end of a reply before MHD's next run completes the request. */
static void wait_idle(Server *srv) {
        run_until(srv, server_is_idle, NULL);
}

static void run_client(Server *srv, ClientFunc func, void *arg) {
        Client c;

        client_start(srv, &c, func, arg);
        run_until(srv, client_is_done, &c);
        client_join(&c);
}

typedef struct Reply {
        CURLcode result;
        long status;
        char *body;
        size_t size;
        char *headers;
        size_t headers_size;
        json_t *json;
} Reply;

static void reply_done(Reply *r) {
        free(r->body);
        free(r->headers);
        json_decref(r->json);
        *r = (Reply) {};
}

static size_t append(char **buf, size_t *size, const char *data, size_t n) {
        char *b = realloc(*buf, *size + n + 1);

        ASSERT_TRUE(b);
        memcpy(b + *size, data, n);
        *size += n;
        b[*size] = 0;
        *buf = b;
        return n;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
        Reply *r = userdata;

        return append(&r->body, &r->size, data, size * n);
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata) {
        Reply *r = userdata;

        return append(&r->headers, &r->headers_size, data, size * n);
}

/* The value of a reply header (in a static buffer), or NULL. */
static const char *reply_header(const Reply *r, const char *name) {
        static char value[256];
        size_t n = strlen(name);

        for (const char *l = r->headers; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "") {
                if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
                        const char *v = l + n + 1 + strspn(l + n + 1, " ");
                        size_t k = strcspn(v, "\r\n");

                        snprintf(value, sizeof(value), "%.*s", (int) k, v);
                        return value;
                }
        }
        return NULL;
}

static CURL *easy_new(Server *srv, const char *path, Reply *r) {
        char url[512];
        CURL *e = curl_easy_init();

        ASSERT_TRUE(e);
        snprintf(url, sizeof(url), "%s%s", srv->base, path);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
        if (srv->tls)
                curl_easy_setopt(e, CURLOPT_CAINFO, ca_path);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
        return e;
}

static void easy_finish(CURL *e, CURLcode result, Reply *r) {
        r->result = result;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
        if (r->body && r->size > 0)
                r->json = json_loadb(r->body, r->size, 0, NULL);
}

static void request(Server *srv, const char *method, const char *path, const char *token, const char *body,
                    Reply *r) {
        struct curl_slist *headers = NULL;
        char auth[256];
        CURL *e;

        *r = (Reply) {};
        e = easy_new(srv, path, r);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (token) {
                snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
                headers = curl_slist_append(headers, auth);
        }
        if (body) {
                headers = curl_slist_append(headers, "Content-Type: application/json");
                curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(body));
        }
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        easy_finish(e, curl_easy_perform(e), r);
        curl_easy_cleanup(e);
        curl_slist_free_all(headers);
}

static void assert_error(const Reply *r, long status, const char *reason) {
        ApiError e;
        const char *message = NULL;

        ASSERT_EQ(r->result, CURLE_OK);
        ASSERT_EQ(r->status, status);
        ASSERT_STREQ(reply_header(r, "Content-Type"), "application/json");
        ASSERT_TRUE(r->json);
        ASSERT_OK(api_error_from_json(r->json, &e, &message, NULL));
        ASSERT_STREQ(api_error_to_string(e), reason);
        ASSERT_TRUE(message && *message);
}

/* ---- Tests ---- */

TEST(api_error_table) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *message, *detail;
        ApiError e;

        for (ApiError i = 0; i < _API_ERROR_MAX; i++) {
                const char *s = api_error_to_string(i);

                ASSERT_TRUE(s);
                ASSERT_EQ(api_error_from_string(s), i);
                ASSERT_TRUE(api_error_to_http_status(i) >= 400 && api_error_to_http_status(i) < 600);
                ASSERT_TRUE(api_error_to_errno(i) > 0);
        }
        ASSERT_EQ(api_error_from_string("notfound"), _API_ERROR_INVALID);
        ASSERT_EQ(api_error_from_string(NULL), _API_ERROR_INVALID);
        ASSERT_TRUE(api_error_to_string(_API_ERROR_MAX) == NULL);

        ASSERT_EQ(api_error_to_http_status(API_ERROR_NOT_FOUND), 404);
        ASSERT_EQ(api_error_to_http_status(API_ERROR_PAYLOAD_TOO_LARGE), 413);
        ASSERT_EQ(api_error_to_http_status(API_ERROR_INVALID_SELECTOR), 400);
        ASSERT_EQ(api_error_to_http_status(API_ERROR_UNAVAILABLE), 503);

        /* errno -> reason -> errno keeps the meaning for what the agent passes on. */
        ASSERT_EQ(api_error_from_errno(-ENOENT), API_ERROR_NOT_FOUND);
        ASSERT_EQ(api_error_from_errno(ENOENT), API_ERROR_NOT_FOUND);
        ASSERT_EQ(api_error_to_errno(API_ERROR_NOT_FOUND), ENOENT);
        ASSERT_EQ(api_error_from_errno(-EACCES), API_ERROR_FORBIDDEN);
        ASSERT_EQ(api_error_from_errno(-EPERM), API_ERROR_NO_ACCESS);
        ASSERT_EQ(api_error_from_errno(-EKEYEXPIRED), API_ERROR_UNAUTHORIZED);
        ASSERT_EQ(api_error_from_errno(-EBUSY), API_ERROR_BUSY);
        ASSERT_EQ(api_error_from_errno(-EHOSTDOWN), API_ERROR_UNAVAILABLE);
        ASSERT_EQ(api_error_from_errno(-ETIMEDOUT), API_ERROR_TIMEOUT);
        /* The lease scheduler refuses a self-contradicting selector with -EDOM. */
        ASSERT_EQ(api_error_from_errno(-EDOM), API_ERROR_UNSATISFIABLE);
        ASSERT_EQ(api_error_to_http_status(API_ERROR_UNSATISFIABLE), 422);
        ASSERT_EQ(api_error_from_http_status(422), API_ERROR_UNSATISFIABLE);
        ASSERT_EQ(api_error_from_errno(-ENOMEM), API_ERROR_INTERNAL);
        ASSERT_EQ(api_error_from_errno(0), API_ERROR_INTERNAL);
        for (ApiError i = 0; i < _API_ERROR_MAX; i++) {
                ApiError back = api_error_from_errno(api_error_to_errno(i));

                /* Each reason's errno comes back as the same reason or, where several reasons share
                 * an errno, as one with the same status class. */
                ASSERT_EQ(api_error_to_errno(back), api_error_to_errno(i));
        }

        ASSERT_EQ(api_error_from_http_status(404), API_ERROR_NOT_FOUND);
        ASSERT_EQ(api_error_from_http_status(418), API_ERROR_BAD_REQUEST);
        ASSERT_EQ(api_error_from_http_status(599), API_ERROR_INTERNAL);
        ASSERT_EQ(api_error_from_http_status(200), _API_ERROR_INVALID);

        j = api_error_to_json(API_ERROR_EXPIRED, "Lease lease1 expired", NULL);
        ASSERT_OK(api_error_from_json(j, &e, &message, &detail));
        ASSERT_EQ(e, API_ERROR_EXPIRED);
        ASSERT_STREQ(message, "Lease lease1 expired");
        ASSERT_TRUE(detail == NULL);
        ASSERT_TRUE(json_object_get(j, "detail") == NULL);
        json_decref(j);
        j = api_error_to_json(API_ERROR_UNAUTHORIZED, NULL, "unknown-key");
        ASSERT_OK(api_error_from_json(j, &e, &message, &detail));
        ASSERT_EQ(e, API_ERROR_UNAUTHORIZED);
        ASSERT_STREQ(detail, "unknown-key");
        json_decref(j);
        j = api_error_to_json(API_ERROR_CONFLICT, NULL, NULL);
        ASSERT_STREQ(json_string_value(json_object_get(j, "reason")), "Conflict");
        ASSERT_STREQ(json_string_value(json_object_get(j, "message")), "Conflict");
        json_decref(j);
        j = json_pack("{s:s}", "reason", "FromTheFuture");
        ASSERT_OK(api_error_from_json(j, &e, &message, &detail));
        ASSERT_EQ(e, _API_ERROR_INVALID);
        ASSERT_TRUE(message == NULL);
        json_decref(j);
        j = json_pack("{s:i}", "reason", 3);
        ASSERT_EQ(api_error_from_json(j, &e, NULL, NULL), -EBADMSG);
        json_decref(j);
        j = json_pack("{s:s, s:i}", "reason", "Conflict", "detail", 1);
        ASSERT_EQ(api_error_from_json(j, &e, NULL, NULL), -EBADMSG);
        ASSERT_EQ(api_error_from_json(NULL, &e, NULL, NULL), -EBADMSG);
}

TEST(route_registration) {
        Server srv;

        /* Patterns themselves: test-http-router.c. */
        server_start(&srv);
        ASSERT_EQ(http_server_add_route(srv.server, HTTP_METHOD_GET, "/v1/leases/{name}", 0, on_ping, NULL), -EEXIST);
        ASSERT_EQ(http_server_add_route(srv.server, HTTP_METHOD_GET, "/", 0, on_ping, NULL), -EEXIST);
        ASSERT_EQ(http_server_add_route(srv.server, HTTP_METHOD_GET, "/v1/", 0, on_ping, NULL), -EINVAL);
        ASSERT_EQ(http_server_add_route(srv.server, _HTTP_METHOD_MAX, "/v1/x", 0, on_ping, NULL), -EINVAL);
        ASSERT_EQ(http_server_add_route(srv.server, HTTP_METHOD_GET, "/v1/x", 0, NULL, NULL), -EINVAL);
        server_stop(&srv);
}

static void client_routes(Client *c) {
        Server *srv = c->srv;
        Reply r;

        request(srv, "GET", "/v1/ping", NULL, NULL, &r);
        ASSERT_EQ(r.result, CURLE_OK);
        ASSERT_EQ(r.status, 200);
        ASSERT_STREQ(reply_header(&r, "Content-Type"), "application/json");
        ASSERT_TRUE(json_is_true(json_object_get(r.json, "pong")));
        reply_done(&r);

        request(srv, "GET", "/", NULL, NULL, &r);
        ASSERT_EQ(r.status, 200);
        reply_done(&r);

        request(srv, "GET", "/v1/leases", "good", NULL, &r);
        ASSERT_EQ(r.status, 200);
        ASSERT_TRUE(json_is_array(json_object_get(r.json, "leases")));
        reply_done(&r);

        request(srv, "GET", "/v1/leases/dut1-lease?view=full", "good", NULL, &r);
        ASSERT_EQ(r.status, 200);
        ASSERT_STREQ(json_string_value(json_object_get(r.json, "name")), "dut1-lease");
        ASSERT_STREQ(json_string_value(json_object_get(r.json, "view")), "full");
        reply_done(&r);

        request(srv, "POST", "/v1/leases", "good", "{\"selector\": \"board=rpi4\"}", &r);
        ASSERT_EQ(r.status, 201);
        ASSERT_STREQ(reply_header(&r, "Location"), "/v1/leases/lease1");
        ASSERT_STREQ(json_string_value(json_object_get(r.json, "selector")), "board=rpi4");
        reply_done(&r);

        request(srv, "POST", "/v1/leases", "good", "{}", &r);
        assert_error(&r, 400, "InvalidSelector");
        reply_done(&r);

        request(srv, "DELETE", "/v1/leases/lease1", "good", NULL, &r);
        ASSERT_EQ(r.result, CURLE_OK);
        ASSERT_EQ(r.status, 204);
        ASSERT_EQ(r.size, 0);
        reply_done(&r);

        /* Handlers' errno values through the table. */
        request(srv, "GET", "/v1/leases/missing", "good", NULL, &r);
        assert_error(&r, 404, "NotFound");
        reply_done(&r);
        request(srv, "GET", "/v1/leases/offline", "good", NULL, &r);
        assert_error(&r, 503, "Unavailable");
        reply_done(&r);

        /* No such path; an empty segment matches nothing. */
        request(srv, "GET", "/v1/nothing", "good", NULL, &r);
        assert_error(&r, 404, "NotFound");
        reply_done(&r);
        request(srv, "GET", "/v1/leases/", "good", NULL, &r);
        assert_error(&r, 404, "NotFound");
        reply_done(&r);
        request(srv, "GET", "/v1/leases/a/b", "good", NULL, &r);
        assert_error(&r, 404, "NotFound");
        reply_done(&r);

        /* The path exists, the method does not: 405 with Allow, before authentication. */
        request(srv, "DELETE", "/v1/leases", NULL, NULL, &r);
        assert_error(&r, 405, "MethodNotAllowed");
        ASSERT_STREQ(reply_header(&r, "Allow"), "GET, POST");
        reply_done(&r);
        request(srv, "PUT", "/v1/leases/x", "good", "{}", &r);
        assert_error(&r, 405, "MethodNotAllowed");
        ASSERT_STREQ(reply_header(&r, "Allow"), "GET, DELETE");
        reply_done(&r);
}

TEST(routes) {
        Server srv;

        server_start(&srv);
        run_client(&srv, client_routes, NULL);
        wait_idle(&srv);
        server_stop(&srv);
}

static void client_json(Client *c) {
        Server *srv = c->srv;
        char big[BODY_MAX * 2 + 64];
        Reply r;

        request(srv, "POST", "/v1/echo", "good", "{\"a\": [1, 2, {\"b\": \"\\u00e9\"}], \"n\": null}", &r);
        ASSERT_EQ(r.status, 200);
        {
                json_t *a = json_object_get(json_object_get(r.json, "echo"), "a");

                ASSERT_EQ(json_array_size(a), 3);
                ASSERT_STREQ(json_string_value(json_object_get(json_array_get(a, 2), "b")), "\xc3\xa9");
        }
        ASSERT_STREQ(json_string_value(json_object_get(r.json, "identity")), "alice");
        reply_done(&r);

        /* No body: NULL JSON for the handler. */
        request(srv, "POST", "/v1/echo", "good", NULL, &r);
        ASSERT_EQ(r.status, 200);
        ASSERT_TRUE(json_is_null(json_object_get(r.json, "echo")));
        reply_done(&r);

        request(srv, "POST", "/v1/echo", "good", "{\"a\": ", &r);
        assert_error(&r, 400, "MalformedJSON");
        ASSERT_CONTAINS(json_string_value(json_object_get(r.json, "message")), "line 1");
        reply_done(&r);
        request(srv, "POST", "/v1/echo", "good", "{\"a\": 1, \"a\": 2}", &r);
        assert_error(&r, 400, "MalformedJSON");
        reply_done(&r);
        request(srv, "POST", "/v1/echo", "good", "not json", &r);
        assert_error(&r, 400, "MalformedJSON");
        reply_done(&r);

        /* Exactly at the limit is fine; over it is 413, announced by Content-Length. */
        memset(big, ' ', sizeof(big));
        big[0] = '{';
        big[BODY_MAX - 1] = '}';
        big[BODY_MAX] = 0;
        request(srv, "POST", "/v1/echo", "good", big, &r);
        ASSERT_EQ(r.status, 200);
        reply_done(&r);
        big[BODY_MAX - 1] = ' ';
        big[BODY_MAX] = '}';
        big[BODY_MAX + 1] = 0;
        request(srv, "POST", "/v1/echo", "good", big, &r);
        assert_error(&r, 413, "PayloadTooLarge");
        ASSERT_CONTAINS(json_string_value(json_object_get(r.json, "message")), "4096");
        reply_done(&r);
        big[BODY_MAX * 2] = '}';
        big[BODY_MAX * 2 + 1] = 0;
        request(srv, "POST", "/v1/echo", "good", big, &r);
        assert_error(&r, 413, "PayloadTooLarge");
        reply_done(&r);

        /* The connection is still good for more. */
        request(srv, "GET", "/v1/ping", NULL, NULL, &r);
        ASSERT_EQ(r.status, 200);
        reply_done(&r);
}

TEST(json_bodies) {
        Server srv;

        server_start(&srv);
        run_client(&srv, client_json, NULL);
        wait_idle(&srv);
        server_stop(&srv);
}

typedef struct Upload {
        size_t left;
} Upload;

static size_t on_upload_read(char *buf, size_t size, size_t n, void *userdata) {
        Upload *u = userdata;
        size_t k = MIN(MIN(size * n, u->left), (size_t) 1000);

        memset(buf, ' ', k);
        u->left -= k;
        return k;
}

static void client_chunked(Client *c) {
        struct curl_slist *headers = NULL;
        Upload u = { .left = (size_t) BODY_MAX * 3 };
        Reply r = {};
        CURL *e;

        /* A chunked body has no Content-Length to refuse up front: it is counted as it comes. */
        e = easy_new(c->srv, "/v1/echo", &r);
        headers = curl_slist_append(headers, "Authorization: Bearer good");
        headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "POST");
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload_read);
        curl_easy_setopt(e, CURLOPT_READDATA, &u);
        easy_finish(e, curl_easy_perform(e), &r);
        curl_easy_cleanup(e);
        curl_slist_free_all(headers);
        assert_error(&r, 413, "PayloadTooLarge");
        reply_done(&r);
}

TEST(chunked_body_over_limit) {
        Server srv;

        server_start(&srv);
        run_client(&srv, client_chunked, NULL);
        wait_idle(&srv);
        server_stop(&srv);
}

static void client_auth(Client *c) {
        Server *srv = c->srv;
        Reply r;

        request(srv, "GET", "/v1/leases", NULL, NULL, &r);
        assert_error(&r, 401, "Unauthorized");
        ASSERT_STREQ(reply_header(&r, "WWW-Authenticate"), "Bearer realm=\"jumpstarter\"");
        reply_done(&r);

        request(srv, "GET", "/v1/leases", "bogus", NULL, &r);
        assert_error(&r, 401, "Unauthorized");
        ASSERT_STREQ(reply_header(&r, "WWW-Authenticate"), "Bearer realm=\"jumpstarter\", error=\"invalid_token\"");
        reply_done(&r);

        request(srv, "GET", "/v1/leases", "expired", NULL, &r);
        assert_error(&r, 401, "Unauthorized");
        ASSERT_STREQ(json_string_value(json_object_get(r.json, "detail")), "expired");
        ASSERT_STREQ(json_string_value(json_object_get(r.json, "message")), "The bearer token was refused: expired");
        reply_done(&r);

        /* Refused before the body is read. */
        request(srv, "POST", "/v1/echo", "bogus", "{\"a\": 1}", &r);
        assert_error(&r, 401, "Unauthorized");
        reply_done(&r);

        /* Not a bearer token at all. */
        {
                struct curl_slist *headers = curl_slist_append(NULL, "Authorization: Basic YWxpY2U6c2VjcmV0");
                CURL *e;

                r = (Reply) {};
                e = easy_new(srv, "/v1/leases", &r);
                curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
                easy_finish(e, curl_easy_perform(e), &r);
                curl_easy_cleanup(e);
                curl_slist_free_all(headers);
                assert_error(&r, 401, "Unauthorized");
                reply_done(&r);
        }

        /* The scheme's case does not matter. */
        {
                struct curl_slist *headers = curl_slist_append(NULL, "Authorization: bearer  good");
                CURL *e;

                r = (Reply) {};
                e = easy_new(srv, "/v1/leases", &r);
                curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
                easy_finish(e, curl_easy_perform(e), &r);
                curl_easy_cleanup(e);
                curl_slist_free_all(headers);
                ASSERT_EQ(r.status, 200);
                reply_done(&r);
        }

        /* Public routes need none. */
        request(srv, "GET", "/v1/ping", "bogus", NULL, &r);
        ASSERT_EQ(r.status, 200);
        reply_done(&r);
}

TEST(bearer_tokens) {
        Server srv;

        server_start(&srv);
        run_client(&srv, client_auth, NULL);
        server_stop(&srv);
}

static void client_slow(Client *c) {
        Reply r;

        request(c->srv, "GET", "/v1/slow", "good", NULL, &r);
        ASSERT_EQ(r.result, CURLE_OK);
        ASSERT_EQ(r.status, 200);
        ASSERT_TRUE(json_is_true(json_object_get(r.json, "late")));
        reply_done(&r);
        /* And again on the same, resumed, keep-alive connection path. */
        request(c->srv, "GET", "/v1/slow", "good", NULL, &r);
        ASSERT_EQ(r.status, 200);
        reply_done(&r);
}

TEST(asynchronous_reply) {
        Server srv;

        server_start(&srv);
        run_client(&srv, client_slow, NULL);
        ASSERT_EQ(srv.n_slow_from_timer, 2);
        wait_idle(&srv);
        server_stop(&srv);
}

static void client_gives_up(Client *c) {
        Reply r = {};
        CURL *e;
        struct curl_slist *headers = curl_slist_append(NULL, "Authorization: Bearer good");

        e = easy_new(c->srv, "/v1/pending", &r);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 500L);
        easy_finish(e, curl_easy_perform(e), &r);
        ASSERT_EQ(r.result, CURLE_OPERATION_TIMEDOUT);
        curl_easy_cleanup(e); /* closes the connection */
        curl_slist_free_all(headers);
        reply_done(&r);
}

static bool pending_cancelled(Server *srv, void *arg) {
        return srv->n_pending_cancelled == 1 && http_server_get_n_requests(srv->server) == 0;
}

TEST(client_gone_while_pending) {
        Server srv;

        server_start(&srv);
        run_client(&srv, client_gives_up, NULL);
        /* The server notices the hangup of a suspended connection and tells the handler. */
        run_until(&srv, pending_cancelled, NULL);
        ASSERT_EQ(srv.n_pending, 1);
        server_stop(&srv);
}

typedef struct Lines {
        char *buf;
        size_t size;
        unsigned n, stop_after;
} Lines;

/* Lines that stream clients parsed, across threads. */
static _Atomic unsigned stream_lines_received;

static size_t on_stream(char *data, size_t size, size_t n, void *userdata) {
        Lines *l = userdata;

        for (size_t i = 0; i < size * n; i++) {
                if (data[i] != '\n') {
                        append(&l->buf, &l->size, data + i, 1);
                        continue;
                }
                {
                        _cleanup_(json_decrefp) json_t *j = json_loadb(l->buf, l->size, 0, NULL);

                        ASSERT_TRUE(j);
                        ASSERT_EQ(json_integer_value(json_object_get(j, "seq")), l->n);
                        ASSERT_STREQ(json_string_value(json_object_get(j, "type")), "lease");
                }
                l->size = 0;
                l->n++;
                stream_lines_received++;
                if (l->stop_after > 0 && l->n == l->stop_after)
                        return 0; /* hang up mid-stream */
        }
        return size * n;
}

static void stream(Server *srv, const char *path, Lines *l, CURLcode *ret_result, Reply *r) {
        struct curl_slist *headers = curl_slist_append(NULL, "Authorization: Bearer good");
        CURL *e;

        e = easy_new(srv, path, r);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_stream);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, l);
        *ret_result = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_cleanup(e);
        curl_slist_free_all(headers);
        free(l->buf);
}

static void client_stream_to_end(Client *c) {
        Lines l = {};
        Reply r = {};
        CURLcode result;

        stream(c->srv, "/v1/watch?lines=5&end=1", &l, &result, &r);
        ASSERT_EQ(result, CURLE_OK);
        ASSERT_EQ(r.status, 200);
        ASSERT_EQ(l.n, 5);
        ASSERT_STREQ(reply_header(&r, "Content-Type"), HTTP_STREAM_CONTENT_TYPE);
        ASSERT_STREQ(reply_header(&r, "Transfer-Encoding"), "chunked");
        reply_done(&r);
}

static void client_stream_hang_up(Client *c) {
        Lines l = { .stop_after = 3 };
        Reply r = {};
        CURLcode result;

        stream(c->srv, c->arg, &l, &result, &r);
        ASSERT_EQ(result, CURLE_WRITE_ERROR);
        ASSERT_EQ(l.n, 3);
        reply_done(&r);
}

static bool watch_cancelled(Server *srv, void *arg) {
        return srv->n_watch_cancelled == 1 && http_server_get_n_requests(srv->server) == 0;
}

TEST(streaming) {
        Server srv;

        server_start(&srv);
        run_client(&srv, client_stream_to_end, NULL);
        ASSERT_EQ(srv.n_watch_ended, 1);
        ASSERT_EQ(srv.n_watch_cancelled, 0);
        wait_idle(&srv);

        /* Three lines, then silence: the connection sits suspended when the client hangs up, and
         * only the server's own hangup watch can notice. */
        run_client(&srv, client_stream_hang_up, (void *) "/v1/watch?lines=3");
        run_until(&srv, watch_cancelled, NULL);

        /* Lines keep coming as the client hangs up: MHD notices on its own, as it writes. */
        srv.n_watch_cancelled = 0;
        run_client(&srv, client_stream_hang_up, (void *) "/v1/watch?lines=1000000&tick=0");
        run_until(&srv, watch_cancelled, NULL);
        server_stop(&srv);
}

static bool stream_cut(Server *srv, void *arg) {
        return srv->n_watch_cancelled == 1 && http_server_get_n_requests(srv->server) == 0;
}

static int on_flood(HttpRequest *req, void *userdata) {
        Server *srv = userdata;
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:s}", "pad", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        Watch *w = calloc(1, sizeof(Watch));
        int r;

        ASSERT_TRUE(w);
        w->srv = srv;
        w->req = http_request_ref(req);
        http_request_set_cancel_callback(req, on_watch_cancel, w);
        ASSERT_OK(http_request_reply_stream(req, 200));
        /* Nobody reads before the handler returns: the backlog hits the limit. */
        while ((r = http_request_stream_json(req, j)) == 0)
                ;
        ASSERT_EQ(r, -ENOBUFS);
        ASSERT_EQ(http_request_stream_json(req, j), -ECONNRESET);
        return 0;
}

static void client_flooded(Client *c) {
        Reply r;

        request(c->srv, "GET", "/v1/flood", "good", NULL, &r);
        ASSERT_TRUE(r.result != CURLE_OK);
        reply_done(&r);
}

TEST(stream_backlog_limit) {
        Server srv;

        server_start(&srv);
        ASSERT_OK(http_server_add_route(srv.server, HTTP_METHOD_GET, "/v1/flood", 0, on_flood, &srv));
        run_client(&srv, client_flooded, NULL);
        run_until(&srv, stream_cut, NULL);
        server_stop(&srv);
}

static void client_tls(Client *c) {
        Server *srv = c->srv;
        char url[256];
        Reply r = {};
        CURL *e;

        /* Plain HTTP to the TLS port gets no answer. */
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/ping", http_server_get_port(srv->server));
        e = easy_new(srv, "/v1/ping", &r);
        curl_easy_setopt(e, CURLOPT_URL, url);
        easy_finish(e, curl_easy_perform(e), &r);
        curl_easy_cleanup(e);
        ASSERT_TRUE(r.result != CURLE_OK);
        ASSERT_TRUE(r.status != 200);
        reply_done(&r);

        /* Without the test CA, curl refuses the certificate. */
        e = easy_new(srv, "/v1/ping", &r);
        curl_easy_setopt(e, CURLOPT_CAINFO, other_ca_path);
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
        easy_finish(e, curl_easy_perform(e), &r);
        curl_easy_cleanup(e);
        ASSERT_EQ(r.result, CURLE_PEER_FAILED_VERIFICATION);
        reply_done(&r);

        /* With it, it verifies the chain and the address in the certificate. */
        e = easy_new(srv, "/v1/ping", &r);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        easy_finish(e, curl_easy_perform(e), &r);
        curl_easy_cleanup(e);
        ASSERT_EQ(r.result, CURLE_OK);
        ASSERT_EQ(r.status, 200);
        reply_done(&r);
}

TEST(tls) {
        Server srv;

        server_start(&srv);
        ASSERT_TRUE(strncmp(srv.base, "https://", 8) == 0);
        run_client(&srv, client_tls, NULL);
        server_stop(&srv);
}

static void client_plain(Client *c) {
        Reply r;

        request(c->srv, "GET", "/v1/leases/x", "good", NULL, &r);
        ASSERT_EQ(r.result, CURLE_OK);
        ASSERT_EQ(r.status, 200);
        reply_done(&r);
}

TEST(plain_http_and_ipv6) {
        Server srv;
        int fd;
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        bool have_ipv6;

        server_start_full(&srv, "127.0.0.1:0", false);
        ASSERT_TRUE(strncmp(srv.base, "http://", 7) == 0);
        run_client(&srv, client_plain, NULL);
        server_stop(&srv);

        fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        have_ipv6 = fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
        safe_close(fd);
        if (!have_ipv6) {
                fprintf(stderr, "No IPv6 loopback here, skipping the IPv6 part.\n");
                return;
        }
        server_start_full(&srv, "[::1]:0", true);
        ASSERT_TRUE(strncmp(srv.base, "https://[::1]:", 14) == 0);
        run_client(&srv, client_plain, NULL);
        server_stop(&srv);

        /* Every address, both families. */
        server_start_full(&srv, ":0", true);
        run_client(&srv, client_plain, NULL);
        server_stop(&srv);
}

static void client_concurrent(Client *c) {
        Reply replies[N_CONCURRENT] = {};
        CURL *easies[N_CONCURRENT];
        struct curl_slist *headers = curl_slist_append(NULL, "Authorization: Bearer good");
        CURLM *multi = curl_multi_init();
        int running = 1;
        CURLMsg *m;
        int k;

        ASSERT_TRUE(multi);
        for (unsigned i = 0; i < N_CONCURRENT; i++) {
                easies[i] = easy_new(c->srv, "/v1/barrier", &replies[i]);
                curl_easy_setopt(easies[i], CURLOPT_HTTPHEADER, headers);
                curl_easy_setopt(easies[i], CURLOPT_PRIVATE, &replies[i]);
                ASSERT_EQ(curl_multi_add_handle(multi, easies[i]), CURLM_OK);
        }
        while (running > 0) {
                ASSERT_EQ(curl_multi_perform(multi, &running), CURLM_OK);
                if (running > 0)
                        ASSERT_EQ(curl_multi_poll(multi, NULL, 0, 1000, NULL), CURLM_OK);
        }
        while ((m = curl_multi_info_read(multi, &k))) {
                Reply *r = NULL;

                ASSERT_EQ(m->msg, CURLMSG_DONE);
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &r);
                easy_finish(m->easy_handle, m->data.result, r);
        }
        for (unsigned i = 0; i < N_CONCURRENT; i++) {
                ASSERT_EQ(replies[i].result, CURLE_OK);
                ASSERT_EQ(replies[i].status, 200);
                ASSERT_TRUE(json_is_integer(json_object_get(replies[i].json, "i")));
                reply_done(&replies[i]);
                curl_multi_remove_handle(multi, easies[i]);
                curl_easy_cleanup(easies[i]);
        }
        curl_multi_cleanup(multi);
        curl_slist_free_all(headers);
}

TEST(concurrent_connections) {
        Server srv;

        server_start(&srv);
        run_client(&srv, client_concurrent, NULL);
        ASSERT_EQ(srv.max_barrier, N_CONCURRENT);
        wait_idle(&srv);
        server_stop(&srv);
}

static void client_cut_off(Client *c) {
        Reply r;

        request(c->srv, "GET", "/v1/pending", "good", NULL, &r);
        ASSERT_TRUE(r.result != CURLE_OK);
        reply_done(&r);
}

static void client_cut_off_stream(Client *c) {
        Lines l = {};
        Reply r = {};
        CURLcode result;

        stream(c->srv, "/v1/watch?lines=2", &l, &result, &r);
        ASSERT_TRUE(result != CURLE_OK); /* the chunked stream ends without its last chunk */
        ASSERT_EQ(l.n, 2);
        reply_done(&r);
}

static bool both_waiting(Server *srv, void *arg) {
        /* The pending request is in its handler, the stream's client has its two lines. */
        return srv->n_pending == 1 && stream_lines_received == 2 && http_server_get_n_requests(srv->server) == 2;
}

TEST(shutdown_with_open_requests) {
        Server srv;
        Client a, b;

        server_start(&srv);
        stream_lines_received = 0;
        client_start(&srv, &a, client_cut_off, NULL);
        client_start(&srv, &b, client_cut_off_stream, NULL);
        run_until(&srv, both_waiting, NULL);

        srv.server = http_server_free(srv.server);
        ASSERT_EQ(srv.n_pending_cancelled, 1);
        ASSERT_EQ(srv.n_watch_cancelled, 1);

        client_join(&a);
        client_join(&b);
        srv.event = sd_event_unref(srv.event);
}

static unsigned count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        ASSERT_TRUE(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

TEST(config_errors) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        HttpServer *s = NULL;
        HttpServerConfig config = { .listen = "127.0.0.1:0" };
        unsigned fds;

        make_certificates();
        ASSERT_OK(sd_event_new(&event));

        /* HTTPS unless plain HTTP is asked for, and not both. */
        ASSERT_EQ(http_server_new(event, &config, &s), -EINVAL);
        config.certificate_file = cert_path;
        ASSERT_EQ(http_server_new(event, &config, &s), -EINVAL);
        config.key_file = key_path;
        config.plain_http = true;
        ASSERT_EQ(http_server_new(event, &config, &s), -EINVAL);
        config.plain_http = false;

        config.key_file = "/nonexistent/key.pem";
        ASSERT_EQ(http_server_new(event, &config, &s), -ENOENT);
        config.key_file = "/dev/null";
        ASSERT_EQ(http_server_new(event, &config, &s), -EBADMSG);
        config.key_file = key_path;

        /* Not a certificate; not the certificate's key; no key: no server, and no fd left behind. */
        /* sd-event opens its timerfd with the first time source: not the server's to close. */
        {
                sd_event_source *t = NULL;

                ASSERT_OK(sd_event_add_time(event, &t, CLOCK_MONOTONIC, UINT64_MAX, 1, NULL, NULL));
                sd_event_source_unref(t);
        }
        fds = count_fds();
        config.certificate_file = garbage_path;
        ASSERT_EQ(http_server_new(event, &config, &s), -EBADMSG);
        config.certificate_file = cert_path;
        config.key_file = other_key_path;
        ASSERT_EQ(http_server_new(event, &config, &s), -EKEYREJECTED);
        config.key_file = cert_path;
        ASSERT_EQ(http_server_new(event, &config, &s), -ENOKEY);
        config.key_file = key_path;
        ASSERT_EQ(count_fds(), fds);

        const char *bad[] = { "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:http", "::1:80",
                              "[::1]", "[::1]80", "localhost:80", "300.1.1.1:80", NULL };
        for (const char **l = bad; *l; l++) {
                config.listen = *l;
                ASSERT_EQ(http_server_new(event, &config, &s), -EINVAL);
        }
        ASSERT_TRUE(s == NULL);
        ASSERT_EQ(count_fds(), fds);

        /* A port in use. */
        config.listen = "127.0.0.1:0";
        ASSERT_OK(http_server_new(event, &config, &s));
        {
                char taken[64];
                HttpServer *t = NULL;

                snprintf(taken, sizeof(taken), "127.0.0.1:%u", http_server_get_port(s));
                config.listen = taken;
                ASSERT_EQ(http_server_new(event, &config, &t), -EADDRINUSE);
        }
        s = http_server_free(s);
        ASSERT_EQ(count_fds(), fds);
}

static void setup(void) __attribute__((constructor));
static void setup(void) {
        log_setup("test-http-server"); /* JMP_LOG_LEVEL=debug shows the server's view */
        ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
}

static void teardown(void) __attribute__((destructor));
static void teardown(void) {
        remove_certificates();
        curl_global_cleanup();
}

TEST_MAIN()
