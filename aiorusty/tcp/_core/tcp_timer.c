/*
 * tcp_timer.c - TCP's timers: retransmission, persist, delayed ACK, keep-alive,
 * FIN-WAIT-2 and TIME-WAIT.
 *
 * Owns: RFC 6298 RTT estimation (SRTT/RTTVAR/RTO, Karn's rule with tcp_out.c,
 * exponential back-off), giving up after N retransmissions (ETIMEDOUT),
 * SYN/SYN-ACK retries, the persist timer (RFC 9293 3.8.6.1), delayed ACKs
 * (RFC 1122 4.2.3.2), keep-alive (RFC 1122 4.2.3.6) and 2*MSL TIME-WAIT.
 * Not: what is sent (tcp_out.c), cwnd (tcp_cc.c).
 *
 * Three timers are embedded in every TCB (no allocation to arm one) and live
 * in the stack's heap: t_rtx (RTO, or persist when TF_PERSIST, or the
 * FIN-WAIT-2/TIME-WAIT lifetime), t_delack and t_keep.
 *
 * Call chain: rusty_stack_poll -> rusty_timers_run -> rtx_fire / delack_fire /
 *             keep_fire -> tcp_output / tcp_send_probe / tcp_drop
 */
#include <errno.h>
#include <stddef.h>

#include "tcp.h"

#define TCB_OF(timer, field) ((struct rusty_tcb *)((char *)(timer) - offsetof(struct rusty_tcb, field)))

void tcp_rtt_sample(struct rusty_tcb *t, uint32_t r)
{
    if (r == 0)
        r = 1;
    if (t->srtt_us == 0) {
        /* RFC 6298 2.2: the first measurement. */
        t->srtt_us = r;
        t->rttvar_us = r / 2;
    } else {
        /* RFC 6298 2.3 with alpha = 1/8, beta = 1/4. */
        uint32_t delta = t->srtt_us > r ? t->srtt_us - r : r - t->srtt_us;
        t->rttvar_us = (3 * t->rttvar_us + delta) / 4;
        t->srtt_us = (7 * t->srtt_us + r) / 8;
    }
    /* RTO = SRTT + max(G, K*RTTVAR) with a 1 ms clock granularity G. */
    uint64_t var = 4ull * t->rttvar_us;
    uint64_t rto = t->srtt_us + (var > 1000 ? var : 1000);
    if (rto < TCP_RTO_MIN_US)
        rto = TCP_RTO_MIN_US;           /* 2.4, with Linux's 200 ms floor (see tcp.h) */
    if (rto > TCP_RTO_MAX_US)
        rto = TCP_RTO_MAX_US;
    t->rto_us = (uint32_t)rto;
}

void tcp_arm_rtx(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    t->flags &= ~TF_PERSIST;
    rusty_timer_arm(&s->timers, &t->t_rtx, now + t->rto_us);
}

void tcp_arm_persist(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    uint64_t iv = t->rto_us > TCP_PERSIST_MIN_US ? t->rto_us : TCP_PERSIST_MIN_US;
    for (uint8_t i = 0; i < t->persist_backoff && iv < TCP_RTO_MAX_US; i++)
        iv *= 2;
    if (iv > TCP_RTO_MAX_US)
        iv = TCP_RTO_MAX_US;
    t->flags |= TF_PERSIST;
    rusty_timer_arm(&s->timers, &t->t_rtx, now + iv);
}

void tcp_arm_delack(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    if (!rusty_timer_armed(&t->t_delack))
        rusty_timer_arm(&s->timers, &t->t_delack, now + TCP_DELACK_US);
}

void tcp_arm_keepalive(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    rusty_timer_arm(&s->timers, &t->t_keep, now + t->keep_idle_us);
}

void tcp_arm_timewait(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    /* RFC 9293 3.3.2: TIME-WAIT lasts 2*MSL. */
    t->flags &= ~TF_PERSIST;
    rusty_timer_arm(&s->timers, &t->t_rtx, now + 2ull * s->cfg.tcp_msl_us);
}

void tcp_arm_finwait2(struct rusty_stack *s, struct rusty_tcb *t, uint64_t now)
{
    /* Not in the RFC: an orphaned FIN-WAIT-2 connection whose peer never sends
       its FIN would live forever; like Linux (tcp_fin_timeout) it is dropped
       after a while (one MSL here). */
    t->flags &= ~TF_PERSIST;
    rusty_timer_arm(&s->timers, &t->t_rtx, now + s->cfg.tcp_msl_us);
}

static void give_up(struct rusty_stack *s, struct rusty_tcb *t)
{
    s->stats.tcp_timeouts++;
    /* An embryonic passive connection disappears silently; others report ETIMEDOUT. */
    tcp_drop(s, t, -ETIMEDOUT);
}

static void rtx_fire(struct rusty_stack *s, struct rusty_timer *timer, uint64_t now)
{
    struct rusty_tcb *t = TCB_OF(timer, t_rtx);
    switch (t->state) {
    case TCP_TIME_WAIT:
        tcp_drop(s, t, 0);
        return;
    case TCP_FIN_WAIT_2:
        if (!t->sock) {
            tcp_drop(s, t, 0);
            return;
        }
        break;
    case TCP_CLOSED:
    case TCP_LISTEN:
        return;
    default:
        break;
    }
    if (t->flags & TF_PERSIST) {
        t->flags &= ~TF_PERSIST;
        if (!tcp_unsent(t) || t->snd_wnd >= t->mss || tcp_flight(t)) {
            tcp_want_output(s, t);      /* the window opened meanwhile */
            return;
        }
        if (t->snd_wnd && tcp_send_window_filler(s, t, now))
            return;                     /* now in flight: the RTO timer covers it */
        /* RFC 1122 4.2.2.17: probing goes on while the peer answers (any ACK
           resets retries in tcp_in.c); only unanswered probes count. */
        if (++t->retries > t->max_retries) {
            give_up(s, t);
            return;
        }
        tcp_send_probe(s, t, now, 0);
        if (t->persist_backoff < 16)
            t->persist_backoff++;
        tcp_arm_persist(s, t, now);
        return;
    }
    if (tcp_flight(t) == 0)
        return;
    if (++t->retries > t->max_retries) {
        give_up(s, t);
        return;
    }
    s->stats.tcp_timeouts++;
    s->tcp->cc->on_rto(t);
    /* RFC 6298 5.5: back off the timer; 5.6: restart it; Karn: no RTT sample from
       what is retransmitted (tcp_out.c's sent() cancels the timing). */
    t->rto_us = t->rto_us * 2 > TCP_RTO_MAX_US ? TCP_RTO_MAX_US : t->rto_us * 2;
    t->flags &= ~TF_RTT_TIMING;
    /* Go back to SND.UNA: everything outstanding is sent again as cwnd allows. */
    t->snd_nxt = t->snd_una;
    tcp_arm_rtx(s, t, now);
    if (t->state == TCP_SYN_SENT || t->state == TCP_SYN_RECEIVED)
        tcp_retransmit_una(s, t, now);
    else if (t->snd_wnd == 0)
        tcp_send_probe(s, t, now, 0);   /* the peer shrank its window to zero: probe it */
    else
        tcp_output(s, t, now);
}

static void delack_fire(struct rusty_stack *s, struct rusty_timer *timer, uint64_t now)
{
    struct rusty_tcb *t = TCB_OF(timer, t_delack);
    if (t->state == TCP_CLOSED || t->state == TCP_LISTEN || t->state == TCP_SYN_SENT)
        return;
    tcp_send_ack(s, t, now);
}

static void keep_fire(struct rusty_stack *s, struct rusty_timer *timer, uint64_t now)
{
    struct rusty_tcb *t = TCB_OF(timer, t_keep);
    if (!(t->flags & TF_KEEPALIVE) || t->state < TCP_ESTABLISHED || t->state == TCP_TIME_WAIT ||
        t->state == TCP_CLOSING || t->state == TCP_LAST_ACK)
        return;
    uint64_t idle = now - t->last_rx_us;
    if (t->keep_probes == 0 && idle < t->keep_idle_us) {
        rusty_timer_arm(&s->timers, &t->t_keep, t->last_rx_us + t->keep_idle_us);
        return;
    }
    if (t->keep_probes >= t->keep_cnt) {
        give_up(s, t);
        return;
    }
    /* RFC 1122 4.2.3.6: probes only when no data is outstanding (else RTO covers it). */
    if (tcp_flight(t) == 0)
        tcp_send_probe(s, t, now, 1);
    t->keep_probes++;
    rusty_timer_arm(&s->timers, &t->t_keep, now + t->keep_intvl_us);
}

void tcp_timers_init(struct rusty_tcb *t)
{
    rusty_timer_init(&t->t_rtx, rtx_fire);
    rusty_timer_init(&t->t_delack, delack_fire);
    rusty_timer_init(&t->t_keep, keep_fire);
}

void tcp_timers_stop(struct rusty_stack *s, struct rusty_tcb *t)
{
    rusty_timer_cancel(&s->timers, &t->t_rtx);
    rusty_timer_cancel(&s->timers, &t->t_delack);
    rusty_timer_cancel(&s->timers, &t->t_keep);
    t->flags &= ~TF_PERSIST;
}
