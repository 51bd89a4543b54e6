/* Power switch drivers of this family */
#pragma once

#include "driver.h"

extern const Driver driver_http;
extern const Driver driver_command;
