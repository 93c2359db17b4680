/*
 * af_packet.c - the AF_PACKET driver: any Linux interface (veth, a real NIC)
 * through TPACKET_V3 memory-mapped rings.
 *
 * Owns: one packet socket per queue bound to the interface, its mmap'ed RX
 * ring (TPACKET_V3, block based) and TX ring, the fanout group that spreads
 * flows over the queues, and copying frames between the rings and pool
 * buffers. Not: the interface's own configuration (address, link state).
 *
 * Call chain: rusty_stack_poll -> rusty_dev_rx -> afp_rx -> walk retired blocks
 *             rusty_stack_poll -> rusty_dev_tx -> afp_tx -> fill TX slots, one send() kick
 *
 * RX: the kernel fills a block of frames and retires it to us when it is
 * full or after tp_retire_blk_tov (1 ms, the shortest there is); we walk its
 * frames in memory with no syscall per frame, copy each into a pool buffer
 * (the stack holds buffers for as long as it likes; ring slots must go back)
 * and hand the block back once every frame in it was taken. A retired block
 * makes the socket readable, so poll() on the fd is "a block is ready".
 * Consequence of V3: a lone frame waits up to 1 ms for its block to retire.
 *
 * TX: TPACKET_V3 TX ring (Linux >= 4.11): fixed 2 KiB slots, each frame is
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
 * TX checksums are done in software (rusty_dev_tx), so only RX offload is
 * advertised. A peer that sends TSO/GSO super-frames over a veth (Linux TCP
 * does by default) must have them off (`ethtool -K PEER tso off gso off`):
 * frames longer than a buffer are dropped and counted in rx_dropped.
 *
 * Queues: with queues > 1 the sockets form a PACKET_FANOUT_HASH group with a
 * kernel-chosen unique id; one queue of a group (RUSTY_DEVF_SINGLE_QUEUE, a
 * worker process per core) joins the group whose id is derived from the
 * interface name, so every worker on that interface lands in the same group.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dev.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#ifndef PACKET_FANOUT_FLAG_UNIQUEID
#define PACKET_FANOUT_FLAG_UNIQUEID 0x2000
#endif

#define FRAME_SIZE 2048u
#define DEFAULT_RX_FRAMES 4096u         /* 8 MiB of RX ring per queue */
#define TX_FRAMES 512u                  /* 1 MiB of TX ring per queue */
#define MAX_BLOCK (128u * 1024u)
#define RETIRE_TOV_MS 1
/* Where TX frame data starts in a slot (no PACKET_TX_HAS_OFF). */
#define TX_DATA_OFF TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
#define MAX_FRAME (RUSTY_BUF_SIZE - RUSTY_BUF_HEADROOM)

struct afq {
    int fd;
    uint8_t *map;
    size_t map_len;
    /* RX ring */
    uint8_t *rx;
    uint32_t block_size, block_nr, block;   /* block: next one to look at */
    uint32_t left;                      /* frames not yet taken from the open block */
    struct tpacket3_hdr *pkt;           /* next frame of the open block */
    /* TX ring */
    uint8_t *tx;
    uint32_t tx_nr, tx_head;
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

static struct tpacket_block_desc *block_at(const struct afq *q, uint32_t i)
{
    return (struct tpacket_block_desc *)(q->rx + (size_t)i * q->block_size);
}

static void release_block(struct rusty_dev *dev, struct afq *q)
{
    struct tpacket_block_desc *bd = block_at(q, q->block);
    if (__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_RELAXED) & TP_STATUS_LOSING) {
        /* The kernel dropped frames while this block was open: the ring was full. */
        struct tpacket_stats_v3 st;
        socklen_t len = sizeof(st);
        if (getsockopt(q->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
            dev->stats.rx_dropped += st.tp_drops;
    }
    __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    q->left = 0;
    q->pkt = NULL;
    q->block = (q->block + 1) % q->block_nr;
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
        if (!q->pkt) {
            struct tpacket_block_desc *bd = block_at(q, q->block);
            if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
                break;
            q->left = bd->hdr.bh1.num_pkts;
            q->pkt = (struct tpacket3_hdr *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
            if (q->left == 0) {
                release_block(dev, q);
                continue;
            }
        }
        struct rusty_buf *b = rusty_pool_get(dev->pool);
        if (!b)
            break;                      /* the block stays ours until the pool refills */
        struct tpacket3_hdr *h = q->pkt;
        if (h->tp_snaplen < h->tp_len || h->tp_len > MAX_FRAME || h->tp_len < 14) {
            rusty_buf_free(b);
            dev->stats.rx_dropped++;
        } else {
            memcpy(rusty_buf_put(b, (uint16_t)h->tp_len), (uint8_t *)h + h->tp_mac, h->tp_len);
            if (h->tp_status & a->csum_ok)
                b->flags |= RUSTY_BUF_CSUM_VALID;
            b->queue = (uint8_t)qi;
            bufs[n++] = b;
        }
        uint8_t *next = (uint8_t *)h + h->tp_next_offset;
        if (--q->left == 0 || h->tp_next_offset == 0 ||
            next + sizeof(*h) > (uint8_t *)block_at(q, q->block) + q->block_size)
            release_block(dev, q);
        else
            q->pkt = (struct tpacket3_hdr *)next;
    }
    return n;
}

static struct tpacket3_hdr *tx_slot(const struct afq *q, uint32_t i)
{
    return (struct tpacket3_hdr *)(q->tx + (size_t)i * FRAME_SIZE);
}

static int afp_tx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us)
{
    struct afp *a = dev->priv;
    int qi = local_queue(dev, queue);
    (void)now_us;
    if (qi < 0)
        return -EINVAL;
    struct afq *q = &a->q[qi];
    int i, kicked = 0;
    for (i = 0; i < n; i++) {
        struct tpacket3_hdr *h = tx_slot(q, q->tx_head);
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
        struct rusty_buf *b = bufs[i];
        if (b->len > FRAME_SIZE - TX_DATA_OFF) {
            dev->stats.tx_errors++;
            rusty_buf_free(b);
            continue;
        }
        memcpy((uint8_t *)h + TX_DATA_OFF, rusty_buf_data(b), b->len);
        h->tp_len = b->len;
        h->tp_snaplen = b->len;
        h->tp_next_offset = 0;
        __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
        q->tx_head = (q->tx_head + 1) % q->tx_nr;
        rusty_buf_free(b);
    }
    if (i > 0 && send(q->fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS)
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

/* One queue: socket, rings, mmap, bind, promiscuous. Fanout is joined later. */
static int open_queue(struct afq *q, int ifindex, uint32_t rx_frames)
{
    int one = 1, v3 = TPACKET_V3, err;
    q->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd < 0)
        return -errno;
    if ((err = setopt(q->fd, SOL_PACKET, PACKET_VERSION, &v3, sizeof(v3))) != 0 ||
        (err = setopt(q->fd, SOL_PACKET, PACKET_LOSS, &one, sizeof(one))) != 0)
        return err;
    (void)setopt(q->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));  /* < 4.20: we see our tx */

    /* RX: at least 8 blocks, so one slow block never stalls the ring. */
    size_t total = (size_t)rx_frames * FRAME_SIZE;
    q->block_size = MAX_BLOCK;
    while (q->block_size > 4096 && total / q->block_size < 8)
        q->block_size /= 2;
    q->block_nr = (uint32_t)(total / q->block_size);
    if (q->block_nr < 2)
        q->block_nr = 2;
    struct tpacket_req3 rx = {
        .tp_block_size = q->block_size,
        .tp_block_nr = q->block_nr,
        .tp_frame_size = FRAME_SIZE,
        .tp_frame_nr = q->block_size / FRAME_SIZE * q->block_nr,
        .tp_retire_blk_tov = RETIRE_TOV_MS,
    };
    q->tx_nr = TX_FRAMES;
    struct tpacket_req3 tx = {
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

static uint16_t group_id(const char *ifname)
{
    uint32_t h = 2166136261u;           /* FNV-1a, folded to the 16-bit group id */
    for (const char *p = ifname; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return (uint16_t)(h ^ (h >> 16));
}

int rusty_afpacket_open(const char *ifname, const struct rusty_dev_config *cfg, struct rusty_dev **out)
{
    uint16_t flags = cfg ? cfg->flags : 0;
    int single = (flags & RUSTY_DEVF_SINGLE_QUEUE) != 0;
    uint16_t nq = single ? 1 : (cfg && cfg->queues ? cfg->queues : 1);
    if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ || nq > RUSTY_MAX_QUEUES)
        return -EINVAL;
    int ifindex = (int)if_nametoindex(ifname);
    if (ifindex == 0)
        return -ENODEV;
    uint32_t rx_frames = cfg && cfg->ring_frames ? cfg->ring_frames : DEFAULT_RX_FRAMES;

    struct rusty_dev *dev;
    int err = rusty_dev_alloc(&afpacket_ops, cfg, sizeof(struct afp), &dev);
    if (err)
        return err;
    struct afp *a = dev->priv;
    for (uint16_t i = 0; i < nq; i++) {
        a->nq = (uint16_t)(i + 1);
        if ((err = open_queue(&a->q[i], ifindex, rx_frames)) != 0)
            goto fail;
    }
    if (nq > 1 || single) {
        int id = single ? group_id(ifname) : 0;
        int type = PACKET_FANOUT_HASH | (single ? 0 : PACKET_FANOUT_FLAG_UNIQUEID);
        for (uint16_t i = 0; i < nq; i++) {
            int val = id | (type << 16);
            if ((err = setopt(a->q[i].fd, SOL_PACKET, PACKET_FANOUT, &val, sizeof(val))) != 0)
                goto fail;
            if (i == 0 && !single) {
                socklen_t len = sizeof(val);
                if (getsockopt(a->q[0].fd, SOL_PACKET, PACKET_FANOUT, &val, &len) < 0) {
                    err = -errno;
                    goto fail;
                }
                id = val & 0xffff;      /* the kernel's unique id; the others join it */
                type = PACKET_FANOUT_HASH;
            }
        }
    }

    dev->queues = nq;
    dev->first_queue = single ? cfg->queue : 0;
    dev->offloads = (flags & RUSTY_DEVF_NO_OFFLOAD) ? 0 : RUSTY_OFF_RX_CSUM;
    a->csum_ok = dev->offloads ? (TP_STATUS_CSUM_VALID | TP_STATUS_CSUMNOTREADY) : 0;
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
