/*
 * arp.c - ARP for IPv4 over Ethernet (RFC 826, RFC 1122 2.3.2, RFC 5227).
 *
 * Owns: the neighbour cache (a fixed array of cfg.arp_cache entries, hashed
 * on the IPv4 address, allocated once in rusty_arp_init), the per-entry hold
 * queue of packets waiting for resolution, requests and their retries,
 * replies to requests for our addresses (each interface's first and
 * secondary ones, iface.c), gratuitous announcements. Not: the
 * IPv4 header (ipv4.c) or the Ethernet header (rusty_eth_output).
 *
 * Call chain: rusty_eth_input -> rusty_arp_input -> (reply) rusty_eth_output
 *             rusty_ipv4_output -> rusty_arp_output -> rusty_eth_output | hold + request
 *             rusty_timers_run -> entry_timer (retry, expire, give up -> rusty_icmp_link_failure)
 *
 * Entry states (the neighbour states of RFC 4861 7.3.2, reduced to what ARP needs):
 *   INCOMPLETE  a request is outstanding; packets are held in a list linked
 *               through the buffers themselves (at most HOLD_MAX, like Linux's
 *               unres_qlen; RFC 1122 2.3.2.2 asks for at least one; past the
 *               bound the oldest is dropped).
 *               Requests go out every RETRY_US; after MAX_REQUESTS unanswered the
 *               entry is freed and the held packets are reported unreachable to
 *               their senders and dropped (resolution_failed).
 *   REACHABLE   confirmed within cfg.arp_timeout_us; used as is.
 *   STALE       the timeout passed; still used (RFC 1122 2.3.2.1 prefers not to
 *               flush a working entry), and the first use sends a unicast request
 *               to revalidate it. Unconfirmed after MAX_REQUESTS probes, or unused
 *               for another arp_timeout_us, the entry is freed.
 * Every entry embeds one timer (timer.h), so arming allocates nothing.
 *
 * A device that knows the one other station on its link (dev->peer_mac: a
 * multi-queue tap, whose only peer is the kernel's netdev) gets no requests:
 * a next hop with no entry goes straight to that MAC. Deviation from RFC 826,
 * which resolves every address by broadcast: ARP replies on such a tap reach
 * queue 0 only (tap_steer.c), so workers 1..N-1 would never hear theirs. It
 * amounts to a permanent entry for every next hop, which RFC 1122 2.3.2.1's
 * flushing of out-of-date entries does not touch: the mapping lasts as long as
 * the device. Entries learned from ARP input (worker 0) still win. Limit: a
 * tap bridged with other hosts has more than one station, and a host that did
 * not ARP us first is then sent to the kernel's netdev instead: open such a
 * tap with one queue (no peer_mac, plain ARP).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"

#define HOLD_MAX 256                   /* a burst of new connections to one neighbour (Linux unres_qlen_bytes: ~200 KB) */
#define MAX_REQUESTS 3
#define RETRY_US 1000000u

enum { ARP_FREE = 0, ARP_INCOMPLETE, ARP_REACHABLE, ARP_STALE };

struct arp_entry {
    struct rusty_timer timer;           /* first: the timer callback finds its entry */
    uint32_t ip;
    int32_t next;                       /* hash chain or free list, -1 ends */
    uint8_t mac[6];
    uint8_t state;
    uint8_t requests;                   /* requests sent in this INCOMPLETE/probe round */
    uint8_t probing;                    /* STALE entry being revalidated */
    uint8_t ifindex;
    uint16_t nhold;
    uint64_t last_used_us;
    struct rusty_buf *hold_head, *hold_tail;    /* oldest first, linked by buf->next */
};

struct rusty_arp_table {
    struct arp_entry *entries;
    int32_t *buckets;
    uint32_t n_entries, n_buckets, used;
    int32_t free_head;
};

static const uint8_t broadcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t zero_mac[6] = {0};

static uint32_t bucket_of(const struct rusty_arp_table *t, uint32_t ip)
{
    return ((ip * 2654435761u) >> 7) & (t->n_buckets - 1);
}

int rusty_arp_init(struct rusty_stack *s)
{
    struct rusty_arp_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->n_entries = s->cfg.arp_cache;
    t->n_buckets = 16;
    while (t->n_buckets < t->n_entries * 2)
        t->n_buckets <<= 1;
    t->entries = calloc(t->n_entries, sizeof(*t->entries));
    t->buckets = malloc(t->n_buckets * sizeof(*t->buckets));
    if (!t->entries || !t->buckets) {
        free(t->entries);
        free(t->buckets);
        free(t);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < t->n_buckets; i++)
        t->buckets[i] = -1;
    for (uint32_t i = 0; i < t->n_entries; i++)
        t->entries[i].next = i + 1 < t->n_entries ? (int32_t)(i + 1) : -1;
    t->free_head = 0;
    s->arp = t;
    return 0;
}

static struct rusty_buf *hold_pop(struct arp_entry *e)
{
    struct rusty_buf *b = e->hold_head;
    if (b) {
        e->hold_head = b->next;
        if (!e->hold_head)
            e->hold_tail = NULL;
        b->next = NULL;
        e->nhold--;
    }
    return b;
}

static void hold_push(struct arp_entry *e, struct rusty_buf *b)
{
    b->next = NULL;
    if (e->hold_tail)
        e->hold_tail->next = b;
    else
        e->hold_head = b;
    e->hold_tail = b;
    e->nhold++;
}

static void drop_held(struct rusty_stack *s, struct arp_entry *e)
{
    struct rusty_buf *b;
    while ((b = hold_pop(e)) != NULL) {
        rusty_buf_free(b);
        s->stats.arp_unresolved_drops++;
    }
}

void rusty_arp_destroy(struct rusty_stack *s)
{
    struct rusty_arp_table *t = s->arp;
    for (uint32_t i = 0; i < t->n_entries; i++) {
        struct arp_entry *e = &t->entries[i];
        struct rusty_buf *b;
        while ((b = hold_pop(e)) != NULL)
            rusty_buf_free(b);
        rusty_timer_cancel(&s->timers, &e->timer);
    }
    free(t->entries);
    free(t->buckets);
    free(t);
    s->arp = NULL;
}

static struct arp_entry *lookup(struct rusty_arp_table *t, uint32_t ip)
{
    for (int32_t i = t->buckets[bucket_of(t, ip)]; i >= 0; i = t->entries[i].next)
        if (t->entries[i].ip == ip)
            return &t->entries[i];
    return NULL;
}

static void entry_free(struct rusty_stack *s, struct arp_entry *e)
{
    struct rusty_arp_table *t = s->arp;
    int32_t idx = (int32_t)(e - t->entries);
    int32_t *p = &t->buckets[bucket_of(t, e->ip)];
    while (*p >= 0 && *p != idx)
        p = &t->entries[*p].next;
    if (*p == idx)
        *p = e->next;
    drop_held(s, e);
    rusty_timer_cancel(&s->timers, &e->timer);
    e->state = ARP_FREE;
    e->next = t->free_head;
    t->free_head = idx;
    t->used--;
    s->stats.arp_entries = t->used;
}

static void entry_timer(struct rusty_stack *s, struct rusty_timer *timer, uint64_t now_us);

/* A new entry; when the table is full the least recently used resolved entry
 * is evicted (entries still resolving are never evicted: their held packets
 * would be lost for another destination's sake). */
static struct arp_entry *entry_new(struct rusty_stack *s, struct rusty_iface *ifc, uint32_t ip)
{
    struct rusty_arp_table *t = s->arp;
    if (t->free_head < 0) {
        struct arp_entry *victim = NULL;
        for (uint32_t i = 0; i < t->n_entries; i++) {
            struct arp_entry *e = &t->entries[i];
            if (e->state != ARP_INCOMPLETE && (!victim || e->last_used_us < victim->last_used_us))
                victim = e;
        }
        if (!victim)
            return NULL;
        entry_free(s, victim);
    }
    int32_t idx = t->free_head;
    struct arp_entry *e = &t->entries[idx];
    t->free_head = e->next;
    memset(e, 0, sizeof(*e));
    rusty_timer_init(&e->timer, entry_timer);
    e->ip = ip;
    e->ifindex = ifc->index;
    uint32_t bkt = bucket_of(t, ip);
    e->next = t->buckets[bkt];
    t->buckets[bkt] = idx;
    t->used++;
    s->stats.arp_entries = t->used;
    return e;
}

static int send_arp(struct rusty_stack *s, struct rusty_iface *ifc, uint16_t op, const uint8_t eth_dst[6],
                    const uint8_t tha[6], uint32_t spa, uint32_t tpa)
{
    struct rusty_buf *b = rusty_pool_get(ifc->dev->pool);
    if (!b) {
        s->stats.tx_no_buffer++;
        return -ENOBUFS;
    }
    uint8_t *p = rusty_buf_put(b, RUSTY_ARP_LEN);
    struct rusty_arp_repr r;
    r.op = op;
    memcpy(r.sha, ifc->mac, 6);
    memcpy(r.tha, tha, 6);
    r.spa = spa;
    r.tpa = tpa;
    rusty_arp_emit(&r, p);
    if (op == RUSTY_ARP_REQUEST)
        s->stats.arp_tx_requests++;
    else
        s->stats.arp_tx_replies++;
    return rusty_eth_output(s, ifc, b, eth_dst, RUSTY_ETH_P_ARP);
}

static void send_request(struct rusty_stack *s, struct arp_entry *e, int unicast)
{
    struct rusty_iface *ifc = &s->ifaces[e->ifindex];
    /* RFC 1122 2.3.2.1: revalidation may be a unicast poll of the known MAC. */
    send_arp(s, ifc, RUSTY_ARP_REQUEST, unicast ? e->mac : broadcast_mac, zero_mac, ifc->ip, e->ip);
    e->requests++;
}

static void send_held(struct rusty_stack *s, struct arp_entry *e)
{
    struct rusty_iface *ifc = &s->ifaces[e->ifindex];
    struct rusty_buf *b;
    while ((b = hold_pop(e)) != NULL)
        rusty_eth_output(s, ifc, b, e->mac, RUSTY_ETH_P_IPV4);
}

static void set_reachable(struct rusty_stack *s, struct arp_entry *e, const uint8_t mac[6], uint64_t now_us)
{
    memcpy(e->mac, mac, 6);
    e->state = ARP_REACHABLE;
    e->requests = 0;
    e->probing = 0;
    e->last_used_us = now_us;
    rusty_timer_arm(&s->timers, &e->timer, now_us + s->cfg.arp_timeout_us);
    if (e->nhold)
        send_held(s, e);
}

/* MAX_REQUESTS went unanswered: each held packet is reported to its sender as
 * unreachable, then dropped (arp_unresolved_drops). RFC 4861 7.2.2 asks this of
 * IPv6 neighbour discovery (ICMP address unreachable for every queued packet);
 * Linux does the same for ARP (neigh_invalidate -> arp_error_report), so a
 * connect to a silent on-link host fails with EHOSTUNREACH after about 3 s
 * rather than timing out its SYNs after two minutes. The entry is freed first:
 * a transport told of the failure may send again, and must start afresh. */
static void resolution_failed(struct rusty_stack *s, struct arp_entry *e)
{
    struct rusty_buf *held = e->hold_head;
    e->hold_head = e->hold_tail = NULL;
    e->nhold = 0;
    entry_free(s, e);
    while (held) {
        struct rusty_buf *next = held->next;
        held->next = NULL;
        rusty_icmp_link_failure(s, held);
        rusty_buf_free(held);
        s->stats.arp_unresolved_drops++;
        held = next;
    }
}

static void entry_timer(struct rusty_stack *s, struct rusty_timer *timer, uint64_t now_us)
{
    struct arp_entry *e = (struct arp_entry *)timer;
    switch (e->state) {
    case ARP_INCOMPLETE:
        if (e->requests >= MAX_REQUESTS) {
            resolution_failed(s, e);
            return;
        }
        send_request(s, e, 0);
        rusty_timer_arm(&s->timers, &e->timer, now_us + RETRY_US);
        break;
    case ARP_REACHABLE:
        e->state = ARP_STALE;
        e->probing = 0;
        e->requests = 0;
        rusty_timer_arm(&s->timers, &e->timer, now_us + s->cfg.arp_timeout_us);
        break;
    case ARP_STALE:
        if (e->probing && e->requests < MAX_REQUESTS) {
            send_request(s, e, 1);
            rusty_timer_arm(&s->timers, &e->timer, now_us + RETRY_US);
        } else {
            entry_free(s, e);
        }
        break;
    default:
        break;
    }
}

void rusty_arp_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b, uint64_t now_us)
{
    struct rusty_arp_repr r;
    s->stats.arp_rx++;
    int err = rusty_arp_parse(rusty_buf_data(b), b->len, &r);
    rusty_buf_free(b);
    if (err) {
        s->stats.arp_malformed++;
        return;
    }
    if (memcmp(r.sha, ifc->mac, 6) == 0)
        return;                         /* our own frame echoed back (loopback, a hub) */
    /* Never learn broadcast/multicast/zero hardware addresses. */
    if ((r.sha[0] & 1) || memcmp(r.sha, zero_mac, 6) == 0) {
        s->stats.arp_malformed++;
        return;
    }
    /* RFC 826 "Packet Reception": merge the sender into an existing entry first.
     * spa 0 is an RFC 5227 probe: nothing to learn. */
    int merged = 0;
    int spa_ours = rusty_iface_has_ip(ifc, r.spa);
    if (r.spa != 0 && !spa_ours) {
        struct arp_entry *e = lookup(s->arp, r.spa);
        if (e && e->ifindex == ifc->index) {
            set_reachable(s, e, r.sha, now_us);
            merged = 1;
        }
    }
    /* "Am I the target protocol address?" - any of the interface's addresses
     * (iface.c) - then add the sender if it was not merged. */
    if (!rusty_iface_has_ip(ifc, r.tpa))
        return;
    if (!merged && r.spa != 0 && !spa_ours && (r.spa & ifc->netmask) == (ifc->ip & ifc->netmask)) {
        struct arp_entry *e = entry_new(s, ifc, r.spa);
        if (e)
            set_reachable(s, e, r.sha, now_us);
    }
    if (r.op == RUSTY_ARP_REQUEST)
        send_arp(s, ifc, RUSTY_ARP_REPLY, r.sha, r.sha, r.tpa, r.spa);    /* from the address asked for */
}

int rusty_arp_output(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b, uint32_t next_hop,
                     uint64_t now_us)
{
    if (next_hop == 0xffffffffu ||
        (ifc->prefix_len > 0 && ifc->prefix_len < 31 && next_hop == (ifc->ip | ~ifc->netmask)))
        return rusty_eth_output(s, ifc, b, broadcast_mac, RUSTY_ETH_P_IPV4);
    struct arp_entry *e = lookup(s->arp, next_hop);
    if (e && e->ifindex != ifc->index) {
        entry_free(s, e);               /* the route moved to another interface */
        e = NULL;
    }
    if (e && e->state != ARP_INCOMPLETE) {
        e->last_used_us = now_us;
        if (e->state == ARP_STALE && !e->probing) {
            e->probing = 1;
            e->requests = 0;
            send_request(s, e, 1);
            rusty_timer_arm(&s->timers, &e->timer, now_us + RETRY_US);
        }
        return rusty_eth_output(s, ifc, b, e->mac, RUSTY_ETH_P_IPV4);
    }
    if (!e && ifc->dev->has_peer_mac)
        return rusty_eth_output(s, ifc, b, ifc->dev->peer_mac, RUSTY_ETH_P_IPV4);
    if (!e) {
        e = entry_new(s, ifc, next_hop);
        if (!e) {
            s->stats.arp_unresolved_drops++;
            rusty_buf_free(b);
            return -ENOBUFS;
        }
        e->state = ARP_INCOMPLETE;
        e->last_used_us = now_us;
        send_request(s, e, 0);
        if (rusty_timer_arm(&s->timers, &e->timer, now_us + RETRY_US) != 0) {
            entry_free(s, e);
            s->stats.arp_unresolved_drops++;
            rusty_buf_free(b);
            return -ENOBUFS;
        }
    }
    if (e->nhold == HOLD_MAX) {
        rusty_buf_free(hold_pop(e));    /* the oldest goes: newer data is more useful */
        s->stats.arp_unresolved_drops++;
    }
    hold_push(e, b);
    return 0;
}

void rusty_arp_announce(struct rusty_stack *s, struct rusty_iface *ifc, uint32_t ip, uint64_t now_us)
{
    (void)now_us;
    /* RFC 5227 2.3: an ARP Announcement is a request with sender and target both
     * our address. RFC 5227 sends two, 2 s apart; one is enough on the links we
     * start on (the second only covers a lost first). */
    send_arp(s, ifc, RUSTY_ARP_REQUEST, broadcast_mac, zero_mac, ip, ip);
}

void rusty_arp_glean(struct rusty_stack *s, struct rusty_iface *ifc, uint32_t ip, const uint8_t mac[6],
                     uint64_t now_us)
{
    /* Only refresh entries whose MAC matches: a source address seen in an IP frame
     * may be off-link (the MAC is then the router's), so it never creates or
     * rewrites a mapping (RFC 1122 2.3.2.1 allows gleaning, not spoofing). */
    struct arp_entry *e = lookup(s->arp, ip);
    if (!e || e->ifindex != ifc->index || e->state == ARP_INCOMPLETE || memcmp(e->mac, mac, 6) != 0)
        return;
    /* Re-arming on every frame would cost a heap sift per packet: only when a
     * quarter of the reachable time has passed since the last confirmation. */
    if (e->state == ARP_STALE || e->timer.expires_us < now_us + (uint64_t)s->cfg.arp_timeout_us * 3 / 4) {
        e->requests = 0;
        e->probing = 0;
        e->state = ARP_REACHABLE;
        rusty_timer_arm(&s->timers, &e->timer, now_us + s->cfg.arp_timeout_us);
    }
}
