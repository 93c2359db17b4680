/*
 * af_packet.c - the AF_PACKET driver: any Linux interface (veth, a real NIC)
 * through TPACKET_V2 memory-mapped rings.
 *
 * Owns: one packet socket per queue bound to the interface, its mmap'ed RX
 * and TX rings (TPACKET_V2, a slot per frame), the socket filter that steers
 * flows to queues (one worker per queue), and copying frames between the
 * rings and pool buffers. Not: the interface's own configuration (address, link state).
 *
 * Call chain: rusty_stack_poll -> rusty_dev_rx -> afp_rx -> walk slots the kernel filled
 *             rusty_stack_poll -> rusty_dev_tx -> afp_tx -> fill TX slots, one send() kick
 *
 * RX: the kernel writes each frame into the next 2 KiB slot and hands it to
 * us (TP_STATUS_USER); we walk the slots in memory with no syscall per frame,
 * copy each frame into a pool buffer (the stack holds buffers for as long as
 * it likes; ring slots must go back) and give the slot back at once. The
 * socket is readable while a slot is ours. Why V2 and not V3: V3 hands over
 * blocks of frames, retired when full or after tp_retire_blk_tov (1 ms at
 * least), so a lone frame waited up to 1 ms - a closed-loop connection made
 * at most 1,000 requests a second (16 connections: 16k req/s, p50 1 ms).
 *
 * TX: the TPACKET_V2 TX ring: fixed 2 KiB slots, each frame is
 * copied into the next free slot and marked SEND_REQUEST, and one
 * send(MSG_DONTWAIT) per burst makes the kernel transmit them all. PACKET_LOSS
 * keeps a malformed slot from blocking the ring.
 *
 * Our own frames are not looped back to us (PACKET_IGNORE_OUTGOING, 4.20).
 * The socket puts the interface in promiscuous mode: the stack's MAC is
 * generated, not the interface's, because the kernel keeps the interface and
 * answers for its own address.
 *
 * Checksums: frames the kernel or the NIC verified carry TP_STATUS_CSUM_VALID;
 * frames from a local sender (a veth peer) carry TP_STATUS_CSUMNOTREADY, their
 * checksum left to "hardware" that never runs: both are RUSTY_BUF_CSUM_VALID.
 * TX checksums of frames in the ring are finished in software here (the ring
 * has no per-frame offload request).
 *
 * TSO and scatter-gather on tx: frames larger than a slot (a TCP frame of up
 * to 64 KiB with gso_size, buf.h) or with an external tail go through a second
 * packet socket per queue with PACKET_VNET_HDR (packet(7)): one sendmsg() of
 * a virtio-net header (GSO_TCPV4, NEEDS_CSUM, as tap.c writes it) and the
 * frame from where it lies, which the kernel segments (or hands whole to a
 * veth peer, whose TCP takes it as one GRO packet). Why a second socket and
 * not the vnet header on the ring socket: the header would then also sit in
 * front of every received frame and of every ring slot, and a TX ring slot
 * cannot hold 64 KiB without making every slot that large. The side socket
 * has protocol 0 (it receives nothing) and is bound to the interface. Order:
 * the ring is kicked before a side frame goes, so frames leave in the order
 * the stack queued them. A peer that sends TSO/GSO super-frames over a veth (Linux TCP
 * does by default) must have them off (`ethtool -K PEER tso off gso off`):
 * frames longer than a buffer are dropped and counted in rx_dropped.
 *
 * Queues and steering: queue K of N is a socket of its own carrying a
 * classic-BPF socket filter (SO_ATTACH_FILTER, see steer_filter) that keeps
 * exactly the frames whose symmetric flow hash is K:
 *   x = saddr ^ daddr ^ ((sport ^ dport) * 0x10001), murmur3's fmix32, x % N,
 * the hash of the shm link's RUSTY_DEVF_STEER and of aiorusty/testbed/steer.py,
 * so a generator worker picks source ports whose replies land on itself.
 * ARP passes every queue's filter: each worker resolves its own peers and
 * answers requests (the N answers are identical: all queues share the MAC).
 * Other non-IPv4 frames go to queue 0. The same holds whether one process
 * opens all N queues or worker K opens queue K alone (RUSTY_DEVF_SINGLE_QUEUE,
 * `queues=N,queue=K`).
 * Why not a fanout group: a group hands each frame to one member, so ARP
 * would reach one worker only (measured: `serve -w 2` answered on one worker);
 * and PACKET_FANOUT_CBPF's result indexes the members in the order they
 * joined, which N worker processes starting in parallel do not control, so
 * the hash could not name a worker. N filters each see every frame (N runs
 * of a ~40-instruction program per frame, no copy for the N-1 that refuse
 * it), which is cheap for N up to the core count. A worker that is not
 * running leaves its share of flows unanswered, as a missing shm queue does.
 * The filter is attached before bind(): a socket of protocol 0 receives
 * nothing until then, so no unfiltered frame reaches the ring.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/virtio_net.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dev.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define FRAME_SIZE 2048u
#define DEFAULT_RX_FRAMES 4096u         /* 8 MiB of RX ring per queue */
#define TX_FRAMES 512u                  /* 1 MiB of TX ring per queue */
#define MAX_BLOCK (128u * 1024u)
/* Where TX frame data starts in a slot (no PACKET_TX_HAS_OFF; packet(7)). */
#define TX_DATA_OFF (TPACKET2_HDRLEN - sizeof(struct sockaddr_ll))
#define MAX_FRAME (RUSTY_BUF_SIZE - RUSTY_BUF_HEADROOM)

struct afq {
    int fd;
    uint8_t *map;
    size_t map_len;
    /* RX ring */
    uint8_t *rx;
    uint32_t rx_nr, rx_head;            /* rx_head: the next slot the kernel fills */
    /* TX ring */
    uint8_t *tx;
    uint32_t tx_nr, tx_head;
    int gso_fd;                         /* TSO / scatter-gather frames (PACKET_VNET_HDR); -1: none */
};

struct afp {
    struct afq q[RUSTY_MAX_QUEUES];
    uint16_t nq;
    uint32_t csum_ok;                   /* tp_status bits we trust (0 with RUSTY_DEVF_NO_OFFLOAD) */
};

static int local_queue(const struct rusty_dev *dev, uint16_t queue)
{
    if (queue >= dev->queues && queue >= dev->first_queue)
        queue -= dev->first_queue;
    return queue < dev->queues ? queue : -1;
}

static struct tpacket2_hdr *rx_slot(const struct afq *q, uint32_t i)
{
    return (struct tpacket2_hdr *)(q->rx + (size_t)i * FRAME_SIZE);
}

static void count_drops(struct rusty_dev *dev, const struct afq *q)
{
    struct tpacket_stats st;            /* reading it resets it: the sum is the total */
    socklen_t len = sizeof(st);
    if (getsockopt(q->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
        dev->stats.rx_dropped += st.tp_drops;
}

static int afp_rx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int max, uint64_t now_us)
{
    struct afp *a = dev->priv;
    int qi = local_queue(dev, queue);
    (void)now_us;
    if (qi < 0)
        return -EINVAL;
    struct afq *q = &a->q[qi];
    int n = 0;
    while (n < max) {
        struct tpacket2_hdr *h = rx_slot(q, q->rx_head);
        uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
        if (!(st & TP_STATUS_USER))
            break;
        struct rusty_buf *b = rusty_pool_get(dev->pool);
        if (!b)
            break;                      /* the slot stays ours until the pool refills */
        if (st & TP_STATUS_LOSING)
            count_drops(dev, q);        /* the kernel dropped frames: the ring was full */
        if (h->tp_snaplen < h->tp_len || h->tp_len > MAX_FRAME || h->tp_len < 14 ||
            h->tp_mac + h->tp_len > FRAME_SIZE) {
            rusty_buf_free(b);
            dev->stats.rx_dropped++;
        } else {
            memcpy(rusty_buf_put(b, (uint16_t)h->tp_len), (uint8_t *)h + h->tp_mac, h->tp_len);
            if (st & a->csum_ok)
                b->flags |= RUSTY_BUF_CSUM_VALID;
            b->queue = (uint8_t)qi;
            bufs[n++] = b;
        }
        __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        q->rx_head = (q->rx_head + 1) % q->rx_nr;
    }
    return n;
}

static struct tpacket2_hdr *tx_slot(const struct afq *q, uint32_t i)
{
    return (struct tpacket2_hdr *)(q->tx + (size_t)i * FRAME_SIZE);
}

/* A frame through the side socket: 1 sent (or dropped as malformed), 0 the
   socket is full (the caller keeps the frame). */
static int tx_gso(struct rusty_dev *dev, struct afq *q, struct rusty_buf *b)
{
    struct virtio_net_hdr h;
    memset(&h, 0, sizeof(h));
    if (b->flags & RUSTY_BUF_CSUM_PARTIAL) {
        h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h.csum_start = b->csum_start;
        h.csum_offset = b->csum_offset;
        if (b->gso_size) {
            const uint8_t *tcp = rusty_buf_data(b) + b->csum_start;
            h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
            h.gso_size = b->gso_size;
            h.hdr_len = (uint16_t)(b->csum_start + (tcp[12] >> 4) * 4);
        }
    }
    struct iovec iov[3] = {{&h, sizeof(h)}, {rusty_buf_data(b), b->len}, {(void *)b->ext, b->ext_len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = b->ext_len ? 3 : 2};
    if (sendmsg(q->gso_fd, &msg, MSG_DONTWAIT) < 0) {
        if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR)
            return 0;
        dev->stats.tx_errors++;
    }
    rusty_buf_free(b);
    return 1;
}

static int afp_tx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us)
{
    struct afp *a = dev->priv;
    int qi = local_queue(dev, queue);
    (void)now_us;
    if (qi < 0)
        return -EINVAL;
    struct afq *q = &a->q[qi];
    int i, kicked = 0, pending = 0;
    for (i = 0; i < n; i++) {
        struct rusty_buf *b = bufs[i];
        if (q->gso_fd >= 0 && (b->gso_size || b->ext_len)) {
            if (pending && send(q->fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS)
                dev->stats.tx_errors++;
            pending = 0;
            if (!tx_gso(dev, q, b))
                break;
            continue;
        }
        rusty_buf_complete_csum(b);     /* a ring slot has no offload request */
        struct tpacket2_hdr *h = tx_slot(q, q->tx_head);
        uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
        if (st != TP_STATUS_AVAILABLE && !(st & TP_STATUS_WRONG_FORMAT)) {
            /* Ring full: let the kernel drain what is queued, look once more. */
            if (kicked || (i > 0))
                break;
            (void)!send(q->fd, NULL, 0, MSG_DONTWAIT);
            kicked = 1;
            st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
            if (st != TP_STATUS_AVAILABLE && !(st & TP_STATUS_WRONG_FORMAT))
                break;
        }
        if (st & TP_STATUS_WRONG_FORMAT)
            dev->stats.tx_errors++;     /* an earlier frame the kernel refused */
        if (b->len > FRAME_SIZE - TX_DATA_OFF) {
            dev->stats.tx_errors++;
            rusty_buf_free(b);
            continue;
        }
        memcpy((uint8_t *)h + TX_DATA_OFF, rusty_buf_data(b), b->len);
        h->tp_len = b->len;
        h->tp_snaplen = b->len;
        __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
        q->tx_head = (q->tx_head + 1) % q->tx_nr;
        rusty_buf_free(b);
        pending = 1;
    }
    if (pending && send(q->fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS)
        dev->stats.tx_errors++;         /* frames stay queued in the ring; the next kick retries */
    return i;
}

static int afp_fd(struct rusty_dev *dev, uint16_t queue)
{
    struct afp *a = dev->priv;
    int qi = local_queue(dev, queue);
    return qi < 0 ? -1 : a->q[qi].fd;
}

static void afp_close(struct rusty_dev *dev)
{
    struct afp *a = dev->priv;
    for (uint16_t i = 0; i < a->nq; i++) {
        if (a->q[i].map)
            munmap(a->q[i].map, a->q[i].map_len);
        close(a->q[i].fd);
        if (a->q[i].gso_fd >= 0)
            close(a->q[i].gso_fd);
    }
    a->nq = 0;
}

static const struct rusty_dev_ops afpacket_ops = {
    .driver = "afpacket",
    .rx_burst = afp_rx,
    .tx_burst = afp_tx,
    .fd = afp_fd,
    .close = afp_close,
};

static int setopt(int fd, int level, int name, const void *val, socklen_t len)
{
    return setsockopt(fd, level, name, val, len) < 0 ? -errno : 0;
}

/* The steering filter of queue k of n (n > 1): accept (whole frame) or drop.
 * BPF loads are big-endian, as the shm hash reads the header. Like shm.c's
 * steer_queue, ports count only for TCP/UDP first fragments with ihl >= 20;
 * unlike it, a frame too short for the loads it needs is dropped by the BPF
 * run-time (it is malformed: the stack would drop it too). */
#define STEER_LEN 41
#define SNAP_ALL 0xffffffffu
#define J(at, code, k, t, f) BPF_JUMP(BPF_JMP | (code) | BPF_K, (k), (t) - (at) - 1, (f) - (at) - 1)
enum { L_NOPORTS = 17, L_MIX = 18, L_NONIP = 38, L_DROP = 39, L_ACCEPT = 40 };

static void steer_filter(struct sock_filter *p, uint32_t k, uint32_t n)
{
    const struct sock_filter prog[STEER_LEN] = {
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),                 /*  0 ethertype */
        J(1, BPF_JEQ, ETH_P_ARP, L_ACCEPT, 2),                  /*  1 ARP: every queue */
        J(2, BPF_JEQ, ETH_P_IP, 3, L_NONIP),
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 20),                 /*  3 flags, fragment offset */
        J(4, BPF_JSET, 0x1fff, L_NOPORTS, 5),                   /*  4 not the first fragment */
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),                 /*  5 protocol */
        J(6, BPF_JEQ, 6, 8, 7),                                 /*  6 TCP */
        J(7, BPF_JEQ, 17, 8, L_NOPORTS),                        /*  7 UDP */
        BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),                /*  8 X = 4 * ihl */
        BPF_STMT(BPF_MISC | BPF_TXA, 0),
        J(10, BPF_JGE, 20, 11, L_NOPORTS),                      /* 10 ihl >= 20 bytes */
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, 14),                 /* 11 sport */
        BPF_STMT(BPF_ST, 0),
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, 16),                 /* 13 dport */
        BPF_STMT(BPF_LDX | BPF_W | BPF_MEM, 0),
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),                 /* 15 A = sport ^ dport */
        BPF_STMT(BPF_JMP | BPF_JA, L_MIX - 16 - 1),
        BPF_STMT(BPF_LD | BPF_IMM, 0),                          /* 17 L_NOPORTS: A = 0 */
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x10001),           /* 18 L_MIX */
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 26),                 /* 20 saddr */
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 30),                 /* 23 daddr */
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),                 /* 24 A = x */
        BPF_STMT(BPF_MISC | BPF_TAX, 0),                        /* 25 fmix32(x) */
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x85ebca6bu),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 13),
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0xc2b2ae35u),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),                 /* 36 the queue */
        J(37, BPF_JEQ, k, L_ACCEPT, L_DROP),
        BPF_STMT(BPF_RET | BPF_K, k == 0 ? SNAP_ALL : 0),       /* 38 L_NONIP: queue 0 */
        BPF_STMT(BPF_RET | BPF_K, 0),                           /* 39 L_DROP */
        BPF_STMT(BPF_RET | BPF_K, SNAP_ALL),                    /* 40 L_ACCEPT */
    };
    memcpy(p, prog, sizeof(prog));
}

/* The side socket for TSO and scatter-gather frames (see the header): -errno
   when the kernel refuses PACKET_VNET_HDR (the device then offers neither). */
static int open_gso(struct afq *q, int ifindex)
{
    int one = 1;
    q->gso_fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->gso_fd < 0)
        return -errno;
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = 0, .sll_ifindex = ifindex};
    if (setsockopt(q->gso_fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0 ||
        bind(q->gso_fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        int err = -errno;
        close(q->gso_fd);
        q->gso_fd = -1;
        return err;
    }
    return 0;
}

/* One queue: socket, steering filter (n > 1), rings, mmap, bind, promiscuous. */
static int open_queue(struct afq *q, int ifindex, uint32_t rx_frames, uint32_t k, uint32_t n)
{
    int one = 1, v2 = TPACKET_V2, err;
    q->gso_fd = -1;
    q->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd < 0)
        return -errno;
    if ((err = setopt(q->fd, SOL_PACKET, PACKET_VERSION, &v2, sizeof(v2))) != 0 ||
        (err = setopt(q->fd, SOL_PACKET, PACKET_LOSS, &one, sizeof(one))) != 0)
        return err;
    (void)setopt(q->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));  /* < 4.20: we see our tx */
    if (n > 1) {
        struct sock_filter code[STEER_LEN];
        steer_filter(code, k, n);
        struct sock_fprog fprog = {.len = STEER_LEN, .filter = code};
        if ((err = setopt(q->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog))) != 0)
            return err;
    }

    /* RX: frames never straddle blocks (the block size is a multiple of the
       frame size), so slot i is at i * FRAME_SIZE. */
    size_t total = (size_t)rx_frames * FRAME_SIZE;
    uint32_t block_size = MAX_BLOCK;
    while (block_size > 4096 && total / block_size < 2)
        block_size /= 2;
    uint32_t block_nr = (uint32_t)(total / block_size);
    if (block_nr < 2)
        block_nr = 2;
    struct tpacket_req rx = {
        .tp_block_size = block_size,
        .tp_block_nr = block_nr,
        .tp_frame_size = FRAME_SIZE,
        .tp_frame_nr = block_size / FRAME_SIZE * block_nr,
    };
    q->rx_nr = rx.tp_frame_nr;
    q->tx_nr = TX_FRAMES;
    struct tpacket_req tx = {
        .tp_block_size = 64u * 1024u,
        .tp_block_nr = TX_FRAMES * FRAME_SIZE / (64u * 1024u),
        .tp_frame_size = FRAME_SIZE,
        .tp_frame_nr = TX_FRAMES,
    };
    if ((err = setopt(q->fd, SOL_PACKET, PACKET_RX_RING, &rx, sizeof(rx))) != 0 ||
        (err = setopt(q->fd, SOL_PACKET, PACKET_TX_RING, &tx, sizeof(tx))) != 0)
        return err;
    size_t rx_len = (size_t)rx.tp_block_size * rx.tp_block_nr;
    q->map_len = rx_len + (size_t)tx.tp_block_size * tx.tp_block_nr;
    void *map = mmap(NULL, q->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, 0);
    if (map == MAP_FAILED)
        return -errno;
    q->map = map;
    q->rx = q->map;
    q->tx = q->map + rx_len;

    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET,
        .sll_protocol = htons(ETH_P_ALL),
        .sll_ifindex = ifindex,
    };
    if (bind(q->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
        return -errno;
    struct packet_mreq mr = {.mr_ifindex = ifindex, .mr_type = PACKET_MR_PROMISC};
    return setopt(q->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr));
}

static int if_query(const char *ifname, unsigned long req, struct ifreq *ifr)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    memset(ifr, 0, sizeof(*ifr));
    snprintf(ifr->ifr_name, IFNAMSIZ, "%s", ifname);
    int ret = ioctl(s, req, ifr) < 0 ? -errno : 0;
    close(s);
    return ret;
}

int rusty_afpacket_open(const char *ifname, const struct rusty_dev_config *cfg, struct rusty_dev **out)
{
    uint16_t flags = cfg ? cfg->flags : 0;
    int single = (flags & RUSTY_DEVF_SINGLE_QUEUE) != 0;
    uint16_t nq = single ? 1 : (cfg && cfg->queues ? cfg->queues : 1);
    if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ || nq > RUSTY_MAX_QUEUES)
        return -EINVAL;
    if (single && cfg->queue >= (cfg->queues ? cfg->queues : 1))
        return -EINVAL;                 /* queue K of N needs N: `queues=N,queue=K` */
    int ifindex = (int)if_nametoindex(ifname);
    if (ifindex == 0)
        return -ENODEV;
    uint32_t rx_frames = cfg && cfg->ring_frames ? cfg->ring_frames : DEFAULT_RX_FRAMES;

    struct rusty_dev *dev;
    int err = rusty_dev_alloc(&afpacket_ops, cfg, sizeof(struct afp), &dev);
    if (err)
        return err;
    struct afp *a = dev->priv;
    /* Queue k of n: worker `queue` of `queues`, or each queue of this process. */
    uint32_t n = single ? cfg->queues : nq;
    for (uint16_t i = 0; i < nq; i++) {
        a->nq = (uint16_t)(i + 1);
        if ((err = open_queue(&a->q[i], ifindex, rx_frames, single ? cfg->queue : i, n)) != 0)
            goto fail;
    }

    dev->queues = nq;
    dev->first_queue = single ? cfg->queue : 0;
    dev->offloads = (flags & RUSTY_DEVF_NO_OFFLOAD) ? 0 : RUSTY_OFF_RX_CSUM;
    a->csum_ok = dev->offloads ? (TP_STATUS_CSUM_VALID | TP_STATUS_CSUMNOTREADY) : 0;
    if (!(flags & RUSTY_DEVF_NO_OFFLOAD)) {
        int gso = 1;
        for (uint16_t i = 0; i < nq && gso; i++)
            gso = open_gso(&a->q[i], ifindex) == 0;
        if (gso)
            dev->offloads |= RUSTY_OFF_TX_CSUM | RUSTY_OFF_TX_SG | RUSTY_OFF_TSO;
    }
    snprintf(dev->name, sizeof(dev->name), "%s", ifname);
    struct ifreq ifr;
    if (!(cfg && cfg->mtu) && if_query(ifname, SIOCGIFMTU, &ifr) == 0)
        dev->mtu = ifr.ifr_mtu > 1500 ? 1500 : (uint16_t)ifr.ifr_mtu;
    uint8_t kmac[6] = {0};
    if (if_query(ifname, SIOCGIFHWADDR, &ifr) == 0)
        memcpy(kmac, ifr.ifr_hwaddr.sa_data, 6);
    for (uint32_t salt = 0;; salt++) {
        rusty_mac_from_name(dev->name, salt, dev->mac);
        if (memcmp(dev->mac, kmac, 6) != 0)
            break;
    }
    *out = dev;
    return 0;

fail:
    afp_close(dev);                     /* a failed socket() left fd -1: close() ignores it */
    rusty_pool_destroy(&dev->own_pool);
    free(dev);
    return err;
}
