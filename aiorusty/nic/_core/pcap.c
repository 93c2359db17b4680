/* pcap.c - placeholder until its driver lands. */
#include <errno.h>
#include "dev.h"
int rusty_pcap_wrap(struct rusty_dev *i, const char *p, struct rusty_dev **o) { (void)i; (void)p; (void)o; return -ENOSYS; }
