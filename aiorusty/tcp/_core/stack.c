/* stack.c - placeholder until its driver lands. */
#include <errno.h>
#include "stack.h"
int rusty_stack_new(const struct rusty_stack_config *c, struct rusty_stack **o) { (void)c; (void)o; return -ENOSYS; }
void rusty_stack_free(struct rusty_stack *s) { (void)s; }
int rusty_stack_add_iface(struct rusty_stack *s, struct rusty_dev *d, uint32_t ip, uint8_t p, uint32_t g, uint64_t n) { (void)s; (void)d; (void)ip; (void)p; (void)g; (void)n; return -ENOSYS; }
int rusty_stack_poll(struct rusty_stack *s, uint64_t n, struct rusty_event *e, int m) { (void)s; (void)n; (void)e; (void)m; return -ENOSYS; }
int64_t rusty_stack_next_deadline(struct rusty_stack *s, uint64_t n) { (void)s; (void)n; return -1; }
int rusty_stack_route(struct rusty_stack *s, uint32_t ip) { (void)s; (void)ip; return 0; }
void rusty_stack_get_stats(struct rusty_stack *s, struct rusty_stats *o) { (void)s; (void)o; }
