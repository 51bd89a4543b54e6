/* Exporter configuration: the ExporterConfig YAML, validated before anything starts */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Device classes. A DUT has at most one driver per class. */
typedef enum DriverClass {
        DRIVER_CLASS_POWER,
        DRIVER_CLASS_SERIAL,
        DRIVER_CLASS_STORAGE,
        _DRIVER_CLASS_MAX,
        _DRIVER_CLASS_INVALID = -EINVAL,
} DriverClass;

/* GPIO lines are no DriverClass: a DUT has any number of them, each named under "gpio:". A
 * driver type that drives one line has this bit in DriverType.classes. */
#define DRIVER_CLASS_GPIO_LINES 16
#define DRIVER_TYPE_GPIO_LINE (1U << DRIVER_CLASS_GPIO_LINES)

const char *driver_class_to_string(DriverClass c);
DriverClass driver_class_from_string(const char *s);

typedef enum OptionType {
        OPTION_STRING,
        OPTION_PATH,     /* a string; relative paths are resolved against the config file's directory */
        OPTION_SIZE,     /* bytes: 4096, 64KiB, 64MiB, 1GiB, 1G (= GiB), 512k; stored in .number */
        OPTION_DURATION, /* 300ms, 2s, 1.5s, 5m, 1h; a bare number means seconds; stored in usec in .number */
        OPTION_UINT,     /* a non-negative integer; stored in .number */
        OPTION_BOOL,     /* true/false/yes/no/on/off; stored in .boolean */
        OPTION_ARGV,     /* a command line: a YAML sequence of one or more strings, never split or
                          * given to a shell; stored NULL-terminated in .strv */
        _OPTION_TYPE_MAX,
        _OPTION_TYPE_INVALID = -EINVAL,
} OptionType;

/* Tables write { name, type, required, help } positionally and add what follows by designator
 * (.values = ..., .min = ..., .max = ...), so that a plain option stays one short line. */
typedef struct OptionSpec {
        const char *name;
        OptionType type;
        bool required;
        const char *help; /* one line for docs and error messages */
        /* The only values allowed, NULL-terminated; NULL allows any. OPTION_STRING: the exact
         * spellings. OPTION_UINT: numbers in decimal, compared as numbers. */
        const char *const *values;
        /* OPTION_UINT, OPTION_SIZE, OPTION_DURATION (in usec): the allowed range, inclusive. max == 0
         * means no upper bound, so { .min = 0, .max = 0 } (the default) allows every value. */
        uint64_t min, max;
} OptionSpec;

typedef struct DriverConfig DriverConfig;

/* A driver type that a config may name in "type:". classes is a bitmask of (1 << DriverClass). */
typedef struct DriverType {
        const char *name;
        unsigned classes;
        const OptionSpec *options; /* terminated by an entry with name == NULL */
        const char *help;
        /* Optional: rules across options that the OptionSpecs cannot express (what one choice
         * requires of the others). Called by the parser once every option has passed its spec, so
         * the values are well-formed. Returns 0, -ENOMEM, or -EINVAL with what is wrong in
         * *ret_problem (caller frees; make it with driver_config_problem()) and in *ret_option the
         * option the problem is at: its value is what the message points at. For a missing option,
         * or for the config as a whole, the parser points at the "config:" mapping (or at "type:"
         * without one). */
        int (*validate)(const DriverConfig *c, char **ret_problem, const char **ret_option);
} DriverType;

/* The known driver types: libjumpstarter/driver-types.c and one driver-types-<family>.c per
 * family, each with a NULL-terminated table. */
const DriverType *driver_type_find(const char *name);
/* Iterates over all known types: driver_type_next(NULL) is the first; NULL after the last. */
const DriverType *driver_type_next(const DriverType *prev);
extern const DriverType *const driver_types_sim[];
extern const DriverType *const driver_types_serial[];
extern const DriverType *const driver_types_power[];
extern const DriverType *const driver_types_gpio[];
extern const DriverType *const driver_types_storage[];
extern const DriverType *const driver_types_qemu[];
extern const DriverType *const driver_types_remote[];

typedef struct OptionValue {
        const OptionSpec *spec;
        bool set;
        char *string;     /* OPTION_STRING, OPTION_PATH (absolute after resolution) */
        uint64_t number;  /* OPTION_SIZE, OPTION_DURATION (usec), OPTION_UINT */
        bool boolean;     /* OPTION_BOOL */
        char **strv;      /* OPTION_ARGV, NULL-terminated */
        unsigned line, column;
} OptionValue;

struct DriverConfig {
        const DriverType *type;
        OptionValue *values; /* one per spec entry of type->options, in that order */
        size_t n_values;
        unsigned line, column; /* of the "type:" value */
};

/* Accessors by option name; the name must be one of the type's options (assert()). */
const char *driver_config_get_string(const DriverConfig *c, const char *name); /* NULL if unset */
uint64_t driver_config_get_u64(const DriverConfig *c, const char *name, uint64_t def);
bool driver_config_get_bool(const DriverConfig *c, const char *name, bool def);
char *const *driver_config_get_strv(const DriverConfig *c, const char *name); /* NULL if unset */
bool driver_config_is_set(const DriverConfig *c, const char *name);

/* For DriverType.validate(): formats the problem into *ret_problem and sets *ret_option (which may
 * be NULL: the config as a whole). Returns -EINVAL, or -ENOMEM. */
int driver_config_problem(char **ret_problem, const char **ret_option, const char *option, const char *format,
                          ...) __attribute__((format(printf, 4, 5)));

typedef struct Label {
        char *key;
        char *value;
} Label;

/* A named GPIO line of a DUT: gpio/<name> in the file view. */
typedef struct GpioLineConfig {
        char *name;
        DriverConfig *driver; /* owned; its type has DRIVER_TYPE_GPIO_LINE */
} GpioLineConfig;

typedef struct DutConfig {
        char *name;          /* validated with dut_name_is_valid() */
        Label *labels;       /* metadata.labels merged with the DUT's own labels (the DUT's win), sorted by key */
        size_t n_labels;
        char *description;   /* optional */
        /* Every distinct driver of this DUT, owned here. A board driver (type sim) appears once and
         * serves several classes. */
        DriverConfig **drivers;
        size_t n_drivers;
        /* For each class, the driver that serves it (a pointer into drivers[]), or NULL. */
        DriverConfig *classes[_DRIVER_CLASS_MAX];
        /* The "gpio:" section, in file order; names match gpio_line_name_is_valid(). */
        GpioLineConfig *gpio_lines;
        size_t n_gpio_lines;
        /* "hooks:" and "health:" (hooks-config.h, docs/policy.md); NULL: neither. */
        struct DutHooks *hooks;
} DutConfig;

typedef struct ExporterConfig {
        char *path;          /* absolute path of the file it was read from */
        char *name;          /* metadata.name */
        char *namespace;     /* metadata.namespace, optional */
        Label *labels;       /* metadata.labels */
        size_t n_labels;
        DutConfig *duts;     /* in file order; none only with an endpoint */
        size_t n_duts;

        /* The link to a controller (docs/configuration.md "Controller link"). endpoint NULL: local
         * mode, and then token and the tls_* members are unset too. */
        char *endpoint;          /* "HOST:PORT" */
        char *token;             /* the exporter's token; set whenever endpoint is */
        char *tls_ca;            /* the controller's CA as PEM text, when given inline */
        char *tls_ca_path;       /* ... or as a PEM file (absolute path) */
        bool tls_insecure;       /* do not verify the controller's certificate */
        /* The data stream listener (docs/protocol.md "Data streams"). */
        char *streams_listen;    /* "IPv4:PORT", "[IPv6]:PORT" or ":PORT"; always set ("0.0.0.0:0" by default) */
        char *streams_advertise; /* "IP" or "IP:PORT" that clients dial; NULL: the link's local address */
        /* Prometheus metrics (docs/metrics.md): plain HTTP GET /metrics on this address; NULL: none. */
        char *metrics_listen;
} ExporterConfig;

/* Parses and validates a whole config. On failure returns a negative errno and, in *ret_error, a
 * message of the form "FILE:LINE:COLUMN: KEY.PATH: what is wrong" (caller frees). Nothing is
 * returned half-parsed. -ENOENT etc. for an unreadable file (message names the file), -EINVAL for
 * any content error. */
int exporter_config_load(const char *path, ExporterConfig **ret, char **ret_error);
/* The same from a buffer; path is used for messages and for resolving relative paths. */
int exporter_config_parse(const char *path, const char *data, size_t size, ExporterConfig **ret, char **ret_error);
ExporterConfig *exporter_config_free(ExporterConfig *c);

const DutConfig *exporter_config_find_dut(const ExporterConfig *c, const char *name);

/* "HOST:PORT": HOST a DNS name, an IPv4 address or a bracketed IPv6 one; PORT 1..65535. */
bool endpoint_is_valid(const char *s);

/* [a-z0-9][a-z0-9-]{0,62} */
bool dut_name_is_valid(const char *name);
/* [a-z0-9][a-z0-9_-]{0,31} */
bool gpio_line_name_is_valid(const char *name);
const GpioLineConfig *dut_config_find_gpio_line(const DutConfig *d, const char *name);
