/* Fuzzer for the ClientConfig parser: any bytes give a whole config or one error message */
#include <string.h>

#include "client-config.h"
#include "config.h"
#include "fuzz-check.h"
#include "fuzz.h"
#include "macro.h"

#define FUZZ_PATH "/fuzz/client.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(client_config_freep) ClientConfig *c = NULL, *back = NULL;
        _cleanup_free_ char *error = NULL, *text = NULL, *error2 = NULL;
        int r;

        r = client_config_parse(FUZZ_PATH, (const char *) data, size, &c, &error);
        if (r < 0) {
                check_config_error(r, c, error, FUZZ_PATH);
                return 0;
        }
        CHECK(r == 0 && c && !error);

        /* What jmp relies on. */
        CHECK(c->path && streq(c->path, FUZZ_PATH));
        CHECK(dut_name_is_valid(c->name));
        CHECK(!c->namespace || dut_name_is_valid(c->namespace));
        CHECK(endpoint_is_valid(c->endpoint));
        CHECK(bearer_token_is_valid(c->token));
        CHECK(!c->ca_pem || strstr(c->ca_pem, "-----BEGIN"));

        /* What jmp admin writes reads back as the same config. */
        CHECK(client_config_format(c, &text) == 0);
        CHECK(client_config_parse(FUZZ_PATH, text, strlen(text), &back, &error2) == 0);
        CHECK(streq(back->name, c->name));
        CHECK(streq(back->namespace, c->namespace ?: "default"));
        CHECK(streq(back->endpoint, c->endpoint));
        CHECK(streq(back->token, c->token));
        CHECK(streq_ptr(back->ca_pem, c->ca_pem));
        CHECK(back->insecure == c->insecure);
        return 0;
}
