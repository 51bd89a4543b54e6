/* Fuzzer for the label selector parser: canonical round trips, and matching against a brute-force oracle */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz-check.h"
#include "fuzz.h"
#include "macro.h"
#include "selector.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(Selector *, selector_free);


/* What users of a parsed selector rely on (selector.h). */
static void check_selector(const Selector *s) {
        CHECK(s->n_requirements <= SELECTOR_REQUIREMENTS_MAX);
        for (size_t i = 0; i < s->n_requirements; i++) {
                const SelectorRequirement *r = &s->requirements[i];

                CHECK(r->key && *r->key);
                CHECK(i == 0 || strcmp(s->requirements[i - 1].key, r->key) <= 0);
                CHECK(i == 0 || !streq(s->requirements[i - 1].key, r->key) ||
                      s->requirements[i - 1].operator <= r->operator);
                switch (r->operator) {
                case SELECTOR_EQUALS:
                case SELECTOR_NOT_EQUALS:
                        CHECK(r->n_values == 1);
                        break;
                case SELECTOR_IN:
                case SELECTOR_NOT_IN:
                        CHECK(r->n_values >= 2);
                        break;
                case SELECTOR_EXISTS:
                case SELECTOR_DOES_NOT_EXIST:
                        CHECK(r->n_values == 0);
                        break;
                default:
                        CHECK(false);
                }
                for (size_t v = 0; v < r->n_values; v++) {
                        CHECK(r->values[v]);
                        CHECK(strlen(r->values[v]) <= 63);
                        CHECK(v == 0 || strcmp(r->values[v - 1], r->values[v]) < 0);
                }
        }
}

/* Whether the requirements of one key [from, to) hold for value (NULL: the key is absent). */
static bool key_matches(const Selector *s, size_t from, size_t to, const char *key, const char *value) {
        const Selector sub = {
                .requirements = s->requirements + from,
                .n_requirements = to - from,
        };
        Label l = { .key = (char *) key, .value = (char *) value };

        return selector_matches(&sub, &l, value ? 1 : 0);
}

/* A value that no requirement of [from, to) names. */
static const char *fresh_value(const Selector *s, size_t from, size_t to, char *buf, size_t size) {
        for (unsigned k = 0;; k++) {
                bool named = false;

                (void) snprintf(buf, size, "fresh%u", k);
                for (size_t i = from; i < to && !named; i++)
                        for (size_t v = 0; v < s->requirements[i].n_values && !named; v++)
                                named = streq(s->requirements[i].values[v], buf);
                if (!named)
                        return buf;
        }
}

/* The oracle: keys are independent, and for one key only absence, the values its requirements name
 * and one value they do not name can differ in outcome. Tries them all; builds labels that match if
 * any exist. selector_satisfiable() and selector_matches() must agree with it. */
static void check_satisfiable(const Selector *s) {
        _cleanup_free_ Label *witness = calloc(s->n_requirements + 1, sizeof(Label));
        _cleanup_free_ char *fresh = malloc(s->n_requirements * 16 + 1);
        size_t n_witness = 0;
        bool satisfiable = true;

        CHECK(witness && fresh);
        for (size_t i = 0, j; i < s->n_requirements; i = j) {
                const char *key = s->requirements[i].key, *found = NULL;
                bool any = false;

                for (j = i + 1; j < s->n_requirements; j++)
                        if (!streq(s->requirements[j].key, key))
                                break;

                if (key_matches(s, i, j, key, NULL))
                        any = true;
                for (size_t k = i; k < j && !any; k++)
                        for (size_t v = 0; v < s->requirements[k].n_values && !any; v++)
                                if (key_matches(s, i, j, key, s->requirements[k].values[v])) {
                                        any = true;
                                        found = s->requirements[k].values[v];
                                }
                if (!any) {
                        found = fresh_value(s, i, j, fresh + i * 16, 16);
                        any = key_matches(s, i, j, key, found);
                }
                if (!any) {
                        satisfiable = false;
                        break;
                }
                if (found)
                        witness[n_witness++] = (Label) { .key = (char *) key, .value = (char *) found };
        }

        CHECK(selector_satisfiable(s) == satisfiable);
        if (satisfiable) {
                /* With a label that no requirement names, too: it must not matter. */
                witness[n_witness++] = (Label) { .key = (char *) "zz.unnamed/key", .value = (char *) "x" };
                CHECK(selector_matches(s, witness, n_witness));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(selector_freep) Selector *s = NULL, *again = NULL;
        _cleanup_free_ char *text = NULL, *error = NULL, *canonical = NULL, *canonical2 = NULL;
        int r;

        /* The parser reads a C string: what follows a NUL byte is not its input. */
        text = strndup((const char *) data, size);
        if (!text)
                return 0;

        r = selector_parse(text, &s, &error);
        if (r < 0) {
                /* Nothing half-parsed, and one printable line with a column unless memory ran out. */
                CHECK(!s);
                if (r != -ENOMEM) {
                        CHECK(r == -EINVAL);
                        CHECK(error);
                        CHECK(strncmp(error, "column ", 7) == 0);
                        for (const char *c = error; *c; c++)
                                CHECK(*c >= 0x20 && *c < 0x7f);
                }
                return 0;
        }
        CHECK(r == 0 && s && !error);
        check_selector(s);
        CHECK(selector_is_empty(s) == (s->n_requirements == 0));

        canonical = selector_to_string(s);
        CHECK(canonical);
        r = selector_parse(canonical, &again, &error);
        if (r < 0)
                fprintf(stderr, "\"%s\" does not parse: %s\n", canonical, strna(error));
        CHECK(r == 0);
        CHECK(selector_equal(s, again));
        canonical2 = selector_to_string(again);
        CHECK(canonical2 && streq(canonical, canonical2));

        check_satisfiable(s);
        CHECK(selector_matches(s, NULL, 0) == selector_matches(again, NULL, 0));
        return 0;
}
