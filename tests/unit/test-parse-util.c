/* Tests for the parsing of sizes, durations, booleans and integers */
#include <errno.h>

#include "macro.h"
#include "parse-util.h"
#include "tests.h"

static uint64_t size_ok(const char *s) {
        uint64_t v = 0;

        ASSERT_OK(parse_size(s, &v));
        return v;
}

static uint64_t duration_ok(const char *s) {
        uint64_t v = 0;

        ASSERT_OK(parse_duration(s, &v));
        return v;
}

TEST(size) {
        ASSERT_EQ_U(size_ok("0"), 0);
        ASSERT_EQ_U(size_ok("4096"), 4096);
        ASSERT_EQ_U(size_ok("4096B"), 4096);
        ASSERT_EQ_U(size_ok("512k"), 512 * 1024);
        ASSERT_EQ_U(size_ok("64KiB"), 64 * 1024);
        ASSERT_EQ_U(size_ok("64K"), 64 * 1024);
        ASSERT_EQ_U(size_ok("2M"), 2 * 1024 * 1024);
        ASSERT_EQ_U(size_ok("64MiB"), UINT64_C(64) << 20);
        ASSERT_EQ_U(size_ok("64 MiB"), UINT64_C(64) << 20);
        ASSERT_EQ_U(size_ok("1G"), UINT64_C(1) << 30);
        ASSERT_EQ_U(size_ok("1GiB"), UINT64_C(1) << 30);
        ASSERT_EQ_U(size_ok("3TiB"), UINT64_C(3) << 40);
        ASSERT_EQ_U(size_ok("1.5G"), UINT64_C(3) << 29);
        ASSERT_EQ_U(size_ok("0.5K"), 512);
        ASSERT_EQ_U(size_ok(".5K"), 512);
        ASSERT_EQ_U(size_ok("18446744073709551615"), UINT64_MAX);
        ASSERT_EQ_U(size_ok("16777215T"), (UINT64_C(16777215) << 40));
}

TEST(size_invalid) {
        static const char *const bad[] = {
                "", " ", "-1", "-1K", "+1", " 1", "1 ", "1x", "1KB", "1MB", "1m", "1.", "1.K", ".", "K",
                "1 2", "1K ", "0x10", "1e3", "1,5K", "1KiBB",
        };
        uint64_t v = 4711;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = parse_size(bad[i], &v);

                if (r != -EINVAL)
                        ASSERT_FAIL("parse_size(\"%s\") = %d, expected -EINVAL", bad[i], r);
        }
        ASSERT_EQ_U(v, 4711);
}

TEST(size_overflow) {
        uint64_t v = 0;

        ASSERT_EQ(parse_size("18446744073709551616", &v), -ERANGE);
        ASSERT_EQ(parse_size("99999999999999999999999", &v), -ERANGE);
        ASSERT_EQ(parse_size("16777216T", &v), -ERANGE);
        ASSERT_EQ(parse_size("17179869184G", &v), -ERANGE);
        ASSERT_EQ(parse_size("16777215.99999999999T", &v), 0);
        ASSERT_TRUE(v > (UINT64_C(16777215) << 40));
}

TEST(duration) {
        ASSERT_EQ_U(duration_ok("0"), 0);
        ASSERT_EQ_U(duration_ok("300ms"), 300 * USEC_PER_MSEC);
        ASSERT_EQ_U(duration_ok("2s"), 2 * USEC_PER_SEC);
        ASSERT_EQ_U(duration_ok("2"), 2 * USEC_PER_SEC);
        ASSERT_EQ_U(duration_ok("1.5s"), 1500 * USEC_PER_MSEC);
        ASSERT_EQ_U(duration_ok("1.5"), 1500 * USEC_PER_MSEC);
        ASSERT_EQ_U(duration_ok("5m"), 300 * USEC_PER_SEC);
        ASSERT_EQ_U(duration_ok("5min"), 300 * USEC_PER_SEC);
        ASSERT_EQ_U(duration_ok("1h"), 3600 * USEC_PER_SEC);
        ASSERT_EQ_U(duration_ok("1d"), 86400 * USEC_PER_SEC);
        ASSERT_EQ_U(duration_ok("250us"), 250);
        ASSERT_EQ_U(duration_ok("0.0005s"), 500);
        ASSERT_EQ_U(duration_ok("1.0000001s"), USEC_PER_SEC);
        ASSERT_EQ_U(duration_ok("100 ms"), 100 * USEC_PER_MSEC);
}

TEST(duration_invalid) {
        static const char *const bad[] = {
                "", "-1s", "+1s", "1x", "1ss", "s", "ms", "1 ", " 1s", "1.s", "1,5s", "1h30m", "1S", "inf",
        };
        uint64_t v = 4711;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = parse_duration(bad[i], &v);

                if (r != -EINVAL)
                        ASSERT_FAIL("parse_duration(\"%s\") = %d, expected -EINVAL", bad[i], r);
        }
        ASSERT_EQ_U(v, 4711);
        ASSERT_EQ(parse_duration("18446744073709551616us", &v), -ERANGE);
        ASSERT_EQ(parse_duration("213503983d", &v), -ERANGE);
        ASSERT_EQ(parse_duration("18446744073710s", &v), -ERANGE);
}

TEST(boolean) {
        static const char *const yes[] = { "true", "yes", "on", "1", "True", "YES" };
        static const char *const no[] = { "false", "no", "off", "0", "False", "OFF" };
        static const char *const bad[] = { "", "2", "y", "n", "truee", " true", "enabled" };
        bool b;

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                b = false;
                ASSERT_OK(parse_boolean(yes[i], &b));
                ASSERT_TRUE(b);
        }
        for (size_t i = 0; i < ELEMENTSOF(no); i++) {
                b = true;
                ASSERT_OK(parse_boolean(no[i], &b));
                ASSERT_FALSE(b);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_EQ(parse_boolean(bad[i], &b), -EINVAL);
}

TEST(uint64) {
        uint64_t v = 0;

        ASSERT_OK(parse_uint64("0", &v));
        ASSERT_EQ_U(v, 0);
        ASSERT_OK(parse_uint64("42", &v));
        ASSERT_EQ_U(v, 42);
        ASSERT_OK(parse_uint64("18446744073709551615", &v));
        ASSERT_EQ_U(v, UINT64_MAX);
        ASSERT_EQ(parse_uint64("18446744073709551616", &v), -ERANGE);
        ASSERT_EQ(parse_uint64("", &v), -EINVAL);
        ASSERT_EQ(parse_uint64("-1", &v), -EINVAL);
        ASSERT_EQ(parse_uint64("+1", &v), -EINVAL);
        ASSERT_EQ(parse_uint64(" 1", &v), -EINVAL);
        ASSERT_EQ(parse_uint64("1 ", &v), -EINVAL);
        ASSERT_EQ(parse_uint64("1k", &v), -EINVAL);
        ASSERT_EQ(parse_uint64("1.0", &v), -EINVAL);
        ASSERT_EQ_U(v, UINT64_MAX);
}

TEST(format_duration) {
        char buf[32];

        ASSERT_STREQ(format_duration(buf, sizeof(buf), 0), "0");
        ASSERT_STREQ(format_duration(buf, sizeof(buf), 250), "250us");
        ASSERT_STREQ(format_duration(buf, sizeof(buf), 300 * USEC_PER_MSEC), "300ms");
        ASSERT_STREQ(format_duration(buf, sizeof(buf), 1500 * USEC_PER_MSEC), "1.5s");
        ASSERT_STREQ(format_duration(buf, sizeof(buf), 2 * USEC_PER_SEC), "2s");
        ASSERT_STREQ(format_duration(buf, sizeof(buf), 300 * USEC_PER_SEC), "5min");
        ASSERT_STREQ(format_duration(buf, sizeof(buf), 3600 * USEC_PER_SEC), "1h");
        ASSERT_STREQ(format_duration(buf, sizeof(buf), 1234567), "1.235s");
        ASSERT_STREQ(format_duration(buf, sizeof(buf), 1999999), "2s");
        ASSERT_STREQ(format_duration(buf, sizeof(buf), 1250 * USEC_PER_MSEC), "1.25s");
        ASSERT_STREQ(format_duration(buf, 4, 300 * USEC_PER_MSEC), "300");
}

TEST(format_duration_roundtrip) {
        static const uint64_t values[] = { 1, 999, 1000, 1500, 300000, 1500000, 90000000, 7200000000 };
        char buf[32];

        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                uint64_t v = 0;

                ASSERT_OK(parse_duration(format_duration(buf, sizeof(buf), values[i]), &v));
                ASSERT_EQ_U(v, values[i]);
        }
}

TEST_MAIN()
