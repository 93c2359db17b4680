/*
 * tcp_in.c - TCP input: checksum, demultiplexing and RFC 9293 3.10.7 "segment arrives".
 *
 * Owns: the receive path for all eleven states. Checks run in the RFC's order:
 * CLOSED (3.10.7.1) -> LISTEN (3.10.7.2, SYN backlog and SYN cookies) ->
 * SYN-SENT (3.10.7.3) -> otherwise (3.10.7.4): PAWS (RFC 7323 5.3), sequence
 * acceptability (first check, four cases), RST (second, with RFC 5961 3.2
 * challenge ACKs), SYN (fourth, RFC 5961 4.2), ACK (fifth, RFC 5961 5.2 range
 * check, NewReno via tcp_cc.c, RTT via tcp_timer.c, window update), text
 * (seventh: in order, or out of order into the receive ring with a bounded set
 * of ranges), FIN (eighth). Not: output (tcp_out.c), user calls (tcp.c).
 *
 * Call chain: rusty_ipv4_input -> rusty_tcp_input -> listen_input | syn_sent_input |
 *             segment_arrives -> ack_process -> receive_data -> receive_fin
 *
 * Received frames are copied into the connection's receive ring and freed at
 * once: one copy, no buffers held (holding frames for zero-copy reads is not
 * done yet).
 *
 * URG and PSH are ignored, as in Rusty: PSH needs no action from a receiver
 * that hands data to the application as soon as it is in order (RFC 9293
 * 3.9.1.2 allows this), and the urgent mechanism is only for legacy
 * applications (RFC 6093); urgent data is delivered inline as ordinary data.
 */
#include <errno.h>
#include <string.h>

#include "checksum.h"
#include "tcp.h"

#define PAWS_IDLE_US (24ull * 24 * 3600 * 1000000) /* RFC 7323 5.5: TS.Recent invalid after 24 days idle */

/* ------------------------------------------------------------- SYN cookies */

/* RFC 4987 3.6 style: the ISN carries a 5-bit time counter (64 s steps), a
   3-bit MSS index and a 24-bit keyed hash of the 4-tuple, the peer's ISN and
   the counter. An ACK is valid for the current and the previous period. */
static const uint16_t cookie_mss[8] = {216, 536, 1024, 1200, 1360, 1440, 1452, 1460};

static uint32_t cookie_hash(struct rusty_stack *s, const struct tcp_seg *seg, uint32_t peer_isn, uint32_t tc,
                            uint32_t idx)
{
    uint32_t w[5] = {seg->src, seg->dst, ((uint32_t)seg->h.src_port << 16) | seg->h.dst_port, peer_isn,
                     (tc << 8) | idx};
    return (uint32_t)tcp_siphash(s->tcp->cookie_secret, w, 5) & 0xffffff;
}

static uint32_t cookie_make(struct rusty_stack *s, const struct tcp_seg *seg, uint16_t *mss)
{
    uint16_t want = seg->h.mss ? seg->h.mss : TCP_DEFAULT_MSS;
    uint16_t ours = tcp_mss_for(s, seg->src);
    if (want > ours)
        want = ours;
    uint32_t idx = 0;
    for (uint32_t i = 0; i < 8; i++)
        if (cookie_mss[i] <= want)
            idx = i;
    uint32_t tc = (uint32_t)(seg->now >> 26) & 0x1f;
    *mss = cookie_mss[idx];
    return (tc << 27) | (idx << 24) | cookie_hash(s, seg, seg->h.seq, tc, idx);
}

/* Returns the MSS the cookie carried, 0 when it is not a valid cookie. */
static uint16_t cookie_check(struct rusty_stack *s, const struct tcp_seg *seg)
{
    uint32_t c = seg->h.ack - 1;
    uint32_t tc = c >> 27, idx = (c >> 24) & 7;
    uint32_t tnow = (uint32_t)(seg->now >> 26) & 0x1f;
    if (((tnow - tc) & 0x1f) > 1)
        return 0;
    if (cookie_hash(s, seg, seg->h.seq - 1, tc, idx) != (c & 0xffffff))
        return 0;
    return cookie_mss[idx];
}

/* ----------------------------------------------------------------- helpers */

static void challenge_ack(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    /* RFC 5961 3.2 / 4.2 / 5.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, at most
       TCP_CHALLENGE_ACK_LIMIT a second across the stack (RFC 5961 7). */
    struct rusty_tcp_state *ts = s->tcp;
    if (now - ts->challenge_start_us >= 1000000) {
        ts->challenge_start_us = now;
        ts->challenge_count = 0;
    }
    if (ts->challenge_count >= TCP_CHALLENGE_ACK_LIMIT)
        return;
    ts->challenge_count++;
    s->stats.tcp_challenge_acks++;
    tcp_send_ack(s, t, now);
}

static void take_options(struct rusty_stack *s, struct rusty_tcb *t, const struct tcp_seg *seg)
{
    const struct rusty_tcp_repr *h = &seg->h;
    t->peer_mss = h->mss ? h->mss : TCP_DEFAULT_MSS;
    if (h->has_wscale) {
        /* RFC 7323 2.3: a shift above 14 is treated as 14. */
        t->flags |= TF_WSCALE;
        t->snd_wscale = h->wscale > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : h->wscale;
    } else {
        t->flags &= ~TF_WSCALE;
        t->snd_wscale = t->rcv_wscale = 0;
    }
    if (h->has_timestamps) {
        t->flags |= TF_TS;
        t->ts_recent = h->tsval;
        t->ts_recent_us = seg->now;
    } else {
        t->flags &= ~TF_TS;
    }
    if (h->sack_permitted)
        t->flags |= TF_SACK_OK;
    /* A peer announcing a tiny MSS (1 byte) would have us cut every write into
       as many segments as bytes, and keep as many in flight: a cheap way to make
       us work per byte. Linux floors the send MSS at TCP_MIN_SND_MSS
       (__tcp_mtu_to_mss, net/ipv4/tcp_output.c, since CVE-2019-11479); RFC 9293
       3.7.1's Eff.snd.MSS has no floor. Here the floor applies to the peer's
       value only, so our own interface's MTU still bounds the segments. */
    uint16_t peer = t->peer_mss < TCP_MIN_SND_MSS ? TCP_MIN_SND_MSS : t->peer_mss;
    uint16_t ours = tcp_mss_for(s, t->rip);
    uint16_t mss = peer < ours ? peer : ours;
    /* Payload per segment leaves room for the options every segment carries. */
    if ((t->flags & TF_TS) && mss > 64)
        mss -= 12;
    t->mss = mss;
}

static void start_data_phase(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    /* RFC 6298 5.7: a SYN timed out and no RTT was measured: start data with RTO = 3 s. */
    if (t->retries && !t->srtt_us)
        t->rto_us = 3000000;
    /* RFC 5681 3.1 / RFC 6928: a lost SYN or SYN-ACK means an initial window of one segment. */
    t->cwnd = t->retries ? t->mss : tcp_initial_window(t);
    t->recover = t->iss;
    t->retries = 0;
    t->max_retries = TCP_DATA_RETRIES;
    t->last_rx_us = now;
    (void)s;
}

static void rtt_from_ack(struct rusty_tcb *t, const struct tcp_seg *seg, uint32_t ack)
{
    if ((t->flags & TF_TS) && seg->h.has_timestamps && seg->h.tsecr) {
        /* RFC 7323 4.1 (RTTM): any ACK advancing SND.UNA gives a sample. */
        uint32_t ms = tcp_ts_now(seg->now) - seg->h.tsecr;
        if (ms < 60000)
            tcp_rtt_sample(t, ms * 1000 + 500);
    } else if ((t->flags & TF_RTT_TIMING) && seq_gt(ack, t->rtt_seq)) {
        t->flags &= ~TF_RTT_TIMING;
        tcp_rtt_sample(t, (uint32_t)(seg->now - t->rtt_start_us));
    }
}

/* ------------------------------------------------------------------ LISTEN */

static struct rusty_tcb *new_passive(struct rusty_stack *s, struct rusty_tcp_listener *l, const struct tcp_seg *seg)
{
    struct rusty_tcb *t = tcp_tcb_alloc(s);
    if (!t)
        return NULL;
    /* Rings come with the first bytes (tcp_buf.c): a connection costs a TCB only. */
    t->sndbuf_max = l->sndbuf_max;
    t->rcvbuf = l->rcvbuf;
    t->rcvbuf_max = l->rcvbuf_max;
    t->lip = seg->dst;
    t->rip = seg->src;
    t->lport = seg->h.dst_port;
    t->rport = seg->h.src_port;
    t->flags |= l->flags & (TF_NODELAY | TF_KEEPALIVE | TF_RCVBUF_LOCK);
    t->keep_idle_us = l->keep_idle_us;
    t->keep_intvl_us = l->keep_intvl_us;
    t->keep_cnt = l->keep_cnt;
    t->listener = l;
    l->syn_count++;
    return t;
}

static void segment_arrives(struct rusty_stack *s, struct rusty_tcb *t, struct tcp_seg *seg);

static void listen_input(struct rusty_stack *s, struct rusty_tcp_listener *l, struct tcp_seg *seg, uint32_t min_isn,
                         int reuse)
{
    const struct rusty_tcp_repr *h = &seg->h;
    if (h->flags & RUSTY_TCP_RST)
        return;                         /* 3.10.7.2 first: ignore */
    if (h->flags & RUSTY_TCP_ACK) {
        /* Second: an ACK to a listener is bad, unless it completes a SYN cookie. */
        uint16_t mss = (h->flags & RUSTY_TCP_SYN) ? 0 : cookie_check(s, seg);
        if (!mss) {
            tcp_reply_rst(s, seg);
            return;
        }
        if (l->acc_count >= l->backlog) {
            /* As Linux's ListenOverflows: drop, and the peer's next segment (its
               data, or this ACK again) finds room once the app has accepted. */
            s->stats.tcp_listen_overflows++;
            return;
        }
        if (tcp_mem_admit(s))
            return;
        struct rusty_tcb *t = new_passive(s, l, seg);
        if (!t)
            return;
        s->stats.tcp_syn_cookies_ok++;
        s->stats.tcp_passive_opens++;
        t->flags |= TF_COOKIE;
        t->iss = h->ack - 1;
        t->snd_una = t->iss;
        t->snd_nxt = t->snd_max = t->iss + 1;
        t->sbuf_seq = t->iss + 1;
        t->irs = h->seq - 1;
        t->rcv_nxt = h->seq;
        t->rcv_adv = t->rcv_nxt + (s->cfg.tcp_rcvbuf > 0xffff ? 0xffff : s->cfg.tcp_rcvbuf);
        tcp_rcv_recharge(s, t);         /* the window the cookie's SYN-ACK offered */
        t->peer_mss = mss;
        uint16_t ours = tcp_mss_for(s, t->rip);
        t->mss = mss < ours ? mss : ours;
        t->snd_wl1 = h->seq;
        t->state = TCP_SYN_RECEIVED;
        tcp_hash_insert(s, t);
        segment_arrives(s, t, seg);     /* completes the handshake and takes any data */
        return;
    }
    if (!(h->flags & RUSTY_TCP_SYN))
        return;                         /* fourth: other text or control, drop */
    /* Third: a SYN. A full SYN queue, or a full accept queue, answers with a
       cookie and keeps no state: the handshake completes once the app has made
       room (a full accept queue then drops the cookie's ACK, see above). */
    if (tcp_mem_admit(s))
        return;
    if ((l->syn_count >= l->backlog || l->acc_count >= l->backlog) && !reuse) {
        uint16_t mss;
        uint32_t isn = cookie_make(s, seg, &mss);
        s->stats.tcp_syn_cookies_sent++;
        tcp_send_synack_cookie(s, seg, isn, mss);
        return;
    }
    struct rusty_tcb *t = new_passive(s, l, seg);
    if (!t)
        return;                         /* no control block: counted in tcp_conns_refused */
    s->stats.tcp_passive_opens++;
    t->rcv_wscale = tcp_pick_wscale(t->rcvbuf_max);
    take_options(s, t, seg);
    t->irs = h->seq;
    t->rcv_nxt = h->seq + 1;
    t->rcv_adv = t->rcv_nxt;            /* no window offered until the SYN-ACK */
    t->iss = tcp_isn(s, t->lip, t->lport, t->rip, t->rport, seg->now);
    if (reuse && seq_lt(t->iss, min_isn))
        t->iss = min_isn;               /* RFC 9293 3.10.7.4 / RFC 6191: above the old incarnation */
    t->snd_una = t->snd_nxt = t->snd_max = t->iss;
    t->sbuf_seq = t->iss + 1;
    t->snd_wnd = t->max_snd_wnd = h->window; /* RFC 7323 2.2: a SYN's window is not scaled */
    t->snd_wl1 = h->seq;
    t->snd_wl2 = t->iss;
    t->max_retries = TCP_SYNACK_RETRIES;
    t->state = TCP_SYN_RECEIVED;
    tcp_hash_insert(s, t);
    /* Data carried by the SYN is not queued; the peer sends it again (RFC 9293 allows either). */
    tcp_output(s, t, seg->now);
}

/* ---------------------------------------------------------------- SYN-SENT */

static void syn_sent_input(struct rusty_stack *s, struct rusty_tcb *t, struct tcp_seg *seg)
{
    const struct rusty_tcp_repr *h = &seg->h;
    int ack = (h->flags & RUSTY_TCP_ACK) != 0;
    /* 3.10.7.3 first: the ACK. */
    if (ack && (seq_leq(h->ack, t->iss) || seq_gt(h->ack, t->snd_max))) {
        if (!(h->flags & RUSTY_TCP_RST))
            tcp_reply_rst(s, seg);
        return;
    }
    /* Second: RST, accepted only with an acceptable ACK. */
    if (h->flags & RUSTY_TCP_RST) {
        if (ack) {
            s->stats.tcp_rst_rx++;
            tcp_drop(s, t, -ECONNREFUSED);
        }
        return;
    }
    /* Fourth: SYN. */
    if (!(h->flags & RUSTY_TCP_SYN))
        return;
    /* Our SYN offered a window from the rcv_nxt we had then (meaningless: we did
       not know the peer's ISN); move that right edge into the peer's sequence
       space, or rcv_adv - rcv_nxt is a random number and, half the time, huge:
       "do not shrink the window" then kept advertising 0xffff << wscale over a
       full ring, and the peer's segments fell off its end. */
    uint32_t syn_wnd = seq_diff(t->rcv_adv, t->rcv_nxt);
    t->irs = h->seq;
    t->rcv_nxt = h->seq + 1;
    t->rcv_adv = t->rcv_nxt + (syn_wnd <= 0xffff ? syn_wnd : 0);
    take_options(s, t, seg);
    t->snd_wnd = t->max_snd_wnd = h->window;
    t->snd_wl1 = h->seq;
    if (ack) {
        t->snd_wl2 = h->ack;
        t->snd_una = h->ack;
        if (seq_lt(t->snd_nxt, t->snd_una))
            t->snd_nxt = t->snd_una;
        rtt_from_ack(t, seg, h->ack);
        start_data_phase(s, t, seg->now);
        rusty_timer_cancel(&s->timers, &t->t_rtx);
        tcp_established(s, t, seg->now);
        if (t->flags & TF_FIN_QUEUED)
            t->state = TCP_FIN_WAIT_1;
        t->flags |= TF_ACK_NOW;
        tcp_want_output(s, t);
        /* Data in a SYN-ACK is not queued (rare; the peer sends it again). */
    } else {
        /* Simultaneous open: SYN-RECEIVED, send <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>. */
        t->state = TCP_SYN_RECEIVED;
        t->snd_nxt = t->iss;
        t->max_retries = TCP_SYNACK_RETRIES;
        tcp_output(s, t, seg->now);
    }
}

/* -------------------------------------------------------------------- text */

/* Insert [start, end) into the sorted out-of-order ranges; 0 if it cannot be held. */
static int ooo_insert(struct rusty_tcb *t, uint32_t start, uint32_t end)
{
    uint32_t i = 0;
    while (i < t->n_ooo && seq_lt(t->ooo[i].end, start))
        i++;
    /* ranges [i, j) overlap or touch [start, end) */
    uint32_t j = i;
    while (j < t->n_ooo && seq_leq(t->ooo[j].start, end))
        j++;
    if (i == j) {
        if (t->n_ooo == TCP_MAX_OOO)
            return 0;
        memmove(&t->ooo[i + 1], &t->ooo[i], (t->n_ooo - i) * sizeof(t->ooo[0]));
        t->ooo[i].start = start;
        t->ooo[i].end = end;
        t->n_ooo++;
        return 1;
    }
    t->ooo[i].start = seq_min(start, t->ooo[i].start);
    t->ooo[i].end = seq_max(end, t->ooo[j - 1].end);
    memmove(&t->ooo[i + 1], &t->ooo[j], (t->n_ooo - j) * sizeof(t->ooo[0]));
    t->n_ooo -= (uint8_t)(j - i - 1);
    return 1;
}

static void ring_write(struct rusty_tcb *t, uint32_t offset, const uint8_t *data, uint32_t len)
{
    uint32_t pos = (t->rhead + t->rlen + offset) % t->rcap;
    uint32_t first = t->rcap - pos < len ? t->rcap - pos : len;
    memcpy(t->rbuf + pos, data, first);
    memcpy(t->rbuf, data + first, len - first);
}

static void receive_fin(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now);

/* Seventh check: segment text. Returns 1 when the FIN (if any) is now in order. */
static int receive_data(struct rusty_stack *s, struct rusty_tcb *t, struct tcp_seg *seg)
{
    uint32_t len = seg->len;
    if (!len)
        return 1;
    /* What may be stored: the window offered, or more where the ring has room. */
    uint32_t open = tcp_rcv_open(t), ring_free = t->rcap > t->rlen ? t->rcap - t->rlen : 0;
    uint32_t space = open > ring_free ? open : ring_free;
    if (seq_diff(seg->seq, t->rcv_nxt) + len > space) {
        /* Past the end of the ring (the peer overran our window): keep what fits. */
        uint32_t off = seq_diff(seg->seq, t->rcv_nxt);
        len = off >= space ? 0 : space - off;
        seg->h.flags &= (uint8_t)~RUSTY_TCP_FIN;
        s->stats.tcp_rx_past_window++;
        if (!len)
            return 0;
    }
    if (tcp_rcv_reserve(s, t, t->rlen + seq_diff(seg->seq, t->rcv_nxt) + len))
        return 0;                       /* no memory for the ring (counted): the peer sends it again */
    if (len > t->rcv_mss)
        t->rcv_mss = len;
    if (seg->seq != t->rcv_nxt) {
        /* Out of order: hold it in the ring past the in-order data, remember the range,
           and send an immediate duplicate ACK (RFC 5681 4.2; RFC 9293 3.10.7.4 seventh). */
        s->stats.tcp_ooo_segments++;
        uint32_t off = seq_diff(seg->seq, t->rcv_nxt);
        if (ooo_insert(t, seg->seq, seg->seq + len))
            ring_write(t, off, seg->data, len);
        if (seg->h.flags & RUSTY_TCP_FIN) {
            t->flags |= TF_OOO_FIN;
            t->ooo_fin = seg->seq + len;
        }
        tcp_send_ack(s, t, seg->now);
        return 0;
    }
    ring_write(t, 0, seg->data, len);
    t->rlen += len;
    t->rcv_nxt += len;
    int filled = 0;
    while (t->n_ooo && seq_leq(t->ooo[0].start, t->rcv_nxt)) {
        if (seq_gt(t->ooo[0].end, t->rcv_nxt)) {
            t->rlen += seq_diff(t->ooo[0].end, t->rcv_nxt);
            t->rcv_nxt = t->ooo[0].end;
        }
        memmove(&t->ooo[0], &t->ooo[1], (t->n_ooo - 1) * sizeof(t->ooo[0]));
        t->n_ooo--;
        filled = 1;
    }
    tcp_rcv_recharge(s, t);
    tcp_mark_event(s, t, RUSTY_EV_TCP_READABLE);
    /* RFC 1122 4.2.3.2 / RFC 5681 4.2: ACK at least every second full-sized
       segment, at once when a hole was filled, otherwise within 40 ms.
       DEVIATION: the ACK is sent at the end of the poll, so segments that arrive
       in one receive burst get one (stretch) ACK, as Linux does after GRO;
       out-of-order segments are still ACKed one by one, at once. */
    if (filled) {
        t->flags |= TF_ACK_NOW;
    } else if (len >= t->rcv_mss) {
        if (t->flags & TF_DELACK_ONE)
            t->flags |= TF_ACK_NOW;
        else
            t->flags |= TF_DELACK_ONE;
    }
    if (t->flags & TF_ACK_NOW)
        tcp_want_output(s, t);
    else
        tcp_arm_delack(s, t, seg->now);
    if ((t->flags & TF_OOO_FIN) && t->rcv_nxt == t->ooo_fin) {
        t->flags &= ~TF_OOO_FIN;
        receive_fin(s, t, seg->now);
    }
    return 1;
}

static int fin_acked(const struct rusty_tcb *t)
{
    return (t->flags & TF_FIN_SENT) && seq_gt(t->snd_una, t->sbuf_seq + t->slen);
}

/* Eighth check: FIN. */
static void receive_fin(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    if (t->flags & TF_EOF_SEEN)
        return;
    t->rcv_nxt++;
    t->flags |= TF_EOF_SEEN | TF_ACK_NOW;
    tcp_want_output(s, t);
    tcp_mark_event(s, t, RUSTY_EV_TCP_READABLE);
    if (!t->rlen)
        tcp_mark_event(s, t, RUSTY_EV_TCP_EOF);
    switch (t->state) {
    case TCP_SYN_RECEIVED:
    case TCP_ESTABLISHED:
        tcp_set_state(s, t, TCP_CLOSE_WAIT, now);
        break;
    case TCP_FIN_WAIT_1:
        tcp_set_state(s, t, fin_acked(t) ? TCP_TIME_WAIT : TCP_CLOSING, now);
        break;
    case TCP_FIN_WAIT_2:
        tcp_set_state(s, t, TCP_TIME_WAIT, now);
        break;
    default:
        break;
    }
}

/* ----------------------------------------------------------- ACK (fifth) */

/* Returns 0 when the segment must be dropped (or the TCB is gone). */
static int ack_process(struct rusty_stack *s, struct rusty_tcb *t, struct tcp_seg *seg)
{
    const struct rusty_tcp_repr *h = &seg->h;
    uint32_t ack = h->ack;
    /* RFC 9293 3.10.7.4 fifth, SYN-RECEIVED: unless SND.UNA < SEG.ACK =< SND.NXT,
       <SEQ=SEG.ACK><CTL=RST>. Checked before the RFC 5961 5.2 range, which is for
       synchronized states (a challenge ACK here would not tell an old duplicate
       or a confused peer that this ACK is wrong). */
    if (t->state == TCP_SYN_RECEIVED && !(seq_gt(ack, t->snd_una) && seq_leq(ack, t->snd_max))) {
        tcp_reply_rst(s, seg);
        return 0;
    }
    /* RFC 5961 5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT
       (SND.NXT here is the highest sequence sent, snd_max). */
    if (seq_gt(ack, t->snd_max) || seq_lt(ack, t->snd_una - t->max_snd_wnd)) {
        challenge_ack(s, t, seg->now);
        return 0;
    }
    if (t->state == TCP_SYN_RECEIVED) {
        t->snd_wnd = (uint32_t)h->window << ((t->flags & TF_WSCALE) ? t->snd_wscale : 0);
        t->max_snd_wnd = t->snd_wnd;
        t->snd_wl1 = seg->seq;
        t->snd_wl2 = ack;
        rtt_from_ack(t, seg, ack);
        start_data_phase(s, t, seg->now);
        t->snd_una = ack;               /* the SYN is acknowledged */
        rusty_timer_cancel(&s->timers, &t->t_rtx);
        tcp_established(s, t, seg->now);
        if (t->flags & TF_FIN_QUEUED)
            t->state = TCP_FIN_WAIT_1;
        tcp_want_output(s, t);
    }
    uint32_t scaled = (uint32_t)h->window << ((t->flags & TF_WSCALE) ? t->snd_wscale : 0);
    if (seq_gt(ack, t->snd_una)) {
        uint32_t acked = seq_diff(ack, t->snd_una);
        uint32_t dat = 0;
        if (seq_gt(ack, t->sbuf_seq)) {
            dat = seq_diff(ack, t->sbuf_seq);
            if (dat > t->slen)
                dat = t->slen;
            tcp_sndq_advance(s, t, dat);
        }
        rtt_from_ack(t, seg, ack);
        t->snd_una = ack;
        if (seq_lt(t->snd_nxt, t->snd_una))
            t->snd_nxt = t->snd_una;
        t->retries = 0;
        s->tcp->cc->on_ack(s, t, ack, acked, seg->now);
        /* RFC 6298 5.2 / 5.3: stop the timer when all is acked, else restart it. */
        if (t->snd_una == t->snd_max)
            rusty_timer_cancel(&s->timers, &t->t_rtx);
        else if (!(t->flags & TF_IN_RECOVERY))
            tcp_arm_rtx(s, t, seg->now);
        /* Room reported only to a sender that was refused some (as EPOLLOUT under
         * EPOLLET): an ACK per response otherwise costs the loop an event per request. */
        if (dat && (t->flags & TF_WANT_WRITE) && !(t->flags & TF_FIN_QUEUED)) {
            t->flags &= ~TF_WANT_WRITE;
            tcp_mark_event(s, t, RUSTY_EV_TCP_WRITABLE);
        }
        tcp_want_output(s, t);
    } else if (ack == t->snd_una && seg->len == 0 && !(h->flags & (RUSTY_TCP_SYN | RUSTY_TCP_FIN)) &&
               scaled == t->snd_wnd && tcp_flight(t) > 0 && seq_lt(t->snd_una, t->snd_max)) {
        /* RFC 5681 2: a duplicate ACK. */
        s->tcp->cc->on_dupack(s, t, seg->now);
    }
    if (scaled == 0 && (t->flags & TF_PERSIST))
        t->retries = 0;                 /* a live peer answering our zero-window probes */
    /* Window update (fifth check): only when SND.UNA =< SEG.ACK (an older ACK is a
       duplicate and "can be ignored"), from a segment newer than the last one used. */
    if (seq_geq(ack, t->snd_una) &&
        (seq_lt(t->snd_wl1, seg->seq) || (t->snd_wl1 == seg->seq && seq_leq(t->snd_wl2, ack)))) {
        uint32_t old = t->snd_wnd;
        t->snd_wnd = scaled;
        t->snd_wl1 = seg->seq;
        t->snd_wl2 = ack;
        if (scaled > t->max_snd_wnd)
            t->max_snd_wnd = scaled;
        if (scaled > old)
            tcp_want_output(s, t);
        if (scaled)
            t->persist_backoff = 0;
        if (scaled && (t->flags & TF_PERSIST)) {
            rusty_timer_cancel(&s->timers, &t->t_rtx);
            t->flags &= ~TF_PERSIST;
            t->retries = 0;
            tcp_want_output(s, t);
        }
    }
    switch (t->state) {
    case TCP_FIN_WAIT_1:
        if (fin_acked(t)) {
            tcp_set_state(s, t, TCP_FIN_WAIT_2, seg->now);
            if (!t->sock)
                tcp_arm_finwait2(s, t, seg->now);
        }
        break;
    case TCP_CLOSING:
        if (fin_acked(t))
            tcp_set_state(s, t, TCP_TIME_WAIT, seg->now);
        break;
    case TCP_LAST_ACK:
        if (fin_acked(t)) {
            tcp_drop(s, t, 0);
            return 0;
        }
        break;
    default:
        break;
    }
    return 1;
}

/* ----------------------------------------------------- 3.10.7.4 otherwise */

static void segment_arrives(struct rusty_stack *s, struct rusty_tcb *t, struct tcp_seg *seg)
{
    struct rusty_tcp_repr *h = &seg->h;
    if (t->state == TCP_SYN_SENT) {
        syn_sent_input(s, t, seg);
        return;
    }
    uint32_t orig_seq = h->seq;
    uint8_t orig_flags = h->flags;
    if (t->state == TCP_SYN_RECEIVED && (h->flags & (RUSTY_TCP_SYN | RUSTY_TCP_ACK | RUSTY_TCP_RST)) == RUSTY_TCP_SYN &&
        h->seq == t->irs) {
        /* The peer sent its SYN again: our SYN-ACK was lost; send it again now. */
        tcp_retransmit_una(s, t, seg->now);
        return;
    }
    if (t->state == TCP_SYN_RECEIVED && !t->listener &&
        (h->flags & (RUSTY_TCP_SYN | RUSTY_TCP_ACK | RUSTY_TCP_RST)) == (RUSTY_TCP_SYN | RUSTY_TCP_ACK) &&
        h->seq == t->irs && seg->len == 0 && h->ack == t->snd_max) {
        /* Simultaneous open (RFC 9293 figure 8): the peer's SYN-ACK repeats its SYN
           and acknowledges ours. Take it as the ACK it is, as Linux does, instead of
           the challenge ACK a SYN would get. */
        h->flags &= (uint8_t)~RUSTY_TCP_SYN;
        h->seq = seg->seq = t->rcv_nxt;
        orig_seq = h->seq;
        orig_flags = h->flags;
    }
    uint32_t seglen = seg->len + !!(h->flags & RUSTY_TCP_SYN) + !!(h->flags & RUSTY_TCP_FIN);
    uint32_t adv = seq_gt(t->rcv_adv, t->rcv_nxt) ? seq_diff(t->rcv_adv, t->rcv_nxt) : 0;
    uint32_t space = t->rcap > t->rlen ? t->rcap - t->rlen : 0;
    uint32_t wnd = adv > space ? adv : space;

    /* RFC 7323 5.3 R1 (PAWS): a segment whose TSval is older than TS.Recent is a
       duplicate from an earlier incarnation of the sequence space. */
    if ((t->flags & TF_TS) && h->has_timestamps && !(h->flags & RUSTY_TCP_RST) && seq_lt(h->tsval, t->ts_recent)) {
        if (seg->now - t->ts_recent_us > PAWS_IDLE_US) {
            t->ts_recent = h->tsval;    /* 5.5: TS.Recent went stale */
        } else {
            tcp_send_ack(s, t, seg->now);
            return;
        }
    }

    /* First check: sequence number acceptability (the four cases). */
    int ok;
    uint32_t rcv_end = t->rcv_nxt + wnd;
    if (seglen == 0)
        ok = wnd == 0 ? seg->seq == t->rcv_nxt : seq_in(seg->seq, t->rcv_nxt, rcv_end);
    else
        ok = wnd != 0 && (seq_in(seg->seq, t->rcv_nxt, rcv_end) || seq_in(seg->seq + seglen - 1, t->rcv_nxt, rcv_end));
    if (!ok && wnd == 0 && seg->seq == t->rcv_nxt) {
        /* A zero window still takes ACKs and RSTs (3.10.7.4: "special allowance");
           text that did not fit is answered with an ACK showing the closed window. */
        if (seg->len || (h->flags & RUSTY_TCP_FIN)) {
            t->flags |= TF_ACK_NOW;
            tcp_want_output(s, t);
        }
        seg->len = 0;
        h->flags &= (uint8_t)~(RUSTY_TCP_FIN | RUSTY_TCP_SYN);
        ok = 1;
    }
    if (!ok) {
        if (!(h->flags & RUSTY_TCP_RST)) {
            if (t->state == TCP_TIME_WAIT && (h->flags & RUSTY_TCP_FIN))
                tcp_arm_timewait(s, t, seg->now);   /* a retransmitted FIN restarts 2*MSL */
            tcp_send_ack(s, t, seg->now);
        }
        return;
    }
    /* Trim to the window: the part before RCV.NXT (SYN first), then past the right edge. */
    if (seq_lt(seg->seq, t->rcv_nxt)) {
        uint32_t d = seq_diff(t->rcv_nxt, seg->seq);
        if (h->flags & RUSTY_TCP_SYN) {
            h->flags &= (uint8_t)~RUSTY_TCP_SYN;
            d--;
            seg->seq++;
        }
        uint32_t k = d < seg->len ? d : seg->len;
        seg->data += k;
        seg->len -= k;
        seg->seq += k;
        if (d > k)
            h->flags &= (uint8_t)~RUSTY_TCP_FIN;
    }
    if (seq_gt(seg->seq + seg->len, rcv_end)) {
        seg->len = seq_gt(rcv_end, seg->seq) ? seq_diff(rcv_end, seg->seq) : 0;
        h->flags &= (uint8_t)~RUSTY_TCP_FIN;
    }
    /* RFC 7323 4.3: remember the timestamp of the segment that covers Last.ACK.sent. */
    if ((t->flags & TF_TS) && h->has_timestamps && seq_leq(orig_seq, t->last_ack_sent) &&
        seq_geq(h->tsval, t->ts_recent)) {
        t->ts_recent = h->tsval;
        t->ts_recent_us = seg->now;
    }

    /* Second check: RST (RFC 5961 3.2). */
    if (h->flags & RUSTY_TCP_RST) {
        if (orig_seq != t->rcv_nxt) {
            challenge_ack(s, t, seg->now);
            return;
        }
        s->stats.tcp_rst_rx++;
        switch (t->state) {
        case TCP_SYN_RECEIVED:
            /* Passive open: back to LISTEN (the embryo goes); active: refused. */
            tcp_drop(s, t, t->listener ? 0 : -ECONNREFUSED);
            return;
        case TCP_ESTABLISHED:
        case TCP_FIN_WAIT_1:
        case TCP_FIN_WAIT_2:
        case TCP_CLOSE_WAIT:
            tcp_drop(s, t, -ECONNRESET);
            return;
        default:
            tcp_drop(s, t, 0);
            return;
        }
    }

    /* Fourth check: SYN (RFC 5961 4.2: a challenge ACK, whatever its sequence number). */
    if (orig_flags & RUSTY_TCP_SYN) {
        challenge_ack(s, t, seg->now);
        return;
    }

    /* Fifth check: ACK. */
    if (!(h->flags & RUSTY_TCP_ACK))
        return;
    if (!ack_process(s, t, seg))
        return;
    t->last_rx_us = seg->now;
    t->keep_probes = 0;

    /* Seventh: text. */
    int fin_in_order = 1;
    if (seg->len) {
        switch (t->state) {
        case TCP_ESTABLISHED:
        case TCP_FIN_WAIT_1:
        case TCP_FIN_WAIT_2:
            if (!t->sock && (t->flags & TF_RX_SHUT)) {
                /* Data for a connection the application closed: nobody will read it. */
                tcp_send_rst_for(s, t, seg->now);
                tcp_drop(s, t, 0);
                return;
            }
            fin_in_order = receive_data(s, t, seg);
            break;
        default:
            break;                      /* after a FIN: ignore */
        }
    }
    /* Eighth: FIN, processed once everything before it has arrived. */
    if (h->flags & RUSTY_TCP_FIN) {
        uint32_t fin_seq = seg->seq + seg->len;
        if (fin_in_order && fin_seq == t->rcv_nxt) {
            receive_fin(s, t, seg->now);
        } else if (seq_gt(fin_seq, t->rcv_nxt) && !seg->len && !(t->flags & TF_EOF_SEEN)) {
            t->flags |= TF_OOO_FIN;
            t->ooo_fin = fin_seq;
            tcp_send_ack(s, t, seg->now);
        }
    }
}

/* ------------------------------------------------------------------- entry */

void rusty_tcp_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                     const struct rusty_ipv4_repr *ip, uint64_t now_us)
{
    s->stats.tcp_rx++;
    uint8_t *data = rusty_buf_data(b);
    size_t len = b->len < ip->payload_len ? b->len : ip->payload_len;
    if (!(b->flags & RUSTY_BUF_CSUM_VALID)) {
        uint64_t sum = rusty_csum_pseudo_ipv4(ip->src, ip->dst, RUSTY_IPPROTO_TCP, (uint16_t)len);
        if (rusty_csum_fold(rusty_csum_add(sum, data, len)) != 0xffff) {
            s->stats.tcp_bad_checksum++;
            rusty_buf_free(b);
            return;
        }
    }
    struct tcp_seg seg;
    if (rusty_tcp_parse(data, len, &seg.h) != 0 || !seg.h.src_port || !seg.h.dst_port) {
        s->stats.tcp_malformed++;
        rusty_buf_free(b);
        return;
    }
    seg.data = data + seg.h.header_len;
    seg.len = seg.h.payload_len;
    seg.seq = seg.h.seq;
    seg.src = ip->src;
    seg.dst = ip->dst;
    seg.ifc = ifc;
    seg.now = now_us;

    struct rusty_tcb *t = tcp_lookup(s, ip->dst, seg.h.dst_port, ip->src, seg.h.src_port);
    uint32_t min_isn = 0;
    int reuse = 0;
    if (t && t->state == TCP_TIME_WAIT && (seg.h.flags & (RUSTY_TCP_SYN | RUSTY_TCP_ACK | RUSTY_TCP_RST)) == RUSTY_TCP_SYN) {
        /* RFC 9293 3.10.7.4 note / RFC 6191: a new SYN may reopen a TIME-WAIT
           connection when it is clearly newer: a larger timestamp, or (without
           timestamps) a sequence number beyond the old one. */
        int newer = ((t->flags & TF_TS) && seg.h.has_timestamps) ? seq_gt(seg.h.tsval, t->ts_recent)
                                                                    : seq_gt(seg.h.seq, t->rcv_nxt);
        if (newer && tcp_listener_lookup(s, ip->dst, seg.h.dst_port, ip->src, seg.h.src_port)) {
            min_isn = t->snd_max + 65536 * 2;
            reuse = 1;
            tcp_drop(s, t, 0);
            t = NULL;
        }
    }
    if (t) {
        segment_arrives(s, t, &seg);
    } else {
        struct rusty_tcp_listener *l = tcp_listener_lookup(s, ip->dst, seg.h.dst_port, ip->src, seg.h.src_port);
        if (l)
            listen_input(s, l, &seg, min_isn, reuse);
        else
            tcp_reply_rst(s, &seg);     /* 3.10.7.1: CLOSED */
    }
    rusty_buf_free(b);
}
