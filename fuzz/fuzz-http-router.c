/* Fuzzer for the controller's HTTP router: patterns are accepted and paths matched as
 * http-router.h documents, and parameters come only from a matching path.
 *
 * Input: lines. The first is "METHOD path", the request; every further line "METHOD pattern" is a
 * route, added in order. */
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "fuzz.h"
#include "http-router.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(char **, http_params_free);

#define ROUTES_MAX 16
#define SEGMENTS_MAX 64

typedef struct Segments {
        const char *s[SEGMENTS_MAX];
        size_t len[SEGMENTS_MAX];
        size_t n;
        bool too_many;
} Segments;

/* Splits what follows the leading "/" at every "/"; "/" alone has no segments. */
static void split(const char *s, Segments *ret) {
        *ret = (Segments) {};
        if (!*s)
                return;
        for (;;) {
                size_t k = strcspn(s, "/");

                if (ret->n == SEGMENTS_MAX) {
                        ret->too_many = true;
                        return;
                }
                ret->s[ret->n] = s;
                ret->len[ret->n++] = k;
                if (!s[k])
                        return;
                s += k + 1;
        }
}

static bool segment_is_param(const char *s, size_t n) {
        return n > 2 && s[0] == '{' && s[n - 1] == '}';
}

/* The documented pattern syntax, written out independently of the router. */
static bool pattern_expected_valid(const char *pattern, Segments *ret) {
        if (pattern[0] != '/')
                return false;
        split(pattern + 1, ret);
        for (size_t i = 0; i < ret->n; i++) {
                const char *s = ret->s[i];
                size_t n = ret->len[i];

                if (n == 0)
                        return false;
                if (segment_is_param(s, n)) {
                        if (memchr(s + 1, '{', n - 2) || memchr(s + 1, '}', n - 2))
                                return false;
                } else if (memchr(s, '{', n) || memchr(s, '}', n))
                        return false;
        }
        return true;
}

/* Whether path matches pattern's segments; the parameters as "name", "value" pairs in order. */
static bool path_expected_match(const Segments *pattern, const char *path, const char **params, size_t *params_len,
                                size_t *ret_n) {
        Segments p;
        size_t k = 0;

        if (path[0] != '/')
                return false;
        split(path + 1, &p);
        if (p.too_many || p.n != pattern->n)
                return false;
        for (size_t i = 0; i < p.n; i++) {
                if (p.len[i] == 0)
                        return false;
                if (segment_is_param(pattern->s[i], pattern->len[i])) {
                        params[k] = pattern->s[i] + 1;
                        params_len[k++] = pattern->len[i] - 2;
                        params[k] = p.s[i];
                        params_len[k++] = p.len[i];
                } else if (p.len[i] != pattern->len[i] || memcmp(p.s[i], pattern->s[i], p.len[i]) != 0)
                        return false;
        }
        *ret_n = k;
        return true;
}

/* "METHOD rest": the method (or invalid) and the rest. */
static HttpMethod split_method(char *line, const char **ret_rest) {
        char *sp = strchr(line, ' ');

        if (!sp) {
                *ret_rest = "";
                return http_method_from_string(line);
        }
        *sp = 0;
        *ret_rest = sp + 1;
        return http_method_from_string(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(http_router_freep) HttpRouter *router = NULL;
        _cleanup_free_ char *text = NULL;
        Segments segments[ROUTES_MAX];
        HttpMethod methods[ROUTES_MAX];
        const char *patterns[ROUTES_MAX];
        size_t n_routes = 0;
        const char *path;
        HttpMethod method;
        char *line, *next;

        /* Lines are C strings: a NUL ends the input. */
        text = strndup((const char *) data, size);
        CHECK(text);
        CHECK(http_router_new(&router) == 0);

        next = strchr(text, '\n');
        if (next)
                *next++ = 0;
        method = split_method(text, &path);
        if (method >= 0)
                CHECK(streq(http_method_to_string(method), text));

        for (line = next; line && n_routes < ROUTES_MAX; line = next) {
                const char *pattern;
                HttpMethod m;
                bool valid, taken = false;
                int *index;
                int r;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                m = split_method(line, &pattern);
                if (pattern[0] == '/') {
                        /* Longer patterns than the model holds are left out. */
                        split(pattern + 1, &segments[n_routes]);
                        if (segments[n_routes].too_many)
                                continue;
                }
                valid = m >= 0 && pattern_expected_valid(pattern, &segments[n_routes]);
                for (size_t i = 0; valid && i < n_routes; i++)
                        taken = taken || (methods[i] == m && streq(patterns[i], pattern));

                index = malloc(sizeof(int));
                CHECK(index);
                *index = (int) n_routes;
                r = http_router_add(router, m, pattern, index);
                if (r < 0)
                        free(index);
                if (!valid) {
                        CHECK(r == -EINVAL);
                        continue;
                }
                if (taken) {
                        CHECK(r == -EEXIST);
                        continue;
                }
                CHECK(r == 0);
                methods[n_routes] = m;
                patterns[n_routes++] = pattern;
        }

        /* The first route whose pattern matches and whose method is the request's wins; if only
         * routes of other methods match, their methods are the Allow list. */
        {
                const char *params[2 * SEGMENTS_MAX];
                size_t params_len[2 * SEGMENTS_MAX], n_params = 0;
                _cleanup_(http_params_freep) char **got = NULL;
                void *got_data = NULL;
                unsigned allow = 0, got_allow = ~0U;
                ssize_t winner = -1;
                int r;

                for (size_t i = 0; i < n_routes; i++) {
                        size_t k;

                        if (!path_expected_match(&segments[i], path, params, params_len, &k))
                                continue;
                        if (methods[i] == method) {
                                winner = (ssize_t) i;
                                n_params = k;
                                break;
                        }
                        allow |= 1U << methods[i];
                }

                r = http_router_find(router, method, path, &got_data, &got, &got_allow);
                if (winner < 0) {
                        CHECK(r == (allow ? -EOPNOTSUPP : -ENOENT));
                        CHECK(got_allow == allow);
                        CHECK(!got && !got_data);
                        return 0;
                }
                CHECK(r == 0);
                CHECK(got_data && *(int *) got_data == winner);
                for (size_t i = 0; i < n_params; i++) {
                        CHECK(got && got[i]);
                        CHECK(strlen(got[i]) == params_len[i] && memcmp(got[i], params[i], params_len[i]) == 0);
                }
                CHECK(!got || !got[n_params]);
                CHECK(n_params > 0 || !got || !got[0]);
                /* Without parameters asked for, the same answer. */
                got_data = NULL;
                CHECK(http_router_find(router, method, path, &got_data, NULL, NULL) == 0);
                CHECK(*(int *) got_data == winner);
        }
        return 0;
}
