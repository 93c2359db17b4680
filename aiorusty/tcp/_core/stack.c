/*
 * stack.c - the stack object: creation, interfaces, the poll loop, sockets,
 * events, randomness, and the Ethernet layer.
 *
 * Owns: the socket handle table, the event ring, the per-interface tx
 * queues, Ethernet II input/output. Not: what ARP, IP, UDP and TCP do with
 * frames (arp.c, ipv4.c, icmp.c, udp.c, tcp*.c), an interface's
 * secondary addresses (iface.c).
 *
 * Tables follow use: the socket table and the event ring start small and
 * double when full, up to cfg.max_sockets and cfg.event_queue (TCP's control
 * blocks and hash grow the same way, tcp.c), so an idle stack is small and a
 * busy one is limited by memory rather than by a size fixed at start-up.
 * They grow O(log n) times and are never shrunk.
 *
 * Call chain: rusty_stack_poll -> rusty_dev_rx -> rusty_eth_input -> {arp, ipv4}_input
 *             -> rusty_timers_run -> rusty_tcp_poll_end -> rusty_stack_flush -> rusty_dev_tx
 *
 * Transmit: frames queue on their interface (rusty_eth_output) and go to the
 * device in bursts at the end of the poll, or earlier when the queue fills.
 * Frames the device does not take (its ring is full) stay queued, in order,
 * for the next flush, and TCP holds new segments back in its send ring while
 * a device is blocked (rusty_stack_tx_blocked), as Linux's qdisc and TCP
 * small queues do. Dropping them instead cost TCP a retransmission each and,
 * when a whole window went, an RTO: 16 bulk connections over shm lost ~4k
 * segments and stalled 20-40 times per 3 s run. Only a frame that finds the
 * queue still full after a flush is freed, counted in tx_device_full. A loop
 * whose device stays full polls again after as long as the device has taken
 * nothing, between TX_RETRY_US and TX_RETRY_MAX_US: a slow peer is retried
 * within 50 us, a stopped one (a SIGSTOPped shm process) every 10 ms rather
 * than 20,000 times a second.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stack.h"

#define TX_RETRY_US 50u                 /* a blocked device is tried again after at least */
#define TX_RETRY_MAX_US 10000u          /* ... and at most this */
#define DEFAULT_MAX_TCP 1000000u
#define DEFAULT_EVENTS (1u << 20)       /* about one per connection at the default limit */
#define FIRST_SOCKETS 64u               /* socket slots at start */
#define FIRST_EVENTS 1024u              /* event ring at start: one Python poll's worth */
#define DEFAULT_ARP_CACHE 256u
#define DEFAULT_ARP_TIMEOUT_US 60000000u
#define DEFAULT_UDP_RXQ 256u
#define DEFAULT_TCP_RCVBUF (64u << 10)       /* the window Linux offers a new connection */
#define DEFAULT_TCP_SNDBUF_MAX (4u << 20)    /* Linux tcp_wmem[2] */
#define DEFAULT_TCP_RCVBUF_MAX (6u << 20)    /* Linux tcp_rmem[2] */
#define MIN_TCP_MEM (16ull << 20)
#define DEFAULT_MSL_US 30000000u
#define DEFAULT_MAX_TIME_WAIT 262144u
#define DEFAULT_EPH_LO 49152u
#define DEFAULT_EPH_HI 65535u
#define DEFAULT_RX_BURST 32u
/* Frames per queue per poll. One burst per poll made a busy receiver hand
   Python a read event per connection for every few segments; draining up to
   this budget (NAPI's weight idea) gives each event more bytes, and the poll
   still ends so timers, output and the loop's other callbacks run. */
#define DEFAULT_RX_BUDGET 256u
#define MAX_SOCKETS (1u << RUSTY_SOCK_SLOT_BITS)
#define SOCK_GEN_MASK ((1u << (32 - RUSTY_SOCK_SLOT_BITS)) - 1)

static const uint8_t eth_broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* Like Linux's tcp_mem, a fraction of the machine's memory (1/8: 3 GiB of 24). Read
   once at start-up; it is configuration, not a clock. */
static uint64_t default_tcp_mem(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t ram = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : (1ull << 30);
    uint64_t mem = ram / 8;
    return mem < MIN_TCP_MEM ? MIN_TCP_MEM : mem;
}

static void apply_defaults(struct rusty_stack_config *c)
{
    /* Handles have 20 bits of slot: every one of them by default. */
    if (!c->max_sockets || c->max_sockets > MAX_SOCKETS - 1)
        c->max_sockets = MAX_SOCKETS - 1;
    if (!c->max_tcp_conns)
        c->max_tcp_conns = DEFAULT_MAX_TCP;
    if (!c->arp_cache)
        c->arp_cache = DEFAULT_ARP_CACHE;
    /* Timers are embedded in their owners: one per ARP entry, three per TCP
       control block, reserved as blocks are added (tcp.c); this presizes. */
    if (!c->max_timers)
        c->max_timers = c->arp_cache + 64;
    if (!c->event_queue)
        c->event_queue = DEFAULT_EVENTS;
    if (!c->arp_timeout_us)
        c->arp_timeout_us = DEFAULT_ARP_TIMEOUT_US;
    if (!c->udp_rx_queue)
        c->udp_rx_queue = DEFAULT_UDP_RXQ;
    if (!c->tcp_rcvbuf)
        c->tcp_rcvbuf = DEFAULT_TCP_RCVBUF;
    if (!c->tcp_sndbuf)
        c->tcp_sndbuf = DEFAULT_TCP_SNDBUF_MAX;
    if (!c->tcp_rcvbuf_max)
        c->tcp_rcvbuf_max = DEFAULT_TCP_RCVBUF_MAX;
    if (c->tcp_rcvbuf_max < c->tcp_rcvbuf)
        c->tcp_rcvbuf_max = c->tcp_rcvbuf;
    if (!c->tcp_mem)
        c->tcp_mem = default_tcp_mem();
    if (!c->tcp_msl_us)
        c->tcp_msl_us = DEFAULT_MSL_US;
    if (!c->tcp_max_time_wait)
        c->tcp_max_time_wait = DEFAULT_MAX_TIME_WAIT;
    if (!c->ephemeral_lo)
        c->ephemeral_lo = DEFAULT_EPH_LO;
    if (!c->ephemeral_hi)
        c->ephemeral_hi = DEFAULT_EPH_HI;
    if (c->ephemeral_hi < c->ephemeral_lo) {
        uint16_t t = c->ephemeral_hi;
        c->ephemeral_hi = c->ephemeral_lo;
        c->ephemeral_lo = t;
    }
    if (!c->rx_burst)
        c->rx_burst = DEFAULT_RX_BURST;
    if (c->rx_burst > RUSTY_BURST_MAX)
        c->rx_burst = RUSTY_BURST_MAX;
    if (!c->rx_budget)
        c->rx_budget = DEFAULT_RX_BUDGET;
}

/* splitmix64: turns any seed (0 included) into a good xorshift state. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t rusty_random(struct rusty_stack *s)
{
    /* xorshift64* (Vigna) */
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static int socks_grow(struct rusty_stack *s);

int rusty_stack_new(const struct rusty_stack_config *cfg, struct rusty_stack **out)
{
    struct rusty_stack *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    if (cfg)
        s->cfg = *cfg;
    apply_defaults(&s->cfg);
    uint64_t seed = s->cfg.seed;
    s->rng = splitmix64(&seed);
    if (!s->rng)
        s->rng = 0x853c49e6748fea9bull;
    s->next_ephemeral = (uint16_t)(s->cfg.ephemeral_lo +
                                   rusty_random(s) % ((uint32_t)s->cfg.ephemeral_hi - s->cfg.ephemeral_lo + 1));
    s->ip_ident = (uint16_t)rusty_random(s);

    int err = -ENOMEM;
    s->ev_cap = s->cfg.event_queue < FIRST_EVENTS ? s->cfg.event_queue : FIRST_EVENTS;
    s->events = calloc(s->ev_cap, sizeof(*s->events));
    if (!s->events || socks_grow(s) != 0)
        goto fail;
    if ((err = rusty_timers_init(&s->timers, s->cfg.max_timers)) != 0)
        goto fail;
    if ((err = rusty_arp_init(s)) != 0)
        goto fail;
    if ((err = rusty_udp_init(s)) != 0)
        goto fail;
    if ((err = rusty_tcp_init(s)) != 0)
        goto fail;
    s->tcp_ready = 1;
    *out = s;
    return 0;
fail:
    rusty_stack_free(s);
    return err;
}

static void txq_drop(struct rusty_iface *ifc)
{
    for (uint16_t i = 0; i < ifc->txq_len; i++)
        rusty_buf_free(ifc->txq[i]);
    ifc->txq_len = 0;
}

void rusty_stack_free(struct rusty_stack *s)
{
    if (!s)
        return;
    /* Disarm every timer first, while their owners still exist: a layer that
     * frees its blocks (timers inside) must not leave them in the heap for
     * the next layer's rusty_timer_cancel to move around. */
    for (uint32_t i = 0; i < s->timers.count; i++)
        s->timers.slots[i]->heap_index = 0;
    s->timers.count = 0;
    if (s->tcp_ready)
        rusty_tcp_destroy(s);
    rusty_ipv4_local_flush(s);
    if (s->udp)
        rusty_udp_destroy(s);
    if (s->arp)
        rusty_arp_destroy(s);
    for (uint8_t i = 0; i < s->n_ifaces; i++)
        txq_drop(&s->ifaces[i]);
    rusty_big_pool_release(s->big);     /* frames still held by a device keep it until freed */
    rusty_timers_destroy(&s->timers);
    free(s->socks);
    free(s->events);
    free(s);
}

int rusty_stack_add_iface(struct rusty_stack *s, struct rusty_dev *dev, uint32_t ip, uint8_t prefix_len,
                          uint32_t gateway, uint64_t now_us)
{
    if (!dev || prefix_len > 32 || ip == 0)
        return -EINVAL;
    if (s->n_ifaces >= RUSTY_MAX_IFACES)
        return -ENOSPC;
    for (uint8_t i = 0; i < s->n_ifaces; i++) {
        if (s->ifaces[i].dev == dev)
            return -EBUSY;
    }
    if (rusty_iface_by_ip(s, ip))
        return -EADDRINUSE;
    s->now_us = now_us;
    struct rusty_iface *ifc = &s->ifaces[s->n_ifaces];
    memset(ifc, 0, sizeof(*ifc));
    ifc->dev = dev;
    ifc->ip = ip;
    ifc->prefix_len = prefix_len;
    ifc->netmask = prefix_len ? 0xffffffffu << (32 - prefix_len) : 0;
    ifc->gateway = gateway;
    ifc->index = s->n_ifaces;
    memcpy(ifc->mac, dev->mac, 6);
    ifc->mtu = dev->mtu ? dev->mtu : 1500;
    if (ifc->mtu > RUSTY_BUF_SIZE - RUSTY_BUF_HEADROOM - RUSTY_ETH_HLEN)
        ifc->mtu = RUSTY_BUF_SIZE - RUSTY_BUF_HEADROOM - RUSTY_ETH_HLEN;
    s->n_ifaces++;
    /* RFC 5227 2.3: announce the address so neighbours update stale caches. */
    rusty_arp_announce(s, ifc, ip, now_us);
    rusty_stack_flush(s, now_us);
    return ifc->index;
}

int rusty_stack_route(struct rusty_stack *s, uint32_t ip)
{
    if (rusty_iface_by_ip(s, ip))
        return 1;
    uint32_t hop;
    return rusty_ipv4_route(s, ip, &hop) ? 2 : 0;
}

/* ---- limits */

void rusty_limit_report(struct rusty_stack *s, int limit)
{
    uint32_t bit = 1u << limit;
    if (s->limits_reported & bit)
        return;
    s->limits_reported |= bit;
    rusty_event_push(s, 0, RUSTY_EV_LIMIT, limit, 0);
}

/* ---- sockets */

/* Double the socket table (FIRST_SOCKETS at first), at most to cfg.max_sockets;
   the new slots become the free list, in slot order. A handle is a slot index,
   never a pointer, so moving the table invalidates none. -EMFILE at the limit. */
static int socks_grow(struct rusty_stack *s)
{
    uint32_t old = s->sock_cap, cap = old ? old * 2 : FIRST_SOCKETS;
    if (cap > s->cfg.max_sockets)
        cap = s->cfg.max_sockets;
    if (cap <= old) {
        rusty_limit_report(s, RUSTY_LIMIT_SOCKETS);
        return -EMFILE;
    }
    struct rusty_sock *n = realloc(s->socks, (size_t)cap * sizeof(*n));
    if (!n)
        return -ENOMEM;
    /* Slot numbers are stored +1 in next_free so 0 ends the list. */
    for (uint32_t i = old; i < cap; i++) {
        n[i].kind = RUSTY_SOCK_FREE;
        n[i].gen = 1;
        n[i].impl = NULL;
        n[i].next_free = i + 2 <= cap ? i + 2 : 0;
    }
    s->socks = n;
    s->sock_cap = cap;
    s->sock_free = old + 1;
    return 0;
}

int rusty_sock_alloc(struct rusty_stack *s, uint8_t kind, void *impl, uint32_t *handle)
{
    if (!s->sock_free) {
        int err = socks_grow(s);
        if (err)
            return err;
    }
    uint32_t slot = s->sock_free - 1;
    struct rusty_sock *k = &s->socks[slot];
    s->sock_free = k->next_free;
    k->next_free = 0;
    k->kind = kind;
    k->impl = impl;
    s->socks_used++;
    *handle = ((uint32_t)k->gen << RUSTY_SOCK_SLOT_BITS) | slot;
    return 0;
}

static struct rusty_sock *sock_lookup(struct rusty_stack *s, uint32_t handle)
{
    uint32_t slot = handle & ((1u << RUSTY_SOCK_SLOT_BITS) - 1);
    uint32_t gen = handle >> RUSTY_SOCK_SLOT_BITS;
    if (slot >= s->sock_cap)
        return NULL;
    struct rusty_sock *k = &s->socks[slot];
    if (k->kind == RUSTY_SOCK_FREE || k->gen != gen)
        return NULL;
    return k;
}

void *rusty_sock_get(struct rusty_stack *s, uint32_t handle, uint8_t kind)
{
    struct rusty_sock *k = sock_lookup(s, handle);
    return k && k->kind == kind ? k->impl : NULL;
}

void rusty_sock_release(struct rusty_stack *s, uint32_t handle)
{
    struct rusty_sock *k = sock_lookup(s, handle);
    if (!k)
        return;
    uint32_t slot = (uint32_t)(k - s->socks);
    k->kind = RUSTY_SOCK_FREE;
    k->impl = NULL;
    /* A new generation makes every copy of the old handle stale; 0 is skipped. */
    k->gen = (uint16_t)((k->gen + 1) & SOCK_GEN_MASK);
    if (!k->gen)
        k->gen = 1;
    k->next_free = s->sock_free;
    s->sock_free = slot + 1;
    s->socks_used--;
}

/* ---- events */

/* Double the event ring, at most to cfg.event_queue, keeping the pending
   events in order (the copy starts at ev_head, so the new ring is unwrapped). */
static int events_grow(struct rusty_stack *s)
{
    uint64_t want = 2ull * s->ev_cap;
    uint32_t cap = want > s->cfg.event_queue ? s->cfg.event_queue : (uint32_t)want;
    if (cap <= s->ev_cap)
        return -ENOSPC;
    struct rusty_event *n = malloc((size_t)cap * sizeof(*n));
    if (!n)
        return -ENOMEM;
    uint32_t first = s->ev_cap - s->ev_head < s->ev_count ? s->ev_cap - s->ev_head : s->ev_count;
    memcpy(n, s->events + s->ev_head, first * sizeof(*n));
    memcpy(n + first, s->events, (s->ev_count - first) * sizeof(*n));
    free(s->events);
    s->events = n;
    s->ev_cap = cap;
    s->ev_head = 0;
    return 0;
}

/* Events are never dropped while the ring can grow; past cfg.event_queue (or
   out of memory) they are, counted: the user's poll falls that far behind. */
void rusty_event_push(struct rusty_stack *s, uint32_t sock, uint16_t type, int32_t arg, uint32_t arg2)
{
    rusty_event_push_flags(s, sock, type, 0, arg, arg2);
}

void rusty_event_push_flags(struct rusty_stack *s, uint32_t sock, uint16_t type, uint16_t flags, int32_t arg,
                            uint32_t arg2)
{
    if (s->ev_count >= s->ev_cap && events_grow(s) != 0) {
        s->stats.events_dropped++;
        return;
    }
    struct rusty_event *e = &s->events[(s->ev_head + s->ev_count) % s->ev_cap];
    e->sock = sock;
    e->type = type;
    e->flags = flags;
    e->arg = arg;
    e->arg2 = arg2;
    s->ev_count++;
}

static int events_copy(struct rusty_stack *s, struct rusty_event *out, int max)
{
    int n = 0;
    while (n < max && s->ev_count) {
        out[n++] = s->events[s->ev_head];
        s->ev_head = (s->ev_head + 1) % s->ev_cap;
        s->ev_count--;
    }
    if (!s->ev_count)
        s->ev_head = 0;
    return n;
}

/* ---- Ethernet */

void rusty_eth_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b, uint64_t now_us)
{
    struct rusty_eth_repr eth;
    s->stats.eth_rx_frames++;
    s->stats.eth_rx_bytes += b->len;
    if (rusty_eth_parse(rusty_buf_data(b), b->len, &eth) != 0) {
        s->stats.eth_rx_malformed++;
        rusty_buf_free(b);
        return;
    }
    if (memcmp(eth.dst, ifc->mac, 6) != 0 && memcmp(eth.dst, eth_broadcast, 6) != 0) {
        s->stats.eth_rx_not_for_us++;  /* other unicast, or multicast we never joined */
        rusty_buf_free(b);
        return;
    }
    rusty_buf_pull(b, RUSTY_ETH_HLEN);
    b->l3_off = b->off;
    switch (eth.ethertype) {
    case RUSTY_ETH_P_ARP:
        rusty_arp_input(s, ifc, b, now_us);
        break;
    case RUSTY_ETH_P_IPV4:
        rusty_ipv4_input(s, ifc, b, now_us);
        break;
    default:
        s->stats.eth_rx_unknown_type++;
        rusty_buf_free(b);
    }
}

int rusty_eth_output(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                     const uint8_t dst[6], uint16_t ethertype)
{
    uint8_t *h = rusty_buf_push(b, RUSTY_ETH_HLEN);
    if (!h) {
        s->stats.tx_no_buffer++;
        rusty_buf_free(b);
        return -ENOBUFS;
    }
    if (b->flags & RUSTY_BUF_CSUM_PARTIAL)
        b->csum_start = (uint16_t)(b->csum_start + RUSTY_ETH_HLEN);
    struct rusty_eth_repr eth;
    memcpy(eth.dst, dst, 6);
    memcpy(eth.src, ifc->mac, 6);
    eth.ethertype = ethertype;
    rusty_eth_emit(&eth, h);
    if (ifc->txq_len >= RUSTY_TXQ_LEN)
        rusty_stack_flush(s, s->now_us);
    if (ifc->txq_len >= RUSTY_TXQ_LEN) {
        s->stats.tx_device_full++;      /* the device took none of a full queue */
        rusty_buf_free(b);
        return -ENOBUFS;
    }
    ifc->txq[ifc->txq_len++] = b;
    return 0;
}

/* The device refused frames at the last flush and more than half the queue waits. */
static int iface_tx_blocked(const struct rusty_iface *ifc)
{
    return ifc->tx_blocked && ifc->txq_len > RUSTY_TXQ_LEN / 2;
}

int rusty_stack_tx_blocked(struct rusty_stack *s)
{
    for (uint8_t i = 0; i < s->n_ifaces; i++) {
        struct rusty_iface *ifc = &s->ifaces[i];
        if (ifc->txq_len > RUSTY_TXQ_LEN / 2 && !ifc->tx_blocked)
            rusty_stack_flush(s, s->now_us);    /* a long queue: see whether the device takes it */
        if (iface_tx_blocked(ifc))
            return 1;
    }
    return 0;
}

void rusty_stack_flush(struct rusty_stack *s, uint64_t now_us)
{
    for (uint8_t i = 0; i < s->n_ifaces; i++) {
        struct rusty_iface *ifc = &s->ifaces[i];
        uint16_t done = 0;
        while (done < ifc->txq_len) {
            int want = ifc->txq_len - done;
            if (want > RUSTY_BURST_MAX)
                want = RUSTY_BURST_MAX;
            uint64_t bytes = 0;
            for (int k = 0; k < want; k++)
                bytes += rusty_buf_frame_len(ifc->txq[done + k]);
            int sent = rusty_dev_tx(ifc->dev, 0, &ifc->txq[done], want, now_us);
            if (sent < 0)
                sent = 0;
            s->stats.eth_tx_frames += (uint64_t)sent;
            if (sent < want) {
                for (int k = sent; k < want; k++)
                    bytes -= rusty_buf_frame_len(ifc->txq[done + k]);
                s->stats.eth_tx_bytes += bytes;
                done = (uint16_t)(done + sent);
                break;                  /* the device is full: the rest waits, in order */
            }
            s->stats.eth_tx_bytes += bytes;
            done = (uint16_t)(done + want);
        }
        if (done || !ifc->tx_blocked)
            ifc->tx_blocked_since = now_us; /* the device moves (or has just filled) */
        ifc->tx_blocked = done < ifc->txq_len;
        if (ifc->tx_blocked) {
            s->stats.tx_device_busy++;
            memmove(ifc->txq, ifc->txq + done, (size_t)(ifc->txq_len - done) * sizeof(ifc->txq[0]));
        }
        ifc->txq_len = (uint16_t)(ifc->txq_len - done);
    }
}

/* ---- the poll loop */

int rusty_stack_poll(struct rusty_stack *s, uint64_t now_us, struct rusty_event *events, int max)
{
    struct rusty_buf *bufs[RUSTY_BURST_MAX];
    s->now_us = now_us;
    s->poll_seq++;
    for (uint8_t i = 0; i < s->n_ifaces; i++) {
        struct rusty_iface *ifc = &s->ifaces[i];
        uint16_t queues = ifc->dev->queues ? ifc->dev->queues : 1;
        for (uint16_t q = 0; q < queues; q++) {
            uint32_t left = s->cfg.rx_budget;
            while (left) {
                int want = left < s->cfg.rx_burst ? (int)left : s->cfg.rx_burst;
                int n = rusty_dev_rx(ifc->dev, q, bufs, want, now_us);
                for (int k = 0; k < n; k++)
                    rusty_eth_input(s, ifc, bufs[k], now_us);
                if (n < want)
                    break;              /* the queue is empty */
                left -= (uint32_t)n;
            }
        }
    }
    rusty_ipv4_local_deliver(s, now_us);
    rusty_timers_run(&s->timers, s, now_us);
    rusty_tcp_poll_end(s, now_us);
    rusty_stack_flush(s, now_us);
    if (!events || max <= 0)
        return 0;
    return events_copy(s, events, max);
}

void rusty_stack_output(struct rusty_stack *s, uint64_t now_us)
{
    s->now_us = now_us;
    rusty_tcp_poll_end(s, now_us);
    rusty_stack_flush(s, now_us);
}

static int64_t earliest(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* A full device is tried again after as long as it has taken nothing, within bounds. */
static uint64_t tx_retry_after(const struct rusty_iface *ifc, uint64_t now_us)
{
    uint64_t stuck = now_us > ifc->tx_blocked_since ? now_us - ifc->tx_blocked_since : 0;
    return stuck < TX_RETRY_US ? TX_RETRY_US : stuck > TX_RETRY_MAX_US ? TX_RETRY_MAX_US : stuck;
}

int64_t rusty_stack_next_deadline(struct rusty_stack *s, uint64_t now_us)
{
    if (s->ev_count || s->local_head)
        return (int64_t)now_us;
    int64_t retry = -1;                 /* when a full device is tried again */
    int64_t d = rusty_timers_next(&s->timers);
    int held = 0;                       /* TCP output waits for a full device */
    for (uint8_t i = 0; i < s->n_ifaces; i++) {
        const struct rusty_iface *ifc = &s->ifaces[i];
        if (ifc->txq_len) {
            if (!ifc->tx_blocked)
                return (int64_t)now_us;
            retry = earliest(retry, (int64_t)(now_us + tx_retry_after(ifc, now_us)));
            d = earliest(d, retry);     /* try again soon, do not spin */
        }
        held |= iface_tx_blocked(ifc);
        d = earliest(d, rusty_dev_next_deadline(ifc->dev, now_us));
    }
    int64_t tcp = rusty_tcp_next_deadline(s, now_us);
    if (tcp == (int64_t)now_us && held)
        tcp = retry;
    d = earliest(d, tcp);
    if (d >= 0 && (uint64_t)d < now_us)
        d = (int64_t)now_us;
    return d;
}

int64_t rusty_stack_prepare_sleep(struct rusty_stack *s, uint64_t now_us)
{
    int64_t d = rusty_stack_next_deadline(s, now_us);
    if (d == (int64_t)now_us)
        return d;                       /* work now: no sleep, nothing to arm */
    for (uint8_t i = 0; i < s->n_ifaces; i++) {
        struct rusty_dev *dev = s->ifaces[i].dev;
        uint16_t queues = dev->queues ? dev->queues : 1;
        for (uint16_t q = 0; q < queues; q++)
            if (rusty_dev_arm_wakeup(dev, q))
                return (int64_t)now_us;
    }
    return d;
}

void rusty_stack_get_config(struct rusty_stack *s, struct rusty_stack_config *out)
{
    *out = s->cfg;
}

void rusty_stack_get_stats(struct rusty_stack *s, struct rusty_stats *out)
{
    *out = s->stats;
    out->sockets = s->socks_used;
    out->timers = s->timers.count;
    uint64_t free_bufs = 0;
    for (uint8_t i = 0; i < s->n_ifaces; i++) {
        struct rusty_pool *p = s->ifaces[i].dev->pool;
        int seen = 0;
        for (uint8_t j = 0; j < i; j++)
            seen |= s->ifaces[j].dev->pool == p;
        if (!seen)
            free_bufs += p->free;
    }
    out->pool_free = free_bufs;
}
