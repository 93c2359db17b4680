/*
 * tcp.h - TCP internals shared by tcp.c, tcp_in.c, tcp_out.c, tcp_timer.c, tcp_cc.c.
 *
 * Owns: the control block (struct rusty_tcb), the listener, the per-stack TCP
 * state, sequence-number arithmetic and the calls between the TCP files
 * (tcp.c, tcp_in.c, tcp_out.c, tcp_sndq.c, tcp_timer.c, tcp_cc.c).
 * Not: wire formats (wire.h / wire_tcp.c), IPv4 and below (stack.h).
 *
 * Receive:  rusty_tcp_input (tcp_in.c) -> demux -> listen_input / syn_sent_input /
 *           segment_arrives (RFC 9293 3.10.7) -> receive_data -> tcp_mark_event
 * Transmit: user call or input -> tcp_want_output -> rusty_tcp_poll_end ->
 *           tcp_output (tcp_out.c) -> send_segment -> rusty_ipv4_output
 * Timers:   rusty_timers_run -> tcp_timer.c handlers -> tcp_output / tcp_drop
 */
#ifndef RUSTY_TCP_H
#define RUSTY_TCP_H

#include <stddef.h>
#include <stdint.h>

#include "stack.h"

/* ---- sequence numbers (RFC 9293 3.4): modulo 2^32 comparisons. Nobody writes these inline. */
static inline int seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline int seq_leq(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }
static inline int seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
static inline int seq_geq(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }
/* lo <= x < hi */
static inline int seq_in(uint32_t x, uint32_t lo, uint32_t hi) { return seq_leq(lo, x) && seq_lt(x, hi); }
static inline uint32_t seq_max(uint32_t a, uint32_t b) { return seq_gt(a, b) ? a : b; }
static inline uint32_t seq_min(uint32_t a, uint32_t b) { return seq_lt(a, b) ? a : b; }
/* Distance b - a when b is known to be at or after a. */
static inline uint32_t seq_diff(uint32_t b, uint32_t a) { return b - a; }

/* ---- states (RFC 9293 3.3.2); rusty_tcp_state_name() spells them as the RFC does */
enum rusty_tcp_conn_state {
    TCP_CLOSED = 0,
    TCP_LISTEN,
    TCP_SYN_SENT,
    TCP_SYN_RECEIVED,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT_1,
    TCP_FIN_WAIT_2,
    TCP_CLOSE_WAIT,
    TCP_CLOSING,
    TCP_LAST_ACK,
    TCP_TIME_WAIT,
};
const char *rusty_tcp_state_name(int state);

/* ---- tunables (Linux-like defaults; each names its source) */
#define TCP_RTO_INIT_US 1000000u        /* RFC 6298 2.1 */
#define TCP_RTO_MIN_US 200000u          /* DEVIATION: RFC 6298 2.4 says 1 s; Linux uses 200 ms */
#define TCP_RTO_MAX_US 60000000u        /* RFC 6298 2.5 allows a maximum of at least 60 s */
#define TCP_SYN_RETRIES 6               /* Linux tcp_syn_retries */
#define TCP_SYNACK_RETRIES 5            /* Linux tcp_synack_retries */
#define TCP_DATA_RETRIES 15             /* Linux tcp_retries2 (RFC 1122 4.2.3.5 R2) */
#define TCP_DELACK_US 40000u            /* RFC 1122 4.2.3.2: < 0.5 s; Linux uses 40 ms */
#define TCP_KEEP_IDLE_US 7200000000ull  /* RFC 1122 4.2.3.6: >= 2 hours */
#define TCP_KEEP_INTVL_US 75000000ull
#define TCP_KEEP_CNT 9
#define TCP_PERSIST_MIN_US 200000u
#define TCP_DEFAULT_MSS 536u            /* RFC 9293 3.7.1: when the peer sends no MSS option */
#define TCP_MIN_SND_MSS 48u             /* floor on the peer's MSS (Linux TCP_MIN_SND_MSS, see take_options) */
#define TCP_MAX_OOO 8                   /* out-of-order ranges held (holes are bounded) */
#define TCP_DUPACK_THRESH 3             /* RFC 5681 3.2 */
#define TCP_MAX_WSCALE 14               /* RFC 7323 2.3 */
#define TCP_CHALLENGE_ACK_LIMIT 1000    /* per second (RFC 5961 7; Linux tcp_challenge_ack_limit) */
#define TCP_SND_CHUNKS 16               /* send-queue descriptors per connection (bytes + payload ranges) */
#define TCP_PAYLOAD_QUEUE_MIN (4u << 20) /* payload bytes queued per connection: max(this, 4 x sndbuf) */
#define TCP_BUF_MIN 4096u               /* per side, granted even past tcp_mem (Linux tcp_rmem[0]/tcp_wmem[0]) */
#define TCP_BUF_PRESSURE_CAP (64u << 10) /* under memory pressure no buffer grows past this */
#define TCP_RCV_RTT_DEFAULT_US 1000u    /* receive auto-tuning period before an RTT is measured */
#define TCP_TCB_SLAB 1024u              /* control blocks allocated at a time */

/* tcb->flags */
#define TF_ACK_NOW 0x0001u              /* send an ACK at the next output */
#define TF_FIN_QUEUED 0x0002u           /* user shut the write side: FIN after the data */
#define TF_FIN_SENT 0x0004u
#define TF_RX_SHUT 0x0008u              /* user closed: no more reads (data arriving -> RST) */
#define TF_NODELAY 0x0010u
#define TF_KEEPALIVE 0x0020u
#define TF_WSCALE 0x0040u               /* both sides sent window scale (RFC 7323 2.2) */
#define TF_TS 0x0080u                   /* both sides sent timestamps (RFC 7323 3.2) */
#define TF_IN_RECOVERY 0x0100u          /* NewReno fast recovery (RFC 6582) */
#define TF_RTT_TIMING 0x0200u           /* timing one segment (Karn, no timestamps) */
#define TF_PERSIST 0x0400u              /* rtx timer is the persist timer */
#define TF_OUTPUT 0x0800u               /* queued on the output list */
#define TF_ACTIVE 0x1000u               /* opened with connect (for RST in SYN-RECEIVED) */
#define TF_EOF_SEEN 0x2000u             /* FIN received (rcv side done) */
#define TF_ACCEPTED 0x4000u
#define TF_COOKIE 0x8000u               /* created from a SYN cookie */
#define TF_SACK_OK 0x10000u             /* peer sent SACK-permitted (parsed, unused yet) */
#define TF_DELACK_ONE 0x20000u          /* one full segment received since the last ACK */
#define TF_IN_ACCQ 0x40000u             /* waiting in its listener's accept queue */
#define TF_OOO_FIN 0x80000u             /* a FIN arrived out of order at ooo_fin */
#define TF_WANT_WRITE 0x100000u         /* a send queued less than asked: report WRITABLE once */
#define TF_RCVBUF_LOCK 0x200000u        /* SO_RCVBUF set by the user: no receive auto-tuning */

/* Pending events, emitted once per poll (bits are 1 << (RUSTY_EV_TCP_* - 16)). */
#define EVBIT(type) (1u << ((type) - 16))

struct rusty_tcp_listener;
struct rusty_payload;

struct ooo_range {
    uint32_t start, end;                /* sequence numbers, [start, end) */
};

/* One run of the send queue: bytes in the send ring (p == NULL; they follow
   the ring bytes of earlier chunks), or a range of a static payload. */
struct snd_chunk {
    struct rusty_payload *p;
    size_t off;                         /* payload offset (unused for ring chunks) */
    uint32_t len;
};

struct rusty_tcb {
    uint8_t state;
    uint8_t rcv_wscale, snd_wscale;
    uint8_t retries;                    /* consecutive RTOs / probes without progress */
    uint8_t dupacks;
    uint8_t n_ooo;
    uint8_t keep_probes;
    uint8_t max_retries;
    uint8_t persist_backoff;            /* persist interval exponent (kept while the peer answers) */
    uint8_t keep_cnt;                   /* keep-alive probes before ETIMEDOUT */
    uint8_t on_olist;
    uint8_t on_twlist;
    uint32_t flags;                     /* TF_* */
    uint32_t events;                    /* EVBIT(RUSTY_EV_TCP_*) pending */
    int32_t error;                      /* -errno for the CLOSED event */
    uint32_t sock;                      /* handle, 0 when none (orphaned or not yet accepted) */
    uint32_t hash;

    /* 4-tuple, host order */
    uint32_t lip, rip;
    uint16_t lport, rport;
    uint16_t mss;                       /* effective send MSS (payload per segment) */
    uint16_t peer_mss;

    /* send sequence space (RFC 9293 3.3.1) */
    uint32_t iss, snd_una, snd_nxt, snd_max;   /* snd_max: highest sequence sent + 1 */
    uint32_t snd_wnd, max_snd_wnd;      /* bytes (scaled) */
    uint32_t snd_wl1, snd_wl2;
    /* receive sequence space */
    uint32_t irs, rcv_nxt;
    uint32_t rcv_adv;                   /* right edge of the last advertised window */
    uint32_t last_ack_sent;             /* RFC 7323 4.3 Last.ACK.sent */

    /* send queue: slen bytes of sequence space from sbuf_seq (unacked + unsent),
       described in order by the chunks (ring bytes and payload ranges). The ring
       (scap bytes, none while sring is 0) holds sring bytes from shead; payload
       ranges hold spay bytes. The ring grows on demand up to sndbuf_max (tcp_buf.c). */
    uint8_t *sbuf;
    uint32_t scap, shead, slen, sbuf_seq;
    uint32_t sring, spay;
    uint8_t chead, ccount;              /* chunk ring: first and number in use */
    struct snd_chunk chunks[TCP_SND_CHUNKS];
    /* receive buffer: ring of rcap bytes (none while empty); rlen in-order unread
       bytes at rhead, out-of-order bytes stored past them. The window offered is at
       most rcvbuf - rlen; rcvbuf is auto-tuned up to rcvbuf_max (tcp_buf.c). */
    uint8_t *rbuf;
    uint32_t rcap, rhead, rlen;
    struct ooo_range ooo[TCP_MAX_OOO];  /* sorted, disjoint */
    uint32_t ooo_fin;
    uint32_t rcv_mss;                   /* largest payload received (delayed-ACK "full segment") */
    uint32_t sndbuf_max;                /* send ring ceiling (SO_SNDBUF) */
    uint32_t rcvbuf, rcvbuf_max;        /* receive buffer now, and its auto-tuning ceiling */
    uint32_t rcv_charge;                /* bytes of tcp_mem this receive side holds: max(ring, unread + window) */
    uint32_t rcvq_copied;               /* read by the app since rcvq_time_us (auto-tuning) */
    uint32_t rcvq_space;                /* the most read in one measuring period */
    uint64_t rcvq_time_us;

    /* RFC 6298 RTT estimation */
    uint32_t srtt_us, rttvar_us, rto_us;
    uint32_t rtt_seq;
    uint64_t rtt_start_us;

    /* RFC 5681 / 6582 congestion control */
    uint32_t cwnd, ssthresh, recover, bytes_acked;
    uint64_t last_send_us;              /* restart after idle (RFC 5681 4.1) */
    uint64_t last_rx_us;                /* keep-alive idle time */

    /* RFC 7323 timestamps */
    uint32_t ts_recent;
    uint64_t ts_recent_us;              /* when ts_recent was set (24-day PAWS rule, 5.5) */

    /* keep-alive settings */
    uint64_t keep_idle_us, keep_intvl_us;

    uint32_t retransmits;               /* total, for rusty_tcp_info */

    struct rusty_timer t_rtx;           /* RTO, SYN retries, persist, FIN-WAIT-2 and TIME-WAIT */
    struct rusty_timer t_delack;
    struct rusty_timer t_keep;

    union {                             /* a free block is in no hash chain */
        struct rusty_tcb *hnext;        /* 4-tuple hash chain */
        struct rusty_tcb *fnext;        /* free list */
    };
    struct rusty_tcb *onext;            /* output/event list */
    struct rusty_tcb *qnext;            /* listener accept queue */
    struct rusty_tcp_listener *listener; /* while embryonic or waiting in the accept queue */
    struct rusty_tcb *tw_prev, *tw_next; /* TIME-WAIT list, oldest first */
};

struct rusty_tcp_listener {
    uint32_t ip;                        /* 0 = any */
    uint16_t port;
    uint16_t in_use;
    uint32_t sock;
    uint32_t backlog;
    uint32_t syn_count;                 /* embryonic connections (SYN-RECEIVED) */
    uint32_t acc_count;
    struct rusty_tcb *acc_head, *acc_tail;
    uint32_t sndbuf_max, rcvbuf, rcvbuf_max;   /* inherited by its connections */
    uint32_t flags;                     /* TF_NODELAY/TF_KEEPALIVE/TF_RCVBUF_LOCK inherited */
    uint64_t keep_idle_us, keep_intvl_us;
    uint8_t keep_cnt;
    uint8_t ev_accept, on_olist;
    uint8_t reuseport;                  /* RUSTY_TCP_LISTEN_REUSEPORT: may share its address and port */
    struct rusty_tcp_listener *next;    /* port hash chain */
    struct rusty_tcp_listener *onext;   /* event list */
};

struct tcp_cc_ops;

/* Small rings are kept for reuse when a connection drains, so request/response
   traffic does not call malloc per message (bounded; see tcp_buf.c). */
#define TCP_RING_CACHE_CLASSES 5        /* 4, 8, 16, 32 and 64 KiB */
struct ring_cache {
    void *head[TCP_RING_CACHE_CLASSES]; /* free rings, linked through their first bytes */
    uint32_t count[TCP_RING_CACHE_CLASSES];
    void *big;                          /* free rings past 64 KiB: next pointer and size in their first bytes */
    uint64_t big_bytes;
};

struct rusty_tcp_state {
    struct ring_cache rings;
    /* Control blocks come in slabs of TCP_TCB_SLAB, added on demand up to
       cfg.max_tcp_conns and never moved or freed before the stack: a TCB's
       address is stable. Blocks are carved from the newest slab as needed
       (untouched memory costs nothing); freed ones go on the free list. */
    struct rusty_tcb **slabs;
    uint32_t n_slabs;
    uint32_t n_tcbs;                    /* blocks carved so far (free or in use) */
    uint32_t tcb_room;                  /* blocks not carved yet in the newest slab */
    struct rusty_tcb *free_tcbs;
    struct rusty_tcb **hash;            /* 4-tuple hash: doubles when it holds more than its buckets */
    uint32_t hash_mask;
    uint32_t hash_count;
    struct rusty_tcp_listener *listeners;
    uint32_t n_listeners;
    struct rusty_tcp_listener **lhash;
    uint32_t lhash_mask;
    struct rusty_tcb *olist;            /* TCBs with output or events pending */
    struct rusty_tcb *tw_head, *tw_tail; /* TIME-WAIT TCBs in the order they entered it */
    uint32_t tw_count;
    struct rusty_tcp_listener *llist;   /* listeners with an ACCEPT event pending */
    uint64_t secret[2];                 /* SipHash key: ISNs, demux hash (RFC 6528) */
    uint64_t cookie_secret[2];          /* SYN cookies */
    uint64_t buffer_bytes;              /* allocated to rings */
    uint64_t mem_bytes;                 /* charged against cfg.tcp_mem: rings and open windows */
    const struct tcp_cc_ops *cc;
    uint16_t next_port;
    uint64_t challenge_start_us;        /* RFC 5961 7: challenge ACKs per second, stack-wide */
    uint32_t challenge_count;
};

/* A received segment being processed: passed down the input path, never global. */
struct tcp_seg {
    struct rusty_tcp_repr h;
    const uint8_t *data;                /* payload */
    uint32_t len;                       /* payload bytes */
    uint32_t seq;                       /* h.seq, possibly trimmed */
    uint32_t src, dst;
    struct rusty_iface *ifc;
    uint64_t now;
};

/* ---- tcp.c */
struct rusty_tcb *tcp_tcb_alloc(struct rusty_stack *s);
void tcp_hash_insert(struct rusty_stack *s, struct rusty_tcb *t);
struct rusty_tcb *tcp_lookup(struct rusty_stack *s, uint32_t lip, uint16_t lport, uint32_t rip, uint16_t rport);
/* The listener a segment of the 4-tuple goes to (one member of a reuse-port group, by the flow's hash). */
struct rusty_tcp_listener *tcp_listener_lookup(struct rusty_stack *s, uint32_t lip, uint16_t lport, uint32_t rip,
                                               uint16_t rport);
/* Release the TCB (and its handle's impl); emits CLOSED with `err` if a handle is attached. */
void tcp_drop(struct rusty_stack *s, struct rusty_tcb *t, int err);
void tcp_set_state(struct rusty_stack *s, struct rusty_tcb *t, int state, uint64_t now);
void tcp_mark_event(struct rusty_stack *s, struct rusty_tcb *t, uint16_t type);
void tcp_want_output(struct rusty_stack *s, struct rusty_tcb *t);
uint32_t tcp_isn(struct rusty_stack *s, uint32_t lip, uint16_t lport, uint32_t rip, uint16_t rport, uint64_t now);
uint64_t tcp_siphash(const uint64_t key[2], const uint32_t *words, int n);
/* The connection became ESTABLISHED (both directions). */
void tcp_established(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
/* Choose the window scale we offer for a receive buffer (RFC 7323 2.3). */
uint8_t tcp_pick_wscale(uint32_t rcvbuf);
uint16_t tcp_mss_for(struct rusty_stack *s, uint32_t rip);

/* ---- tcp_buf.c: per-connection buffers and the stack-wide memory limit (cfg.tcp_mem) */
void tcp_buf_init(struct rusty_stack *s);
void tcp_buf_destroy(struct rusty_stack *s);
/* A new connection may be opened: 0, or -ENOBUFS (counted, reported) when tcp_mem is used up. */
int tcp_mem_admit(struct rusty_stack *s);
/* The receive ring holds at least `end` bytes from rhead: 0, or -ENOMEM. */
int tcp_rcv_reserve(struct rusty_stack *s, struct rusty_tcb *t, uint32_t end);
/* Re-read what the receive side holds of tcp_mem after rcv_adv, rlen, the ring or the state changed. */
void tcp_rcv_recharge(struct rusty_stack *s, struct rusty_tcb *t);
/* The app read n bytes: auto-tune rcvbuf, give the ring back once empty. */
void tcp_rcv_consumed(struct rusty_stack *s, struct rusty_tcb *t, uint32_t n);
/* The largest window t may offer now within tcp_mem, given it wants `want` (never less than open). */
uint32_t tcp_rcv_window_grant(struct rusty_stack *s, struct rusty_tcb *t, uint32_t want);
/* The send ring holds at least `need` bytes (grown within sndbuf_max and tcp_mem); returns its capacity. */
uint32_t tcp_snd_reserve(struct rusty_stack *s, struct rusty_tcb *t, uint32_t need);
/* The send ring is empty: give it back. */
void tcp_snd_release(struct rusty_stack *s, struct rusty_tcb *t);
/* Both rings back and the charges dropped, after tcp_sndq_clear (the connection ends). */
void tcp_buf_release_all(struct rusty_stack *s, struct rusty_tcb *t);

/* ---- tcp_sndq.c: the send queue (ring bytes and static payload ranges) */
/* Bytes the app may still queue into the ring (up to sndbuf_max; memory permitting). */
uint32_t tcp_sndq_ring_space(const struct rusty_tcb *t);
uint32_t tcp_sndq_payload_limit(const struct rusty_tcb *t);
/* Bytes accepted (0: ring full, memory refused, or no descriptor left). */
uint32_t tcp_sndq_push_bytes(struct rusty_stack *s, struct rusty_tcb *t, const uint8_t *data, uint32_t len);
uint32_t tcp_sndq_push_payload(struct rusty_tcb *t, struct rusty_payload *p, size_t off, uint32_t len);
/* The first `n` queued bytes were acknowledged (an emptied ring goes back). */
void tcp_sndq_advance(struct rusty_stack *s, struct rusty_tcb *t, uint32_t n);
/* Empty the queue, releasing payload references and the ring. */
void tcp_sndq_clear(struct rusty_stack *s, struct rusty_tcb *t);
/* Copy [seq, seq+len) out; 1 and *sum = their ones'-complement sum when computed in software. */
int tcp_sndq_copy(struct rusty_tcb *t, uint32_t seq, uint32_t len, uint8_t *out, uint64_t *sum, int want_sum);
const uint8_t *tcp_sndq_payload_at(struct rusty_tcb *t, uint32_t seq, uint32_t *run, struct rusty_payload **owner);
uint32_t tcp_sndq_ring_run(struct rusty_tcb *t, uint32_t seq);

/* ---- tcp_out.c */
void tcp_output(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
void tcp_send_ack(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
void tcp_send_rst_for(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
/* RFC 9293 3.10.7.1: RST in reply to a segment with no connection. */
void tcp_reply_rst(struct rusty_stack *s, const struct tcp_seg *seg);
void tcp_send_synack_cookie(struct rusty_stack *s, const struct tcp_seg *seg, uint32_t isn, uint16_t mss);
/* Retransmit one segment at snd_una (fast retransmit, RTO). */
void tcp_retransmit_una(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
void tcp_send_probe(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now, int keepalive);
/* Persist timer on a small open window: send what fits (1 if sent). */
int tcp_send_window_filler(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
uint32_t tcp_rcv_window(const struct rusty_tcb *t);
uint32_t tcp_rcv_open(const struct rusty_tcb *t);   /* rcv_adv - rcv_nxt, 0 if behind */
uint32_t tcp_rcv_sws_threshold(const struct rusty_tcb *t);
uint32_t tcp_flight(const struct rusty_tcb *t);
uint32_t tcp_unsent(const struct rusty_tcb *t);
uint32_t tcp_ts_now(uint64_t now);

/* ---- tcp_in.c */
void tcp_ack_segment_out(struct rusty_tcb *t);

/* ---- tcp_timer.c */
void tcp_timers_init(struct rusty_tcb *t);
void tcp_timers_stop(struct rusty_stack *s, struct rusty_tcb *t);
void tcp_rtt_sample(struct rusty_tcb *t, uint32_t rtt_us);
void tcp_arm_rtx(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
void tcp_arm_persist(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
void tcp_arm_delack(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
void tcp_arm_keepalive(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
void tcp_arm_timewait(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
void tcp_arm_finwait2(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);

/* ---- tcp_cc.c: congestion control behind a small ops struct */
struct tcp_cc_ops {
    const char *name;
    void (*init)(struct rusty_tcb *t);
    /* New data acked (snd_una advanced by `acked` bytes; ack is the new snd_una). */
    void (*on_ack)(struct rusty_stack *s, struct rusty_tcb *t, uint32_t ack, uint32_t acked, uint64_t now);
    /* A duplicate ACK (RFC 5681 2 definition). */
    void (*on_dupack)(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);
    void (*on_rto)(struct rusty_tcb *t);
    /* Before sending after an idle period (RFC 5681 4.1). */
    void (*on_idle)(struct rusty_tcb *t, uint64_t now);
};
extern const struct tcp_cc_ops tcp_newreno;
uint32_t tcp_initial_window(const struct rusty_tcb *t);

#endif
