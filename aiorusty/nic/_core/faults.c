/* faults.c - placeholder until its driver lands. */
#include <errno.h>
#include "dev.h"
int rusty_faults_wrap(struct rusty_dev *i, const struct rusty_faults_config *c, struct rusty_dev **o) { (void)i; (void)c; (void)o; return -ENOSYS; }
