/* Tests for the keyring: key ids, states, rotation, and the keyring directory */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keyring.h"
#include "macro.h"
#include "tests.h"
#include "token.h"

#define NOW_USEC (UINT64_C(1800000000) * USEC_PER_SEC)

static const TokenExpect expect = {
        .issuer = "controller",
        .audience = "jumpstarter",
        .leeway_usec = TOKEN_LEEWAY_DEFAULT_USEC,
};

static char *issue(const Keyring *k) {
        TokenClaims c = {
                .iss = "controller",
                .sub = "alice",
                .aud = "jumpstarter",
                .iat_usec = NOW_USEC,
                .exp_usec = NOW_USEC + 3600 * USEC_PER_SEC,
        };
        char *t = NULL;

        ASSERT_OK(token_issue(k, &c, &t));
        return t;
}

static void assert_verifies(const Keyring *k, const char *token, const char *kid) {
        _cleanup_(token_claims_freep) TokenClaims *c = NULL;
        _cleanup_free_ char *reason = NULL;

        ASSERT_OK(token_verify(k, token, &expect, NOW_USEC, &c, &reason));
        ASSERT_TRUE(!reason);
        ASSERT_STREQ(c->kid, kid);
}

static void assert_refused(const Keyring *k, const char *token, const char *want) {
        _cleanup_(token_claims_freep) TokenClaims *c = NULL;
        _cleanup_free_ char *reason = NULL;

        ASSERT_EQ(token_verify(k, token, &expect, NOW_USEC, &c, &reason), -EACCES);
        ASSERT_TRUE(!c);
        ASSERT_STREQ(reason, want);
}

static char *make_tmpdir(void) {
        char *d = strdup("/tmp/test-keyring-XXXXXX");

        ASSERT_TRUE(d && mkdtemp(d));
        return d;
}

static void rm_rf(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        ASSERT_OK(unlinkat(dirfd(d), de->d_name, 0) < 0 ? -errno : 0);
        closedir(d);
        ASSERT_OK(rmdir(dir) < 0 ? -errno : 0);
}

static char *path_in(const char *dir, const char *name) {
        char *p;

        ASSERT_TRUE(asprintf(&p, "%s/%s", dir, name) >= 0);
        return p;
}

static char *key_path(const char *dir, const char *kid) {
        _cleanup_free_ char *name = NULL;

        ASSERT_TRUE(asprintf(&name, "%s.pem", kid) >= 0);
        return path_in(dir, name);
}

static char *read_text(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf = calloc(1, 65536);
        size_t n;

        ASSERT_TRUE(f && buf);
        n = fread(buf, 1, 65535, f);
        buf[n] = 0;
        fclose(f);
        return buf;
}

static void write_text(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        ASSERT_TRUE(f);
        ASSERT_EQ_U(fwrite(text, 1, strlen(text), f), strlen(text));
        ASSERT_EQ(fclose(f), 0);
        ASSERT_OK(chmod(path, 0600) < 0 ? -errno : 0);
}

static void assert_mode(const char *path, mode_t want) {
        struct stat st;

        ASSERT_OK(stat(path, &st) < 0 ? -errno : 0);
        if ((st.st_mode & 07777) != want)
                ASSERT_FAIL("%s has mode %04o, expected %04o", path, (unsigned) (st.st_mode & 07777),
                            (unsigned) want);
}

/* The load error, which must name the file. */
static void assert_load_fails(const char *dir, int want_r, const char *file, const char *text) {
        _cleanup_(keyring_freep) Keyring *k = NULL;
        _cleanup_free_ char *error = NULL;

        ASSERT_EQ(keyring_load(dir, &k, &error), want_r);
        ASSERT_TRUE(!k);
        fprintf(stderr, "  load error: %s\n", strna(error));
        ASSERT_CONTAINS(error, file);
        if (text)
                ASSERT_CONTAINS(error, text);
        ASSERT_TRUE(!strchr(error, '\n'));
}

static char *pkey_to_pem(EVP_PKEY *pkey, bool private) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *data, *s;
        long n;

        ASSERT_TRUE(bio);
        if (private)
                ASSERT_TRUE(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL));
        else
                ASSERT_TRUE(PEM_write_bio_PUBKEY(bio, pkey));
        n = BIO_get_mem_data(bio, &data);
        s = strndup(data, (size_t) n);
        ASSERT_TRUE(s);
        BIO_free(bio);
        return s;
}

TEST(key_state_strings) {
        for (KeyState s = 0; s < _KEY_STATE_MAX; s++)
                ASSERT_EQ(key_state_from_string(key_state_to_string(s)), s);
        ASSERT_STREQ(key_state_to_string(KEY_VERIFY_ONLY), "verify-only");
        ASSERT_EQ(key_state_from_string("Active"), _KEY_STATE_INVALID);
        ASSERT_EQ(key_state_from_string(NULL), _KEY_STATE_INVALID);
        ASSERT_TRUE(key_state_to_string(_KEY_STATE_MAX) == NULL);
}

TEST(kid_is_sha256_of_public_key) {
        _cleanup_(keyring_freep) Keyring *k = NULL;
        _cleanup_free_ unsigned char *der = NULL;
        const KeyringKey *key;
        unsigned char md[32];
        const char *kid;
        char hex[17];
        int n;

        ASSERT_OK(keyring_new(&k));
        ASSERT_TRUE(keyring_active(k) == NULL);
        ASSERT_OK(keyring_rotate(k, &kid));
        key = keyring_active(k);
        ASSERT_TRUE(key && key->kid == kid && key->has_private);
        ASSERT_EQ(key->state, KEY_ACTIVE);
        ASSERT_TRUE(keyring_find(k, kid) == key);
        ASSERT_TRUE(keyring_find(k, "0000000000000000") == NULL);
        ASSERT_TRUE(keyring_find(k, NULL) == NULL);

        n = i2d_PUBKEY(key->pkey, &der);
        ASSERT_TRUE(n > 0);
        ASSERT_TRUE(EVP_Digest(der, (size_t) n, md, NULL, EVP_sha256(), NULL));
        for (int i = 0; i < 8; i++)
                sprintf(hex + 2 * i, "%02x", md[i]);
        ASSERT_STREQ(kid, hex);
        ASSERT_EQ(EVP_PKEY_get_bits(key->pkey), 256);
}

TEST(rotate_and_retire) {
        _cleanup_(keyring_freep) Keyring *k = NULL;
        _cleanup_free_ char *kid1 = NULL;
        const char *kid2, *p;
        const KeyringKey *old;

        ASSERT_OK(keyring_new(&k));
        ASSERT_OK(keyring_rotate(k, &p));
        kid1 = strdup(p);
        ASSERT_OK(keyring_rotate(k, &kid2));
        ASSERT_EQ_U(k->n_keys, 2);
        ASSERT_TRUE(!streq(kid1, kid2));
        ASSERT_STREQ(keyring_active(k)->kid, kid2);

        /* Exactly one active key; the old one keeps only its public half. */
        old = keyring_find(k, kid1);
        ASSERT_EQ(old->state, KEY_VERIFY_ONLY);
        ASSERT_FALSE(old->has_private);

        ASSERT_EQ(keyring_retire(k, kid2), -EBUSY);
        ASSERT_EQ(keyring_retire(k, "0123456789abcdef"), -ENOENT);
        ASSERT_OK(keyring_retire(k, kid1));
        ASSERT_EQ(old->state, KEY_RETIRED);
        ASSERT_OK(keyring_retire(k, kid1));
        ASSERT_EQ(old->state, KEY_RETIRED);
}

TEST(add_pem_and_export) {
        _cleanup_(keyring_freep) Keyring *k = NULL, *pub = NULL;
        _cleanup_free_ char *priv_pem = NULL, *pub_pem = NULL, *token = NULL;
        EVP_PKEY *p384, *ed;
        const char *kid, *kid2;

        ASSERT_OK(keyring_new(&k));
        ASSERT_OK(keyring_rotate(k, &kid));
        ASSERT_OK(keyring_export_public(k, kid, &pub_pem));
        ASSERT_TRUE(strncmp(pub_pem, "-----BEGIN PUBLIC KEY-----\n", 27) == 0);
        ASSERT_EQ(keyring_export_public(k, "0123456789abcdef", &priv_pem), -ENOENT);

        /* An exporter's keyring: public keys only. It verifies, it cannot sign. */
        ASSERT_OK(keyring_new(&pub));
        ASSERT_EQ(keyring_add_pem(pub, pub_pem, strlen(pub_pem), KEY_ACTIVE, &kid2), -EINVAL);
        ASSERT_OK(keyring_add_pem(pub, pub_pem, strlen(pub_pem), KEY_VERIFY_ONLY, &kid2));
        ASSERT_STREQ(kid2, kid);
        ASSERT_EQ(keyring_add_pem(pub, pub_pem, strlen(pub_pem), KEY_VERIFY_ONLY, NULL), -EEXIST);
        token = issue(k);
        assert_verifies(pub, token, kid);
        free(token);
        ASSERT_EQ(token_issue(pub, &(TokenClaims) { .iss = "a", .sub = "b", .aud = "c",
                                                    .iat_usec = 1, .exp_usec = 2 * USEC_PER_SEC },
                              &token), -ENOKEY);
        token = NULL;

        /* A private key as the active key of another ring, and a second active key refused. */
        priv_pem = pkey_to_pem(keyring_active(k)->pkey, true);
        keyring_free(pub);
        ASSERT_OK(keyring_new(&pub));
        ASSERT_OK(keyring_add_pem(pub, priv_pem, strlen(priv_pem), KEY_ACTIVE, &kid2));
        ASSERT_STREQ(kid2, kid);
        ASSERT_TRUE(keyring_active(pub)->has_private);
        ASSERT_OK(keyring_rotate(k, NULL));
        free(pub_pem);
        pub_pem = pkey_to_pem(keyring_active(k)->pkey, true);
        ASSERT_EQ(keyring_add_pem(pub, pub_pem, strlen(pub_pem), KEY_ACTIVE, NULL), -EEXIST);
        /* Added as verify-only, a private key is kept as its public half. */
        ASSERT_OK(keyring_add_pem(pub, pub_pem, strlen(pub_pem), KEY_VERIFY_ONLY, &kid2));
        ASSERT_FALSE(keyring_find(pub, kid2)->has_private);

        /* Not P-256, not a key, an encrypted key (no passphrase prompt), out of range states. */
        p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        ASSERT_TRUE(p384 && ed);
        free(pub_pem);
        pub_pem = pkey_to_pem(p384, true);
        ASSERT_EQ(keyring_add_pem(pub, pub_pem, strlen(pub_pem), KEY_VERIFY_ONLY, NULL), -EBADMSG);
        free(pub_pem);
        pub_pem = pkey_to_pem(ed, false);
        ASSERT_EQ(keyring_add_pem(pub, pub_pem, strlen(pub_pem), KEY_VERIFY_ONLY, NULL), -EBADMSG);
        ASSERT_EQ(keyring_add_pem(pub, "garbage", 7, KEY_VERIFY_ONLY, NULL), -EBADMSG);
        ASSERT_EQ(keyring_add_pem(pub, priv_pem, strlen(priv_pem) / 2, KEY_VERIFY_ONLY, NULL), -EBADMSG);
        ASSERT_EQ(keyring_add_pem(pub, priv_pem, strlen(priv_pem), _KEY_STATE_MAX, NULL), -EINVAL);
        {
                BIO *bio = BIO_new(BIO_s_mem());
                char *data;
                long n;

                ASSERT_TRUE(PEM_write_bio_PrivateKey(bio, keyring_active(k)->pkey, EVP_aes_256_cbc(),
                                                     (unsigned char *) "secret", 6, NULL, NULL));
                n = BIO_get_mem_data(bio, &data);
                ASSERT_EQ(keyring_add_pem(pub, data, (size_t) n, KEY_VERIFY_ONLY, NULL), -EBADMSG);
                BIO_free(bio);
        }
        EVP_PKEY_free(p384);
        EVP_PKEY_free(ed);
}

TEST(save_load_round_trip) {
        _cleanup_(keyring_freep) Keyring *k = NULL, *l = NULL;
        _cleanup_free_ char *dir = make_tmpdir(), *sub = path_in(dir, "keys"), *error = NULL;
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL;
        _cleanup_free_ char *kid1 = NULL, *kid2 = NULL, *kid3 = NULL;
        const char *p;
        DIR *d;
        struct dirent *de;
        unsigned n_files = 0;

        ASSERT_OK(keyring_new(&k));
        ASSERT_OK(keyring_rotate(k, &p));
        kid1 = strdup(p);
        t1 = issue(k);
        ASSERT_OK(keyring_rotate(k, &p));
        kid2 = strdup(p);
        t2 = issue(k);
        ASSERT_OK(keyring_rotate(k, &p));
        kid3 = strdup(p);
        t3 = issue(k);
        ASSERT_OK(keyring_retire(k, kid1));

        /* The directory is created, 0700, whatever the umask. */
        umask(0);
        ASSERT_OK(keyring_save(k, sub));
        umask(022);
        assert_mode(sub, 0700);

        d = opendir(sub);
        ASSERT_TRUE(d);
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL;

                if (de->d_name[0] == '.' && (streq(de->d_name, ".") || streq(de->d_name, "..")))
                        continue;
                /* No temporary files left behind. */
                ASSERT_TRUE(de->d_name[0] != '.');
                path = path_in(sub, de->d_name);
                assert_mode(path, 0600);
                n_files++;
        }
        closedir(d);
        ASSERT_EQ_U(n_files, 4);

        /* Only the active key's file holds a private key. */
        {
                _cleanup_free_ char *p1 = key_path(sub, kid1), *p3 = key_path(sub, kid3);
                _cleanup_free_ char *s1 = read_text(p1), *s3 = read_text(p3);

                ASSERT_CONTAINS(s1, "-----BEGIN PUBLIC KEY-----");
                ASSERT_FALSE(strstr(s1, "PRIVATE"));
                ASSERT_CONTAINS(s3, "-----BEGIN PRIVATE KEY-----");
        }

        ASSERT_OK(keyring_load(sub, &l, &error));
        ASSERT_TRUE(!error);
        ASSERT_EQ_U(l->n_keys, 3);
        for (size_t i = 0; i < k->n_keys; i++) {
                ASSERT_STREQ(l->keys[i]->kid, k->keys[i]->kid);
                ASSERT_EQ(l->keys[i]->state, k->keys[i]->state);
                ASSERT_EQ(l->keys[i]->has_private, k->keys[i]->has_private);
                ASSERT_EQ(EVP_PKEY_eq(l->keys[i]->pkey, k->keys[i]->pkey), 1);
        }
        ASSERT_STREQ(keyring_active(l)->kid, kid3);

        /* Tokens survive the restart, and the loaded key signs what the old keyring accepts. */
        assert_refused(l, t1, "retired-key");
        assert_verifies(l, t2, kid2);
        assert_verifies(l, t3, kid3);
        t4 = issue(l);
        assert_verifies(k, t4, kid3);

        /* Saving again after a rotation replaces the files. */
        ASSERT_OK(keyring_rotate(l, NULL));
        ASSERT_OK(keyring_save(l, sub));
        keyring_free(k);
        k = NULL;
        ASSERT_OK(keyring_load(sub, &k, &error));
        ASSERT_EQ_U(k->n_keys, 4);
        ASSERT_EQ(keyring_find(k, kid3)->state, KEY_VERIFY_ONLY);
        ASSERT_FALSE(keyring_find(k, kid3)->has_private);
        assert_verifies(k, t3, kid3);

        rm_rf(sub);
        rm_rf(dir);
}

TEST(load_empty_and_missing) {
        _cleanup_(keyring_freep) Keyring *k = NULL;
        _cleanup_free_ char *dir = make_tmpdir(), *missing = path_in(dir, "none"), *error = NULL;

        ASSERT_OK(keyring_new(&k));
        ASSERT_OK(keyring_save(k, dir));
        keyring_free(k);
        k = NULL;
        ASSERT_OK(keyring_load(dir, &k, &error));
        ASSERT_EQ_U(k->n_keys, 0);

        assert_load_fails(missing, -ENOENT, missing, NULL);
        rm_rf(dir);
}

TEST(load_errors_name_the_file) {
        _cleanup_(keyring_freep) Keyring *k = NULL;
        _cleanup_free_ char *dir = make_tmpdir(), *index = path_in(dir, "keyring.json");
        _cleanup_free_ char *kid1 = NULL, *kid2 = NULL, *p1 = NULL, *p2 = NULL, *s1 = NULL, *s2 = NULL;
        _cleanup_free_ char *good_index = NULL;
        const char *p;

        ASSERT_OK(keyring_new(&k));
        ASSERT_OK(keyring_rotate(k, &p));
        kid1 = strdup(p);
        ASSERT_OK(keyring_rotate(k, &p));
        kid2 = strdup(p);
        ASSERT_OK(keyring_save(k, dir));
        p1 = key_path(dir, kid1);
        p2 = key_path(dir, kid2);
        s1 = read_text(p1);
        s2 = read_text(p2);
        good_index = read_text(index);

        /* A corrupt key file. */
        write_text(p2, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assert_load_fails(dir, -EBADMSG, p2, "not a P-256 key");
        write_text(p2, "");
        assert_load_fails(dir, -EBADMSG, p2, NULL);

        /* The active key with its public half only. */
        write_text(p2, s1);
        assert_load_fails(dir, -EBADMSG, p2, "no private key");

        /* A file holding another key than its name says. */
        write_text(p1, s2);
        write_text(p2, s2);
        assert_load_fails(dir, -EBADMSG, p1, "holds the key with id");
        write_text(p1, s1);

        /* Readable by others. */
        ASSERT_OK(chmod(p2, 0644) < 0 ? -errno : 0);
        assert_load_fails(dir, -EPERM, p2, "0644");
        ASSERT_OK(chmod(p2, 0600) < 0 ? -errno : 0);

        /* Missing. */
        ASSERT_OK(unlink(p2) < 0 ? -errno : 0);
        assert_load_fails(dir, -ENOENT, p2, NULL);
        write_text(p2, s2);

        /* The index: not JSON, wrong shape, bad kid, bad state, two active, none active, twice. */
        write_text(index, "{\"keys\": [");
        assert_load_fails(dir, -EBADMSG, index, NULL);
        write_text(index, "[]");
        assert_load_fails(dir, -EBADMSG, index, "\"keys\"");
        write_text(index, "{\"keys\": [{\"kid\": \"../../etc/passwd\", \"state\": \"active\"}]}");
        assert_load_fails(dir, -EBADMSG, index, "kid");
        {
                _cleanup_free_ char *s = NULL;

                ASSERT_TRUE(asprintf(&s, "{\"keys\": [{\"kid\": \"%s\", \"state\": \"old\"}]}", kid2) > 0);
                write_text(index, s);
                assert_load_fails(dir, -EBADMSG, index, "state");
                free(s);
                ASSERT_TRUE(asprintf(&s, "{\"keys\": [{\"kid\": \"%s\", \"state\": \"active\"},"
                                         " {\"kid\": \"%s\", \"state\": \"active\"}]}", kid1, kid2) > 0);
                write_text(index, s);
                write_text(p1, s1);
                assert_load_fails(dir, -EBADMSG, index, "more than one active");
                free(s);
                ASSERT_TRUE(asprintf(&s, "{\"keys\": [{\"kid\": \"%s\", \"state\": \"verify-only\"}]}", kid1) > 0);
                write_text(index, s);
                assert_load_fails(dir, -EBADMSG, index, "no active key");
                free(s);
                ASSERT_TRUE(asprintf(&s, "{\"keys\": [{\"kid\": \"%s\", \"state\": \"active\"},"
                                         " {\"kid\": \"%s\", \"state\": \"verify-only\"}]}", kid2, kid2) > 0);
                write_text(index, s);
                assert_load_fails(dir, -EBADMSG, p2, "twice");
        }

        /* And back to what was saved. */
        write_text(index, good_index);
        keyring_free(k);
        k = NULL;
        ASSERT_OK(keyring_load(dir, &k, NULL));
        ASSERT_EQ_U(k->n_keys, 2);
        rm_rf(dir);
}

TEST_MAIN();
