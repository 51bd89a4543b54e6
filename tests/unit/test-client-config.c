/* Tests for the ClientConfig parser and writer */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "client-config.h"
#include "macro.h"
#include "tests.h"

#define CERT                                                                 \
        "-----BEGIN CERTIFICATE-----\n"                                      \
        "MIIBeDCCAR+gAwIBAgIUbflVAN/4hGpeKkhf/DszOz/dCPAwCgYIKoZIzj0EAwIw\n" \
        "EjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNjExMjkwNDAxMjBaFw0zNjExMjYwNDAx\n" \
        "MjBaMBIxEDAOBgNVBAMMB3Rlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n" \
        "AATZFIggC9mAsnGsbdWlhFgP2e21kXwqcLvji33en6A4/SMZfqXt/30MHPAcqF/7\n" \
        "A7hnxUOLJTwX17eretiHgIcMo1MwUTAdBgNVHQ4EFgQUFVdntB++qRjJeE30kiFh\n" \
        "mBI2tgUwHwYDVR0jBBgwFoAUFVdntB++qRjJeE30kiFhmBI2tgUwDwYDVR0TAQH/\n" \
        "BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiA/kTCz/fJiYIVIjQy9HbSWP46CN9vH\n" \
        "quwg5eWcafy4YQIgQvZr/SKbfxKQyu4phqR5FNMUQM6sJELRYa1V+k2UQP0=\n"     \
        "-----END CERTIFICATE-----\n"

#define FILE_PATH "/abs/client.yaml"
#define TOKEN "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

/* Three lines; endpoint, tls and token follow from line 4. */
#define HEAD                                     \
        "apiVersion: jumpstarter.dev/v1alpha1\n" \
        "kind: ClientConfig\n"                   \
        "metadata: {name: alice, namespace: default}\n"

static ClientConfig *parse_ok(const char *text) {
        ClientConfig *c = NULL;
        char *error = NULL;
        int r;

        r = client_config_parse(FILE_PATH, text, strlen(text), &c, &error);
        if (r < 0)
                ASSERT_FAIL("config parses (got %d: %s)", r, error ? error : "(no message)");
        ASSERT_TRUE(c);
        ASSERT_TRUE(!error);
        return c;
}

/* Parsing fails with -EINVAL and exactly this message; nothing half-parsed comes back. */
static void check_error(const char *text, const char *expected) {
        ClientConfig *c = (ClientConfig *) 1;
        _cleanup_free_ char *error = NULL;
        int r;

        r = client_config_parse(FILE_PATH, text, strlen(text), &c, &error);
        if (r != -EINVAL)
                ASSERT_FAIL("parsing fails with -EINVAL, got %d (%s) for:\n%s", r, strna(error), text);
        ASSERT_TRUE(c == (ClientConfig *) 1);
        ASSERT_STREQ(error, expected);
}

TEST(inline_ca) {
        _cleanup_(client_config_freep) ClientConfig *c = NULL;

        /* The controller's bootstrap file writes this shape: flow mappings, the PEM as one quoted line. */
        c = parse_ok(HEAD "endpoint: \"127.0.0.1:8443\"\n"
                          "tls: {ca: \"-----BEGIN CERTIFICATE-----\\n"
                          "MIIBeDCCAR+gAwIBAgIUbflVAN/4hGpeKkhf/DszOz/dCPAwCgYIKoZIzj0EAwIw\\n"
                          "EjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNjExMjkwNDAxMjBaFw0zNjExMjYwNDAx\\n"
                          "MjBaMBIxEDAOBgNVBAMMB3Rlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\\n"
                          "AATZFIggC9mAsnGsbdWlhFgP2e21kXwqcLvji33en6A4/SMZfqXt/30MHPAcqF/7\\n"
                          "A7hnxUOLJTwX17eretiHgIcMo1MwUTAdBgNVHQ4EFgQUFVdntB++qRjJeE30kiFh\\n"
                          "mBI2tgUwHwYDVR0jBBgwFoAUFVdntB++qRjJeE30kiFhmBI2tgUwDwYDVR0TAQH/\\n"
                          "BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiA/kTCz/fJiYIVIjQy9HbSWP46CN9vH\\n"
                          "quwg5eWcafy4YQIgQvZr/SKbfxKQyu4phqR5FNMUQM6sJELRYa1V+k2UQP0=\\n"
                          "-----END CERTIFICATE-----\\n\", insecure: false}\n"
                          "token: \"" TOKEN "\"\n");
        ASSERT_STREQ(c->path, FILE_PATH);
        ASSERT_STREQ(c->name, "alice");
        ASSERT_STREQ(c->namespace, "default");
        ASSERT_STREQ(c->endpoint, "127.0.0.1:8443");
        ASSERT_STREQ(c->ca_pem, CERT);
        ASSERT_FALSE(c->insecure);
        ASSERT_STREQ(c->token, TOKEN);
}

TEST(block_ca_and_no_tls) {
        _cleanup_(client_config_freep) ClientConfig *c = NULL, *d = NULL;

        c = parse_ok(HEAD "endpoint: \"[::1]:443\"\n"
                          "tls:\n"
                          "  ca: |\n"
                          "    -----BEGIN CERTIFICATE-----\n"
                          "    MIIBeDCCAR+gAwIBAgIUbflVAN/4hGpeKkhf/DszOz/dCPAwCgYIKoZIzj0EAwIw\n"
                          "    EjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNjExMjkwNDAxMjBaFw0zNjExMjYwNDAx\n"
                          "    MjBaMBIxEDAOBgNVBAMMB3Rlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
                          "    AATZFIggC9mAsnGsbdWlhFgP2e21kXwqcLvji33en6A4/SMZfqXt/30MHPAcqF/7\n"
                          "    A7hnxUOLJTwX17eretiHgIcMo1MwUTAdBgNVHQ4EFgQUFVdntB++qRjJeE30kiFh\n"
                          "    mBI2tgUwHwYDVR0jBBgwFoAUFVdntB++qRjJeE30kiFhmBI2tgUwDwYDVR0TAQH/\n"
                          "    BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiA/kTCz/fJiYIVIjQy9HbSWP46CN9vH\n"
                          "    quwg5eWcafy4YQIgQvZr/SKbfxKQyu4phqR5FNMUQM6sJELRYa1V+k2UQP0=\n"
                          "    -----END CERTIFICATE-----\n"
                          "token: " TOKEN "\n");
        ASSERT_STREQ(c->ca_pem, CERT);
        ASSERT_STREQ(c->endpoint, "[::1]:443");

        /* No tls: the system's CAs. */
        d = parse_ok(HEAD "endpoint: ctl.example.com:8443\ntoken: " TOKEN "\n");
        ASSERT_TRUE(!d->ca_pem);
        ASSERT_FALSE(d->insecure);
        ASSERT_STREQ(d->namespace, "default");
}

TEST(ca_file) {
        char dir[] = "/tmp/test-client-config.XXXXXX";
        _cleanup_free_ char *ca = NULL, *cfg = NULL, *text = NULL, *error = NULL;
        _cleanup_(client_config_freep) ClientConfig *c = NULL;
        FILE *f;

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_TRUE(asprintf(&ca, "%s/ca.pem", dir) > 0);
        ASSERT_TRUE(asprintf(&cfg, "%s/client.yaml", dir) > 0);

        /* A relative path is relative to the config file, not to the working directory. */
        ASSERT_TRUE(f = fopen(cfg, "we"));
        fputs(HEAD "endpoint: 127.0.0.1:8443\ntls:\n  ca: ca.pem\ntoken: " TOKEN "\n", f);
        ASSERT_EQ(fclose(f), 0);

        ASSERT_EQ(client_config_load(cfg, &c, &error), -EINVAL);
        ASSERT_TRUE(!c);
        ASSERT_TRUE(error);
        ASSERT_CONTAINS(error, ":6:7: tls.ca: cannot read the CA file ");
        ASSERT_CONTAINS(error, "/ca.pem: No such file or directory");
        free(TAKE_PTR(error));

        ASSERT_TRUE(f = fopen(ca, "we"));
        fputs("not a certificate\n", f);
        ASSERT_EQ(fclose(f), 0);
        ASSERT_EQ(client_config_load(cfg, &c, &error), -EINVAL);
        ASSERT_CONTAINS(error, "/ca.pem holds no PEM certificate");
        free(TAKE_PTR(error));

        ASSERT_TRUE(f = fopen(ca, "we"));
        fputs(CERT, f);
        ASSERT_EQ(fclose(f), 0);
        ASSERT_OK(client_config_load(cfg, &c, &error));
        ASSERT_TRUE(!error);
        ASSERT_STREQ(c->ca_pem, CERT);
        ASSERT_STREQ(c->path, cfg);

        ASSERT_EQ(unlink(ca), 0);
        ASSERT_EQ(unlink(cfg), 0);
        ASSERT_EQ(client_config_load(cfg, &c, &error), -ENOENT);
        ASSERT_CONTAINS(error, "client.yaml: cannot read: No such file or directory");
        ASSERT_EQ(rmdir(dir), 0);
}

TEST(errors) {
        check_error("- a\n", FILE_PATH ":1:1: expected a mapping with apiVersion, kind, metadata, endpoint, tls and "
                             "token, got a sequence");
        check_error(HEAD "endpoint: 127.0.0.1:8443\ntoken: " TOKEN "\nfoo: 1\n",
                    FILE_PATH ":6:1: foo: unknown key (known: apiVersion, kind, metadata, endpoint, tls, token)");
        check_error("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\n",
                    FILE_PATH ":2:7: kind: expected \"ClientConfig\", got \"ExporterConfig\"");
        check_error("apiVersion: v1\nkind: ClientConfig\n",
                    FILE_PATH ":1:13: apiVersion: expected \"jumpstarter.dev/v1alpha1\", got \"v1\"");
        check_error(HEAD "token: " TOKEN "\n", FILE_PATH ":1:1: missing required key \"endpoint\"");
        check_error(HEAD "endpoint: 127.0.0.1:8443\n", FILE_PATH ":1:1: missing required key \"token\"");
        check_error(HEAD "endpoint: https://ctl:8443\ntoken: " TOKEN "\n",
                    FILE_PATH ":4:11: endpoint: invalid endpoint \"https://ctl:8443\": use HOST:PORT or "
                              "[IPV6]:PORT, such as \"192.0.2.10:8443\"");
        check_error(HEAD "endpoint: ctl:0\ntoken: " TOKEN "\n",
                    FILE_PATH ":4:11: endpoint: invalid endpoint \"ctl:0\": use HOST:PORT or [IPV6]:PORT, such as "
                              "\"192.0.2.10:8443\"");
        check_error(HEAD "endpoint: 8443\ntoken: " TOKEN "\n",
                    FILE_PATH ":4:11: endpoint: expected a string, got the number 8443 (write \"8443\" to use it "
                              "as text)");
        /* A token that could smuggle a header line in; the message does not repeat it. */
        check_error(HEAD "endpoint: ctl:1\ntoken: \"abc\\r\\nX-Evil: 1\"\n",
                    FILE_PATH ":5:8: token: invalid token: expected up to 8192 characters of base64url and dots");
        check_error(HEAD "endpoint: ctl:1\ntoken:\n",
                    FILE_PATH ":5:1: token: expected a string, got nothing");
        check_error("apiVersion: jumpstarter.dev/v1alpha1\nkind: ClientConfig\nmetadata: {name: Alice}\n",
                    FILE_PATH ":3:18: metadata.name: invalid client name \"Alice\": use [a-z0-9][a-z0-9-]{0,62}");
        check_error(HEAD "endpoint: ctl:1\ntls: {insecure: maybe}\ntoken: " TOKEN "\n",
                    FILE_PATH ":5:17: tls.insecure: expected true or false, got \"maybe\"");
        check_error(HEAD "endpoint: ctl:1\ntls: {ca: \"-----BEGIN CERTIFICATE-----\\nxyz\\n-----END "
                         "CERTIFICATE-----\\n\"}\ntoken: " TOKEN "\n",
                    FILE_PATH ":5:11: tls.ca: not a PEM certificate (or one that does not parse)");
        check_error(HEAD "endpoint: ctl:1\ntls: {verify: no}\ntoken: " TOKEN "\n",
                    FILE_PATH ":5:7: tls.verify: unknown key (known: ca, insecure)");
        check_error(HEAD "endpoint: ctl:1\ntoken: a\ntoken: b\n",
                    FILE_PATH ":6:1: token: duplicate key at lines 5 and 6");
}

TEST(validators) {
        ASSERT_TRUE(bearer_token_is_valid(TOKEN));
        ASSERT_FALSE(bearer_token_is_valid(""));
        ASSERT_FALSE(bearer_token_is_valid("a b"));
        ASSERT_FALSE(bearer_token_is_valid("a\n"));
}

TEST(quote) {
        _cleanup_free_ char *a = yaml_quote_string("plain"), *b = yaml_quote_string("a\"b\\c\nd\te\x01\x7f");

        ASSERT_STREQ(a, "\"plain\"");
        ASSERT_STREQ(b, "\"a\\\"b\\\\c\\nd\\te\\x01\\x7f\"");
}

static int count_entries(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        ASSERT_TRUE(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

TEST(write_round_trip) {
        char dir[] = "/tmp/test-client-config.XXXXXX";
        _cleanup_free_ char *path = NULL, *error = NULL, *sub = NULL;
        _cleanup_(client_config_freep) ClientConfig *back = NULL;
        ClientConfig c = {
                .name = (char *) "bob",
                .endpoint = (char *) "[::1]:8443",
                .ca_pem = (char *) CERT,
                .token = (char *) TOKEN,
        };
        struct stat st;
        FILE *f;

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_TRUE(asprintf(&path, "%s/bob.yaml", dir) > 0);

        /* An old file is replaced, and the new one is private whatever the old one's mode was. */
        ASSERT_TRUE(f = fopen(path, "we"));
        fputs("old\n", f);
        ASSERT_EQ(fclose(f), 0);
        ASSERT_EQ(chmod(path, 0644), 0);

        ASSERT_OK(client_config_write(&c, path));
        ASSERT_EQ(stat(path, &st), 0);
        ASSERT_EQ(st.st_mode & 07777, 0600);
        ASSERT_EQ(count_entries(dir), 1); /* no temporary file left behind */

        ASSERT_OK(client_config_load(path, &back, &error));
        ASSERT_STREQ(back->name, "bob");
        ASSERT_STREQ(back->namespace, "default");
        ASSERT_STREQ(back->endpoint, "[::1]:8443");
        ASSERT_STREQ(back->ca_pem, CERT);
        ASSERT_STREQ(back->token, TOKEN);
        ASSERT_FALSE(back->insecure);

        /* A directory in the way is refused, and nothing is left behind. */
        ASSERT_TRUE(asprintf(&sub, "%s/sub", dir) > 0);
        ASSERT_EQ(mkdir(sub, 0700), 0);
        ASSERT_EQ(client_config_write(&c, sub), -EISDIR);
        ASSERT_EQ(count_entries(dir), 2);
        ASSERT_EQ(rmdir(sub), 0);
        /* A missing directory: an error, no file. */
        free(sub);
        ASSERT_TRUE(asprintf(&sub, "%s/missing/x.yaml", dir) > 0);
        ASSERT_EQ(client_config_write(&c, sub), -ENOENT);

        ASSERT_EQ(unlink(path), 0);
        ASSERT_EQ(rmdir(dir), 0);
}

TEST_MAIN();
