/* Tests of the agent D-Bus API: real peer-to-peer connections to the daemon's socket, one event loop */
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "agent-api.h"
#include "agent-bus.h"
#include "config.h"
#include "daemon-util.h"
#include "exporter.h"
#include "tests.h"

typedef struct Env {
        char dir[64];
        char socket[128];
        sd_event *event;
        ExporterConfig *config;
        Exporter *exporter;
        Agent *agent;
} Env;

static void env_new(Env *env) {
        char path[128], *error = NULL;
        static const char yaml[] =
                "apiVersion: jumpstarter.dev/v1alpha1\n"
                "kind: ExporterConfig\n"
                "metadata:\n"
                "  name: test\n"
                "export:\n"
                "  dut1:\n"
                "    type: sim\n"
                "    labels:\n"
                "      vendor: acme\n"
                "      board: widget\n"
                "    config:\n"
                "      boot_time: 10ms\n"
                "      cycle_delay: 50ms\n"
                "      size: 1MiB\n"
                "  dut2:\n"
                "    storage:\n"
                "      type: file\n"
                "      config:\n"
                "        path: disk.img\n"
                "        size: 64KiB\n";

        *env = (Env) {};
        strcpy(env->dir, "/tmp/test-agent-XXXXXX");
        ASSERT_TRUE(mkdtemp(env->dir));
        snprintf(env->socket, sizeof env->socket, "%s/agent.sock", env->dir);
        snprintf(path, sizeof path, "%s/exporter.yaml", env->dir);
        if (exporter_config_parse(path, yaml, strlen(yaml), &env->config, &error) < 0)
                ASSERT_FAIL("config parses (%s)", error ? error : "no message");

        ASSERT_OK(sd_event_new(&env->event));
        ASSERT_OK(exporter_new(env->event, env->config, &env->exporter));
        ASSERT_OK(agent_new(env->event, env->exporter, env->socket, &env->agent));
}

static void env_done(Env *env) {
        char path[128];
        struct stat st;

        agent_free(env->agent);
        /* The socket file goes with the agent. */
        ASSERT_EQ(stat(env->socket, &st), -1);
        exporter_free(env->exporter);
        exporter_config_free(env->config);
        sd_event_unref(env->event);
        snprintf(path, sizeof path, "%s/disk.img", env->dir);
        (void) unlink(path);
        ASSERT_OK(rmdir(env->dir));
}

static sd_bus *client_new(Env *env) {
        char address[160];
        sd_bus *bus;

        snprintf(address, sizeof address, "unix:path=%s", env->socket);
        ASSERT_OK(sd_bus_new(&bus));
        ASSERT_OK(sd_bus_set_address(bus, address));
        ASSERT_OK(sd_bus_negotiate_fds(bus, 1));
        ASSERT_OK(sd_bus_start(bus));
        ASSERT_OK(sd_bus_attach_event(bus, env->event, 0));
        return bus;
}

typedef struct Reply {
        sd_bus_message *message;
        bool done;
} Reply;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Reply *r = userdata;

        r->message = sd_bus_message_ref(m);
        r->done = true;
        return 0;
}

static void run_until(Env *env, const bool *flag, uint64_t timeout) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout;

        while (!*flag) {
                ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < deadline);
                ASSERT_OK(sd_event_run(env->event, 10 * USEC_PER_MSEC));
        }
}

/* Calls a method with the daemon on the same loop; returns the reply (error or not). */
static sd_bus_message *call(Env *env, sd_bus *bus, const char *member, const char *types, ...) {
        sd_bus_message *m = NULL;
        Reply reply = {};
        va_list ap;

        ASSERT_OK(sd_bus_message_new_method_call(bus, &m, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, member));
        if (types) {
                va_start(ap, types);
                ASSERT_OK(sd_bus_message_appendv(m, types, ap));
                va_end(ap);
        }
        ASSERT_OK(sd_bus_call_async(bus, NULL, m, on_reply, &reply, 5 * USEC_PER_SEC));
        sd_bus_message_unref(m);
        run_until(env, &reply.done, 5 * USEC_PER_SEC);
        return reply.message;
}

static int reply_errno(sd_bus_message *m) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        return e ? -sd_bus_error_get_errno(e) : 0;
}

static void expect_error(sd_bus_message *m, int error, const char *message_part) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        ASSERT_TRUE(e);
        ASSERT_EQ(sd_bus_error_get_errno(e), error);
        ASSERT_CONTAINS(e->message, message_part);
        sd_bus_message_unref(m);
}

static void expect_ok(sd_bus_message *m) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e)
                ASSERT_FAIL("call succeeds (got %s: %s)", e->name, e->message);
        sd_bus_message_unref(m);
}

typedef struct Signals {
        char log[512];
} Signals;

static int on_power_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Signals *s = userdata;
        const char *dut, *state;

        ASSERT_OK(sd_bus_message_read(m, "ss", &dut, &state));
        snprintf(s->log + strlen(s->log), sizeof s->log - strlen(s->log), "%s=%s ", dut, state);
        return 0;
}

TEST(describe) {
        Env env;
        sd_bus *bus;
        sd_bus_message *m;
        const char *name, *k, *v, *serial;
        uint64_t size;
        uint32_t classes;
        struct passwd *pw = getpwuid(getuid());

        env_new(&env);
        bus = client_new(&env);

        m = call(&env, bus, "ListDuts", NULL);
        ASSERT_EQ(reply_errno(m), 0);
        ASSERT_OK(sd_bus_message_enter_container(m, 'a', "s"));
        ASSERT_EQ(sd_bus_message_read(m, "s", &name), 1);
        ASSERT_STREQ(name, "dut1");
        ASSERT_EQ(sd_bus_message_read(m, "s", &name), 1);
        ASSERT_STREQ(name, "dut2");
        ASSERT_EQ(sd_bus_message_read(m, "s", &name), 0);
        sd_bus_message_unref(m);

        m = call(&env, bus, "DescribeDut", "s", "dut1");
        ASSERT_EQ(reply_errno(m), 0);
        ASSERT_OK(sd_bus_message_enter_container(m, 'a', "(ss)"));
        ASSERT_EQ(sd_bus_message_read(m, "(ss)", &k, &v), 1);
        ASSERT_STREQ(k, "board");
        ASSERT_STREQ(v, "widget");
        ASSERT_EQ(sd_bus_message_read(m, "(ss)", &k, &v), 1);
        ASSERT_STREQ(k, "vendor");
        ASSERT_OK(sd_bus_message_exit_container(m));
        ASSERT_OK(sd_bus_message_enter_container(m, 'a', "(ss)"));
        ASSERT_EQ(sd_bus_message_read(m, "(ss)", &k, &v), 1);
        ASSERT_STREQ(k, "name");
        ASSERT_STREQ(v, "dut1");
        ASSERT_EQ(sd_bus_message_read(m, "(ss)", &k, &v), 1);
        ASSERT_STREQ(k, "holder");
        ASSERT_STREQ(v, pw->pw_name);
        ASSERT_EQ(sd_bus_message_read(m, "(ss)", &k, &v), 1);
        ASSERT_STREQ(k, "selector");
        ASSERT_STREQ(v, "");
        ASSERT_EQ(sd_bus_message_read(m, "(ss)", &k, &v), 1);
        ASSERT_STREQ(k, "begin");
        ASSERT_EQ(strlen(v), strlen("2026-11-29T01:35:00Z"));
        ASSERT_EQ(v[10], 'T');
        ASSERT_EQ(v[19], 'Z');
        ASSERT_EQ(sd_bus_message_read(m, "(ss)", &k, &v), 1);
        ASSERT_STREQ(k, "end");
        ASSERT_STREQ(v, "");
        ASSERT_OK(sd_bus_message_exit_container(m));
        ASSERT_EQ(sd_bus_message_read(m, "stu", &serial, &size, &classes), 1);
        ASSERT_TRUE(strncmp(serial, "/dev/pts/", 9) == 0);
        ASSERT_EQ_U(size, 1024 * 1024);
        ASSERT_EQ(classes, 7);
        sd_bus_message_unref(m);

        m = call(&env, bus, "DescribeDut", "s", "dut2");
        ASSERT_OK(sd_bus_message_skip(m, "a(ss)a(ss)"));
        ASSERT_EQ(sd_bus_message_read(m, "stu", &serial, &size, &classes), 1);
        ASSERT_STREQ(serial, "");
        ASSERT_EQ_U(size, 64 * 1024);
        ASSERT_EQ(classes, DRIVER_CLASS_MASK(DRIVER_CLASS_STORAGE));
        sd_bus_message_unref(m);

        expect_error(call(&env, bus, "DescribeDut", "s", "dut3"), ENOENT, "dut3");
        expect_error(call(&env, bus, "GetPower", "s", "dut2"), EOPNOTSUPP, "no power");
        expect_error(call(&env, bus, "OpenSerialLog", "s", "dut2"), EOPNOTSUPP, "no serial");

        ASSERT_EQ(agent_n_connections(env.agent), 1);
        sd_bus_flush_close_unref(bus);
        for (unsigned i = 0; i < 20 && agent_n_connections(env.agent) > 0; i++)
                ASSERT_OK(sd_event_run(env.event, 10 * USEC_PER_MSEC));
        ASSERT_EQ(agent_n_connections(env.agent), 0);
        env_done(&env);
}

TEST(power) {
        Env env;
        sd_bus *bus, *watcher;
        sd_bus_message *m;
        Signals sig = {};
        const char *state;
        uint64_t start;

        env_new(&env);
        bus = client_new(&env);
        watcher = client_new(&env);
        ASSERT_OK(sd_bus_match_signal(watcher, NULL, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, "PowerChanged",
                                      on_power_changed, &sig));

        m = call(&env, bus, "GetPower", "s", "dut1");
        ASSERT_EQ(sd_bus_message_read(m, "s", &state), 1);
        ASSERT_STREQ(state, "off");
        sd_bus_message_unref(m);

        expect_error(call(&env, bus, "SetPower", "ss", "dut1", "sideways"), EINVAL, "sideways");
        expect_error(call(&env, bus, "SetPower", "ss", "dut9", "on"), ENOENT, "dut9");

        expect_ok(call(&env, bus, "SetPower", "ss", "dut1", "on"));
        m = call(&env, bus, "GetPower", "s", "dut1");
        ASSERT_EQ(sd_bus_message_read(m, "s", &state), 1);
        ASSERT_STREQ(state, "on");
        sd_bus_message_unref(m);

        /* The reply to cycle comes once the board is on again. */
        start = now_usec(CLOCK_MONOTONIC);
        expect_ok(call(&env, bus, "SetPower", "ss", "dut1", "cycle"));
        ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) - start >= 45 * USEC_PER_MSEC);
        expect_ok(call(&env, bus, "SetPower", "ss", "dut1", "off"));

        for (unsigned i = 0; i < 10; i++)
                ASSERT_OK(sd_event_run(env.event, USEC_PER_MSEC));
        ASSERT_STREQ(sig.log, "dut1=on dut1=off dut1=on dut1=off ");

        /* A caller that hangs up before its cycle is done does not upset the daemon. */
        {
                sd_bus_message *c;

                ASSERT_OK(sd_bus_message_new_method_call(bus, &c, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE,
                                                         "SetPower"));
                ASSERT_OK(sd_bus_message_append(c, "ss", "dut1", "cycle"));
                ASSERT_OK(sd_bus_send(bus, c, NULL));
                sd_bus_message_unref(c);
                ASSERT_OK(sd_bus_flush(bus));
                for (unsigned i = 0; i < 5; i++)
                        ASSERT_OK(sd_event_run(env.event, USEC_PER_MSEC));
                sd_bus_close_unref(bus);
                for (unsigned i = 0; i < 20; i++)
                        ASSERT_OK(sd_event_run(env.event, 5 * USEC_PER_MSEC));
        }
        m = call(&env, watcher, "GetPower", "s", "dut1");
        ASSERT_EQ(sd_bus_message_read(m, "s", &state), 1);
        ASSERT_STREQ(state, "on");
        sd_bus_message_unref(m);

        sd_bus_close_unref(watcher);
        env_done(&env);
}

TEST(storage_sessions) {
        Env env;
        sd_bus *a, *b;
        sd_bus_message *m;
        uint64_t size, session;
        int fd;

        env_new(&env);
        a = client_new(&env);
        b = client_new(&env);

        expect_ok(call(&env, a, "SetPower", "ss", "dut1", "on"));
        expect_error(call(&env, a, "OpenStorage", "sb", "dut1", 1), EBUSY, "power it off before writing");

        /* Reading while powered is fine; it is a session too, which does not hold the power. */
        m = call(&env, a, "OpenStorage", "sb", "dut1", 0);
        ASSERT_EQ(sd_bus_message_read(m, "htt", &fd, &size, &session), 1);
        ASSERT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
        ASSERT_EQ_U(size, 1024 * 1024);
        ASSERT_TRUE(session != 0);
        sd_bus_message_unref(m);
        expect_ok(call(&env, a, "SetPower", "ss", "dut1", "cycle"));
        expect_ok(call(&env, a, "CloseStorage", "t", session));

        expect_ok(call(&env, a, "SetPower", "ss", "dut1", "off"));
        m = call(&env, a, "OpenStorage", "sb", "dut1", 1);
        ASSERT_EQ(sd_bus_message_read(m, "htt", &fd, &size, &session), 1);
        ASSERT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        ASSERT_EQ(pwrite(fd, "image", 5, 0), 5);
        ASSERT_TRUE(session != 0);
        sd_bus_message_unref(m);

        expect_error(call(&env, b, "SetPower", "ss", "dut1", "on"), EBUSY, "open for writing");
        expect_error(call(&env, b, "SetPower", "ss", "dut1", "cycle"), EBUSY, "open for writing");
        expect_error(call(&env, b, "CloseStorage", "t", session), EPERM, "another connection");
        expect_error(call(&env, b, "CloseStorage", "t", session + 100), ENOENT, "No storage session");

        expect_ok(call(&env, a, "CloseStorage", "t", session));
        expect_error(call(&env, a, "CloseStorage", "t", session), ENOENT, "No storage session");
        expect_ok(call(&env, b, "SetPower", "ss", "dut1", "on"));
        expect_ok(call(&env, b, "SetPower", "ss", "dut1", "off"));

        /* A writer that disconnects without closing releases the DUT. */
        m = call(&env, a, "OpenStorage", "sb", "dut1", 1);
        ASSERT_EQ(reply_errno(m), 0);
        sd_bus_message_unref(m);
        expect_error(call(&env, b, "SetPower", "ss", "dut1", "on"), EBUSY, "open for writing");
        sd_bus_close_unref(a);
        for (unsigned i = 0; i < 20 && agent_n_connections(env.agent) > 1; i++)
                ASSERT_OK(sd_event_run(env.event, 5 * USEC_PER_MSEC));
        expect_ok(call(&env, b, "SetPower", "ss", "dut1", "on"));

        /* Storage-only DUTs take writers at any time. */
        m = call(&env, b, "OpenStorage", "sb", "dut2", 1);
        ASSERT_EQ(sd_bus_message_read(m, "htt", &fd, &size, &session), 1);
        ASSERT_EQ_U(size, 64 * 1024);
        sd_bus_message_unref(m);

        /* Sessions still open when the agent goes are ended with it. */
        sd_bus_close_unref(b);
        env_done(&env);
}

TEST(serial_log) {
        Env env;
        sd_bus *bus;
        sd_bus_message *m;
        uint64_t bytes, modified, deadline, reader, reader2;
        char buf[4096] = "";
        size_t n = 0;
        int fd;

        env_new(&env);
        bus = client_new(&env);

        m = call(&env, bus, "SerialLogStat", "s", "dut1");
        ASSERT_EQ(sd_bus_message_read(m, "tt", &bytes, &modified), 1);
        ASSERT_EQ_U(bytes, 0);
        ASSERT_EQ_U(modified, 0);
        sd_bus_message_unref(m);

        m = call(&env, bus, "OpenSerialLog", "s", "dut1");
        ASSERT_EQ(sd_bus_message_read(m, "ht", &fd, &reader), 1);
        ASSERT_TRUE(reader > 0);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        ASSERT_OK(fd);
        sd_bus_message_unref(m);

        expect_ok(call(&env, bus, "SetPower", "ss", "dut1", "on"));
        deadline = now_usec(CLOCK_MONOTONIC) + 2 * USEC_PER_SEC;
        while (!strstr(buf, "boot complete\r\ndut1:~# ")) {
                ssize_t k;

                ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < deadline);
                ASSERT_OK(sd_event_run(env.event, 5 * USEC_PER_MSEC));
                k = read(fd, buf + n, sizeof buf - 1 - n);
                if (k < 0 && errno == EAGAIN)
                        continue;
                ASSERT_TRUE(k > 0);
                n += (size_t) k;
                buf[n] = '\0';
        }
        ASSERT_TRUE(strncmp(buf, "U-Boot", 6) == 0);

        m = call(&env, bus, "SerialLogStat", "s", "dut1");
        ASSERT_EQ(sd_bus_message_read(m, "tt", &bytes, &modified), 1);
        ASSERT_EQ_U(bytes, n);
        ASSERT_TRUE(modified > 0);
        sd_bus_message_unref(m);

        /* A reader that opens later finds the whole backlog in its socket at once, and after
         * SerialLogSync an empty socket means it is at the end. */
        {
                char buf2[8192];
                int fd2;

                m = call(&env, bus, "OpenSerialLog", "s", "dut1");
                ASSERT_EQ(sd_bus_message_read(m, "ht", &fd2, &reader2), 1);
                ASSERT_TRUE(reader2 != reader);
                fd2 = fcntl(fd2, F_DUPFD_CLOEXEC, 3);
                ASSERT_OK(fd2);
                sd_bus_message_unref(m);
                ASSERT_EQ(read(fd2, buf2, sizeof buf2), (ssize_t) n);
                ASSERT_TRUE(memcmp(buf, buf2, n) == 0);
                expect_ok(call(&env, bus, "SerialLogSync", "st", "dut1", reader2));
                ASSERT_EQ(read(fd2, buf2, sizeof buf2), -1);
                ASSERT_EQ(errno, EAGAIN);
                expect_error(call(&env, bus, "SerialLogSync", "st", "dut1", reader2 + 1000), ENOENT, "reader");
                close(fd2);
        }

        /* The reader sees the end of the stream when the daemon goes. */
        sd_bus_close_unref(bus);
        env_done(&env);
        ASSERT_EQ(read(fd, buf, sizeof buf), 0);
        close(fd);
}

static const char dynamic_yaml[] =
        "apiVersion: jumpstarter.dev/v1alpha1\n"
        "kind: ExporterConfig\n"
        "metadata:\n"
        "  name: lease\n"
        "export:\n"
        "  lease1:\n"
        "    type: sim\n"
        "    config:\n"
        "      boot_time: 10ms\n"
        "      size: 1MiB\n";

static ExporterConfig *parse_config(Env *env, const char *yaml) {
        ExporterConfig *c = NULL;
        char path[128], *error = NULL;

        snprintf(path, sizeof path, "%s/added.yaml", env->dir);
        if (exporter_config_parse(path, yaml, strlen(yaml), &c, &error) < 0)
                ASSERT_FAIL("config parses (%s)", error ? error : "no message");
        return c;
}

static int on_dut_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Signals *s = userdata;
        const char *dut;

        ASSERT_OK(sd_bus_message_read(m, "s", &dut));
        snprintf(s->log + strlen(s->log), sizeof s->log - strlen(s->log), "%s:%s ",
                 sd_bus_message_get_member(m), dut);
        return 0;
}

static void watch_dut_signals(sd_bus *bus, Signals *s) {
        ASSERT_OK(sd_bus_match_signal(bus, NULL, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, "DutAdded",
                                      on_dut_signal, s));
        ASSERT_OK(sd_bus_match_signal(bus, NULL, NULL, AGENT_OBJECT_PATH, AGENT_INTERFACE, "DutRemoved",
                                      on_dut_signal, s));
}

static void wait_for_log(Env *env, Signals *s, const char *want) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;

        while (!strstr(s->log, want)) {
                ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) < deadline);
                ASSERT_OK(sd_event_run(env->event, 10 * USEC_PER_MSEC));
        }
}

static char *list_duts(Env *env, sd_bus *bus) {
        static char text[256];
        sd_bus_message *m = call(env, bus, "ListDuts", NULL);
        char **names = NULL;

        ASSERT_OK(sd_bus_message_read_strv(m, &names));
        text[0] = '\0';
        for (char **n = names; n && *n; n++) {
                snprintf(text + strlen(text), sizeof text - strlen(text), "%s ", *n);
                free(*n);
        }
        free(names);
        sd_bus_message_unref(m);
        return text;
}

/* The test's lease: ReleaseDut ends it from a deferred event, as the lease watcher does once the
 * controller answered. */
typedef struct Release {
        sd_event *event;
        Exporter *exporter;
        char dut[64];
        ExporterReleaseDoneFunc done;
        void *done_userdata;
        unsigned calls;
        int result;
} Release;

static int on_release_later(sd_event_source *s, void *userdata) {
        Release *rel = userdata;

        if (rel->result >= 0)
                ASSERT_OK(exporter_remove_dut(rel->exporter, rel->dut));
        rel->done(rel->result, rel->done_userdata);
        return 0;
}

static int release_hook(Exporter *e, const char *dut, ExporterReleaseDoneFunc done, void *done_userdata,
                        void *userdata) {
        Release *rel = userdata;

        rel->calls++;
        snprintf(rel->dut, sizeof rel->dut, "%s", dut);
        rel->done = done;
        rel->done_userdata = done_userdata;
        /* Floating and one-shot: the loop frees it. */
        return sd_event_add_defer(rel->event, NULL, on_release_later, rel);
}

TEST(dynamic_duts) {
        Env env;
        sd_bus *bus, *watcher;
        sd_bus_message *m;
        Signals sig = {};
        Release rel = { .result = -ENOENT };
        uint64_t size, session, reader;
        char buf[64];
        int fd, log_fd;

        env_new(&env);
        bus = client_new(&env);
        watcher = client_new(&env);
        watch_dut_signals(watcher, &sig);
        rel.exporter = env.exporter;
        rel.event = env.event;
        /* The daemon has accepted both connections once they were answered: signals reach them. */
        ASSERT_STREQ(list_duts(&env, watcher), "dut1 dut2 ");
        ASSERT_STREQ(list_duts(&env, bus), "dut1 dut2 ");

        /* Added: signalled, listed last, served. */
        ASSERT_OK(exporter_add_dut(env.exporter, parse_config(&env, dynamic_yaml), "lease1", release_hook, &rel));
        wait_for_log(&env, &sig, "DutAdded:lease1 ");
        ASSERT_STREQ(list_duts(&env, bus), "dut1 dut2 lease1 ");
        ASSERT_TRUE(exporter_dut_is_releasable(env.exporter, "lease1"));
        ASSERT_FALSE(exporter_dut_is_releasable(env.exporter, "dut1"));
        expect_ok(call(&env, bus, "SetPower", "ss", "lease1", "on"));

        /* A name that is taken, or missing from the config given: refused, nothing changes. */
        ASSERT_EQ(exporter_add_dut(env.exporter, parse_config(&env, dynamic_yaml), "lease1", NULL, NULL), -EEXIST);
        ASSERT_EQ(exporter_add_dut(env.exporter, parse_config(&env, dynamic_yaml), "nope", NULL, NULL), -ENOENT);
        ASSERT_STREQ(list_duts(&env, bus), "dut1 dut2 lease1 ");

        /* Local DUTs are not leased: EPERM, and they stay. Unknown ones: ENOENT. */
        expect_error(call(&env, bus, "ReleaseDut", "s", "dut1"), EPERM, "not a leased DUT");
        expect_error(call(&env, bus, "ReleaseDut", "s", "nope"), ENOENT, "No DUT named");
        ASSERT_STREQ(list_duts(&env, bus), "dut1 dut2 lease1 ");

        /* A hook that fails: its error comes back, the DUT stays. */
        rel.result = -EHOSTDOWN;
        expect_error(call(&env, bus, "ReleaseDut", "s", "lease1"), EHOSTDOWN, "Failed to end the lease of DUT lease1");
        ASSERT_EQ(rel.calls, 1U);
        ASSERT_STREQ(list_duts(&env, bus), "dut1 dut2 lease1 ");

        /* Storage open and a serial.log reader of the leased DUT, then it is released. */
        expect_ok(call(&env, bus, "SetPower", "ss", "lease1", "off"));
        m = call(&env, bus, "OpenStorage", "sb", "lease1", 1);
        ASSERT_EQ(sd_bus_message_read(m, "htt", &fd, &size, &session), 1);
        sd_bus_message_unref(m);
        m = call(&env, bus, "OpenSerialLog", "s", "lease1");
        ASSERT_EQ(sd_bus_message_read(m, "ht", &log_fd, &reader), 1);
        log_fd = fcntl(log_fd, F_DUPFD_CLOEXEC, 3);
        ASSERT_OK(log_fd);
        sd_bus_message_unref(m);
        while (read(log_fd, buf, sizeof buf) > 0)
                ;

        rel.result = 0;
        expect_ok(call(&env, bus, "ReleaseDut", "s", "lease1"));
        ASSERT_EQ(rel.calls, 2U);
        wait_for_log(&env, &sig, "DutRemoved:lease1 ");
        ASSERT_STREQ(list_duts(&env, bus), "dut1 dut2 ");
        /* Its session ended with it; its reader sees the end; calls find no DUT. */
        expect_error(call(&env, bus, "CloseStorage", "t", session), ENOENT, "No storage session");
        ASSERT_EQ(read(log_fd, buf, sizeof buf), 0);
        close(log_fd);
        expect_error(call(&env, bus, "GetPower", "s", "lease1"), ENOENT, "No DUT named 'lease1'");
        ASSERT_EQ(exporter_remove_dut(env.exporter, "lease1"), -ENOENT);

        /* Local DUTs can be removed too (a reload), and the name can come back. */
        ASSERT_OK(exporter_remove_dut(env.exporter, "dut2"));
        wait_for_log(&env, &sig, "DutRemoved:dut2 ");
        ASSERT_OK(exporter_add_dut(env.exporter, parse_config(&env, dynamic_yaml), "lease1", NULL, NULL));
        wait_for_log(&env, &sig, "DutAdded:lease1 DutRemoved:lease1 DutRemoved:dut2 DutAdded:lease1 ");
        expect_error(call(&env, bus, "ReleaseDut", "s", "lease1"), EPERM, "not a leased DUT");
        ASSERT_STREQ(list_duts(&env, bus), "dut1 lease1 ");

        sd_bus_close_unref(watcher);
        sd_bus_close_unref(bus);
        env_done(&env);
}

TEST(reload) {
        static const char yaml[] =
                "apiVersion: jumpstarter.dev/v1alpha1\n"
                "kind: ExporterConfig\n"
                "metadata:\n"
                "  name: test\n"
                "export:\n"
                "  dut1:\n"
                "    type: sim\n"
                "  dut3:\n"
                "    type: sim\n"
                "    config:\n"
                "      size: 2MiB\n";
        static const char bad[] =
                "apiVersion: jumpstarter.dev/v1alpha1\n"
                "kind: ExporterConfig\n"
                "metadata:\n"
                "  name: test\n"
                "export:\n"
                "  dut9:\n"
                "    type: nonsense\n";
        Env env;
        sd_bus *bus;
        sd_bus_message *m;
        Signals sig = {};
        Release rel = { .result = 0 };
        const char *lbl;
        uint64_t size;
        int cls;

        env_new(&env);
        bus = client_new(&env);
        watch_dut_signals(bus, &sig);
        rel.exporter = env.exporter;
        rel.event = env.event;
        /* The daemon has accepted the connection once it answered: signals reach it from then on. */
        ASSERT_STREQ(list_duts(&env, bus), "dut1 dut2 ");
        ASSERT_OK(exporter_add_dut(env.exporter, parse_config(&env, dynamic_yaml), "lease1", release_hook, &rel));

        /* A config that does not parse changes nothing. */
        ASSERT_EQ(exporter_reload(env.exporter, "x.yaml", bad, strlen(bad)), -EINVAL);
        ASSERT_STREQ(list_duts(&env, bus), "dut1 dut2 lease1 ");

        /* dut2 goes, dut3 comes, dut1 stays as it was, the leased DUT is not the config's. */
        ASSERT_EQ(exporter_reload(env.exporter, "x.yaml", yaml, strlen(yaml)), 2);
        ASSERT_STREQ(list_duts(&env, bus), "dut1 lease1 dut3 ");
        wait_for_log(&env, &sig, "DutAdded:lease1 DutRemoved:dut2 DutAdded:dut3 ");
        m = call(&env, bus, "DescribeDut", "s", "dut3");
        ASSERT_OK(sd_bus_message_skip(m, "a(ss)a(ss)"));
        ASSERT_EQ(sd_bus_message_read(m, "stu", &lbl, &size, &cls), 1);
        ASSERT_EQ_U(size, 2 * 1024 * 1024);
        sd_bus_message_unref(m);
        /* The same again: nothing to do. */
        ASSERT_EQ(exporter_reload(env.exporter, "x.yaml", yaml, strlen(yaml)), 0);

        sd_bus_close_unref(bus);
        env_done(&env);
}

TEST_MAIN();
