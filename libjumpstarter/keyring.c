/* Keyring: the controller's ES256 signing keys, each with a key id and a state */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "keyring.h"
#include "log.h"
#include "macro.h"

#define KEYRING_INDEX "keyring.json"
#define KEYRING_INDEX_SIZE_MAX (1024 * 1024)
#define KEYRING_PEM_SIZE_MAX (64 * 1024)
#define KEYRING_KEYS_MAX 1024

static const char *const key_state_table[_KEY_STATE_MAX] = {
        [KEY_ACTIVE] = "active",
        [KEY_VERIFY_ONLY] = "verify-only",
        [KEY_RETIRED] = "retired",
};

const char *key_state_to_string(KeyState s) {
        if (s < 0 || s >= _KEY_STATE_MAX)
                return NULL;
        return key_state_table[s];
}

KeyState key_state_from_string(const char *s) {
        if (!s)
                return _KEY_STATE_INVALID;
        for (KeyState i = 0; i < _KEY_STATE_MAX; i++)
                if (streq(key_state_table[i], s))
                        return i;
        return _KEY_STATE_INVALID;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);

static KeyringKey *keyring_key_free(KeyringKey *key) {
        if (!key)
                return NULL;
        EVP_PKEY_free(key->pkey);
        free(key);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(KeyringKey *, keyring_key_free);

int keyring_new(Keyring **ret) {
        Keyring *k;

        assert(ret);
        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        *ret = k;
        return 0;
}

Keyring *keyring_free(Keyring *k) {
        if (!k)
                return NULL;
        for (size_t i = 0; i < k->n_keys; i++)
                keyring_key_free(k->keys[i]);
        free(k->keys);
        free(k);
        return NULL;
}

const KeyringKey *keyring_find(const Keyring *k, const char *kid) {
        assert(k);
        if (!kid)
                return NULL;
        for (size_t i = 0; i < k->n_keys; i++)
                if (streq(k->keys[i]->kid, kid))
                        return k->keys[i];
        return NULL;
}

const KeyringKey *keyring_active(const Keyring *k) {
        assert(k);
        for (size_t i = 0; i < k->n_keys; i++)
                if (k->keys[i]->state == KEY_ACTIVE)
                        return k->keys[i];
        return NULL;
}

static bool kid_is_valid(const char *s) {
        if (strlen(s) != KEYRING_KID_LEN)
                return false;
        for (const char *p = s; *p; p++)
                if (!strchr("0123456789abcdef", *p))
                        return false;
        return true;
}

static bool pkey_is_p256(EVP_PKEY *pkey) {
        char group[64];

        if (!EVP_PKEY_is_a(pkey, "EC"))
                return false;
        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL))
                return false;
        return streq(group, "prime256v1");
}

static int pkey_kid(EVP_PKEY *pkey, char ret[static KEYRING_KID_LEN + 1]) {
        _cleanup_free_ unsigned char *der = NULL;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;
        int n;

        n = i2d_PUBKEY(pkey, &der);
        if (n <= 0)
                return -EINVAL;
        if (!EVP_Digest(der, (size_t) n, md, &md_len, EVP_sha256(), NULL) || md_len < KEYRING_KID_LEN / 2)
                return -EIO;
        for (size_t i = 0; i < KEYRING_KID_LEN / 2; i++)
                sprintf(ret + 2 * i, "%02x", md[i]);
        ret[KEYRING_KID_LEN] = 0;
        return 0;
}

/* The public half of pkey as a new key, through its DER: for OpenSSL an EVP_PKEY holding a private
 * key is no different from one holding its public key only. */
static int pkey_public_only(EVP_PKEY *pkey, EVP_PKEY **ret) {
        _cleanup_free_ unsigned char *der = NULL;
        const unsigned char *p;
        EVP_PKEY *pub;
        int n;

        n = i2d_PUBKEY(pkey, &der);
        if (n <= 0)
                return -EINVAL;
        p = der;
        pub = d2i_PUBKEY(NULL, &p, n);
        if (!pub)
                return -ENOMEM;
        *ret = pub;
        return 0;
}

/* From now on the key only verifies: its private half is forgotten. */
static int key_drop_private(KeyringKey *key) {
        EVP_PKEY *pub = NULL;
        int r;

        if (!key->has_private)
                return 0;
        r = pkey_public_only(key->pkey, &pub);
        if (r < 0)
                return r;
        EVP_PKEY_free(key->pkey);
        key->pkey = pub;
        key->has_private = false;
        return 0;
}

/* Takes pkey (also on failure). */
static int keyring_take(Keyring *k, EVP_PKEY *pkey, bool has_private, KeyState state, KeyringKey **ret) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *p = pkey;
        _cleanup_(keyring_key_freep) KeyringKey *key = NULL;
        KeyringKey **keys;
        int r;

        if (state < 0 || state >= _KEY_STATE_MAX)
                return -EINVAL;
        if (state == KEY_ACTIVE && !has_private)
                return -EINVAL;
        if (state == KEY_ACTIVE && keyring_active(k))
                return -EEXIST;
        if (k->n_keys >= KEYRING_KEYS_MAX)
                return -E2BIG;

        key = calloc(1, sizeof(*key));
        if (!key)
                return -ENOMEM;
        key->pkey = TAKE_PTR(p);
        key->has_private = has_private;
        key->state = state;
        r = pkey_kid(key->pkey, key->kid);
        if (r < 0)
                return r;
        if (keyring_find(k, key->kid))
                return -EEXIST;
        if (state != KEY_ACTIVE) {
                r = key_drop_private(key);
                if (r < 0)
                        return r;
        }

        keys = realloc(k->keys, (k->n_keys + 1) * sizeof(*keys));
        if (!keys)
                return -ENOMEM;
        k->keys = keys;
        k->keys[k->n_keys++] = key;
        if (ret)
                *ret = key;
        TAKE_PTR(key);
        return 0;
}

int keyring_rotate(Keyring *k, const char **ret_kid) {
        KeyringKey *old = NULL, *key;
        EVP_PKEY *pkey;
        int r;

        assert(k);
        for (size_t i = 0; i < k->n_keys; i++)
                if (k->keys[i]->state == KEY_ACTIVE)
                        old = k->keys[i];

        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (!pkey) {
                ERR_clear_error();
                return -EIO;
        }
        /* The old key steps down first, so that there is never a second active key; on failure
         * it is put back. */
        if (old)
                old->state = KEY_VERIFY_ONLY;
        r = keyring_take(k, pkey, true, KEY_ACTIVE, &key);
        if (r < 0) {
                if (old)
                        old->state = KEY_ACTIVE;
                return r;
        }
        if (old)
                /* On failure the old private key stays in memory: still only verify-only. */
                (void) key_drop_private(old);
        log_debug("Keyring: new active key %s%s%s.", key->kid, old ? ", previous key " : "", old ? old->kid : "");
        if (ret_kid)
                *ret_kid = key->kid;
        return 0;
}

int keyring_retire(Keyring *k, const char *kid) {
        KeyringKey *key = NULL;

        assert(k);
        assert(kid);
        for (size_t i = 0; i < k->n_keys; i++)
                if (streq(k->keys[i]->kid, kid))
                        key = k->keys[i];
        if (!key)
                return -ENOENT;
        if (key->state == KEY_ACTIVE)
                return -EBUSY;
        key->state = KEY_RETIRED;
        return key_drop_private(key);
}

/* OpenSSL would ask on the terminal for the passphrase of an encrypted key. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata) {
        return -1;
}

static int pem_parse(const char *pem, size_t size, EVP_PKEY **ret, bool *ret_private) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        EVP_PKEY *pkey;
        bool priv = true;

        if (size > KEYRING_PEM_SIZE_MAX)
                return -EBADMSG;
        bio = BIO_new_mem_buf(pem, (int) size);
        if (!bio)
                return -ENOMEM;
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
        if (!pkey) {
                priv = false;
                (void) BIO_reset(bio);
                pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
        }
        ERR_clear_error();
        if (!pkey)
                return -EBADMSG;
        if (!pkey_is_p256(pkey)) {
                EVP_PKEY_free(pkey);
                ERR_clear_error();
                return -EBADMSG;
        }
        *ret = pkey;
        *ret_private = priv;
        return 0;
}

int keyring_add_pem(Keyring *k, const char *pem, size_t size, KeyState state, const char **ret_kid) {
        KeyringKey *key;
        EVP_PKEY *pkey;
        bool priv;
        int r;

        assert(k);
        assert(pem);
        r = pem_parse(pem, size, &pkey, &priv);
        if (r < 0)
                return r;
        r = keyring_take(k, pkey, priv, state, &key);
        if (r < 0)
                return r;
        if (ret_kid)
                *ret_kid = key->kid;
        return 0;
}

/* Copies a memory BIO's contents into a NUL-terminated string. */
static int bio_to_string(BIO *bio, char **ret) {
        char *data, *s;
        long n;

        n = BIO_get_mem_data(bio, &data);
        if (n <= 0)
                return -EIO;
        s = malloc((size_t) n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, data, (size_t) n);
        s[n] = 0;
        *ret = s;
        return (int) n;
}

static int key_public_pem(const KeyringKey *key, char **ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;

        bio = BIO_new(BIO_s_mem());
        if (!bio)
                return -ENOMEM;
        if (!PEM_write_bio_PUBKEY(bio, key->pkey)) {
                ERR_clear_error();
                return -EIO;
        }
        return bio_to_string(bio, ret);
}

int keyring_export_public(const Keyring *k, const char *kid, char **ret_pem) {
        const KeyringKey *key;
        int r;

        assert(k);
        assert(ret_pem);
        key = keyring_find(k, kid);
        if (!key)
                return -ENOENT;
        r = key_public_pem(key, ret_pem);
        return r < 0 ? r : 0;
}

/* Private key material is wiped from memory before it is freed. */
typedef struct Secret {
        char *data;
        size_t size;
} Secret;

static void secret_done(Secret *s) {
        if (s->data) {
                explicit_bzero(s->data, s->size);
                free(s->data);
        }
        *s = (Secret) { 0 };
}

static int key_file_contents(const KeyringKey *key, Secret *ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        char *data;
        long n;

        if (!key->has_private) {
                int r = key_public_pem(key, &ret->data);
                if (r < 0)
                        return r;
                ret->size = (size_t) r;
                return 0;
        }
        /* The secure-heap BIO wipes its buffer when freed. */
        bio = BIO_new(BIO_s_secmem());
        if (!bio)
                return -ENOMEM;
        if (!PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL)) {
                ERR_clear_error();
                return -EIO;
        }
        n = BIO_get_mem_data(bio, &data);
        if (n <= 0)
                return -EIO;
        ret->data = malloc((size_t) n);
        if (!ret->data)
                return -ENOMEM;
        memcpy(ret->data, data, (size_t) n);
        ret->size = (size_t) n;
        return 0;
}

static int loop_write(int fd, const void *data, size_t size) {
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

/* Replaces dir/name with data, mode 0600: a temporary file in the same directory, fsync()ed, then
 * renamed over the old one. The caller fsync()s the directory. */
static int write_atomic(int dfd, const char *name, const void *data, size_t size) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint64_t rnd;
        int r;

        if (RAND_bytes((unsigned char *) &rnd, sizeof(rnd)) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        if (asprintf(&tmp, ".#%s.%016llx", name, (unsigned long long) rnd) < 0)
                return -ENOMEM;
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        /* Not left to the umask. */
        r = fchmod(fd, 0600) < 0 ? -errno : 0;
        if (r >= 0)
                r = loop_write(fd, data, size);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dfd, tmp, 0);
        return r;
}

static int index_dump(const Keyring *k, char **ret) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        json_t *keys;
        char *s;

        root = json_object();
        keys = json_array();
        if (!root || !keys || json_object_set_new(root, "keys", keys) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < k->n_keys; i++) {
                json_t *e = json_object();

                if (!e || json_array_append_new(keys, e) < 0 ||
                    json_object_set_new(e, "kid", json_string(k->keys[i]->kid)) < 0 ||
                    json_object_set_new(e, "state", json_string(key_state_to_string(k->keys[i]->state))) < 0)
                        return -ENOMEM;
        }
        s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int save_keys(const Keyring *k, int dfd, bool with_private) {
        for (size_t i = 0; i < k->n_keys; i++) {
                _cleanup_(secret_done) Secret s = { 0 };
                char name[KEYRING_KID_LEN + 5];
                int r;

                if (k->keys[i]->has_private != with_private)
                        continue;
                r = key_file_contents(k->keys[i], &s);
                if (r < 0)
                        return r;
                snprintf(name, sizeof(name), "%s.pem", k->keys[i]->kid);
                r = write_atomic(dfd, name, s.data, s.size);
                if (r < 0)
                        return r;
        }
        return 0;
}

int keyring_save(const Keyring *k, const char *dir) {
        _cleanup_close_ int dfd = -EBADF;
        _cleanup_free_ char *index = NULL;
        int r;

        assert(k);
        assert(dir);

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        r = index_dump(k, &index);
        if (r < 0)
                return r;

        /* Order matters for a crash in between: a key that gained its active state must be on disk
         * before the index says so, and a key that lost it keeps its private half on disk until
         * the index no longer calls it active (a verify-only key file with a private key loads
         * fine; an active one without it would not). */
        r = save_keys(k, dfd, true);
        if (r < 0)
                return r;
        if (fsync(dfd) < 0)
                return -errno;
        r = write_atomic(dfd, KEYRING_INDEX, index, strlen(index));
        if (r < 0)
                return r;
        if (fsync(dfd) < 0)
                return -errno;
        r = save_keys(k, dfd, false);
        if (r < 0)
                return r;
        if (fsync(dfd) < 0)
                return -errno;
        return 0;
}

_printf_(3, 4)
static int load_error(char **ret_error, int error, const char *format, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

/* Reads a whole file of at most max bytes. With secret, what was read is wiped on every path. */
static int read_file_at(int dfd, const char *name, size_t max, struct stat *ret_st, Secret *ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(secret_done) Secret s = { 0 };

        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, ret_st) < 0)
                return -errno;
        if (!S_ISREG(ret_st->st_mode))
                return -EBADMSG;
        if ((uint64_t) ret_st->st_size > max)
                return -EFBIG;
        s.data = malloc(max + 1);
        if (!s.data)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, s.data + s.size, max + 1 - s.size);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        s.size = max + 1; /* wipe all of it */
                        return -errno;
                }
                if (n == 0)
                        break;
                s.size += (size_t) n;
                if (s.size > max) {
                        s.size = max + 1;
                        return -EFBIG;
                }
        }
        s.data[s.size] = 0;
        *ret = s;
        s = (Secret) { 0 };
        return 0;
}

static int load_key(Keyring *k, int dfd, const char *dir, const char *kid, KeyState state, char **ret_error) {
        _cleanup_(secret_done) Secret s = { 0 };
        char name[KEYRING_KID_LEN + 5];
        KeyringKey *key;
        struct stat st;
        EVP_PKEY *pkey;
        bool priv;
        int r;

        snprintf(name, sizeof(name), "%s.pem", kid);
        r = read_file_at(dfd, name, KEYRING_PEM_SIZE_MAX, &st, &s);
        if (r == -EFBIG || r == -EBADMSG)
                return load_error(ret_error, -EBADMSG, "%s/%s: not a key file", dir, name);
        if (r < 0)
                return load_error(ret_error, r, "%s/%s: %s", dir, name, strerror(-r));
        if (st.st_mode & 0077)
                return load_error(ret_error, -EPERM, "%s/%s: others may read it (mode %04o, expected 0600)",
                                  dir, name, (unsigned) (st.st_mode & 07777));
        r = pem_parse(s.data, s.size, &pkey, &priv);
        if (r < 0)
                return load_error(ret_error, r, "%s/%s: not a P-256 key in PEM", dir, name);
        if (state == KEY_ACTIVE && !priv) {
                EVP_PKEY_free(pkey);
                return load_error(ret_error, -EBADMSG, "%s/%s: the active key has no private key", dir, name);
        }
        r = keyring_take(k, pkey, priv, state, &key);
        if (r == -EEXIST)
                return load_error(ret_error, -EBADMSG, "%s/%s: key listed twice", dir, name);
        if (r < 0)
                return load_error(ret_error, r, "%s/%s: %s", dir, name, strerror(-r));
        if (!streq(key->kid, kid))
                return load_error(ret_error, -EBADMSG, "%s/%s: holds the key with id %s, not %s",
                                  dir, name, key->kid, kid);
        return 0;
}

int keyring_load(const char *dir, Keyring **ret, char **ret_error) {
        _cleanup_(keyring_freep) Keyring *k = NULL;
        _cleanup_(secret_done) Secret s = { 0 };
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_close_ int dfd = -EBADF;
        json_error_t jerr;
        json_t *keys, *e;
        size_t i, n_active = 0;
        struct stat st;
        int r;

        assert(dir);
        assert(ret);
        if (ret_error)
                *ret_error = NULL;

        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return load_error(ret_error, -errno, "%s: %s", dir, strerror(errno));
        r = read_file_at(dfd, KEYRING_INDEX, KEYRING_INDEX_SIZE_MAX, &st, &s);
        if (r == -EFBIG || r == -EBADMSG)
                return load_error(ret_error, -EBADMSG, "%s/" KEYRING_INDEX ": not a keyring index", dir);
        if (r < 0)
                return load_error(ret_error, r, "%s/" KEYRING_INDEX ": %s", dir, strerror(-r));

        root = json_loadb(s.data, s.size, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return load_error(ret_error, -EBADMSG, "%s/" KEYRING_INDEX ":%d:%d: %s",
                                  dir, jerr.line, jerr.column, jerr.text);
        keys = json_object_get(root, "keys");
        if (!json_is_object(root) || !json_is_array(keys))
                return load_error(ret_error, -EBADMSG, "%s/" KEYRING_INDEX ": no \"keys\" array", dir);

        /* The whole index first, then the key files. */
        json_array_foreach(keys, i, e) {
                const char *kid = json_string_value(json_object_get(e, "kid"));
                KeyState state = key_state_from_string(json_string_value(json_object_get(e, "state")));

                if (!kid || !kid_is_valid(kid))
                        return load_error(ret_error, -EBADMSG, "%s/" KEYRING_INDEX ": key %zu: no valid \"kid\"",
                                          dir, i);
                if (state < 0)
                        return load_error(ret_error, -EBADMSG, "%s/" KEYRING_INDEX ": key %s: no valid \"state\"",
                                          dir, kid);
                if (state == KEY_ACTIVE)
                        n_active++;
        }
        if (n_active > 1)
                return load_error(ret_error, -EBADMSG, "%s/" KEYRING_INDEX ": more than one active key", dir);
        if (json_array_size(keys) > 0 && n_active == 0)
                return load_error(ret_error, -EBADMSG, "%s/" KEYRING_INDEX ": no active key", dir);
        if (json_array_size(keys) > KEYRING_KEYS_MAX)
                return load_error(ret_error, -EBADMSG, "%s/" KEYRING_INDEX ": more than %d keys",
                                  dir, KEYRING_KEYS_MAX);

        r = keyring_new(&k);
        if (r < 0)
                return r;
        json_array_foreach(keys, i, e) {
                r = load_key(k, dfd, dir, json_string_value(json_object_get(e, "kid")),
                             key_state_from_string(json_string_value(json_object_get(e, "state"))), ret_error);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(k);
        return 0;
}
