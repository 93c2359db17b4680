/* tap.c - placeholder until its driver lands. */
#include <errno.h>
#include "dev.h"
int rusty_tap_open(const char *n, const struct rusty_dev_config *c, struct rusty_dev **o) { (void)n; (void)c; (void)o; return -ENOSYS; }
