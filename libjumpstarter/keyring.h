/* Keyring: the controller's ES256 signing keys, each with a key id and a state */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <openssl/types.h>

#include "macro.h"

/* Key id: the first 16 hex digits of the SHA-256 of the public key's DER (SubjectPublicKeyInfo),
 * so that the controller and every verifier derive the same id from the key alone. */
#define KEYRING_KID_LEN 16

typedef enum KeyState {
        KEY_ACTIVE,      /* signs new tokens; at most one per keyring */
        KEY_VERIFY_ONLY, /* an older key: its tokens keep working until they expire */
        KEY_RETIRED,     /* its tokens are refused */
        _KEY_STATE_MAX,
        _KEY_STATE_INVALID = -EINVAL,
} KeyState;

const char *key_state_to_string(KeyState s);
KeyState key_state_from_string(const char *s);

typedef struct KeyringKey {
        char kid[KEYRING_KID_LEN + 1];
        KeyState state;
        /* A P-256 key. Only the active key holds its private half: a key that will never sign
         * again is kept (in memory and on disk) as its public half only. */
        EVP_PKEY *pkey;
        bool has_private;
} KeyringKey;

/* Read-only for users; change it with the functions below. Key pointers stay valid until the
 * keyring is freed. */
typedef struct Keyring {
        KeyringKey **keys;
        size_t n_keys;
} Keyring;

int keyring_new(Keyring **ret);
Keyring *keyring_free(Keyring *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(Keyring *, keyring_free);

/* The key with that id, or NULL. */
const KeyringKey *keyring_find(const Keyring *k, const char *kid);
/* The key that signs new tokens, or NULL if there is none. */
const KeyringKey *keyring_active(const Keyring *k);

/* Generates a new P-256 key and makes it the active one; the previous active key, if any, becomes
 * verify-only. On an empty keyring this creates the first key. ret_kid (optional) points into
 * the keyring. */
int keyring_rotate(Keyring *k, const char **ret_kid);
/* Refuses tokens of that key from now on. -ENOENT for an unknown id, -EBUSY for the active key
 * (rotate first). Retiring a retired key is a no-op. */
int keyring_retire(Keyring *k, const char *kid);

/* Adds a key from PEM: a private key ("PRIVATE KEY", "EC PRIVATE KEY") or a public one ("PUBLIC
 * KEY"), for instance one that keyring_export_public() wrote, so that an exporter can verify
 * stream tokens. KEY_ACTIVE needs a private key (-EINVAL) and no other active key (-EEXIST).
 * -EEXIST as well if the key is already in the ring; -EBADMSG if the PEM is no P-256 key. */
int keyring_add_pem(Keyring *k, const char *pem, size_t size, KeyState state, const char **ret_kid);

/* The public half of a key as PEM ("-----BEGIN PUBLIC KEY-----"). -ENOENT for an unknown id. */
int keyring_export_public(const Keyring *k, const char *kid, char **ret_pem);

/* A keyring directory holds keyring.json (each key id and its state, in order) and one KID.pem per
 * key, all 0600. Saving writes every file to a temporary file first, then fsync()s and renames it:
 * a crash leaves either the old or the new keyring, and the index never names a file that is not
 * on disk yet. The directory is created (0700) if it is missing. */
int keyring_save(const Keyring *k, const char *dir);
/* Loads a directory that keyring_save() wrote. Any problem is an error with a one-line message in
 * *ret_error that names the file: -ENOENT if there is no index, -EBADMSG for a corrupt file, -EPERM
 * for a key file that others may read. A non-empty keyring must have exactly one active key. */
int keyring_load(const char *dir, Keyring **ret, char **ret_error);
