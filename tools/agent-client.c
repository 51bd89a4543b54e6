/* Calls into jumpstarterd's agent API from the command line: its private socket, or the system bus */
#include <inttypes.h>
#include <pwd.h>
#include <unistd.h>
#include <jansson.h>
#include <stdio.h>
#include <time.h>

#include "agent-api.h"
#include "agent-client.h"
#include "jmp.h"
#include "log.h"

static const sd_bus_error_map agent_error_map[] = {
        SD_BUS_ERROR_MAP(AGENT_ERROR_NOT_AUTHORIZED, EACCES),
        SD_BUS_ERROR_MAP_END,
};

int agent_connect(const LocalInstance *i, sd_bus **ret) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *address = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate bus: %m");
        if (asprintf(&address, "unix:path=%s", i->socket_path) < 0)
                return log_oom();
        r = sd_bus_set_address(bus, address);
        if (r < 0)
                return log_error_errno(r, "Failed to set bus address: %m");
        (void) sd_bus_negotiate_fds(bus, 1);
        r = sd_bus_start(bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to jumpstarterd at %s: %m", i->socket_path);
        *ret = TAKE_PTR(bus);
        return 0;
}

int agent_connect_system(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int has_owner = 0, r;

        (void) sd_bus_error_add_map(agent_error_map);
        /* sd_bus_open_system() honours $DBUS_SYSTEM_BUS_ADDRESS. */
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                log_debug_errno(r, "No system bus: %m");
                return 0;
        }
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;

                r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", &error, &reply, "s", AGENT_BUS_NAME);
                if (r < 0 || sd_bus_message_read(reply, "b", &has_owner) <= 0 || !has_owner) {
                        log_debug("jumpstarterd is not on the system bus.");
                        return 0;
                }
        }
        *ret = TAKE_PTR(bus);
        return 1;
}

const char *agent_destination(sd_bus *bus) {
        return sd_bus_is_bus_client(bus) > 0 ? AGENT_BUS_NAME : NULL;
}

int agent_call_error(const char *what, const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error)) {
                r = sd_bus_error_get_errno(error);
                return log_error_errno(r, "%s: %s", what, error->message ? error->message : strerror(r));
        }
        return log_error_errno(r, "%s: %m", what);
}

static char *format_time(char *buf, size_t size, uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "%" PRIu64, usec);
        return buf;
}

int bus_lease_open(sd_bus **ret) {
        if (arg_client_config || getenv("JMP_CLIENT_CONFIG"))
                return 0;
        return agent_connect_system(ret);
}

/* Adds a lease as the controller's API shows one (name, dut, client, begin, end, state). */
static int lease_items_add(json_t *items, const char *lease, const char *dut, const char *holder, uint64_t begin,
                           uint64_t end) {
        char b[64], e[64];

        return json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", lease, "dut", dut,
                                                      "client", holder, "begin", format_time(b, sizeof b, begin),
                                                      "end", format_time(e, sizeof e, end), "state", "active"));
}

static int lease_items_print(json_t *items, bool json) {
        static const char *const headers[] = { "NAME", "DUT", "HOLDER", "BEGIN", "END", NULL };
        _cleanup_(table_freep) Table *t = NULL;
        size_t i;
        json_t *l;

        if (json) {
                print_json(items);
                return 0;
        }
        t = table_new(headers);
        if (!t)
                return log_oom(), 1;
        json_array_foreach(items, i, l)
                if (table_add(t, str_member(l, "name"), str_member(l, "dut"), str_member(l, "client"),
                              str_member(l, "begin"), str_member(l, "end")) < 0)
                        return log_oom(), 1;
        table_print(t);
        return 0;
}

int bus_lease_create(sd_bus *bus, const char *dut_or_selector, uint64_t duration_usec, bool json) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_decrefp) json_t *items = NULL;
        const char *lease, *dut;
        uint64_t end_usec;
        struct passwd *pw;
        int r;

        r = sd_bus_call_method(bus, AGENT_BUS_NAME, AGENT_OBJECT_PATH, AGENT_LEASES_INTERFACE, "CreateLease", &error,
                               &reply, "st", dut_or_selector, duration_usec);
        if (r < 0)
                return agent_call_error("Failed to create a lease", &error, r), 1;
        r = sd_bus_message_read(reply, "sst", &lease, &dut, &end_usec);
        if (r <= 0)
                return log_error_errno(r < 0 ? r : EBADMSG, "Failed to parse the reply: %m"), 1;
        pw = getpwuid(geteuid());
        items = json_array();
        if (!items || lease_items_add(items, lease, dut, pw ? pw->pw_name : "", end_usec - duration_usec, end_usec) < 0)
                return log_oom(), 1;
        if (json)
                return print_json(json_array_get(items, 0)), 0;
        return lease_items_print(items, false);
}

int bus_lease_list(sd_bus *bus, bool json) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_decrefp) json_t *items = NULL;
        const char *lease, *dut, *holder;
        uint64_t begin, end;
        uint32_t uid;
        int r;

        r = sd_bus_call_method(bus, AGENT_BUS_NAME, AGENT_OBJECT_PATH, AGENT_LEASES_INTERFACE, "ListLeases", &error,
                               &reply, NULL);
        if (r < 0)
                return agent_call_error("Failed to list the leases", &error, r), 1;
        items = json_array();
        if (!items)
                return log_oom(), 1;
        r = sd_bus_message_enter_container(reply, 'a', "(sssutt)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sssutt)", &lease, &dut, &holder, &uid, &begin, &end)) > 0)
                if (lease_items_add(items, lease, dut, holder, begin, end) < 0)
                        return log_oom(), 1;
        if (r < 0)
                return log_error_errno(r, "Failed to parse the reply: %m"), 1;
        return lease_items_print(items, json);
}

int bus_lease_release(sd_bus *bus, const char *lease_or_dut) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, AGENT_BUS_NAME, AGENT_OBJECT_PATH, AGENT_LEASES_INTERFACE, "ReleaseLease", &error,
                               NULL, "s", lease_or_dut);
        if (r < 0)
                return agent_call_error("Failed to release the lease", &error, r), 1;
        printf("Lease %s released.\n", lease_or_dut);
        return 0;
}

int bus_lease_extend(sd_bus *bus, const char *lease_or_dut, uint64_t by_usec) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t end = 0;
        char buf[64];
        int r;

        r = sd_bus_call_method(bus, AGENT_BUS_NAME, AGENT_OBJECT_PATH, AGENT_LEASES_INTERFACE, "ExtendLease", &error,
                               &reply, "st", lease_or_dut, by_usec);
        if (r < 0)
                return agent_call_error("Failed to extend the lease", &error, r), 1;
        (void) sd_bus_message_read(reply, "t", &end);
        printf("Lease %s now ends at %s.\n", lease_or_dut, format_time(buf, sizeof buf, end));
        return 0;
}
