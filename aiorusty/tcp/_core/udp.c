/* udp.c - placeholder until its driver lands. */
#include <errno.h>
#include "stack.h"
int rusty_udp_bind(struct rusty_stack *s, uint32_t ip, uint16_t p, uint32_t *o) { (void)s; (void)ip; (void)p; (void)o; return -ENOSYS; }
int rusty_udp_sendto(struct rusty_stack *s, uint32_t k, uint32_t d, uint16_t p, const uint8_t *b, size_t l, uint64_t n) { (void)s; (void)k; (void)d; (void)p; (void)b; (void)l; (void)n; return -ENOSYS; }
int rusty_udp_recvfrom(struct rusty_stack *s, uint32_t k, uint8_t *b, size_t c, uint32_t *ip, uint16_t *p) { (void)s; (void)k; (void)b; (void)c; (void)ip; (void)p; return -ENOSYS; }
int rusty_udp_getsockname(struct rusty_stack *s, uint32_t k, uint32_t *ip, uint16_t *p) { (void)s; (void)k; (void)ip; (void)p; return -ENOSYS; }
int rusty_udp_close(struct rusty_stack *s, uint32_t k) { (void)s; (void)k; return -ENOSYS; }
