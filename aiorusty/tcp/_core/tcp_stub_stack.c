/*
 * tcp_stub_stack.c - temporary TCP entry points so the stack links before the
 * TCP layer lands. Owned by the stack helper; the TCP helper deletes this file
 * when their tcp.c defines these functions.
 *
 * Until then TCP segments are counted and dropped (no RST: a peer's connect
 * simply times out, which is what a stack without TCP should look like).
 */
#include "stack.h"

void rusty_tcp_destroy(struct rusty_stack *s)
{
    (void)s;
}

void rusty_tcp_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                     const struct rusty_ipv4_repr *ip, uint64_t now_us)
{
    (void)ifc;
    (void)ip;
    (void)now_us;
    s->stats.tcp_rx++;
    rusty_buf_free(b);
}

void rusty_tcp_icmp_error(struct rusty_stack *s, const struct rusty_ipv4_repr *inner, const uint8_t *l4,
                          size_t l4_len, int err)
{
    (void)s;
    (void)inner;
    (void)l4;
    (void)l4_len;
    (void)err;
}

void rusty_tcp_poll_end(struct rusty_stack *s, uint64_t now_us)
{
    (void)s;
    (void)now_us;
}

int64_t rusty_tcp_next_deadline(struct rusty_stack *s, uint64_t now_us)
{
    (void)s;
    (void)now_us;
    return -1;
}
