/* Tests for the ExporterConfig parser and the driver type table */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "macro.h"
#include "tests.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(ExporterConfig *, exporter_config_free);

#define FILE_PATH "/abs/local-config.yaml"
/* Five lines: DUTs start at line 6. */
#define HEAD                                     \
        "apiVersion: jumpstarter.dev/v1alpha1\n" \
        "kind: ExporterConfig\n"                 \
        "metadata:\n"                            \
        "  name: desk\n"                         \
        "export:\n"

static ExporterConfig *parse_ok(const char *text) {
        ExporterConfig *c = NULL;
        char *error = NULL;
        int r;

        r = exporter_config_parse(FILE_PATH, text, strlen(text), &c, &error);
        if (r < 0)
                ASSERT_FAIL("config parses (got %d: %s)", r, error ? error : "(no message)");
        ASSERT_TRUE(c);
        ASSERT_TRUE(!error);
        return c;
}

/* Parsing fails with -EINVAL and a message that starts with prefix (and contains "contains"). */
static void check_error(const char *text, const char *prefix, const char *contains) {
        ExporterConfig *c = (ExporterConfig *) 1;
        _cleanup_free_ char *error = NULL;
        int r;

        r = exporter_config_parse(FILE_PATH, text, strlen(text), &c, &error);
        if (r != -EINVAL)
                ASSERT_FAIL("parsing fails with -EINVAL, got %d (%s) for:\n%s", r, strna(error), text);
        /* Nothing half-parsed comes back. */
        ASSERT_TRUE(c == (ExporterConfig *) 1);
        ASSERT_TRUE(error);
        if (strncmp(error, prefix, strlen(prefix)) != 0)
                ASSERT_FAIL("\"%s\" starts with \"%s\"", error, prefix);
        ASSERT_CONTAINS(error, contains);
}

static void check_error_exact(const char *text, const char *expected) {
        check_error(text, expected, "");
        /* check_error() proved the prefix; the lengths make it the whole message. */
        {
                ExporterConfig *c = NULL;
                _cleanup_free_ char *error = NULL;

                (void) exporter_config_parse(FILE_PATH, text, strlen(text), &c, &error);
                ASSERT_STREQ(error, expected);
        }
}

static const char *label(const DutConfig *d, const char *key) {
        for (size_t i = 0; i < d->n_labels; i++)
                if (streq(d->labels[i].key, key))
                        return d->labels[i].value;
        return NULL;
}

TEST(full_example) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = parse_ok(
                "apiVersion: jumpstarter.dev/v1alpha1\n"
                "kind: ExporterConfig\n"
                "metadata:\n"
                "  name: desk\n"
                "  namespace: default\n"
                "  labels:\n"
                "    site: desk\n"
                "export:\n"
                "  dut1:\n"
                "    type: sim\n"
                "    config: { size: 64MiB, boot_time: 300ms }\n"
                "    labels: { vendor: acme, model: widget-v2 }\n"
                "    description: \"the first widget\"\n"
                "    storage:\n"
                "      type: file\n"
                "      config: { path: dut1.img, size: 1GiB }\n");
        const DutConfig *d;
        const DriverConfig *sim, *file;

        ASSERT_STREQ(c->path, FILE_PATH);
        ASSERT_STREQ(c->name, "desk");
        ASSERT_STREQ(c->namespace, "default");
        ASSERT_EQ_U(c->n_labels, 1);
        ASSERT_STREQ(c->labels[0].key, "site");
        ASSERT_STREQ(c->labels[0].value, "desk");
        ASSERT_EQ_U(c->n_duts, 1);

        d = &c->duts[0];
        ASSERT_TRUE(exporter_config_find_dut(c, "dut1") == d);
        ASSERT_TRUE(exporter_config_find_dut(c, "dut2") == NULL);
        ASSERT_STREQ(d->name, "dut1");
        ASSERT_STREQ(d->description, "the first widget");

        /* metadata.labels merged with the DUT's, sorted by key. */
        ASSERT_EQ_U(d->n_labels, 3);
        ASSERT_STREQ(d->labels[0].key, "model");
        ASSERT_STREQ(d->labels[0].value, "widget-v2");
        ASSERT_STREQ(d->labels[1].key, "site");
        ASSERT_STREQ(d->labels[1].value, "desk");
        ASSERT_STREQ(d->labels[2].key, "vendor");
        ASSERT_STREQ(d->labels[2].value, "acme");

        /* The sim board serves power and serial; the file entry overrides its storage. */
        ASSERT_EQ_U(d->n_drivers, 2);
        sim = d->classes[DRIVER_CLASS_POWER];
        file = d->classes[DRIVER_CLASS_STORAGE];
        ASSERT_TRUE(sim && file && sim != file);
        ASSERT_TRUE(d->classes[DRIVER_CLASS_SERIAL] == sim);
        ASSERT_TRUE((d->drivers[0] == sim && d->drivers[1] == file) ||
                    (d->drivers[0] == file && d->drivers[1] == sim));
        ASSERT_STREQ(sim->type->name, "sim");
        ASSERT_EQ_U(sim->line, 10);
        ASSERT_EQ_U(sim->column, 11);
        ASSERT_EQ_U(driver_config_get_u64(sim, "size", 1), UINT64_C(64) << 20);
        ASSERT_EQ_U(driver_config_get_u64(sim, "boot_time", 1), 300 * USEC_PER_MSEC);
        ASSERT_EQ_U(driver_config_get_u64(sim, "cycle_delay", 4711), 4711);
        ASSERT_TRUE(driver_config_is_set(sim, "size"));
        ASSERT_FALSE(driver_config_is_set(sim, "prompt"));
        ASSERT_TRUE(driver_config_get_string(sim, "prompt") == NULL);
        ASSERT_TRUE(driver_config_get_string(sim, "storage") == NULL);
        ASSERT_EQ_U(sim->n_values, 6);

        ASSERT_STREQ(file->type->name, "file");
        ASSERT_STREQ(driver_config_get_string(file, "path"), "/abs/dut1.img");
        ASSERT_EQ_U(driver_config_get_u64(file, "size", 0), UINT64_C(1) << 30);
        ASSERT_EQ_U(file->line, 15);
        ASSERT_EQ_U(file->values[1].line, 16);
}

TEST(several_duts) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = parse_ok(
                HEAD
                "  zeta:\n"
                "    type: sim\n"
                "  alpha:\n"
                "    type: sim\n"
                "    config:\n"
                "      prompt: \"alpha# \"\n"
                "      log_size: 4096\n"
                "      cycle_delay: 1.5\n"
                "  0-board:\n"
                "    storage: { type: file, config: { path: /var/lib/img/b.img } }\n");

        ASSERT_EQ_U(c->n_duts, 3);
        /* File order, not sorted. */
        ASSERT_STREQ(c->duts[0].name, "zeta");
        ASSERT_STREQ(c->duts[1].name, "alpha");
        ASSERT_STREQ(c->duts[2].name, "0-board");
        ASSERT_TRUE(c->namespace == NULL);
        ASSERT_EQ_U(c->n_labels, 0);
        ASSERT_EQ_U(c->duts[0].n_labels, 0);
        ASSERT_TRUE(c->duts[0].description == NULL);

        for (unsigned k = 0; k < 2; k++) {
                const DutConfig *d = &c->duts[k];

                ASSERT_EQ_U(d->n_drivers, 1);
                for (DriverClass cl = 0; cl < _DRIVER_CLASS_MAX; cl++)
                        ASSERT_TRUE(d->classes[cl] == d->drivers[0]);
        }
        ASSERT_STREQ(driver_config_get_string(c->duts[1].drivers[0], "prompt"), "alpha# ");
        ASSERT_EQ_U(driver_config_get_u64(c->duts[1].drivers[0], "log_size", 0), 4096);
        ASSERT_EQ_U(driver_config_get_u64(c->duts[1].drivers[0], "cycle_delay", 0), 1500 * USEC_PER_MSEC);

        /* Storage only. */
        ASSERT_EQ_U(c->duts[2].n_drivers, 1);
        ASSERT_TRUE(c->duts[2].classes[DRIVER_CLASS_POWER] == NULL);
        ASSERT_TRUE(c->duts[2].classes[DRIVER_CLASS_SERIAL] == NULL);
        ASSERT_TRUE(c->duts[2].classes[DRIVER_CLASS_STORAGE] == c->duts[2].drivers[0]);
        ASSERT_STREQ(driver_config_get_string(c->duts[2].drivers[0], "path"), "/var/lib/img/b.img");
        ASSERT_TRUE(exporter_config_find_dut(c, "alpha") == &c->duts[1]);
}

TEST(label_merging) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = parse_ok(
                "apiVersion: jumpstarter.dev/v1alpha1\n"
                "kind: ExporterConfig\n"
                "metadata:\n"
                "  name: lab.example.com\n"
                "  labels:\n"
                "    site: desk\n"
                "    rack: r1\n"
                "    jumpstarter.dev/owner: Team_A\n"
                "    empty: \"\"\n"
                "    none:\n"
                "export:\n"
                "  a:\n"
                "    type: sim\n"
                "    labels: { site: lab, board: rpi4, zz: \"1\" }\n"
                "  b:\n"
                "    type: sim\n");
        const DutConfig *a = &c->duts[0], *b = &c->duts[1];

        /* Exporter labels sorted too. */
        ASSERT_EQ_U(c->n_labels, 5);
        ASSERT_STREQ(c->labels[0].key, "empty");
        ASSERT_STREQ(c->labels[1].key, "jumpstarter.dev/owner");
        ASSERT_STREQ(c->labels[2].key, "none");
        ASSERT_STREQ(c->labels[2].value, "");
        ASSERT_STREQ(c->labels[3].key, "rack");
        ASSERT_STREQ(c->labels[4].key, "site");

        ASSERT_EQ_U(a->n_labels, 7);
        ASSERT_STREQ(label(a, "site"), "lab");
        ASSERT_STREQ(label(a, "rack"), "r1");
        ASSERT_STREQ(label(a, "board"), "rpi4");
        ASSERT_STREQ(label(a, "zz"), "1");
        for (size_t i = 1; i < a->n_labels; i++)
                ASSERT_TRUE(strcmp(a->labels[i - 1].key, a->labels[i].key) < 0);
        ASSERT_STREQ(a->labels[0].key, "board");

        /* b only inherits. */
        ASSERT_EQ_U(b->n_labels, 5);
        ASSERT_STREQ(label(b, "site"), "desk");
        ASSERT_STREQ(label(b, "jumpstarter.dev/owner"), "Team_A");
}

TEST(path_resolution) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = NULL;
        char *error = NULL;
        static const char text[] = HEAD
                "  a:\n"
                "    storage: { type: file, config: { path: ./images//a.img } }\n"
                "  b:\n"
                "    storage: { type: file, config: { path: ../shared/b.img } }\n"
                "  c:\n"
                "    storage: { type: file, config: { path: /srv/c.img } }\n"
                "  d:\n"
                "    type: sim\n"
                "    config: { storage: d.img }\n";

        ASSERT_OK(exporter_config_parse("/etc/jumpstarter/./exporters/lab.yaml", text, strlen(text), &c, &error));
        ASSERT_STREQ(c->path, "/etc/jumpstarter/exporters/lab.yaml");
        ASSERT_STREQ(driver_config_get_string(c->duts[0].drivers[0], "path"), "/etc/jumpstarter/exporters/images/a.img");
        ASSERT_STREQ(driver_config_get_string(c->duts[1].drivers[0], "path"), "/etc/jumpstarter/exporters/../shared/b.img");
        ASSERT_STREQ(driver_config_get_string(c->duts[2].drivers[0], "path"), "/srv/c.img");
        ASSERT_STREQ(driver_config_get_string(c->duts[3].drivers[0], "storage"), "/etc/jumpstarter/exporters/d.img");
        c = exporter_config_free(c);

        /* A config at the root of the file system. */
        ASSERT_OK(exporter_config_parse("/lab.yaml", text, strlen(text), &c, &error));
        ASSERT_STREQ(driver_config_get_string(c->duts[0].drivers[0], "path"), "/images/a.img");
}

TEST(per_class_override) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = parse_ok(
                HEAD
                "  dut1:\n"
                "    type: sim\n"
                "    config: { size: 1MiB }\n"
                "    power: { type: sim, config: { cycle_delay: 2s } }\n"
                "    storage: { type: file, config: { path: x.img } }\n");
        const DutConfig *d = &c->duts[0];
        const DriverConfig *board = d->classes[DRIVER_CLASS_SERIAL];

        /* Three distinct drivers, each listed once. */
        ASSERT_EQ_U(d->n_drivers, 3);
        ASSERT_TRUE(board && d->classes[DRIVER_CLASS_POWER] && d->classes[DRIVER_CLASS_STORAGE]);
        ASSERT_TRUE(board != d->classes[DRIVER_CLASS_POWER]);
        ASSERT_TRUE(board != d->classes[DRIVER_CLASS_STORAGE]);
        ASSERT_TRUE(d->classes[DRIVER_CLASS_POWER] != d->classes[DRIVER_CLASS_STORAGE]);
        for (DriverClass k = 0; k < _DRIVER_CLASS_MAX; k++) {
                unsigned found = 0;

                for (size_t i = 0; i < d->n_drivers; i++)
                        found += d->drivers[i] == d->classes[k];
                ASSERT_EQ_U(found, 1);
        }
        ASSERT_EQ_U(driver_config_get_u64(board, "size", 0), 1024 * 1024);
        ASSERT_EQ_U(driver_config_get_u64(d->classes[DRIVER_CLASS_POWER], "cycle_delay", 0), 2 * USEC_PER_SEC);
        ASSERT_STREQ(driver_config_get_string(d->classes[DRIVER_CLASS_STORAGE], "path"), "/abs/x.img");
}

TEST(empty_optional_values) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = parse_ok(
                HEAD
                "  dut1:\n"
                "    type: sim\n"
                "    config:\n"
                "    labels:\n"
                "    description:\n");

        ASSERT_TRUE(c->duts[0].description == NULL);
        ASSERT_EQ_U(c->duts[0].n_labels, 0);
        ASSERT_FALSE(driver_config_is_set(c->duts[0].drivers[0], "size"));
}

TEST(load_file) {
        char dir[] = "/tmp/test-config-XXXXXX", cwd[4096];
        _cleanup_free_ char *file = NULL, *expect = NULL, *error = NULL;
        _cleanup_(exporter_config_freep) ExporterConfig *c = NULL;
        static const char text[] = HEAD "  dut1:\n    type: sim\n    config: { storage: dut1.img }\n";
        FILE *f;

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_TRUE(asprintf(&file, "%s/local-config.yaml", dir) > 0);
        f = fopen(file, "we");
        ASSERT_TRUE(f);
        fputs(text, f);
        ASSERT_EQ(fclose(f), 0);

        /* A relative path is made absolute against the working directory. */
        ASSERT_TRUE(getcwd(cwd, sizeof(cwd)));
        ASSERT_EQ(chdir(dir), 0);
        ASSERT_OK(exporter_config_load("local-config.yaml", &c, &error));
        ASSERT_EQ(chdir(cwd), 0);
        ASSERT_STREQ(c->path, file);
        ASSERT_TRUE(asprintf(&expect, "%s/dut1.img", dir) > 0);
        ASSERT_STREQ(driver_config_get_string(c->duts[0].drivers[0], "storage"), expect);

        ASSERT_EQ(unlink(file), 0);
        ASSERT_EQ(rmdir(dir), 0);
}

TEST(load_errors) {
        ExporterConfig *c = (ExporterConfig *) 1;
        char *error = NULL;

        ASSERT_EQ(exporter_config_load("/nonexistent/x.yaml", &c, &error), -ENOENT);
        ASSERT_STREQ(error, "/nonexistent/x.yaml: cannot read: No such file or directory");
        ASSERT_TRUE(c == (ExporterConfig *) 1);
        free(error);

        ASSERT_EQ(exporter_config_load("/", &c, &error), -EISDIR);
        ASSERT_STREQ(error, "/: cannot read: Is a directory");
        free(error);

        /* Content errors name the file as given, made absolute. */
        ASSERT_EQ(exporter_config_load("/dev/null", &c, &error), -EINVAL);
        ASSERT_STREQ(error, "/dev/null:1:1: no YAML document (the input is empty)");
        free(error);
        ASSERT_TRUE(c == (ExporterConfig *) 1);
}

TEST(too_large) {
        size_t size = 1024 * 1024 + 1;
        _cleanup_free_ char *big = malloc(size), *error = NULL;
        ExporterConfig *c = NULL;

        ASSERT_TRUE(big);
        memset(big, '#', size);
        ASSERT_EQ(exporter_config_parse(FILE_PATH, big, size, &c, &error), -EFBIG);
        ASSERT_STREQ(error, FILE_PATH ": larger than 1 MiB, refusing to parse it");
        ASSERT_TRUE(c == NULL);
        free(error);

        /* Exactly 1 MiB is read (and then found empty of documents). */
        error = NULL;
        ASSERT_EQ(exporter_config_parse(FILE_PATH, big, size - 1, &c, &error), -EINVAL);
        ASSERT_CONTAINS(error, "no YAML document");
}

TEST(errors_document) {
        check_error("a: [\n", FILE_PATH ":2:1: a: did not find expected node content", "while parsing a flow node");
        check_error("a: &x 1\n", FILE_PATH ":1:4: a: anchors and aliases are not supported", "");
        check_error(HEAD "  dut1: {type: sim}\n---\n", FILE_PATH ":7:1: more than one YAML document", "");
        check_error_exact("- a\n", FILE_PATH ":1:1: expected a mapping with apiVersion, kind, metadata and export, got a sequence");
        check_error_exact("", FILE_PATH ":1:1: no YAML document (the input is empty)");
}

TEST(errors_top_level) {
        check_error_exact("kind: ExporterConfig\n", FILE_PATH ":1:1: missing required key \"apiVersion\"");
        check_error_exact("apiVersion: jumpstarter.dev/v1\n",
                          FILE_PATH ":1:13: apiVersion: expected \"jumpstarter.dev/v1alpha1\", got \"jumpstarter.dev/v1\"");
        check_error_exact("apiVersion: jumpstarter.dev/v1alpha1\nkind: Exporter\n",
                          FILE_PATH ":2:7: kind: expected \"ExporterConfig\", got \"Exporter\"");
        check_error_exact("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: x}\n",
                          FILE_PATH ":1:1: missing required key \"export\"");
        check_error_exact("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nspec: {}\n",
                          FILE_PATH ":3:1: spec: unknown key (known: apiVersion, kind, metadata, export, endpoint, tls, token, streams, "
                          "metrics)");
        check_error_exact("apiVersion: [1]\n", FILE_PATH ":1:13: apiVersion: expected a string, got a sequence");
}

TEST(errors_metadata) {
        static const char prefix[] = "apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\n";

        check_error_exact("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata:\n  namespace: x\n",
                          FILE_PATH ":4:3: metadata: missing required key \"name\"");
        check_error_exact("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata: 5\n",
                          FILE_PATH ":3:11: metadata: expected a mapping, got \"5\"");
        check_error_exact("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata:\n  name: 123\n",
                          FILE_PATH ":4:9: metadata.name: expected a string, got the number 123 (write \"123\" to use it as text)");
        check_error_exact("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata:\n  name:\n",
                          FILE_PATH ":4:3: metadata.name: expected a string, got nothing");
        check_error("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata:\n  name: Desk\n",
                    FILE_PATH ":4:9: metadata.name: invalid name \"Desk\"", "");
        check_error("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata:\n  name: desk-\n",
                    FILE_PATH ":4:9: metadata.name: invalid name \"desk-\"", "");
        check_error("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata:\n  name: d\n  namespace: A\n",
                    FILE_PATH ":5:14: metadata.namespace: invalid namespace \"A\"", "");
        check_error("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata:\n  name: d\n  uid: 1\n",
                    FILE_PATH ":5:3: metadata.uid: unknown key (known: name, namespace, labels)", "");
        (void) prefix;
}

TEST(errors_labels) {
#define META "apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata:\n  name: d\n  labels:\n"
        check_error(META "    -bad: x\n", FILE_PATH ":6:5: metadata.labels.-bad: invalid label key \"-bad\"", "");
        check_error(META "    Bad.Prefix/x: y\n", FILE_PATH ":6:5: metadata.labels.Bad.Prefix/x: invalid label key", "");
        check_error(META "    a/b/c: y\n", FILE_PATH ":6:5: metadata.labels.a/b/c: invalid label key", "");
        check_error(META "    a: b c\n", FILE_PATH ":6:8: metadata.labels.a: invalid label value \"b c\"", "");
        check_error(META "    a: x-\n", FILE_PATH ":6:8: metadata.labels.a: invalid label value \"x-\"", "");
        check_error(META "    a: 1\n", FILE_PATH ":6:8: metadata.labels.a: expected a string, got the number 1", "");
        check_error(META "    a: true\n", FILE_PATH ":6:8: metadata.labels.a: expected a string, got the boolean true", "");
        check_error(META "    a: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                    FILE_PATH ":6:8: metadata.labels.a: invalid label value", "");
        check_error(META "    - a\n", FILE_PATH ":6:5: metadata.labels: expected a mapping of label keys to values, got a sequence", "");
        check_error(HEAD "  dut1:\n    type: sim\n    labels: {\"x y\": z}\n",
                    FILE_PATH ":8:14: export.dut1.labels.x y: invalid label key \"x y\"", "");
#undef META
}

TEST(errors_export) {
        check_error_exact(HEAD "  dut1:\n    type: sim\n    colour: red\n",
                          FILE_PATH ":8:5: export.dut1.colour: unknown key (known: type, config, labels, description, power, serial, storage, gpio, hooks, health)");
        check_error_exact(HEAD "  Dut_1:\n    type: sim\n",
                          FILE_PATH ":6:3: export.Dut_1: invalid DUT name \"Dut_1\": use [a-z0-9][a-z0-9-]{0,62}");
        check_error(HEAD "  -dut:\n    type: sim\n", FILE_PATH ":6:3: export.-dut: invalid DUT name \"-dut\"", "");
        check_error(HEAD "  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:\n    type: sim\n",
                    FILE_PATH ":6:3: export.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: invalid DUT name", "");
        {
                /* The list names every known type, in table order. */
                char expected[2048] = FILE_PATH ":7:11: export.dut1.type: unknown driver type \"simm\" (known: ";

                for (const DriverType *t = driver_type_next(NULL); t; t = driver_type_next(t)) {
                        strcat(expected, t->name);
                        strcat(expected, driver_type_next(t) ? ", " : ")");
                }
                ASSERT_CONTAINS(expected, "sim, ");
                ASSERT_CONTAINS(expected, "file");
                check_error_exact(HEAD "  dut1:\n    type: simm\n", expected);
        }
        check_error_exact(HEAD "  dut1:\n    type: sim\n  dut2:\n    type: sim\n  dut1:\n    type: file\n",
                          FILE_PATH ":10:3: export.dut1: duplicate key at lines 6 and 10");
        check_error_exact(HEAD "  {}\n", FILE_PATH ":6:3: export: no DUTs: describe at least one");
        check_error_exact(HEAD, FILE_PATH ":5:1: export: expected a mapping of DUT names to DUTs, got nothing");
        check_error_exact(HEAD "  - dut1\n", FILE_PATH ":6:3: export: expected a mapping of DUT names to DUTs, got a sequence");
        check_error_exact(HEAD "  dut1:\n",
                          FILE_PATH ":6:3: export.dut1: no drivers: give \"type\" or at least one of power, serial, storage");
        check_error_exact(HEAD "  dut1:\n    description: x\n",
                          FILE_PATH ":7:5: export.dut1: no drivers: give \"type\" or at least one of power, serial, storage");
        check_error_exact(HEAD "  dut1: sim\n", FILE_PATH ":6:9: export.dut1: expected a mapping describing the DUT, got \"sim\"");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    description: [x]\n",
                          FILE_PATH ":8:18: export.dut1.description: expected a string, got a sequence");
        check_error_exact(HEAD "  dut1:\n    config: { size: 1M }\n    power: { type: sim }\n",
                          FILE_PATH ":7:13: export.dut1.config: driver options given without a driver \"type\"");
}

TEST(errors_drivers) {
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config:\n      size: abc\n",
                          FILE_PATH ":9:13: export.dut1.config.size: expected a size such as 64MiB, got \"abc\"");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config:\n      size: -1\n",
                          FILE_PATH ":9:13: export.dut1.config.size: expected a size such as 64MiB, got \"-1\"");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config:\n      size: 99999999999T\n",
                          FILE_PATH ":9:13: export.dut1.config.size: \"99999999999T\" is too large");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config:\n      boot_time: soon\n",
                          FILE_PATH ":9:18: export.dut1.config.boot_time: expected a duration such as 300ms, got \"soon\"");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config:\n      boot_time: {}\n",
                          FILE_PATH ":9:18: export.dut1.config.boot_time: expected a duration such as 300ms, got a mapping");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config:\n      colour: red\n",
                          FILE_PATH ":9:7: export.dut1.config.colour: unknown option for driver type \"sim\" "
                          "(known: storage, size, boot_time, cycle_delay, log_size, prompt)");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config: [size]\n",
                          FILE_PATH ":8:13: export.dut1.config: expected a mapping of driver options, got a sequence");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config: { prompt: 5 }\n",
                          FILE_PATH ":8:23: export.dut1.config.prompt: expected a string, got the number 5 (write \"5\" to use it as text)");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config: { storage: \"\" }\n",
                          FILE_PATH ":8:24: export.dut1.config.storage: expected a file name, got \"\"");
        check_error_exact(HEAD "  dut1:\n    power:\n      type: file\n",
                          FILE_PATH ":8:13: export.dut1.power.type: driver type \"file\" cannot serve power (it serves: storage)");
        check_error_exact(HEAD "  dut1:\n    storage:\n      type: file\n",
                          FILE_PATH ":8:7: export.dut1.storage: missing required key \"config\" (driver type \"file\" needs option \"path\")");
        check_error_exact(HEAD "  dut1:\n    storage:\n      type: file\n      config: { size: 1G }\n",
                          FILE_PATH ":9:15: export.dut1.storage.config: missing required key \"path\"");
        check_error_exact(HEAD "  dut1:\n    storage:\n      config: { path: x }\n",
                          FILE_PATH ":8:7: export.dut1.storage: missing required key \"type\"");
        check_error_exact(HEAD "  dut1:\n    storage:\n      type: file\n      config: { path: x }\n      extra: 1\n",
                          FILE_PATH ":10:7: export.dut1.storage.extra: unknown key (known: type, config)");
        check_error_exact(HEAD "  dut1:\n    serial:\n",
                          FILE_PATH ":7:5: export.dut1.serial: expected a mapping with type and config, got nothing");
        check_error_exact(HEAD "  dut1:\n    type: file\n    config: { path: a }\n    storage: { type: file, config: { path: b } }\n",
                          FILE_PATH ":7:11: export.dut1.type: driver type \"file\" would serve nothing: its classes (storage) all have their own entries");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config: { size: 1M, size: 2M }\n",
                          FILE_PATH ":8:25: export.dut1.config.size: duplicate key at lines 8 and 8");
}

/* A serial entry of dut1 whose config is the flow mapping {path: /dev/ttyUSB0, EXTRA}: line 9, and
 * the value of EXTRA's first option starts in column 39 + its name's length. */
#define SERIAL(extra) HEAD "  dut1:\n    serial:\n      type: tty\n      config: { path: /dev/ttyUSB0, " extra " }\n"

TEST(errors_allowed_values) {
        /* An enumeration: the message names every value allowed, in table order. */
        check_error_exact(SERIAL("parity: mark"),
                          FILE_PATH ":9:45: export.dut1.serial.config.parity: \"mark\" is not one of none, even, odd");
        check_error_exact(SERIAL("flow: hw"),
                          FILE_PATH ":9:43: export.dut1.serial.config.flow: \"hw\" is not one of none, rts-cts, xon-xoff");
        /* Exact spelling: no case folding, no trimming of a quoted value. */
        check_error(SERIAL("parity: None"), FILE_PATH ":9:45: export.dut1.serial.config.parity: \"None\" is not one of", "");
        check_error(SERIAL("parity: \"\""), FILE_PATH ":9:45: export.dut1.serial.config.parity: \"\" is not one of", "");
        /* A range. */
        check_error_exact(SERIAL("databits: 9"),
                          FILE_PATH ":9:47: export.dut1.serial.config.databits: 9 is out of range 5..8");
        check_error_exact(SERIAL("databits: 4"),
                          FILE_PATH ":9:47: export.dut1.serial.config.databits: 4 is out of range 5..8");
        /* Numbers that are an enumeration: compared as numbers. */
        check_error_exact(SERIAL("stopbits: 3"),
                          FILE_PATH ":9:47: export.dut1.serial.config.stopbits: 3 is not one of 1, 2");
        check_error(SERIAL("baudrate: 12345"),
                    FILE_PATH ":9:47: export.dut1.serial.config.baudrate: 12345 is not one of 50, 75, 110, ",
                    ", 115200, 230400, ");
        check_error_exact(SERIAL("log_size: 0"),
                          FILE_PATH ":9:47: export.dut1.serial.config.log_size: 0 is out of range 1..1GiB");
        check_error_exact(SERIAL("log_size: 2GiB"),
                          FILE_PATH ":9:47: export.dut1.serial.config.log_size: 2GiB is out of range 1..1GiB");

        /* ser2net: a protocol and a TCP port. */
        check_error_exact(HEAD "  dut1:\n    serial: { type: ser2net, config: { host: h, port: 0 } }\n",
                          FILE_PATH ":7:55: export.dut1.serial.config.port: 0 is out of range 1..65535");
        check_error_exact(HEAD "  dut1:\n    serial: { type: ser2net, config: { host: h, port: 65536 } }\n",
                          FILE_PATH ":7:55: export.dut1.serial.config.port: 65536 is out of range 1..65535");
        check_error_exact(HEAD "  dut1:\n    serial: { type: ser2net, config: { host: h, port: 1, protocol: ssh } }\n",
                          FILE_PATH ":7:68: export.dut1.serial.config.protocol: \"ssh\" is not one of raw, telnet, rfc2217");

        /* http: the preset, and a bounded number. */
        check_error_exact(HEAD "  dut1:\n    power: { type: http, config: { preset: sonoff, url: \"http://x\" } }\n",
                          FILE_PATH ":7:44: export.dut1.power.config.preset: \"sonoff\" is not one of pdudaemon, "
                          "shelly, tasmota, template");
        check_error_exact(HEAD "  dut1:\n    power: { type: http, config: { preset: shelly, url: \"http://x\", retries: 11 } }\n",
                          FILE_PATH ":7:78: export.dut1.power.config.retries: 11 is out of range 0..10");

        /* Sizes and durations: the value as written, the bounds in the config's own units. */
        check_error_exact(HEAD "  dut1:\n    type: qemu\n    config: { kernel: k, memory: 8MiB }\n",
                          FILE_PATH ":8:34: export.dut1.config.memory: 8MiB is out of range 16MiB..1TiB");
        check_error_exact(HEAD "  dut1:\n    type: qemu\n    config: { kernel: k, memory: 2T }\n",
                          FILE_PATH ":8:34: export.dut1.config.memory: 2T is out of range 16MiB..1TiB");
        check_error_exact(HEAD "  dut1:\n    type: qemu\n    config: { kernel: k, cpus: 65 }\n",
                          FILE_PATH ":8:32: export.dut1.config.cpus: 65 is out of range 1..64");
        check_error_exact(HEAD "  dut1:\n    type: qemu\n    config: { kernel: k, stop_timeout: 0 }\n",
                          FILE_PATH ":8:40: export.dut1.config.stop_timeout: 0 is less than the minimum 1us");
        check_error_exact(HEAD "  dut1:\n    type: sim\n    config: { log_size: 0 }\n",
                          FILE_PATH ":8:25: export.dut1.config.log_size: 0 is out of range 1..1GiB");

        /* The edges are allowed. */
        exporter_config_free(parse_ok(SERIAL("databits: 5, stopbits: 2, parity: odd, flow: xon-xoff, "
                                             "baudrate: \"4000000\", log_size: 1GiB")));
        exporter_config_free(parse_ok(HEAD "  dut1:\n    type: qemu\n"
                                      "    config: { kernel: k, memory: 1TiB, cpus: 64, stop_timeout: 1us }\n"));
        exporter_config_free(parse_ok(HEAD "  dut1:\n    type: qemu\n    config: { kernel: k, memory: 16MiB, cpus: 1 }\n"));
}

TEST(errors_validate) {
        /* A missing option: at the config mapping, since there is no value to point at. */
        check_error_exact(HEAD "  dut1:\n    power:\n      type: http\n      config: { preset: template, url: \"http://x\", "
                          "on_url: \"http://x/on\" }\n",
                          FILE_PATH ":9:15: export.dut1.power.config: preset template needs option \"off_url\"");
        check_error_exact(HEAD "  dut1:\n    power:\n      type: http\n      config:\n        preset: pdudaemon\n"
                          "        url: http://pdu:16421\n        port: 3\n",
                          FILE_PATH ":10:9: export.dut1.power.config: preset pdudaemon needs option \"hostname\"");
        /* A wrong value: at the value. */
        check_error_exact(HEAD "  dut1:\n    power:\n      type: http\n      config:\n        preset: shelly\n"
                          "        url: ftp://plug\n",
                          FILE_PATH ":11:14: export.dut1.power.config.url: expected an http:// or https:// URL");

        /* serialport: one way to name the port. */
        check_error_exact(HEAD "  dut1:\n    serial: { type: serialport }\n",
                          FILE_PATH ":7:21: export.dut1.serial.type: no port: set path, or usb_serial and/or usb_vid_pid");
        check_error_exact(HEAD "  dut1:\n    serial: { type: serialport, config: { baudrate: 9600 } }\n",
                          FILE_PATH ":7:41: export.dut1.serial.config: no port: set path, or usb_serial and/or usb_vid_pid");
        check_error_exact(HEAD "  dut1:\n    serial: { type: serialport, config: { usb_serial: A1, path: /dev/ttyUSB0 } }\n",
                          FILE_PATH ":7:65: export.dut1.serial.config.path: give either path, or usb_serial and/or "
                          "usb_vid_pid, not both");
        check_error_exact(HEAD "  dut1:\n    serial: { type: serialport, config: { usb_vid_pid: \"0403-6001\" } }\n",
                          FILE_PATH ":7:56: export.dut1.serial.config.usb_vid_pid: expected VID:PID in hex such as 0403:6001");

        /* qemu: combinations. */
        check_error_exact(HEAD "  dut1:\n    type: qemu\n",
                          FILE_PATH ":7:11: export.dut1.type: nothing to boot: set kernel or disk");
        check_error_exact(HEAD "  dut1:\n    type: qemu\n    config:\n      initrd: i.img\n      disk: d.img\n",
                          FILE_PATH ":9:15: export.dut1.config.initrd: needs kernel: an initrd is loaded with a directly "
                          "booted kernel");
        check_error_exact(HEAD "  dut1:\n    type: qemu\n    config: { kernel: k, disk_size: 1G }\n",
                          FILE_PATH ":8:37: export.dut1.config.disk_size: needs disk: it is the size of the disk image");
        check_error_exact(HEAD "  dut1:\n    type: qemu\n    config: { kernel: k, binary: \"\" }\n",
                          FILE_PATH ":8:34: export.dut1.config.binary: expected a program name or an absolute path, got \"\"");
        check_error_exact(HEAD "  dut1:\n    type: qemu\n    config: { kernel: k, memory: 16385KiB }\n",
                          FILE_PATH ":8:34: export.dut1.config.memory: expected a whole number of MiB, got 16778240 bytes");

        /* What the hooks accept. */
        exporter_config_free(parse_ok(HEAD "  dut1:\n    serial: { type: serialport, config: { usb_serial: A1, "
                                      "usb_vid_pid: \"0403:6001\" } }\n"
                                      "    power: { type: http, config: { preset: pdudaemon, url: \"https://pdu\", "
                                      "hostname: lab, port: 1 } }\n"));
        exporter_config_free(parse_ok(HEAD "  dut1:\n    type: qemu\n    config: { disk: d.img, disk_size: 1G }\n"));
}

TEST(names) {
        ASSERT_TRUE(dut_name_is_valid("dut1"));
        ASSERT_TRUE(dut_name_is_valid("0"));
        ASSERT_TRUE(dut_name_is_valid("a-b-"));
        ASSERT_TRUE(dut_name_is_valid("a23456789012345678901234567890123456789012345678901234567890123"));
        ASSERT_FALSE(dut_name_is_valid("a234567890123456789012345678901234567890123456789012345678901234"));
        ASSERT_FALSE(dut_name_is_valid(""));
        ASSERT_FALSE(dut_name_is_valid(NULL));
        ASSERT_FALSE(dut_name_is_valid("-a"));
        ASSERT_FALSE(dut_name_is_valid("Dut"));
        ASSERT_FALSE(dut_name_is_valid("a_b"));
        ASSERT_FALSE(dut_name_is_valid("a.b"));
        ASSERT_FALSE(dut_name_is_valid("a/b"));
        ASSERT_FALSE(dut_name_is_valid(".."));
}

/* What the parser relies on: allowed values only where it checks them, each one well-formed,
 * distinct and inside the range; a range only on numbers, and not empty. */
static void check_option_spec(const DriverType *t, const OptionSpec *o) {
        bool numeric = o->type == OPTION_UINT || o->type == OPTION_SIZE || o->type == OPTION_DURATION;

        if (o->min > 0 || o->max > 0) {
                if (!numeric)
                        ASSERT_FAIL("%s.%s: a range on a non-numeric option", t->name, o->name);
                if (o->max > 0 && o->min > o->max)
                        ASSERT_FAIL("%s.%s: empty range %" PRIu64 "..%" PRIu64, t->name, o->name, o->min, o->max);
        }
        if (!o->values)
                return;
        if (o->type != OPTION_STRING && o->type != OPTION_UINT)
                ASSERT_FAIL("%s.%s: allowed values on an option that is neither string nor uint", t->name, o->name);
        ASSERT_TRUE(o->values[0]);
        for (const char *const *a = o->values; *a; a++) {
                ASSERT_TRUE(**a);
                for (const char *const *b = o->values; b != a; b++)
                        if (streq(*a, *b))
                                ASSERT_FAIL("%s.%s: \"%s\" allowed twice", t->name, o->name, *a);
                if (o->type == OPTION_UINT) {
                        char *end = NULL;
                        unsigned long long u;

                        errno = 0;
                        u = strtoull(*a, &end, 10);
                        if (errno != 0 || *end || (*a)[0] < '0' || (*a)[0] > '9')
                                ASSERT_FAIL("%s.%s: \"%s\" is not a decimal number", t->name, o->name, *a);
                        if (u < o->min || (o->max > 0 && u > o->max))
                                ASSERT_FAIL("%s.%s: %s is outside its own range", t->name, o->name, *a);
                } else
                        /* The help is what docs and "jmp" show: it must not leave a value out. */
                        ASSERT_CONTAINS(o->help, *a);
        }
}

TEST(driver_tables) {
        const DriverType *sim = driver_type_find("sim"), *file = driver_type_find("file");

        ASSERT_STREQ(driver_class_to_string(DRIVER_CLASS_POWER), "power");
        ASSERT_STREQ(driver_class_to_string(DRIVER_CLASS_STORAGE), "storage");
        ASSERT_TRUE(driver_class_to_string(_DRIVER_CLASS_MAX) == NULL);
        ASSERT_TRUE(driver_class_to_string(_DRIVER_CLASS_INVALID) == NULL);
        ASSERT_EQ(driver_class_from_string("serial"), DRIVER_CLASS_SERIAL);
        ASSERT_EQ(driver_class_from_string("gpio"), _DRIVER_CLASS_INVALID);
        ASSERT_EQ(driver_class_from_string(NULL), _DRIVER_CLASS_INVALID);

        ASSERT_TRUE(sim && file);
        ASSERT_TRUE(driver_type_find("simm") == NULL);
        ASSERT_TRUE(driver_type_find(NULL) == NULL);
        ASSERT_EQ_U(sim->classes, 7);
        ASSERT_EQ_U(file->classes, 1U << DRIVER_CLASS_STORAGE);
        ASSERT_TRUE(file->options[0].required);
        ASSERT_EQ(file->options[0].type, OPTION_PATH);

        /* Every table entry is complete: a name, help, classes, and named, helped options. */
        for (const DriverType *t = driver_type_next(NULL); t; t = driver_type_next(t)) {
                ASSERT_TRUE(t->name && t->help && t->classes);
                ASSERT_TRUE(driver_type_find(t->name) == t);
                for (const OptionSpec *o = t->options; o->name; o++) {
                        ASSERT_TRUE(o->help && o->type >= 0 && o->type < _OPTION_TYPE_MAX);
                        for (const OptionSpec *other = t->options; other != o; other++)
                                ASSERT_TRUE(!streq(other->name, o->name));
                        check_option_spec(t, o);
                }
        }
}

TEST(bool_and_uint_accessors) {
        /* No driver type has BOOL or UINT options yet; exercise them with a hand-made config. */
        static const OptionSpec specs[] = {
                { "enabled", OPTION_BOOL, false, "x" },
                { "count", OPTION_UINT, false, "y" },
                {},
        };
        static const DriverType t = { .name = "t", .classes = 1, .options = specs, .help = "z" };
        OptionValue values[2] = {
                { .spec = &specs[0], .set = true, .boolean = false },
                { .spec = &specs[1] },
        };
        DriverConfig c = { .type = &t, .values = values, .n_values = 2 };

        ASSERT_FALSE(driver_config_get_bool(&c, "enabled", true));
        ASSERT_EQ_U(driver_config_get_u64(&c, "count", 9), 9);
        values[0].set = false;
        ASSERT_TRUE(driver_config_get_bool(&c, "enabled", true));
        values[1] = (OptionValue) { .spec = &specs[1], .set = true, .number = 3 };
        ASSERT_EQ_U(driver_config_get_u64(&c, "count", 9), 3);
        ASSERT_TRUE(driver_config_is_set(&c, "count"));
}

TEST(argv_option) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = NULL;
        const DriverConfig *dc;
        char *const *on, *const *off;

        c = parse_ok(HEAD
                     "  dut1:\n"
                     "    power:\n"
                     "      type: command\n"
                     "      config:\n"
                     "        on: [/usr/bin/relay, \"--port=1\", on]\n"
                     "        off:\n"
                     "          - relay\n"
                     "          - \"a b  c\"\n");
        dc = c->duts[0].classes[DRIVER_CLASS_POWER];
        ASSERT_TRUE(dc);
        on = driver_config_get_strv(dc, "on");
        off = driver_config_get_strv(dc, "off");
        ASSERT_TRUE(on && off);
        ASSERT_STREQ(on[0], "/usr/bin/relay");
        ASSERT_STREQ(on[1], "--port=1");
        ASSERT_STREQ(on[2], "on");
        ASSERT_TRUE(on[3] == NULL);
        /* Never split: one item is one argument, spaces and all. */
        ASSERT_STREQ(off[1], "a b  c");
        ASSERT_TRUE(off[2] == NULL);
        ASSERT_TRUE(driver_config_get_strv(dc, "status") == NULL);

        /* A string is not a command line: no splitting, no shell. */
        check_error(HEAD
                    "  dut1:\n"
                    "    power:\n"
                    "      type: command\n"
                    "      config: {on: \"relay on\", off: [relay, off]}\n",
                    "/abs/local-config.yaml:9:", "expected a command as a sequence of strings");
        check_error(HEAD
                    "  dut1:\n"
                    "    power:\n"
                    "      type: command\n"
                    "      config: {on: [], off: [relay, off]}\n",
                    "/abs/local-config.yaml:9:", "expected a command as a sequence of strings");
        check_error(HEAD
                    "  dut1:\n"
                    "    power:\n"
                    "      type: command\n"
                    "      config: {on: [relay, 1], off: [relay, off]}\n",
                    "/abs/local-config.yaml:9:", "expected a string, got the number 1");
        check_error(HEAD
                    "  dut1:\n"
                    "    power:\n"
                    "      type: command\n"
                    "      config: {on: [\"\", on], off: [relay, off]}\n",
                    "/abs/local-config.yaml:9:", "expected a program name");
        check_error(HEAD
                    "  dut1:\n"
                    "    power:\n"
                    "      type: command\n"
                    "      config: {on: [relay, [on]], off: [relay, off]}\n",
                    "/abs/local-config.yaml:9:", "expected a string");
        /* on and off are required. */
        check_error(HEAD
                    "  dut1:\n"
                    "    power:\n"
                    "      type: command\n"
                    "      config: {on: [relay, on]}\n",
                    "/abs/local-config.yaml:", "off");
}

TEST(gpio_lines) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = NULL;
        const DutConfig *d;
        const GpioLineConfig *g;

        c = parse_ok(HEAD "  dut1:\n"
                          "    type: sim\n"
                          "    gpio:\n"
                          "      reset:\n"
                          "        type: gpio\n"
                          "        config: { chip: gpiochip0, line: 3, active_low: true, initial: 1 }\n"
                          "      boot_mode-2:\n"
                          "        type: gpio\n"
                          "        config: { chip: \"1\", line: 0 }\n"
                          "  dut2:\n"
                          "    power:\n"
                          "      type: gpio-relay\n"
                          "      config: { chip: /dev/gpiochip1, line: 7, cycle_delay: 2s }\n"
                          "  dut3:\n"
                          "    gpio:\n"
                          "      a: { type: gpio, config: { chip: c, line: 1 } }\n");
        d = &c->duts[0];
        ASSERT_EQ_U(d->n_gpio_lines, 2);
        ASSERT_STREQ(d->gpio_lines[0].name, "reset");
        ASSERT_STREQ(d->gpio_lines[1].name, "boot_mode-2");
        g = dut_config_find_gpio_line(d, "reset");
        ASSERT_TRUE(g == &d->gpio_lines[0]);
        ASSERT_TRUE(dut_config_find_gpio_line(d, "nope") == NULL);
        ASSERT_STREQ(driver_config_get_string(g->driver, "chip"), "gpiochip0");
        ASSERT_EQ_U(driver_config_get_u64(g->driver, "line", 99), 3);
        ASSERT_TRUE(driver_config_get_bool(g->driver, "active_low", false));
        ASSERT_EQ_U(driver_config_get_u64(g->driver, "initial", 9), 1);
        ASSERT_FALSE(driver_config_is_set(d->gpio_lines[1].driver, "initial"));
        ASSERT_TRUE(d->classes[DRIVER_CLASS_POWER] != NULL);

        d = &c->duts[1];
        ASSERT_EQ_U(d->n_gpio_lines, 0);
        ASSERT_STREQ(d->classes[DRIVER_CLASS_POWER]->type->name, "gpio-relay");
        ASSERT_EQ_U(driver_config_get_u64(d->classes[DRIVER_CLASS_POWER], "cycle_delay", 0), 2 * 1000000);

        /* GPIO lines alone make a DUT. */
        d = &c->duts[2];
        ASSERT_EQ_U(d->n_drivers, 0);
        ASSERT_EQ_U(d->n_gpio_lines, 1);

        ASSERT_TRUE(gpio_line_name_is_valid("a"));
        ASSERT_TRUE(gpio_line_name_is_valid("0_-"));
        ASSERT_TRUE(gpio_line_name_is_valid("a2345678901234567890123456789012"));
        ASSERT_FALSE(gpio_line_name_is_valid("a23456789012345678901234567890123"));
        ASSERT_FALSE(gpio_line_name_is_valid(""));
        ASSERT_FALSE(gpio_line_name_is_valid(NULL));
        ASSERT_FALSE(gpio_line_name_is_valid("_a"));
        ASSERT_FALSE(gpio_line_name_is_valid("-a"));
        ASSERT_FALSE(gpio_line_name_is_valid("Reset"));
        ASSERT_FALSE(gpio_line_name_is_valid("a.b"));
        ASSERT_FALSE(gpio_line_name_is_valid("a/b"));
}

TEST(errors_gpio) {
        check_error_exact(HEAD "  dut1:\n    gpio:\n      Reset: { type: gpio, config: { chip: c, line: 1 } }\n",
                          FILE_PATH ":8:7: export.dut1.gpio.Reset: invalid GPIO line name \"Reset\": use [a-z0-9][a-z0-9_-]{0,31}");
        check_error(HEAD "  dut1:\n    gpio:\n      \"../x\": { type: gpio, config: { chip: c, line: 1 } }\n",
                    FILE_PATH ":8:7: ", "invalid GPIO line name \"../x\"");
        check_error_exact(HEAD "  dut1:\n    gpio:\n      reset: { type: gpio, config: { chip: c, line: 1, initial: 2 } }\n",
                          FILE_PATH ":8:65: export.dut1.gpio.reset.config.initial: 2 is out of range 0..1");
        check_error_exact(HEAD "  dut1:\n    gpio:\n      reset: { type: gpio, config: { chip: c, line: 4294967296 } }\n",
                          FILE_PATH ":8:53: export.dut1.gpio.reset.config.line: 4294967296 is out of range 0..4294967295");
        check_error_exact(HEAD "  dut1:\n    gpio:\n      reset: { type: gpio, config: { chip: c } }\n",
                          FILE_PATH ":8:36: export.dut1.gpio.reset.config: missing required key \"line\"");
        check_error_exact(HEAD "  dut1:\n    gpio:\n      reset: { type: gpio, config: { chip: c, line: -1 } }\n",
                          FILE_PATH ":8:53: export.dut1.gpio.reset.config.line: expected a non-negative integer, got \"-1\"");
        check_error_exact(HEAD "  dut1:\n    gpio:\n      reset: { type: sim }\n",
                          FILE_PATH ":8:22: export.dut1.gpio.reset.type: driver type \"sim\" cannot drive a GPIO line "
                          "(it serves: power, serial, storage)");
        check_error_exact(HEAD "  dut1:\n    gpio:\n      reset: { type: gpio, config: { chip: c, line: 1 }, x: 1 }\n",
                          FILE_PATH ":8:58: export.dut1.gpio.reset.x: unknown key (known: type, config)");
        check_error_exact(HEAD "  dut1:\n    gpio: [reset]\n",
                          FILE_PATH ":7:11: export.dut1.gpio: expected a mapping of GPIO line names to lines, got a sequence");
        check_error_exact(HEAD "  dut1:\n    power: { type: gpio, config: { chip: c, line: 1 } }\n",
                          FILE_PATH ":7:20: export.dut1.power.type: driver type \"gpio\" cannot serve power "
                          "(it serves: a GPIO line under gpio:)");
        check_error_exact(HEAD "  dut1:\n    type: gpio\n    config: { chip: c, line: 1 }\n",
                          FILE_PATH ":7:11: export.dut1.type: driver type \"gpio\" drives one GPIO line: name the line "
                          "under \"gpio:\"");
        check_error_exact(HEAD "  dut1:\n    power: { type: gpio-relay, config: { chip: c } }\n",
                          FILE_PATH ":7:40: export.dut1.power.config: missing required key \"line\"");
        check_error_exact(HEAD "  dut1:\n    gpio:\n      a: { type: gpio, config: { chip: c, line: 1 } }\n"
                          "      a: { type: gpio, config: { chip: c, line: 2 } }\n",
                          FILE_PATH ":9:7: export.dut1.gpio.a: duplicate key at lines 8 and 9");
}

/* Three base64url parts: the shape of a JWT, which is all the parser checks. */
#define TOKEN "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJsYWIxIn0.c2ln-_x"
#define LINK_HEAD                                \
        "apiVersion: jumpstarter.dev/v1alpha1\n" \
        "kind: ExporterConfig\n"                 \
        "metadata:\n"                            \
        "  name: desk\n"

TEST(link_keys) {
        _cleanup_(exporter_config_freep) ExporterConfig *c = parse_ok(
                LINK_HEAD
                "endpoint: \"127.0.0.1:8443\"\n"
                "tls:\n"
                "  ca: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"\n"
                "  insecure: false\n"
                "token: " TOKEN "\n"
                "streams:\n"
                "  listen: \"[::]:8444\"\n"
                "  advertise: \"192.0.2.20\"\n"
                "export:\n"
                "  dut1:\n"
                "    type: sim\n");

        ASSERT_STREQ(c->endpoint, "127.0.0.1:8443");
        ASSERT_STREQ(c->token, TOKEN);
        ASSERT_STREQ(c->tls_ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
        ASSERT_TRUE(c->tls_ca_path == NULL);
        ASSERT_FALSE(c->tls_insecure);
        ASSERT_STREQ(c->streams_listen, "[::]:8444");
        ASSERT_STREQ(c->streams_advertise, "192.0.2.20");
        ASSERT_EQ_U(c->n_duts, 1);
}

TEST(link_defaults_and_paths) {
        _cleanup_(exporter_config_freep) ExporterConfig *local = parse_ok(HEAD "  dut1:\n    type: sim\n");
        _cleanup_(exporter_config_freep) ExporterConfig *c = parse_ok(
                LINK_HEAD
                "endpoint: controller.example.com:443\n"
                "token: " TOKEN "\n"
                "tls: { ca: certs/ca.pem, insecure: yes }\n"
                "export: {}\n");
        _cleanup_(exporter_config_freep) ExporterConfig *empty = parse_ok(
                LINK_HEAD "endpoint: \"[::1]:8443\"\ntoken: " TOKEN "\nexport:\nstreams:\n  listen: \":0\"\n");

        /* Local mode: no link, the default stream listener. */
        ASSERT_TRUE(local->endpoint == NULL);
        ASSERT_TRUE(local->token == NULL);
        ASSERT_STREQ(local->streams_listen, "0.0.0.0:0");
        ASSERT_TRUE(local->streams_advertise == NULL);

        ASSERT_STREQ(c->endpoint, "controller.example.com:443");
        ASSERT_STREQ(c->tls_ca_path, "/abs/certs/ca.pem");
        ASSERT_TRUE(c->tls_ca == NULL);
        ASSERT_TRUE(c->tls_insecure);
        ASSERT_EQ_U(c->n_duts, 0);

        ASSERT_STREQ(empty->endpoint, "[::1]:8443");
        ASSERT_EQ_U(empty->n_duts, 0);
        ASSERT_STREQ(empty->streams_listen, ":0");
}

TEST(errors_link) {
        check_error_exact(LINK_HEAD "endpoint: 127.0.0.1:8443\nexport: {}\n",
                          FILE_PATH ":1:1: missing required key \"token\" (the exporter's token for the endpoint)");
        check_error_exact(LINK_HEAD "token: " TOKEN "\nexport: {}\n",
                          FILE_PATH ":1:1: missing required key \"endpoint\" (the controller that the token is for)");
        check_error_exact(LINK_HEAD "endpoint: 127.0.0.1\ntoken: " TOKEN "\nexport: {}\n",
                          FILE_PATH ":5:11: endpoint: expected the controller's address as HOST:PORT such as "
                          "\"controller.example.com:8443\", got \"127.0.0.1\"");
        check_error(LINK_HEAD "endpoint: \"127.0.0.1:0\"\ntoken: " TOKEN "\nexport: {}\n",
                    FILE_PATH ":5:11: endpoint: expected the controller's address", "got \"127.0.0.1:0\"");
        check_error(LINK_HEAD "endpoint: \"https://c:8443\"\ntoken: " TOKEN "\nexport: {}\n",
                    FILE_PATH ":5:11: endpoint: expected the controller's address", "");
        check_error(LINK_HEAD "endpoint: \"[fe80::zz]:8443\"\ntoken: " TOKEN "\nexport: {}\n",
                    FILE_PATH ":5:11: endpoint: expected the controller's address", "");
        check_error(LINK_HEAD "endpoint: 8443\ntoken: " TOKEN "\nexport: {}\n",
                    FILE_PATH ":5:11: endpoint: expected a string, got the number 8443", "");
        /* A token goes into an HTTP header: nothing but base64url and dots. */
        check_error_exact(LINK_HEAD "endpoint: c:1\ntoken: \"abc.def\\r\\nX: y.z\"\nexport: {}\n",
                          FILE_PATH ":6:8: token: expected a token (three base64url parts joined by dots, as jmp admin "
                          "create exporter writes it), got \"abc.def\\x0d\\x0aX: y.z\"");
        check_error(LINK_HEAD "endpoint: c:1\ntoken: a..b\nexport: {}\n", FILE_PATH ":6:8: token: expected a token", "");
        check_error(LINK_HEAD "endpoint: c:1\ntoken: a.b\nexport: {}\n", FILE_PATH ":6:8: token: expected a token", "");
        check_error_exact(LINK_HEAD "tls: { insecure: true }\nexport: { dut1: { type: sim } }\n",
                          FILE_PATH ":5:6: tls: only used with an \"endpoint\"");
        check_error_exact(LINK_HEAD "endpoint: c:1\ntoken: " TOKEN "\ntls: { insecure: maybe }\nexport: {}\n",
                          FILE_PATH ":7:18: tls.insecure: expected true or false, got \"maybe\"");
        check_error_exact(LINK_HEAD "endpoint: c:1\ntoken: " TOKEN "\ntls: { cert: x }\nexport: {}\n",
                          FILE_PATH ":7:8: tls.cert: unknown key (known: ca, insecure)");
        check_error_exact(LINK_HEAD "endpoint: c:1\ntoken: " TOKEN "\ntls: { ca: \"\" }\nexport: {}\n",
                          FILE_PATH ":7:12: tls.ca: expected a PEM certificate or the name of a PEM file, got \"\"");
        check_error(LINK_HEAD "endpoint: c:1\ntoken: " TOKEN "\ntls: { ca: \"-----BEGIN PRIVATE KEY-----\" }\nexport: {}\n",
                    FILE_PATH ":7:12: tls.ca: expected a PEM certificate", "");
        check_error_exact(LINK_HEAD "streams: { listen: \"0.0.0.0\" }\nexport: { dut1: { type: sim } }\n",
                          FILE_PATH ":5:20: streams.listen: expected an address to listen on such as \"0.0.0.0:8444\", "
                          "\"[::]:8444\" or \":0\", got \"0.0.0.0\"");
        check_error(LINK_HEAD "streams: { listen: \"host:1\" }\nexport: { dut1: { type: sim } }\n",
                    FILE_PATH ":5:20: streams.listen: expected an address to listen on", "");
        check_error(LINK_HEAD "streams: { listen: \"0.0.0.0:65536\" }\nexport: { dut1: { type: sim } }\n",
                    FILE_PATH ":5:20: streams.listen: expected an address to listen on", "");
        check_error_exact(LINK_HEAD "streams: { advertise: example.com }\nexport: { dut1: { type: sim } }\n",
                          FILE_PATH ":5:23: streams.advertise: expected an IP address, optionally with a port, such "
                          "as \"192.0.2.20\", got \"example.com\"");
        check_error_exact(LINK_HEAD "streams: { bind: x }\nexport: { dut1: { type: sim } }\n",
                          FILE_PATH ":5:12: streams.bind: unknown key (known: listen, advertise)");
        /* Without an endpoint, export still needs a DUT. */
        check_error_exact(LINK_HEAD "export: {}\n", FILE_PATH ":5:9: export: no DUTs: describe at least one");
        check_error_exact(LINK_HEAD "endpoint: c:1\ntoken: " TOKEN "\n", FILE_PATH ":1:1: missing required key \"export\"");
}

/* metrics: {listen} (docs/metrics.md), in local and linked mode alike. */
TEST(metrics_key) {
        _cleanup_(exporter_config_freep) ExporterConfig *none = parse_ok(HEAD "  dut1:\n    type: sim\n");
        _cleanup_(exporter_config_freep) ExporterConfig *c = parse_ok(
                LINK_HEAD "metrics:\n  listen: \"127.0.0.1:9464\"\nexport: { dut1: { type: sim } }\n");

        ASSERT_TRUE(none->metrics_listen == NULL);
        ASSERT_STREQ(c->metrics_listen, "127.0.0.1:9464");
        check_error_exact(LINK_HEAD "metrics: { listen: localhost:9464 }\nexport: { dut1: { type: sim } }\n",
                          FILE_PATH ":5:20: metrics.listen: expected an address to listen on such as \"127.0.0.1:9464\", "
                          "\"[::]:9464\" or \":9464\", got \"localhost:9464\"");
        check_error_exact(LINK_HEAD "metrics: { port: 9464 }\nexport: { dut1: { type: sim } }\n",
                          FILE_PATH ":5:12: metrics.port: unknown key (known: listen)");
        check_error_exact(LINK_HEAD "metrics: {}\nexport: { dut1: { type: sim } }\n",
                          FILE_PATH ":5:10: metrics: missing required key \"listen\" (the address /metrics is served on)");
}

TEST(addresses) {
        ASSERT_TRUE(endpoint_is_valid("127.0.0.1:8443"));
        ASSERT_TRUE(endpoint_is_valid("[::1]:1"));
        ASSERT_TRUE(endpoint_is_valid("Controller.Example.com:65535"));
        ASSERT_FALSE(endpoint_is_valid("[::1]"));
        ASSERT_FALSE(endpoint_is_valid("::1:8443"));
        ASSERT_FALSE(endpoint_is_valid("c:08443"));
        ASSERT_FALSE(endpoint_is_valid("c:65536"));
        ASSERT_FALSE(endpoint_is_valid(":8443"));
        ASSERT_FALSE(endpoint_is_valid("-c:8443"));
        ASSERT_FALSE(endpoint_is_valid("c d:8443"));
        ASSERT_FALSE(endpoint_is_valid(NULL));
}

TEST(free_null) {
        ASSERT_TRUE(exporter_config_free(NULL) == NULL);
        ASSERT_TRUE(exporter_config_find_dut(NULL, "x") == NULL);
}

TEST_MAIN()
