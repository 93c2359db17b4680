/*
 * wire.c - parse/emit for Ethernet II, ARP, IPv4, ICMP and UDP (TCP is in wire_tcp.c).
 *
 * Owns: turning bytes into the representations of wire.h and back, with the
 * length checked before any field is read. Not: checksums of L4 payloads
 * (the layer knows the pseudo-header), what the fields mean (arp.c, ipv4.c ...).
 *
 * Call chain: rusty_eth_input -> rusty_eth_parse, rusty_arp_input -> rusty_arp_parse,
 * rusty_ipv4_input -> rusty_ipv4_parse, ... ; the emitters are called by the
 * *_output paths after rusty_buf_push has made room.
 */
#include <errno.h>
#include <string.h>

#include "checksum.h"
#include "stack.h"
#include "wire.h"

/* ---- Ethernet II */

int rusty_eth_parse(const uint8_t *data, size_t len, struct rusty_eth_repr *out)
{
    if (len < RUSTY_ETH_HLEN)
        return -EINVAL;
    memcpy(out->dst, data, 6);
    memcpy(out->src, data + 6, 6);
    out->ethertype = rd16(data + 12);
    /* 802.3 length field (< 0x600) frames carry LLC, not Ethernet II. */
    if (out->ethertype < 0x0600)
        return -EINVAL;
    return 0;
}

void rusty_eth_emit(const struct rusty_eth_repr *r, uint8_t *out)
{
    memcpy(out, r->dst, 6);
    memcpy(out + 6, r->src, 6);
    wr16(out + 12, r->ethertype);
}

/* ---- ARP (RFC 826): only Ethernet hardware (1) and IPv4 protocol addresses. */

int rusty_arp_parse(const uint8_t *data, size_t len, struct rusty_arp_repr *out)
{
    if (len < RUSTY_ARP_LEN)
        return -EINVAL;
    if (rd16(data) != 1 || rd16(data + 2) != RUSTY_ETH_P_IPV4 || data[4] != 6 || data[5] != 4)
        return -EINVAL;
    out->op = rd16(data + 6);
    if (out->op != RUSTY_ARP_REQUEST && out->op != RUSTY_ARP_REPLY)
        return -EINVAL;
    memcpy(out->sha, data + 8, 6);
    out->spa = rd32(data + 14);
    memcpy(out->tha, data + 18, 6);
    out->tpa = rd32(data + 24);
    return 0;
}

void rusty_arp_emit(const struct rusty_arp_repr *r, uint8_t *out)
{
    wr16(out, 1);
    wr16(out + 2, RUSTY_ETH_P_IPV4);
    out[4] = 6;
    out[5] = 4;
    wr16(out + 6, r->op);
    memcpy(out + 8, r->sha, 6);
    wr32(out + 14, r->spa);
    memcpy(out + 18, r->tha, 6);
    wr32(out + 24, r->tpa);
}

/* ---- IPv4 (RFC 791 3.1, RFC 1122 3.2.1.1-3.2.1.2) */

#define IPOPT_EOL 0
#define IPOPT_NOP 1
#define IPOPT_RR 7                      /* record route */
#define IPOPT_TS 68                     /* internet timestamp */
#define IPOPT_LSRR 131                  /* loose source and record route */
#define IPOPT_SSRR 137                  /* strict source and record route */

/* RFC 791 3.1 option syntax: EOL ends the list, NOP is one octet, every other
 * option is type, length (counting type and length, so at least 2), data, and
 * ends inside the header. The route options (RR, LSRR, SSRR) have a pointer
 * octet of at least 4 that, while the route is not full, leaves room for a
 * whole address, and appear at most once; the timestamp's pointer is at least 5.
 * A datagram breaking them is dropped, as Linux's ip_options_compile
 * (net/ipv4/ip_options.c) does; Linux also answers with Parameter Problem
 * (RFC 1122 3.2.2.5, a SHOULD), which this stack does not send. Sets *srr when
 * a source route is present. */
static int ipv4_options_check(const uint8_t *p, size_t len, uint8_t *srr)
{
    uint8_t seen_rr = 0;
    *srr = 0;
    size_t i = 0;
    while (i < len) {
        uint8_t type = p[i];
        if (type == IPOPT_EOL)
            break;
        if (type == IPOPT_NOP) {
            i++;
            continue;
        }
        if (len - i < 2)
            return -EPROTO;
        uint8_t olen = p[i + 1];
        if (olen < 2 || olen > len - i)
            return -EPROTO;
        uint8_t ptr = olen > 2 ? p[i + 2] : 0;
        switch (type) {
        case IPOPT_RR:
        case IPOPT_LSRR:
        case IPOPT_SSRR:
            if (olen < 3 || ptr < 4 || (ptr <= olen && ptr + 3 > olen))
                return -EPROTO;
            if (type == IPOPT_RR ? seen_rr : *srr)
                return -EPROTO;         /* RFC 791: "appears at most once in a datagram" */
            if (type == IPOPT_RR)
                seen_rr = 1;
            else
                *srr = 1;
            break;
        case IPOPT_TS:
            if (olen < 4 || ptr < 5)
                return -EPROTO;
            break;
        default:
            break;                      /* other options: only their length is ours to check */
        }
        i += olen;
    }
    return 0;
}

int rusty_ipv4_parse(const uint8_t *data, size_t len, struct rusty_ipv4_repr *out)
{
    if (len < RUSTY_IPV4_HLEN)
        return -EINVAL;
    if ((data[0] >> 4) != 4)
        return -EINVAL;                 /* RFC 1122 3.2.1.1: silently discard other versions */
    uint16_t hlen = (uint16_t)((data[0] & 0x0f) * 4);
    if (hlen < RUSTY_IPV4_HLEN || hlen > len)
        return -EINVAL;
    uint16_t total = rd16(data + 2);
    if (total < hlen || total > len)
        return -EINVAL;
    /* RFC 1122 3.2.1.2: verify the header checksum. */
    if (rusty_csum_fold(rusty_csum_add(0, data, hlen)) != 0xffff)
        return -EBADMSG;
    out->tos = data[1];
    out->header_len = hlen;
    out->total_len = total;
    out->payload_len = (uint16_t)(total - hlen);
    out->ident = rd16(data + 4);
    out->frag = rd16(data + 6);
    out->ttl = data[8];
    out->proto = data[9];
    out->src = rd32(data + 12);
    out->dst = rd32(data + 16);
    return ipv4_options_check(data + RUSTY_IPV4_HLEN, hlen - RUSTY_IPV4_HLEN, &out->source_routed);
}

void rusty_ipv4_emit(const struct rusty_ipv4_repr *r, uint8_t *out)
{
    out[0] = 0x45;
    out[1] = r->tos;
    wr16(out + 2, r->total_len);
    wr16(out + 4, r->ident);
    wr16(out + 6, r->frag);
    out[8] = r->ttl;
    out[9] = r->proto;
    wr16(out + 10, 0);
    wr32(out + 12, r->src);
    wr32(out + 16, r->dst);
    wr16(out + 10, rusty_csum_finish(rusty_csum_add(0, out, RUSTY_IPV4_HLEN)));
}

/* ---- ICMP (RFC 792) */

int rusty_icmp_parse(const uint8_t *data, size_t len, struct rusty_icmp_repr *out)
{
    if (len < RUSTY_ICMP_HLEN)
        return -EINVAL;
    out->type = data[0];
    out->code = data[1];
    out->checksum = rd16(data + 2);
    out->rest = rd32(data + 4);
    return 0;
}

void rusty_icmp_emit(const struct rusty_icmp_repr *r, uint8_t *out)
{
    out[0] = r->type;
    out[1] = r->code;
    wr16(out + 2, r->checksum);
    wr32(out + 4, r->rest);
}

/* ---- UDP (RFC 768) */

int rusty_udp_parse(const uint8_t *data, size_t len, struct rusty_udp_repr *out)
{
    if (len < RUSTY_UDP_HLEN)
        return -EINVAL;
    out->src_port = rd16(data);
    out->dst_port = rd16(data + 2);
    out->length = rd16(data + 4);
    out->checksum = rd16(data + 6);
    if (out->length < RUSTY_UDP_HLEN || out->length > len)
        return -EINVAL;
    return 0;
}

void rusty_udp_emit(const struct rusty_udp_repr *r, uint8_t *out)
{
    wr16(out, r->src_port);
    wr16(out + 2, r->dst_port);
    wr16(out + 4, r->length);
    wr16(out + 6, r->checksum);
}

/* ---- test entry (rusty.h): parse one header, then emit it again into out. */

int rusty_wire_selftest_parse(int proto, const uint8_t *data, size_t len, uint8_t *out, size_t cap)
{
    int err;
    switch (proto) {
    case RUSTY_WIRE_ETH: {
        struct rusty_eth_repr r;
        if ((err = rusty_eth_parse(data, len, &r)) != 0)
            return err;
        if (cap < RUSTY_ETH_HLEN)
            return -ENOSPC;
        rusty_eth_emit(&r, out);
        return RUSTY_ETH_HLEN;
    }
    case RUSTY_WIRE_ARP: {
        struct rusty_arp_repr r;
        if ((err = rusty_arp_parse(data, len, &r)) != 0)
            return err;
        if (cap < RUSTY_ARP_LEN)
            return -ENOSPC;
        rusty_arp_emit(&r, out);
        return RUSTY_ARP_LEN;
    }
    case RUSTY_WIRE_IPV4: {
        struct rusty_ipv4_repr r;
        if ((err = rusty_ipv4_parse(data, len, &r)) != 0)
            return err;
        if (cap < RUSTY_IPV4_HLEN)
            return -ENOSPC;
        /* emit writes no options: re-emitting a header with options gives 20 bytes */
        if (r.header_len != RUSTY_IPV4_HLEN)
            r.total_len = (uint16_t)(r.total_len - (r.header_len - RUSTY_IPV4_HLEN));
        rusty_ipv4_emit(&r, out);
        return RUSTY_IPV4_HLEN;
    }
    case RUSTY_WIRE_ICMP: {
        struct rusty_icmp_repr r;
        if ((err = rusty_icmp_parse(data, len, &r)) != 0)
            return err;
        if (cap < RUSTY_ICMP_HLEN)
            return -ENOSPC;
        rusty_icmp_emit(&r, out);
        return RUSTY_ICMP_HLEN;
    }
    case RUSTY_WIRE_UDP: {
        struct rusty_udp_repr r;
        if ((err = rusty_udp_parse(data, len, &r)) != 0)
            return err;
        if (cap < RUSTY_UDP_HLEN)
            return -ENOSPC;
        rusty_udp_emit(&r, out);
        return RUSTY_UDP_HLEN;
    }
    default:
        return -EPROTONOSUPPORT;
    }
}

int rusty_wire_selftest_csum(const uint8_t *data, size_t len, uint32_t src, uint32_t dst, uint8_t proto)
{
    uint64_t acc = rusty_csum_add(0, data, len);
    if (proto)
        acc += rusty_csum_pseudo_ipv4(src, dst, proto, (uint16_t)len);
    return rusty_csum_fold(acc);
}
