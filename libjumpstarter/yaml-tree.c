/* A YAML document as a small tree of scalars, mappings and sequences, with source positions */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "log.h"
#include "macro.h"
#include "yaml-tree.h"

#define TAG_STR "tag:yaml.org,2002:str"
#define TAG_MAP "tag:yaml.org,2002:map"
#define TAG_SEQ "tag:yaml.org,2002:seq"

/* The event parser builds the tree through an explicit stack of open containers: no recursion, so
 * the depth limit is the only thing between input and stack use, in the free and path walks. */
typedef struct Builder {
        yaml_parser_t parser;
        YamlNode *root;
        YamlNode *stack[YAML_TREE_DEPTH_MAX];
        size_t capacity[YAML_TREE_DEPTH_MAX]; /* allocated pairs/items of each open container */
        size_t depth;
        size_t n_nodes;
        bool seen_document;
        char *error;
} Builder;

static const char *const node_type_table[_YAML_NODE_TYPE_MAX] = {
        [YAML_NODE_SCALAR] = "scalar",
        [YAML_NODE_MAPPING] = "mapping",
        [YAML_NODE_SEQUENCE] = "sequence",
};

const char *yaml_node_type_to_string(YamlNodeType t) {
        if (t < 0 || t >= _YAML_NODE_TYPE_MAX)
                return NULL;
        return node_type_table[t];
}

YamlNode *yaml_node_free(YamlNode *n) {
        if (!n)
                return NULL;
        free(n->scalar);
        for (size_t i = 0; i < n->n_pairs; i++) {
                yaml_node_free(n->pairs[i].key);
                yaml_node_free(n->pairs[i].value);
        }
        free(n->pairs);
        for (size_t i = 0; i < n->n_items; i++)
                yaml_node_free(n->items[i]);
        free(n->items);
        free(n);
        return NULL;
}

static bool scalar_equal(const YamlNode *a, const YamlNode *b) {
        return a->scalar_len == b->scalar_len && memcmp(a->scalar, b->scalar, a->scalar_len) == 0;
}

YamlNode *yaml_node_get(const YamlNode *mapping, const char *key) {
        size_t len;

        assert(key);

        if (!mapping || mapping->type != YAML_NODE_MAPPING)
                return NULL;
        len = strlen(key);
        for (size_t i = 0; i < mapping->n_pairs; i++) {
                const YamlNode *k = mapping->pairs[i].key;

                if (k->type == YAML_NODE_SCALAR && k->scalar_len == len && memcmp(k->scalar, key, len) == 0)
                        return mapping->pairs[i].value;
        }
        return NULL;
}

static void write_escaped(FILE *f, const char *s, size_t len) {
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c < 0x20 || c == 0x7f)
                        fprintf(f, "\\x%02x", c);
                else
                        fputc(c, f);
        }
}

int yaml_node_path(const YamlNode *n, char **ret) {
        const YamlNode *chain[YAML_TREE_DEPTH_MAX + 2];
        size_t k = 0, size = 0;
        char *buf = NULL;
        bool first = true;
        FILE *f;

        assert(n);
        assert(ret);

        /* Nodes below the root, innermost first. The builder never nests deeper than the limit; a
         * hand-made deeper tree just gets a truncated path. */
        for (; n && n->parent && k < ELEMENTSOF(chain); n = n->parent)
                chain[k++] = n;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        while (k > 0) {
                const YamlNode *c = chain[--k], *p = c->parent;

                if (p->type == YAML_NODE_SEQUENCE)
                        fprintf(f, "[%zu]", c->index);
                else {
                        const YamlNode *key = c->index < p->n_pairs ? p->pairs[c->index].key : NULL;

                        if (!first)
                                fputc('.', f);
                        if (key && key->type == YAML_NODE_SCALAR)
                                write_escaped(f, key->scalar, key->scalar_len);
                        else
                                fputc('?', f);
                }
                first = false;
        }
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

static bool matches_any(const char *s, const char *const *list) {
        for (; *list; list++)
                if (streq(s, *list))
                        return true;
        return false;
}

static bool is_digits(const char *s, const char *set) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!strchr(set, *s))
                        return false;
        return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_core_float(const char *s) {
        size_t n;
        bool mantissa = false;

        if (*s == '-' || *s == '+')
                s++;
        n = strspn(s, "0123456789");
        mantissa = n > 0;
        s += n;
        if (*s == '.') {
                s++;
                n = strspn(s, "0123456789");
                mantissa = mantissa || n > 0;
                s += n;
        }
        if (!mantissa)
                return false;
        if (*s == 'e' || *s == 'E') {
                s++;
                if (*s == '-' || *s == '+')
                        s++;
                n = strspn(s, "0123456789");
                if (n == 0)
                        return false;
                s += n;
        }
        return *s == 0;
}

YamlScalarKind yaml_node_scalar_kind(const YamlNode *n) {
        static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
        static const char *const bools[] = { "true", "True", "TRUE", "false", "False", "FALSE", NULL };
        static const char *const special_floats[] = {
                ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
                ".nan", ".NaN", ".NAN", NULL,
        };
        const char *s;

        if (!n || n->type != YAML_NODE_SCALAR)
                return _YAML_SCALAR_KIND_INVALID;
        if (n->quoted || strlen(n->scalar) != n->scalar_len)
                return YAML_SCALAR_STRING;

        s = n->scalar;
        if (matches_any(s, nulls))
                return YAML_SCALAR_NULL;
        if (matches_any(s, bools))
                return YAML_SCALAR_BOOL;
        if (strncmp(s, "0o", 2) == 0 && is_digits(s + 2, "01234567"))
                return YAML_SCALAR_INT;
        if (strncmp(s, "0x", 2) == 0 && is_digits(s + 2, "0123456789abcdefABCDEF"))
                return YAML_SCALAR_INT;
        if (is_digits(s + (*s == '-' || *s == '+'), "0123456789"))
                return YAML_SCALAR_INT;
        if (matches_any(s, special_floats) || is_core_float(s))
                return YAML_SCALAR_FLOAT;
        return YAML_SCALAR_STRING;
}

bool yaml_node_is_string(const YamlNode *n) {
        return yaml_node_scalar_kind(n) == YAML_SCALAR_STRING && strlen(n->scalar) == n->scalar_len;
}

bool yaml_node_is_null(const YamlNode *n) {
        return yaml_node_scalar_kind(n) == YAML_SCALAR_NULL;
}

const char *yaml_node_describe(const YamlNode *n) {
        if (!n)
                return "nothing";
        switch (n->type) {
        case YAML_NODE_MAPPING:
                return "a mapping";
        case YAML_NODE_SEQUENCE:
                return "a sequence";
        default:
                break;
        }
        switch (yaml_node_scalar_kind(n)) {
        case YAML_SCALAR_NULL:
                return "null";
        case YAML_SCALAR_BOOL:
                return "a boolean";
        case YAML_SCALAR_INT:
        case YAML_SCALAR_FLOAT:
                return "a number";
        default:
                return "a string";
        }
}

/* Records the first error as "LINE:COLUMN: PATH: message"; at is the node whose key path is
 * named, NULL (or the root) for none. */
_printf_(5, 6) static int builder_fail(Builder *b, unsigned line, unsigned column, const YamlNode *at,
                                       const char *format, ...) {
        _cleanup_free_ char *path = NULL, *msg = NULL;
        va_list ap;
        int r;

        if (b->error)
                return -EINVAL;

        if (at) {
                r = yaml_node_path(at, &path);
                if (r < 0)
                        return r;
        }
        va_start(ap, format);
        r = vasprintf(&msg, format, ap);
        va_end(ap);
        if (r < 0) {
                msg = NULL;
                return -ENOMEM;
        }
        if (path && *path)
                r = asprintf(&b->error, "%u:%u: %s: %s", line, column, path, msg);
        else
                r = asprintf(&b->error, "%u:%u: %s", line, column, msg);
        if (r < 0) {
                b->error = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

/* The node a problem between events is about: the key whose value is being read, else the
 * innermost open container, else nothing. */
static const YamlNode *builder_context(const Builder *b) {
        const YamlNode *top;

        if (b->depth == 0)
                return NULL;
        top = b->stack[b->depth - 1];
        if (top->type == YAML_NODE_MAPPING && top->n_pairs > 0 && !top->pairs[top->n_pairs - 1].value)
                return top->pairs[top->n_pairs - 1].key;
        return top;
}

static int builder_fail_libyaml(Builder *b) {
        const yaml_parser_t *p = &b->parser;
        unsigned line, column;

        switch (p->error) {
        case YAML_MEMORY_ERROR:
                return -ENOMEM;

        case YAML_READER_ERROR: {
                /* The reader reports a byte offset, not a mark. */
                const unsigned char *s = p->input.string.start;
                size_t end = MIN((size_t) p->problem_offset, (size_t) (p->input.string.end - s));

                line = 1;
                column = 1;
                for (size_t i = 0; i < end; i++)
                        if (s[i] == '\n') {
                                line++;
                                column = 1;
                        } else
                                column++;
                if (p->problem_value >= 0)
                        return builder_fail(b, line, column, NULL, "%s (byte 0x%02x)", strna(p->problem),
                                            (unsigned) p->problem_value);
                return builder_fail(b, line, column, NULL, "%s", strna(p->problem));
        }

        default:
                line = (unsigned) p->problem_mark.line + 1;
                column = (unsigned) p->problem_mark.column + 1;
                if (p->context)
                        return builder_fail(b, line, column, builder_context(b), "%s (%s at %u:%u)",
                                            strna(p->problem), p->context,
                                            (unsigned) p->context_mark.line + 1,
                                            (unsigned) p->context_mark.column + 1);
                return builder_fail(b, line, column, builder_context(b), "%s", strna(p->problem));
        }
}

static int grow(void **array, size_t *capacity, size_t n, size_t elem) {
        size_t c;
        void *p;

        if (n < *capacity)
                return 0;
        c = MAX(*capacity * 2, (size_t) 4);
        p = reallocarray(*array, c, elem);
        if (!p)
                return -ENOMEM;
        *array = p;
        *capacity = c;
        return 0;
}

/* Creates a node at the event's start mark and hangs it into the open container (or makes it the
 * root) right away, so that freeing the root on any error frees everything. */
static int builder_add(Builder *b, YamlNodeType type, const yaml_event_t *ev, YamlNode **ret) {
        YamlNode *n, *top;
        int r;

        if (b->n_nodes >= YAML_TREE_NODES_MAX)
                return builder_fail(b, (unsigned) ev->start_mark.line + 1, (unsigned) ev->start_mark.column + 1,
                                    builder_context(b), "more than %u nodes in one document",
                                    (unsigned) YAML_TREE_NODES_MAX);

        n = calloc(1, sizeof(YamlNode));
        if (!n)
                return -ENOMEM;
        n->type = type;
        n->line = (unsigned) ev->start_mark.line + 1;
        n->column = (unsigned) ev->start_mark.column + 1;

        if (b->depth == 0) {
                assert(!b->root);
                b->root = n;
        } else {
                size_t *cap = &b->capacity[b->depth - 1];

                top = b->stack[b->depth - 1];
                if (top->type == YAML_NODE_SEQUENCE) {
                        r = grow((void **) &top->items, cap, top->n_items, sizeof(YamlNode *));
                        if (r < 0) {
                                free(n);
                                return r;
                        }
                        n->index = top->n_items;
                        top->items[top->n_items++] = n;
                } else if (top->n_pairs > 0 && !top->pairs[top->n_pairs - 1].value) {
                        n->index = top->n_pairs - 1;
                        top->pairs[n->index].value = n;
                } else {
                        r = grow((void **) &top->pairs, cap, top->n_pairs, sizeof(YamlPair));
                        if (r < 0) {
                                free(n);
                                return r;
                        }
                        n->index = top->n_pairs;
                        top->pairs[top->n_pairs++] = (YamlPair) { .key = n };
                }
                n->parent = top;
        }
        b->n_nodes++;

        *ret = n;
        return 0;
}

static bool node_is_key(const YamlNode *n) {
        return n->parent && n->parent->type == YAML_NODE_MAPPING && n->parent->pairs[n->index].key == n;
}

static int builder_check_props(Builder *b, YamlNode *n, const yaml_char_t *anchor, const yaml_char_t *tag,
                               const char *allowed_tag) {
        if (anchor)
                return builder_fail(b, n->line, n->column, n, "anchors and aliases are not supported (&%.64s)",
                                    (const char *) anchor);
        if (tag && !streq((const char *) tag, allowed_tag))
                return builder_fail(b, n->line, n->column, n, "tags are not supported (%.64s)",
                                    (const char *) tag);
        return 0;
}

static int builder_scalar(Builder *b, const yaml_event_t *ev) {
        YamlNode *n;
        int r;

        r = builder_add(b, YAML_NODE_SCALAR, ev, &n);
        if (r < 0)
                return r;

        n->scalar = malloc(ev->data.scalar.length + 1);
        if (!n->scalar)
                return -ENOMEM;
        memcpy(n->scalar, ev->data.scalar.value, ev->data.scalar.length);
        n->scalar[ev->data.scalar.length] = 0;
        n->scalar_len = ev->data.scalar.length;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || ev->data.scalar.tag;

        return builder_check_props(b, n, ev->data.scalar.anchor, ev->data.scalar.tag, TAG_STR);
}

static int builder_start(Builder *b, YamlNodeType type, const yaml_event_t *ev) {
        const yaml_char_t *anchor, *tag;
        YamlNode *n;
        int r;

        r = builder_add(b, type, ev, &n);
        if (r < 0)
                return r;

        if (node_is_key(n))
                return builder_fail(b, n->line, n->column, n->parent,
                                    "keys must be scalars, not %s", yaml_node_describe(n));

        if (type == YAML_NODE_MAPPING) {
                anchor = ev->data.mapping_start.anchor;
                tag = ev->data.mapping_start.tag;
        } else {
                anchor = ev->data.sequence_start.anchor;
                tag = ev->data.sequence_start.tag;
        }
        r = builder_check_props(b, n, anchor, tag, type == YAML_NODE_MAPPING ? TAG_MAP : TAG_SEQ);
        if (r < 0)
                return r;

        if (b->depth >= YAML_TREE_DEPTH_MAX)
                return builder_fail(b, n->line, n->column, n, "nested deeper than %u levels",
                                    (unsigned) YAML_TREE_DEPTH_MAX);
        b->stack[b->depth] = n;
        b->capacity[b->depth] = 0;
        b->depth++;
        return 0;
}

static int key_compare(const void *a, const void *b) {
        const YamlNode *x = *(const YamlNode *const *) a, *y = *(const YamlNode *const *) b;
        int c;

        c = memcmp(x->scalar, y->scalar, MIN(x->scalar_len, y->scalar_len));
        if (c != 0)
                return c;
        if (x->scalar_len != y->scalar_len)
                return x->scalar_len < y->scalar_len ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorting rather than comparing every pair keeps a mapping with 50000 keys from taking minutes. */
static int builder_check_duplicates(Builder *b, const YamlNode *m) {
        _cleanup_free_ const YamlNode **keys = NULL;
        const YamlNode *first = NULL, *again = NULL;

        if (m->n_pairs < 2)
                return 0;
        keys = malloc(m->n_pairs * sizeof(YamlNode *));
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_pairs; i++)
                keys[i] = m->pairs[i].key;
        qsort(keys, m->n_pairs, sizeof(YamlNode *), key_compare);

        /* Report the duplicate that comes first in the file; within a run of equal keys sorted by
         * position, the one before it is then the key's first occurrence. */
        for (size_t i = 1; i < m->n_pairs; i++)
                if (scalar_equal(keys[i - 1], keys[i]) && (!again || keys[i]->index < again->index)) {
                        first = keys[i - 1];
                        again = keys[i];
                }
        if (!again)
                return 0;

        return builder_fail(b, again->line, again->column, again, "duplicate key at lines %u and %u",
                            first->line, again->line);
}

static int builder_event(Builder *b, const yaml_event_t *ev, bool *ret_done) {
        unsigned line = (unsigned) ev->start_mark.line + 1, column = (unsigned) ev->start_mark.column + 1;
        YamlNode *n;
        int r;

        switch (ev->type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
        case YAML_NO_EVENT:
                return 0;

        case YAML_STREAM_END_EVENT:
                if (!b->seen_document)
                        return builder_fail(b, line, column, NULL, "no YAML document (the input is empty)");
                *ret_done = true;
                return 0;

        case YAML_DOCUMENT_START_EVENT:
                if (b->seen_document)
                        return builder_fail(b, line, column, NULL,
                                            "more than one YAML document: only one is allowed per file");
                b->seen_document = true;
                return 0;

        case YAML_ALIAS_EVENT:
                /* A placeholder node gives the message the key path where the alias stands. */
                r = builder_add(b, YAML_NODE_SCALAR, ev, &n);
                if (r < 0)
                        return r;
                return builder_fail(b, line, column, node_is_key(n) ? n->parent : n,
                                    "anchors and aliases are not supported (*%.64s)",
                                    (const char *) ev->data.alias.anchor);

        case YAML_SCALAR_EVENT:
                return builder_scalar(b, ev);

        case YAML_MAPPING_START_EVENT:
                return builder_start(b, YAML_NODE_MAPPING, ev);

        case YAML_SEQUENCE_START_EVENT:
                return builder_start(b, YAML_NODE_SEQUENCE, ev);

        case YAML_MAPPING_END_EVENT:
                assert(b->depth > 0);
                r = builder_check_duplicates(b, b->stack[b->depth - 1]);
                if (r < 0)
                        return r;
                b->depth--;
                return 0;

        case YAML_SEQUENCE_END_EVENT:
                assert(b->depth > 0);
                b->depth--;
                return 0;
        }
        return 0;
}

int yaml_tree_parse(const char *data, size_t size, YamlNode **ret, char **ret_error) {
        Builder b = {};
        bool done = false;
        int r = 0;

        assert(data || size == 0);
        assert(ret);
        assert(ret_error);

        *ret_error = NULL;
        if (!yaml_parser_initialize(&b.parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&b.parser, (const unsigned char *) (data ?: ""), size);

        while (!done) {
                yaml_event_t ev;

                if (!yaml_parser_parse(&b.parser, &ev)) {
                        r = builder_fail_libyaml(&b);
                        break;
                }
                r = builder_event(&b, &ev, &done);
                yaml_event_delete(&ev);
                if (r < 0)
                        break;
        }
        yaml_parser_delete(&b.parser);

        if (r < 0) {
                yaml_node_free(b.root);
                if (r == -EINVAL)
                        *ret_error = b.error;
                else
                        free(b.error);
                log_debug("Failed to parse YAML: %s", strna(*ret_error));
                return r;
        }

        assert(b.root);
        *ret = b.root;
        return 0;
}
