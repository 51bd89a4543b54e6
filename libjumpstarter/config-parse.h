/* What the YAML config parsers share: messages with positions, type checks, addresses, paths */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "yaml-tree.h"

/* Every config kind: at most this large, and this apiVersion. */
#define CONFIG_SIZE_MAX (1024 * 1024)
#define CONFIG_API_VERSION "jumpstarter.dev/v1alpha1"
/* Long user strings are cut in messages; the position already says where the rest is. */
#define CONFIG_QUOTE_MAX 64

typedef struct ConfigParser {
        const char *path; /* absolute, for messages */
        const char *dir;  /* its directory, for relative paths in the file */
        char *error;      /* the first problem; the others follow from it */
        /* ClientConfig messages write a newline and a tab in a quoted value as \n and \t, the
         * other kinds as \x0a and \x09. */
        bool short_escapes;
} ConfigParser;

/* "text" with quotes and control characters escaped, cut at CONFIG_QUOTE_MAX bytes ("..." after
 * the closing quote then). NULL on OOM. */
char *config_quote(const char *s, size_t len, bool short_escapes);
/* What was found, for "expected X, got Y": a quoted scalar, "nothing", "a mapping", ... */
char *config_got(const ConfigParser *p, const YamlNode *n);

/* Records "FILE:LINE:COLUMN: KEY.PATH: problem" (only the first one) and returns -EINVAL, or
 * -ENOMEM. */
_printf_(3, 4) int config_fail(ConfigParser *p, const YamlNode *at, const char *format, ...);

int config_expect_mapping(ConfigParser *p, const YamlNode *n, const char *what);
/* Optional mappings may be left empty ("labels:"). Returns 0 for nothing, 1 for a mapping. */
int config_optional_mapping(ConfigParser *p, const YamlNode *n, const char *what);
/* Keys may contain NUL bytes; such a key is never one we know. */
bool config_key_is(const YamlNode *k, const char *s);
/* ", "-joined names for "(known: ...)". NULL on OOM. */
char *config_join(const char *const *names, size_t n);
/* Refuses a key not in known, naming the known ones. */
int config_check_keys(ConfigParser *p, const YamlNode *m, const char *const *known, size_t n_known);
int config_require_key(ConfigParser *p, const YamlNode *m, const char *key, const YamlNode **ret);
/* A string value. Plain numbers and booleans are not strings: "123" is, 123 is not. optional: an
 * empty value gives NULL. */
int config_get_string(ConfigParser *p, const YamlNode *n, bool optional, char **ret);
/* The value of v, already read as s, must be want. */
int config_check_exact(ConfigParser *p, const YamlNode *v, const char *s, const char *want);
/* Required key of m whose string value must be want ("apiVersion", "kind"). */
int config_get_exact(ConfigParser *p, const YamlNode *m, const char *key, const char *want);
/* The top of a config file: a mapping (what: "with apiVersion, kind and ..." for the message), no
 * key but the known ones, apiVersion exactly CONFIG_API_VERSION and kind exactly kind. */
int config_check_header(ConfigParser *p, const YamlNode *root, const char *what, const char *const *known,
                        size_t n_known, const char *kind);

/* Paths: empty and "." components dropped. ".." stays: resolving it lexically would be wrong
 * across symlinks, and the kernel does it right at open time. */
int config_path_join(const char *dir, const char *path, char **ret);
int config_path_make_absolute(const char *path, char **ret);

/* The file's first CONFIG_SIZE_MAX + 1 bytes, so that the parser can tell "too large" from
 * "exactly 1 MiB". Returns 0 or a negative errno. */
int config_read_file(const char *path, char **ret, size_t *ret_size);
/* config_path_make_absolute(), and on failure a message naming the path in *ret_error. */
int config_make_absolute(const char *path, char **ret, char **ret_error);
/* Before parsing: the absolute path, its directory, the size check and the YAML tree. On failure
 * *ret_error says why, with the file's name (NULL on OOM). */
int config_parse_begin(const char *path, const char *data, size_t size, YamlNode **ret_root, char **ret_abs,
                       char **ret_dir, char **ret_error);

/* Addresses. "HOST:PORT" / "[V6]:PORT" split into the host (without brackets, host_len 0 for
 * ":PORT") and the port; false without a port. */
bool config_split_host_port(const char *s, const char **ret_host, size_t *ret_host_len, bool *ret_bracketed,
                            const char **ret_port);
/* A decimal port without sign or leading zeros, min..65535. */
bool config_port_is_valid(const char *s, unsigned min);
bool config_ipv4_is_valid(const char *s, size_t len);
bool config_ipv6_is_valid(const char *s, size_t len);
/* Dot-separated labels of letters, digits and '-', not starting or ending with '-'. */
bool config_host_name_is_valid(const char *s, size_t len);
