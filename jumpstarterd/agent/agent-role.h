/* Agent role: jumpstarterd started with a ClientConfig serves the client's leased DUTs */
#pragma once

#include "client-config.h"
#include "config.h"

/* Loads path if it is a ClientConfig: returns 1 with the config and, for the exporter, an
 * ExporterConfig without DUTs (the DUTs come with leases); 0 when the file is of another kind (or
 * does not parse as YAML: the caller's loader says why); a negative errno, logged, when it is a
 * ClientConfig with errors or cannot be read. */
int agent_role_load(const char *path, ClientConfig **ret_client, ExporterConfig **ret_exporter_config);

/* Where the lease watcher keeps stream tokens: a directory "leases" beside the agent socket. */
int agent_role_token_dir(const char *socket_path, char **ret);
