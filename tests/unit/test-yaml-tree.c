/* Tests for loading YAML documents into a tree */
#include <errno.h>

#include "macro.h"
#include "tests.h"
#include "yaml-tree.h"

static YamlNode *parse_ok(const char *text) {
        YamlNode *root = NULL;
        char *error = NULL;
        int r;

        r = yaml_tree_parse(text, strlen(text), &root, &error);
        if (r < 0)
                ASSERT_FAIL("parsing succeeds (got %d: %s)", r, error ? error : "(no message)");
        ASSERT_TRUE(root);
        ASSERT_TRUE(!error);
        return root;
}

/* Returns the message, which must start with prefix. */
static char *parse_fail(const char *text, size_t len, const char *prefix) {
        YamlNode *root = (YamlNode *) 1;
        char *error = NULL;

        ASSERT_EQ(yaml_tree_parse(text, len, &root, &error), -EINVAL);
        ASSERT_TRUE(root == (YamlNode *) 1);
        ASSERT_TRUE(error);
        if (strncmp(error, prefix, strlen(prefix)) != 0)
                ASSERT_FAIL("\"%s\" starts with \"%s\"", error, prefix);
        return error;
}

static void check_fail_n(const char *text, size_t len, const char *prefix, const char *contains) {
        _cleanup_free_ char *e = parse_fail(text, len, prefix);

        ASSERT_CONTAINS(e, contains);
}

static void check_fail(const char *text, const char *prefix, const char *contains) {
        check_fail_n(text, strlen(text), prefix, contains);
}

static char *path_of(const YamlNode *n) {
        char *p = NULL;

        ASSERT_OK(yaml_node_path(n, &p));
        return p;
}

TEST(mapping_and_positions) {
        _cleanup_(yaml_node_freep) YamlNode *root = parse_ok("a: 1\n"
                                                             "b:\n"
                                                             "  c: \"x\"\n"
                                                             "  d: [1, two]\n");
        YamlNode *b, *d;

        ASSERT_EQ(root->type, YAML_NODE_MAPPING);
        ASSERT_EQ_U(root->n_pairs, 2);
        ASSERT_STREQ(root->pairs[0].key->scalar, "a");
        ASSERT_EQ_U(root->pairs[0].key->line, 1);
        ASSERT_EQ_U(root->pairs[0].key->column, 1);
        ASSERT_STREQ(root->pairs[0].value->scalar, "1");
        ASSERT_EQ_U(root->pairs[0].value->column, 4);
        ASSERT_FALSE(root->pairs[0].value->quoted);

        b = yaml_node_get(root, "b");
        ASSERT_TRUE(b);
        ASSERT_EQ(b->type, YAML_NODE_MAPPING);
        ASSERT_EQ_U(b->line, 3);
        ASSERT_EQ_U(b->column, 3);
        ASSERT_STREQ(yaml_node_get(b, "c")->scalar, "x");
        ASSERT_TRUE(yaml_node_get(b, "c")->quoted);
        ASSERT_EQ_U(yaml_node_get(b, "c")->column, 6);

        d = yaml_node_get(b, "d");
        ASSERT_EQ(d->type, YAML_NODE_SEQUENCE);
        ASSERT_EQ_U(d->n_items, 2);
        ASSERT_STREQ(d->items[1]->scalar, "two");
        ASSERT_EQ_U(d->items[1]->line, 4);
        ASSERT_EQ_U(d->items[1]->column, 10);

        ASSERT_TRUE(yaml_node_get(root, "missing") == NULL);
        ASSERT_TRUE(yaml_node_get(d, "a") == NULL);
}

TEST(paths) {
        _cleanup_(yaml_node_freep) YamlNode *root = parse_ok("export:\n"
                                                             "  dut1:\n"
                                                             "    items:\n"
                                                             "      - x\n"
                                                             "      - {k: v}\n"
                                                             "  \"a\\nb\": 1\n");
        YamlNode *items = yaml_node_get(yaml_node_get(yaml_node_get(root, "export"), "dut1"), "items");
        YamlNode *export = yaml_node_get(root, "export");
        _cleanup_free_ char *p0 = path_of(root), *p1 = path_of(items), *p2 = path_of(items->items[1]),
                            *p3 = path_of(yaml_node_get(items->items[1], "k")),
                            *p4 = path_of(items->items[1]->pairs[0].key), *p5 = path_of(export->pairs[1].value);

        ASSERT_STREQ(p0, "");
        ASSERT_STREQ(p1, "export.dut1.items");
        ASSERT_STREQ(p2, "export.dut1.items[1]");
        ASSERT_STREQ(p3, "export.dut1.items[1].k");
        ASSERT_STREQ(p4, "export.dut1.items[1].k");
        ASSERT_STREQ(p5, "export.a\\x0ab");
}

TEST(scalar_kinds) {
        static const struct {
                const char *text;
                YamlScalarKind kind;
        } cases[] = {
                { "v: abc", YAML_SCALAR_STRING },    { "v: \"123\"", YAML_SCALAR_STRING },
                { "v: '1.5'", YAML_SCALAR_STRING },  { "v: |\n  123\n", YAML_SCALAR_STRING },
                { "v: !!str 123", YAML_SCALAR_STRING }, { "v: 64MiB", YAML_SCALAR_STRING },
                { "v: 300ms", YAML_SCALAR_STRING },  { "v: yes", YAML_SCALAR_STRING },
                { "v: 1.2.3", YAML_SCALAR_STRING },  { "v: 0x", YAML_SCALAR_STRING },
                { "v:", YAML_SCALAR_NULL },          { "v: ~", YAML_SCALAR_NULL },
                { "v: null", YAML_SCALAR_NULL },     { "v: NULL", YAML_SCALAR_NULL },
                { "v: true", YAML_SCALAR_BOOL },     { "v: False", YAML_SCALAR_BOOL },
                { "v: 123", YAML_SCALAR_INT },       { "v: -5", YAML_SCALAR_INT },
                { "v: 0x1F", YAML_SCALAR_INT },      { "v: 0o17", YAML_SCALAR_INT },
                { "v: 1.5", YAML_SCALAR_FLOAT },     { "v: .5", YAML_SCALAR_FLOAT },
                { "v: 1e3", YAML_SCALAR_FLOAT },     { "v: -.inf", YAML_SCALAR_FLOAT },
                { "v: .NaN", YAML_SCALAR_FLOAT },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(yaml_node_freep) YamlNode *root = parse_ok(cases[i].text);
                YamlNode *v = yaml_node_get(root, "v");

                if (yaml_node_scalar_kind(v) != cases[i].kind)
                        ASSERT_FAIL("kind of \"%s\" is %d, expected %d", cases[i].text,
                                    (int) yaml_node_scalar_kind(v), (int) cases[i].kind);
                ASSERT_EQ(yaml_node_is_string(v), cases[i].kind == YAML_SCALAR_STRING);
                ASSERT_EQ(yaml_node_is_null(v), cases[i].kind == YAML_SCALAR_NULL);
        }
}

TEST(describe) {
        _cleanup_(yaml_node_freep) YamlNode *root = parse_ok("{a: {}, b: [], c: x, d: 1, e: true, f: }");

        ASSERT_STREQ(yaml_node_describe(yaml_node_get(root, "a")), "a mapping");
        ASSERT_STREQ(yaml_node_describe(yaml_node_get(root, "b")), "a sequence");
        ASSERT_STREQ(yaml_node_describe(yaml_node_get(root, "c")), "a string");
        ASSERT_STREQ(yaml_node_describe(yaml_node_get(root, "d")), "a number");
        ASSERT_STREQ(yaml_node_describe(yaml_node_get(root, "e")), "a boolean");
        ASSERT_STREQ(yaml_node_describe(yaml_node_get(root, "f")), "null");
        ASSERT_STREQ(yaml_node_type_to_string(YAML_NODE_SEQUENCE), "sequence");
        ASSERT_TRUE(yaml_node_type_to_string(_YAML_NODE_TYPE_MAX) == NULL);
}

TEST(nul_bytes) {
        _cleanup_(yaml_node_freep) YamlNode *root = parse_ok("\"k\\0x\": \"a\\0b\"\n");
        YamlNode *v = root->pairs[0].value;
        _cleanup_free_ char *p = path_of(v);

        ASSERT_EQ_U(v->scalar_len, 3);
        ASSERT_TRUE(memcmp(v->scalar, "a\0b", 3) == 0);
        ASSERT_FALSE(yaml_node_is_string(v));
        ASSERT_EQ(yaml_node_scalar_kind(v), YAML_SCALAR_STRING);
        /* "k" must not find "k\0x". */
        ASSERT_TRUE(yaml_node_get(root, "k") == NULL);
        ASSERT_STREQ(p, "k\\x00x");
}

TEST(top_level_scalar_and_sequence) {
        _cleanup_(yaml_node_freep) YamlNode *s = parse_ok("hello\n");
        _cleanup_(yaml_node_freep) YamlNode *q = parse_ok("- a\n- b\n");

        ASSERT_EQ(s->type, YAML_NODE_SCALAR);
        ASSERT_STREQ(s->scalar, "hello");
        ASSERT_EQ(q->type, YAML_NODE_SEQUENCE);
        ASSERT_EQ_U(q->n_items, 2);
}

TEST(explicit_document_markers) {
        _cleanup_(yaml_node_freep) YamlNode *root = parse_ok("%YAML 1.1\n---\na: 1\n...\n");

        ASSERT_STREQ(yaml_node_get(root, "a")->scalar, "1");
}

TEST(empty) {
        check_fail_n("", 0, "1:1: no YAML document", "empty");
        check_fail_n("# only a comment\n", 17, "2:1: no YAML document", "empty");
}

TEST(multiple_documents) {
        check_fail("a: 1\n---\nb: 2\n", "2:1: more than one YAML document", "only one");
}

TEST(anchors_and_aliases) {
        check_fail("a: &x 1\nb: *x\n", "1:4: a: anchors and aliases are not supported (&x)", "&x");
        check_fail("a: [1, *y]\n", "1:8: a[1]: anchors and aliases are not supported (*y)", "*y");
        check_fail("base: &b {k: v}\n", "1:7: base: anchors and aliases", "&b");
        check_fail("m:\n  *k : v\n", "2:3: m: anchors and aliases", "*k");
}

TEST(tags) {
        check_fail("a: !!int 5\n", "1:4: a: tags are not supported", "tag:yaml.org,2002:int");
        check_fail("a: !local x\n", "1:4: a: tags are not supported", "!local");
        check_fail("a: !!seq {}\n", "1:4: a: tags are not supported", "seq");

        _cleanup_(yaml_node_freep) YamlNode *root = parse_ok("a: !!map {b: !!seq [], c: !!str 5}\n");
        ASSERT_TRUE(yaml_node_get(yaml_node_get(root, "a"), "c")->quoted);
}

TEST(duplicate_keys) {
        check_fail("a: 1\nb: 2\na: 3\n", "3:1: a: duplicate key at lines 1 and 3", "lines 1 and 3");
        check_fail("x:\n  k: 1\n  j: 2\n  \"k\": 3\n", "4:3: x.k: duplicate key at lines 2 and 4", "");
        /* The first duplicate in the file is named, with the key's first occurrence. */
        check_fail("b: 1\na: 1\nc: 1\na: 2\nb: 2\na: 3\n", "4:1: a: duplicate key at lines 2 and 4", "");
        check_fail("{z: 1, y: 2, z: 3}", "1:14: z: duplicate key at lines 1 and 1", "");
}

TEST(duplicate_keys_many) {
        /* 30000 distinct keys plus one repeat at the end: found, and quickly (sorted, not n^2). */
        size_t size = 30001 * 16, n = 0;
        _cleanup_free_ char *text = malloc(size);

        ASSERT_TRUE(text);
        for (unsigned i = 0; i < 30000; i++)
                n += (size_t) snprintf(text + n, size - n, "k%u: %u\n", i, i);
        n += (size_t) snprintf(text + n, size - n, "k17: x\n");
        check_fail_n(text, n, "30001:1: k17: duplicate key at lines 18 and 30001", "");
}

TEST(non_scalar_keys) {
        check_fail("? [a, b]\n: c\n", "1:3: keys must be scalars, not a sequence", "");
        check_fail("x:\n  {a: 1}: c\n", "2:3: x: keys must be scalars, not a mapping", "");
}

TEST(syntax_errors) {
        /* libyaml's own words, at its position, with the context it gives. */
        check_fail("a: 1\n b: 2\n", "2:3: ", "mapping values are not allowed in this context");
        check_fail("a: [1, 2\n", "2:1: a: did not find expected ',' or ']'", "while parsing a flow sequence at 1:4");
        check_fail("x:\n  y: \"unterminated\n", "3:1: x.y: found unexpected end of stream",
                   "while scanning a quoted scalar at 2:6");
        check_fail("a: b\n\tc: d\n", "2:1: a: found a tab character that violates indentation", "while scanning a plain scalar at 1:4");
        check_fail("a: b\n@x: d\n", "2:1: ", "found character that cannot start any token");
}

TEST(invalid_utf8) {
        check_fail_n("a: b\nc: \xff\n", 10, "2:4: invalid leading UTF-8 octet (byte 0xff)", "");
        check_fail_n("a: \x01\n", 5, "1:4: control characters are not allowed", "");
}

static char *nested(unsigned depth) {
        char *s = malloc(2 * depth + 1);

        ASSERT_TRUE(s);
        memset(s, '[', depth);
        memset(s + depth, ']', depth);
        s[2 * depth] = 0;
        return s;
}

TEST(depth_limit) {
        _cleanup_free_ char *ok = nested(YAML_TREE_DEPTH_MAX), *bad = nested(YAML_TREE_DEPTH_MAX + 1),
                            *huge = nested(100000);
        _cleanup_(yaml_node_freep) YamlNode *root = parse_ok(ok);
        const YamlNode *n = root;
        unsigned depth = 1;

        for (; n->n_items > 0; n = n->items[0])
                depth++;
        ASSERT_EQ_U(depth, YAML_TREE_DEPTH_MAX);
        check_fail(bad, "1:65: [0][0][0]", "]: nested deeper than 64 levels");
        check_fail(huge, "1:65: ", "nested deeper than 64 levels");
}

TEST(node_limit) {
        /* A sequence and its items: YAML_TREE_NODES_MAX nodes pass, one more does not. */
        size_t n_items = YAML_TREE_NODES_MAX - 1, size = 2 * (n_items + 1) + 3;
        _cleanup_free_ char *text = malloc(size);
        YamlNode *root;

        ASSERT_TRUE(text);
        text[0] = '[';
        for (size_t i = 0; i < n_items; i++) {
                text[1 + 2 * i] = '0';
                text[2 + 2 * i] = ',';
        }
        text[2 * n_items] = ']';
        text[2 * n_items + 1] = 0;
        root = parse_ok(text);
        ASSERT_EQ_U(root->n_items, n_items);
        yaml_node_free(root);

        memcpy(text + 2 * n_items, ",0]", 4);
        check_fail(text, "1:200000: more than 100000 nodes", "in one document");
}

TEST_MAIN()
