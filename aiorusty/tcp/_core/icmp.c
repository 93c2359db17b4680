/* icmp.c - placeholder until its driver lands. */
#include <errno.h>
#include "stack.h"
int rusty_icmp_echo(struct rusty_stack *s, uint32_t d, uint16_t i, uint16_t q, uint16_t l, uint64_t n) { (void)s; (void)d; (void)i; (void)q; (void)l; (void)n; return -ENOSYS; }
