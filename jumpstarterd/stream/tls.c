/* TLS for data streams: the exporter's self-signed certificate, its fingerprint, and the contexts */
#include <assert.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "tls.h"

struct TlsIdentity {
        EVP_PKEY *key;
        X509 *cert;
        char fingerprint[TLS_FINGERPRINT_LEN + 1];
};

/* The certificate is only a carrier of the key that clients pin: its dates need only cover the
 * process's life, and its name is for people looking at it. */
#define CERT_VALIDITY_SEC (10L * 365 * 24 * 3600)

TlsIdentity *tls_identity_free(TlsIdentity *id) {
        if (!id)
                return NULL;
        EVP_PKEY_free(id->key);
        X509_free(id->cert);
        free(id);
        return NULL;
}

int tls_fingerprint_of(X509 *cert, char *ret) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        char *p;

        if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32) {
                ERR_clear_error();
                return -EIO;
        }
        p = stpcpy(ret, TLS_FINGERPRINT_PREFIX);
        for (unsigned i = 0; i < n; i++)
                p += sprintf(p, "%02x", md[i]);
        return 0;
}

bool tls_fingerprint_is_valid(const char *s) {
        size_t prefix = strlen(TLS_FINGERPRINT_PREFIX);

        return s && strlen(s) == TLS_FINGERPRINT_LEN && strncmp(s, TLS_FINGERPRINT_PREFIX, prefix) == 0 &&
               strspn(s + prefix, "0123456789abcdef") == TLS_FINGERPRINT_LEN - prefix;
}

int tls_identity_new(const char *common_name, TlsIdentity **ret) {
        _cleanup_(tls_identity_freep) TlsIdentity *id = NULL;
        unsigned char serial[16];
        X509_NAME *name;
        BIGNUM *bn = NULL;
        int r = -EIO;

        assert(ret);

        id = calloc(1, sizeof *id);
        if (!id)
                return -ENOMEM;

        id->key = EVP_EC_gen("P-256");
        id->cert = X509_new();
        if (!id->key || !id->cert)
                goto finish;
        if (RAND_bytes(serial, sizeof serial) != 1)
                goto finish;
        serial[0] &= 0x7f; /* a positive serial number */
        bn = BN_bin2bn(serial, sizeof serial, NULL);
        if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(id->cert)))
                goto finish;
        if (X509_set_version(id->cert, 2) != 1 || !X509_gmtime_adj(X509_getm_notBefore(id->cert), -3600) ||
            !X509_gmtime_adj(X509_getm_notAfter(id->cert), CERT_VALIDITY_SEC))
                goto finish;
        name = X509_get_subject_name(id->cert);
        if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                       (const unsigned char *) (common_name ? common_name : "jumpstarter"), -1, -1,
                                       0) != 1)
                goto finish;
        if (X509_set_issuer_name(id->cert, name) != 1 || X509_set_pubkey(id->cert, id->key) != 1)
                goto finish;
        if (X509_sign(id->cert, id->key, EVP_sha256()) <= 0)
                goto finish;
        r = tls_fingerprint_of(id->cert, id->fingerprint);
        if (r < 0)
                goto finish;

        *ret = TAKE_PTR(id);
        r = 0;
finish:
        BN_free(bn);
        ERR_clear_error();
        return r;
}

const char *tls_identity_get_fingerprint(const TlsIdentity *id) {
        return id->fingerprint;
}

static int ctx_new(const SSL_METHOD *method, SSL_CTX **ret) {
        SSL_CTX *ctx;

        ctx = SSL_CTX_new(method);
        if (!ctx)
                return -ENOMEM;
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
                SSL_CTX_free(ctx);
                ERR_clear_error();
                return -EIO;
        }
        /* Writes return what went out (the queue keeps the rest), and the queue may move between
         * a write that wants to be retried and its retry. */
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        /* No renegotiation (TLS 1.2) and no session tickets: every connection is fresh. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        *ret = ctx;
        return 0;
}

int tls_server_ctx_new(const TlsIdentity *id, SSL_CTX **ret) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        int r;

        r = ctx_new(TLS_server_method(), &ctx);
        if (r < 0)
                return r;
        if (SSL_CTX_use_certificate(ctx, id->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, id->key) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        /* TLS 1.3 sends tickets unasked: none, as nobody resumes. */
        (void) SSL_CTX_set_num_tickets(ctx, 0);
        *ret = TAKE_PTR(ctx);
        return 0;
}

typedef struct PinState {
        const char *expected;
        bool mismatch;
        char seen[TLS_FINGERPRINT_LEN + 1];
} PinState;

static int pin_index = -1;
static pthread_once_t pin_once = PTHREAD_ONCE_INIT;

static void pin_state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
        free(ptr);
}

static void pin_index_init(void) {
        pin_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, pin_state_free);
}

static int pin_verify(int preverify_ok, X509_STORE_CTX *store) {
        SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
        PinState *p = ssl ? SSL_get_ex_data(ssl, pin_index) : NULL;
        X509 *cert;

        /* Only the certificate itself counts: no CA vouches for it, its fingerprint does. */
        if (X509_STORE_CTX_get_error_depth(store) != 0)
                return 1;
        cert = X509_STORE_CTX_get_current_cert(store);
        if (!p || !cert || tls_fingerprint_of(cert, p->seen) < 0)
                return 0;
        if (!streq(p->seen, p->expected)) {
                p->mismatch = true;
                X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
                return 0;
        }
        X509_STORE_CTX_set_error(store, X509_V_OK);
        return 1;
}

int tls_client_ctx_new(SSL_CTX **ret) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        int r;

        r = ctx_new(TLS_client_method(), &ctx);
        if (r < 0)
                return r;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, pin_verify);
        *ret = TAKE_PTR(ctx);
        return 0;
}

int tls_client_pin(SSL *ssl, const char *expected) {
        PinState *p;

        (void) pthread_once(&pin_once, pin_index_init);
        if (pin_index < 0)
                return -ENOMEM;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->expected = expected;
        if (SSL_set_ex_data(ssl, pin_index, p) != 1) {
                free(p);
                return -ENOMEM;
        }
        return 0;
}

bool tls_client_pin_mismatch(SSL *ssl, char *ret_seen) {
        PinState *p = pin_index >= 0 ? SSL_get_ex_data(ssl, pin_index) : NULL;

        if (!p || !p->mismatch)
                return false;
        if (ret_seen)
                strcpy(ret_seen, p->seen);
        return true;
}

int tls_server_ctx_new_files(const char *certificate_file, const char *key_file, SSL_CTX **ret) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        int r;

        r = ctx_new(TLS_server_method(), &ctx);
        if (r < 0)
                return r;
        if (SSL_CTX_use_certificate_chain_file(ctx, certificate_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
                ERR_clear_error();
                return -EKEYREJECTED;
        }
        (void) SSL_CTX_set_num_tickets(ctx, 0);
        *ret = TAKE_PTR(ctx);
        return 0;
}

int tls_client_ctx_new_ca(const char *ca_pem, SSL_CTX **ret) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        unsigned n = 0;
        int r;

        r = ctx_new(TLS_client_method(), &ctx);
        if (r < 0)
                return r;
        if (ca_pem) {
                X509_STORE *store = SSL_CTX_get_cert_store(ctx);
                BIO *bio = BIO_new_mem_buf(ca_pem, -1);
                X509 *cert;

                if (!bio)
                        return -ENOMEM;
                while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
                        if (X509_STORE_add_cert(store, cert) == 1)
                                n++;
                        X509_free(cert);
                }
                BIO_free(bio);
                ERR_clear_error();
                if (n == 0)
                        return -EBADMSG;
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        *ret = TAKE_PTR(ctx);
        return 0;
}

int tls_client_ctx_new_insecure(SSL_CTX **ret) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        int r;

        r = ctx_new(TLS_client_method(), &ctx);
        if (r < 0)
                return r;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        *ret = TAKE_PTR(ctx);
        return 0;
}
