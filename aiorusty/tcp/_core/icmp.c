/*
 * icmp.c - ICMP for IPv4 (RFC 792, RFC 1122 3.2.2).
 *
 * Owns: echo replies to echo requests, echo requests on the user's behalf
 * (rusty_icmp_echo) and the RUSTY_EV_ICMP_ECHO_REPLY events for their replies,
 * rate-limited destination-unreachable messages, and handing received ICMP
 * errors to the transport that sent the quoted datagram (and, as if a host
 * unreachable had come back, link-layer failures: rusty_icmp_link_failure).
 * Not: what UDP/TCP do with an error (rusty_udp_icmp_error, rusty_tcp_icmp_error).
 *
 * Call chain: rusty_ipv4_input -> rusty_icmp_input -> echo reply -> rusty_ipv4_output
 *                                                 -> error -> rusty_{udp,tcp}_icmp_error
 *             arp.c (resolution failed) -> rusty_icmp_link_failure -> rusty_{udp,tcp}_icmp_error
 *             rusty_ipv4_input / rusty_udp_input -> rusty_icmp_send_unreachable
 *
 * Counters: icmp_echo_requests / icmp_echo_replies count echo messages
 * received; icmp_tx counts everything sent.
 */
#include <errno.h>
#include <string.h>

#include "checksum.h"
#include "stack.h"

/* Token bucket for ICMP errors (RFC 1812 4.3.2.8, RFC 1122 3.2.2): a burst of
 * BURST, then one per REFILL_US. Echo replies are not limited (like Linux). */
#define ICMP_BURST 10u
#define ICMP_REFILL_US 10000u
#define ICMP_QUOTE 8u                   /* RFC 792: header + first 64 bits of data */

static int errno_of(uint8_t type, uint8_t code)
{
    if (type == RUSTY_ICMP_TIME_EXCEEDED)
        return -EHOSTUNREACH;
    /* RFC 1122 3.2.2.1 codes, mapped as Linux's icmp_err_convert does. */
    switch (code) {
    case 0: case 6: case 9: case 11:
        return -ENETUNREACH;
    case 2:
        return -ENOPROTOOPT;
    case 3:
        return -ECONNREFUSED;
    case RUSTY_ICMP_FRAG_NEEDED:
        return -EMSGSIZE;
    case 5:
        return -EOPNOTSUPP;
    case 7:
        return -EHOSTDOWN;
    default:
        return -EHOSTUNREACH;
    }
}

/* Which errors are soft (transient: the datagram may get through later) follows
 * Linux's icmp_err_convert (net/ipv4/icmp.c), itself RFC 1122 4.2.3.9 for codes
 * 0-5: net and host unreachable (plain and for TOS), fragmentation needed, source
 * route failed, and time exceeded. */
static int is_soft(uint8_t type, uint8_t code)
{
    if (type == RUSTY_ICMP_TIME_EXCEEDED)
        return 1;
    switch (code) {
    case 0: case 1: case RUSTY_ICMP_FRAG_NEEDED: case 5: case 11: case 12:
        return 1;
    default:
        return 0;
    }
}

static int send_icmp(struct rusty_stack *s, uint32_t src, uint32_t dst, const struct rusty_icmp_repr *r,
                     const uint8_t *body, size_t len, const uint8_t *body2, size_t len2, uint64_t now_us)
{
    struct rusty_iface *ifc;
    int err;
    struct rusty_buf *b = rusty_ipv4_alloc(s, dst, &ifc, &err);
    if (!b)
        return err;
    size_t total = RUSTY_ICMP_HLEN + len + len2;
    if (total + RUSTY_IPV4_HLEN > ifc->mtu || total > rusty_buf_tailroom(b)) {
        rusty_buf_free(b);
        return -EMSGSIZE;
    }
    uint8_t *p = rusty_buf_put(b, (uint16_t)total);
    struct rusty_icmp_repr out = *r;
    out.checksum = 0;
    rusty_icmp_emit(&out, p);
    if (len)
        memcpy(p + RUSTY_ICMP_HLEN, body, len);
    if (len2)
        memcpy(p + RUSTY_ICMP_HLEN + len, body2, len2);
    wr16(p + 2, rusty_csum_finish(rusty_csum_add(0, p, total)));
    s->stats.icmp_tx++;
    return rusty_ipv4_output(s, ifc, b, src, dst, RUSTY_IPPROTO_ICMP, now_us);
}

/* An error quotes the offending datagram's IPv4 header and the start of its
 * payload; the quoted header is truncated, so it is read by hand, not by
 * rusty_ipv4_parse (whose total-length and checksum checks do not apply). */
static void quote_error(struct rusty_stack *s, const uint8_t *q, size_t len, int err, int soft)
{
    if (len < RUSTY_IPV4_HLEN || (q[0] >> 4) != 4) {
        s->stats.icmp_malformed++;
        return;
    }
    size_t hlen = (size_t)(q[0] & 0x0f) * 4;
    if (hlen < RUSTY_IPV4_HLEN || len < hlen + 8) {
        s->stats.icmp_malformed++;  /* RFC 792: at least 64 bits of the payload are quoted */
        return;
    }
    struct rusty_ipv4_repr inner;
    memset(&inner, 0, sizeof(inner));
    inner.header_len = (uint16_t)hlen;
    inner.total_len = rd16(q + 2);
    inner.ident = rd16(q + 4);
    inner.frag = rd16(q + 6);
    inner.ttl = q[8];
    inner.proto = q[9];
    inner.src = rd32(q + 12);
    inner.dst = rd32(q + 16);
    if (!rusty_iface_by_ip(s, inner.src))
        return;                         /* not about a datagram of ours */
    const uint8_t *l4 = q + hlen;
    size_t l4_len = len - hlen;
    if (inner.proto == RUSTY_IPPROTO_UDP)
        rusty_udp_icmp_error(s, &inner, l4, l4_len, err, soft);
    else if (inner.proto == RUSTY_IPPROTO_TCP)
        rusty_tcp_icmp_error(s, &inner, l4, l4_len, err);
}

void rusty_icmp_link_failure(struct rusty_stack *s, const struct rusty_buf *b)
{
    /* Linux: arp_error_report -> ipv4_link_failure -> icmp_send(ICMP_HOST_UNREACH)
     * to ourselves; the message is never built here, its effect is the same. */
    quote_error(s, rusty_buf_data(b), b->len, -EHOSTUNREACH, 1);
}

void rusty_icmp_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                      const struct rusty_ipv4_repr *ip, uint64_t now_us)
{
    (void)ifc;
    struct rusty_icmp_repr icmp;
    const uint8_t *p = rusty_buf_data(b);
    s->stats.icmp_rx++;
    if (rusty_icmp_parse(p, b->len, &icmp) != 0 || rusty_csum_fold(rusty_csum_add(0, p, b->len)) != 0xffff) {
        s->stats.icmp_malformed++;
        rusty_buf_free(b);
        return;
    }
    switch (icmp.type) {
    case RUSTY_ICMP_ECHO_REQUEST: {
        /* RFC 1122 3.2.2.6: same identifier, sequence and data; source = the
         * address the request was sent to. */
        s->stats.icmp_echo_requests++;
        struct rusty_icmp_repr reply = icmp;
        reply.type = RUSTY_ICMP_ECHO_REPLY;
        reply.code = 0;
        send_icmp(s, ip->dst, ip->src, &reply, p + RUSTY_ICMP_HLEN, b->len - RUSTY_ICMP_HLEN, NULL, 0, now_us);
        break;
    }
    case RUSTY_ICMP_ECHO_REPLY:
        s->stats.icmp_echo_replies++;
        rusty_event_push(s, icmp.rest >> 16, RUSTY_EV_ICMP_ECHO_REPLY, (int32_t)(icmp.rest & 0xffff), ip->src);
        break;
    case RUSTY_ICMP_DEST_UNREACH:
    case RUSTY_ICMP_TIME_EXCEEDED:
        quote_error(s, p + RUSTY_ICMP_HLEN, b->len - RUSTY_ICMP_HLEN, errno_of(icmp.type, icmp.code),
                    is_soft(icmp.type, icmp.code));
        break;
    default:
        break;                          /* RFC 1122 3.2.2: unknown types are silently discarded */
    }
    rusty_buf_free(b);
}

static int take_token(struct rusty_stack *s, uint64_t now_us)
{
    if (s->icmp_refill_us == 0 || now_us < s->icmp_refill_us) {
        if (s->icmp_refill_us == 0)
            s->icmp_tokens = ICMP_BURST;
        s->icmp_refill_us = now_us ? now_us : 1;
    }
    uint64_t add = (now_us - s->icmp_refill_us) / ICMP_REFILL_US;
    if (add) {
        s->icmp_tokens = add + s->icmp_tokens >= ICMP_BURST ? ICMP_BURST : (uint32_t)(s->icmp_tokens + add);
        s->icmp_refill_us += add * ICMP_REFILL_US;
    }
    if (!s->icmp_tokens)
        return 0;
    s->icmp_tokens--;
    return 1;
}

void rusty_icmp_send_unreachable(struct rusty_stack *s, struct rusty_iface *ifc, const struct rusty_buf *b,
                                 const struct rusty_ipv4_repr *ip, uint8_t code, uint64_t now_us)
{
    const uint8_t *p = rusty_buf_data(b);
    (void)ifc;
    /* RFC 1122 3.2.2: never about an ICMP error, a broadcast/multicast datagram
     * or source, or a non-first fragment. */
    if (ip->dst == 0xffffffffu || (ip->dst >> 28) == 0xe || !rusty_iface_by_ip(s, ip->dst))
        return;
    if (ip->src == 0 || (ip->src >> 28) >= 0xe || (ip->frag & RUSTY_IPV4_OFFMASK))
        return;
    if (b->len < ip->header_len)
        return;
    size_t l4_len = b->len - ip->header_len;
    if (ip->proto == RUSTY_IPPROTO_ICMP) {
        if (l4_len < 1)
            return;
        uint8_t t = p[ip->header_len];
        if (t != RUSTY_ICMP_ECHO_REQUEST && t != RUSTY_ICMP_ECHO_REPLY && t != 13 && t != 14 && t != 15 && t != 16)
            return;
    }
    if (!take_token(s, now_us))
        return;
    struct rusty_icmp_repr r = {RUSTY_ICMP_DEST_UNREACH, code, 0, 0};
    size_t quote = l4_len < ICMP_QUOTE ? l4_len : ICMP_QUOTE;
    if (send_icmp(s, ip->dst, ip->src, &r, p, ip->header_len, p + ip->header_len, quote, now_us) == 0)
        s->stats.icmp_unreachable_tx++;
}

int rusty_icmp_echo(struct rusty_stack *s, uint32_t dst, uint16_t ident, uint16_t seq, uint16_t payload_len,
                    uint64_t now_us)
{
    uint8_t pattern[RUSTY_BUF_SIZE];
    s->now_us = now_us;
    if (payload_len > RUSTY_BUF_SIZE - RUSTY_BUF_HEADROOM - RUSTY_ICMP_HLEN)
        return -EMSGSIZE;
    /* The pattern ping(8) uses after its timestamp: 0x08, 0x09, ... */
    for (uint16_t i = 0; i < payload_len; i++)
        pattern[i] = (uint8_t)(i + 8);
    struct rusty_icmp_repr r = {RUSTY_ICMP_ECHO_REQUEST, 0, 0, ((uint32_t)ident << 16) | seq};
    return send_icmp(s, 0, dst, &r, pattern, payload_len, NULL, 0, now_us);
}
