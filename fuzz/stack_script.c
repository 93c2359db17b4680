/*
 * stack_script.c - libFuzzer harness: scripted frames and app calls into a
 * stack whose connections are in many TCP states.
 *
 * Setup (the same for every input): a stack on one end of an in-process pair
 * (loopback.c), the harness playing the peer on the other end, as
 * tests/tcp/_script.py does. Through real handshakes it leaves behind
 *   slot 0  ESTABLISHED (passive open, timestamps and window scaling)
 *   slot 1  CLOSE-WAIT  (the peer sent FIN)
 *   slot 2  FIN-WAIT-2  (the stack shut its write side, the peer ACKed)
 *   slot 3  SYN-RECEIVED (SYN in, SYN-ACK out, no ACK yet)
 *   slot 4  ESTABLISHED (active open, no options but MSS)
 *   slot 5  SYN-SENT    (active open, unanswered)
 *   slot 6  FIN-WAIT-1  (the stack shut its write side, no ACK)
 * plus a listener on port 80 and a UDP socket on port 7.
 *
 * Then the input is a script of steps, each an opcode byte and its fields
 * (fuzz_input.h: missing bytes read as zero):
 *   RAW      a whole Ethernet frame, injected as is
 *   SEG      a TCP segment on a slot: flags, seq/ack as offsets from where the
 *            connection is (learned from the stack's own segments, like
 *            Wireshark's relative numbers), window, options, payload; checksums
 *            computed unless asked to be wrong - so mutations reach real TCBs
 *   ADVANCE  move the clock, polling at every deadline on the way
 *   APP      a user call on a slot's handle: send, send_payload, recv,
 *            peek/consume, rx_detach, shutdown, close, abort, set_option,
 *            or connect/listen/accept
 * After every step the stack is polled, its events handled (accepted
 * connections get a slot), and its output drained: ARP requests for the peer
 * are answered, TCP segments update the slot's relative numbers.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rusty.h"
#include "fuzz_input.h"

#define STACK_IP 0x0a000001u
#define PEER_IP 0x0a000002u
#define NSLOTS 16
#define MAX_FRAME 1600
#define MAX_POLLS_PER_ADVANCE 64

enum { OP_RAW, OP_SEG, OP_ADVANCE, OP_APP, OP_COUNT };
enum {
    APP_SEND, APP_PAYLOAD, APP_RECV, APP_PEEK, APP_DETACH, APP_SHUTDOWN, APP_CLOSE, APP_ABORT,
    APP_OPTION, APP_CONNECT, APP_ACCEPT, APP_UDP, APP_COUNT
};
#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_ACK 0x10

static const uint8_t PEER_MAC[6] = {0x02, 0, 0, 0, 0, 0x02};

struct slot {
    int used;
    uint16_t pport, sport;              /* peer's port, stack's port */
    uint32_t peer_seq;                  /* next sequence number the peer sends */
    uint32_t peer_ack;                  /* what the peer acknowledges: the stack's seq + len */
    int has_handle;
    uint32_t handle;
};

struct h {
    struct rusty_stack *st;
    struct rusty_dev *a, *b;            /* a: the stack's end; b: ours */
    struct rusty_payload *payload;
    uint8_t stack_mac[6];
    uint64_t now;
    struct slot slot[NSLOTS];
    int has_listener, has_udp;
    uint32_t listener, udp;
    uint16_t ip_id;
};

static uint8_t scratch[65536];

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint32_t sum_bytes(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += get16(p + i);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    return sum;
}

static uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static int seq_gt(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
}

static void eth_header(struct h *h, uint8_t *f, uint16_t type)
{
    memcpy(f, h->stack_mac, 6);
    memcpy(f + 6, PEER_MAC, 6);
    put16(f + 12, type);
}

static void inject(struct h *h, const uint8_t *f, size_t len)
{
    (void)rusty_dev_send_at(h->b, 0, f, len, h->now);
}

/* An IPv4 header from the peer to the stack at f + 14, protocol proto, l4 bytes after it. */
static void ip_header(struct h *h, uint8_t *f, uint8_t proto, size_t l4)
{
    uint8_t *ip = f + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + l4));
    put16(ip + 4, h->ip_id++);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = proto;
    put32(ip + 12, PEER_IP);
    put32(ip + 16, STACK_IP);
    put16(ip + 10, fold(sum_bytes(0, ip, 20)));
}

static void send_arp(struct h *h, uint16_t op, const uint8_t *tha, uint32_t tpa)
{
    uint8_t f[42];
    eth_header(h, f, 0x0806);
    if (op == 1)
        memset(f, 0xff, 6);
    else
        memcpy(f, tha, 6);
    static const uint8_t hdr[6] = {0, 1, 8, 0, 6, 4};
    memcpy(f + 14, hdr, 6);
    put16(f + 20, op);
    memcpy(f + 22, PEER_MAC, 6);
    put32(f + 28, PEER_IP);
    memcpy(f + 32, tha, 6);
    put32(f + 38, tpa);
    inject(h, f, sizeof(f));
}

static void send_seg(struct h *h, struct slot *s, uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win,
                     const uint8_t *opt, size_t optlen, const uint8_t *payload, size_t plen, int bad_csum)
{
    static uint8_t f[14 + 20 + 60 + MAX_FRAME];
    optlen = (optlen + 3) & ~(size_t)3;
    size_t tlen = 20 + optlen + plen;
    eth_header(h, f, 0x0800);
    ip_header(h, f, 6, tlen);
    uint8_t *t = f + 34;
    memset(t, 0, 20 + optlen);
    put16(t, s->pport);
    put16(t + 2, s->sport);
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = (uint8_t)(((20 + optlen) / 4) << 4);
    t[13] = flags;
    put16(t + 14, win);
    if (opt)
        memcpy(t + 20, opt, optlen);
    if (plen)
        memcpy(t + 20 + optlen, payload, plen);
    uint8_t pseudo[12];
    put32(pseudo, PEER_IP);
    put32(pseudo + 4, STACK_IP);
    pseudo[8] = 0;
    pseudo[9] = 6;
    put16(pseudo + 10, (uint16_t)tlen);
    uint16_t c = fold(sum_bytes(sum_bytes(0, pseudo, 12), t, tlen));
    put16(t + 16, bad_csum ? (uint16_t)(c ^ 0x1234) : c);
    inject(h, f, 34 + tlen);
}

static struct slot *slot_by_ports(struct h *h, uint16_t pport, uint16_t sport)
{
    for (int i = 0; i < NSLOTS; i++)
        if (h->slot[i].used && h->slot[i].pport == pport && h->slot[i].sport == sport)
            return &h->slot[i];
    return NULL;
}

static struct slot *slot_new(struct h *h, uint16_t pport, uint16_t sport)
{
    struct slot *s = slot_by_ports(h, pport, sport);
    if (s)
        return s;
    for (int i = 0; i < NSLOTS; i++)
        if (!h->slot[i].used) {
            s = &h->slot[i];
            memset(s, 0, sizeof(*s));
            s->used = 1;
            s->pport = pport;
            s->sport = sport;
            return s;
        }
    return NULL;
}

/* A frame the stack sent: answer ARP for the peer, learn TCP numbers. */
static void observe(struct h *h, const uint8_t *f, int len)
{
    if (len >= 42 && get16(f + 12) == 0x0806 && get16(f + 20) == 1 && get32(f + 38) == PEER_IP) {
        send_arp(h, 2, f + 22, get32(f + 28));
        return;
    }
    if (len < 54 || get16(f + 12) != 0x0800 || f[23] != 6)
        return;
    size_t ihl = (size_t)(f[14] & 15) * 4;
    size_t tot = get16(f + 16);
    if (ihl < 20 || tot > (size_t)len - 14 || tot < ihl + 20)
        return;
    const uint8_t *t = f + 14 + ihl;
    size_t thl = (size_t)(t[12] >> 4) * 4;
    if (thl < 20 || thl > tot - ihl)
        return;
    struct slot *s = slot_by_ports(h, get16(t + 2), get16(t));
    if (!s)
        return;
    uint32_t plen = (uint32_t)(tot - ihl - thl);
    uint8_t flags = t[13];
    uint32_t end = get32(t + 4) + plen + !!(flags & F_SYN) + !!(flags & F_FIN);
    if (flags & F_SYN || seq_gt(end, s->peer_ack))
        s->peer_ack = end;
    if (flags & F_ACK && seq_gt(get32(t + 8), s->peer_seq))
        s->peer_seq = get32(t + 8);
}

static void drain(struct h *h)
{
    static uint8_t f[2048];
    int n;
    while ((n = rusty_dev_recv_at(h->b, 0, f, sizeof(f), h->now)) > 0)
        observe(h, f, n);
}

static void on_events(struct h *h, const struct rusty_event *ev, int n)
{
    for (int i = 0; i < n; i++) {
        if (ev[i].type == RUSTY_EV_TCP_ACCEPT && h->has_listener) {
            uint32_t c;
            while (rusty_tcp_accept(h->st, h->listener, &c) == 0) {
                struct rusty_tcp_info info;
                struct slot *s = NULL;
                if (rusty_tcp_get_info(h->st, c, &info) == 0)
                    s = slot_new(h, info.remote_port, info.local_port);
                if (s && !s->has_handle) {
                    s->has_handle = 1;
                    s->handle = c;
                } else {
                    rusty_tcp_abort(h->st, c, h->now);
                }
            }
        } else if (ev[i].type == RUSTY_EV_UDP_READABLE && h->has_udp) {
            uint32_t src;
            uint16_t port;
            while (rusty_udp_recvfrom(h->st, h->udp, scratch, 2048, &src, &port) >= 0)
                ;
        }
    }
}

static void poll_once(struct h *h)
{
    struct rusty_event ev[64];
    int n;
    do {
        n = rusty_stack_poll(h->st, h->now, ev, 64);
        if (n > 0)
            on_events(h, ev, n);
        drain(h);
    } while (n == 64);
    /* ARP replies drained above are waiting for the stack: take them now. */
    n = rusty_stack_poll(h->st, h->now, ev, 64);
    if (n > 0)
        on_events(h, ev, n);
    drain(h);
}

static void advance(struct h *h, uint64_t us)
{
    uint64_t end = h->now + us;
    for (int i = 0; i < MAX_POLLS_PER_ADVANCE; i++) {
        int64_t d = rusty_stack_next_deadline(h->st, h->now);
        if (d < 0 || (uint64_t)d > end)
            break;
        if ((uint64_t)d > h->now)
            h->now = (uint64_t)d;
        poll_once(h);
    }
    h->now = end;
    poll_once(h);
}

/* ---------------------------------------------------------------- setup */

static const uint8_t OPT_FULL[20] = {2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0};
static const uint8_t OPT_MSS[4] = {2, 4, 0x05, 0xb4};

/* Peer SYN to the listener, SYN-ACK back; with complete, the ACK that finishes it. */
static struct slot *passive_open(struct h *h, uint16_t pport, int full, int complete)
{
    struct slot *s = slot_new(h, pport, 80);
    s->peer_seq = 1000u * pport;
    send_seg(h, s, F_SYN, s->peer_seq, 0, 65535, full ? OPT_FULL : OPT_MSS, full ? 20 : 4, NULL, 0, 0);
    s->peer_seq++;
    poll_once(h);
    if (complete) {
        send_seg(h, s, F_ACK, s->peer_seq, s->peer_ack, 65535, NULL, 0, NULL, 0, 0);
        poll_once(h);
    }
    return s;
}

static struct slot *active_open(struct h *h, uint16_t pport, int answer)
{
    uint32_t c;
    if (rusty_tcp_connect(h->st, 0, PEER_IP, pport, (uint16_t)(50000 + pport % 1000), h->now, &c) != 0)
        return NULL;
    struct rusty_tcp_info info;
    rusty_tcp_get_info(h->st, c, &info);
    struct slot *s = slot_new(h, pport, info.local_port);
    s->has_handle = 1;
    s->handle = c;
    s->peer_seq = 7777u * pport;
    poll_once(h);                       /* SYN out (after ARP) */
    if (answer) {
        send_seg(h, s, F_SYN | F_ACK, s->peer_seq, s->peer_ack, 65535, OPT_MSS, 4, NULL, 0, 0);
        s->peer_seq++;
        poll_once(h);
    }
    return s;
}

static int setup(struct h *h, uint8_t variant)
{
    struct rusty_dev_config dc = {.pool_buffers = 512, .ring_frames = 256};
    if (variant & 1)
        dc.flags = RUSTY_DEVF_GATHER;   /* the stack sends checksum-offloaded, scatter-gather frames */
    if (rusty_pair_open(&dc, &h->a, &h->b) != 0)
        return -1;
    struct rusty_stack_config sc = {.seed = 7, .arp_timeout_us = 4000000000u, .tcp_msl_us = 2000000};
    if (variant & 2)
        sc.tcp_rcvbuf = 4096;           /* small windows: the window edge and zero windows */
    if (rusty_stack_new(&sc, &h->st) != 0)
        return -1;
    h->now = 1000000;
    if (rusty_stack_add_iface(h->st, h->a, STACK_IP, 24, 0, h->now) < 0)
        return -1;
    struct rusty_dev_info info;
    rusty_dev_get_info(h->a, &info);
    memcpy(h->stack_mac, info.mac, 6);
    static const uint8_t zero[6];
    send_arp(h, 1, zero, STACK_IP);
    poll_once(h);

    static uint8_t data[3000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    if (rusty_payload_new(data, sizeof(data), &h->payload) != 0)
        return -1;
    if (rusty_tcp_listen(h->st, 0, 80, 8, 0, &h->listener) == 0)
        h->has_listener = 1;
    if (rusty_udp_bind(h->st, 0, 7, &h->udp) == 0)
        h->has_udp = 1;

    passive_open(h, 40000, 1, 1);                               /* ESTABLISHED */
    struct slot *cw = passive_open(h, 40001, 0, 1);             /* CLOSE-WAIT */
    send_seg(h, cw, F_FIN | F_ACK, cw->peer_seq, cw->peer_ack, 65535, NULL, 0, NULL, 0, 0);
    cw->peer_seq++;
    poll_once(h);
    struct slot *fw2 = passive_open(h, 40002, 1, 1);            /* FIN-WAIT-2 */
    if (fw2->has_handle)
        rusty_tcp_shutdown(h->st, fw2->handle, 1, h->now);
    poll_once(h);
    send_seg(h, fw2, F_ACK, fw2->peer_seq, fw2->peer_ack, 65535, NULL, 0, NULL, 0, 0);
    poll_once(h);
    passive_open(h, 40003, 1, 0);                               /* SYN-RECEIVED */
    active_open(h, 8080, 1);                                    /* ESTABLISHED, active */
    active_open(h, 8081, 0);                                    /* SYN-SENT */
    struct slot *fw1 = passive_open(h, 40004, 0, 1);            /* FIN-WAIT-1 */
    if (fw1->has_handle)
        rusty_tcp_shutdown(h->st, fw1->handle, 1, h->now);
    poll_once(h);
    return 0;
}

static void teardown(struct h *h)
{
    if (h->st) {
        for (int i = 0; i < NSLOTS; i++)
            if (h->slot[i].used && h->slot[i].has_handle)
                rusty_tcp_abort(h->st, h->slot[i].handle, h->now);
        if (h->has_listener)
            rusty_tcp_close(h->st, h->listener, h->now);
        if (h->has_udp)
            rusty_udp_close(h->st, h->udp);
        rusty_stack_free(h->st);
    }
    if (h->payload)
        rusty_payload_free(h->payload);
    if (h->a)
        rusty_dev_close(h->a);
    if (h->b)
        rusty_dev_close(h->b);
}

/* ---------------------------------------------------------------- steps */

static void step_seg(struct h *h, struct fin *in)
{
    uint8_t which = fin_u8(in);
    uint8_t flags = fin_u8(in);
    uint8_t mode = fin_u8(in);          /* bit 0: bad checksum; bit 1: 32-bit offsets; bit 2: new port */
    int32_t dseq, dack;
    if (mode & 2) {
        dseq = (int32_t)fin_u32(in);
        dack = (int32_t)fin_u32(in);
    } else {
        dseq = (int16_t)fin_u16(in);
        dack = (int16_t)fin_u16(in);
    }
    uint16_t win = fin_u16(in);
    size_t optlen = fin_u8(in) % 41;
    uint8_t opt[44];
    fin_bytes(in, opt, optlen);
    memset(opt + optlen, 0, sizeof(opt) - optlen);
    size_t plen = fin_u16(in) % (MAX_FRAME - 14 - 20 - 60);
    static uint8_t payload[MAX_FRAME];
    fin_bytes(in, payload, plen);

    struct slot *s;
    if (mode & 4) {                     /* a connection the setup did not make: port from the input */
        s = slot_new(h, (uint16_t)(30000 + which), (mode & 8) ? 80 : (uint16_t)(80 + (which & 3)));
        if (!s)
            return;
    } else {
        s = &h->slot[which % NSLOTS];
        if (!s->used)
            return;
    }
    uint32_t seq = s->peer_seq + (uint32_t)dseq;
    send_seg(h, s, flags, seq, s->peer_ack + (uint32_t)dack, win, opt, optlen, payload, plen, mode & 1);
    if (dseq == 0 && !(mode & 1) && !(flags & F_RST))
        s->peer_seq = seq + (uint32_t)plen + !!(flags & F_SYN) + !!(flags & F_FIN);
}

static void step_raw(struct h *h, struct fin *in)
{
    uint8_t mode = fin_u8(in);
    size_t len = fin_u16(in) % MAX_FRAME;
    static uint8_t f[MAX_FRAME];
    fin_bytes(in, f, len);
    if (len >= 14 && (mode & 1)) {      /* addressed to the stack, so it gets past Ethernet */
        memcpy(f, h->stack_mac, 6);
        memcpy(f + 6, PEER_MAC, 6);
    }
    if (len >= 34 && (mode & 2)) {      /* a valid IPv4 header checksum over what is there */
        size_t ihl = (size_t)(f[14] & 15) * 4;
        if (ihl >= 20 && 14 + ihl <= len) {
            put16(f + 24, 0);
            put16(f + 24, fold(sum_bytes(0, f + 14, ihl)));
        }
    }
    inject(h, f, len);
}

static void step_app(struct h *h, struct fin *in)
{
    uint8_t what = fin_u8(in) % APP_COUNT;
    struct slot *s = &h->slot[fin_u8(in) % NSLOTS];
    uint16_t arg = fin_u16(in);
    uint32_t arg2 = fin_u32(in);
    int live = s->used && s->has_handle;
    uint32_t c = s->handle;
    switch (what) {
    case APP_SEND:
        if (live) {
            memset(scratch, 'x', arg);
            rusty_tcp_send(h->st, c, scratch, arg, h->now);
        }
        break;
    case APP_PAYLOAD:
        if (live)
            rusty_tcp_send_payload(h->st, c, h->payload, arg % 3100, arg2 % 3100, h->now);
        break;
    case APP_RECV:
        if (live)
            rusty_tcp_recv(h->st, c, scratch, arg);
        break;
    case APP_PEEK:
        if (live) {
            const uint8_t *data;
            size_t len;
            int n = rusty_tcp_peek(h->st, c, &data, &len);
            if (n > 0) {
                volatile uint8_t touch = data[0] ^ data[len - 1];   /* the view must be readable */
                (void)touch;
                rusty_tcp_consume(h->st, c, arg2 % (len + 2), h->now);
            }
        }
        break;
    case APP_DETACH:
        if (live) {
            const uint8_t *data;
            size_t len;
            uint8_t *old = NULL;
            if (rusty_tcp_peek(h->st, c, &data, &len) > 0 && rusty_tcp_rx_detach(h->st, c, &old) == 0) {
                volatile uint8_t touch = data[0] ^ data[len - 1];   /* still valid: the old ring is ours */
                (void)touch;
                rusty_tcp_consume(h->st, c, len, h->now);
                rusty_tcp_ring_free(old);
            }
        }
        break;
    case APP_SHUTDOWN:
        if (live)
            rusty_tcp_shutdown(h->st, c, arg % 4, h->now);
        break;
    case APP_CLOSE:
    case APP_ABORT:
        if (live) {
            if (what == APP_CLOSE)
                rusty_tcp_close(h->st, c, h->now);
            else
                rusty_tcp_abort(h->st, c, h->now);
            s->has_handle = 0;
        }
        break;
    case APP_OPTION:
        if (live)
            rusty_tcp_set_option(h->st, c, arg % 10, (int64_t)(int32_t)arg2);
        else if (h->has_listener)
            rusty_tcp_set_option(h->st, h->listener, arg % 10, (int64_t)(int32_t)arg2);
        break;
    case APP_CONNECT: {
        uint32_t nc;
        uint16_t pport = (uint16_t)(9000 + (arg & 0xff));
        if (rusty_tcp_connect(h->st, 0, PEER_IP, pport, 0, h->now, &nc) == 0) {
            struct rusty_tcp_info info;
            struct slot *ns = NULL;
            if (rusty_tcp_get_info(h->st, nc, &info) == 0)
                ns = slot_new(h, pport, info.local_port);
            if (ns && !ns->has_handle) {
                ns->has_handle = 1;
                ns->handle = nc;
                ns->peer_seq = arg2;
            } else {
                rusty_tcp_abort(h->st, nc, h->now);
            }
        }
        break;
    }
    case APP_ACCEPT:
        if (h->has_listener && (arg & 1)) {
            rusty_tcp_close(h->st, h->listener, h->now);
            h->has_listener = 0;
        } else if (!h->has_listener && rusty_tcp_listen(h->st, 0, 80, arg2 % 16,
                                                        (arg2 >> 4) & RUSTY_TCP_LISTEN_REUSEPORT,
                                                        &h->listener) == 0) {
            h->has_listener = 1;
        }
        break;
    case APP_UDP:
        if (h->has_udp)
            rusty_udp_sendto(h->st, h->udp, PEER_IP, arg, scratch, arg2 % 1600, h->now);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fin in = {data, size};
    struct h h;
    memset(&h, 0, sizeof(h));
    if (setup(&h, fin_u8(&in)) == 0) {
        for (int steps = 0; fin_more(&in) && steps < 256; steps++) {
            switch (fin_u8(&in) % OP_COUNT) {
            case OP_RAW:
                step_raw(&h, &in);
                poll_once(&h);
                break;
            case OP_SEG:
                step_seg(&h, &in);
                poll_once(&h);
                break;
            case OP_ADVANCE: {
                uint16_t v = fin_u16(&in);
                advance(&h, (uint64_t)(v & 0x3fff) << ((v >> 14) * 6));
                break;
            }
            case OP_APP:
                step_app(&h, &in);
                rusty_stack_output(h.st, h.now);
                poll_once(&h);
                break;
            }
        }
    }
    teardown(&h);
    return 0;
}
