/*
 * ipv4.c - IPv4 input, routing and output (RFC 791, RFC 1122 3.2.1, 3.3).
 *
 * Owns: validation of received datagrams and their demultiplexing to ICMP,
 * UDP and TCP; the routing decision (on-link by prefix, else the interface's
 * gateway, else no route); tx buffers with headroom; the IPv4 header on output.
 * Not: link-layer resolution (arp.c), L4 checksums (each L4 layer).
 *
 * Call chain: rusty_eth_input -> rusty_ipv4_input -> rusty_{icmp,udp,tcp}_input
 *             L4 -> rusty_ipv4_alloc -> ... -> rusty_ipv4_output -> rusty_arp_output
 *
 * Deliberate choices:
 * - Fragments are dropped and counted (ip_fragments_dropped), not reassembled.
 *   Everything we send carries DF (RFC 1191 path MTU discovery), Linux peers do
 *   the same for TCP, and reassembly needs per-datagram buffers and timers that
 *   are an attack surface (RFC 1858, RFC 3128) for little use on the links this
 *   stack runs on. RFC 1122 3.3.2 asks for reassembly; this is the deviation.
 * - Weak host model (RFC 1122 3.3.4.2): a datagram for any of our addresses is
 *   accepted on any interface. Limited (255.255.255.255) and directed subnet
 *   broadcasts of the receiving interface are accepted for UDP only.
 * - IP options are checked (RFC 791 3.1 syntax, wire.c; malformed ones drop the
 *   datagram, ip_bad_options) and then skipped (not passed up; RFC 1122 3.2.1.8
 *   wants them passed to the transport layer, which uses none of them here).
 *   Source-routed datagrams are dropped (ip_source_routed), as RFC 7126 4.3.5 and
 *   4.4.5 advise and Linux does by default (accept_source_route 0): we would
 *   answer without the reversed route RFC 1122 3.2.1.8 asks for.
 * - Martian sources (martian_source) are dropped and counted (ip_rx_martian).
 * - Identification: a counter (RFC 6864: with DF set it has no meaning).
 */
#include <errno.h>
#include <string.h>

#include "stack.h"

#define DEFAULT_TTL 64                  /* RFC 1700 / Linux default */
#define LOCAL_QUEUE_MAX 1024u           /* datagrams to ourselves waiting for the next poll */
#define LOCAL_ROUNDS 4                  /* local replies to local traffic handled in one poll */

static int is_broadcast_for(const struct rusty_iface *ifc, uint32_t ip)
{
    if (ip == 0xffffffffu)
        return 1;
    /* /31 and /32 links have no directed broadcast (RFC 3021). */
    return ifc->prefix_len > 0 && ifc->prefix_len < 31 && ip == (ifc->ip | ~ifc->netmask);
}

/* A source no datagram arriving on a link may carry (RFC 1122 3.2.1.3, RFC 1812
 * 5.3.7), checked as Linux's ip_route_input_slow (net/ipv4/route.c) and
 * fib_validate_source (net/ipv4/fib_frontend.c) do by default: multicast and
 * class E (224/4, 240/4, the limited broadcast among them), "this network" 0/8
 * (0.0.0.0 to the limited broadcast excepted: a host still learning its address,
 * RFC 2131 4.1), loopback 127/8 (route_localnet off), the receiving interface's
 * directed broadcast, and any address of ours (accept_local off). The last stops
 * a LAND attack: one SYN from our own address and port to itself would have the
 * stack answer itself through its local queue, forever. Our own datagrams
 * delivered through that queue (RUSTY_BUF_LOCAL) are what Linux receives on lo,
 * and are not checked. */
static int martian_source(struct rusty_stack *s, const struct rusty_iface *ifc, const struct rusty_buf *b,
                          uint32_t src, uint32_t dst)
{
    if (b->flags & RUSTY_BUF_LOCAL)
        return 0;
    if ((src >> 28) >= 0xe)
        return 1;
    if ((src >> 24) == 0)
        return !(src == 0 && dst == 0xffffffffu);
    if ((src >> 24) == 127)
        return 1;
    return is_broadcast_for(ifc, src) || rusty_iface_by_ip(s, src) != NULL;
}

void rusty_ipv4_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b, uint64_t now_us)
{
    struct rusty_ipv4_repr ip;
    s->stats.ip_rx++;
    int err = rusty_ipv4_parse(rusty_buf_data(b), b->len, &ip);
    if (err) {
        if (err == -EBADMSG)
            s->stats.ip_bad_checksum++;
        else if (err == -EPROTO)
            s->stats.ip_bad_options++;
        else
            s->stats.ip_malformed++;
        rusty_buf_free(b);
        return;
    }
    /* Ethernet pads short frames to 60 bytes: the datagram ends at total_len. */
    b->len = ip.total_len;
    if (martian_source(s, ifc, b, ip.src, ip.dst)) {
        s->stats.ip_rx_martian++;
        rusty_buf_free(b);
        return;
    }
    if (ip.source_routed) {
        s->stats.ip_source_routed++;    /* see the header comment */
        rusty_buf_free(b);
        return;
    }
    int bcast = is_broadcast_for(ifc, ip.dst);
    if (!bcast && !rusty_iface_by_ip(s, ip.dst)) {
        s->stats.ip_not_for_us++;       /* we do not forward (RFC 1122 3.3.1: a host) */
        rusty_buf_free(b);
        return;
    }
    if ((ip.frag & RUSTY_IPV4_MF) || (ip.frag & RUSTY_IPV4_OFFMASK)) {
        s->stats.ip_fragments_dropped++;   /* see the header comment */
        rusty_buf_free(b);
        return;
    }
    if (bcast && ip.proto != RUSTY_IPPROTO_UDP) {
        s->stats.ip_not_for_us++;       /* RFC 1122 3.2.2.6: echo to broadcast may be ignored */
        rusty_buf_free(b);
        return;
    }
    /* Gleaning: frames from a neighbour confirm its ARP entry. */
    if (b->l3_off >= RUSTY_ETH_HLEN)
        rusty_arp_glean(s, ifc, ip.src, b->storage + b->l3_off - RUSTY_ETH_HLEN + 6, now_us);
    switch (ip.proto) {
    case RUSTY_IPPROTO_ICMP:
        rusty_buf_pull(b, ip.header_len);
        rusty_icmp_input(s, ifc, b, &ip, now_us);
        break;
    case RUSTY_IPPROTO_UDP:
        rusty_buf_pull(b, ip.header_len);
        rusty_udp_input(s, ifc, b, &ip, now_us);
        break;
    case RUSTY_IPPROTO_TCP:
        rusty_buf_pull(b, ip.header_len);
        rusty_tcp_input(s, ifc, b, &ip, now_us);
        break;
    default:
        /* RFC 1122 3.2.2.1: protocol unreachable for an unknown transport. */
        s->stats.ip_unknown_protocol++;
        rusty_icmp_send_unreachable(s, ifc, b, &ip, 2, now_us);
        rusty_buf_free(b);
    }
}

struct rusty_iface *rusty_ipv4_route(struct rusty_stack *s, uint32_t dst, uint32_t *next_hop)
{
    if (s->n_ifaces == 0 || dst == 0)
        return NULL;
    if (dst == 0xffffffffu) {
        *next_hop = dst;
        return &s->ifaces[0];
    }
    /* Longest prefix first among on-link subnets. */
    struct rusty_iface *best = NULL;
    for (uint8_t i = 0; i < s->n_ifaces; i++) {
        struct rusty_iface *ifc = &s->ifaces[i];
        if ((dst & ifc->netmask) == (ifc->ip & ifc->netmask) && (!best || ifc->prefix_len > best->prefix_len))
            best = ifc;
    }
    if (best) {
        *next_hop = dst;
        return best;
    }
    for (uint8_t i = 0; i < s->n_ifaces; i++) {
        if (s->ifaces[i].gateway) {
            *next_hop = s->ifaces[i].gateway;
            return &s->ifaces[i];
        }
    }
    return NULL;
}

struct rusty_buf *rusty_ipv4_alloc(struct rusty_stack *s, uint32_t dst, struct rusty_iface **ifc, int *err)
{
    uint32_t hop;
    struct rusty_iface *out = rusty_ipv4_route(s, dst, &hop);
    if (!out) {
        s->stats.ip_no_route++;
        *err = -EHOSTUNREACH;
        return NULL;
    }
    /* rusty_pool_get leaves RUSTY_BUF_HEADROOM in front: room for the device
     * header, Ethernet, IPv4 and the L4 header the caller pushes. */
    struct rusty_buf *b = rusty_pool_get(out->dev->pool);
    if (!b) {
        s->stats.tx_no_buffer++;
        *err = -ENOBUFS;
        return NULL;
    }
    *ifc = out;
    *err = 0;
    return b;
}

/* A datagram to one of our own addresses never reaches a device (it would not
 * come back, except on loopback): it waits, with an Ethernet header addressed
 * to the interface, for rusty_ipv4_local_deliver at the next poll. Like Linux
 * on lo, its L4 checksum is trusted rather than computed. */
static int local_queue(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b)
{
    uint8_t *h = rusty_buf_push(b, RUSTY_ETH_HLEN);
    if (!h || s->local_len >= LOCAL_QUEUE_MAX || rusty_buf_linearize(b) != 0) {
        s->stats.tx_device_full++;
        rusty_buf_free(b);
        return -ENOBUFS;
    }
    struct rusty_eth_repr eth;
    memcpy(eth.dst, ifc->mac, 6);
    memcpy(eth.src, ifc->mac, 6);
    eth.ethertype = RUSTY_ETH_P_IPV4;
    rusty_eth_emit(&eth, h);
    if (b->flags & RUSTY_BUF_CSUM_PARTIAL)
        b->flags = RUSTY_BUF_CSUM_VALID;
    b->flags |= RUSTY_BUF_LOCAL;        /* not a martian (rusty_ipv4_input) */
    b->queue = ifc->index;              /* which interface "received" it */
    b->next = NULL;
    if (s->local_tail)
        s->local_tail->next = b;
    else
        s->local_head = b;
    s->local_tail = b;
    s->local_len++;
    return 0;
}

int rusty_ipv4_local_deliver(struct rusty_stack *s, uint64_t now_us)
{
    int n = 0;
    for (int round = 0; round < LOCAL_ROUNDS && s->local_head; round++) {
        /* Detach the queue first: delivery may queue replies for the next round. */
        struct rusty_buf *b = s->local_head;
        s->local_head = s->local_tail = NULL;
        s->local_len = 0;
        while (b) {
            struct rusty_buf *next = b->next;
            struct rusty_iface *ifc = &s->ifaces[b->queue < s->n_ifaces ? b->queue : 0];
            b->next = NULL;
            b->queue = 0;
            rusty_eth_input(s, ifc, b, now_us);
            n++;
            b = next;
        }
    }
    return n;
}

void rusty_ipv4_local_flush(struct rusty_stack *s)
{
    while (s->local_head) {
        struct rusty_buf *b = s->local_head;
        s->local_head = b->next;
        rusty_buf_free(b);
    }
    s->local_tail = NULL;
    s->local_len = 0;
}

int rusty_ipv4_output(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b, uint32_t src,
                      uint32_t dst, uint8_t proto, uint64_t now_us)
{
    /* The caller chose ifc (rusty_ipv4_alloc): the next hop is dst when it is
     * on that interface's link, else that interface's gateway. */
    uint32_t hop = dst;
    if (dst != 0xffffffffu && (dst & ifc->netmask) != (ifc->ip & ifc->netmask))
        hop = ifc->gateway;
    if (!hop || !dst) {
        s->stats.ip_no_route++;
        rusty_buf_free(b);
        return -EHOSTUNREACH;
    }
    struct rusty_iface *local = rusty_iface_by_ip(s, dst);
    /* A TSO frame (gso_size) goes out as segments of its headers plus gso_size. */
    uint32_t l4 = b->gso_size ? (uint32_t)b->len + b->gso_size : rusty_buf_frame_len(b);
    if (l4 + RUSTY_IPV4_HLEN > ifc->mtu || rusty_buf_frame_len(b) + RUSTY_IPV4_HLEN > 0xffff) {
        rusty_buf_free(b);              /* DF is set and we never fragment */
        return -EMSGSIZE;
    }
    uint8_t *h = rusty_buf_push(b, RUSTY_IPV4_HLEN);
    if (!h) {
        s->stats.tx_no_buffer++;
        rusty_buf_free(b);
        return -ENOBUFS;
    }
    if (b->flags & RUSTY_BUF_CSUM_PARTIAL)
        b->csum_start = (uint16_t)(b->csum_start + RUSTY_IPV4_HLEN);
    struct rusty_ipv4_repr r;
    memset(&r, 0, sizeof(r));
    r.src = src ? src : ifc->ip;
    r.dst = dst;
    r.header_len = RUSTY_IPV4_HLEN;
    r.total_len = (uint16_t)rusty_buf_frame_len(b);
    r.payload_len = (uint16_t)(r.total_len - RUSTY_IPV4_HLEN);
    r.ident = s->ip_ident++;
    r.frag = RUSTY_IPV4_DF;
    r.proto = proto;
    r.ttl = DEFAULT_TTL;
    rusty_ipv4_emit(&r, h);
    s->stats.ip_tx++;
    if (local)
        return local_queue(s, local, b);
    if (is_broadcast_for(ifc, dst))
        hop = 0xffffffffu;
    return rusty_arp_output(s, ifc, b, hop, now_us);
}
