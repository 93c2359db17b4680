/*
 * tcp.c - TCP connection lifecycle and the user calls.
 *
 * Owns: the control blocks (slabs and free list), the 4-tuple hash table,
 * TIME-WAIT accounting, listeners and their accept queues, ISNs (RFC 6528),
 * ephemeral ports, the public rusty_tcp_* calls, and the once-per-poll step
 * that sends what became sendable and emits socket events.
 * Not: segment processing (tcp_in.c), output (tcp_out.c), buffers and the
 * memory limit (tcp_buf.c), timers (tcp_timer.c), congestion control (tcp_cc.c).
 *
 * Call chains:
 *   rusty_stack_new -> rusty_tcp_init;  rusty_stack_free -> rusty_tcp_destroy
 *   user -> rusty_tcp_{listen,accept,connect,send,send_payload,recv,peek,consume,shutdown,close,abort}
 *        -> tcp_want_output -> (poll) rusty_tcp_poll_end -> tcp_output
 *   tcp_in.c / tcp_timer.c -> tcp_drop, tcp_set_state, tcp_mark_event
 *
 * Handles: a connection's socket handle outlives its TCB's protocol life. When
 * a connection with a handle ends (RST, timeout, both FINs acked) the TCB
 * stays, in CLOSED and out of the hash, until the user closes the handle, so
 * recv/send keep answering like a kernel socket (0 / -EPIPE / the error).
 * Without a handle (closed by the user, or not yet accepted) it is freed.
 *
 * Buffers: a connection's send and receive rings come and go with the bytes
 * in them, within cfg.tcp_mem (tcp_buf.c); opening a connection allocates
 * none. The send queue (tcp_sndq.c) also holds static payload ranges, which
 * are not copied into the ring; the receive ring is also read in place
 * (rusty_tcp_peek / rusty_tcp_consume, the zero-copy receive).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "tcp.h"

#define TF_DEAD 0x80000000u             /* freed while on the output list: free at poll end */
#define HASH_MIN_BUCKETS 256u           /* the 4-tuple hash's first size (power of two) */
/* Listeners live in a fixed table: a stack listens on a handful of ports, and a
   fixed table keeps their addresses stable (connections point to theirs) with
   no growth code; past it rusty_tcp_listen fails with EMFILE. */
#define TCP_LISTENERS 1024u

static const char *const state_names[] = {
    "CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
    "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT",
};

const char *rusty_tcp_state_name(int state)
{
    if (state < 0 || state > TCP_TIME_WAIT)
        return "?";
    return state_names[state];
}

/* ---------------------------------------------------------------- hashing */

/* SipHash-2-4 over 32-bit words (RFC 6528 3 asks for a keyed cryptographic hash F). */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                  \
    do {                                                                          \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                 \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                    \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                    \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                 \
    } while (0)

uint64_t tcp_siphash(const uint64_t key[2], const uint32_t *words, int n)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ key[0], v1 = 0x646f72616e646f6dull ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ key[0], v3 = 0x7465646279746573ull ^ key[1];
    int i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t m = ((uint64_t)words[i + 1] << 32) | words[i];
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)(n * 4) << 56;
    if (i < n)
        last |= words[i];
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint32_t tuple_hash(struct rusty_tcp_state *ts, uint32_t lip, uint16_t lport, uint32_t rip, uint16_t rport)
{
    uint32_t w[3] = {lip, rip, ((uint32_t)lport << 16) | rport};
    return (uint32_t)tcp_siphash(ts->secret, w, 3);
}

/* RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 us clock. */
uint32_t tcp_isn(struct rusty_stack *s, uint32_t lip, uint16_t lport, uint32_t rip, uint16_t rport, uint64_t now)
{
    uint32_t w[4] = {lip, rip, ((uint32_t)lport << 16) | rport, 0x49534e};
    return (uint32_t)(now / 4) + (uint32_t)tcp_siphash(s->tcp->secret, w, 4);
}

/* ------------------------------------------------------------------- init */

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 16;
    while (p < n && p < (1u << 30))
        p <<= 1;
    return p;
}

/* Timer slots the heap must hold: three per carved or carvable TCB, one per ARP entry. */
static uint64_t timers_needed(const struct rusty_stack *s, uint64_t tcbs)
{
    return 3 * tcbs + s->cfg.arp_cache;
}

int rusty_tcp_init(struct rusty_stack *s)
{
    struct rusty_tcp_state *ts = calloc(1, sizeof(*ts));
    if (!ts)
        return -ENOMEM;
    struct rusty_stack_config *c = &s->cfg;   /* defaults already applied by rusty_stack_new */
    /* Every timer is embedded in its owner and sits in the heap at most once,
       so a heap with a slot for each can never be full; a smaller one would let
       an arm fail and a connection silently lose its retransmission timer.
       The ARP entries' slots are reserved here, each slab's when it is added. */
    if (timers_needed(s, c->max_tcp_conns) > UINT32_MAX) {
        free(ts);
        return -EINVAL;
    }
    if (rusty_timers_reserve(&s->timers, (uint32_t)timers_needed(s, 0)) != 0) {
        free(ts);
        return -ENOMEM;
    }
    /* The slab table itself is small (a pointer per 1024 blocks) and made whole now. */
    ts->slabs = calloc((c->max_tcp_conns + TCP_TCB_SLAB - 1) / TCP_TCB_SLAB, sizeof(*ts->slabs));
    ts->hash_mask = HASH_MIN_BUCKETS - 1;
    ts->hash = calloc(ts->hash_mask + 1, sizeof(*ts->hash));
    ts->n_listeners = TCP_LISTENERS;
    ts->listeners = calloc(ts->n_listeners, sizeof(*ts->listeners));
    ts->lhash_mask = pow2_at_least(ts->n_listeners) - 1;
    ts->lhash = calloc(ts->lhash_mask + 1, sizeof(*ts->lhash));
    if (!ts->slabs || !ts->hash || !ts->listeners || !ts->lhash) {
        free(ts->slabs);
        free(ts->hash);
        free(ts->listeners);
        free(ts->lhash);
        free(ts);
        return -ENOMEM;
    }
    s->tcp = ts;
    ts->secret[0] = rusty_random(s);
    ts->secret[1] = rusty_random(s);
    ts->cookie_secret[0] = rusty_random(s);
    ts->cookie_secret[1] = rusty_random(s);
    ts->cc = &tcp_newreno;
    tcp_buf_init(s);
    uint32_t span = (uint32_t)c->ephemeral_hi - c->ephemeral_lo + 1;
    ts->next_port = (uint16_t)(c->ephemeral_lo + rusty_random(s) % span);
    return 0;
}

/* The i-th carved control block (i < n_tcbs), for walks over all of them. */
static struct rusty_tcb *tcb_at(struct rusty_tcp_state *ts, uint32_t i)
{
    return &ts->slabs[i / TCP_TCB_SLAB][i % TCP_TCB_SLAB];
}

void rusty_tcp_destroy(struct rusty_stack *s)
{
    struct rusty_tcp_state *ts = s->tcp;
    if (!ts)
        return;
    for (uint32_t i = 0; i < ts->n_tcbs; i++) {
        struct rusty_tcb *t = tcb_at(ts, i);
        tcp_timers_stop(s, t);          /* the heap outlives us: leave no pointer into it */
        tcp_sndq_clear(s, t);           /* payload references */
        tcp_buf_release_all(s, t);
    }
    tcp_buf_destroy(s);
    for (uint32_t i = 0; i < ts->n_slabs; i++)
        free(ts->slabs[i]);
    free(ts->slabs);
    free(ts->hash);
    free(ts->listeners);
    free(ts->lhash);
    free(ts);
    s->tcp = NULL;
}

/* ------------------------------------------------------------------- TCBs */

/* TIME-WAIT blocks in entry order; all wait 2*MSL, so the head ends first. */
static void tw_link(struct rusty_tcp_state *ts, struct rusty_tcb *t)
{
    if (t->on_twlist)
        return;
    ts->tw_count++;
    t->on_twlist = 1;
    t->tw_next = NULL;
    t->tw_prev = ts->tw_tail;
    if (ts->tw_tail)
        ts->tw_tail->tw_next = t;
    else
        ts->tw_head = t;
    ts->tw_tail = t;
}

static void tw_unlink(struct rusty_tcp_state *ts, struct rusty_tcb *t)
{
    if (!t->on_twlist)
        return;
    ts->tw_count--;
    t->on_twlist = 0;
    if (t->tw_prev)
        t->tw_prev->tw_next = t->tw_next;
    else
        ts->tw_head = t->tw_next;
    if (t->tw_next)
        t->tw_next->tw_prev = t->tw_prev;
    else
        ts->tw_tail = t->tw_prev;
    t->tw_prev = t->tw_next = NULL;
}

/* End the oldest TIME-WAIT block early (tcp_time_wait_recycled): freed unless
   the user still holds its handle. */
static void tw_end_oldest(struct rusty_stack *s)
{
    struct rusty_tcb *old = s->tcp->tw_head;
    tw_unlink(s->tcp, old);
    if (old->state == TCP_TIME_WAIT) {
        s->stats.tcp_time_wait_recycled++;
        tcp_drop(s, old, 0);
    }
}

/* Add a slab of control blocks (the last one may be short, to stop at
   cfg.max_tcp_conns), and first the timer-heap slots its blocks' timers need:
   when either allocation fails no slab is added. */
static int slab_add(struct rusty_stack *s)
{
    struct rusty_tcp_state *ts = s->tcp;
    uint32_t have = ts->n_slabs * TCP_TCB_SLAB;
    if (have >= s->cfg.max_tcp_conns)
        return -EMFILE;
    uint32_t n = s->cfg.max_tcp_conns - have < TCP_TCB_SLAB ? s->cfg.max_tcp_conns - have : TCP_TCB_SLAB;
    if (rusty_timers_reserve(&s->timers, (uint32_t)timers_needed(s, (uint64_t)have + n)) != 0)
        return -ENOMEM;
    /* calloc: pages of blocks not carved yet stay untouched (no memory). */
    struct rusty_tcb *slab = calloc(n, sizeof(*slab));
    if (!slab)
        return -ENOMEM;
    ts->slabs[ts->n_slabs++] = slab;
    ts->tcb_room = n;
    return 0;
}

/* A control block from the free list or carved from the newest slab, a new
   slab when both are empty; NULL when cfg.max_tcp_conns blocks are in use or
   memory ran out (then n_tcbs < cfg.max_tcp_conns: callers tell ENOMEM from
   EMFILE that way). */
static struct rusty_tcb *tcb_take(struct rusty_stack *s)
{
    struct rusty_tcp_state *ts = s->tcp;
    struct rusty_tcb *t = ts->free_tcbs;
    if (t) {
        ts->free_tcbs = t->fnext;
        return t;
    }
    if (!ts->tcb_room && slab_add(s) != 0)
        return NULL;
    ts->tcb_room--;
    return tcb_at(ts, ts->n_tcbs++);
}

/* NULL when no block can be had even by ending a TIME-WAIT one early; counted
   in tcp_conns_refused when that is because cfg.max_tcp_conns are in use. */
struct rusty_tcb *tcp_tcb_alloc(struct rusty_stack *s)
{
    struct rusty_tcp_state *ts = s->tcp;
    struct rusty_tcb *t = tcb_take(s);
    while (!t && ts->tw_head) {
        /* The table is full and some of it only waits out TIME-WAIT: end the oldest
           early rather than refuse a connection, as Linux does past
           tcp_max_tw_buckets. A server that closes first (HTTP "Connection: close")
           keeps one per request for 2*MSL, far more than the table at a few
           thousand requests a second; its reuse-on-SYN rule (RFC 6191) cannot
           help, as every client port is new. */
        tw_end_oldest(s);
        t = tcb_take(s);
    }
    if (!t) {
        if (ts->n_tcbs >= s->cfg.max_tcp_conns) {
            s->stats.tcp_conns_refused++;
            rusty_limit_report(s, RUSTY_LIMIT_TCP_CONNS);
        }
        return NULL;
    }
    memset(t, 0, sizeof(*t));
    tcp_timers_init(t);
    t->rto_us = TCP_RTO_INIT_US;
    t->mss = TCP_DEFAULT_MSS;
    t->sndbuf_max = s->cfg.tcp_sndbuf;
    t->rcvbuf = s->cfg.tcp_rcvbuf;
    t->rcvbuf_max = s->cfg.tcp_rcvbuf_max;
    t->keep_idle_us = TCP_KEEP_IDLE_US;
    t->keep_intvl_us = TCP_KEEP_INTVL_US;
    t->keep_cnt = TCP_KEEP_CNT;
    t->max_retries = TCP_DATA_RETRIES;
    s->tcp->cc->init(t);
    s->stats.tcp_conns++;
    return t;
}

static void hash_remove(struct rusty_stack *s, struct rusty_tcb *t)
{
    struct rusty_tcb **pp = &s->tcp->hash[t->hash & s->tcp->hash_mask];
    for (; *pp; pp = &(*pp)->hnext) {
        if (*pp == t) {
            *pp = t->hnext;
            t->hnext = NULL;
            s->tcp->hash_count--;
            return;
        }
    }
}

/* Double the 4-tuple hash once it holds more connections than buckets, so
   chains stay about one long. If memory is short the table stays as it is:
   lookups only get slower. */
static void hash_grow(struct rusty_tcp_state *ts)
{
    uint32_t size = ts->hash_mask + 1;
    if (ts->hash_count <= size || size >= (1u << 30))
        return;
    struct rusty_tcb **n = calloc((size_t)size * 2, sizeof(*n));
    if (!n)
        return;
    uint32_t mask = size * 2 - 1;
    for (uint32_t i = 0; i < size; i++) {
        for (struct rusty_tcb *t = ts->hash[i], *next; t; t = next) {
            next = t->hnext;
            t->hnext = n[t->hash & mask];
            n[t->hash & mask] = t;
        }
    }
    free(ts->hash);
    ts->hash = n;
    ts->hash_mask = mask;
}

void tcp_hash_insert(struct rusty_stack *s, struct rusty_tcb *t)
{
    t->hash = tuple_hash(s->tcp, t->lip, t->lport, t->rip, t->rport);
    struct rusty_tcb **head = &s->tcp->hash[t->hash & s->tcp->hash_mask];
    t->hnext = *head;
    *head = t;
    s->tcp->hash_count++;
    hash_grow(s->tcp);
}

struct rusty_tcb *tcp_lookup(struct rusty_stack *s, uint32_t lip, uint16_t lport, uint32_t rip, uint16_t rport)
{
    uint32_t h = tuple_hash(s->tcp, lip, lport, rip, rport);
    for (struct rusty_tcb *t = s->tcp->hash[h & s->tcp->hash_mask]; t; t = t->hnext)
        if (t->hash == h && t->lport == lport && t->rport == rport && t->lip == lip && t->rip == rip)
            return t;
    return NULL;
}

static uint32_t lhash(struct rusty_tcp_state *ts, uint16_t port)
{
    return (uint32_t)(port * 2654435761u) >> 16 & ts->lhash_mask;
}

/* The listener for a segment of this 4-tuple. Listeners bound to the exact
   local address win over wildcard ones (Linux's compute_score). Several at
   one address form a reuse-port group, and one member is picked by the flow's
   hash scaled to the group's size (Linux's reuseport_select_sock with
   inet_ehashfn and reciprocal_scale): every segment of a flow, a retransmitted
   SYN or the ACK completing a SYN cookie, reaches the same member while the
   group is unchanged. Two walks of the port's chain, no allocation; the hash is
   computed only for a group of more than one. */
struct rusty_tcp_listener *tcp_listener_lookup(struct rusty_stack *s, uint32_t lip, uint16_t lport, uint32_t rip,
                                               uint16_t rport)
{
    struct rusty_tcp_state *ts = s->tcp;
    struct rusty_tcp_listener *head = ts->lhash[lhash(ts, lport)], *exact = NULL, *any = NULL;
    uint32_t n_exact = 0, n_any = 0;
    for (struct rusty_tcp_listener *l = head; l; l = l->next) {
        if (l->port != lport)
            continue;
        if (l->ip == lip) {
            exact = l;
            n_exact++;
        } else if (l->ip == 0) {
            any = l;
            n_any++;
        }
    }
    uint32_t n = n_exact ? n_exact : n_any, ip = n_exact ? lip : 0;
    if (n <= 1)
        return n_exact ? exact : any;
    uint32_t pick = (uint32_t)(((uint64_t)tuple_hash(ts, lip, lport, rip, rport) * n) >> 32);
    for (struct rusty_tcp_listener *l = head; l; l = l->next)
        if (l->port == lport && l->ip == ip && pick-- == 0)
            return l;
    return NULL;                        /* not reached: pick < n members */
}

static void listener_unlink_tcb(struct rusty_tcb *t)
{
    struct rusty_tcp_listener *l = t->listener;
    if (!l)
        return;
    if (!(t->flags & TF_IN_ACCQ)) {
        if (l->syn_count)
            l->syn_count--;
    } else {
        struct rusty_tcb **pp = &l->acc_head, *prev = NULL;
        for (; *pp; prev = *pp, pp = &(*pp)->qnext) {
            if (*pp == t) {
                *pp = t->qnext;
                t->flags &= ~TF_IN_ACCQ;
                if (l->acc_tail == t)
                    l->acc_tail = prev;
                l->acc_count--;
                break;
            }
        }
    }
    t->listener = NULL;
    t->qnext = NULL;
}

static void tcb_free(struct rusty_stack *s, struct rusty_tcb *t)
{
    tw_unlink(s->tcp, t);
    if (t->on_olist) {
        t->flags |= TF_DEAD;
        return;
    }
    tcp_timers_stop(s, t);
    tcp_sndq_clear(s, t);
    tcp_buf_release_all(s, t);
    t->state = TCP_CLOSED;
    t->fnext = s->tcp->free_tcbs;
    s->tcp->free_tcbs = t;
    s->stats.tcp_conns--;
}

void tcp_drop(struct rusty_stack *s, struct rusty_tcb *t, int err)
{
    tw_unlink(s->tcp, t);
    if (t->state != TCP_CLOSED && t->state != TCP_LISTEN)
        hash_remove(s, t);
    tcp_timers_stop(s, t);
    listener_unlink_tcb(t);
    t->state = TCP_CLOSED;
    if (t->sock) {
        /* Zombie until the user closes the handle; the send ring is no longer needed. */
        if (err && !t->error)
            t->error = err;
        tcp_sndq_clear(s, t);
        tcp_rcv_recharge(s, t);         /* no window is open any more: only unread bytes are held */
        tcp_mark_event(s, t, RUSTY_EV_TCP_CLOSED);
        if (t->rlen)
            tcp_mark_event(s, t, RUSTY_EV_TCP_READABLE);
    } else {
        tcb_free(s, t);
    }
}

/* At most cfg.tcp_max_time_wait blocks wait out TIME-WAIT (Linux's
   tcp_max_tw_buckets): a server that closes first at 10,000 connections a
   second would otherwise hold 600,000 of them for 2*MSL. The oldest ends early
   (tcp_time_wait_recycled); RFC 6191 and PAWS still guard the newer ones. */
static void time_wait_trim(struct rusty_stack *s)
{
    while (s->tcp->tw_count > s->cfg.tcp_max_time_wait && s->tcp->tw_head)
        tw_end_oldest(s);
}

void tcp_set_state(struct rusty_stack *s, struct rusty_tcb *t, int state, uint64_t now)
{
    t->state = (uint8_t)state;
    tcp_rcv_recharge(s, t);             /* a state that can no longer receive holds no window */
    if (state == TCP_TIME_WAIT) {
        tcp_timers_stop(s, t);
        tcp_arm_timewait(s, t, now);
        tw_link(s->tcp, t);
        time_wait_trim(s);
    }
}

static void olist_add(struct rusty_stack *s, struct rusty_tcb *t)
{
    if (!t->on_olist) {
        t->on_olist = 1;
        t->onext = s->tcp->olist;
        s->tcp->olist = t;
    }
}

void tcp_mark_event(struct rusty_stack *s, struct rusty_tcb *t, uint16_t type)
{
    t->events |= EVBIT(type);
    olist_add(s, t);
}

void tcp_want_output(struct rusty_stack *s, struct rusty_tcb *t)
{
    t->flags |= TF_OUTPUT;
    olist_add(s, t);
}

static void listener_mark_accept(struct rusty_stack *s, struct rusty_tcp_listener *l)
{
    l->ev_accept = 1;
    if (!l->on_olist) {
        l->on_olist = 1;
        l->onext = s->tcp->llist;
        s->tcp->llist = l;
    }
}

void tcp_established(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    tcp_set_state(s, t, TCP_ESTABLISHED, now);
    /* Auto-tuning's first high mark: what an initial window of 10 segments brings
       in one RTT (as Linux), so a trickle does not grow the buffer. */
    t->rcvq_time_us = now;
    t->rcvq_space = 10u * t->mss < t->rcvbuf ? 10u * t->mss : t->rcvbuf;
    if (t->flags & TF_KEEPALIVE)
        tcp_arm_keepalive(s, t, now);
    struct rusty_tcp_listener *l = t->listener;
    if (l) {
        /* Passive open: move from the SYN queue to the accept queue. */
        if (l->syn_count)
            l->syn_count--;
        t->qnext = NULL;
        if (l->acc_tail)
            l->acc_tail->qnext = t;
        else
            l->acc_head = t;
        l->acc_tail = t;
        l->acc_count++;
        t->flags |= TF_IN_ACCQ;
        listener_mark_accept(s, l);
    } else if (t->sock) {
        tcp_mark_event(s, t, RUSTY_EV_TCP_CONNECTED);
        if (tcp_sndq_ring_space(t))
            tcp_mark_event(s, t, RUSTY_EV_TCP_WRITABLE);
    }
}

uint8_t tcp_pick_wscale(uint32_t rcvbuf)
{
    uint8_t ws = 0;
    while (ws < TCP_MAX_WSCALE && (rcvbuf >> ws) > 0xffff)
        ws++;
    return ws;
}

uint16_t tcp_mss_for(struct rusty_stack *s, uint32_t rip)
{
    uint32_t nh;
    struct rusty_iface *ifc = rusty_ipv4_route(s, rip, &nh);
    uint16_t mtu = ifc && ifc->mtu ? ifc->mtu : 1500;
    return (uint16_t)(mtu - RUSTY_IPV4_HLEN - RUSTY_TCP_HLEN);
}

/* -------------------------------------------------------------- user calls */

static struct rusty_tcb *get_tcb(struct rusty_stack *s, uint32_t sock)
{
    return rusty_sock_get(s, sock, RUSTY_SOCK_TCP);
}

/* Linux's autobind for a listener: an ephemeral port nothing listens on, so an
   automatic port never joins someone else's reuse-port group (Linux checks it
   with reuseport_ok false). 0 when every port in the range is taken. */
static uint16_t listen_autobind(struct rusty_stack *s)
{
    struct rusty_tcp_state *ts = s->tcp;
    uint32_t lo = s->cfg.ephemeral_lo, span = (uint32_t)s->cfg.ephemeral_hi - lo + 1;
    for (uint32_t i = 0; i < span; i++) {
        uint16_t p = ts->next_port;
        ts->next_port = (uint16_t)(p >= s->cfg.ephemeral_hi ? lo : (uint32_t)p + 1);
        struct rusty_tcp_listener *l = ts->lhash[lhash(ts, p)];
        while (l && l->port != p)
            l = l->next;
        if (!l)
            return p;
    }
    return 0;
}

int rusty_tcp_listen(struct rusty_stack *s, uint32_t ip, uint16_t port, uint32_t backlog, uint32_t flags,
                     uint32_t *sock)
{
    struct rusty_tcp_state *ts = s->tcp;
    if (flags & ~(uint32_t)RUSTY_TCP_LISTEN_REUSEPORT)
        return -EINVAL;
    if (ip && !rusty_iface_by_ip(s, ip))
        return -EADDRNOTAVAIL;
    uint8_t reuseport = (flags & RUSTY_TCP_LISTEN_REUSEPORT) != 0;
    if (!port && !(port = listen_autobind(s)))
        return -EADDRINUSE;
    /* Linux's inet_bind_conflict: listeners whose addresses overlap (equal, or
       either one the wildcard) conflict unless both set SO_REUSEPORT; with it
       on both, a wildcard and a specific address coexist as well (lookup then
       prefers the specific one). Linux also asks for the same user, which one
       process always is. */
    for (struct rusty_tcp_listener *l = ts->lhash[lhash(ts, port)]; l; l = l->next)
        if (l->port == port && (l->ip == ip || !l->ip || !ip) && !(reuseport && l->reuseport))
            return -EADDRINUSE;
    struct rusty_tcp_listener *l = NULL;
    for (uint32_t i = 0; i < ts->n_listeners; i++) {
        if (!ts->listeners[i].in_use && !ts->listeners[i].on_olist) {  /* not still on the event list */
            l = &ts->listeners[i];
            break;
        }
    }
    if (!l)
        return -EMFILE;
    memset(l, 0, sizeof(*l));
    l->ip = ip;
    l->port = port;
    l->backlog = backlog ? backlog : 1;
    l->sndbuf_max = s->cfg.tcp_sndbuf;
    l->rcvbuf = s->cfg.tcp_rcvbuf;
    l->rcvbuf_max = s->cfg.tcp_rcvbuf_max;
    l->keep_idle_us = TCP_KEEP_IDLE_US;
    l->keep_intvl_us = TCP_KEEP_INTVL_US;
    l->keep_cnt = TCP_KEEP_CNT;
    l->reuseport = reuseport;
    int err = rusty_sock_alloc(s, RUSTY_SOCK_TCP_LISTEN, l, &l->sock);
    if (err)
        return err;
    l->in_use = 1;
    struct rusty_tcp_listener **head = &ts->lhash[lhash(ts, port)];
    l->next = *head;
    *head = l;
    *sock = l->sock;
    return 0;
}

int rusty_tcp_accept(struct rusty_stack *s, uint32_t lsock, uint32_t *sock)
{
    struct rusty_tcp_listener *l = rusty_sock_get(s, lsock, RUSTY_SOCK_TCP_LISTEN);
    if (!l)
        return -EBADF;
    struct rusty_tcb *t = l->acc_head;
    if (!t)
        return -EAGAIN;
    int err = rusty_sock_alloc(s, RUSTY_SOCK_TCP, t, sock);
    if (err)
        return err;
    l->acc_head = t->qnext;
    if (!l->acc_head)
        l->acc_tail = NULL;
    l->acc_count--;
    t->qnext = NULL;
    t->listener = NULL;
    t->flags = (t->flags & ~TF_IN_ACCQ) | TF_ACCEPTED;
    t->sock = *sock;
    /* Whatever happened while it waited in the queue is reported now. */
    if (t->rlen || (t->flags & TF_EOF_SEEN))
        tcp_mark_event(s, t, RUSTY_EV_TCP_READABLE);
    if (t->flags & TF_EOF_SEEN && !t->rlen)
        tcp_mark_event(s, t, RUSTY_EV_TCP_EOF);
    if (tcp_sndq_ring_space(t))
        tcp_mark_event(s, t, RUSTY_EV_TCP_WRITABLE);
    if (t->state == TCP_CLOSED)
        tcp_mark_event(s, t, RUSTY_EV_TCP_CLOSED);
    return 0;
}

static int port_in_use(struct rusty_stack *s, uint32_t lip, uint16_t lport, uint32_t rip, uint16_t rport)
{
    return tcp_lookup(s, lip, lport, rip, rport) != NULL || tcp_listener_lookup(s, lip, lport, rip, rport) != NULL;
}

int rusty_tcp_connect(struct rusty_stack *s, uint32_t src_ip, uint32_t dst, uint16_t port, uint16_t src_port,
                      uint64_t now_us, uint32_t *sock)
{
    struct rusty_tcp_state *ts = s->tcp;
    if (!port || !dst)
        return -EINVAL;
    uint32_t nh;
    struct rusty_iface *ifc = rusty_ipv4_route(s, dst, &nh);
    if (!ifc)
        return -ENETUNREACH;
    if (!src_ip)
        src_ip = ifc->ip;
    else if (!rusty_iface_by_ip(s, src_ip))
        return -EADDRNOTAVAIL;
    if (src_port) {
        /* An explicit source port is a bind(): as on Linux (inet_csk_bind_conflict), a
         * port a listener holds on this address or the wildcard cannot be bound, even
         * with SO_REUSEADDR. A connection sharing only the local address is allowed
         * (Linux refuses it without SO_REUSEADDR; the 4-tuple stays unique here). */
        if (port_in_use(s, src_ip, src_port, dst, port))
            return -EADDRINUSE;
    } else {
        uint32_t lo = s->cfg.ephemeral_lo, span = (uint32_t)s->cfg.ephemeral_hi - lo + 1;
        for (uint32_t i = 0; i < span; i++) {
            uint16_t p = ts->next_port;
            ts->next_port = (uint16_t)(p >= s->cfg.ephemeral_hi ? lo : (uint32_t)p + 1);
            if (!port_in_use(s, src_ip, p, dst, port)) {
                src_port = p;
                break;
            }
        }
        if (!src_port)
            return -EADDRNOTAVAIL;
    }
    int err = tcp_mem_admit(s);
    if (err)
        return err;
    struct rusty_tcb *t = tcp_tcb_alloc(s);
    if (!t)
        return ts->n_tcbs < s->cfg.max_tcp_conns ? -ENOMEM : -EMFILE;
    err = rusty_sock_alloc(s, RUSTY_SOCK_TCP, t, sock);
    if (err) {
        tcb_free(s, t);
        return err;
    }
    t->sock = *sock;
    t->lip = src_ip;
    t->rip = dst;
    t->lport = src_port;
    t->rport = port;
    t->flags |= TF_ACTIVE;
    t->iss = tcp_isn(s, src_ip, src_port, dst, port, now_us);
    t->snd_una = t->snd_nxt = t->snd_max = t->iss;
    t->sbuf_seq = t->iss + 1;
    t->mss = tcp_mss_for(s, dst);
    t->rcv_wscale = tcp_pick_wscale(t->rcvbuf_max);
    t->max_retries = TCP_SYN_RETRIES;
    t->state = TCP_SYN_SENT;
    tcp_hash_insert(s, t);
    s->stats.tcp_active_opens++;
    tcp_output(s, t, now_us);
    return 0;
}

/* Whether the user may queue data on t now: 0, or the errno a kernel socket gives. */
static int can_send(const struct rusty_tcb *t)
{
    if (t->state == TCP_CLOSED)
        return t->error ? t->error : -EPIPE;
    if (t->flags & TF_FIN_QUEUED)
        return -EPIPE;
    if (t->state == TCP_LISTEN)
        return -ENOTCONN;
    return 0;
}

/* What a send call returns once n of len bytes were queued; output follows
   once the connection is synchronized. */
static int queued(struct rusty_stack *s, struct rusty_tcb *t, uint32_t n, size_t len)
{
    if (n < len)
        t->flags |= TF_WANT_WRITE;      /* the caller holds the rest: tell it when there is room */
    if (!n && len)
        return -EAGAIN;
    if (t->state != TCP_SYN_SENT && t->state != TCP_SYN_RECEIVED)
        tcp_want_output(s, t);
    return (int)n;
}

int rusty_tcp_send(struct rusty_stack *s, uint32_t sock, const uint8_t *data, size_t len, uint64_t now_us)
{
    struct rusty_tcb *t = get_tcb(s, sock);
    if (!t)
        return -EBADF;
    (void)now_us;
    int err = can_send(t);
    if (err)
        return err;
    if (len > INT32_MAX)
        len = INT32_MAX;
    return queued(s, t, tcp_sndq_push_bytes(s, t, data, (uint32_t)len), len);
}

int rusty_tcp_send_payload(struct rusty_stack *s, uint32_t sock, struct rusty_payload *p, size_t off, size_t len,
                           uint64_t now_us)
{
    struct rusty_tcb *t = get_tcb(s, sock);
    if (!t)
        return -EBADF;
    (void)now_us;
    if (!p || off > rusty_payload_len(p) || len > rusty_payload_len(p) - off)
        return -EINVAL;
    int err = can_send(t);
    if (err)
        return err;
    if (len > INT32_MAX)
        len = INT32_MAX;
    return queued(s, t, tcp_sndq_push_payload(t, p, off, (uint32_t)len), len);
}

/* Nothing readable: 0 at EOF, the pending error (once, like SO_ERROR), or -EAGAIN. */
static int recv_empty(struct rusty_tcb *t)
{
    if (t->state == TCP_CLOSED && t->error) {
        int e = t->error;
        if (e != -ECONNREFUSED)
            t->error = 0;               /* reported once, like SO_ERROR; then EOF */
        return e;
    }
    if ((t->flags & TF_EOF_SEEN) || t->state == TCP_CLOSED)
        return 0;
    return -EAGAIN;
}

/* n bytes at rhead were read: free them, maybe open the window. */
static void recv_release(struct rusty_stack *s, struct rusty_tcb *t, uint32_t n)
{
    t->rhead = (t->rhead + n) % t->rcap;
    t->rlen -= n;
    tcp_rcv_consumed(s, t, n);          /* auto-tuning; an emptied ring goes back */
    /* RFC 1122 4.2.3.3: a window update once the window opened by enough; not
       after the peer's FIN (it sends nothing more: a late update would only
       draw a RST from a peer that has closed). */
    if (t->state != TCP_CLOSED && !(t->flags & TF_EOF_SEEN)) {
        uint32_t wnd = tcp_rcv_window(t);
        uint32_t adv = seq_gt(t->rcv_adv, t->rcv_nxt) ? seq_diff(t->rcv_adv, t->rcv_nxt) : 0;
        if (wnd >= adv + tcp_rcv_sws_threshold(t)) {
            t->flags |= TF_ACK_NOW;
            tcp_want_output(s, t);
        }
    }
    if (t->rlen == 0 && (t->flags & TF_EOF_SEEN))
        tcp_mark_event(s, t, RUSTY_EV_TCP_EOF);
}

int rusty_tcp_recv(struct rusty_stack *s, uint32_t sock, uint8_t *buf, size_t cap)
{
    struct rusty_tcb *t = get_tcb(s, sock);
    if (!t)
        return -EBADF;
    if (!t->rlen)
        return recv_empty(t);
    if (cap > t->rlen)
        cap = t->rlen;
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    uint32_t n = (uint32_t)cap;
    uint32_t first = t->rcap - t->rhead < n ? t->rcap - t->rhead : n;
    memcpy(buf, t->rbuf + t->rhead, first);
    memcpy(buf + first, t->rbuf, n - first);
    recv_release(s, t, n);
    return (int)n;
}

int rusty_tcp_peek(struct rusty_stack *s, uint32_t sock, const uint8_t **data, size_t *len)
{
    struct rusty_tcb *t = get_tcb(s, sock);
    if (!t)
        return -EBADF;
    *data = NULL;
    *len = 0;
    if (!t->rlen)
        return recv_empty(t);
    /* Up to the ring's end: a wrapped region is read in two peeks. */
    uint32_t n = t->rcap - t->rhead < t->rlen ? t->rcap - t->rhead : t->rlen;
    if (n > INT32_MAX)
        n = INT32_MAX;
    *data = t->rbuf + t->rhead;
    *len = n;
    return (int)n;
}

int rusty_tcp_consume(struct rusty_stack *s, uint32_t sock, size_t n, uint64_t now_us)
{
    struct rusty_tcb *t = get_tcb(s, sock);
    if (!t)
        return -EBADF;
    (void)now_us;                       /* a window update goes out at the next poll */
    if (n > t->rlen)
        return -EINVAL;
    if (n)
        recv_release(s, t, (uint32_t)n);
    return 0;
}

/* A view from rusty_tcp_peek was kept past its use (a protocol broke the
   lifetime rule): give the receive ring, with that view in it, to the caller
   and continue on a copy, so the kept bytes are never overwritten. malloc here
   is off the data path (it only happens on that misuse). */
int rusty_tcp_rx_detach(struct rusty_stack *s, uint32_t sock, uint8_t **old_ring)
{
    struct rusty_tcb *t = get_tcb(s, sock);
    if (!t)
        return -EBADF;
    if (!t->rbuf)
        return -ENOTCONN;
    uint8_t *n = malloc(t->rcap);
    if (!n)
        return -ENOMEM;
    memcpy(n, t->rbuf, t->rcap);
    *old_ring = t->rbuf;
    t->rbuf = n;
    return 0;
}

void rusty_tcp_ring_free(uint8_t *ring)
{
    free(ring);
}

static void queue_fin(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    if (t->flags & TF_FIN_QUEUED)
        return;
    t->flags |= TF_FIN_QUEUED;
    switch (t->state) {
    case TCP_SYN_RECEIVED:
    case TCP_ESTABLISHED:
        t->state = TCP_FIN_WAIT_1;
        break;
    case TCP_CLOSE_WAIT:
        t->state = TCP_LAST_ACK;
        break;
    default:
        break;
    }
    tcp_want_output(s, t);
    (void)now;
}

int rusty_tcp_shutdown(struct rusty_stack *s, uint32_t sock, int how, uint64_t now_us)
{
    struct rusty_tcb *t = get_tcb(s, sock);
    if (!t)
        return -EBADF;
    if (how < 0 || how > 2)
        return -EINVAL;
    if (t->state == TCP_CLOSED)
        return -ENOTCONN;
    if (how != 1)                       /* SHUT_RD or SHUT_RDWR */
        t->flags |= TF_RX_SHUT;
    if (how != 0) {
        if (t->state == TCP_SYN_SENT) {
            tcp_drop(s, t, 0);
            return 0;
        }
        queue_fin(s, t, now_us);
    }
    return 0;
}

static void release_handle(struct rusty_stack *s, struct rusty_tcb *t)
{
    if (t->sock) {
        rusty_sock_release(s, t->sock);
        t->sock = 0;
    }
    t->events = 0;
}

static void close_listener(struct rusty_stack *s, struct rusty_tcp_listener *l, uint64_t now)
{
    struct rusty_tcp_state *ts = s->tcp;
    struct rusty_tcp_listener **pp = &ts->lhash[lhash(ts, l->port)];
    for (; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    /* Connections not yet accepted are reset, like Linux. */
    for (uint32_t i = 0; i < ts->n_tcbs; i++) {
        struct rusty_tcb *t = tcb_at(ts, i);
        if (t->listener == l && t->state != TCP_CLOSED) {
            tcp_send_rst_for(s, t, now);
            tcp_drop(s, t, 0);
        }
    }
    rusty_sock_release(s, l->sock);
    l->in_use = 0;
    l->ev_accept = 0;
}

int rusty_tcp_close(struct rusty_stack *s, uint32_t sock, uint64_t now_us)
{
    struct rusty_tcp_listener *l = rusty_sock_get(s, sock, RUSTY_SOCK_TCP_LISTEN);
    if (l) {
        close_listener(s, l, now_us);
        return 0;
    }
    struct rusty_tcb *t = get_tcb(s, sock);
    if (!t)
        return -EBADF;
    release_handle(s, t);
    t->flags |= TF_RX_SHUT;
    switch (t->state) {
    case TCP_CLOSED:
        tcb_free(s, t);
        return 0;
    case TCP_SYN_SENT:
        tcp_drop(s, t, 0);
        return 0;
    default:
        break;
    }
    if (t->rlen) {
        /* RFC 2525 2.17: closing with unread data resets the connection (as Linux does). */
        tcp_send_rst_for(s, t, now_us);
        tcp_drop(s, t, 0);
        return 0;
    }
    queue_fin(s, t, now_us);
    if (t->state == TCP_FIN_WAIT_2)
        tcp_arm_finwait2(s, t, now_us);
    return 0;
}

int rusty_tcp_abort(struct rusty_stack *s, uint32_t sock, uint64_t now_us)
{
    struct rusty_tcb *t = get_tcb(s, sock);
    if (!t)
        return rusty_tcp_close(s, sock, now_us);
    release_handle(s, t);
    switch (t->state) {
    case TCP_SYN_RECEIVED:
    case TCP_ESTABLISHED:
    case TCP_FIN_WAIT_1:
    case TCP_FIN_WAIT_2:
    case TCP_CLOSE_WAIT:
        /* RFC 9293 3.10.5 ABORT: send a reset. */
        tcp_send_rst_for(s, t, now_us);
        break;
    default:
        break;
    }
    tcp_drop(s, t, 0);
    return 0;
}

int rusty_tcp_get_info(struct rusty_stack *s, uint32_t sock, struct rusty_tcp_info *out)
{
    memset(out, 0, sizeof(*out));
    struct rusty_tcp_listener *l = rusty_sock_get(s, sock, RUSTY_SOCK_TCP_LISTEN);
    if (l) {
        out->state = TCP_LISTEN;
        out->local_ip = l->ip;
        out->local_port = l->port;
        out->bytes_queued = l->acc_count;
        return 0;
    }
    struct rusty_tcb *t = get_tcb(s, sock);
    if (!t)
        return -EBADF;
    out->state = t->state;
    out->local_ip = t->lip;
    out->remote_ip = t->rip;
    out->local_port = t->lport;
    out->remote_port = t->rport;
    out->snd_una = t->snd_una;
    out->snd_nxt = t->snd_nxt;
    out->rcv_nxt = t->rcv_nxt;
    out->cwnd = t->cwnd;
    out->ssthresh = t->ssthresh;
    out->srtt_us = t->srtt_us;
    out->rto_us = t->rto_us;
    out->mss = t->mss;
    out->snd_wnd = t->snd_wnd;
    /* The window last advertised (what the peer may send), not the free space. */
    out->rcv_wnd = t->state != TCP_CLOSED && seq_gt(t->rcv_adv, t->rcv_nxt) ? seq_diff(t->rcv_adv, t->rcv_nxt) : 0;
    out->bytes_queued = t->slen;
    out->bytes_readable = t->rlen;
    out->retransmits = t->retransmits;
    out->snd_wscale = (t->flags & TF_WSCALE) ? t->snd_wscale : 0;
    out->rcv_wscale = (t->flags & TF_WSCALE) ? t->rcv_wscale : 0;
    out->timestamps = (t->flags & TF_TS) ? 1 : 0;
    out->error = t->error;
    return 0;
}

int rusty_tcp_set_option(struct rusty_stack *s, uint32_t sock, int opt, int64_t value)
{
    struct rusty_tcp_listener *l = rusty_sock_get(s, sock, RUSTY_SOCK_TCP_LISTEN);
    struct rusty_tcb *t = l ? NULL : get_tcb(s, sock);
    if (!l && !t)
        return -EBADF;
    uint32_t *flags = l ? &l->flags : &t->flags;
    switch (opt) {
    case RUSTY_TCP_NODELAY:
        if (value)
            *flags |= TF_NODELAY;
        else
            *flags &= ~TF_NODELAY;
        if (t && value)
            tcp_want_output(s, t);
        return 0;
    case RUSTY_TCP_KEEPALIVE:
        if (value)
            *flags |= TF_KEEPALIVE;
        else
            *flags &= ~TF_KEEPALIVE;
        if (t) {
            if (value && t->state >= TCP_ESTABLISHED && t->state != TCP_TIME_WAIT) {
                t->flags |= TF_KEEPALIVE;
                t->keep_probes = 0;
                /* Armed from the last receive time; the next poll's timers run it. */
                tcp_arm_keepalive(s, t, t->last_rx_us);
            } else if (!value) {
                rusty_timer_cancel(&s->timers, &t->t_keep);
            }
        }
        return 0;
    case RUSTY_TCP_KEEPIDLE:
    case RUSTY_TCP_KEEPINTVL:
        if (value <= 0)
            return -EINVAL;
        if (opt == RUSTY_TCP_KEEPIDLE)
            *(l ? &l->keep_idle_us : &t->keep_idle_us) = (uint64_t)value;
        else
            *(l ? &l->keep_intvl_us : &t->keep_intvl_us) = (uint64_t)value;
        return 0;
    case RUSTY_TCP_KEEPCNT:
        if (value <= 0 || value > 255)
            return -EINVAL;
        *(l ? &l->keep_cnt : &t->keep_cnt) = (uint8_t)value;
        return 0;
    case RUSTY_TCP_SNDBUF:
    case RUSTY_TCP_RCVBUF:
        /* SO_SNDBUF: the send ring's ceiling (it keeps what it holds and shrinks
           when it drains). SO_RCVBUF: the receive buffer, fixed (auto-tuning off),
           while a window already offered stays open (RFC 9293 3.8.6.2.2); on a
           listener or before the SYN it also picks the window scale. */
        if (value < 2048 || value > (1 << 30))
            return -EINVAL;
        if (opt == RUSTY_TCP_SNDBUF) {
            *(l ? &l->sndbuf_max : &t->sndbuf_max) = (uint32_t)value;
        } else {
            *(l ? &l->rcvbuf : &t->rcvbuf) = *(l ? &l->rcvbuf_max : &t->rcvbuf_max) = (uint32_t)value;
            *flags |= TF_RCVBUF_LOCK;
        }
        return 0;
    case RUSTY_TCP_RETRIES:
        if (!t || value <= 0 || value > 255)
            return -EINVAL;
        t->max_retries = (uint8_t)value;
        return 0;
    default:
        return -ENOPROTOOPT;
    }
}

int rusty_tcp_get_option(struct rusty_stack *s, uint32_t sock, int opt, int64_t *value)
{
    struct rusty_tcp_listener *l = rusty_sock_get(s, sock, RUSTY_SOCK_TCP_LISTEN);
    struct rusty_tcb *t = l ? NULL : get_tcb(s, sock);
    if (!l && !t)
        return -EBADF;
    uint32_t flags = l ? l->flags : t->flags;
    switch (opt) {
    case RUSTY_TCP_NODELAY:
        *value = (flags & TF_NODELAY) != 0;
        return 0;
    case RUSTY_TCP_KEEPALIVE:
        *value = (flags & TF_KEEPALIVE) != 0;
        return 0;
    default:
        return -ENOPROTOOPT;
    }
}

/* --------------------------------------------------------------- per poll */

static void emit_events(struct rusty_stack *s, struct rusty_tcb *t)
{
    uint32_t ev = t->events;
    t->events = 0;
    if (!t->sock)
        return;
    static const uint16_t order[] = {
        RUSTY_EV_TCP_CONNECTED, RUSTY_EV_TCP_READABLE, RUSTY_EV_TCP_EOF,
        RUSTY_EV_TCP_WRITABLE, RUSTY_EV_TCP_CLOSED,
    };
    for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        uint16_t type = order[i];
        if (!(ev & EVBIT(type)))
            continue;
        int32_t arg = 0;
        if (type == RUSTY_EV_TCP_READABLE)
            arg = (int32_t)t->rlen;
        else if (type == RUSTY_EV_TCP_CLOSED)
            arg = t->error;
        else if (type == RUSTY_EV_TCP_WRITABLE)
            arg = (int32_t)tcp_sndq_ring_space(t);
        rusty_event_push(s, t->sock, type, arg, t->rip);
    }
}

void rusty_tcp_poll_end(struct rusty_stack *s, uint64_t now_us)
{
    struct rusty_tcp_state *ts = s->tcp;
    /* Output may queue more events on TCBs already processed; loop until stable. */
    for (int round = 0; round < 4 && ts->olist; round++) {
        struct rusty_tcb *t = ts->olist;
        ts->olist = NULL;
        while (t) {
            struct rusty_tcb *next = t->onext;
            t->onext = NULL;
            t->on_olist = 0;
            if (t->flags & TF_DEAD) {
                t->flags &= ~TF_DEAD;
                t->events = 0;
                tcb_free(s, t);
            } else {
                if (t->flags & TF_OUTPUT) {
                    t->flags &= ~TF_OUTPUT;
                    if (t->state != TCP_CLOSED && t->state != TCP_LISTEN)
                        tcp_output(s, t, now_us);
                }
                if (t->events)
                    emit_events(s, t);
            }
            t = next;
        }
    }
    for (struct rusty_tcp_listener *l = ts->llist; l;) {
        struct rusty_tcp_listener *next = l->onext;
        l->onext = NULL;
        l->on_olist = 0;
        if (l->in_use && l->ev_accept && l->acc_count)
            rusty_event_push(s, l->sock, RUSTY_EV_TCP_ACCEPT, (int32_t)l->acc_count, 0);
        l->ev_accept = 0;
        l = next;
    }
    ts->llist = NULL;
}

int64_t rusty_tcp_next_deadline(struct rusty_stack *s, uint64_t now_us)
{
    if (s->tcp && (s->tcp->olist || s->tcp->llist))
        return (int64_t)now_us;
    return -1;
}

/* ICMP errors quoting one of our segments (RFC 1122 4.2.3.9): soft errors are
   ignored for established connections; a hard error while opening fails it. */
void rusty_tcp_icmp_error(struct rusty_stack *s, const struct rusty_ipv4_repr *inner, const uint8_t *l4,
                          size_t l4_len, int err)
{
    if (l4_len < 8 || !s->tcp)
        return;
    uint16_t sport = rd16(l4), dport = rd16(l4 + 2);
    uint32_t seq = rd32(l4 + 4);
    struct rusty_tcb *t = tcp_lookup(s, inner->src, sport, inner->dst, dport);
    if (!t || !seq_in(seq, t->snd_una, t->snd_max + 1))
        return;
    if (t->state == TCP_SYN_SENT && (err == -ECONNREFUSED || err == -EHOSTUNREACH || err == -ENETUNREACH))
        tcp_drop(s, t, err);
}
