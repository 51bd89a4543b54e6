/* Every shipped config (examples/, .jumpstarter/) parses: the docs' examples stay true */
#include <dirent.h>
#include <stdio.h>

#include "config.h"
#include "macro.h"
#include "tests.h"

static const char *source_root;

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
                        int r = exporter_config_load(path, &c, &error);

                        if (r < 0)
                                ASSERT_FAIL("%s does not parse: %s", path, error ? error : strerror(-r));
                        ASSERT_TRUE(c->n_duts > 0);
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
