/* Driver types of the power switch family, with their options */
#include <stddef.h>

#include "config.h"

static const OptionSpec http_options[] = {
        { "preset", OPTION_STRING, true, "what the switch speaks: pdudaemon, shelly, tasmota or template" },
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
        { "retries", OPTION_UINT, false, "further attempts after a timeout, a network error or HTTP 5xx (default 2)" },
        { "cycle_delay", OPTION_DURATION, false, "off time of a power cycle (default 2s)" },
        { "username", OPTION_STRING, false, "HTTP basic authentication user (optional)" },
        { "password", OPTION_STRING, false, "HTTP basic authentication password (optional)" },
        {}
};

static const DriverType driver_type_http = {
        .name = "http",
        .classes = 1U << DRIVER_CLASS_POWER,
        .options = http_options,
        .help = "a network power switch over HTTP: pdudaemon, Shelly Gen2, Tasmota or URL templates",
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
