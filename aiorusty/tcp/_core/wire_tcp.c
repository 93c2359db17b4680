/*
 * wire_tcp.c - the TCP header and its options: parse (checked) and emit.
 *
 * Owns: RFC 9293 3.1 header layout, the option walk (RFC 9293 3.2: EOL, NOP,
 * MSS; RFC 7323: window scale, timestamps; RFC 2018: SACK-permitted, parsed
 * and remembered, SACK blocks skipped). Not: checksums (tcp_in.c / tcp_out.c
 * know the pseudo-header), what the fields mean for a connection.
 *
 * Call chain: rusty_tcp_input -> rusty_tcp_parse; send_segment -> rusty_tcp_emit.
 */
#include <errno.h>
#include <string.h>

#include "wire.h"

#define OPT_EOL 0
#define OPT_NOP 1
#define OPT_MSS 2
#define OPT_WS 3
#define OPT_SACK_PERM 4
#define OPT_TS 8

int rusty_tcp_parse(const uint8_t *data, size_t len, struct rusty_tcp_repr *out)
{
    if (len < RUSTY_TCP_HLEN)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    out->src_port = rd16(data);
    out->dst_port = rd16(data + 2);
    out->seq = rd32(data + 4);
    out->ack = rd32(data + 8);
    uint16_t hlen = (uint16_t)((data[12] >> 4) * 4);
    if (hlen < RUSTY_TCP_HLEN || hlen > len || len - hlen > 0xffff)
        return -EINVAL;
    out->header_len = hlen;
    out->flags = data[13] & 0x3f;
    out->window = rd16(data + 14);
    out->urgent = rd16(data + 18);
    out->payload_len = (uint16_t)(len - hlen);

    /* RFC 9293 3.2: options; every length is checked before it is used.
       A malformed option list makes the whole segment malformed (Linux ignores
       the rest instead; either is allowed, a drop is the safer one). */
    const uint8_t *p = data + RUSTY_TCP_HLEN, *end = data + hlen;
    while (p < end) {
        uint8_t kind = p[0];
        if (kind == OPT_EOL)
            break;
        if (kind == OPT_NOP) {
            p++;
            continue;
        }
        if (end - p < 2)
            return -EINVAL;
        uint8_t olen = p[1];
        if (olen < 2 || olen > end - p)
            return -EINVAL;
        switch (kind) {
        case OPT_MSS:
            if (olen != 4)
                return -EINVAL;
            out->mss = rd16(p + 2);
            break;
        case OPT_WS:
            if (olen != 3)
                return -EINVAL;
            out->has_wscale = 1;
            out->wscale = p[2];
            break;
        case OPT_SACK_PERM:
            if (olen != 2)
                return -EINVAL;
            out->sack_permitted = 1;
            break;
        case OPT_TS:
            if (olen != 10)
                return -EINVAL;
            out->has_timestamps = 1;
            out->tsval = rd32(p + 2);
            out->tsecr = rd32(p + 6);
            break;
        default:
            break;                      /* unknown options (SACK blocks included) are skipped */
        }
        p += olen;
    }
    return 0;
}

uint16_t rusty_tcp_header_len(const struct rusty_tcp_repr *r)
{
    uint16_t n = RUSTY_TCP_HLEN;
    if (r->mss)
        n += 4;
    if (r->has_wscale)
        n += 4;                         /* NOP + WS(3) */
    if (r->sack_permitted)
        n += 4;                         /* NOP NOP + SACK-permitted(2) */
    if (r->has_timestamps)
        n += 12;                        /* NOP NOP + TS(10), RFC 7323 appendix A layout */
    return n;
}

void rusty_tcp_emit(const struct rusty_tcp_repr *r, uint8_t *out)
{
    uint16_t hlen = rusty_tcp_header_len(r);
    wr16(out, r->src_port);
    wr16(out + 2, r->dst_port);
    wr32(out + 4, r->seq);
    wr32(out + 8, r->ack);
    out[12] = (uint8_t)((hlen / 4) << 4);
    out[13] = r->flags;
    wr16(out + 14, r->window);
    wr16(out + 16, 0);
    wr16(out + 18, r->urgent);
    uint8_t *p = out + RUSTY_TCP_HLEN;
    if (r->mss) {
        p[0] = OPT_MSS;
        p[1] = 4;
        wr16(p + 2, r->mss);
        p += 4;
    }
    if (r->has_wscale) {
        p[0] = OPT_NOP;
        p[1] = OPT_WS;
        p[2] = 3;
        p[3] = r->wscale;
        p += 4;
    }
    if (r->sack_permitted) {
        p[0] = OPT_NOP;
        p[1] = OPT_NOP;
        p[2] = OPT_SACK_PERM;
        p[3] = 2;
        p += 4;
    }
    if (r->has_timestamps) {
        p[0] = OPT_NOP;
        p[1] = OPT_NOP;
        p[2] = OPT_TS;
        p[3] = 10;
        wr32(p + 4, r->tsval);
        wr32(p + 8, r->tsecr);
    }
}
