/* The libFuzzer entry point that every fuzz-*.c defines and the replay driver calls */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
