/* Tests for the ControllerConfig parser: defaults, paths, and FILE:LINE:COLUMN errors */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller-config.h"
#include "macro.h"
#include "tests.h"

#define PATH "/etc/jumpstarter/controller.yaml"

static const char minimal[] =
        "apiVersion: jumpstarter.dev/v1alpha1\n"
        "kind: ControllerConfig\n"
        "metadata:\n"
        "  name: lab\n"
        "listen: \"0.0.0.0:8443\"\n"
        "tls:\n"
        "  certificate: controller.pem\n"
        "  key: /secrets/controller.key\n"
        "stateDirectory: /var/lib/jumpstarter/controller\n";

static ControllerConfig *parse_ok(const char *text) {
        _cleanup_free_ char *error = NULL;
        ControllerConfig *c = NULL;
        int r;

        r = controller_config_parse(PATH, text, strlen(text), &c, &error);
        if (r < 0)
                ASSERT_FAIL("parse failed: %s", error ? error : strerror(-r));
        ASSERT_TRUE(c);
        return c;
}

/* The error message of a config that must fail. */
static char *parse_error(const char *text) {
        ControllerConfig *c = NULL;
        char *error = NULL;
        int r;

        r = controller_config_parse(PATH, text, strlen(text), &c, &error);
        ASSERT_TRUE(r < 0);
        ASSERT_TRUE(!c);
        ASSERT_TRUE(error);
        return error;
}

/* minimal with one line replaced (prefix match on the line) or appended. */
static char *variant(const char *line_prefix, const char *replacement) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        const char *p = minimal;
        bool replaced = false;

        ASSERT_TRUE(f);
        while (*p) {
                const char *nl = strchr(p, '\n');
                size_t n = (size_t) (nl - p) + 1;

                if (line_prefix && !replaced && strncmp(p, line_prefix, strlen(line_prefix)) == 0) {
                        fputs(replacement, f);
                        replaced = true;
                } else
                        fwrite(p, 1, n, f);
                p += n;
        }
        if (!replaced)
                fputs(replacement, f);
        ASSERT_EQ(fclose(f), 0);
        return buf;
}

TEST(minimal_defaults) {
        _cleanup_(controller_config_freep) ControllerConfig *c = parse_ok(minimal);

        ASSERT_STREQ(c->path, PATH);
        ASSERT_STREQ(c->name, "lab");
        ASSERT_STREQ(c->listen, "0.0.0.0:8443");
        ASSERT_STREQ(c->endpoint, "127.0.0.1:8443");
        ASSERT_FALSE(c->endpoint_set);
        ASSERT_STREQ(c->certificate, "/etc/jumpstarter/controller.pem");
        ASSERT_STREQ(c->key, "/secrets/controller.key");
        ASSERT_STREQ(c->ca, "/etc/jumpstarter/controller.pem");
        ASSERT_STREQ(c->state_directory, "/var/lib/jumpstarter/controller");
        ASSERT_TRUE(!c->router_listen);
        ASSERT_EQ_U(c->token_lifetime_usec, 365ULL * 24 * 3600 * USEC_PER_SEC);
        ASSERT_EQ_U(c->stream_token_lifetime_usec, 600 * USEC_PER_SEC);
}

TEST(everything) {
        static const char text[] =
                "apiVersion: jumpstarter.dev/v1alpha1\n"
                "kind: ControllerConfig\n"
                "metadata: {name: lab.example}\n"
                "listen: \"[::1]:0\"\n"
                "endpoint: \"ctl.example.com:443\"\n"
                "tls: {certificate: c.pem, key: c.key, ca: ../ca.pem}\n"
                "stateDirectory: state\n"
                "router:\n"
                "  listen: \":8444\"\n"
                "tokens:\n"
                "  lifetime: 30d\n"
                "  streamLifetime: 90s\n";
        _cleanup_(controller_config_freep) ControllerConfig *c = parse_ok(text);

        ASSERT_STREQ(c->name, "lab.example");
        ASSERT_STREQ(c->listen, "[::1]:0");
        ASSERT_STREQ(c->endpoint, "ctl.example.com:443");
        ASSERT_TRUE(c->endpoint_set);
        ASSERT_STREQ(c->ca, "/etc/jumpstarter/../ca.pem");
        ASSERT_STREQ(c->state_directory, "/etc/jumpstarter/state");
        ASSERT_STREQ(c->router_listen, ":8444");
        ASSERT_EQ_U(c->token_lifetime_usec, 30ULL * 24 * 3600 * USEC_PER_SEC);
        ASSERT_EQ_U(c->stream_token_lifetime_usec, 90 * USEC_PER_SEC);
}

TEST(endpoint_defaults) {
        static const struct {
                const char *listen, *endpoint;
        } cases[] = {
                { "listen: \":8443\"\n", "127.0.0.1:8443" },
                { "listen: \"[::]:9000\"\n", "127.0.0.1:9000" },
                { "listen: \"192.0.2.10:8443\"\n", "192.0.2.10:8443" },
                { "listen: \"[::1]:8443\"\n", "[::1]:8443" },
                { "listen: \"127.0.0.1:0\"\n", "127.0.0.1:0" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = variant("listen:", cases[i].listen);
                _cleanup_(controller_config_freep) ControllerConfig *c = parse_ok(text);

                ASSERT_STREQ(c->endpoint, cases[i].endpoint);
        }
}

TEST(errors) {
        static const struct {
                const char *prefix, *line, *error;
        } cases[] = {
                { "kind:", "kind: ExporterConfig\n", PATH ":2:7: kind: expected \"ControllerConfig\", got \"ExporterConfig\"" },
                { "apiVersion:", "apiVersion: v2\n", PATH ":1:13: apiVersion: expected \"jumpstarter.dev/v1alpha1\"" },
                { "listen:", "listen: \"localhost:8443\"\n", PATH ":5:9: listen: invalid listen address \"localhost:8443\"" },
                { "listen:", "listen: \"0.0.0.0:65536\"\n", PATH ":5:9: listen: invalid listen address" },
                { "listen:", "listen: 8443\n", PATH ":5:9: listen: expected a string, got the number 8443" },
                { "listen:", "", PATH ":1:1: missing required key \"listen\"" },
                { "  name:", "  name: Lab_1\n", PATH ":4:9: metadata.name: invalid name \"Lab_1\"" },
                { "  key:", "", PATH ":7:3: tls: missing required key \"key\"" },
                { "stateDirectory:", "stateDirectory:\n", PATH ":9:1: stateDirectory: expected a non-empty string, got nothing" },
                { NULL, "endpoint: \"a b:1\"\n", PATH ":10:11: endpoint: invalid endpoint \"a b:1\"" },
                { NULL, "endpoint: \"host:0\"\n", PATH ":10:11: endpoint: invalid endpoint" },
                { NULL, "tokens:\n  lifetime: forever\n", PATH ":11:13: tokens.lifetime: expected a duration above zero" },
                { NULL, "tokens:\n  streamLifetime: 0s\n", PATH ":11:19: tokens.streamLifetime: expected a duration above zero" },
                { NULL, "tokens:\n  ttl: 5m\n", PATH ":11:3: tokens.ttl: unknown key (known: lifetime, streamLifetime)" },
                { NULL, "router:\n  listen: nowhere\n", PATH ":11:11: router.listen: invalid listen address \"nowhere\"" },
                { NULL, "router: [1]\n", PATH ":10:9: router: expected a mapping with listen, got a sequence" },
                { NULL, "extra: 1\n", PATH ":10:1: extra: unknown key (known: apiVersion, kind, metadata, listen," },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = variant(cases[i].prefix, cases[i].line);
                _cleanup_free_ char *error = parse_error(text);

                if (strncmp(error, cases[i].error, strlen(cases[i].error)) != 0)
                        ASSERT_FAIL("case %zu: \"%s\" starts with \"%s\"", i, error, cases[i].error);
        }
}

TEST(yaml_errors) {
        _cleanup_free_ char *error = parse_error("kind: [\n");

        ASSERT_TRUE(strncmp(error, PATH ":", strlen(PATH ":")) == 0);
}

TEST(listen_address) {
        ASSERT_TRUE(listen_address_is_valid(":0"));
        ASSERT_TRUE(listen_address_is_valid("127.0.0.1:8443"));
        ASSERT_TRUE(listen_address_is_valid("[::]:1"));
        ASSERT_FALSE(listen_address_is_valid("127.0.0.1"));
        ASSERT_FALSE(listen_address_is_valid("[::1]8443"));
        ASSERT_FALSE(listen_address_is_valid("127.0.0.1:08443"));
        ASSERT_FALSE(listen_address_is_valid("127.0.0.1:-1"));
        ASSERT_FALSE(listen_address_is_valid("[127.0.0.1]:80"));
        ASSERT_FALSE(listen_address_is_valid(""));
}

TEST(peek_kind) {
        char path[] = "/tmp/test-controller-config.XXXXXX";
        _cleanup_free_ char *kind = NULL;
        int fd = mkstemp(path);
        FILE *f;

        ASSERT_TRUE(fd >= 0);
        f = fdopen(fd, "w");
        ASSERT_TRUE(f);
        fputs(minimal, f);
        ASSERT_EQ(fclose(f), 0);
        ASSERT_OK(config_file_peek_kind(path, &kind));
        ASSERT_STREQ(kind, "ControllerConfig");
        free(kind);
        kind = NULL;

        f = fopen(path, "w");
        ASSERT_TRUE(f);
        fputs("kind: [broken\n", f);
        ASSERT_EQ(fclose(f), 0);
        ASSERT_OK(config_file_peek_kind(path, &kind));
        ASSERT_TRUE(!kind);

        ASSERT_EQ(unlink(path), 0);
        ASSERT_EQ(config_file_peek_kind(path, &kind), -ENOENT);
}

TEST_MAIN()
