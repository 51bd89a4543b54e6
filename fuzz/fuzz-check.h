/* CHECK() for fuzzers: not assert(), the checks must hold in any build type */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#define CHECK(e)                                                                        \
        do {                                                                            \
                if (!(e)) {                                                             \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #e); \
                        abort();                                                        \
                }                                                                       \
        } while (0)
