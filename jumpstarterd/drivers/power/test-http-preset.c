/* Tests for the HTTP power presets: URLs and answers */
#include <stdlib.h>

#include "http-preset.h"
#include "macro.h"
#include "tests.h"

static void check_url(const HttpSwitch *s, HttpRequestKind k, const char *want) {
        _cleanup_free_ char *url = NULL;

        ASSERT_EQ(http_switch_build_url(s, k, &url), 0);
        ASSERT_STREQ(url, want);
}

TEST(presets) {
        ASSERT_EQ(http_preset_from_string("shelly"), HTTP_PRESET_SHELLY);
        ASSERT_EQ(http_preset_from_string("template"), HTTP_PRESET_TEMPLATE);
        ASSERT_EQ(http_preset_from_string("Shelly"), -EINVAL);
        ASSERT_EQ(http_preset_from_string(NULL), -EINVAL);
        ASSERT_STREQ(http_preset_to_string(HTTP_PRESET_PDUDAEMON), "pdudaemon");
        ASSERT_TRUE(http_preset_to_string(_HTTP_PRESET_MAX) == NULL);
}

TEST(pdudaemon_urls) {
        HttpSwitch s = { .preset = HTTP_PRESET_PDUDAEMON, .url = "http://127.0.0.1:16421",
                         .hostname = "lab pdu&x=1", .port = 3 };
        char *url = NULL;

        check_url(&s, HTTP_REQUEST_ON, "http://127.0.0.1:16421/power/control/on?hostname=lab%20pdu%26x%3D1&port=3");
        check_url(&s, HTTP_REQUEST_OFF, "http://127.0.0.1:16421/power/control/off?hostname=lab%20pdu%26x%3D1&port=3");
        /* No state query, no readings. */
        ASSERT_FALSE(http_switch_supports(&s, HTTP_REQUEST_STATUS));
        ASSERT_FALSE(http_switch_supports(&s, HTTP_REQUEST_READING));
        ASSERT_EQ(http_switch_build_url(&s, HTTP_REQUEST_STATUS, &url), -EOPNOTSUPP);
        ASSERT_TRUE(url == NULL);
}

TEST(shelly) {
        HttpSwitch s = { .preset = HTTP_PRESET_SHELLY, .url = "http://10.0.0.5", .channel = 1 };
        PowerState st = POWER_UNKNOWN;
        double w = -1;

        check_url(&s, HTTP_REQUEST_ON, "http://10.0.0.5/rpc/Switch.Set?id=1&on=true");
        check_url(&s, HTTP_REQUEST_OFF, "http://10.0.0.5/rpc/Switch.Set?id=1&on=false");
        check_url(&s, HTTP_REQUEST_STATUS, "http://10.0.0.5/rpc/Switch.GetStatus?id=1");
        check_url(&s, HTTP_REQUEST_READING, "http://10.0.0.5/rpc/Switch.GetStatus?id=1");

        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "{\"id\":1,\"output\":true,\"apower\":12.5}", &st), 0);
        ASSERT_EQ(st, POWER_ON);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "{\"output\":false}", &st), 0);
        ASSERT_EQ(st, POWER_OFF);
        /* Switch.Set answers what was before; success means done. */
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_ON, "{\"was_on\":false}", &st), 0);
        ASSERT_EQ(st, POWER_ON);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "{\"output\":\"yes\"}", &st), -EBADMSG);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "not json", &st), -EBADMSG);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "[true]", &st), -EBADMSG);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, NULL, &st), -EBADMSG);

        ASSERT_EQ(http_switch_parse_reading(&s, "{\"output\":true,\"apower\":12.5}", &w), 0);
        ASSERT_TRUE(w == 12.5);
        ASSERT_EQ(http_switch_parse_reading(&s, "{\"output\":true,\"apower\":3}", &w), 0);
        ASSERT_TRUE(w == 3.0);
        ASSERT_EQ(http_switch_parse_reading(&s, "{\"output\":true}", &w), -EBADMSG);
        ASSERT_EQ(http_switch_parse_reading(&s, "{\"apower\":\"12\"}", &w), -EBADMSG);
}

TEST(tasmota) {
        HttpSwitch s = { .preset = HTTP_PRESET_TASMOTA, .url = "http://plug", .channel = 1 };
        PowerState st = POWER_UNKNOWN;
        double w = -1;

        check_url(&s, HTTP_REQUEST_ON, "http://plug/cm?cmnd=Power1%20On");
        check_url(&s, HTTP_REQUEST_OFF, "http://plug/cm?cmnd=Power1%20Off");
        check_url(&s, HTTP_REQUEST_STATUS, "http://plug/cm?cmnd=Power1");
        check_url(&s, HTTP_REQUEST_READING, "http://plug/cm?cmnd=Status%208");

        /* A single relay says POWER, several say POWER1, POWER2, ... */
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "{\"POWER\":\"ON\"}", &st), 0);
        ASSERT_EQ(st, POWER_ON);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_OFF, "{\"POWER1\":\"OFF\"}", &st), 0);
        ASSERT_EQ(st, POWER_OFF);
        /* An ON that answers OFF is reported as such; the driver fails it. */
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_ON, "{\"POWER\":\"OFF\"}", &st), 0);
        ASSERT_EQ(st, POWER_OFF);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "{\"POWER\":\"MAYBE\"}", &st), -EBADMSG);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "{\"Command\":\"Unknown\"}", &st), -EBADMSG);

        s.channel = 2;
        check_url(&s, HTTP_REQUEST_ON, "http://plug/cm?cmnd=Power2%20On");
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "{\"POWER\":\"ON\"}", &st), -EBADMSG);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "{\"POWER2\":\"OFF\"}", &st), 0);
        ASSERT_EQ(st, POWER_OFF);

        ASSERT_EQ(http_switch_parse_reading(&s, "{\"StatusSNS\":{\"ENERGY\":{\"Power\":[1,7.25]}}}", &w), 0);
        ASSERT_TRUE(w == 7.25);
        s.channel = 1;
        ASSERT_EQ(http_switch_parse_reading(&s, "{\"StatusSNS\":{\"Time\":\"x\",\"ENERGY\":{\"Power\":40}}}", &w), 0);
        ASSERT_TRUE(w == 40.0);
        ASSERT_EQ(http_switch_parse_reading(&s, "{\"StatusSNS\":{}}", &w), -EBADMSG);
        s.channel = 3;
        ASSERT_EQ(http_switch_parse_reading(&s, "{\"StatusSNS\":{\"ENERGY\":{\"Power\":[1,2]}}}", &w), -EBADMSG);
}

TEST(template) {
        HttpSwitch s = { .preset = HTTP_PRESET_TEMPLATE, .url = "http://x",
                         .on_url = "http://relay/on?a=1", .off_url = "http://relay/off" };
        PowerState st = POWER_UNKNOWN;
        char *url = NULL;
        double w;

        check_url(&s, HTTP_REQUEST_ON, "http://relay/on?a=1");
        check_url(&s, HTTP_REQUEST_OFF, "http://relay/off");
        ASSERT_FALSE(http_switch_supports(&s, HTTP_REQUEST_STATUS));
        ASSERT_EQ(http_switch_build_url(&s, HTTP_REQUEST_STATUS, &url), -EOPNOTSUPP);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_ON, "whatever", &st), 0);
        ASSERT_EQ(st, POWER_ON);
        ASSERT_EQ(http_switch_parse_reading(&s, "{}", &w), -EOPNOTSUPP);

        s.status_url = "http://relay/status";
        check_url(&s, HTTP_REQUEST_STATUS, "http://relay/status");
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "relay=ON", &st), 0);
        ASSERT_EQ(st, POWER_ON);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "relay=OFF", &st), 0);
        ASSERT_EQ(st, POWER_OFF);
        s.status_on_text = "\"state\":1";
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "{\"state\":1}", &st), 0);
        ASSERT_EQ(st, POWER_ON);
        ASSERT_EQ(http_switch_parse_state(&s, HTTP_REQUEST_STATUS, "{\"state\":0}", &st), 0);
        ASSERT_EQ(st, POWER_OFF);
}

TEST_MAIN()
