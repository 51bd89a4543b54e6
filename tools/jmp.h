/* jmp: the command line of Jumpstarter */
#pragma once

#include <jansson.h>
#include <stdbool.h>

int verb_local(int argc, char *argv[]);
int verb_power(int argc, char *argv[]);
int verb_storage(int argc, char *argv[]);
int verb_lease(int argc, char *argv[]);
int verb_get(int argc, char *argv[]);
int verb_admin(int argc, char *argv[]);
int verb_auth(int argc, char *argv[]);
/* jmp admin exporter (tools/jmp-admin-exporter.c) */
int admin_exporter(int argc, char *argv[]);

/* The default mount point of the file view. */
#define DEFAULT_MOUNTPOINT "/jmp"

/* Shared by the verbs that talk to a controller (tools/jmp-remote.c). */

typedef struct ClientConfig ClientConfig;
typedef struct ApiClient ApiClient;

/* --client-config before the command ("jmp --client-config FILE lease list"); a verb's own
 * --client-config wins. */
extern const char *arg_client_config;

/* --client-config FILE, else $JMP_CLIENT_CONFIG, else $XDG_CONFIG_HOME/jumpstarter/clients/default.yaml
 * (~/.config/...). Loads it and makes a client; prints why not and returns < 0 on failure. */
int remote_open(ClientConfig **ret_config, ApiClient **ret_client);
/* Prints "jmp: WHAT: Reason: message" (with a hint for a refused token) and returns 1, the exit code. */
int remote_fail(ApiClient *a, int r, const char *format, ...) __attribute__((format(printf, 3, 4)));

/* -o: the default table or the API's JSON. Returns 0 or prints why not and returns -EINVAL. */
typedef enum OutputFormat {
        OUTPUT_TABLE,
        OUTPUT_JSON,
} OutputFormat;
int parse_output_format(const char *s, OutputFormat *ret);
void print_json(json_t *j);

/* The option value of --client-config in the verbs' getopt tables. */
#define ARG_CLIENT_CONFIG 0x100
#define CLIENT_CONFIG_HELP_FOR(who)                                                                     \
        "  --client-config FILE  The " who "client config (default: $JMP_CLIENT_CONFIG, else\n"        \
        "                        $XDG_CONFIG_HOME/jumpstarter/clients/default.yaml)\n"
#define CLIENT_CONFIG_HELP CLIENT_CONFIG_HELP_FOR("")

/* o[key] as a string, NULL when missing or not a string. */
static inline const char *str_member(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

/* Options of the verbs that take nothing but --client-config, -o (when format is not NULL) and
 * --by (when by is not NULL). Returns 1 to go on, 0 after --help, -EINVAL after saying why not. */
int parse_remote_options(int argc, char *argv[], const char *usage, OutputFormat *format, const char **by);
/* Refuses arguments after the options: prints why and returns -EINVAL. */
int check_no_arguments(int argc, char *argv[], const char *usage);
/* GETs path and finds the answer's "items" array. Prints why not ("Failed to list WHAT") and
 * returns 1, the exit code; else 0, *ret_answer owning *ret_items. */
int remote_get_items(ApiClient *a, const char *path, const char *what, json_t **ret_answer, json_t **ret_items);

/* "k=v" into obj[k] = v (what: "label", "metadata"). Prints why not and returns -EINVAL. */
int parse_key_value(const char *s, json_t *obj, const char *what);
/* A duration as the API takes it ("30m", "1.5h", "90"): prints why not and returns -EINVAL. */
int check_duration(const char *s, const char *option);

/* A table like kubectl's: columns padded to the widest cell, separated by three spaces. */
typedef struct Table Table;
Table *table_new(const char *const *headers); /* NULL-terminated */
Table *table_free(Table *t);
/* One cell per column, in order; NULL or "" prints as "<none>". */
int table_add(Table *t, ...);
void table_print(const Table *t);
static inline void table_freep(Table **t) {
        if (*t)
                table_free(*t);
}

/* {"k": "v", ...} as "k=v,k2=v2" sorted by key; NULL on OOM, "" for none. */
char *labels_to_string(json_t *labels);

/* Lease output: a table (with the CLIENT and METADATA columns when wide) or the JSON. */
void print_leases(json_t *items, OutputFormat format, bool wide);
/* "ExportersBusy, position 2 in queue" for a pending lease; NULL on OOM. */
char *lease_pending_text(json_t *lease);
