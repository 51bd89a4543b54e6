/* Agent role: jumpstarterd started with a ClientConfig serves the client's leased DUTs */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-role.h"
#include "log.h"
#include "macro.h"
#include "yaml-tree.h"

static int config_file_is_client_config(const char *path) {
        _cleanup_free_ char *data = NULL, *error = NULL;
        _cleanup_(yaml_node_freep) YamlNode *root = NULL;
        size_t size = 0;
        YamlNode *kind;
        FILE *f;

        f = fopen(path, "re");
        if (!f)
                return log_error_errno(errno, "Failed to open %s: %m", path);
        {
                FILE *m = open_memstream(&data, &size);
                char buf[4096];
                size_t n;

                if (!m) {
                        fclose(f);
                        return log_oom();
                }
                while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                        fwrite(buf, 1, n, m);
                if (ferror(f)) {
                        fclose(f);
                        fclose(m);
                        return log_error_errno(EIO, "Failed to read %s", path);
                }
                fclose(f);
                if (fclose(m) != 0)
                        return log_oom();
        }

        /* Whatever does not parse is the other loader's to explain. */
        if (yaml_tree_parse(data, size, &root, &error) < 0 || root->type != YAML_NODE_MAPPING)
                return 0;
        kind = yaml_node_get(root, "kind");
        return kind && kind->type == YAML_NODE_SCALAR && streq(kind->scalar, CLIENT_CONFIG_KIND);
}

int agent_role_load(const char *path, ClientConfig **ret_client, ExporterConfig **ret_exporter_config) {
        _cleanup_(client_config_freep) ClientConfig *client = NULL;
        _cleanup_free_ char *error = NULL;
        ExporterConfig *e;
        int r;

        r = config_file_is_client_config(path);
        if (r <= 0)
                return r;

        r = client_config_load(path, &client, &error);
        if (r < 0) {
                if (error)
                        return log_error_errno(r, "%s", error);
                return log_error_errno(r, "Failed to load %s: %m", path);
        }

        e = calloc(1, sizeof *e);
        if (!e)
                return log_oom();
        e->path = strdup(client->path ?: path);
        e->name = strdup(client->name);
        if (!e->path || !e->name) {
                exporter_config_free(e);
                return log_oom();
        }

        *ret_client = TAKE_PTR(client);
        *ret_exporter_config = e;
        return 1;
}

int agent_role_token_dir(const char *socket_path, char **ret) {
        const char *slash = strrchr(socket_path, '/');
        int n;

        if (!slash)
                n = asprintf(ret, "leases");
        else
                n = asprintf(ret, "%.*s/leases", (int) (slash - socket_path), socket_path);
        return n < 0 ? -ENOMEM : 0;
}
