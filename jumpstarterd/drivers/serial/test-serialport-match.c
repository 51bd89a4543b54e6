/* Tests of serialport's port matching, with fake port lists (sp_list_ports has none here) */
#include <errno.h>

#include "serialport-match.h"
#include "tests.h"

static const SerialPortInfo ports[] = {
        { "/dev/ttyS0", NULL, -1, -1 },
        { "/dev/ttyUSB0", "A10KZP3F", 0x0403, 0x6001 },
        { "/dev/ttyUSB1", "FT5XYZ", 0x0403, 0x6001 },
        { "/dev/ttyACM0", "E6614103E7", 0x2e8a, 0x000a },
        { "/dev/ttyUSB2", NULL, 0x10c4, 0xea60 },
};

static int find(const char *path, const char *usb_serial, int vid, int pid) {
        SerialPortMatch m = { .path = path, .usb_serial = usb_serial, .vid = vid, .pid = pid };

        return serialport_match_find(&m, ports, sizeof ports / sizeof ports[0]);
}

TEST(vid_pid_parse) {
        int vid, pid;

        ASSERT_OK(serialport_parse_vid_pid("0403:6001", &vid, &pid));
        ASSERT_EQ(vid, 0x0403);
        ASSERT_EQ(pid, 0x6001);
        ASSERT_OK(serialport_parse_vid_pid("2E8A:000a", &vid, &pid));
        ASSERT_EQ(vid, 0x2e8a);
        ASSERT_EQ(pid, 0x000a);
        ASSERT_EQ(serialport_parse_vid_pid("403:6001", &vid, &pid), -EINVAL);
        ASSERT_EQ(serialport_parse_vid_pid("0403-6001", &vid, &pid), -EINVAL);
        ASSERT_EQ(serialport_parse_vid_pid("0403:60011", &vid, &pid), -EINVAL);
        ASSERT_EQ(serialport_parse_vid_pid("0x03:6001", &vid, &pid), -EINVAL);
        ASSERT_EQ(serialport_parse_vid_pid("0403:+001", &vid, &pid), -EINVAL);
        ASSERT_EQ(serialport_parse_vid_pid("", &vid, &pid), -EINVAL);
        ASSERT_EQ(serialport_parse_vid_pid(NULL, &vid, &pid), -EINVAL);
}

TEST(match_by_path) {
        ASSERT_EQ(find("/dev/ttyUSB1", NULL, -1, -1), 2);
        ASSERT_EQ(find("/dev/ttyS0", NULL, -1, -1), 0);
        ASSERT_EQ(find("/dev/ttyUSB9", NULL, -1, -1), -ENOENT);
}

TEST(match_by_usb_serial) {
        ASSERT_EQ(find(NULL, "FT5XYZ", -1, -1), 2);
        ASSERT_EQ(find(NULL, "E6614103E7", -1, -1), 3);
        /* Serial numbers are compared exactly. */
        ASSERT_EQ(find(NULL, "ft5xyz", -1, -1), -ENOENT);
        ASSERT_EQ(find(NULL, "FT5XY", -1, -1), -ENOENT);
}

TEST(match_by_vid_pid) {
        ASSERT_EQ(find(NULL, NULL, 0x2e8a, 0x000a), 3);
        ASSERT_EQ(find(NULL, NULL, 0x10c4, 0xea60), 4);
        /* Two FTDI adapters: the config must say which. */
        ASSERT_EQ(find(NULL, NULL, 0x0403, 0x6001), -ENOTUNIQ);
        ASSERT_EQ(find(NULL, "A10KZP3F", 0x0403, 0x6001), 1);
        ASSERT_EQ(find(NULL, NULL, 0x0403, 0x6015), -ENOENT);
        /* The vendor alone does not match. */
        ASSERT_EQ(find(NULL, NULL, 0x0403, 0x0000), -ENOENT);
}

TEST(match_none_listed) {
        SerialPortMatch m = { .usb_serial = "A10KZP3F", .vid = -1, .pid = -1 };

        ASSERT_EQ(serialport_match_find(&m, NULL, 0), -ENOENT);
}

TEST_MAIN()
