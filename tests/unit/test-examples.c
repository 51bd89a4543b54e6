/* Every shipped config (examples/, .jumpstarter/) parses: the docs' examples stay true */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>

#include "config.h"
#include "controller-config.h"
#include "macro.h"
#include "tests.h"

static const char *source_root;

/* A file without a top-level apiVersion is a fragment: the export: section a user appends to what
 * `jmp admin create exporter` writes (examples/distributed/). It is checked under such a header. */
static int load(const char *path, ExporterConfig **ret, char **ret_error) {
        static const char header[] = "apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\n"
                                     "metadata: {name: fragment}\n";
        char buf[65536];
        size_t n;
        FILE *f;

        f = fopen(path, "re");
        if (!f)
                return -errno;
        memcpy(buf, header, sizeof header - 1);
        n = fread(buf + sizeof header - 1, 1, sizeof buf - sizeof header, f);
        fclose(f);
        n += sizeof header - 1;
        buf[n] = 0;
        if (strncmp(buf + sizeof header - 1, "apiVersion:", 11) == 0 || strstr(buf, "\napiVersion:")) {
                _cleanup_free_ char *kind = NULL;
                int r;

                r = config_file_peek_kind(path, &kind);
                if (r < 0)
                        return r;
                if (kind && streq(kind, "ControllerConfig")) {
                        ControllerConfig *c = NULL;

                        r = controller_config_load(path, &c, ret_error);
                        controller_config_free(c);
                        return r < 0 ? r : 0;
                }
                return exporter_config_load(path, ret, ret_error);
        }
        return exporter_config_parse(path, buf, n, ret, ret_error);
}

static unsigned check_dir(const char *dir) {
        unsigned n = 0;
        struct dirent *de;
        DIR *d;

        d = opendir(dir);
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char path[4096];
                size_t len = strlen(de->d_name);

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
                if (de->d_type == DT_DIR) {
                        n += check_dir(path);
                        continue;
                }
                if (len < 6 || strcmp(de->d_name + len - 5, ".yaml") != 0)
                        continue;
                {
                        ExporterConfig *c = NULL;
                        char *error = NULL;
                        int r = load(path, &c, &error);

                        if (r < 0)
                                ASSERT_FAIL("%s does not parse: %s", path, error ? error : strerror(-r));
                        ASSERT_TRUE(!c || c->n_duts > 0); /* no ExporterConfig: another kind that parsed */
                        exporter_config_free(c);
                        fprintf(stderr, "ok %s\n", path);
                        n++;
                }
        }
        closedir(d);
        return n;
}

TEST(examples_parse) {
        char dir[4096];
        unsigned n = 0;

        snprintf(dir, sizeof dir, "%s/.jumpstarter", source_root);
        n += check_dir(dir);
        ASSERT_TRUE(n >= 1); /* the repository's local-config.yaml at least */
        snprintf(dir, sizeof dir, "%s/examples", source_root);
        n += check_dir(dir);
        fprintf(stderr, "%u configs parse\n", n);
}

int main(int argc, char *argv[]) {
        source_root = argc > 1 ? argv[1] : ".";
        test_examples_parse();
        return 0;
}
