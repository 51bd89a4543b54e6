/* Controller configuration: the ControllerConfig YAML, validated before anything starts */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define CONTROLLER_CONFIG_KIND "ControllerConfig"
#define CONTROLLER_TOKEN_LIFETIME_DEFAULT_USEC (365ULL * 24 * 3600 * USEC_PER_SEC)
#define CONTROLLER_STREAM_TOKEN_LIFETIME_DEFAULT_USEC (10ULL * 60 * USEC_PER_SEC)

/* The keys are described in docs/controller.md. */
typedef struct ControllerConfig {
        char *path;             /* absolute path of the file it was read from */
        char *name;             /* metadata.name: the tokens' "iss" */
        char *listen;           /* "IPv4:port", "[IPv6]:port" or ":port" */
        /* What generated configs point at. Defaults to the listen address, with 127.0.0.1 for a
         * wildcard one; endpoint_set tells whether the file said it (port 0 is then the one the
         * kernel picked, which only the server knows). */
        char *endpoint;
        bool endpoint_set;
        char *certificate;      /* absolute paths */
        char *key;
        char *ca;               /* default: the certificate */
        char *state_directory;  /* absolute */
        char *policy;           /* absolute path of the AccessPolicy; NULL: no policy, all allowed */
        char *router_listen;    /* NULL: no router */
        char *router_advertise; /* "IP:PORT" the router is dialed at; NULL: see docs/controller.md */
        uint64_t token_lifetime_usec;
        uint64_t stream_token_lifetime_usec;
        uint64_t history_retention_usec; /* history.retention; 0: keep all lease history */
} ControllerConfig;

/* Parses and validates a whole config. On failure returns a negative errno and, in *ret_error, a
 * message "FILE:LINE:COLUMN: KEY.PATH: what is wrong" (caller frees). */
int controller_config_load(const char *path, ControllerConfig **ret, char **ret_error);
int controller_config_parse(const char *path, const char *data, size_t size, ControllerConfig **ret,
                            char **ret_error);
ControllerConfig *controller_config_free(ControllerConfig *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(ControllerConfig *, controller_config_free);

/* The top-level "kind" of a YAML config file, so that a program can pick the parser. *ret is NULL
 * (and 0 returned) when the file parses but has no string "kind", or does not parse: the parser
 * for the expected kind then says what is wrong. -errno if the file cannot be read. */
int config_file_peek_kind(const char *path, char **ret);

/* "IPv4:port", "[IPv6]:port" or ":port", numeric, port 0..65535 (HttpServerConfig.listen). */
bool listen_address_is_valid(const char *s);
