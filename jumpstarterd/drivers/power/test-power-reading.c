/* Tests for parsing power readings */
#include <errno.h>

#include "power-reading.h"
#include "tests.h"

TEST(good) {
        double w = -1;

        ASSERT_EQ(power_reading_parse("12.5", &w), 0);
        ASSERT_TRUE(w == 12.5);
        ASSERT_EQ(power_reading_parse("  0 W\n", &w), 0);
        ASSERT_TRUE(w == 0.0);
        ASSERT_EQ(power_reading_parse("7W\r\n", &w), 0);
        ASSERT_TRUE(w == 7.0);
        ASSERT_EQ(power_reading_parse("1e3", &w), 0);
        ASSERT_TRUE(w == 1000.0);
}

TEST(bad) {
        double w = 42;

        ASSERT_EQ(power_reading_parse(NULL, &w), -EINVAL);
        ASSERT_EQ(power_reading_parse("", &w), -EINVAL);
        ASSERT_EQ(power_reading_parse("\n", &w), -EINVAL);
        ASSERT_EQ(power_reading_parse("-1", &w), -EINVAL);
        ASSERT_EQ(power_reading_parse("nan", &w), -EINVAL);
        ASSERT_EQ(power_reading_parse("inf", &w), -EINVAL);
        ASSERT_EQ(power_reading_parse("1e999", &w), -EINVAL);
        ASSERT_EQ(power_reading_parse("12.5 kW", &w), -EINVAL);
        ASSERT_EQ(power_reading_parse("12.5\n13", &w), -EINVAL);
        ASSERT_EQ(power_reading_parse("twelve", &w), -EINVAL);
        ASSERT_TRUE(w == 42);
}

TEST_MAIN()
