/* jmp: the command line of Jumpstarter */
#pragma once

int verb_local(int argc, char *argv[]);
int verb_power(int argc, char *argv[]);
int verb_storage(int argc, char *argv[]);

/* The default mount point of the file view. */
#define DEFAULT_MOUNTPOINT "/jmp"
