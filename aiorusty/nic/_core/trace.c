/*
 * trace.c - a tracing wrapper (rusty_trace_wrap): one decoded line per frame
 * received or transmitted, kept in a bounded text ring that Python drains once
 * per loop tick (rusty_trace_drain -> Device.drain_trace -> logging).
 *
 *   rx 02:52:aa:bb:cc:01>ff:ff:ff:ff:ff:ff ARP who-has 10.0.0.2 tell 10.0.0.1
 *   tx 02:52:..>02:52:.. IPv4 10.0.0.2>10.0.0.1 TCP 80>41234 [S.] seq=1 ack=2 win=64240 len=0
 *
 * Owns: the decoders (small and bounds-checked here, trusting no length in a
 * frame: this is a debugging aid that must survive any garbage) and the ring.
 * Not: validating frames for the stack (wire.c does that).
 *
 * Call chain:
 *   rx: rusty_dev_rx(trace) -> trace_rx -> rusty_dev_rx(inner) -> decode -> ring_put
 *   tx: rusty_dev_tx(trace) -> trace_tx -> decode -> rusty_dev_tx(inner) -> ring_put (sent ones only)
 *
 * A full ring drops its oldest lines; the next drain starts with a line
 * saying how many were lost.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"
#include "../../tcp/_core/wire.h"

#define RING_BYTES (64u * 1024u)
#define LINE_MAX_ 256

struct trace {
    char ring[RING_BYTES];              /* lines, '\n'-terminated, head = oldest */
    uint32_t head, used;
    uint64_t dropped;                   /* lines lost to a full ring, not yet reported */
};

struct line_out {
    char *p;
    size_t left;
};

static void out(struct line_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out(struct line_out *o, const char *fmt, ...)
{
    if (o->left <= 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p, o->left, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t w = (size_t)n < o->left - 1 ? (size_t)n : o->left - 1;
    o->p += w;
    o->left -= w;
}

static void out_mac(struct line_out *o, const uint8_t *m)
{
    out(o, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static void out_ip(struct line_out *o, const uint8_t *a)
{
    out(o, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
}

static void decode_arp(struct line_out *o, const uint8_t *d, size_t len)
{
    if (len < RUSTY_ARP_LEN) {
        out(o, "ARP malformed: %zu bytes (need %u)", len, RUSTY_ARP_LEN);
        return;
    }
    if (rd16(d) != 1 || rd16(d + 2) != RUSTY_ETH_P_IPV4 || d[4] != 6 || d[5] != 4) {
        out(o, "ARP malformed: htype %u ptype 0x%04x hlen %u plen %u", rd16(d), rd16(d + 2), d[4], d[5]);
        return;
    }
    uint16_t op = rd16(d + 6);
    const uint8_t *sha = d + 8, *spa = d + 14, *tpa = d + 24;
    if (op == RUSTY_ARP_REQUEST) {
        out(o, "ARP who-has ");
        out_ip(o, tpa);
        out(o, " tell ");
        out_ip(o, spa);
    } else if (op == RUSTY_ARP_REPLY) {
        out(o, "ARP reply ");
        out_ip(o, spa);
        out(o, " is-at ");
        out_mac(o, sha);
    } else {
        out(o, "ARP op=%u", op);
    }
}

static void decode_tcp(struct line_out *o, const uint8_t *d, size_t len)
{
    if (len < RUSTY_TCP_HLEN) {
        out(o, "TCP malformed: %zu bytes", len);
        return;
    }
    unsigned hl = (unsigned)(d[12] >> 4) * 4;
    out(o, "TCP %u>%u ", rd16(d), rd16(d + 2));
    if (hl < RUSTY_TCP_HLEN || hl > len) {
        out(o, "malformed: data offset %u of %zu bytes", hl, len);
        return;
    }
    uint8_t fl = d[13];
    char flags[8];
    int k = 0;
    if (fl & RUSTY_TCP_SYN) flags[k++] = 'S';
    if (fl & RUSTY_TCP_FIN) flags[k++] = 'F';
    if (fl & RUSTY_TCP_RST) flags[k++] = 'R';
    if (fl & RUSTY_TCP_PSH) flags[k++] = 'P';
    if (fl & RUSTY_TCP_URG) flags[k++] = 'U';
    if (fl & RUSTY_TCP_ACK) flags[k++] = '.';
    flags[k] = 0;
    out(o, "[%s] seq=%u", flags, rd32(d + 4));
    if (fl & RUSTY_TCP_ACK)
        out(o, " ack=%u", rd32(d + 8));
    out(o, " win=%u len=%zu", rd16(d + 14), len - hl);
    /* Options (RFC 9293 3.2): the ones that shape a connection. */
    for (size_t i = RUSTY_TCP_HLEN; i < hl;) {
        uint8_t kind = d[i];
        if (kind == 0)
            break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= hl || d[i + 1] < 2 || i + d[i + 1] > hl) {
            out(o, " opts-malformed");
            break;
        }
        uint8_t olen = d[i + 1];
        if (kind == 2 && olen == 4)
            out(o, " mss=%u", rd16(d + i + 2));
        else if (kind == 3 && olen == 3)
            out(o, " wscale=%u", d[i + 2]);
        else if (kind == 4 && olen == 2)
            out(o, " sackOK");
        else if (kind == 8 && olen == 10)
            out(o, " ts=%u/%u", rd32(d + i + 2), rd32(d + i + 6));
        i += olen;
    }
}

static void decode_udp(struct line_out *o, const uint8_t *d, size_t len)
{
    if (len < RUSTY_UDP_HLEN) {
        out(o, "UDP malformed: %zu bytes", len);
        return;
    }
    uint16_t ulen = rd16(d + 4);
    out(o, "UDP %u>%u len=%u", rd16(d), rd16(d + 2), ulen >= RUSTY_UDP_HLEN ? ulen - RUSTY_UDP_HLEN : 0);
    if (ulen < RUSTY_UDP_HLEN || ulen > len)
        out(o, " malformed: length field %u of %zu bytes", ulen, len);
}

static void decode_icmp(struct line_out *o, const uint8_t *d, size_t len)
{
    if (len < RUSTY_ICMP_HLEN) {
        out(o, "ICMP malformed: %zu bytes", len);
        return;
    }
    uint8_t type = d[0], code = d[1];
    if (type == RUSTY_ICMP_ECHO_REQUEST || type == RUSTY_ICMP_ECHO_REPLY)
        out(o, "ICMP echo %s id=%u seq=%u len=%zu", type ? "request" : "reply", rd16(d + 4), rd16(d + 6),
            len - RUSTY_ICMP_HLEN);
    else if (type == RUSTY_ICMP_DEST_UNREACH)
        out(o, "ICMP unreachable code=%u", code);
    else if (type == RUSTY_ICMP_TIME_EXCEEDED)
        out(o, "ICMP time-exceeded code=%u", code);
    else
        out(o, "ICMP type=%u code=%u", type, code);
}

static void decode_ipv4(struct line_out *o, const uint8_t *d, size_t len)
{
    if (len < RUSTY_IPV4_HLEN) {
        out(o, "IPv4 malformed: %zu bytes", len);
        return;
    }
    unsigned ver = d[0] >> 4, hl = (unsigned)(d[0] & 15) * 4, total = rd16(d + 2);
    out(o, "IPv4 ");
    out_ip(o, d + 12);
    out(o, ">");
    out_ip(o, d + 16);
    out(o, " ");
    if (ver != 4 || hl < RUSTY_IPV4_HLEN || hl > len || total < hl) {
        out(o, "malformed: version %u header %u total %u of %zu bytes", ver, hl, total, len);
        return;
    }
    if (total > len) {
        out(o, "malformed: truncated, total length %u of %zu bytes", total, len);
        return;
    }
    uint16_t frag = rd16(d + 6);
    if (frag & (RUSTY_IPV4_MF | RUSTY_IPV4_OFFMASK)) {
        out(o, "frag id=%u off=%u%s ", rd16(d + 4), (unsigned)(frag & RUSTY_IPV4_OFFMASK) * 8,
            frag & RUSTY_IPV4_MF ? "+" : "");
        if (frag & RUSTY_IPV4_OFFMASK) {
            out(o, "proto %u len=%u", d[9], total - hl);
            return;                     /* no L4 header in a later fragment */
        }
    }
    const uint8_t *l4 = d + hl;
    size_t l4len = total - hl;          /* Ethernet padding past total is not payload */
    switch (d[9]) {
    case RUSTY_IPPROTO_TCP: decode_tcp(o, l4, l4len); break;
    case RUSTY_IPPROTO_UDP: decode_udp(o, l4, l4len); break;
    case RUSTY_IPPROTO_ICMP: decode_icmp(o, l4, l4len); break;
    default: out(o, "proto %u len=%zu", d[9], l4len); break;
    }
    if (d[8] <= 1)
        out(o, " ttl=%u", d[8]);
}

/* One line (without '\n') for a frame; returns its length. */
static size_t decode(char *line, size_t cap, const char *dir, int queue, const uint8_t *d, size_t len)
{
    struct line_out o = {line, cap};
    line[0] = 0;
    if (queue >= 0)
        out(&o, "%s[q%d] ", dir, queue);
    else
        out(&o, "%s ", dir);
    if (len < RUSTY_ETH_HLEN) {
        out(&o, "malformed: %zu-byte frame (shorter than an Ethernet header)", len);
        return (size_t)(o.p - line);
    }
    out_mac(&o, d + 6);
    out(&o, ">");
    out_mac(&o, d);
    out(&o, " ");
    uint16_t type = rd16(d + 12);
    const uint8_t *p = d + RUSTY_ETH_HLEN;
    size_t plen = len - RUSTY_ETH_HLEN;
    if (type == 0x8100 && plen >= 4) {  /* 802.1Q tag: show it, decode what it carries */
        out(&o, "vlan %u ", rd16(p) & 0x0fff);
        type = rd16(p + 2);
        p += 4;
        plen -= 4;
    }
    if (type == RUSTY_ETH_P_ARP)
        decode_arp(&o, p, plen);
    else if (type == RUSTY_ETH_P_IPV4)
        decode_ipv4(&o, p, plen);
    else if (type == 0x86dd)
        out(&o, "IPv6 len=%zu", plen);
    else if (type < 0x0600)
        out(&o, "802.3 length %u", type);
    else
        out(&o, "ethertype 0x%04x len=%zu", type, plen);
    return (size_t)(o.p - line);
}

static void ring_put(struct trace *t, const char *line, size_t n)
{
    if (n + 1 > RING_BYTES)
        return;
    while (t->used + n + 1 > RING_BYTES) {      /* drop the oldest line */
        while (t->used && t->ring[t->head] != '\n') {
            t->head = (t->head + 1) % RING_BYTES;
            t->used--;
        }
        t->head = (t->head + 1) % RING_BYTES;
        t->used--;
        t->dropped++;
    }
    uint32_t tail = (t->head + t->used) % RING_BYTES;
    for (size_t i = 0; i < n; i++) {
        t->ring[tail] = line[i];
        tail = (tail + 1) % RING_BYTES;
    }
    t->ring[tail] = '\n';
    t->used += (uint32_t)n + 1;
}

static int qlabel(const struct rusty_dev *dev, uint16_t queue)
{
    return dev->queues > 1 ? (int)(dev->first_queue + queue) : -1;
}

static int trace_rx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int max, uint64_t now_us)
{
    int n = rusty_dev_rx(dev->inner, queue, bufs, max, now_us);
    char line[LINE_MAX_];
    for (int i = 0; i < n; i++) {
        size_t len = decode(line, sizeof(line), "rx", qlabel(dev, queue), rusty_buf_data(bufs[i]), bufs[i]->len);
        ring_put(dev->priv, line, len);
    }
    return n;
}

static int trace_tx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us)
{
    /* Decoded before the inner device consumes the frames; kept only for the
       ones it took (the caller retries the rest). */
    char lines[RUSTY_BURST_MAX][LINE_MAX_];
    size_t lens[RUSTY_BURST_MAX];
    if (n > RUSTY_BURST_MAX)
        n = RUSTY_BURST_MAX;
    for (int i = 0; i < n; i++)
        lens[i] = decode(lines[i], LINE_MAX_, "tx", qlabel(dev, queue), rusty_buf_data(bufs[i]), bufs[i]->len);
    int sent = rusty_dev_tx(dev->inner, queue, bufs, n, now_us);
    for (int i = 0; i < sent; i++)
        ring_put(dev->priv, lines[i], lens[i]);
    return sent;
}

static int trace_fd(struct rusty_dev *dev, uint16_t queue)
{
    return rusty_dev_fd(dev->inner, queue);
}

static int64_t trace_deadline(struct rusty_dev *dev, uint64_t now_us)
{
    return rusty_dev_next_deadline(dev->inner, now_us);
}

static const struct rusty_dev_ops trace_ops = {
    .driver = "trace",
    .rx_burst = trace_rx,
    .tx_burst = trace_tx,
    .fd = trace_fd,
    .next_deadline = trace_deadline,
};

int rusty_trace_wrap(struct rusty_dev *inner, struct rusty_dev **out)
{
    if (!inner || !out)
        return -EINVAL;
    return rusty_dev_alloc_wrapper(&trace_ops, inner, sizeof(struct trace), out);
}

size_t rusty_trace_drain(struct rusty_dev *dev, char *out, size_t cap)
{
    struct rusty_dev *d = dev;
    while (d && d->ops != &trace_ops)
        d = d->inner;
    if (!d || !out || cap == 0)
        return 0;
    struct trace *t = d->priv;
    size_t n = 0;
    if (t->dropped) {
        int w = snprintf(out, cap, "(trace: %llu older lines dropped, ring full)\n", (unsigned long long)t->dropped);
        if (w < 0 || (size_t)w >= cap)
            return 0;
        n = (size_t)w;
        t->dropped = 0;
    }
    /* Whole lines only, leaving room for a terminating NUL (callers use ffi.string). */
    while (t->used) {
        uint32_t len = 0;
        while (len < t->used && t->ring[(t->head + len) % RING_BYTES] != '\n')
            len++;
        len++;                          /* the '\n' (always present: lines are put whole) */
        if (n + len + 1 > cap)
            break;
        for (uint32_t i = 0; i < len; i++)
            out[n++] = t->ring[(t->head + i) % RING_BYTES];
        t->head = (t->head + len) % RING_BYTES;
        t->used -= len;
    }
    out[n] = 0;
    return n;
}
