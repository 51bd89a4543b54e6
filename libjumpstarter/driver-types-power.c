/* Driver types of the power switch family, with their options */
#include <stddef.h>
#include <string.h>

#include "config.h"
#include "macro.h"

static const char *const http_presets[] = { "pdudaemon", "shelly", "tasmota", "template", NULL };

static const OptionSpec http_options[] = {
        { "preset", OPTION_STRING, true, "what the switch speaks: pdudaemon, shelly, tasmota or template",
          .values = http_presets },
        { "url", OPTION_STRING, true, "base URL of the switch, e.g. http://192.168.1.20 or http://pdu-host:16421" },
        { "hostname", OPTION_STRING, false, "pdudaemon: the PDU's name in pdudaemon's config (required there)" },
        { "port", OPTION_UINT, false, "pdudaemon: the outlet (required there)" },
        { "channel", OPTION_UINT, false, "shelly: switch id (default 0); tasmota: relay number (default 1)" },
        { "on_url", OPTION_STRING, false, "template: URL that powers on (required there)" },
        { "off_url", OPTION_STRING, false, "template: URL that powers off (required there)" },
        { "status_url", OPTION_STRING, false, "template: URL whose answer tells the state (optional)" },
        { "status_on_text", OPTION_STRING, false,
          "template: the state is on when the status answer contains this text, else off (default \"ON\")" },
        { "timeout", OPTION_DURATION, false, "time allowed for one HTTP request (default 5s)" },
        { "retries", OPTION_UINT, false,
          "further attempts after a timeout, a network error or HTTP 5xx, at most 10 (default 2)", .max = 10 },
        { "cycle_delay", OPTION_DURATION, false, "off time of a power cycle (default 2s)" },
        { "username", OPTION_STRING, false, "HTTP basic authentication user (optional)" },
        { "password", OPTION_STRING, false, "HTTP basic authentication password (optional)" },
        {}
};

static int http_validate(const DriverConfig *c, char **ret_problem, const char **ret_option) {
        /* The options each preset cannot do without; the driver warns about those it ignores. */
        static const struct {
                const char *preset, *option;
        } needs[] = {
                { "pdudaemon", "hostname" },
                { "pdudaemon", "port" },
                { "template", "on_url" },
                { "template", "off_url" },
        };
        const char *preset = driver_config_get_string(c, "preset"), *url = driver_config_get_string(c, "url");

        if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
                return driver_config_problem(ret_problem, ret_option, "url",
                                             "expected an http:// or https:// URL");
        for (size_t i = 0; i < ELEMENTSOF(needs); i++)
                if (streq(preset, needs[i].preset) && !driver_config_is_set(c, needs[i].option))
                        return driver_config_problem(ret_problem, ret_option, needs[i].option,
                                                     "preset %s needs option \"%s\"", preset, needs[i].option);
        return 0;
}

static const DriverType driver_type_http = {
        .name = "http",
        .classes = 1U << DRIVER_CLASS_POWER,
        .options = http_options,
        .help = "a network power switch over HTTP: pdudaemon, Shelly Gen2, Tasmota or URL templates",
        .validate = http_validate,
};

static const OptionSpec command_options[] = {
        { "on", OPTION_ARGV, true, "command that powers on, as a sequence of strings (no shell)" },
        { "off", OPTION_ARGV, true, "command that powers off, as a sequence of strings (no shell)" },
        { "status", OPTION_ARGV, false, "command whose exit status tells the state: 0 on, 1 off, else unknown" },
        { "cycle", OPTION_ARGV, false, "command that power cycles (default: off, cycle_delay, on)" },
        { "reading", OPTION_ARGV, false, "command that prints the power draw in watts (enables power.reading)" },
        { "timeout", OPTION_DURATION, false, "time allowed for one command before it is killed (default 10s)" },
        { "cycle_delay", OPTION_DURATION, false, "off time of a power cycle without a cycle command (default 2s)" },
        {}
};

static const DriverType driver_type_command = {
        .name = "command",
        .classes = 1U << DRIVER_CLASS_POWER,
        .options = command_options,
        .help = "a power switch driven by the commands the config names",
};

const DriverType *const driver_types_power[] = {
        &driver_type_http,
        &driver_type_command,
        NULL,
};
