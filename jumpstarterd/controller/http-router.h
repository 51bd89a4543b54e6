/* Routes of the controller API: method + path pattern ("/v1/leases/{name}") to a handler */
#pragma once

#include <errno.h>

#include "macro.h"

typedef enum HttpMethod {
        HTTP_METHOD_GET,
        HTTP_METHOD_POST,
        HTTP_METHOD_PUT,
        HTTP_METHOD_PATCH,
        HTTP_METHOD_DELETE,
        _HTTP_METHOD_MAX,
        _HTTP_METHOD_INVALID = -EINVAL,
} HttpMethod;

const char *http_method_to_string(HttpMethod m);
HttpMethod http_method_from_string(const char *s);
/* A mask of (1U << HttpMethod) as "GET, POST", for an Allow header. NULL on OOM. */
char *http_methods_format(unsigned mask);

/* A pattern is "/"-separated segments; a segment "{name}" matches any one non-empty segment of a
 * path. Literal segments match exactly (the path arrives percent-decoded); empty segments
 * ("/v1/leases/", "/v1//leases") match nothing. "/" alone is the root. */
typedef struct HttpRouter HttpRouter;

int http_router_new(HttpRouter **ret);
/* Frees every route's data with free(). */
HttpRouter *http_router_free(HttpRouter *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpRouter *, http_router_free);

/* Adds a route and takes data (a malloc()ed object) on success. -EINVAL for a bad pattern or
 * method, -EEXIST if method + pattern is taken. */
int http_router_add(HttpRouter *r, HttpMethod method, const char *pattern, void *data);

/* Finds the route for method + path: 0 with its data and parameters (ret_params optional: a list
 * "name", "value", ..., NULL for http_params_free()). -ENOENT if no pattern matches the path;
 * -EOPNOTSUPP if only patterns of other methods do, with those methods as a mask in *ret_allow
 * (optional). An invalid method matches no route. */
int http_router_find(HttpRouter *r, HttpMethod method, const char *path, void **ret_data, char ***ret_params,
                     unsigned *ret_allow);

const char *http_params_get(char **params, const char *name);
char **http_params_free(char **params);
/* Appends copies of a and b to a "name", "value", ..., NULL list. */
int http_params_append(char ***params, const char *a, const char *b);
