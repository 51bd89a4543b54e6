/* The DUTs jumpstarterd shows this caller: their descriptions and loading them */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "agent-client.h"

typedef struct Dut {
        char *name;
        unsigned classes;       /* bitmask of 1 << DriverClass */
        char *serial_path;      /* "" without serial */
        uint64_t storage_size;
        char *labels_text;      /* "key=value\n" lines, sorted by key */
        char *lease_text;       /* "name=..\nholder=..\nselector=..\nbegin=..\nend=..\n" */
        /* GPIO line names (ListGpio), NULL-terminated; NULL without lines. dut_has_class() says
         * DRIVER_CLASS_GPIO_LINES when there are some. */
        char **gpio_lines;
        /* GetDutAccess: a DUT leased on the system bus belongs to its holder (and share group). */
        bool leased;
        uid_t holder_uid;
        gid_t share_gid;        /* (gid_t) -1: none */
        char *lease_name;
} Dut;

typedef struct DutList {
        Dut *duts;              /* in the agent's order */
        size_t n_duts;
} DutList;

void dut_done(Dut *d);
void dut_list_done(DutList *l);
Dut *dut_list_find(const DutList *l, const char *name);
bool dut_has_class(const Dut *d, int driver_class);
bool dut_has_gpio_line(const Dut *d, const char *line);

/* Puts d into the list (moving its contents; d is left empty): appended, or in place of the DUT of
 * the same name, which is freed. -ENOMEM leaves both as they were. */
int dut_list_put(DutList *l, Dut *d);
/* Removes (and frees) the DUT of that name: 1 if there was one, else 0. */
int dut_list_remove(DutList *l, const char *name);

/* Fills d from a DescribeDut reply (d->name must be set already). */
int dut_parse_description(Dut *d, sd_bus_message *reply);
/* Renders (key, value) pairs as "key=value\n" lines; with sort, sorted by key. */
int render_pairs(char *const *keys, char *const *values, size_t n, bool sort, char **ret);

/* Called once with the loaded list (the callee may take its contents, the rest is freed), or with
 * list NULL and a negative errno. */
typedef void (*dut_list_loaded_t)(DutList *list, int error, void *userdata);

/* ListDuts, then DescribeDut for each (in parallel). Names that are not valid DUT names are skipped. */
int dut_list_load(Agent *a, dut_list_loaded_t done, void *userdata);
/* Fills d's access from a GetDutAccess reply. */
int dut_parse_access(Dut *d, sd_bus_message *reply);
/* DescribeDut and ListGpio of one DUT (one that DutAdded announced): a list of that one, or an error
 * (-ENOENT when it went away meanwhile). -EINVAL at once for a name that is not a valid DUT name. */
int dut_list_load_one(Agent *a, const char *name, dut_list_loaded_t done, void *userdata);
