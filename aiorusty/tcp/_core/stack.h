/*
 * stack.h - the stack's internal state and the calls between its layers.
 *
 * One struct rusty_stack holds everything a stack owns (interfaces, ARP
 * table, sockets, timers, pending events, counters); there are no file-scope
 * globals, so several stacks live in one process. Layers call each other
 * through the functions below, passing the stack and `now_us`.
 *
 * Receive:  rusty_stack_poll -> rusty_eth_input -> rusty_arp_input
 *                                              \-> rusty_ipv4_input -> rusty_icmp_input
 *                                                                   -> rusty_udp_input
 *                                                                   -> rusty_tcp_input
 * Transmit: L4 -> rusty_ipv4_alloc (route + buffer with headroom)
 *              -> rusty_ipv4_output -> rusty_arp_output (resolve or hold)
 *              -> rusty_eth_output -> interface tx queue -> rusty_dev_tx at end of poll
 *
 * Buffer ownership: every *_input and *_output function takes ownership of
 * the buffer it is given, whatever it returns.
 */
#ifndef RUSTY_STACK_H
#define RUSTY_STACK_H

#include "rusty.h"
#include "../../nic/_core/dev.h"
#include "timer.h"
#include "wire.h"

#define RUSTY_MAX_IFACES 8
#define RUSTY_TXQ_LEN 1024              /* frames waiting for the end-of-poll tx flush (or a full device) */

struct rusty_iface {
    struct rusty_dev *dev;
    uint32_t ip, netmask, gateway;      /* gateway 0: none */
    uint8_t prefix_len;
    uint8_t index;
    uint8_t mac[6];
    uint16_t mtu;
    uint16_t txq_len;
    uint16_t n_addrs;                   /* secondary addresses (iface.c) */
    uint8_t tx_blocked;                 /* the device refused frames at the last flush */
    uint64_t tx_blocked_since;          /* now_us of the last flush the device took frames from */
    struct rusty_buf *txq[RUSTY_TXQ_LEN];
    uint32_t addrs[RUSTY_IFACE_MAX_ADDRS - 1];  /* secondary addresses, ascending (iface.c) */
};

/* Socket table: a handle is (generation << 20) | slot, so a stale handle is caught. */
#define RUSTY_SOCK_SLOT_BITS 20
#define RUSTY_SOCK_FREE 0
#define RUSTY_SOCK_UDP 1
#define RUSTY_SOCK_TCP_LISTEN 2
#define RUSTY_SOCK_TCP 3
struct rusty_sock {
    uint8_t kind;
    uint16_t gen;
    uint32_t next_free;
    void *impl;
};

struct rusty_arp_table;                 /* arp.c */
struct rusty_udp_state;                 /* udp.c */
struct rusty_tcp_state;                 /* tcp.c */

struct rusty_stack {
    struct rusty_stack_config cfg;
    struct rusty_stats stats;
    struct rusty_iface ifaces[RUSTY_MAX_IFACES];
    uint8_t n_ifaces;
    struct rusty_timer_heap timers;
    struct rusty_event *events;         /* ring of pending events */
    uint32_t ev_head, ev_count, ev_cap;
    struct rusty_sock *socks;
    uint32_t sock_cap, sock_free, socks_used;
    struct rusty_arp_table *arp;
    struct rusty_udp_state *udp;
    struct rusty_tcp_state *tcp;
    uint64_t rng;                       /* xorshift state seeded from cfg.seed */
    uint16_t next_ephemeral;
    /* added by the stack layer */
    uint64_t now_us;                    /* time of the current (or last) entry point */
    uint32_t poll_seq;                  /* incremented by every rusty_stack_poll */
    uint16_t ip_ident;                  /* IPv4 identification counter */
    uint32_t icmp_tokens;               /* rate limit of ICMP errors (token bucket) */
    uint64_t icmp_refill_us;
    uint8_t tcp_ready;                  /* rusty_tcp_init succeeded: rusty_tcp_destroy runs at free */
    uint32_t limits_reported;           /* RUSTY_LIMIT_* bits already reported with a RUSTY_EV_LIMIT event */
    /* Datagrams to our own addresses (ipv4.c), delivered by the next poll as
     * if received: the stack's own "lo". */
    struct rusty_buf *local_head, *local_tail;
    uint32_t local_len;
    /* Where TSO frames of send-ring bytes are gathered (buf.h), made at the first one. */
    struct rusty_big_pool *big;
};

/* ---- stack.c: sockets, events, randomness */
int rusty_sock_alloc(struct rusty_stack *s, uint8_t kind, void *impl, uint32_t *handle);
void *rusty_sock_get(struct rusty_stack *s, uint32_t handle, uint8_t kind);   /* NULL if stale/wrong kind */
void rusty_sock_release(struct rusty_stack *s, uint32_t handle);
void rusty_event_push(struct rusty_stack *s, uint32_t sock, uint16_t type, int32_t arg, uint32_t arg2);
void rusty_event_push_flags(struct rusty_stack *s, uint32_t sock, uint16_t type, uint16_t flags, int32_t arg,
                            uint32_t arg2);
/* A limit (RUSTY_LIMIT_*) refused work: one RUSTY_EV_LIMIT event the first time, for the loop's warning. */
void rusty_limit_report(struct rusty_stack *s, int limit);
uint64_t rusty_random(struct rusty_stack *s);

/* ---- iface.c: an interface's addresses */
/* The interface owning `ip`, as its first or a secondary address (NULL if none). */
struct rusty_iface *rusty_iface_by_ip(struct rusty_stack *s, uint32_t ip);
/* Is `ip` one of ifc's addresses? */
int rusty_iface_has_ip(const struct rusty_iface *ifc, uint32_t ip);

/* ---- eth (stack.c) */
void rusty_eth_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b, uint64_t now_us);
/* Push the Ethernet header and queue the frame on the interface. */
int rusty_eth_output(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                     const uint8_t dst[6], uint16_t ethertype);
/* Hand queued frames to the devices (end of poll, or when a queue fills). */
void rusty_stack_flush(struct rusty_stack *s, uint64_t now_us);
/* A device refused frames and its queue is more than half full: TCP holds new
 * segments back (in its send ring) until the next poll. A queue more than half
 * full is flushed first, so a device with room is never taken for blocked. */
int rusty_stack_tx_blocked(struct rusty_stack *s);

/* ---- arp.c */
int rusty_arp_init(struct rusty_stack *s);
void rusty_arp_destroy(struct rusty_stack *s);
void rusty_arp_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b, uint64_t now_us);
/* Send an IPv4 packet to next_hop: now if resolved, else hold it (bounded) and ask. */
int rusty_arp_output(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                     uint32_t next_hop, uint64_t now_us);
/* A gratuitous ARP for ip, one of ifc's addresses. */
void rusty_arp_announce(struct rusty_stack *s, struct rusty_iface *ifc, uint32_t ip, uint64_t now_us);
/* Learn from a received IPv4 frame's source (gleaning; only refreshes known entries). */
void rusty_arp_glean(struct rusty_stack *s, struct rusty_iface *ifc, uint32_t ip, const uint8_t mac[6], uint64_t now_us);

/* ---- ipv4.c */
void rusty_ipv4_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b, uint64_t now_us);
/* Route to dst: the interface and next hop (dst itself or the gateway); NULL if unreachable. */
struct rusty_iface *rusty_ipv4_route(struct rusty_stack *s, uint32_t dst, uint32_t *next_hop);
/* A tx buffer for a packet to dst with headroom for IPv4 + Ethernet + device headers;
 * sets *ifc. NULL when unroutable (-EHOSTUNREACH) or the pool is empty (-ENOBUFS), see *err. */
struct rusty_buf *rusty_ipv4_alloc(struct rusty_stack *s, uint32_t dst, struct rusty_iface **ifc, int *err);
/* Prepend the IPv4 header to an L4 message in b and send it (to one of our own
 * addresses: queued for local delivery at the next poll). */
int rusty_ipv4_output(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                      uint32_t src, uint32_t dst, uint8_t proto, uint64_t now_us);

/* Deliver locally queued datagrams (rusty_stack_poll); returns how many. */
int rusty_ipv4_local_deliver(struct rusty_stack *s, uint64_t now_us);
void rusty_ipv4_local_flush(struct rusty_stack *s);

/* ---- icmp.c */
void rusty_icmp_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                      const struct rusty_ipv4_repr *ip, uint64_t now_us);
/* Send destination-unreachable quoting the offending datagram (b still at its IPv4 header). */
void rusty_icmp_send_unreachable(struct rusty_stack *s, struct rusty_iface *ifc, const struct rusty_buf *b,
                                 const struct rusty_ipv4_repr *ip, uint8_t code, uint64_t now_us);

/* A datagram of ours (b at its IPv4 header) could not be sent: its next hop
 * did not answer ARP. Its transport hears -EHOSTUNREACH, as from an ICMP host
 * unreachable (a connect in SYN-SENT fails; a UDP socket gets an error event). */
void rusty_icmp_link_failure(struct rusty_stack *s, const struct rusty_buf *b);

/* ---- udp.c */
int rusty_udp_init(struct rusty_stack *s);
void rusty_udp_destroy(struct rusty_stack *s);
void rusty_udp_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                     const struct rusty_ipv4_repr *ip, uint64_t now_us);
/* An ICMP error quoting one of our datagrams (inner = quoted IPv4 header, l4 = quoted bytes);
 * soft: a transient error (RUSTY_EV_F_SOFT). */
void rusty_udp_icmp_error(struct rusty_stack *s, const struct rusty_ipv4_repr *inner, const uint8_t *l4,
                          size_t l4_len, int err, int soft);

/* ---- tcp.c */
int rusty_tcp_init(struct rusty_stack *s);
void rusty_tcp_destroy(struct rusty_stack *s);
void rusty_tcp_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                     const struct rusty_ipv4_repr *ip, uint64_t now_us);
void rusty_tcp_icmp_error(struct rusty_stack *s, const struct rusty_ipv4_repr *inner, const uint8_t *l4,
                          size_t l4_len, int err);
/* Once per poll after input and timers: send what became sendable, emit events. */
void rusty_tcp_poll_end(struct rusty_stack *s, uint64_t now_us);
/* Earliest deadline TCP has outside the timer heap (-1 none; now_us if output is pending). */
int64_t rusty_tcp_next_deadline(struct rusty_stack *s, uint64_t now_us);

#endif
