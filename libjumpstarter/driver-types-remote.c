/* Driver types of the remote family: a DUT of another exporter, reached over data streams */
#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>

#include "config.h"
#include "parse-util.h"

static const OptionSpec remote_options[] = {
        { "address", OPTION_STRING, true,
          "the exporter's stream listener, IPv4:PORT or [IPv6]:PORT (numeric: no name lookup)" },
        { "dut", OPTION_STRING, false, "the DUT's name on the exporter (default: this DUT's name)" },
        { "fingerprint", OPTION_STRING, true,
          "the exporter's certificate, sha256: and 64 lowercase hex digits, as the exporter logs it" },
        { "token", OPTION_STRING, false, "a stream token for the DUT's lease; token or token_file is required" },
        { "token_file", OPTION_PATH, false,
          "a file that holds the stream token, read again before each connection (so it can be renewed)" },
        { "connect_timeout", OPTION_DURATION, false,
          "how long a connection and its handshake may take (default 5s)", .min = 1 },
        { "router", OPTION_STRING, false,
          "the controller's router, IPv4:PORT or [IPv6]:PORT: streams go through it when the exporter cannot be "
          "reached directly" },
        { "router_ca", OPTION_STRING, false,
          "the CA that signed the router's certificate: PEM text or an absolute path (default: the system's CAs)" },
        {}
};

static bool address_is_valid(const char *s) {
        const char *host, *port;
        char buf[INET6_ADDRSTRLEN];
        size_t len;
        uint64_t p;
        union {
                struct in_addr v4;
                struct in6_addr v6;
        } a;

        if (s[0] == '[') {
                const char *end = strchr(s, ']');

                if (!end || end[1] != ':')
                        return false;
                host = s + 1;
                len = (size_t) (end - host);
                port = end + 2;
        } else {
                const char *colon = strchr(s, ':');

                if (!colon || strchr(colon + 1, ':'))
                        return false;
                host = s;
                len = (size_t) (colon - s);
                port = colon + 1;
        }
        if (len == 0 || len >= sizeof buf)
                return false;
        memcpy(buf, host, len);
        buf[len] = 0;
        if (inet_pton(s[0] == '[' ? AF_INET6 : AF_INET, buf, &a) != 1)
                return false;
        return port[0] != '0' && parse_uint64(port, &p) >= 0 && p >= 1 && p <= 65535;
}

static int remote_validate(const DriverConfig *c, char **ret_problem, const char **ret_option) {
        const char *address = driver_config_get_string(c, "address");
        const char *fingerprint = driver_config_get_string(c, "fingerprint");
        const char *dut = driver_config_get_string(c, "dut");
        const char *token = driver_config_get_string(c, "token");
        const char *router = driver_config_get_string(c, "router");
        const char *router_ca = driver_config_get_string(c, "router_ca");
        size_t prefix = strlen("sha256:");

        if (!address_is_valid(address))
                return driver_config_problem(ret_problem, ret_option, "address",
                                             "expected IPv4:PORT or [IPv6]:PORT such as 192.0.2.20:8444");
        if (strlen(fingerprint) != prefix + 64 || strncmp(fingerprint, "sha256:", prefix) != 0 ||
            strspn(fingerprint + prefix, "0123456789abcdef") != 64)
                return driver_config_problem(ret_problem, ret_option, "fingerprint",
                                             "expected sha256: and 64 lowercase hex digits");
        if (dut && !dut_name_is_valid(dut))
                return driver_config_problem(ret_problem, ret_option, "dut",
                                             "expected a DUT name ([a-z0-9][a-z0-9-]{0,62})");
        if (token && driver_config_is_set(c, "token_file"))
                return driver_config_problem(ret_problem, ret_option, "token_file", "give token or token_file, not both");
        if (!token && !driver_config_is_set(c, "token_file"))
                return driver_config_problem(ret_problem, ret_option, NULL, "no token: set token or token_file");
        if (token && (!*token || strpbrk(token, " \t\r\n")))
                return driver_config_problem(ret_problem, ret_option, "token", "expected a JWT without blanks");
        if (router && !address_is_valid(router))
                return driver_config_problem(ret_problem, ret_option, "router",
                                             "expected IPv4:PORT or [IPv6]:PORT such as 192.0.2.10:8444");
        if (router_ca && !router)
                return driver_config_problem(ret_problem, ret_option, "router_ca", "router_ca needs router");
        if (router_ca && !strstr(router_ca, "-----BEGIN CERTIFICATE-----") && router_ca[0] != '/')
                return driver_config_problem(ret_problem, ret_option, "router_ca",
                                             "expected PEM text (-----BEGIN CERTIFICATE-----...) or an absolute path");
        return 0;
}

static const DriverType driver_type_remote = {
        .name = "remote",
        .classes = 1U << DRIVER_CLASS_POWER | 1U << DRIVER_CLASS_SERIAL | 1U << DRIVER_CLASS_STORAGE,
        .options = remote_options,
        .help = "a DUT of another exporter, reached over TLS data streams with a stream token (direct mode)",
        .validate = remote_validate,
};

const DriverType *const driver_types_remote[] = {
        &driver_type_remote,
        NULL,
};
