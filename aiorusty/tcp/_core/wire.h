/*
 * wire.h - wire formats: a checked parse into a representation, and an emit.
 *
 * Every protocol has `rusty_<proto>_parse(data, len, &repr)` which checks the
 * length before reading any field and returns 0 or -EINVAL (malformed), and
 * `rusty_<proto>_emit(&repr, out)` which writes exactly `*_header_len(&repr)`
 * bytes. Multi-byte fields are big-endian on the wire and host order in a repr.
 * Checksums are not verified or filled here (the layer knows the pseudo-header).
 */
#ifndef RUSTY_WIRE_H
#define RUSTY_WIRE_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* ---- Ethernet II (IEEE 802.3) */
#define RUSTY_ETH_HLEN 14
#define RUSTY_ETH_P_IPV4 0x0800
#define RUSTY_ETH_P_ARP 0x0806
struct rusty_eth_repr {
    uint8_t dst[6], src[6];
    uint16_t ethertype;
};
int rusty_eth_parse(const uint8_t *data, size_t len, struct rusty_eth_repr *out);
void rusty_eth_emit(const struct rusty_eth_repr *r, uint8_t *out);

/* ---- ARP for IPv4 over Ethernet (RFC 826) */
#define RUSTY_ARP_LEN 28
#define RUSTY_ARP_REQUEST 1
#define RUSTY_ARP_REPLY 2
struct rusty_arp_repr {
    uint16_t op;
    uint8_t sha[6], tha[6];
    uint32_t spa, tpa;
};
int rusty_arp_parse(const uint8_t *data, size_t len, struct rusty_arp_repr *out);
void rusty_arp_emit(const struct rusty_arp_repr *r, uint8_t *out);

/* ---- IPv4 (RFC 791) */
#define RUSTY_IPV4_HLEN 20
#define RUSTY_IPPROTO_ICMP 1
#define RUSTY_IPPROTO_TCP 6
#define RUSTY_IPPROTO_UDP 17
struct rusty_ipv4_repr {
    uint32_t src, dst;
    uint16_t header_len;                /* bytes, options included */
    uint16_t total_len;                 /* from the header; parse checks it fits */
    uint16_t payload_len;               /* total_len - header_len */
    uint16_t ident;
    uint16_t frag;                      /* flags + offset field as on the wire */
    uint8_t proto, ttl, tos;
    uint8_t source_routed;              /* a loose or strict source route option is present */
};
#define RUSTY_IPV4_DF 0x4000
#define RUSTY_IPV4_MF 0x2000
#define RUSTY_IPV4_OFFMASK 0x1fff
/* Checks version, IHL, total length against len (-EINVAL), the header checksum
 * (-EBADMSG), then the options' syntax (RFC 791 3.1; -EPROTO). */
int rusty_ipv4_parse(const uint8_t *data, size_t len, struct rusty_ipv4_repr *out);
/* Emits a 20-byte header with its checksum filled in. */
void rusty_ipv4_emit(const struct rusty_ipv4_repr *r, uint8_t *out);

/* ---- ICMP (RFC 792) */
#define RUSTY_ICMP_HLEN 8
#define RUSTY_ICMP_ECHO_REPLY 0
#define RUSTY_ICMP_DEST_UNREACH 3
#define RUSTY_ICMP_ECHO_REQUEST 8
#define RUSTY_ICMP_TIME_EXCEEDED 11
#define RUSTY_ICMP_PORT_UNREACH 3       /* code of DEST_UNREACH */
#define RUSTY_ICMP_FRAG_NEEDED 4
struct rusty_icmp_repr {
    uint8_t type, code;
    uint16_t checksum;
    uint32_t rest;                      /* identifier<<16|sequence for echo; next-hop MTU for frag-needed */
};
int rusty_icmp_parse(const uint8_t *data, size_t len, struct rusty_icmp_repr *out);
void rusty_icmp_emit(const struct rusty_icmp_repr *r, uint8_t *out);

/* ---- UDP (RFC 768) */
#define RUSTY_UDP_HLEN 8
struct rusty_udp_repr {
    uint16_t src_port, dst_port;
    uint16_t length;                    /* header + payload, checked against len */
    uint16_t checksum;
};
int rusty_udp_parse(const uint8_t *data, size_t len, struct rusty_udp_repr *out);
void rusty_udp_emit(const struct rusty_udp_repr *r, uint8_t *out);

/* ---- TCP (RFC 9293 3.1, options RFC 9293 3.2, RFC 7323, RFC 2018) */
#define RUSTY_TCP_HLEN 20
#define RUSTY_TCP_FIN 0x01
#define RUSTY_TCP_SYN 0x02
#define RUSTY_TCP_RST 0x04
#define RUSTY_TCP_PSH 0x08
#define RUSTY_TCP_ACK 0x10
#define RUSTY_TCP_URG 0x20
struct rusty_tcp_repr {
    uint16_t src_port, dst_port;
    uint32_t seq, ack;
    uint16_t window;                    /* as on the wire, unscaled */
    uint16_t header_len;                /* data offset in bytes */
    uint16_t payload_len;               /* filled by parse from len */
    uint16_t urgent;
    uint8_t flags;
    /* options (parse fills; emit writes those present) */
    uint16_t mss;                       /* 0 = absent */
    uint8_t has_wscale, wscale;
    uint8_t sack_permitted;
    uint8_t has_timestamps;
    uint32_t tsval, tsecr;
};
int rusty_tcp_parse(const uint8_t *data, size_t len, struct rusty_tcp_repr *out);
/* Header length emit will write for these options (a multiple of 4). */
uint16_t rusty_tcp_header_len(const struct rusty_tcp_repr *r);
/* Writes the header and options; the checksum field is left 0. */
void rusty_tcp_emit(const struct rusty_tcp_repr *r, uint8_t *out);

#endif
