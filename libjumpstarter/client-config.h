/* Client configuration: the ClientConfig YAML that tells jmp where the controller is and who it is */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "file-util.h"

#define CLIENT_CONFIG_API_VERSION "jumpstarter.dev/v1alpha1"
#define CLIENT_CONFIG_KIND "ClientConfig"

/*
 * apiVersion: jumpstarter.dev/v1alpha1
 * kind: ClientConfig
 * metadata: {name: alice, namespace: default}
 * endpoint: "192.0.2.10:8443"
 * tls: {ca: "-----BEGIN CERTIFICATE-----\n...", insecure: false}
 * token: "eyJ..."
 */
typedef struct ClientConfig {
        char *path;      /* absolute path of the file it was read from; NULL for one made in memory */
        char *name;      /* metadata.name: the client's name, a DUT name */
        char *namespace; /* metadata.namespace, optional */
        char *endpoint;  /* HOST:PORT or [IPV6]:PORT of the controller's API */
        /* tls.ca as PEM (read from the file when the config names one), or NULL: the system's CAs. */
        char *ca_pem;
        bool insecure;   /* tls.insecure: do not verify the controller's certificate (tests only) */
        char *token;     /* the bearer token */
} ClientConfig;

/* Parses and validates a ClientConfig. On failure returns a negative errno and, in *ret_error, a
 * message "FILE:LINE:COLUMN: KEY.PATH: what is wrong" (caller frees). -ENOENT etc. for an unreadable
 * file (the message names it), -EINVAL for any content error. */
int client_config_load(const char *path, ClientConfig **ret, char **ret_error);
/* The same from a buffer; path is used for messages and for resolving a relative tls.ca. */
int client_config_parse(const char *path, const char *data, size_t size, ClientConfig **ret, char **ret_error);
ClientConfig *client_config_free(ClientConfig *c);
static inline void client_config_freep(ClientConfig **c) {
        if (*c)
                client_config_free(*c);
}

/* The YAML text of a config (name, endpoint and token must be set), with the CA inline. */
int client_config_format(const ClientConfig *c, char **ret);
/* Writes the config to path, mode 0600, atomically (a temporary file renamed over the old one). */
int client_config_write(const ClientConfig *c, const char *path);

/* Helpers for writing configs. (endpoint_is_valid() is in config.h.) */

/* A bearer token as a header may carry it: 1..8192 characters of base64url and dots. */
bool bearer_token_is_valid(const char *s);
/* s as a YAML double-quoted scalar, control characters escaped. NULL on OOM. */
char *yaml_quote_string(const char *s);
