/* Calls into jumpstarterd's agent API from the command line */
#include "agent-client.h"
#include "log.h"

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

int agent_call_error(const char *what, const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error)) {
                r = sd_bus_error_get_errno(error);
                return log_error_errno(r, "%s: %s", what, error->message ? error->message : strerror(r));
        }
        return log_error_errno(r, "%s: %m", what);
}
