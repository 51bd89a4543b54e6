/* Control streams on the exporter: NDJSON requests for the DUT's drivers, and power events */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "stream-internal.h"

/* A request the DUT answers later. It outlives its stream if need be: the DUT calls back into it
 * whatever happens, and it then finds no stream to answer. */
struct ControlOp {
        Stream *stream;
        json_t *id;
        ControlOp *next;
};

static void control_op_unlink(ControlOp *op) {
        if (!op->stream)
                return;
        for (ControlOp **link = &op->stream->ops; *link; link = &(*link)->next)
                if (*link == op) {
                        *link = op->next;
                        break;
                }
        op->stream = NULL;
}

static void control_op_free(ControlOp *op) {
        control_op_unlink(op);
        json_decref(op->id);
        free(op);
}

void stream_control_detach_ops(Stream *st) {
        while (st->ops) {
                ControlOp *op = st->ops;

                st->ops = op->next;
                op->stream = NULL;
        }
}

static void control_reply(Stream *st, json_t *id, json_t *result) {
        if (!result)
                return;
        (void) stream_send_json(st, json_pack("{sOso}", "id", id ? id : json_null(), "result", result));
}

static void control_error(Stream *st, json_t *id, int r, const char *format, ...) _printf_(4, 5);
static void control_error(Stream *st, json_t *id, int r, const char *format, ...) {
        _cleanup_free_ char *message = NULL;
        ApiError e = api_error_from_errno(r);
        va_list ap;
        json_t *error;

        va_start(ap, format);
        if (vasprintf(&message, format, ap) < 0)
                message = NULL;
        va_end(ap);

        error = api_error_to_json(e, message, NULL);
        if (!error)
                return;
        (void) stream_send_json(st, json_pack("{sOso}", "id", id ? id : json_null(), "error", error));
}

static json_t *control_power_state(Dut *d) {
        PowerState state = POWER_UNKNOWN;

        (void) dut_get_power(d, &state);
        return json_pack("{ss}", "state", power_state_to_string(state));
}

void stream_control_power_changed(Dut *d, PowerState state, void *userdata) {
        Stream *st = userdata;

        (void) stream_send_json(st, json_pack("{ssss}", "event", "power", "state", power_state_to_string(state)));
}

static ControlOp *control_op_new(Stream *st, json_t *id) {
        ControlOp *op = calloc(1, sizeof *op);

        if (!op)
                return NULL;
        op->stream = st;
        op->id = json_incref(id);
        op->next = st->ops;
        st->ops = op;
        return op;
}

static void control_on_power_done(Dut *d, int r, void *userdata) {
        ControlOp *op = userdata;
        Stream *st = op->stream;

        if (st) {
                if (r < 0)
                        control_error(st, op->id, r, "Failed to power %s: %s", dut_get_name(d), strerror(-r));
                else
                        control_reply(st, op->id, control_power_state(d));
        }
        control_op_free(op);
}

static void control_on_reading(Dut *d, int r, double watts, void *userdata) {
        ControlOp *op = userdata;
        Stream *st = op->stream;

        if (st) {
                if (r < 0)
                        control_error(st, op->id, r, "Failed to read the power draw of %s: %s", dut_get_name(d),
                                      strerror(-r));
                else
                        control_reply(st, op->id, json_pack("{sf}", "watts", watts));
        }
        control_op_free(op);
}

static json_t *control_describe(Dut *d) {
        const DutConfig *config = dut_get_config(d);
        unsigned classes = dut_get_classes(d);
        json_t *labels, *cls, *gpio;

        labels = json_object();
        cls = json_array();
        gpio = json_array();
        if (!labels || !cls || !gpio)
                goto fail;
        for (size_t i = 0; i < config->n_labels; i++)
                if (json_object_set_new(labels, config->labels[i].key,
                                        json_string(strempty(config->labels[i].value))) < 0)
                        goto fail;
        for (DriverClass c = 0; c < _DRIVER_CLASS_MAX; c++)
                if (classes & (1U << c))
                        if (json_array_append_new(cls, json_string(driver_class_to_string(c))) < 0)
                                goto fail;
        for (size_t i = 0; i < dut_n_gpio_lines(d); i++)
                if (json_array_append_new(gpio, json_string(dut_gpio_line_name(d, i))) < 0)
                        goto fail;

        return json_pack("{sosososIsb}", "labels", labels, "classes", cls, "gpio", gpio, "storageSize",
                         (json_int_t) dut_get_storage_size(d), "powerReading", dut_has_power_reading(d));
fail:
        json_decref(labels);
        json_decref(cls);
        json_decref(gpio);
        return NULL;
}

/* Returns false after answering that the token does not allow the verb. */
static bool control_allowed(Stream *st, json_t *id, const char *verb) {
        if (stream_verbs_allow(st->verbs, verb))
                return true;
        control_error(st, id, -EACCES, "The stream token does not allow '%s'", verb);
        return false;
}

void stream_control_line(Stream *st, const char *line, size_t n) {
        Dut *d = st->dut;
        json_error_t error;
        json_t *root, *id = NULL;
        const char *op;
        int r;

        if (n == 0 || (n == 1 && line[0] == '\r'))
                return;
        root = json_loadb(line, n, JSON_REJECT_DUPLICATES, &error);
        if (!root) {
                control_error(st, NULL, -EBADMSG, "Malformed JSON at column %d: %s", error.column, error.text);
                return;
        }
        if (!json_is_object(root)) {
                control_error(st, NULL, -EINVAL, "A request must be a JSON object");
                goto finish;
        }
        id = json_object_get(root, "id");
        op = json_string_value(json_object_get(root, "op"));
        if (!op) {
                control_error(st, id, -EINVAL, "A request needs \"op\"");
                goto finish;
        }

        if (streq(op, "describe"))
                control_reply(st, id, control_describe(d));

        else if (streq(op, "power.get")) {
                if (!(dut_get_classes(d) & (1U << DRIVER_CLASS_POWER)))
                        control_error(st, id, -EOPNOTSUPP, "DUT %s has no power driver", st->dut_name);
                else
                        control_reply(st, id, control_power_state(d));

        } else if (streq(op, "power.set")) {
                PowerAction action = power_action_from_string(json_string_value(json_object_get(root, "action")));
                ControlOp *o;

                if (!control_allowed(st, id, "power"))
                        goto finish;
                if (action < 0) {
                        control_error(st, id, -EINVAL, "\"action\" must be \"on\", \"off\" or \"cycle\"");
                        goto finish;
                }
                o = control_op_new(st, id);
                if (!o) {
                        control_error(st, id, -ENOMEM, "Out of memory");
                        goto finish;
                }
                r = dut_set_power(d, action, control_on_power_done, o);
                if (r != 0) {
                        control_op_free(o);
                        if (r == -EBUSY)
                                control_error(st, id, r, "Storage of DUT %s is open for writing; close it first",
                                              st->dut_name);
                        else if (r == -EOPNOTSUPP)
                                control_error(st, id, r, "DUT %s has no power driver", st->dut_name);
                        else if (r < 0)
                                control_error(st, id, r, "Failed to power %s DUT %s: %s",
                                              power_action_to_string(action), st->dut_name, strerror(-r));
                        else
                                control_reply(st, id, control_power_state(d));
                }

        } else if (streq(op, "power.reading")) {
                ControlOp *o = control_op_new(st, id);

                if (!o) {
                        control_error(st, id, -ENOMEM, "Out of memory");
                        goto finish;
                }
                r = dut_get_power_reading(d, control_on_reading, o);
                if (r < 0) {
                        control_op_free(o);
                        control_error(st, id, r, "DUT %s does not measure its power draw", st->dut_name);
                }

        } else if (streq(op, "gpio.get") || streq(op, "gpio.set")) {
                const char *line_name = json_string_value(json_object_get(root, "line"));
                json_t *value = json_object_get(root, "value");
                bool v;

                if (!control_allowed(st, id, "gpio"))
                        goto finish;
                if (!line_name) {
                        control_error(st, id, -EINVAL, "\"line\" must name a GPIO line");
                        goto finish;
                }
                if (streq(op, "gpio.get")) {
                        r = dut_get_gpio(d, line_name, &v);
                        if (r < 0)
                                control_error(st, id, r, "GPIO line %s: %s", line_name,
                                              r == -ENOENT ? "no such line" : strerror(-r));
                        else
                                control_reply(st, id, json_pack("{si}", "value", (int) v));
                        goto finish;
                }
                if (json_is_boolean(value))
                        v = json_is_true(value);
                else if (json_is_integer(value) && (json_integer_value(value) == 0 || json_integer_value(value) == 1))
                        v = json_integer_value(value) == 1;
                else {
                        control_error(st, id, -EINVAL, "\"value\" must be 0 or 1");
                        goto finish;
                }
                r = dut_set_gpio(d, line_name, v);
                if (r < 0)
                        control_error(st, id, r, "GPIO line %s: %s", line_name,
                                      r == -ENOENT ? "no such line" : strerror(-r));
                else
                        control_reply(st, id, json_pack("{si}", "value", (int) v));

        } else
                control_error(st, id, -EOPNOTSUPP, "Unknown operation \"%s\"", op);

finish:
        json_decref(root);
}
