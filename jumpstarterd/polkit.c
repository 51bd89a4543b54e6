/* Asking polkit, asynchronously on the event loop, whether a bus caller may do something */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "polkit.h"

/* polkitd answers from memory; a daemon that does not answer must not keep a call forever. */
#define POLKIT_TIMEOUT_USEC (25 * USEC_PER_SEC)

typedef struct PolkitCheck {
        PolkitCheckFunc done;
        void *userdata;
} PolkitCheck;

static int polkit_on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitCheck *c = userdata;
        int authorized = 0, challenge = 0, r;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);

                log_warning("polkit did not answer: %s: %s", strna(e ? e->name : NULL), strna(e ? e->message : NULL));
                r = -sd_bus_error_get_errno(e);
                c->done(r < 0 ? r : -EHOSTDOWN, c->userdata);
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r > 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r <= 0) {
                log_warning_errno(r < 0 ? r : EBADMSG, "Failed to parse polkit's answer: %m");
                c->done(r < 0 ? r : -EBADMSG, c->userdata);
                return 0;
        }
        /* A challenge means "an administrator could say yes": without interaction that is a no. */
        c->done(authorized ? 1 : 0, c->userdata);
        return 0;
}

int polkit_check_async(sd_bus_message *m, const char *action, const char *dut, PolkitCheckFunc done,
                       void *userdata, sd_bus_slot **ret_slot) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        sd_bus *bus = sd_bus_message_get_bus(m);
        const char *sender = sd_bus_message_get_sender(m);
        PolkitCheck *c;
        int r;

        if (!sender)
                return -EBADMSG;

        r = sd_bus_message_new_method_call(bus, &call, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "(sa{sv})s", "system-bus-name", 1, "name", "s", sender, action);
        if (r < 0)
                return r;
        if (dut)
                r = sd_bus_message_append(call, "a{ss}", 1, "dut", dut);
        else
                r = sd_bus_message_append(call, "a{ss}", 0);
        if (r < 0)
                return r;
        /* Flags 0: no interaction (nobody could answer a password prompt for a daemon's caller). */
        r = sd_bus_message_append(call, "us", 0, "");
        if (r < 0)
                return r;

        c = malloc(sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (PolkitCheck) { .done = done, .userdata = userdata };
        r = sd_bus_call_async(bus, &slot, call, polkit_on_reply, c, POLKIT_TIMEOUT_USEC);
        if (r < 0) {
                free(c);
                return r;
        }
        (void) sd_bus_slot_set_destroy_callback(slot, free);
        *ret_slot = TAKE_PTR(slot);
        return 0;
}
