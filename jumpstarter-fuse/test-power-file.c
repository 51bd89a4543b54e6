/* Tests of the words the power file accepts */
#include "fs.h"
#include "tests.h"

static PowerAction parse(const char *s) {
        return power_action_from_payload(s, strlen(s));
}

TEST(accepted) {
        ASSERT_EQ(parse("on"), POWER_ACTION_ON);
        ASSERT_EQ(parse("on\n"), POWER_ACTION_ON);
        ASSERT_EQ(parse("off"), POWER_ACTION_OFF);
        ASSERT_EQ(parse("off\n"), POWER_ACTION_OFF);
        ASSERT_EQ(parse("cycle"), POWER_ACTION_CYCLE);
        ASSERT_EQ(parse("cycle\n"), POWER_ACTION_CYCLE);
        ASSERT_STREQ(power_action_to_string(POWER_ACTION_CYCLE), "cycle");
}

TEST(rejected) {
        static const char *const bad[] = {
                "", "\n", "bogus", "On", "ON", "on\n\n", " on", "on ", "on\r\n", "onn", "o", "of",
                "cycle2", "off\nx", "unknown",
        };

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                ASSERT_EQ(parse(bad[i]), _POWER_ACTION_INVALID);
        /* An embedded NUL is not a word either. */
        ASSERT_EQ(power_action_from_payload("on\0", 3), _POWER_ACTION_INVALID);
        ASSERT_EQ(power_action_from_payload("off", 2), _POWER_ACTION_INVALID);
        ASSERT_EQ(power_action_from_payload(NULL, 0), _POWER_ACTION_INVALID);
        ASSERT_TRUE(power_action_to_string(_POWER_ACTION_INVALID) == NULL);
}

TEST_MAIN()
