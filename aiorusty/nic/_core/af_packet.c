/* af_packet.c - placeholder until its driver lands. */
#include <errno.h>
#include "dev.h"
int rusty_afpacket_open(const char *n, const struct rusty_dev_config *c, struct rusty_dev **o) { (void)n; (void)c; (void)o; return -ENOSYS; }
