/* Fuzzer for the AccessPolicy parser and evaluator: any bytes give a whole policy or one error message */
#include <string.h>

#include "fuzz-check.h"
#include "fuzz.h"
#include "macro.h"
#include "policy-config.h"

#define FUZZ_PATH "/fuzz/policy.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_free_ char *error = NULL;
        static const Label client[] = { { (char *) "team", (char *) "qa" } };
        static const Label device[] = { { (char *) "board", (char *) "rpi4" }, { (char *) "team", (char *) "qa" } };
        PolicyLeaseDecision d = {};
        Selector *any = NULL;
        int r;

        r = policy_parse(FUZZ_PATH, (const char *) data, size, &p, &error);
        if (r < 0) {
                CHECK(!p && error && strncmp(error, FUZZ_PATH ":", strlen(FUZZ_PATH ":")) == 0);
                return 0;
        }
        CHECK(r == 0 && p && !error && streq(p->path, FUZZ_PATH));
        for (size_t i = 0; i < p->n_roles; i++)
                CHECK(p->roles[i].name && p->roles[i].clients && p->roles[i].exporters && p->roles[i].verbs != 0);

        /* Evaluation of whatever parsed never fails but for memory, and a refusal always says why. */
        (void) policy_allows_lease(p, client, ELEMENTSOF(client), device, ELEMENTSOF(device), 3600000000ULL);
        (void) policy_device_verbs(p, client, ELEMENTSOF(client), device, ELEMENTSOF(device));
        CHECK(selector_parse("board=rpi4", &any, NULL) == 0);
        r = policy_judge_lease(p, "fuzz", client, ELEMENTSOF(client), any, 3600000000ULL, &d);
        CHECK(r == 0 || r == -ENOMEM);
        CHECK(r < 0 || d.allowed == !d.reason);
        policy_lease_decision_done(&d);
        selector_free(any);
        return 0;
}
