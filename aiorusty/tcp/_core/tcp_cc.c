/*
 * tcp_cc.c - congestion control behind struct tcp_cc_ops: NewReno.
 *
 * Owns: cwnd and ssthresh. RFC 5681 slow start and congestion avoidance,
 * fast retransmit on the third duplicate ACK and fast recovery with RFC 6582
 * (NewReno) partial ACKs, RFC 3042 limited transmit (the window allowance is
 * applied in tcp_output), the RFC 6928 initial window of 10 segments, the
 * RFC 5681 4.1 restart window after idle, and the RFC 5681 3.1 reaction to an
 * RTO. Not: RTT/RTO (tcp_timer.c), what to send next (tcp_out.c).
 *
 * Call chain: tcp_in.c ack processing -> ops->on_ack / ops->on_dupack
 *             tcp_timer.c RTO -> ops->on_rto; tcp_output -> ops->on_idle
 */
#include "tcp.h"

uint32_t tcp_initial_window(const struct rusty_tcb *t)
{
    /* RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600)). */
    uint32_t a = 10u * t->mss, b = 2u * t->mss > 14600 ? 2u * t->mss : 14600;
    return a < b ? a : b;
}

static uint32_t half_flight(const struct rusty_tcb *t)
{
    /* RFC 5681 (4): ssthresh = max(FlightSize / 2, 2*SMSS). */
    uint32_t f = tcp_flight(t) / 2;
    return f > 2u * t->mss ? f : 2u * t->mss;
}

static void nr_init(struct rusty_tcb *t)
{
    t->cwnd = 0;                        /* set to the IW once the MSS is known */
    t->ssthresh = 0x7fffffff;           /* RFC 5681 3.1: arbitrarily high */
    t->dupacks = 0;
    t->bytes_acked = 0;
}

static void nr_on_ack(struct rusty_stack *s, struct rusty_tcb *t, uint32_t ack, uint32_t acked, uint64_t now)
{
    if (t->flags & TF_IN_RECOVERY) {
        if (seq_geq(ack, t->recover)) {
            /* RFC 6582 3.2 step 3, full ACK: deflate to min(ssthresh, FlightSize + SMSS). */
            uint32_t f = tcp_flight(t);
            uint32_t c = (f > t->mss ? f : t->mss) + t->mss;
            t->cwnd = c < t->ssthresh ? c : t->ssthresh;
            t->flags &= ~TF_IN_RECOVERY;
            t->dupacks = 0;
            t->bytes_acked = 0;
        } else {
            /* Step 4, partial ACK: retransmit the first unacknowledged segment,
               deflate by the amount acked, add back one SMSS if it covered that much. */
            tcp_retransmit_una(s, t, now);
            t->cwnd = t->cwnd > acked ? t->cwnd - acked : 0;
            if (acked >= t->mss)
                t->cwnd += t->mss;
            if (t->cwnd < t->mss)
                t->cwnd = t->mss;
            tcp_arm_rtx(s, t, now);
        }
        return;
    }
    t->dupacks = 0;
    if (t->cwnd < t->ssthresh) {
        /* RFC 5681 3.1 slow start, counting every byte acked. DEVIATION from RFC
           3465 2.2's L = 2*SMSS per ACK, as Linux (tcp_slow_start): a receiver
           that acknowledges a whole burst at once (ours, once per poll; Linux's
           after GRO) held cwnd to +2 SMSS per RTT, a 20 ms path to 75 Mbit/s. */
        uint32_t room = t->ssthresh - t->cwnd;
        t->cwnd += acked < room ? acked : room;
    } else {
        /* Congestion avoidance: one SMSS per cwnd of data acked (RFC 5681 3.1, 3.2 note). */
        t->bytes_acked += acked;
        if (t->bytes_acked >= t->cwnd) {
            t->bytes_acked -= t->cwnd;
            t->cwnd += t->mss;
        }
    }
}

static void nr_on_dupack(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    if (t->flags & TF_IN_RECOVERY) {
        t->cwnd += t->mss;              /* RFC 5681 3.2 step 4: inflate per further dupack */
        tcp_want_output(s, t);
        return;
    }
    if (++t->dupacks < TCP_DUPACK_THRESH) {
        tcp_want_output(s, t);          /* RFC 3042 limited transmit (tcp_output) */
        return;
    }
    if (t->dupacks != TCP_DUPACK_THRESH)
        return;
    /* RFC 6582 3.2 step 2: enter fast retransmit only if the cumulative ACK covers
       more than `recover` (avoids multiple reductions for one window of losses). */
    if (!seq_gt(t->snd_una, t->recover))
        return;
    t->ssthresh = half_flight(t);
    t->recover = t->snd_max;
    t->cwnd = t->ssthresh + TCP_DUPACK_THRESH * t->mss;
    t->flags |= TF_IN_RECOVERY;
    s->stats.tcp_fast_retransmits++;
    tcp_retransmit_una(s, t, now);
    tcp_arm_rtx(s, t, now);
}

static void nr_on_rto(struct rusty_tcb *t)
{
    /* RFC 5681 3.1 (4) and: cwnd = 1 SMSS (loss window). RFC 6582 4: recover = highest sent. */
    t->ssthresh = half_flight(t);
    t->cwnd = t->mss;
    t->flags &= ~TF_IN_RECOVERY;
    t->dupacks = 0;
    t->bytes_acked = 0;
    t->recover = t->snd_max;
}

static void nr_on_idle(struct rusty_tcb *t, uint64_t now)
{
    (void)now;
    /* RFC 5681 4.1: after an idle period longer than the RTO, restart from
       RW = min(IW, cwnd). */
    uint32_t iw = tcp_initial_window(t);
    if (t->cwnd > iw)
        t->cwnd = iw;
}

const struct tcp_cc_ops tcp_newreno = {
    .name = "newreno",
    .init = nr_init,
    .on_ack = nr_on_ack,
    .on_dupack = nr_on_dupack,
    .on_rto = nr_on_rto,
    .on_idle = nr_on_idle,
};
