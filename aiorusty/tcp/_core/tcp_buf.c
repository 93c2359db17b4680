/*
 * tcp_buf.c - per-connection buffers and the stack-wide TCP memory limit.
 *
 * Owns: every connection's send and receive rings (allocated when bytes need
 * them, grown on demand, given back when they drain), the cache of small
 * rings, receive-buffer auto-tuning, and the accounting of all of it against
 * cfg.tcp_mem. Not: what goes into the rings (tcp_sndq.c, tcp_in.c
 * receive_data), the window field of segments (tcp_out.c), the lifecycle of
 * connections (tcp.c).
 *
 * Memory follows use (DESIGN 4). An idle connection holds no ring. A send
 * ring is allocated by the first write, grows (doubling) while the app
 * queues more than it holds, up to the connection's sndbuf_max, and goes back
 * once everything in it is acknowledged. A receive ring is allocated by the
 * first segment, grows to hold what arrives, and goes back once the app has
 * read everything. Rings up to 64 KiB are powers of two and kept in a small
 * cache, so request/response traffic does not call malloc per message; larger
 * rings are kept too, up to RING_BIG_CACHE_BYTES in all, for apps that write
 * megabyte responses.
 *
 * The receive window is auto-tuned to what the application reads per round
 * trip (as Linux's dynamic right-sizing): when the app read more in the last
 * RTT than ever before, rcvbuf becomes twice that (plus room for slow start),
 * up to rcvbuf_max. A user who sets SO_RCVBUF fixes it (TF_RCVBUF_LOCK).
 *
 * Accounting. A connection is charged for its send ring, and for the larger
 * of its receive ring and what its receive side has promised: unread bytes
 * plus the window it advertised. RFC 9293 3.8.6.2.2 forbids taking back a
 * window once offered, so the bytes it covers must be obtainable when they
 * arrive: a window opens only as far as its charge can be granted, and the sum
 * of charges (tcp_mem_bytes) stays within cfg.tcp_mem. Thresholds:
 *   - below half of tcp_mem, buffers and windows grow freely up to the
 *     per-connection maxima;
 *   - from half of it (memory pressure, as Linux's tcp_mem[1]), a receive
 *     window no longer grows past what it holds (new connections start with
 *     TCP_BUF_MIN) and a send ring grows to 64 KiB at most; each clamp is
 *     counted in tcp_mem_pressure;
 *   - at tcp_mem, new connections are refused with -ENOBUFS (tcp_mem_refused,
 *     one RUSTY_EV_LIMIT event per stack), and existing connections keep
 *     working within what they hold.
 * TCP_BUF_MIN per side is granted even past the limit (Linux's tcp_rmem[0] and
 * tcp_wmem[0]), so an established connection never stalls for lack of a
 * first ring; the overshoot is bounded by 8 KiB per connection.
 *
 * Call chains:
 *   tcp_in.c receive_data -> tcp_rcv_reserve -> ring_resize
 *   tcp.c recv/peek/consume -> tcp_rcv_consumed -> rcv_space_adjust, rcv ring back
 *   tcp_out.c window_to_advertise -> tcp_rcv_window_grant; send_segment -> tcp_rcv_recharge
 *   tcp_sndq.c push -> tcp_snd_reserve;  advance/clear -> tcp_snd_release
 *   tcp.c connect / tcp_in.c listen_input -> tcp_mem_admit
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tcp.h"

#define RING_CACHE_BYTES (1u << 20)     /* per size class */
#define RING_BIG_STEP (64u << 10)       /* rings past the cached classes grow in 64 KiB steps */
/* Rings past 64 KiB kept for reuse, in all. Why: an app writing 1 MiB responses
   drains its ring after each, and a freed megabyte goes back to the kernel
   (glibc trims or unmaps it), so the next response paid a page fault per 4 KiB
   of a fresh ring - a fifth of a tap server's time (perf, bench/http_loops.py
   --body 1048576). Reused only at the same size, which repeating writes ask for. */
#define RING_BIG_CACHE_BYTES (8u << 20)

struct big_ring {
    void *next;
    uint32_t size;
};

/* ------------------------------------------------------------------ rings */

static int cache_class(uint32_t size)
{
    for (int k = 0; k < TCP_RING_CACHE_CLASSES; k++)
        if (size == TCP_BUF_MIN << k)
            return k;
    return -1;
}

/* A ring of at least `need` bytes: a power of two up to 64 KiB, then a multiple of 64 KiB. */
static uint32_t ring_size_for(uint32_t need)
{
    uint32_t top = TCP_BUF_MIN << (TCP_RING_CACHE_CLASSES - 1);
    if (need > top) {
        uint64_t n = ((uint64_t)need + RING_BIG_STEP - 1) / RING_BIG_STEP * RING_BIG_STEP;
        return n > (1u << 30) ? (1u << 30) : (uint32_t)n;
    }
    uint32_t n = TCP_BUF_MIN;
    while (n < need)
        n <<= 1;
    return n;
}

static void *ring_get(struct rusty_tcp_state *ts, uint32_t size)
{
    int k = cache_class(size);
    if (k >= 0 && ts->rings.head[k]) {
        void *r = ts->rings.head[k];
        memcpy(&ts->rings.head[k], r, sizeof(void *));
        ts->rings.count[k]--;
        return r;
    }
    if (k < 0) {
        for (void **at = &ts->rings.big; *at; at = &((struct big_ring *)*at)->next) {
            struct big_ring *r = *at;
            if (r->size == size) {
                *at = r->next;
                ts->rings.big_bytes -= size;
                return r;
            }
        }
    }
    return malloc(size);
}

static void ring_put(struct rusty_tcp_state *ts, void *r, uint32_t size)
{
    if (!r)
        return;
    int k = cache_class(size);
    if (k < 0 && ts->rings.big_bytes + size <= RING_BIG_CACHE_BYTES) {
        struct big_ring *b = r;
        b->next = ts->rings.big;
        b->size = size;
        ts->rings.big = b;
        ts->rings.big_bytes += size;
        return;
    }
    if (k < 0 || ts->rings.count[k] >= RING_CACHE_BYTES / size) {
        free(r);
        return;
    }
    memcpy(r, &ts->rings.head[k], sizeof(void *));
    ts->rings.head[k] = r;
    ts->rings.count[k]++;
}

void tcp_buf_init(struct rusty_stack *s)
{
    memset(&s->tcp->rings, 0, sizeof(s->tcp->rings));
}

void tcp_buf_destroy(struct rusty_stack *s)
{
    struct ring_cache *c = &s->tcp->rings;
    for (int k = 0; k < TCP_RING_CACHE_CLASSES; k++) {
        while (c->head[k]) {
            void *r = c->head[k];
            memcpy(&c->head[k], r, sizeof(void *));
            free(r);
        }
        c->count[k] = 0;
    }
    while (c->big) {
        struct big_ring *r = c->big;
        c->big = r->next;
        free(r);
    }
    c->big_bytes = 0;
}

/* A connection's ring goes back to the cache (or to malloc). */
static void ring_give_back(struct rusty_stack *s, uint8_t **ring, uint32_t *cap)
{
    if (!*ring)
        return;
    ring_put(s->tcp, *ring, *cap);
    s->tcp->buffer_bytes -= *cap;
    s->stats.tcp_buffer_bytes = s->tcp->buffer_bytes;
    *ring = NULL;
    *cap = 0;
}

/* Move a ring's `used` bytes from `head` into a new ring of `size` bytes, at its start. */
static uint8_t *ring_resize(struct rusty_stack *s, uint8_t *old, uint32_t cap, uint32_t head, uint32_t used,
                            uint32_t size)
{
    uint8_t *n = ring_get(s->tcp, size);
    if (!n)
        return NULL;
    if (old) {
        uint32_t first = cap - head < used ? cap - head : used;
        memcpy(n, old + head, first);
        memcpy(n + first, old, used - first);
        ring_put(s->tcp, old, cap);
    }
    s->tcp->buffer_bytes = s->tcp->buffer_bytes - cap + size;
    s->stats.tcp_buffer_bytes = s->tcp->buffer_bytes;
    return n;
}

/* ------------------------------------------------------------- accounting */

static void charge(struct rusty_stack *s, int64_t delta)
{
    s->tcp->mem_bytes += (uint64_t)delta;
    s->stats.tcp_mem_bytes = s->tcp->mem_bytes;
}

static int under_pressure(const struct rusty_stack *s)
{
    return s->tcp->mem_bytes >= s->cfg.tcp_mem / 2;
}

/* How much one side of a connection may hold, holding `held` and wanting `want`. */
static uint64_t grant(struct rusty_stack *s, uint64_t held, uint64_t want, uint64_t pressure_cap)
{
    if (want <= held || want <= TCP_BUF_MIN)
        return want;
    uint64_t limit = s->cfg.tcp_mem, used = s->tcp->mem_bytes;
    uint64_t cap = held + (limit > used ? limit - used : 0);
    if (under_pressure(s)) {
        uint64_t p = held > pressure_cap ? held : pressure_cap;
        if (cap > p)
            cap = p;
    }
    if (cap < TCP_BUF_MIN)
        cap = TCP_BUF_MIN;
    if (want <= cap)
        return want;
    s->stats.tcp_mem_pressure++;
    return cap;
}

int tcp_mem_admit(struct rusty_stack *s)
{
    if (s->tcp->mem_bytes + TCP_BUF_MIN <= s->cfg.tcp_mem)
        return 0;
    s->stats.tcp_mem_refused++;
    rusty_limit_report(s, RUSTY_LIMIT_TCP_MEM);
    return -ENOBUFS;
}

/* ----------------------------------------------------------------- receive */

/* The receive side may still get data: its window is a promise. */
static int rcv_live(const struct rusty_tcb *t)
{
    if (t->flags & TF_EOF_SEEN)
        return 0;
    switch (t->state) {
    case TCP_SYN_SENT:
    case TCP_SYN_RECEIVED:
    case TCP_ESTABLISHED:
    case TCP_FIN_WAIT_1:
    case TCP_FIN_WAIT_2:
        return 1;
    default:
        return 0;
    }
}

static uint32_t rcv_need(const struct rusty_tcb *t)
{
    uint64_t promise = (uint64_t)t->rlen + (rcv_live(t) ? tcp_rcv_open(t) : 0);
    uint64_t need = promise > t->rcap ? promise : t->rcap;
    return need > UINT32_MAX ? UINT32_MAX : (uint32_t)need;
}

void tcp_rcv_recharge(struct rusty_stack *s, struct rusty_tcb *t)
{
    uint32_t need = rcv_need(t);
    charge(s, (int64_t)need - (int64_t)t->rcv_charge);
    t->rcv_charge = need;
}

uint32_t tcp_rcv_window_grant(struct rusty_stack *s, struct rusty_tcb *t, uint32_t want)
{
    uint32_t open = tcp_rcv_open(t);
    if (want <= open)
        return open;
    uint64_t need = (uint64_t)t->rlen + want;
    if (need <= t->rcv_charge)
        return want;
    /* Under pressure a receive window stays at what it holds: the promises of many
       idle connections are what fills tcp_mem. */
    uint64_t got = grant(s, t->rcv_charge, need, 0);
    uint32_t w = got > t->rlen ? (uint32_t)(got - t->rlen) : 0;
    return w > open ? w : open;
}

int tcp_rcv_reserve(struct rusty_stack *s, struct rusty_tcb *t, uint32_t end)
{
    if (end <= t->rcap)
        return 0;
    /* Double at least, so a bulk receive copies its ring O(log n) times, but never
       past what this side is charged for (its window already covers `end`). */
    uint32_t want = t->rcap * 2 > end ? t->rcap * 2 : end;
    if (want > t->rcv_charge && t->rcv_charge >= end)
        want = t->rcv_charge;
    uint32_t size = ring_size_for(want);
    uint32_t used = t->rlen;
    if (t->n_ooo)
        used = t->rcap;                 /* out-of-order bytes lie anywhere past the in-order ones */
    uint8_t *n = ring_resize(s, t->rbuf, t->rcap, t->rhead, used, size);
    if (!n) {
        s->stats.tcp_rx_mem_drops++;
        return -ENOMEM;
    }
    t->rbuf = n;
    t->rcap = size;
    t->rhead = 0;
    tcp_rcv_recharge(s, t);
    return 0;
}

/* Dynamic right-sizing: once per RTT, compare what the app read with the most
   it read in one RTT before; a new high sets rcvbuf to twice it, plus 16
   segments, so a sender in slow start (doubling per RTT) is not held back by
   our window. The window follows at the next segment, within tcp_mem. */
static void rcv_space_adjust(struct rusty_stack *s, struct rusty_tcb *t, uint32_t n)
{
    uint64_t now = s->now_us;
    t->rcvq_copied += n;
    uint32_t rtt = t->srtt_us ? t->srtt_us : TCP_RCV_RTT_DEFAULT_US;
    if (now - t->rcvq_time_us < rtt)
        return;
    uint32_t copied = t->rcvq_copied;
    t->rcvq_copied = 0;
    t->rcvq_time_us = now;
    if (copied <= t->rcvq_space)
        return;
    t->rcvq_space = copied;
    uint64_t want = 2ull * copied + 16ull * t->mss;
    if (want > t->rcvbuf_max)
        want = t->rcvbuf_max;
    if (want > t->rcvbuf) {
        t->rcvbuf = (uint32_t)want;
        s->stats.tcp_rcvbuf_grown++;
    }
}

void tcp_rcv_consumed(struct rusty_stack *s, struct rusty_tcb *t, uint32_t n)
{
    if (!(t->flags & TF_RCVBUF_LOCK))
        rcv_space_adjust(s, t, n);
    if (t->rlen == 0 && t->n_ooo == 0) {
        ring_give_back(s, &t->rbuf, &t->rcap);
        t->rhead = 0;
    }
    tcp_rcv_recharge(s, t);
}

/* -------------------------------------------------------------------- send */

uint32_t tcp_snd_reserve(struct rusty_stack *s, struct rusty_tcb *t, uint32_t need)
{
    if (need <= t->scap)
        return t->scap;
    if (need > t->sndbuf_max)
        need = t->sndbuf_max;
    uint32_t want = t->scap * 2 > need ? t->scap * 2 : need;
    if (want > t->sndbuf_max)
        want = t->sndbuf_max;
    uint32_t size = ring_size_for(want);
    if (size > t->sndbuf_max)
        size = t->sndbuf_max;           /* still >= need: need <= want <= sndbuf_max */
    uint64_t got = grant(s, t->scap, size, TCP_BUF_PRESSURE_CAP);
    if (got < size) {
        /* What tcp_mem allows, in whole pages; less than the ring has: keep it. */
        size = (uint32_t)(got / TCP_BUF_MIN * TCP_BUF_MIN);
        if (size <= t->scap)
            return t->scap;
    }
    uint8_t *n = ring_resize(s, t->sbuf, t->scap, t->shead, t->sring, size);
    if (!n)
        return t->scap;
    charge(s, (int64_t)size - (int64_t)t->scap);
    t->sbuf = n;
    t->scap = size;
    t->shead = 0;
    return size;
}

void tcp_snd_release(struct rusty_stack *s, struct rusty_tcb *t)
{
    if (!t->sbuf || t->sring)
        return;
    charge(s, -(int64_t)t->scap);
    ring_give_back(s, &t->sbuf, &t->scap);
    t->shead = 0;
}

void tcp_buf_release_all(struct rusty_stack *s, struct rusty_tcb *t)
{
    tcp_snd_release(s, t);              /* after tcp_sndq_clear: the ring holds nothing */
    ring_give_back(s, &t->rbuf, &t->rcap);
    t->rhead = t->rlen = 0;
    t->n_ooo = 0;
    charge(s, -(int64_t)t->rcv_charge);
    t->rcv_charge = 0;
}
