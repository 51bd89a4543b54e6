/* Logging to stderr and, under systemd, to the journal */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "macro.h"

/* Sets the program name and the maximum level (LOG_DEBUG enables debug output; the environment
 * variable JMP_LOG_LEVEL=debug does the same). */
void log_setup(const char *program);
void log_set_max_level(int level);
int log_get_max_level(void);

/* Logs with optional structured journal fields, given as "KEY=value" strings before the format,
 * terminated by NULL: log_struct(LOG_INFO, "DUT=dut1", NULL, "powered %s", "on");
 * Returns -abs(error), so that "return log_error_errno(r, ...)" works; %m prints strerror(error). */
int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) _printf_(6, 7);
int log_struct_internal(int level, int error, const char *file, int line, const char *func,
                        const char *const *fields, const char *format, ...) _printf_(7, 8);

#define log_full_errno(level, error, ...) \
        log_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_debug(...)   log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, (e), __VA_ARGS__)

/* log_dut(LOG_INFO, 0, "dut1", "Powered on") adds the journal field DUT=dut1. */
#define log_dut(level, error, dut, ...)                                                 \
        log_struct_internal((level), (error), __FILE__, __LINE__, __func__,            \
                            (const char *const[]) { "DUT=", (dut), NULL }, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
