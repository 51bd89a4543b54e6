/* Label selectors in Kubernetes syntax: parsing, matching, canonical form, satisfiability */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>

#include "macro.h"
#include "selector.h"

#define LABEL_NAME_MAX 63
#define LABEL_PREFIX_MAX 253
#define LABEL_VALUE_MAX 63

/* Identifiers quoted in error messages are cut here: a message is one readable line. */
#define QUOTE_MAX 32
#define QUOTE_BUF_SIZE (QUOTE_MAX * 4 + 8)

static const char *const selector_operator_table[_SELECTOR_OPERATOR_MAX] = {
        [SELECTOR_EQUALS] = "=",
        [SELECTOR_NOT_EQUALS] = "!=",
        [SELECTOR_IN] = "in",
        [SELECTOR_NOT_IN] = "notin",
        [SELECTOR_EXISTS] = "",
        [SELECTOR_DOES_NOT_EXIST] = "!",
};

const char *selector_operator_to_string(SelectorOperator op) {
        if (op < 0 || op >= _SELECTOR_OPERATOR_MAX)
                return NULL;
        return selector_operator_table[op];
}

typedef enum TokenType {
        TOKEN_END,
        TOKEN_IDENTIFIER, /* also "in" and "notin": which one it is depends on the place */
        TOKEN_COMMA,
        TOKEN_OPEN,
        TOKEN_CLOSE,
        TOKEN_EQUALS,
        TOKEN_DOUBLE_EQUALS,
        TOKEN_NOT_EQUALS,
        TOKEN_NOT,
        TOKEN_GREATER,
        TOKEN_LESS,
} TokenType;

typedef struct Token {
        TokenType type;
        size_t offset, length;
} Token;

typedef struct Parser {
        const char *text;
        size_t pos;
        Token token; /* the next token, not yet consumed */
        char *error;
} Parser;

static bool is_whitespace(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The characters that end an identifier, as in Kubernetes' lexer, so that "a=b" needs no spaces. */
static bool is_special(char c) {
        return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_lower_alnum(char c) {
        return (c >= 'a' && c <= 'z') || is_digit(c);
}

/* Not isalnum(): labels are ASCII whatever the locale. */
static bool is_alnum(char c) {
        return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static void parser_next(Parser *p) {
        const char *t = p->text;
        size_t i = p->pos;

        while (is_whitespace(t[i]))
                i++;
        p->token = (Token) { .offset = i, .length = 1 };

        switch (t[i]) {
        case 0:
                p->token.type = TOKEN_END;
                p->token.length = 0;
                break;
        case ',':
                p->token.type = TOKEN_COMMA;
                break;
        case '(':
                p->token.type = TOKEN_OPEN;
                break;
        case ')':
                p->token.type = TOKEN_CLOSE;
                break;
        case '>':
                p->token.type = TOKEN_GREATER;
                break;
        case '<':
                p->token.type = TOKEN_LESS;
                break;
        case '=':
                p->token.type = t[i + 1] == '=' ? TOKEN_DOUBLE_EQUALS : TOKEN_EQUALS;
                p->token.length = t[i + 1] == '=' ? 2 : 1;
                break;
        case '!':
                p->token.type = t[i + 1] == '=' ? TOKEN_NOT_EQUALS : TOKEN_NOT;
                p->token.length = t[i + 1] == '=' ? 2 : 1;
                break;
        default:
                p->token.type = TOKEN_IDENTIFIER;
                while (t[i + p->token.length] && !is_whitespace(t[i + p->token.length]) &&
                       !is_special(t[i + p->token.length]))
                        p->token.length++;
        }
        p->pos = i + p->token.length;
}

static bool token_is_word(const Parser *p, const char *word) {
        return p->token.type == TOKEN_IDENTIFIER && p->token.length == strlen(word) &&
               memcmp(p->text + p->token.offset, word, p->token.length) == 0;
}

/* Writes s[0..n) in double quotes into buf, escaped so that the message stays one printable line
 * whatever the input bytes, and shortened past QUOTE_MAX bytes. */
static const char *quote(const char *s, size_t n, char *buf, size_t size) {
        size_t k = 0;

        assert(size >= QUOTE_BUF_SIZE);
        buf[k++] = '"';
        for (size_t i = 0; i < MIN(n, (size_t) QUOTE_MAX); i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '"' || c == '\\') {
                        buf[k++] = '\\';
                        buf[k++] = (char) c;
                } else if (c >= 0x20 && c < 0x7f)
                        buf[k++] = (char) c;
                else
                        k += (size_t) snprintf(buf + k, size - k, "\\x%02x", c);
        }
        if (n > QUOTE_MAX) {
                memcpy(buf + k, "...", 3);
                k += 3;
        }
        buf[k++] = '"';
        buf[k] = 0;
        return buf;
}

static const char *token_describe(const Parser *p, char *buf, size_t size) {
        if (p->token.type == TOKEN_END)
                return "end of input";
        return quote(p->text + p->token.offset, p->token.length, buf, size);
}

/* Parsing stops at the first error, so there is one message. */
_printf_(3, 4) static int parser_error(Parser *p, size_t offset, const char *format, ...) {
        _cleanup_free_ char *message = NULL;
        va_list ap;
        int k;

        assert(!p->error);
        va_start(ap, format);
        k = vasprintf(&message, format, ap);
        va_end(ap);
        if (k < 0) {
                message = NULL; /* undefined after a failure */
                return -ENOMEM;
        }
        if (asprintf(&p->error, "column %zu: %s", offset + 1, message) < 0) {
                p->error = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

static int parser_error_found(Parser *p, const char *expected) {
        char buf[QUOTE_BUF_SIZE];

        return parser_error(p, p->token.offset, "expected %s, found %s", expected,
                            token_describe(p, buf, sizeof(buf)));
}

/* NAME of a key, or a value: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63 bytes. */
static int check_name(Parser *p, size_t offset, size_t length, const char *what) {
        const char *s = p->text + offset;
        char buf[QUOTE_BUF_SIZE];

        for (size_t i = 0; i < length; i++)
                if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                        return parser_error(p, offset + i,
                                            "invalid character %s in %s (letters, digits, \"-\", \"_\" and \".\" are allowed)",
                                            quote(s + i, 1, buf, sizeof(buf)), what);
        if (length > LABEL_NAME_MAX)
                return parser_error(p, offset, "%s %s is longer than %d characters", what,
                                    quote(s, length, buf, sizeof(buf)), LABEL_NAME_MAX);
        if (!is_alnum(s[0]))
                return parser_error(p, offset, "%s must begin with a letter or digit", what);
        if (!is_alnum(s[length - 1]))
                return parser_error(p, offset + length - 1, "%s must end with a letter or digit", what);
        return 0;
}

/* PREFIX of a key: a DNS subdomain, lowercase labels joined by dots, at most 253 bytes. */
static int check_prefix(Parser *p, size_t offset, size_t length) {
        const char *s = p->text + offset;
        char buf[QUOTE_BUF_SIZE];
        size_t start = 0;

        if (length == 0)
                return parser_error(p, offset, "empty key prefix before \"/\"");
        for (size_t i = 0; i < length; i++)
                if (!is_lower_alnum(s[i]) && s[i] != '-' && s[i] != '.')
                        return parser_error(p, offset + i,
                                            "invalid character %s in key prefix (a DNS subdomain: lowercase letters, digits, \"-\" and \".\")",
                                            quote(s + i, 1, buf, sizeof(buf)));
        if (length > LABEL_PREFIX_MAX)
                return parser_error(p, offset, "key prefix is longer than %d characters", LABEL_PREFIX_MAX);
        for (size_t i = 0; i <= length; i++) {
                if (i < length && s[i] != '.')
                        continue;
                if (i == start)
                        return parser_error(p, offset + i, "empty part between dots in key prefix");
                if (s[start] == '-' || s[i - 1] == '-')
                        return parser_error(p, offset + (s[start] == '-' ? start : i - 1),
                                            "a part of the key prefix must begin and end with a letter or digit");
                start = i + 1;
        }
        return 0;
}

static int check_key(Parser *p) {
        const char *s = p->text + p->token.offset;
        const char *slash = memchr(s, '/', p->token.length);
        size_t name;
        int r;

        if (!slash)
                return check_name(p, p->token.offset, p->token.length, "label name");

        r = check_prefix(p, p->token.offset, (size_t) (slash - s));
        if (r < 0)
                return r;
        name = (size_t) (slash - s) + 1;
        if (name == p->token.length)
                return parser_error(p, p->token.offset + name, "empty label name after \"/\"");
        return check_name(p, p->token.offset + name, p->token.length - name, "label name");
}

static void requirement_done(SelectorRequirement *r) {
        free(r->key);
        for (size_t i = 0; i < r->n_values; i++)
                free(r->values[i]);
        free(r->values);
        *r = (SelectorRequirement) {};
}

/* Takes the current token (or nothing, for an empty value) as a value of r. */
static int requirement_add_value(Parser *p, SelectorRequirement *r, bool empty) {
        char **values;
        int k;

        if (!empty) {
                k = check_name(p, p->token.offset, p->token.length, "label value");
                if (k < 0)
                        return k;
        }
        values = realloc(r->values, (r->n_values + 1) * sizeof(char *));
        if (!values)
                return -ENOMEM;
        r->values = values;
        r->values[r->n_values] = strndup(p->text + p->token.offset, empty ? 0 : p->token.length);
        if (!r->values[r->n_values])
                return -ENOMEM;
        r->n_values++;
        return 0;
}

/* After "in" or "notin": "(" values ")". As in Kubernetes, an element left out between commas is
 * the empty value: "(,x)" is {"", "x"}. */
static int parse_set(Parser *p, SelectorRequirement *r, const char *operator) {
        size_t open_offset = p->token.offset;
        char what[32];
        int k;

        if (p->token.type != TOKEN_OPEN) {
                (void) snprintf(what, sizeof(what), "\"(\" after \"%s\"", operator);
                return parser_error_found(p, what);
        }
        parser_next(p);
        if (p->token.type == TOKEN_CLOSE)
                return parser_error(p, open_offset, "empty value set after \"%s\"", operator);

        for (;;) {
                if (p->token.type == TOKEN_IDENTIFIER) {
                        k = requirement_add_value(p, r, false);
                        if (k < 0)
                                return k;
                        parser_next(p);
                } else if (p->token.type == TOKEN_COMMA || p->token.type == TOKEN_CLOSE) {
                        k = requirement_add_value(p, r, true);
                        if (k < 0)
                                return k;
                } else
                        return parser_error_found(p, "a value, \",\" or \")\"");

                if (p->token.type == TOKEN_CLOSE)
                        break;
                if (p->token.type != TOKEN_COMMA)
                        return parser_error_found(p, "\",\" or \")\"");
                parser_next(p);
        }
        parser_next(p);
        return 0;
}

static int parse_requirement(Parser *p, SelectorRequirement *r) {
        bool negated = false;
        int k;

        if (p->token.type == TOKEN_NOT) {
                negated = true;
                parser_next(p);
        }
        if (p->token.type != TOKEN_IDENTIFIER)
                return parser_error_found(p, negated ? "a key after \"!\"" : "a key or \"!\"");
        k = check_key(p);
        if (k < 0)
                return k;
        r->key = strndup(p->text + p->token.offset, p->token.length);
        if (!r->key)
                return -ENOMEM;
        parser_next(p);

        if (negated) {
                r->operator = SELECTOR_DOES_NOT_EXIST;
                return 0;
        }

        switch (p->token.type) {
        case TOKEN_END:
        case TOKEN_COMMA:
                r->operator = SELECTOR_EXISTS;
                return 0;

        case TOKEN_EQUALS:
        case TOKEN_DOUBLE_EQUALS:
        case TOKEN_NOT_EQUALS: {
                char buf[QUOTE_BUF_SIZE], what[64];

                r->operator = p->token.type == TOKEN_NOT_EQUALS ? SELECTOR_NOT_EQUALS : SELECTOR_EQUALS;
                (void) snprintf(what, sizeof(what), "a value after %s", token_describe(p, buf, sizeof(buf)));
                parser_next(p);
                /* "a=" is the empty value, as in Kubernetes. */
                if (p->token.type == TOKEN_END || p->token.type == TOKEN_COMMA)
                        return requirement_add_value(p, r, true);
                if (p->token.type != TOKEN_IDENTIFIER)
                        return parser_error_found(p, what);
                k = requirement_add_value(p, r, false);
                if (k < 0)
                        return k;
                parser_next(p);
                return 0;
        }

        case TOKEN_GREATER:
        case TOKEN_LESS:
                return parser_error(p, p->token.offset, "\"%c\" is not supported: a requirement compares with =, ==, !=, in or notin",
                                    p->text[p->token.offset]);

        case TOKEN_IDENTIFIER:
                /* "in" is an operator here only: "in in (in)" is a valid requirement. */
                if (token_is_word(p, "in")) {
                        r->operator = SELECTOR_IN;
                        parser_next(p);
                        return parse_set(p, r, "in");
                }
                if (token_is_word(p, "notin")) {
                        r->operator = SELECTOR_NOT_IN;
                        parser_next(p);
                        return parse_set(p, r, "notin");
                }
                break;

        default:
                break;
        }
        return parser_error_found(p, "\"=\", \"==\", \"!=\", \"in\", \"notin\", \",\" or end of input after the key");
}

static int string_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int requirement_compare(const SelectorRequirement *a, const SelectorRequirement *b) {
        int k;

        k = strcmp(a->key, b->key);
        if (k != 0)
                return k;
        if (a->operator != b->operator)
                return a->operator < b->operator ? -1 : 1;
        for (size_t i = 0; i < MIN(a->n_values, b->n_values); i++) {
                k = strcmp(a->values[i], b->values[i]);
                if (k != 0)
                        return k;
        }
        if (a->n_values != b->n_values)
                return a->n_values < b->n_values ? -1 : 1;
        return 0;
}

static int requirement_compare_qsort(const void *a, const void *b) {
        return requirement_compare(a, b);
}

/* Sorted unique values, and one-value sets as = and != so that each meaning has one spelling. */
static void requirement_canonicalize(SelectorRequirement *r) {
        size_t n = 0;

        if (r->n_values == 0)
                return;
        qsort(r->values, r->n_values, sizeof(char *), string_compare);
        for (size_t i = 0; i < r->n_values; i++) {
                if (n > 0 && streq(r->values[n - 1], r->values[i])) {
                        free(r->values[i]);
                        continue;
                }
                r->values[n++] = r->values[i];
        }
        r->n_values = n;

        if (n == 1 && r->operator == SELECTOR_IN)
                r->operator = SELECTOR_EQUALS;
        else if (n == 1 && r->operator == SELECTOR_NOT_IN)
                r->operator = SELECTOR_NOT_EQUALS;
}

/* Requirements sorted, and repeated ones dropped: "a,a" means what "a" means. */
static void selector_canonicalize(Selector *s) {
        size_t n = 0;

        if (s->n_requirements == 0)
                return;
        qsort(s->requirements, s->n_requirements, sizeof(SelectorRequirement), requirement_compare_qsort);
        for (size_t i = 0; i < s->n_requirements; i++) {
                if (n > 0 && requirement_compare(&s->requirements[n - 1], &s->requirements[i]) == 0) {
                        requirement_done(&s->requirements[i]);
                        continue;
                }
                s->requirements[n++] = s->requirements[i];
        }
        s->n_requirements = n;
}

Selector *selector_free(Selector *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_requirements; i++)
                requirement_done(&s->requirements[i]);
        free(s->requirements);
        free(s);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Selector *, selector_free);

static int parse_all(Parser *p, Selector *s) {
        int k;

        parser_next(p);
        if (p->token.type == TOKEN_END)
                return 0;

        for (;;) {
                SelectorRequirement *a;

                if (s->n_requirements >= SELECTOR_REQUIREMENTS_MAX)
                        return parser_error(p, p->token.offset, "more than %d requirements",
                                            SELECTOR_REQUIREMENTS_MAX);
                a = realloc(s->requirements, (s->n_requirements + 1) * sizeof(SelectorRequirement));
                if (!a)
                        return -ENOMEM;
                s->requirements = a;
                /* Counted at once, so that selector_free() frees a half-parsed requirement too. */
                a[s->n_requirements++] = (SelectorRequirement) {};

                k = parse_requirement(p, &a[s->n_requirements - 1]);
                if (k < 0)
                        return k;
                requirement_canonicalize(&a[s->n_requirements - 1]);

                if (p->token.type == TOKEN_END)
                        return 0;
                if (p->token.type != TOKEN_COMMA)
                        return parser_error_found(p, "\",\" or end of input");
                parser_next(p);
        }
}

int selector_parse(const char *text, Selector **ret, char **ret_error) {
        _cleanup_(selector_freep) Selector *s = NULL;
        Parser p = { .text = text };
        size_t length;
        int k;

        assert(text);
        assert(ret);

        length = strnlen(text, SELECTOR_LENGTH_MAX + 1);
        if (length > SELECTOR_LENGTH_MAX)
                k = parser_error(&p, SELECTOR_LENGTH_MAX, "selector is longer than %d bytes", SELECTOR_LENGTH_MAX);
        else {
                s = calloc(1, sizeof(Selector));
                if (!s)
                        return -ENOMEM;
                k = parse_all(&p, s);
        }
        if (k < 0) {
                if (ret_error && k == -EINVAL)
                        *ret_error = TAKE_PTR(p.error);
                free(p.error);
                return k;
        }

        selector_canonicalize(s);
        *ret = TAKE_PTR(s);
        return 0;
}

static const char *labels_get(const Label *labels, size_t n_labels, const char *key) {
        for (size_t i = 0; i < n_labels; i++)
                if (streq(labels[i].key, key))
                        return strempty(labels[i].value);
        return NULL;
}

static bool requirement_has_value(const SelectorRequirement *r, const char *value) {
        return bsearch(&value, r->values, r->n_values, sizeof(char *), string_compare);
}

static bool requirement_matches(const SelectorRequirement *r, const char *value) {
        switch (r->operator) {
        case SELECTOR_EQUALS:
        case SELECTOR_IN:
                return value && requirement_has_value(r, value);
        case SELECTOR_NOT_EQUALS:
        case SELECTOR_NOT_IN:
                return !value || !requirement_has_value(r, value);
        case SELECTOR_EXISTS:
                return value != NULL;
        case SELECTOR_DOES_NOT_EXIST:
                return !value;
        default:
                assert(false);
                return false;
        }
}

bool selector_matches(const Selector *s, const Label *labels, size_t n_labels) {
        assert(s);
        assert(labels || n_labels == 0);

        for (size_t i = 0; i < s->n_requirements; i++) {
                const SelectorRequirement *r = &s->requirements[i];

                if (!requirement_matches(r, labels_get(labels, n_labels, r->key)))
                        return false;
        }
        return true;
}

bool selector_is_empty(const Selector *s) {
        assert(s);
        return s->n_requirements == 0;
}

/* Whether some labels satisfy the n requirements on one key. A key can be absent, or present with
 * any valid value: there are far more values than a selector can name. */
static bool key_satisfiable(const SelectorRequirement *r, size_t n) {
        const SelectorRequirement *narrowest = NULL;
        bool absent_ok = true, present_ok = true;

        for (size_t i = 0; i < n; i++)
                switch (r[i].operator) {
                case SELECTOR_EQUALS:
                case SELECTOR_IN:
                        if (!narrowest || r[i].n_values < narrowest->n_values)
                                narrowest = &r[i];
                        __attribute__((fallthrough));
                case SELECTOR_EXISTS:
                        absent_ok = false;
                        break;
                case SELECTOR_DOES_NOT_EXIST:
                        present_ok = false;
                        break;
                default:
                        break;
                }

        if (absent_ok)
                return true;
        if (!present_ok)
                return false;
        if (!narrowest)
                return true;

        /* A value that all requirements accept must be one of the narrowest set's. */
        for (size_t v = 0; v < narrowest->n_values; v++) {
                bool ok = true;

                for (size_t i = 0; i < n && ok; i++)
                        ok = requirement_matches(&r[i], narrowest->values[v]);
                if (ok)
                        return true;
        }
        return false;
}

bool selector_satisfiable(const Selector *s) {
        assert(s);

        /* Requirements are sorted by key: each key's are adjacent. */
        for (size_t i = 0, j; i < s->n_requirements; i = j) {
                for (j = i + 1; j < s->n_requirements; j++)
                        if (!streq(s->requirements[i].key, s->requirements[j].key))
                                break;
                if (!key_satisfiable(&s->requirements[i], j - i))
                        return false;
        }
        return true;
}

bool selector_equal(const Selector *a, const Selector *b) {
        assert(a);
        assert(b);

        if (a->n_requirements != b->n_requirements)
                return false;
        for (size_t i = 0; i < a->n_requirements; i++)
                if (requirement_compare(&a->requirements[i], &b->requirements[i]) != 0)
                        return false;
        return true;
}

static void put(char *buf, size_t *n, const char *s) {
        size_t l = strlen(s);

        if (buf)
                memcpy(buf + *n, s, l);
        *n += l;
}

/* Writes the canonical form into buf if non-NULL; returns its length either way. */
static size_t selector_format(const Selector *s, char *buf) {
        size_t n = 0;

        for (size_t i = 0; i < s->n_requirements; i++) {
                const SelectorRequirement *r = &s->requirements[i];

                if (i > 0)
                        put(buf, &n, ",");
                switch (r->operator) {
                case SELECTOR_EXISTS:
                        put(buf, &n, r->key);
                        break;
                case SELECTOR_DOES_NOT_EXIST:
                        put(buf, &n, "!");
                        put(buf, &n, r->key);
                        break;
                case SELECTOR_EQUALS:
                case SELECTOR_NOT_EQUALS:
                        put(buf, &n, r->key);
                        put(buf, &n, selector_operator_to_string(r->operator));
                        put(buf, &n, r->values[0]);
                        break;
                case SELECTOR_IN:
                case SELECTOR_NOT_IN:
                        /* Two values or more: the list is never "()", which would not parse. */
                        put(buf, &n, r->key);
                        put(buf, &n, " ");
                        put(buf, &n, selector_operator_to_string(r->operator));
                        put(buf, &n, " (");
                        for (size_t v = 0; v < r->n_values; v++) {
                                if (v > 0)
                                        put(buf, &n, ",");
                                put(buf, &n, r->values[v]);
                        }
                        put(buf, &n, ")");
                        break;
                default:
                        assert(false);
                }
        }
        return n;
}

char *selector_to_string(const Selector *s) {
        size_t n;
        char *buf;

        assert(s);

        n = selector_format(s, NULL);
        buf = malloc(n + 1);
        if (!buf)
                return NULL;
        (void) selector_format(s, buf);
        buf[n] = 0;
        return buf;
}
