/* Routes of the controller API: method + path pattern ("/v1/leases/{name}") to a handler */
#include <stdlib.h>
#include <string.h>

#include "http-router.h"

typedef struct HttpRoute {
        HttpMethod method;
        char *pattern;
        char **segments; /* NULL-terminated; "{name}" segments are parameters */
        void *data;
} HttpRoute;

struct HttpRouter {
        HttpRoute **routes;
        size_t n_routes;
};

static const char *const http_method_table[_HTTP_METHOD_MAX] = {
        [HTTP_METHOD_GET] = "GET",
        [HTTP_METHOD_POST] = "POST",
        [HTTP_METHOD_PUT] = "PUT",
        [HTTP_METHOD_PATCH] = "PATCH",
        [HTTP_METHOD_DELETE] = "DELETE",
};

const char *http_method_to_string(HttpMethod m) {
        if (m < 0 || m >= _HTTP_METHOD_MAX)
                return NULL;
        return http_method_table[m];
}

HttpMethod http_method_from_string(const char *s) {
        if (!s)
                return _HTTP_METHOD_INVALID;
        for (HttpMethod m = 0; m < _HTTP_METHOD_MAX; m++)
                if (streq(http_method_table[m], s))
                        return m;
        return _HTTP_METHOD_INVALID;
}

char *http_methods_format(unsigned mask) {
        size_t n = 1;
        char *s;

        for (HttpMethod m = 0; m < _HTTP_METHOD_MAX; m++)
                n += strlen(http_method_table[m]) + 2;
        s = calloc(1, n);
        if (!s)
                return NULL;
        for (HttpMethod m = 0; m < _HTTP_METHOD_MAX; m++)
                if (mask & (1U << m)) {
                        if (s[0])
                                strcat(s, ", ");
                        strcat(s, http_method_table[m]);
                }
        return s;
}

char **http_params_free(char **params) {
        if (!params)
                return NULL;
        for (char **i = params; *i; i++)
                free(*i);
        free(params);
        return NULL;
}

const char *http_params_get(char **params, const char *name) {
        for (size_t i = 0; params && params[i] && params[i + 1]; i += 2)
                if (streq(params[i], name))
                        return params[i + 1];
        return NULL;
}

int http_params_append(char ***params, const char *a, const char *b) {
        _cleanup_free_ char *x = NULL, *y = NULL;
        size_t n = 0;
        char **l;

        while (*params && (*params)[n])
                n++;
        x = strdup(a);
        y = strdup(b);
        if (!x || !y)
                return -ENOMEM;
        l = realloc(*params, (n + 3) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        l[n] = TAKE_PTR(x);
        l[n + 1] = TAKE_PTR(y);
        l[n + 2] = NULL;
        *params = l;
        return 0;
}

static bool segment_is_param(const char *segment) {
        size_t n = strlen(segment);

        return n > 2 && segment[0] == '{' && segment[n - 1] == '}';
}

static int pattern_parse(const char *pattern, char ***ret) {
        char **segments = NULL;
        size_t n = 0;
        const char *p;

        if (!pattern || pattern[0] != '/')
                return -EINVAL;

        segments = calloc(1, sizeof(char *));
        if (!segments)
                return -ENOMEM;
        for (p = pattern + 1; *p; ) {
                size_t k = strcspn(p, "/");
                char **l;
                char *s;

                if (k == 0)
                        goto invalid;
                s = strndup(p, k);
                if (!s)
                        goto oom;
                /* Braces only around a whole segment, with a name inside. */
                if (strpbrk(s, "{}") && (!segment_is_param(s) || strpbrk(s + 1, "{}") != s + k - 1)) {
                        free(s);
                        goto invalid;
                }
                l = realloc(segments, (n + 2) * sizeof(char *));
                if (!l) {
                        free(s);
                        goto oom;
                }
                segments = l;
                segments[n++] = s;
                segments[n] = NULL;

                p += k;
                if (*p == '/' && !*++p)
                        goto invalid; /* a trailing slash */
        }

        *ret = segments;
        return 0;

invalid:
        http_params_free(segments);
        return -EINVAL;
oom:
        http_params_free(segments);
        return -ENOMEM;
}

/* > 0 if path matches the route, collecting the parameters if ret_params is set; 0 if not. */
static int route_match(const HttpRoute *route, const char *path, char ***ret_params) {
        char **params = NULL;
        const char *p = path;
        int r;

        if (!p || *p != '/')
                return 0;
        p++;

        for (char **seg = route->segments; *seg; seg++) {
                size_t n = strcspn(p, "/");

                if (n == 0)
                        goto no;
                if (segment_is_param(*seg)) {
                        if (ret_params) {
                                _cleanup_free_ char *name = strndup(*seg + 1, strlen(*seg) - 2);
                                _cleanup_free_ char *value = strndup(p, n);

                                if (!name || !value) {
                                        http_params_free(params);
                                        return -ENOMEM;
                                }
                                r = http_params_append(&params, name, value);
                                if (r < 0) {
                                        http_params_free(params);
                                        return r;
                                }
                        }
                } else if (strlen(*seg) != n || strncmp(*seg, p, n) != 0)
                        goto no;

                p += n;
                if (*p == '/') {
                        p++;
                        if (!seg[1])
                                goto no;
                } else if (seg[1])
                        goto no;
        }
        if (*p != 0)
                goto no;

        if (ret_params)
                *ret_params = params;
        return 1;

no:
        http_params_free(params);
        return 0;
}

static HttpRoute *route_free(HttpRoute *route) {
        if (!route)
                return NULL;
        http_params_free(route->segments);
        free(route->pattern);
        free(route->data);
        free(route);
        return NULL;
}

int http_router_new(HttpRouter **ret) {
        HttpRouter *r;

        r = calloc(1, sizeof(HttpRouter));
        if (!r)
                return -ENOMEM;
        *ret = r;
        return 0;
}

HttpRouter *http_router_free(HttpRouter *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_routes; i++)
                route_free(r->routes[i]);
        free(r->routes);
        free(r);
        return NULL;
}

int http_router_add(HttpRouter *r, HttpMethod method, const char *pattern, void *data) {
        HttpRoute *route, **l;
        int k;

        if (!r || method < 0 || method >= _HTTP_METHOD_MAX || !pattern)
                return -EINVAL;
        for (size_t i = 0; i < r->n_routes; i++)
                if (r->routes[i]->method == method && streq(r->routes[i]->pattern, pattern))
                        return -EEXIST;

        route = calloc(1, sizeof(HttpRoute));
        if (!route)
                return -ENOMEM;
        route->method = method;
        route->pattern = strdup(pattern);
        if (!route->pattern) {
                route_free(route);
                return -ENOMEM;
        }
        k = pattern_parse(pattern, &route->segments);
        if (k < 0) {
                route_free(route);
                return k;
        }

        l = realloc(r->routes, (r->n_routes + 1) * sizeof(HttpRoute *));
        if (!l) {
                route_free(route);
                return -ENOMEM;
        }
        r->routes = l;
        r->routes[r->n_routes++] = route;
        route->data = data; /* only now: a failure leaves it with the caller */
        return 0;
}

int http_router_find(HttpRouter *r, HttpMethod method, const char *path, void **ret_data, char ***ret_params,
                     unsigned *ret_allow) {
        unsigned allow = 0;

        for (size_t i = 0; r && i < r->n_routes; i++) {
                HttpRoute *route = r->routes[i];

                if (route_match(route, path, NULL) == 0)
                        continue;
                if (route->method == method) {
                        if (ret_params) {
                                int k = route_match(route, path, ret_params);

                                if (k < 0)
                                        return k;
                        }
                        if (ret_data)
                                *ret_data = route->data;
                        return 0;
                }
                allow |= 1U << route->method;
        }

        if (ret_allow)
                *ret_allow = allow;
        return allow ? -EOPNOTSUPP : -ENOENT;
}
