/* Tests of DUT descriptions: parsing DescribeDut replies and rendering labels and lease */
#include "agent-api.h"
#include "config.h"
#include "dut-list.h"
#include "tests.h"

#include <sys/socket.h>

/* A bus that is open (messages can be built on it) but talks to nobody. */
static sd_bus *bus_new_unconnected(void) {
        sd_bus *bus = NULL;
        int fds[2];

        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
        ASSERT_OK(sd_bus_new(&bus));
        ASSERT_OK(sd_bus_set_fd(bus, fds[0], fds[0]));
        ASSERT_OK(sd_bus_start(bus));
        close(fds[1]);
        return bus;
}

TEST(render_pairs_sorted) {
        char *k[] = { "vendor", "model", "arch" }, *v[] = { "acme", "widget-v2", "arm64" };
        char *text = NULL;

        ASSERT_OK(render_pairs(k, v, 3, true, &text));
        ASSERT_STREQ(text, "arch=arm64\nmodel=widget-v2\nvendor=acme\n");
        free(text);
        ASSERT_OK(render_pairs(k, v, 3, false, &text));
        ASSERT_STREQ(text, "vendor=acme\nmodel=widget-v2\narch=arm64\n");
        free(text);
        ASSERT_OK(render_pairs(NULL, NULL, 0, true, &text));
        ASSERT_STREQ(text, "");
        free(text);
}

TEST(parse_description) {
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        Dut d = { .name = strdup("dut1") };

        bus = bus_new_unconnected();
        ASSERT_OK(sd_bus_message_new_method_call(bus, &m, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, "X"));
        ASSERT_OK(sd_bus_message_append(m, "a(ss)", 2, "vendor", "acme", "model", "widget-v2"));
        ASSERT_OK(sd_bus_message_append(m, "a(ss)", 5, "name", "l1", "holder", "me", "selector", "a=b",
                                        "begin", "2026-01-01T00:00:00Z", "end", ""));
        ASSERT_OK(sd_bus_message_append(m, "stu", "/dev/pts/3", (uint64_t) 64 << 20, 7U));
        ASSERT_OK(sd_bus_message_seal(m, 1, 0));

        ASSERT_OK(dut_parse_description(&d, m));
        ASSERT_STREQ(d.labels_text, "model=widget-v2\nvendor=acme\n");
        ASSERT_STREQ(d.lease_text, "name=l1\nholder=me\nselector=a=b\nbegin=2026-01-01T00:00:00Z\nend=\n");
        ASSERT_STREQ(d.serial_path, "/dev/pts/3");
        ASSERT_EQ_U(d.storage_size, (uint64_t) 64 << 20);
        ASSERT_TRUE(dut_has_class(&d, DRIVER_CLASS_POWER));
        ASSERT_TRUE(dut_has_class(&d, DRIVER_CLASS_STORAGE));
        ASSERT_TRUE(dut_has_class(&d, -1));

        dut_done(&d);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
}

TEST(serial_without_path) {
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;
        Dut d = { .name = strdup("dut2") };

        bus = bus_new_unconnected();
        ASSERT_OK(sd_bus_message_new_method_call(bus, &m, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, "X"));
        ASSERT_OK(sd_bus_message_append(m, "a(ss)a(ss)stu", 0, 0, "", (uint64_t) 0,
                                        (unsigned) DRIVER_CLASS_MASK(DRIVER_CLASS_SERIAL) | DRIVER_CLASS_MASK(DRIVER_CLASS_POWER)));
        ASSERT_OK(sd_bus_message_seal(m, 1, 0));
        ASSERT_OK(dut_parse_description(&d, m));
        ASSERT_FALSE(dut_has_class(&d, DRIVER_CLASS_SERIAL));
        ASSERT_TRUE(dut_has_class(&d, DRIVER_CLASS_POWER));
        ASSERT_STREQ(d.labels_text, "");
        dut_done(&d);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
}

static Dut make_dut(const char *name, uint64_t size) {
        Dut d = { .name = strdup(name), .serial_path = strdup(""), .labels_text = strdup(""),
                  .lease_text = strdup(""), .storage_size = size };

        ASSERT_TRUE(d.name && d.serial_path && d.labels_text && d.lease_text);
        return d;
}

static const char *names(const DutList *l) {
        static char text[256];

        text[0] = '\0';
        for (size_t i = 0; i < l->n_duts; i++)
                snprintf(text + strlen(text), sizeof text - strlen(text), "%s ", l->duts[i].name);
        return text;
}

TEST(put_and_remove) {
        DutList l = {};
        Dut d;

        ASSERT_EQ(dut_list_remove(&l, "dut1"), 0);

        /* Added DUTs go last, in the order they came; the moved-from Dut is left empty. */
        d = make_dut("dut1", 1);
        ASSERT_OK(dut_list_put(&l, &d));
        ASSERT_TRUE(!d.name && !d.serial_path);
        d = make_dut("lease-a", 2);
        ASSERT_OK(dut_list_put(&l, &d));
        d = make_dut("lease-b", 3);
        ASSERT_OK(dut_list_put(&l, &d));
        ASSERT_STREQ(names(&l), "dut1 lease-a lease-b ");

        /* A name that is there already is replaced in place (described again after a blip). */
        d = make_dut("lease-a", 20);
        ASSERT_OK(dut_list_put(&l, &d));
        ASSERT_STREQ(names(&l), "dut1 lease-a lease-b ");
        ASSERT_EQ_U(dut_list_find(&l, "lease-a")->storage_size, 20);

        ASSERT_EQ(dut_list_remove(&l, "lease-a"), 1);
        ASSERT_EQ(dut_list_remove(&l, "lease-a"), 0);
        ASSERT_STREQ(names(&l), "dut1 lease-b ");
        ASSERT_TRUE(!dut_list_find(&l, "lease-a"));
        ASSERT_EQ_U(dut_list_find(&l, "lease-b")->storage_size, 3);

        /* And back: last again. */
        d = make_dut("lease-a", 4);
        ASSERT_OK(dut_list_put(&l, &d));
        ASSERT_STREQ(names(&l), "dut1 lease-b lease-a ");
        ASSERT_EQ(dut_list_remove(&l, "dut1"), 1);
        ASSERT_EQ(dut_list_remove(&l, "lease-a"), 1);
        ASSERT_EQ(dut_list_remove(&l, "lease-b"), 1);
        ASSERT_EQ_U(l.n_duts, 0);
        dut_list_done(&l);
}

TEST_MAIN()
