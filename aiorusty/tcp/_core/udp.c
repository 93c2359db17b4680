/*
 * udp.c - UDP (RFC 768, RFC 1122 4.1).
 *
 * Owns: UDP sockets (blocks in chunks added as sockets are opened, up to
 * cfg.max_sockets, with a free list, found by a hash on the local port), their receive queues of held rx
 * buffers (at most cfg.udp_rx_queue each; overflow counted udp_queue_full),
 * checksums, port unreachable for datagrams no socket wants, and the
 * UDP_READABLE / UDP_ERROR events. Not: routing or headers below UDP (ipv4.c).
 *
 * Call chain: rusty_ipv4_input -> rusty_udp_input -> queue + RUSTY_EV_UDP_READABLE
 *                                                 \-> rusty_icmp_send_unreachable
 *             rusty_udp_sendto -> rusty_ipv4_alloc -> rusty_ipv4_output
 *             rusty_icmp_input -> rusty_udp_icmp_error -> RUSTY_EV_UDP_ERROR
 *
 * A queued datagram is the rx buffer itself, positioned at its UDP header;
 * the sender's address is read back from the IPv4 header still in front of
 * it (b->l3_off), so nothing is copied until recvfrom.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "stack.h"

#define N_BUCKETS 1024u                 /* power of two */
#define CHUNK 256u                      /* socket blocks allocated at a time (never moved: handles point at them) */

struct udp_sock {
    uint32_t handle;
    uint32_t ip;                        /* 0 = any of our addresses */
    uint16_t port;
    uint8_t in_use;
    int32_t next;                       /* hash chain or free list, -1 ends */
    int32_t index;                      /* this block's number */
    uint32_t notified_seq;              /* poll in which UDP_READABLE was last pushed */
    uint32_t rxq_len;
    struct rusty_buf *rxq_head, *rxq_tail;
};

struct rusty_udp_state {
    struct udp_sock **chunks;
    uint32_t n_socks;                   /* blocks made so far (in use or free) */
    int32_t free_head;
    int32_t buckets[N_BUCKETS];
};

int rusty_udp_init(struct rusty_stack *s)
{
    struct rusty_udp_state *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->chunks = calloc((s->cfg.max_sockets + CHUNK - 1) / CHUNK, sizeof(*u->chunks));
    if (!u->chunks) {
        free(u);
        return -ENOMEM;
    }
    u->free_head = -1;
    for (uint32_t i = 0; i < N_BUCKETS; i++)
        u->buckets[i] = -1;
    s->udp = u;
    return 0;
}

static void rxq_clear(struct udp_sock *k)
{
    while (k->rxq_head) {
        struct rusty_buf *b = k->rxq_head;
        k->rxq_head = b->next;
        rusty_buf_free(b);
    }
    k->rxq_tail = NULL;
    k->rxq_len = 0;
}

static struct udp_sock *sock_at(struct rusty_udp_state *u, int32_t i)
{
    return &u->chunks[(uint32_t)i / CHUNK][(uint32_t)i % CHUNK];
}

/* A free block: from the free list, else a new chunk's worth on it; -EMFILE at cfg.max_sockets. */
static int32_t block_alloc(struct rusty_stack *s, struct rusty_udp_state *u)
{
    if (u->free_head < 0) {
        uint32_t n = s->cfg.max_sockets - u->n_socks < CHUNK ? s->cfg.max_sockets - u->n_socks : CHUNK;
        if (n == 0)
            return -EMFILE;
        struct udp_sock *c = calloc(n, sizeof(*c));
        if (!c)
            return -ENOMEM;
        u->chunks[u->n_socks / CHUNK] = c;
        for (uint32_t i = n; i-- > 0;) {
            c[i].index = (int32_t)(u->n_socks + i);
            c[i].next = u->free_head;
            u->free_head = c[i].index;
        }
        u->n_socks += n;
    }
    return u->free_head;
}

void rusty_udp_destroy(struct rusty_stack *s)
{
    struct rusty_udp_state *u = s->udp;
    for (uint32_t i = 0; i < u->n_socks; i++)
        if (sock_at(u, (int32_t)i)->in_use)
            rxq_clear(sock_at(u, (int32_t)i));
    for (uint32_t i = 0; i < (u->n_socks + CHUNK - 1) / CHUNK; i++)
        free(u->chunks[i]);
    free(u->chunks);
    free(u);
    s->udp = NULL;
}

static uint32_t bucket(uint16_t port)
{
    return (port * 40503u >> 6) & (N_BUCKETS - 1);
}

/* The socket for (ip, port): an exact binding wins over a wildcard one. */
static struct udp_sock *lookup(struct rusty_udp_state *u, uint32_t ip, uint16_t port)
{
    struct udp_sock *wild = NULL;
    for (int32_t i = u->buckets[bucket(port)]; i >= 0; i = sock_at(u, i)->next) {
        struct udp_sock *k = sock_at(u, i);
        if (k->port != port)
            continue;
        if (k->ip == ip)
            return k;
        if (k->ip == 0)
            wild = k;
    }
    return wild;
}

static int port_clash(struct rusty_udp_state *u, uint32_t ip, uint16_t port)
{
    for (int32_t i = u->buckets[bucket(port)]; i >= 0; i = sock_at(u, i)->next) {
        struct udp_sock *k = sock_at(u, i);
        if (k->port == port && (k->ip == 0 || ip == 0 || k->ip == ip))
            return 1;
    }
    return 0;
}

int rusty_udp_bind(struct rusty_stack *s, uint32_t ip, uint16_t port, uint32_t *sock)
{
    struct rusty_udp_state *u = s->udp;
    if (ip != 0 && !rusty_iface_by_ip(s, ip))
        return -EADDRNOTAVAIL;
    if (port == 0) {
        /* Ephemeral: the next free port of the range, from a random start (RFC 6056 alg. 1 spirit). */
        uint32_t lo = s->cfg.ephemeral_lo, span = (uint32_t)s->cfg.ephemeral_hi - lo + 1;
        uint32_t start = (uint32_t)(rusty_random(s) % span);
        for (uint32_t n = 0; n < span; n++) {
            uint16_t cand = (uint16_t)(lo + (start + n) % span);
            if (!port_clash(u, ip, cand)) {
                port = cand;
                break;
            }
        }
        if (port == 0)
            return -EADDRINUSE;
    } else if (port_clash(u, ip, port)) {
        return -EADDRINUSE;
    }
    int32_t idx = block_alloc(s, u);
    if (idx < 0)
        return idx;
    struct udp_sock *k = sock_at(u, idx);
    int err = rusty_sock_alloc(s, RUSTY_SOCK_UDP, k, &k->handle);
    if (err)
        return err;
    u->free_head = k->next;
    k->ip = ip;
    k->port = port;
    k->in_use = 1;
    k->notified_seq = 0;
    k->rxq_head = k->rxq_tail = NULL;
    k->rxq_len = 0;
    k->next = u->buckets[bucket(port)];
    u->buckets[bucket(port)] = idx;
    *sock = k->handle;
    return 0;
}

int rusty_udp_close(struct rusty_stack *s, uint32_t sock)
{
    struct rusty_udp_state *u = s->udp;
    struct udp_sock *k = rusty_sock_get(s, sock, RUSTY_SOCK_UDP);
    if (!k)
        return -EBADF;
    int32_t idx = k->index;
    int32_t *p = &u->buckets[bucket(k->port)];
    while (*p >= 0 && *p != idx)
        p = &sock_at(u, *p)->next;
    if (*p == idx)
        *p = k->next;
    rxq_clear(k);
    k->in_use = 0;
    k->next = u->free_head;
    u->free_head = idx;
    rusty_sock_release(s, sock);
    return 0;
}

int rusty_udp_getsockname(struct rusty_stack *s, uint32_t sock, uint32_t *ip, uint16_t *port)
{
    struct udp_sock *k = rusty_sock_get(s, sock, RUSTY_SOCK_UDP);
    if (!k)
        return -EBADF;
    *ip = k->ip;
    *port = k->port;
    return 0;
}

int rusty_udp_sendto(struct rusty_stack *s, uint32_t sock, uint32_t dst, uint16_t port, const uint8_t *data,
                     size_t len, uint64_t now_us)
{
    struct udp_sock *k = rusty_sock_get(s, sock, RUSTY_SOCK_UDP);
    if (!k)
        return -EBADF;
    if (dst == 0 || port == 0)
        return -EINVAL;
    s->now_us = now_us;
    struct rusty_iface *ifc;
    int err;
    struct rusty_buf *b = rusty_ipv4_alloc(s, dst, &ifc, &err);
    if (!b)
        return err;
    /* DF is always set: a datagram larger than the path MTU is refused, as a
     * kernel socket with IP_PMTUDISC_DO would. */
    if (len + RUSTY_UDP_HLEN + RUSTY_IPV4_HLEN > ifc->mtu || len + RUSTY_UDP_HLEN > rusty_buf_tailroom(b)) {
        rusty_buf_free(b);
        return -EMSGSIZE;
    }
    uint16_t ulen = (uint16_t)(len + RUSTY_UDP_HLEN);
    uint8_t *h = rusty_buf_put(b, ulen);
    uint32_t src = k->ip ? k->ip : ifc->ip;
    struct rusty_udp_repr r = {k->port, port, ulen, 0};
    if (len)
        memcpy(h + RUSTY_UDP_HLEN, data, len);
    uint64_t pseudo = rusty_csum_pseudo_ipv4(src, dst, RUSTY_IPPROTO_UDP, ulen);
    if (ifc->dev->offloads & RUSTY_OFF_TX_CSUM) {
        /* The device finishes it: the field holds the folded pseudo-header sum. */
        r.checksum = rusty_csum_fold(pseudo);
        b->flags |= RUSTY_BUF_CSUM_PARTIAL;
        b->csum_start = 0;
        b->csum_offset = 6;
        rusty_udp_emit(&r, h);
    } else {
        /* Software: computed here (not left to rusty_dev_tx) so that a sum of
         * zero goes out as 0xffff - RFC 768: zero means "no checksum". */
        rusty_udp_emit(&r, h);
        r.checksum = rusty_csum_finish(rusty_csum_add(pseudo, h, ulen));
        if (r.checksum == 0)
            r.checksum = 0xffff;
        wr16(h + 6, r.checksum);
    }
    s->stats.udp_tx++;
    err = rusty_ipv4_output(s, ifc, b, src, dst, RUSTY_IPPROTO_UDP, now_us);
    return err < 0 ? err : (int)len;
}

void rusty_udp_input(struct rusty_stack *s, struct rusty_iface *ifc, struct rusty_buf *b,
                     const struct rusty_ipv4_repr *ip, uint64_t now_us)
{
    struct rusty_udp_repr r;
    s->stats.udp_rx++;
    if (rusty_udp_parse(rusty_buf_data(b), b->len, &r) != 0 || r.dst_port == 0) {
        s->stats.udp_malformed++;
        rusty_buf_free(b);
        return;
    }
    b->len = r.length;                  /* the IPv4 payload may extend past the datagram */
    /* RFC 1122 4.1.3.4: verify a nonzero checksum (zero: the sender sent none). */
    if (r.checksum != 0 && !(b->flags & RUSTY_BUF_CSUM_VALID)) {
        uint64_t acc = rusty_csum_pseudo_ipv4(ip->src, ip->dst, RUSTY_IPPROTO_UDP, r.length);
        if (rusty_csum_fold(rusty_csum_add(acc, rusty_buf_data(b), r.length)) != 0xffff) {
            s->stats.udp_bad_checksum++;
            rusty_buf_free(b);
            return;
        }
    }
    struct rusty_udp_state *u = s->udp;
    int bcast = !rusty_iface_by_ip(s, ip->dst);
    /* Broadcasts go to wildcard sockets only. */
    struct udp_sock *k = lookup(u, bcast ? 0 : ip->dst, r.dst_port);
    if (k && bcast && k->ip != 0)
        k = NULL;
    if (!k) {
        s->stats.udp_no_port++;
        if (!bcast) {
            /* RFC 1122 4.1.3.1: port unreachable, quoting the datagram. */
            rusty_buf_push(b, ip->header_len);
            rusty_icmp_send_unreachable(s, ifc, b, ip, RUSTY_ICMP_PORT_UNREACH, now_us);
        }
        rusty_buf_free(b);
        return;
    }
    if (k->rxq_len >= s->cfg.udp_rx_queue) {
        s->stats.udp_queue_full++;
        rusty_buf_free(b);
        return;
    }
    b->next = NULL;
    if (k->rxq_tail)
        k->rxq_tail->next = b;
    else
        k->rxq_head = b;
    k->rxq_tail = b;
    k->rxq_len++;
    /* One event per socket per poll, however many datagrams came. */
    if (k->notified_seq != s->poll_seq || s->poll_seq == 0) {
        k->notified_seq = s->poll_seq;
        rusty_event_push(s, k->handle, RUSTY_EV_UDP_READABLE, 0, 0);
    }
}

int rusty_udp_recvfrom(struct rusty_stack *s, uint32_t sock, uint8_t *buf, size_t cap, uint32_t *src,
                       uint16_t *port)
{
    struct udp_sock *k = rusty_sock_get(s, sock, RUSTY_SOCK_UDP);
    if (!k)
        return -EBADF;
    struct rusty_buf *b = k->rxq_head;
    if (!b)
        return -EAGAIN;
    k->rxq_head = b->next;
    if (!k->rxq_head)
        k->rxq_tail = NULL;
    k->rxq_len--;
    const uint8_t *h = rusty_buf_data(b);
    size_t n = (size_t)b->len - RUSTY_UDP_HLEN;
    if (n > cap)
        n = cap;
    if (n)
        memcpy(buf, h + RUSTY_UDP_HLEN, n);
    if (src)
        *src = rd32(b->storage + b->l3_off + 12);
    if (port)
        *port = rd16(h);
    rusty_buf_free(b);
    return (int)n;
}

void rusty_udp_icmp_error(struct rusty_stack *s, const struct rusty_ipv4_repr *inner, const uint8_t *l4,
                          size_t l4_len, int err, int soft)
{
    if (l4_len < 4)
        return;
    uint16_t sport = rd16(l4);
    struct udp_sock *k = lookup(s->udp, inner->src, sport);
    if (!k)
        return;
    rusty_event_push_flags(s, k->handle, RUSTY_EV_UDP_ERROR, soft ? RUSTY_EV_F_SOFT : 0, err, inner->dst);
}
