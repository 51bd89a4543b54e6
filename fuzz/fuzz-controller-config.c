/* Fuzzer for the ControllerConfig parser: any bytes give a whole config or one error message */
#include <string.h>

#include "controller-config.h"
#include "fuzz-check.h"
#include "fuzz.h"
#include "macro.h"

#define FUZZ_PATH "/fuzz/controller.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(controller_config_freep) ControllerConfig *c = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = controller_config_parse(FUZZ_PATH, (const char *) data, size, &c, &error);
        if (r < 0) {
                check_config_error(r, c, error, FUZZ_PATH);
                return 0;
        }
        CHECK(r == 0 && c && !error);

        /* What the controller relies on before it starts. */
        CHECK(c->path && streq(c->path, FUZZ_PATH));
        CHECK(c->name && *c->name);
        CHECK(listen_address_is_valid(c->listen));
        CHECK(c->endpoint && *c->endpoint);
        CHECK(c->certificate && c->certificate[0] == '/');
        CHECK(c->key && c->key[0] == '/');
        CHECK(c->ca && c->ca[0] == '/');
        CHECK(c->state_directory && c->state_directory[0] == '/');
        CHECK(!c->router_listen || listen_address_is_valid(c->router_listen));
        CHECK(c->token_lifetime_usec > 0 && c->stream_token_lifetime_usec > 0);
        return 0;
}
