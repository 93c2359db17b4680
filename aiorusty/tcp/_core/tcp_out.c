/*
 * tcp_out.c - TCP output: queued data and direct replies.
 *
 * Owns: segmentation of the send ring by MSS, the usable window (min of the
 * peer's window and cwnd), Nagle (RFC 1122 4.2.3.4) and sender SWS avoidance,
 * receiver SWS avoidance when computing the window we advertise (RFC 1122
 * 4.2.3.3), window scaling and timestamps on every segment (RFC 7323), SYN and
 * SYN-ACK, FIN, pure ACKs, RSTs (RFC 9293 3.10.7.1), zero-window and keep-alive
 * probes, and retransmission of the segment at SND.UNA.
 * Not: deciding when to retransmit (tcp_timer.c, tcp_cc.c), receive (tcp_in.c).
 *
 * Call chain: rusty_tcp_poll_end / tcp_in.c / timers -> tcp_output -> send_segment
 *             -> build -> rusty_ipv4_alloc + rusty_tcp_emit + rusty_ipv4_output
 *
 * The send queue (tcp_sndq.c) holds unacknowledged and unsent bytes, in the
 * send ring or in static payloads; a segment is copied from it into a frame
 * buffer when it is (re)transmitted, so there is no per-segment allocation
 * beyond the frame itself.
 *
 * TSO (devices with RUSTY_OFF_TSO: tap, AF_PACKET): up to 64 KiB of the queue
 * leave as one frame that the device (the kernel) cuts into MSS segments. A run
 * of one static payload goes by reference. A run of ring bytes (what an app
 * wrote as `bytes`) is copied once into a 64 KiB buffer of the stack's big
 * pool (buf.h) that the frame owns. Why a copy and not a reference into the
 * ring: a frame may wait in the interface queue or a wrapper's delay line past
 * this poll, and meanwhile the ring can grow (realloc), have the frame's bytes
 * acknowledged (by an earlier copy of the same range) and overwritten by new
 * writes, or go back to tcp_mem when it empties; a copy is safe on every path
 * (first transmission, go-back-N after an RTO, a full device) at the price the
 * MSS path already paid (one copy from ring to frame), and it keeps the write
 * per 64 KiB instead of per MSS, which is where the time went. With the big
 * pool out of buffers, segments fall back to MSS frames. Segments with ring bytes only leave their checksum
 * to the device (CSUM_PARTIAL); once payload ranges are queued, segments are
 * checksummed here from the payloads' precomputed sums. Retransmission after an RTO
 * goes back to SND.UNA (go-back-N, as BSD and lwIP do without SACK).
 */
#include <errno.h>
#include <string.h>

#include "checksum.h"
#include "payload.h"
#include "tcp.h"

/* An IPv4 datagram holds 65535 bytes: its header and the largest TCP header leave this. */
#define TSO_MAX_PAYLOAD (65535u - RUSTY_IPV4_HLEN - 60u)
/* Big buffers per stack (2 MiB at most, made as first needed): the frames of a
   few polls' worth of 64 KiB writes; a device that writes at once (tap)
   gives each back at the end of the poll that made it. */
#define BIG_BUFFERS 32u

uint32_t tcp_ts_now(uint64_t now)
{
    return (uint32_t)(now / 1000);      /* RFC 7323 5.4: a 1 ms timestamp clock */
}

uint32_t tcp_flight(const struct rusty_tcb *t)
{
    return seq_diff(t->snd_max, t->snd_una);
}

uint32_t tcp_unsent(const struct rusty_tcb *t)
{
    uint32_t end = t->sbuf_seq + t->slen;
    return seq_lt(t->snd_nxt, end) ? seq_diff(end, t->snd_nxt) : 0;
}

/* Free receive buffer, the most we would advertise (before tcp_mem has its say). */
uint32_t tcp_rcv_window(const struct rusty_tcb *t)
{
    uint32_t free_space = t->rcvbuf > t->rlen ? t->rcvbuf - t->rlen : 0;
    uint32_t max = (t->flags & TF_WSCALE) ? (uint32_t)0xffff << t->rcv_wscale : 0xffff;
    return free_space < max ? free_space : max;
}

/* RFC 1122 4.2.3.3: the window opens by at least min(half the buffer, one MSS). */
uint32_t tcp_rcv_sws_threshold(const struct rusty_tcb *t)
{
    return t->rcvbuf / 2 < t->mss ? t->rcvbuf / 2 : t->mss;
}

uint32_t tcp_rcv_open(const struct rusty_tcb *t)
{
    return seq_gt(t->rcv_adv, t->rcv_nxt) ? seq_diff(t->rcv_adv, t->rcv_nxt) : 0;
}

/* The window to put in the next segment (bytes, before scaling): RFC 1122 4.2.3.3
   receiver SWS avoidance, RFC 9293 3.8.6 "do not shrink the window", and no
   more than tcp_mem can back (tcp_buf.c). */
static uint32_t window_to_advertise(struct rusty_stack *s, struct rusty_tcb *t)
{
    uint32_t wnd = tcp_rcv_window(t);
    uint32_t cur = tcp_rcv_open(t);
    if (wnd <= cur)
        return cur;
    if (wnd - cur < tcp_rcv_sws_threshold(t) && wnd < t->rcvbuf)
        return cur;
    return tcp_rcv_window_grant(s, t, wnd);
}

static void set_checksum(struct rusty_buf *b, uint8_t *tcp, uint32_t src, uint32_t dst, uint16_t len)
{
    /* RUSTY_BUF_CSUM_PARTIAL: the field holds the pseudo-header sum; the device or
       rusty_dev_tx finishes it over the segment. csum_start is relative to the
       frame start and is fixed up by the layers that push headers in front. */
    uint16_t pseudo = rusty_csum_fold(rusty_csum_pseudo_ipv4(src, dst, RUSTY_IPPROTO_TCP, len));
    wr16(tcp + 16, pseudo);
    b->flags |= RUSTY_BUF_CSUM_PARTIAL;
    b->csum_start = (uint16_t)(tcp - rusty_buf_data(b));
    b->csum_offset = 16;
}

/* A segment whose data sum is known (it carries static payload bytes): the
   checksum is completed here from the header, the pseudo-header and that sum,
   and the frame leaves fully checksummed, so it is right on every device. */
static void set_checksum_full(uint8_t *tcp, uint16_t hlen, uint32_t src, uint32_t dst, uint16_t len,
                              uint64_t data_sum)
{
    uint64_t acc = rusty_csum_pseudo_ipv4(src, dst, RUSTY_IPPROTO_TCP, len);
    acc = rusty_csum_add(acc, tcp, hlen);       /* the checksum field is still 0 */
    acc += data_sum;
    wr16(tcp + 16, rusty_csum_finish(acc));
}

static void release_payload(void *owner)
{
    rusty_payload_free(owner);
}

/* Whether t's segments may be TSO frames: more than one segment waits and
   its route's device segments (RUSTY_OFF_TSO, which comes with TX_SG). Not
   towards our own addresses: local delivery takes frames linear. Decided once
   per tcp_output, not per segment. */
static int tso_usable(struct rusty_stack *s, struct rusty_tcb *t)
{
    const uint32_t need = RUSTY_OFF_TSO | RUSTY_OFF_TX_SG | RUSTY_OFF_TX_CSUM;
    if (tcp_unsent(t) <= t->mss && !t->spay)
        return 0;
    uint32_t nh;
    struct rusty_iface *ifc = rusty_ipv4_route(s, t->rip, &nh);
    return ifc && (ifc->dev->offloads & need) == need && !rusty_iface_by_ip(s, t->rip);
}

/* Whether a TSO frame of ring bytes can have a big buffer now (the pool is made
   at the first such frame). */
static int big_ready(struct rusty_stack *s)
{
    if (!s->big)
        s->big = rusty_big_pool_new(BIG_BUFFERS);
    return s->big && rusty_big_available(s->big);
}

/* The most bytes of t's send queue one frame may carry from seq: the MSS, or
   with TSO a run of one static payload or of ring bytes up to an IPv4
   datagram's 64 KiB, cut by the device into MSS segments - one frame and one
   write per 64 KiB on a tap. */
static uint32_t segment_limit(struct rusty_stack *s, struct rusty_tcb *t, uint32_t seq, int tso)
{
    uint32_t run = 0;
    if (!tso)
        return t->mss;
    struct rusty_payload *owner;
    if (!tcp_sndq_payload_at(t, seq, &run, &owner)) {
        run = tcp_sndq_ring_run(t, seq);
        if (run > t->mss && !big_ready(s))
            return t->mss;
    }
    if (run <= t->mss)
        return t->mss;
    uint32_t max = TSO_MAX_PAYLOAD / t->mss * t->mss;
    return run < max ? run : max;
}

/* Build and send one segment carrying `len` bytes of t's send queue from `seq`
   (t may be NULL when len is 0). */
static int xmit(struct rusty_stack *s, uint32_t src, uint32_t dst, const struct rusty_tcp_repr *h,
                struct rusty_tcb *t, uint32_t seq, uint32_t len, uint64_t now)
{
    struct rusty_iface *ifc;
    int err = 0;
    struct rusty_buf *b = rusty_ipv4_alloc(s, dst, &ifc, &err);
    if (!b)
        return err ? err : -ENOBUFS;
    uint16_t hlen = rusty_tcp_header_len(h);
    uint32_t offloads = ifc->dev->offloads;
    /* Scatter-gather: bytes of one static payload stay where they are and the
       device copies them once, straight into its ring (shm); the frame holds
       a reference to the payload until the device is done with it. */
    struct rusty_payload *owner = NULL;
    const uint8_t *ext = NULL;
    uint32_t run = 0;
    if (len && (offloads & RUSTY_OFF_TX_SG) && (offloads & RUSTY_OFF_TX_CSUM)) {
        ext = tcp_sndq_payload_at(t, seq, &run, &owner);
        if (run < len)
            ext = NULL;                 /* the segment spans ring bytes or two ranges: copy it */
    }
    /* A TSO frame of ring bytes is gathered into a big buffer the frame owns (see the header). */
    int gather = len && !ext && len > t->mss;   /* len 0 (an RST reply) has no t */
    uint8_t *tcp = rusty_buf_put(b, (uint16_t)(hlen + (ext || gather ? 0 : len)));
    if (!tcp) {
        rusty_buf_free(b);
        return -EMSGSIZE;
    }
    uint8_t *big = NULL;
    void *big_owner = NULL;
    if (gather && (!s->big || !(big = rusty_big_get(s->big, &big_owner)))) {
        rusty_buf_free(b);
        return -ENOBUFS;                /* lost as a full pool loses a frame: retransmission repairs it */
    }
    rusty_tcp_emit(h, tcp);
    uint64_t data_sum = 0;
    /* Precomputed payload sums pay off where checksums are computed in
       software; a device with TX checksum offload (tap, shm, loopback) gets the
       usual partial checksum, which its receiver may also trust without a pass. */
    int want_sum = !(offloads & RUSTY_OFF_TX_CSUM);
    if (ext) {
        rusty_payload_ref(owner);
        rusty_buf_set_ext(b, ext, (uint16_t)len, release_payload, owner);
        if (len > t->mss)
            b->gso_size = (uint16_t)t->mss;     /* the device cuts it into MSS segments */
        set_checksum(b, tcp, src, dst, (uint16_t)(hlen + len));
    } else if (big) {
        (void)tcp_sndq_copy(t, seq, len, big, &data_sum, 0);
        rusty_buf_set_ext(b, big, (uint16_t)len, rusty_big_release, big_owner);
        b->gso_size = (uint16_t)t->mss;
        set_checksum(b, tcp, src, dst, (uint16_t)(hlen + len));
    } else if (len && tcp_sndq_copy(t, seq, len, tcp + hlen, &data_sum, want_sum))
        set_checksum_full(tcp, hlen, src, dst, (uint16_t)(hlen + len), data_sum);
    else
        set_checksum(b, tcp, src, dst, (uint16_t)(hlen + len));
    s->stats.tcp_tx++;
    if (h->flags & RUSTY_TCP_RST)
        s->stats.tcp_rst_tx++;
    return rusty_ipv4_output(s, ifc, b, src, dst, RUSTY_IPPROTO_TCP, now);
}

/* Send a segment of this connection: seq, flags, `len` bytes of the ring from seq. */
static int send_segment(struct rusty_stack *s, struct rusty_tcb *t, uint32_t seq, uint8_t flags, uint32_t len,
                        uint64_t now)
{
    struct rusty_tcp_repr h;
    memset(&h, 0, sizeof(h));
    h.src_port = t->lport;
    h.dst_port = t->rport;
    h.seq = seq;
    h.flags = flags;
    int syn = flags & RUSTY_TCP_SYN;
    if (flags & RUSTY_TCP_ACK)
        h.ack = t->rcv_nxt;
    uint32_t wnd;
    if (syn) {
        /* RFC 7323 2.2: the window in a SYN is never scaled. */
        wnd = tcp_rcv_window(t);
        if (wnd > 0xffff)
            wnd = 0xffff;
        wnd = tcp_rcv_window_grant(s, t, wnd);
        h.window = (uint16_t)wnd;
        h.mss = tcp_mss_for(s, t->rip);
        /* Active open offers WS and TS; passive open answers what the SYN offered. */
        if ((t->flags & TF_ACTIVE) || (t->flags & TF_WSCALE)) {
            h.has_wscale = 1;
            h.wscale = t->rcv_wscale;
        }
        if ((t->flags & TF_ACTIVE) || (t->flags & TF_TS))
            h.has_timestamps = 1;
    } else {
        wnd = window_to_advertise(s, t);
        uint8_t shift = (t->flags & TF_WSCALE) ? t->rcv_wscale : 0;
        uint32_t field = wnd >> shift;
        if (field > 0xffff)
            field = 0xffff;
        h.window = (uint16_t)field;
        wnd = field << shift;
        if (t->flags & TF_TS)
            h.has_timestamps = 1;
    }
    if (h.has_timestamps) {
        h.tsval = tcp_ts_now(now);
        /* RFC 7323 3.2: TSecr is TS.Recent when ACK is set (0 in an initial SYN). */
        h.tsecr = (flags & RUSTY_TCP_ACK) ? t->ts_recent : 0;
    }
    int err = xmit(s, t->lip, t->rip, &h, t, seq, len, now);
    if (flags & RUSTY_TCP_ACK) {
        t->flags &= ~(TF_ACK_NOW | TF_DELACK_ONE);
        rusty_timer_cancel(&s->timers, &t->t_delack);
        t->last_ack_sent = t->rcv_nxt;
        if (!syn && seq_gt(t->rcv_nxt + wnd, t->rcv_adv))
            t->rcv_adv = t->rcv_nxt + wnd;
        else if (syn)
            t->rcv_adv = t->rcv_nxt + wnd;
        tcp_rcv_recharge(s, t);
    }
    t->last_send_us = now;
    return err;
}

/* Account for a data/SYN/FIN segment [seq, seq+seglen) just sent. */
static void sent(struct rusty_stack *s, struct rusty_tcb *t, uint32_t seq, uint32_t seglen, uint64_t now)
{
    uint32_t end = seq + seglen;
    if (seq_lt(seq, t->snd_max)) {
        t->retransmits++;
        s->stats.tcp_retransmits++;
        /* Karn: a retransmitted segment is never timed. */
        if ((t->flags & TF_RTT_TIMING) && seq_leq(seq, t->rtt_seq))
            t->flags &= ~TF_RTT_TIMING;
    } else if (!(t->flags & (TF_RTT_TIMING | TF_TS))) {
        t->flags |= TF_RTT_TIMING;
        t->rtt_seq = seq;
        t->rtt_start_us = now;
    }
    if (seq_gt(end, t->snd_max))
        t->snd_max = end;
    if (!rusty_timer_armed(&t->t_rtx) || (t->flags & TF_PERSIST)) {
        t->flags &= ~TF_PERSIST;
        tcp_arm_rtx(s, t, now);
    }
}

static void send_syn(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    uint8_t flags = RUSTY_TCP_SYN;
    if (t->state == TCP_SYN_RECEIVED)
        flags |= RUSTY_TCP_ACK;
    send_segment(s, t, t->iss, flags, 0, now);
    t->snd_nxt = t->iss + 1;
    sent(s, t, t->iss, 1, now);
}

void tcp_output(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    if (t->state == TCP_CLOSED || t->state == TCP_LISTEN)
        return;
    if (rusty_stack_tx_blocked(s)) {
        /* The device is full: whatever this connection would send (a SYN, an
           ACK, data) waits with its state unchanged and goes at a later poll,
           not into a queue that would drop it (stack.c, Transmit). Thousands of
           connections answering in one tick otherwise lost their SYNs and ACKs
           and paid a retransmission timeout each. */
        tcp_want_output(s, t);
        return;
    }
    switch (t->state) {
    case TCP_SYN_SENT:
    case TCP_SYN_RECEIVED:
        if (t->snd_nxt == t->iss)
            send_syn(s, t, now);
        else if (t->flags & TF_ACK_NOW)
            send_segment(s, t, t->snd_nxt, RUSTY_TCP_ACK, 0, now);
        return;
    case TCP_TIME_WAIT:
        if (t->flags & TF_ACK_NOW)
            send_segment(s, t, t->snd_nxt, RUSTY_TCP_ACK, 0, now);
        return;
    default:
        break;
    }

    if (t->snd_una == t->snd_max && now - t->last_send_us > t->rto_us)
        s->tcp->cc->on_idle(t, now);

    int sent_any = 0, blocked = 0;
    int tso = tso_usable(s, t);
    for (;;) {
        uint32_t data_end = t->sbuf_seq + t->slen;
        int fin_queued = (t->flags & TF_FIN_QUEUED) != 0;
        if (seq_lt(t->snd_nxt, data_end)) {
            uint32_t avail = seq_diff(data_end, t->snd_nxt);
            /* RFC 3042 limited transmit: each of the first two duplicate ACKs lets
               one new segment out beyond cwnd (it keeps the ACK clock going). */
            uint32_t cw = t->cwnd;
            if (!(t->flags & TF_IN_RECOVERY) && t->dupacks && t->dupacks < TCP_DUPACK_THRESH)
                cw += (uint32_t)t->dupacks * t->mss;
            uint32_t wnd = t->snd_wnd < cw ? t->snd_wnd : cw;
            uint32_t win_end = t->snd_una + wnd;
            uint32_t usable = seq_gt(win_end, t->snd_nxt) ? seq_diff(win_end, t->snd_nxt) : 0;
            uint32_t limit = segment_limit(s, t, t->snd_nxt, tso);
            uint32_t len = avail < limit ? avail : limit;
            if (len > usable)
                len = usable;
            if (!len)
                break;
            if (len < t->mss && !seq_lt(t->snd_nxt, t->snd_max)) {
                /* RFC 1122 4.2.3.4: send a short segment only if it is all we have and
                   nothing is unacknowledged (Nagle; TCP_NODELAY drops the second
                   condition), or it fills at least half the peer's largest window. */
                int idle = tcp_flight(t) == 0 || (t->flags & TF_NODELAY);
                /* A last segment carrying the FIN goes at once, as in Linux: nothing
                   more will come to fill it. */
                int last = len == avail && fin_queued;
                if (!last && !((len == avail && idle) || (idle && len >= t->max_snd_wnd / 2)))
                    break;
            }
            if (rusty_stack_tx_blocked(s)) {
                /* The device filled on the way: the rest waits in the send ring. */
                blocked = 1;
                tcp_want_output(s, t);
                break;
            }
            uint8_t flags = RUSTY_TCP_ACK;
            if (len >= avail)
                flags |= RUSTY_TCP_PSH;
            uint32_t seglen = len;
            if (fin_queued && t->snd_nxt + len == data_end) {
                flags |= RUSTY_TCP_FIN;
                seglen++;
                t->flags |= TF_FIN_SENT;
            }
            uint32_t seq = t->snd_nxt;
            send_segment(s, t, seq, flags, len, now);
            t->snd_nxt = seq + seglen;
            sent(s, t, seq, seglen, now);
            sent_any = 1;
            if (flags & RUSTY_TCP_FIN)
                break;
        } else if (fin_queued && t->snd_nxt == data_end) {
            uint32_t seq = t->snd_nxt;
            send_segment(s, t, seq, RUSTY_TCP_ACK | RUSTY_TCP_FIN, 0, now);
            t->flags |= TF_FIN_SENT;
            t->snd_nxt = seq + 1;
            sent(s, t, seq, 1, now);
            sent_any = 1;
            break;
        } else {
            break;
        }
    }
    if ((t->flags & TF_ACK_NOW) && !sent_any)
        send_segment(s, t, t->snd_nxt, RUSTY_TCP_ACK, 0, now);
    /* RFC 9293 3.8.6.1: data waiting on a closed window with nothing in flight -> persist. */
    if (!blocked && tcp_unsent(t) && tcp_flight(t) == 0 && !rusty_timer_armed(&t->t_rtx))
        tcp_arm_persist(s, t, now);
}

void tcp_send_ack(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    send_segment(s, t, t->snd_nxt, RUSTY_TCP_ACK, 0, now);
}

void tcp_send_rst_for(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    /* RFC 9293 3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>; with ACK=RCV.NXT as Linux does. */
    send_segment(s, t, t->snd_max, RUSTY_TCP_RST | RUSTY_TCP_ACK, 0, now);
}

void tcp_reply_rst(struct rusty_stack *s, const struct tcp_seg *seg)
{
    if (seg->h.flags & RUSTY_TCP_RST)
        return;                         /* RFC 9293 3.10.7.1: never answer a reset */
    struct rusty_tcp_repr h;
    memset(&h, 0, sizeof(h));
    h.src_port = seg->h.dst_port;
    h.dst_port = seg->h.src_port;
    if (seg->h.flags & RUSTY_TCP_ACK) {
        h.seq = seg->h.ack;             /* <SEQ=SEG.ACK><CTL=RST> */
        h.flags = RUSTY_TCP_RST;
    } else {
        uint32_t seglen = seg->h.payload_len + !!(seg->h.flags & RUSTY_TCP_SYN) + !!(seg->h.flags & RUSTY_TCP_FIN);
        h.seq = 0;                      /* <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> */
        h.ack = seg->h.seq + seglen;
        h.flags = RUSTY_TCP_RST | RUSTY_TCP_ACK;
    }
    xmit(s, seg->dst, seg->src, &h, NULL, 0, 0, seg->now);
}

void tcp_send_synack_cookie(struct rusty_stack *s, const struct tcp_seg *seg, uint32_t isn, uint16_t mss)
{
    /* RFC 4987 3.6: no state is kept, so only the MSS survives (no WS/TS offered). */
    struct rusty_tcp_repr h;
    memset(&h, 0, sizeof(h));
    h.src_port = seg->h.dst_port;
    h.dst_port = seg->h.src_port;
    h.seq = isn;
    h.ack = seg->h.seq + 1;
    h.flags = RUSTY_TCP_SYN | RUSTY_TCP_ACK;
    h.window = s->cfg.tcp_rcvbuf > 0xffff ? 0xffff : (uint16_t)s->cfg.tcp_rcvbuf;
    h.mss = mss;
    xmit(s, seg->dst, seg->src, &h, NULL, 0, 0, seg->now);
}

void tcp_retransmit_una(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    if (t->state == TCP_SYN_SENT || t->state == TCP_SYN_RECEIVED) {
        send_syn(s, t, now);
        return;
    }
    uint32_t data_end = t->sbuf_seq + t->slen;
    uint32_t seq = t->snd_una;
    uint32_t len = seq_lt(seq, data_end) ? seq_diff(data_end, seq) : 0;
    if (len > t->mss)
        len = t->mss;
    uint8_t flags = RUSTY_TCP_ACK;
    uint32_t seglen = len;
    if ((t->flags & TF_FIN_SENT) && seq + len == data_end) {
        flags |= RUSTY_TCP_FIN;
        seglen++;
    }
    if (!seglen)
        return;
    send_segment(s, t, seq, flags, len, now);
    sent(s, t, seq, seglen, now);
    if (seq_lt(t->snd_nxt, seq + seglen))
        t->snd_nxt = seq + seglen;
}

void tcp_send_probe(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now, int keepalive)
{
    /* Keep-alive (RFC 1122 4.2.3.6) and zero-window probes alike: <SEQ=SND.UNA-1>
       with no data, which any live peer must answer with an ACK carrying its
       current window. DEVIATION: RFC 9293 3.8.6.1 suggests a zero-window probe
       carry one new octet; like Linux we send none, so a probe never enters the
       sequence space and cannot be mistaken for data in flight. */
    (void)keepalive;
    send_segment(s, t, t->snd_una - 1, RUSTY_TCP_ACK, 0, now);
}

int tcp_send_window_filler(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    /* RFC 1122 4.2.3.4 (d), the "override timeout": when the persist timer fires
       on a small but open window, send what fits instead of waiting for the
       window to reach a full segment (which a peer may never offer). */
    uint32_t len = tcp_unsent(t);
    uint32_t win_end = t->snd_una + t->snd_wnd;
    uint32_t usable = seq_gt(win_end, t->snd_nxt) ? seq_diff(win_end, t->snd_nxt) : 0;
    if (len > usable)
        len = usable;
    if (len > t->mss)
        len = t->mss;
    if (!len)
        return 0;
    uint32_t seq = t->snd_nxt;
    send_segment(s, t, seq, RUSTY_TCP_ACK | RUSTY_TCP_PSH, len, now);
    t->snd_nxt = seq + len;
    sent(s, t, seq, len, now);
    return 1;
}
