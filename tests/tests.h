/* A tiny test harness: TEST() cases, ASSERT_*() that print both values on failure */
#pragma once

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct TestCase {
        const char *name;
        void (*func)(void);
} TestCase;

#define MAX_TESTS 256
static TestCase tests_registered[MAX_TESTS];
static unsigned tests_n;

#define TEST(n)                                                                  \
        static void test_##n(void);                                             \
        __attribute__((constructor)) static void register_##n(void) {           \
                if (tests_n < MAX_TESTS)                                        \
                        tests_registered[tests_n++] = (TestCase) { #n, test_##n }; \
        }                                                                        \
        static void test_##n(void)

#define ASSERT_FAIL(fmt, ...)                                                    \
        do {                                                                     \
                fprintf(stderr, "%s:%d: assertion failed: " fmt "\n", __FILE__, __LINE__, __VA_ARGS__); \
                abort();                                                         \
        } while (0)

#define ASSERT_TRUE(e)                                                           \
        do {                                                                     \
                if (!(e))                                                        \
                        ASSERT_FAIL("%s", #e);                                   \
        } while (0)
#define ASSERT_FALSE(e) ASSERT_TRUE(!(e))

#define ASSERT_EQ(a, b)                                                          \
        do {                                                                     \
                intmax_t _a = (intmax_t) (a), _b = (intmax_t) (b);               \
                if (_a != _b)                                                    \
                        ASSERT_FAIL("%s == %s (%jd != %jd)", #a, #b, _a, _b);    \
        } while (0)
#define ASSERT_EQ_U(a, b)                                                        \
        do {                                                                     \
                uintmax_t _a = (uintmax_t) (a), _b = (uintmax_t) (b);            \
                if (_a != _b)                                                    \
                        ASSERT_FAIL("%s == %s (%ju != %ju)", #a, #b, _a, _b);    \
        } while (0)
#define ASSERT_OK(e)                                                             \
        do {                                                                     \
                intmax_t _r = (intmax_t) (e);                                    \
                if (_r < 0)                                                      \
                        ASSERT_FAIL("%s succeeds (got %jd: %s)", #e, _r, strerror((int) -_r)); \
        } while (0)
#define ASSERT_STREQ(a, b)                                                       \
        do {                                                                     \
                const char *_a = (a), *_b = (b);                                 \
                if (!_a || !_b || strcmp(_a, _b) != 0)                           \
                        ASSERT_FAIL("%s == %s (\"%s\" != \"%s\")", #a, #b,       \
                                    _a ? _a : "(null)", _b ? _b : "(null)");     \
        } while (0)
#define ASSERT_CONTAINS(haystack, needle)                                        \
        do {                                                                     \
                const char *_h = (haystack), *_n = (needle);                     \
                if (!_h || !strstr(_h, _n))                                      \
                        ASSERT_FAIL("\"%s\" contains \"%s\"", _h ? _h : "(null)", _n); \
        } while (0)

/* Runs every TEST(), or only those named on the command line. */
#define TEST_MAIN()                                                              \
        int main(int argc, char *argv[]) {                                       \
                unsigned ran = 0;                                                \
                for (unsigned i = 0; i < tests_n; i++) {                         \
                        int want = argc <= 1;                                    \
                        for (int j = 1; j < argc; j++)                           \
                                if (strcmp(argv[j], tests_registered[i].name) == 0) \
                                        want = 1;                                \
                        if (!want)                                               \
                                continue;                                        \
                        fprintf(stderr, "== %s\n", tests_registered[i].name);    \
                        tests_registered[i].func();                              \
                        ran++;                                                   \
                }                                                                \
                fprintf(stderr, "%u tests passed\n", ran);                       \
                return ran > 0 ? 0 : 1;                                          \
        }
