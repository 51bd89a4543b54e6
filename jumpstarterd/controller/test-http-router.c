/* Tests for the controller API's router: methods, path patterns, parameters, 404 and 405 */
#include <stdlib.h>

#include "http-router.h"
#include "macro.h"
#include "tests.h"

static char *tag(const char *s) {
        char *t = strdup(s);

        ASSERT_TRUE(t);
        return t;
}

TEST(methods) {
        _cleanup_free_ char *a = NULL, *b = NULL;

        ASSERT_STREQ(http_method_to_string(HTTP_METHOD_PATCH), "PATCH");
        ASSERT_TRUE(http_method_to_string(_HTTP_METHOD_MAX) == NULL);
        ASSERT_EQ(http_method_from_string("DELETE"), HTTP_METHOD_DELETE);
        ASSERT_EQ(http_method_from_string("get"), -EINVAL);
        ASSERT_EQ(http_method_from_string("HEAD"), -EINVAL);
        ASSERT_EQ(http_method_from_string(NULL), -EINVAL);

        a = http_methods_format((1U << HTTP_METHOD_DELETE) | (1U << HTTP_METHOD_GET));
        ASSERT_STREQ(a, "GET, DELETE");
        b = http_methods_format(0);
        ASSERT_STREQ(b, "");
}

TEST(patterns) {
        _cleanup_(http_router_freep) HttpRouter *r = NULL;
        const char *bad[] = { "", "v1", "/v1/", "/v1//x", "//", "/v1/{x", "/v1/x}", "/v1/a{x}", "/v1/{x}b",
                              "/v1/{a}{b}", "/v1/{}", NULL };
        char *t = tag("x");

        ASSERT_OK(http_router_new(&r));
        for (const char **p = bad; *p; p++)
                ASSERT_EQ(http_router_add(r, HTTP_METHOD_GET, *p, t), -EINVAL);
        ASSERT_EQ(http_router_add(r, HTTP_METHOD_GET, NULL, t), -EINVAL);
        ASSERT_EQ(http_router_add(r, _HTTP_METHOD_MAX, "/v1", t), -EINVAL);
        ASSERT_EQ(http_router_add(r, _HTTP_METHOD_INVALID, "/v1", t), -EINVAL);
        ASSERT_OK(http_router_add(r, HTTP_METHOD_GET, "/v1/{name}", t));
        /* A failure leaves the data with the caller. */
        t = tag("dup");
        ASSERT_EQ(http_router_add(r, HTTP_METHOD_GET, "/v1/{name}", t), -EEXIST);
        free(t);
}

static const char *find(HttpRouter *r, HttpMethod m, const char *path) {
        void *data = NULL;

        return http_router_find(r, m, path, &data, NULL, NULL) == 0 ? data : NULL;
}

TEST(matching) {
        _cleanup_(http_router_freep) HttpRouter *r = NULL;
        char **params = NULL;
        unsigned allow = 0;
        void *data;

        ASSERT_OK(http_router_new(&r));
        ASSERT_OK(http_router_add(r, HTTP_METHOD_GET, "/", tag("root")));
        ASSERT_OK(http_router_add(r, HTTP_METHOD_GET, "/v1/leases", tag("list")));
        ASSERT_OK(http_router_add(r, HTTP_METHOD_POST, "/v1/leases", tag("create")));
        ASSERT_OK(http_router_add(r, HTTP_METHOD_GET, "/v1/leases/{name}", tag("get")));
        ASSERT_OK(http_router_add(r, HTTP_METHOD_DELETE, "/v1/leases/{name}", tag("delete")));
        ASSERT_OK(http_router_add(r, HTTP_METHOD_GET, "/v1/exporters/{exporter}/duts/{dut}", tag("dut")));
        ASSERT_OK(http_router_add(r, HTTP_METHOD_GET, "/v1/leases/watch", tag("watch")));

        ASSERT_STREQ(find(r, HTTP_METHOD_GET, "/"), "root");
        ASSERT_STREQ(find(r, HTTP_METHOD_GET, "/v1/leases"), "list");
        ASSERT_STREQ(find(r, HTTP_METHOD_POST, "/v1/leases"), "create");
        ASSERT_STREQ(find(r, HTTP_METHOD_GET, "/v1/leases/l1"), "get");
        /* First registered wins: "{name}" was there before "watch". */
        ASSERT_STREQ(find(r, HTTP_METHOD_GET, "/v1/leases/watch"), "get");
        ASSERT_STREQ(find(r, HTTP_METHOD_DELETE, "/v1/leases/l1"), "delete");

        ASSERT_OK(http_router_find(r, HTTP_METHOD_GET, "/v1/exporters/ex-1/duts/dut1", &data, &params, NULL));
        ASSERT_STREQ(data, "dut");
        ASSERT_STREQ(http_params_get(params, "exporter"), "ex-1");
        ASSERT_STREQ(http_params_get(params, "dut"), "dut1");
        ASSERT_TRUE(http_params_get(params, "name") == NULL);
        params = http_params_free(params);

        /* Paths that match nothing. */
        const char *none[] = { "", "v1/leases", "/v1", "/v1/leases/", "/v1//leases", "/v1/leases/a/b",
                               "/v1/leasesx", "/v1/lease", "//", "/v1/exporters/e/duts", "/v1/exporters//duts/d",
                               NULL };
        for (const char **p = none; *p; p++) {
                params = NULL;
                ASSERT_EQ(http_router_find(r, HTTP_METHOD_GET, *p, &data, &params, &allow), -ENOENT);
                ASSERT_TRUE(params == NULL);
                ASSERT_EQ(allow, 0);
        }
        ASSERT_EQ(http_router_find(r, HTTP_METHOD_GET, NULL, NULL, NULL, NULL), -ENOENT);

        /* The path is there, not for this method. */
        ASSERT_EQ(http_router_find(r, HTTP_METHOD_PUT, "/v1/leases", &data, &params, &allow), -EOPNOTSUPP);
        ASSERT_EQ(allow, (1U << HTTP_METHOD_GET) | (1U << HTTP_METHOD_POST));
        ASSERT_EQ(http_router_find(r, _HTTP_METHOD_INVALID, "/v1/leases/x", NULL, NULL, &allow), -EOPNOTSUPP);
        ASSERT_EQ(allow, (1U << HTTP_METHOD_GET) | (1U << HTTP_METHOD_DELETE));
}

TEST(params_list) {
        char **l = NULL;

        ASSERT_TRUE(http_params_get(NULL, "a") == NULL);
        ASSERT_OK(http_params_append(&l, "a", "1"));
        ASSERT_OK(http_params_append(&l, "b", ""));
        ASSERT_STREQ(http_params_get(l, "a"), "1");
        ASSERT_STREQ(http_params_get(l, "b"), "");
        ASSERT_TRUE(http_params_get(l, "1") == NULL);
        ASSERT_TRUE(http_params_free(l) == NULL);
}

TEST_MAIN()
