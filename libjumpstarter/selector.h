/* Label selectors in Kubernetes syntax: "board=rpi4,site in (desk,lab),!broken" */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* A selector arrives from clients over the network; these bound what parsing, matching and the
 * satisfiability check can be made to do. */
#define SELECTOR_LENGTH_MAX 4096
#define SELECTOR_REQUIREMENTS_MAX 128

typedef enum SelectorOperator {
        SELECTOR_EQUALS,         /* key=value, key==value, key in (value) */
        SELECTOR_NOT_EQUALS,     /* key!=value, key notin (value) */
        SELECTOR_IN,             /* key in (a,b,...), two values or more */
        SELECTOR_NOT_IN,         /* key notin (a,b,...), two values or more */
        SELECTOR_EXISTS,         /* key */
        SELECTOR_DOES_NOT_EXIST, /* !key */
        _SELECTOR_OPERATOR_MAX,
        _SELECTOR_OPERATOR_INVALID = -EINVAL,
} SelectorOperator;

/* The operator as the canonical form writes it: "=", "!=", "in", "notin", "" (exists), "!". */
const char *selector_operator_to_string(SelectorOperator op);

typedef struct SelectorRequirement {
        char *key;
        SelectorOperator operator;
        /* Sorted by strcmp() and unique. One value for SELECTOR_EQUALS and SELECTOR_NOT_EQUALS, two or
         * more for SELECTOR_IN and SELECTOR_NOT_IN, none otherwise. "" is a valid value. */
        char **values;
        size_t n_values;
} SelectorRequirement;

/* All requirements must hold. Read-only for users: selector_parse() leaves it canonical, i.e.
 * requirements sorted by key (then operator, then values) without duplicates, one-value sets
 * written as = and !=, so that two selectors that print the same compare equal. */
typedef struct Selector {
        SelectorRequirement *requirements;
        size_t n_requirements;
} Selector;

/* Parses text as "kubectl get -l" does, with three differences: "in ()"/"notin ()" is an error
 * (Kubernetes reads the set holding only ""), ">" and "<" are not supported, and text is bounded
 * by SELECTOR_LENGTH_MAX and SELECTOR_REQUIREMENTS_MAX. Empty or blank text gives the empty
 * selector. Returns 0, -ENOMEM, or -EINVAL with *ret_error (if ret_error is non-NULL) set to one
 * line such as 'column 6: expected "(" after "in", found "x"', columns counting bytes from 1. */
int selector_parse(const char *text, Selector **ret, char **ret_error);

Selector *selector_free(Selector *s);

/* Labels need not be sorted; with a key listed twice, the first counts. As in Kubernetes, != and
 * notin hold for labels that lack the key. */
bool selector_matches(const Selector *s, const Label *labels, size_t n_labels);

/* The canonical form, which selector_parse() reads back into an equal selector; "" for the empty
 * selector. NULL if out of memory. */
char *selector_to_string(const Selector *s);

bool selector_equal(const Selector *a, const Selector *b);

/* True for the selector of empty text, which matches any set of labels. */
bool selector_is_empty(const Selector *s);

/* False if no set of labels can match, such as "a=1,a=2", "a,!a" or "a in (x),a notin (x)": a lease
 * request with such a selector would wait forever, so it is refused up front. */
bool selector_satisfiable(const Selector *s);
