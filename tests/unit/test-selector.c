/* Tests for label selectors: matching, canonical form, errors with columns, satisfiability */
#include <errno.h>
#include <stdio.h>

#include "macro.h"
#include "selector.h"
#include "tests.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(Selector *, selector_free);

#define LABELS_MAX 8

/* "k=v k2=v2" into labels that point into buf; a label without "=" has the value "". */
static size_t labels_from(const char *text, char *buf, size_t size, Label *labels) {
        size_t n = 0;
        char *save = NULL;

        ASSERT_TRUE(strlen(text) < size);
        strcpy(buf, text);
        for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
                char *eq = strchr(w, '=');

                ASSERT_TRUE(n < LABELS_MAX);
                if (eq)
                        *eq = 0;
                labels[n++] = (Label) { .key = w, .value = eq ? eq + 1 : (char *) "" };
        }
        return n;
}

static Selector *parse_ok(const char *text) {
        Selector *s = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = selector_parse(text, &s, &error);
        if (r < 0)
                ASSERT_FAIL("\"%s\" parses (got %d: %s)", text, r, strna(error));
        ASSERT_TRUE(s);
        ASSERT_TRUE(!error);
        return s;
}

typedef struct MatchCase {
        const char *selector;
        const char *labels;
        bool match;
} MatchCase;

static const MatchCase match_cases[] = {
        /* The empty selector matches everything. */
        { "", "", true },
        { "", "a=1", true },
        { " \t\r\n", "a=1", true },

        { "a=1", "a=1", true },
        { "a=1", "a=2", false },
        { "a=1", "b=1", false },
        { "a=1", "", false },
        { "a==1", "a=1", true },
        { "a==1", "a=2", false },

        /* != and notin hold where the key is missing, as in Kubernetes. */
        { "a!=1", "a=1", false },
        { "a!=1", "a=2", true },
        { "a!=1", "", true },
        { "a!=1", "b=1", true },

        { "a in (1,2)", "a=1", true },
        { "a in (1,2)", "a=2", true },
        { "a in (1,2)", "a=3", false },
        { "a in (1,2)", "", false },
        { "a notin (1,2)", "a=1", false },
        { "a notin (1,2)", "a=2", false },
        { "a notin (1,2)", "a=3", true },
        { "a notin (1,2)", "", true },

        { "a", "a=1", true },
        { "a", "a", true },
        { "a", "b=1", false },
        { "a", "", false },
        { "!a", "", true },
        { "!a", "b=1", true },
        { "!a", "a=1", false },
        { "!a", "a", false },

        /* The empty value. */
        { "a=", "a", true },
        { "a=", "a=1", false },
        { "a=", "", false },
        { "a!=", "a", false },
        { "a!=", "", true },
        { "a in (,x)", "a", true },
        { "a in (,x)", "a=x", true },
        { "a in (,x)", "a=y", false },
        { "a in (x,)", "a", true },
        { "a notin (x,)", "a", false },
        { "a notin (x,)", "a=y", true },

        /* All requirements must hold. */
        { "a=1,b!=2", "a=1", true },
        { "a=1,b!=2", "a=1 b=2", false },
        { "a=1,b!=2", "b=3 a=1", true },
        { "a,!b", "a=1 b=1", false },
        { "a,!b", "a=1 c=1", true },
        { "board in (rpi4,rpi5),site=lab,!broken", "site=lab board=rpi5", true },
        { "board in (rpi4,rpi5),site=lab,!broken", "site=lab board=rpi5 broken=yes", false },
        { "board in (rpi4,rpi5),site=lab,!broken", "site=desk board=rpi5", false },

        /* Whitespace around tokens. */
        { "  a = 1 ,\tb in ( x , y ) ,\n! c ", "a=1 b=y", true },
        { "  a = 1 ,\tb in ( x , y ) ,\n! c ", "a=1 b=y c=1", false },
        { "a\t==\t1", "a=1", true },

        /* Keys with a prefix; keywords as keys and values. */
        { "example.com/board=rpi4", "example.com/board=rpi4", true },
        { "example.com/board=rpi4", "board=rpi4", false },
        { "in in (in,notin)", "in=notin", true },
        { "notin notin (in)", "notin=in", false },
        { "A_b.c-D=X.y_z-9", "A_b.c-D=X.y_z-9", true },

        /* Values compare exactly. */
        { "a=rpi", "a=rpi4", false },
        { "a=Rpi4", "a=rpi4", false },
};

TEST(matches) {
        for (size_t i = 0; i < ELEMENTSOF(match_cases); i++) {
                const MatchCase *c = &match_cases[i];
                _cleanup_(selector_freep) Selector *s = parse_ok(c->selector);
                Label labels[LABELS_MAX];
                char buf[256];
                size_t n = labels_from(c->labels, buf, sizeof(buf), labels);

                if (selector_matches(s, labels, n) != c->match)
                        ASSERT_FAIL("\"%s\" %s {%s}", c->selector, c->match ? "matches" : "does not match",
                                    c->labels);
        }
}

TEST(matches_first_of_repeated_key) {
        _cleanup_(selector_freep) Selector *s = parse_ok("a=1");
        Label labels[LABELS_MAX];
        char buf[64];

        ASSERT_TRUE(selector_matches(s, labels, labels_from("a=1 a=2", buf, sizeof(buf), labels)));
        ASSERT_FALSE(selector_matches(s, labels, labels_from("a=2 a=1", buf, sizeof(buf), labels)));
        ASSERT_TRUE(selector_matches(s, NULL, 0) == false);
}

TEST(empty) {
        _cleanup_(selector_freep) Selector *e = parse_ok("");
        _cleanup_(selector_freep) Selector *b = parse_ok("  \t ");
        _cleanup_(selector_freep) Selector *a = parse_ok("a");
        _cleanup_free_ char *t = NULL;

        ASSERT_TRUE(selector_is_empty(e));
        ASSERT_TRUE(selector_is_empty(b));
        ASSERT_FALSE(selector_is_empty(a));
        ASSERT_TRUE(selector_matches(e, NULL, 0));
        ASSERT_TRUE(selector_satisfiable(e));
        ASSERT_TRUE(selector_equal(e, b));
        ASSERT_FALSE(selector_equal(e, a));
        t = selector_to_string(e);
        ASSERT_STREQ(t, "");
        ASSERT_TRUE(selector_free(NULL) == NULL);
}

typedef struct CanonicalCase {
        const char *text;
        const char *canonical;
} CanonicalCase;

static const CanonicalCase canonical_cases[] = {
        { "", "" },
        { "a=1", "a=1" },
        { "a==1", "a=1" },
        { " a = 1 ", "a=1" },
        { "b=2,a=1", "a=1,b=2" },
        { "z,y=1,x in (2,1),!w", "!w,x in (1,2),y=1,z" },
        { "a in (y,x,y)", "a in (x,y)" },
        { "a notin ( b , a )", "a notin (a,b)" },
        /* A set of one value is written as = or !=: one spelling per meaning. */
        { "a in (x)", "a=x" },
        { "a notin (x)", "a!=x" },
        { "a in (x,x)", "a=x" },
        { "a in (,)", "a=" },
        { "a in (,x)", "a in (,x)" },
        { "a in (x,)", "a in (,x)" },
        { "a in (x,,y)", "a in (,x,y)" },
        { "a=", "a=" },
        { "a!=", "a!=" },
        { "a= ,b", "a=,b" },
        /* Repeats go, and one key's requirements sort by operator: = != in notin exists !. */
        { "a,a", "a" },
        { "a=1,a==1,a in (1)", "a=1" },
        { "!a, a", "a,!a" },
        { "a notin (1,2),a in (1,2),a!=1,a=1", "a=1,a!=1,a in (1,2),a notin (1,2)" },
        { "example.com/board=rpi4,board", "board,example.com/board=rpi4" },
        { "in in (in),notin notin (notin,in)", "in=in,notin notin (in,notin)" },
        /* strcmp() order: uppercase before lowercase, "-" before digits. */
        { "b=1,B=1,a-b=1,a0=1", "B=1,a-b=1,a0=1,b=1" },
};

TEST(canonical_round_trip) {
        for (size_t i = 0; i < ELEMENTSOF(canonical_cases); i++) {
                const CanonicalCase *c = &canonical_cases[i];
                _cleanup_(selector_freep) Selector *s = parse_ok(c->text), *again = NULL;
                _cleanup_free_ char *t = NULL, *t2 = NULL;

                t = selector_to_string(s);
                if (!streq_ptr(t, c->canonical))
                        ASSERT_FAIL("\"%s\" prints as \"%s\" (got \"%s\")", c->text, c->canonical, strna(t));
                again = parse_ok(t);
                ASSERT_TRUE(selector_equal(s, again));
                t2 = selector_to_string(again);
                ASSERT_STREQ(t2, t);
        }
}

TEST(structure) {
        _cleanup_(selector_freep) Selector *s = parse_ok("site in (lab, desk), !broken, board==rpi4");
        const SelectorRequirement *r;

        ASSERT_EQ_U(s->n_requirements, 3);
        r = &s->requirements[0];
        ASSERT_STREQ(r->key, "board");
        ASSERT_EQ(r->operator, SELECTOR_EQUALS);
        ASSERT_EQ_U(r->n_values, 1);
        ASSERT_STREQ(r->values[0], "rpi4");
        r = &s->requirements[1];
        ASSERT_STREQ(r->key, "broken");
        ASSERT_EQ(r->operator, SELECTOR_DOES_NOT_EXIST);
        ASSERT_EQ_U(r->n_values, 0);
        r = &s->requirements[2];
        ASSERT_STREQ(r->key, "site");
        ASSERT_EQ(r->operator, SELECTOR_IN);
        ASSERT_EQ_U(r->n_values, 2);
        ASSERT_STREQ(r->values[0], "desk");
        ASSERT_STREQ(r->values[1], "lab");

        ASSERT_STREQ(selector_operator_to_string(SELECTOR_NOT_IN), "notin");
        ASSERT_STREQ(selector_operator_to_string(SELECTOR_DOES_NOT_EXIST), "!");
        ASSERT_TRUE(selector_operator_to_string(_SELECTOR_OPERATOR_MAX) == NULL);
        ASSERT_TRUE(selector_operator_to_string(_SELECTOR_OPERATOR_INVALID) == NULL);
}

static void check_error(const char *text, const char *expected) {
        Selector *s = (Selector *) 1;
        _cleanup_free_ char *error = NULL;
        int r;

        r = selector_parse(text, &s, &error);
        if (r != -EINVAL)
                ASSERT_FAIL("\"%s\" fails with -EINVAL (got %d)", text, r);
        /* Nothing half-parsed comes back. */
        ASSERT_TRUE(s == (Selector *) 1);
        if (!streq_ptr(error, expected))
                ASSERT_FAIL("\"%s\" fails with\n  %s\ngot\n  %s", text, expected, strna(error));

        /* The message is optional. */
        ASSERT_EQ(selector_parse(text, &s, NULL), -EINVAL);
        ASSERT_TRUE(s == (Selector *) 1);
}

#define A10 "aaaaaaaaaa"
#define A32 A10 A10 A10 "aa"
#define A63 A10 A10 A10 A10 A10 A10 "aaa"

TEST(errors) {
        /* Sets */
        check_error("a in ()", "column 6: empty value set after \"in\"");
        check_error("a notin ( )", "column 9: empty value set after \"notin\"");
        check_error("a in (x", "column 8: expected \",\" or \")\", found end of input");
        check_error("a in (x y)", "column 9: expected \",\" or \")\", found \"y\"");
        check_error("a in (", "column 7: expected a value, \",\" or \")\", found end of input");
        check_error("a in (=)", "column 7: expected a value, \",\" or \")\", found \"=\"");
        check_error("a in x", "column 6: expected \"(\" after \"in\", found \"x\"");
        check_error("board notin", "column 12: expected \"(\" after \"notin\", found end of input");
        check_error("a in (x))", "column 9: expected \",\" or end of input, found \")\"");

        /* Where a key belongs */
        check_error("=x", "column 1: expected a key or \"!\", found \"=\"");
        check_error("a=b,", "column 5: expected a key or \"!\", found end of input");
        check_error("a=b, ", "column 6: expected a key or \"!\", found end of input");
        check_error(",a", "column 1: expected a key or \"!\", found \",\"");
        check_error("a,,b", "column 3: expected a key or \"!\", found \",\"");
        check_error("(a)", "column 1: expected a key or \"!\", found \"(\"");
        check_error("!", "column 2: expected a key after \"!\", found end of input");
        check_error("!!a", "column 2: expected a key after \"!\", found \"!\"");
        check_error("! =a", "column 3: expected a key after \"!\", found \"=\"");

        /* Operators and values */
        check_error("a!", "column 2: expected \"=\", \"==\", \"!=\", \"in\", \"notin\", \",\" or end of input "
                          "after the key, found \"!\"");
        check_error("a b", "column 3: expected \"=\", \"==\", \"!=\", \"in\", \"notin\", \",\" or end of input "
                           "after the key, found \"b\"");
        check_error("a (x)", "column 3: expected \"=\", \"==\", \"!=\", \"in\", \"notin\", \",\" or end of input "
                             "after the key, found \"(\"");
        check_error("a=b=c", "column 4: expected \",\" or end of input, found \"=\"");
        check_error("a=b c", "column 5: expected \",\" or end of input, found \"c\"");
        check_error("!a=b", "column 3: expected \",\" or end of input, found \"=\"");
        check_error("a===b", "column 4: expected a value after \"==\", found \"=\"");
        check_error("a=(x)", "column 3: expected a value after \"=\", found \"(\"");
        check_error("a!=!x", "column 4: expected a value after \"!=\", found \"!\"");
        check_error("a>1", "column 2: \">\" is not supported: a requirement compares with =, ==, !=, in or notin");
        check_error("a < 1", "column 3: \"<\" is not supported: a requirement compares with =, ==, !=, in or notin");

        /* Names */
        check_error(A63 "a=1", "column 1: label name \"" A32 "...\" is longer than 63 characters");
        check_error("x=" A63 "a", "column 3: label value \"" A32 "...\" is longer than 63 characters");
        check_error("-a", "column 1: label name must begin with a letter or digit");
        check_error("a_", "column 2: label name must end with a letter or digit");
        check_error("a=.b", "column 3: label value must begin with a letter or digit");
        check_error("a in (x,y-)", "column 10: label value must end with a letter or digit");
        check_error("a/b/c", "column 4: invalid character \"/\" in label name (letters, digits, \"-\", \"_\" and \".\" "
                             "are allowed)");
        check_error("a=\"x\"", "column 3: invalid character \"\\\"\" in label value (letters, digits, \"-\", \"_\" and "
                               "\".\" are allowed)");
        check_error("a=b\x01", "column 4: invalid character \"\\x01\" in label value (letters, digits, \"-\", \"_\" and "
                               "\".\" are allowed)");
        check_error("ä", "column 1: invalid character \"\\xc3\" in label name (letters, digits, \"-\", \"_\" and \".\" "
                         "are allowed)");

        /* Prefixes */
        check_error("/a", "column 1: empty key prefix before \"/\"");
        check_error("example.com/", "column 13: empty label name after \"/\"");
        check_error("Example.com/a", "column 1: invalid character \"E\" in key prefix (a DNS subdomain: lowercase "
                                     "letters, digits, \"-\" and \".\")");
        check_error("ex_ample.com/a", "column 3: invalid character \"_\" in key prefix (a DNS subdomain: lowercase "
                                      "letters, digits, \"-\" and \".\")");
        check_error("-example.com/a", "column 1: a part of the key prefix must begin and end with a letter or digit");
        check_error("example-.com/a", "column 8: a part of the key prefix must begin and end with a letter or digit");
        check_error("example..com/a", "column 9: empty part between dots in key prefix");
        check_error(".com/a", "column 1: empty part between dots in key prefix");
        check_error("example.com./a", "column 13: empty part between dots in key prefix");
}

/* A DNS subdomain of length bytes, in parts of 63, then "/a". */
static void prefix_key(char *buf, size_t length) {
        memset(buf, 'a', length);
        for (size_t i = 63; i < length; i += 64)
                buf[i] = '.';
        strcpy(buf + length, "/a");
}

TEST(limits) {
        char text[SELECTOR_LENGTH_MAX + 2], expected[64];
        size_t n = 0;

        /* The longest name, value and prefix; one more is too long. */
        selector_free(parse_ok(A63 "=" A63));
        prefix_key(text, 253);
        selector_free(parse_ok(text));
        prefix_key(text, 254);
        check_error(text, "column 1: key prefix is longer than 253 characters");

        /* The longest text, padded with blanks; one byte more is too much. */
        memset(text, ' ', SELECTOR_LENGTH_MAX);
        text[0] = 'a';
        text[SELECTOR_LENGTH_MAX] = 0;
        selector_free(parse_ok(text));
        text[SELECTOR_LENGTH_MAX] = ' ';
        text[SELECTOR_LENGTH_MAX + 1] = 0;
        check_error(text, "column 4097: selector is longer than 4096 bytes");

        /* SELECTOR_REQUIREMENTS_MAX requirements, then one more. */
        for (unsigned i = 0; i < SELECTOR_REQUIREMENTS_MAX; i++)
                n += (size_t) snprintf(text + n, sizeof(text) - n, "%sk%u", i > 0 ? "," : "", i);
        selector_free(parse_ok(text));
        (void) snprintf(text + n, sizeof(text) - n, ",extra");
        (void) snprintf(expected, sizeof(expected), "column %zu: more than %d requirements", n + 2,
                        SELECTOR_REQUIREMENTS_MAX);
        check_error(text, expected);
}

typedef struct SatisfiableCase {
        const char *selector;
        bool satisfiable;
} SatisfiableCase;

static const SatisfiableCase satisfiable_cases[] = {
        { "", true },
        { "a=1", true },
        { "a=1,b=2,!c,d notin (x)", true },
        { "a=1,a=2", false },
        { "a=1,a==1", true },
        { "a,!a", false },
        { "a=1,!a", false },
        { "a in (x,y),!a", false },
        { "a in (x),a notin (x)", false },
        { "a in (x,y),a notin (x)", true },
        { "a in (x,y),a notin (x,y)", false },
        { "a in (x,y),a!=x,a!=y", false },
        { "a in (x,y),a in (y,z)", true },
        { "a in (x,y),a in (z,w)", false },
        { "a in (x,y),a in (y,z),a!=y", false },
        { "a=x,a in (x,y)", true },
        { "a=x,a notin (x,y)", false },
        /* Absent keys satisfy != and notin; present ones can take a value no set names. */
        { "a!=1,!a", true },
        { "a notin (1,2),!a", true },
        { "a,a!=1,a notin (2,3)", true },
        { "a!=1,a!=2", true },
        /* The empty value is a value. */
        { "a=,a", true },
        { "a=,a!=", false },
        { "a in (,x),a!=x", true },
        /* Keys are independent: one impossible key is enough. */
        { "a=1,b=1,b=2", false },
        { "a=1,!a,b", false },
        { "b,!b,c", false },
};

TEST(satisfiable) {
        for (size_t i = 0; i < ELEMENTSOF(satisfiable_cases); i++) {
                const SatisfiableCase *c = &satisfiable_cases[i];
                _cleanup_(selector_freep) Selector *s = parse_ok(c->selector);

                if (selector_satisfiable(s) != c->satisfiable)
                        ASSERT_FAIL("\"%s\" is %s", c->selector, c->satisfiable ? "satisfiable" : "unsatisfiable");
        }
}

/* Whatever the labels, an unsatisfiable selector matches none of them. */
TEST(unsatisfiable_matches_nothing) {
        static const char *const label_sets[] = { "", "a", "a=1", "a=2", "a=x", "a=y", "a=z", "b=1", "a=1 b=2" };

        for (size_t i = 0; i < ELEMENTSOF(satisfiable_cases); i++) {
                _cleanup_(selector_freep) Selector *s = parse_ok(satisfiable_cases[i].selector);

                if (satisfiable_cases[i].satisfiable)
                        continue;
                for (size_t j = 0; j < ELEMENTSOF(label_sets); j++) {
                        Label labels[LABELS_MAX];
                        char buf[64];
                        size_t n = labels_from(label_sets[j], buf, sizeof(buf), labels);

                        ASSERT_FALSE(selector_matches(s, labels, n));
                }
        }
}

TEST_MAIN()
