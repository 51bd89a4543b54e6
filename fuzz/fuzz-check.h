/* CHECK() for fuzzers: not assert(), the checks must hold in any build type */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(e)                                                                        \
        do {                                                                            \
                if (!(e)) {                                                             \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #e); \
                        abort();                                                        \
                }                                                                       \
        } while (0)

/* A config parser that failed: nothing half-parsed (parsed is whether it returned an object
 * anyway), and unless memory ran out a one-line message that starts with "PATH:". */
static inline void check_config_error(int r, bool parsed, const char *error, const char *path) {
        CHECK(r < 0);
        CHECK(!parsed);
        if (r == -ENOMEM)
                return;
        CHECK(error);
        CHECK(strncmp(error, path, strlen(path)) == 0 && error[strlen(path)] == ':');
        CHECK(!strchr(error, '\n'));
}
