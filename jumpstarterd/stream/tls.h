/* TLS for data streams: the exporter's self-signed certificate, its fingerprint, and the contexts */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>

#include "macro.h"

/* "sha256:" and 64 lowercase hex digits. */
#define TLS_FINGERPRINT_PREFIX "sha256:"
#define TLS_FINGERPRINT_LEN (sizeof(TLS_FINGERPRINT_PREFIX) - 1 + 64)

typedef struct TlsIdentity TlsIdentity;

/* A P-256 key and a self-signed certificate for it, made in memory (nothing touches the disk): the
 * exporter makes a new one at every start and announces its fingerprint, which clients pin. */
int tls_identity_new(const char *common_name, TlsIdentity **ret);
TlsIdentity *tls_identity_free(TlsIdentity *id);
DEFINE_TRIVIAL_CLEANUP_FUNC(TlsIdentity *, tls_identity_free);
const char *tls_identity_get_fingerprint(const TlsIdentity *id);

/* "sha256:" + lowercase hex of the SHA-256 of the certificate's DER. ret has room for
 * TLS_FINGERPRINT_LEN + 1 bytes. */
int tls_fingerprint_of(X509 *cert, char *ret);
/* Whether s is spelled as tls_fingerprint_of() writes it (uppercase hex is refused: one spelling). */
bool tls_fingerprint_is_valid(const char *s);

/* TLS 1.2 or newer. The server presents the identity. */
int tls_server_ctx_new(const TlsIdentity *id, SSL_CTX **ret);
/* The client trusts no CA: each connection pins the server's certificate by its fingerprint
 * (tls_client_pin()). */
int tls_client_ctx_new(SSL_CTX **ret);
/* Makes the handshake of ssl fail unless the server's certificate has that fingerprint. expected
 * must outlive the handshake. After a failed handshake, tls_client_pin_mismatch() tells whether
 * this was why, and the fingerprint the server presented. */
int tls_client_pin(SSL *ssl, const char *expected);
bool tls_client_pin_mismatch(SSL *ssl, char *ret_seen);

/* The controller's router: a server context from a PEM certificate chain file and its unencrypted
 * key file (checked against each other), TLS 1.2 or newer. */
int tls_server_ctx_new_files(const char *certificate_file, const char *key_file, SSL_CTX **ret);
/* A client context that verifies the server's certificate chain against the CA certificates in
 * ca_pem (NULL: the system's CAs), for connections to the controller's router. Each connection
 * also checks the address it dialed against the certificate (tls_conn_connect() with no
 * fingerprint). -EBADMSG if ca_pem holds no certificate. */
int tls_client_ctx_new_ca(const char *ca_pem, SSL_CTX **ret);
/* A client context that verifies nothing (tls.insecure, tests only). */
int tls_client_ctx_new_insecure(SSL_CTX **ret);

DEFINE_TRIVIAL_CLEANUP_FUNC(SSL_CTX *, SSL_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(SSL *, SSL_free);
