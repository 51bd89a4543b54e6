/* A YAML document as a small tree of scalars, mappings and sequences, with source positions */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

/* Hostile input must not be able to exhaust the stack (tree walks recurse) or memory. */
#define YAML_TREE_DEPTH_MAX 64
#define YAML_TREE_NODES_MAX 100000

typedef enum YamlNodeType {
        YAML_NODE_SCALAR,
        YAML_NODE_MAPPING,
        YAML_NODE_SEQUENCE,
        _YAML_NODE_TYPE_MAX,
        _YAML_NODE_TYPE_INVALID = -EINVAL,
} YamlNodeType;

/* What a scalar means under the YAML 1.2 core schema. Only plain scalars can be anything but a
 * string: a quoted "123" or a block scalar is always a string. */
typedef enum YamlScalarKind {
        YAML_SCALAR_STRING,
        YAML_SCALAR_NULL,  /* "", ~, null */
        YAML_SCALAR_BOOL,  /* true, false */
        YAML_SCALAR_INT,   /* 12, -3, 0x1f, 0o17 */
        YAML_SCALAR_FLOAT, /* 1.5, 1e3, .inf, .nan */
        _YAML_SCALAR_KIND_MAX,
        _YAML_SCALAR_KIND_INVALID = -EINVAL,
} YamlScalarKind;

typedef struct YamlNode YamlNode;

typedef struct YamlPair {
        YamlNode *key; /* always a scalar */
        YamlNode *value;
} YamlPair;

struct YamlNode {
        YamlNodeType type;
        unsigned line, column; /* 1-based, where the node starts */

        /* YAML_NODE_SCALAR. A double-quoted scalar may contain NUL bytes ("\0"), so scalar_len is
         * the truth and strlen(scalar) < scalar_len tells about them. */
        char *scalar;
        size_t scalar_len;
        bool quoted; /* written quoted, as a block scalar, or tagged !!str */

        /* YAML_NODE_MAPPING, in file order; keys are unique */
        YamlPair *pairs;
        size_t n_pairs;

        /* YAML_NODE_SEQUENCE */
        YamlNode **items;
        size_t n_items;

        /* Where this node hangs: a pair (as key or value) of a mapping, or an item of a sequence.
         * NULL for the root. Lets error messages name the key path of any node. */
        YamlNode *parent;
        size_t index;
};

/* Parses exactly one YAML document. On failure returns -EINVAL (-ENOMEM) and, in *ret_error, a
 * message "LINE:COLUMN: KEY.PATH: what is wrong", or "LINE:COLUMN: what is wrong" where no key is
 * involved (caller frees). Anchors, aliases, tags other than !!str, non-scalar keys, duplicate keys
 * and more than one document are refused. */
int yaml_tree_parse(const char *data, size_t size, YamlNode **ret, char **ret_error);

YamlNode *yaml_node_free(YamlNode *n);
static inline void yaml_node_freep(YamlNode **n) {
        if (*n)
                yaml_node_free(*n);
}

/* The value of key in a mapping, or NULL. Keys with embedded NULs never match. */
YamlNode *yaml_node_get(const YamlNode *mapping, const char *key);

/* "export.dut1.config.size", "items[2].name"; "" for the root. Control characters in keys are
 * written as \xNN so that a message cannot be made to look like something else. */
int yaml_node_path(const YamlNode *n, char **ret);

YamlScalarKind yaml_node_scalar_kind(const YamlNode *n);
/* A scalar that the core schema reads as a string, without NUL bytes. */
bool yaml_node_is_string(const YamlNode *n);
bool yaml_node_is_null(const YamlNode *n);

/* "a mapping", "a sequence", "a string", "null", "a number", "a boolean": for "expected X, got Y". */
const char *yaml_node_describe(const YamlNode *n);

const char *yaml_node_type_to_string(YamlNodeType t);
