/*
 * tap.c - the Linux TAP driver: /dev/net/tun in IFF_TAP|IFF_NO_PI mode.
 *
 * Owns: opening (creating or attaching to) a tap, one nonblocking fd per
 * queue (IFF_MULTI_QUEUE; flows are spread over the fds by our symmetric flow
 * hash, see tap_steer.c), the virtio-net header that carries checksum offload
 * both ways, and moving frames between those fds and pool buffers. Not: the kernel side's address
 * and link state (aiorusty/nic/_host.py does that for `host=`).
 *
 * Call chain: rusty_stack_poll -> rusty_dev_rx -> tap_rx -> read()
 *             rusty_stack_poll -> rusty_dev_tx -> tap_tx -> write()
 *
 * A tap has no batch syscall: readv() gathers one frame into several
 * buffers, not several frames, and recvmmsg() needs a socket. So a burst is
 * read() until EAGAIN, one frame per call. Neither direction copies: the
 * frame is read straight into a pool buffer whose headroom takes the
 * virtio-net header in front of the frame (push before read(), pull after),
 * and on tx the header is pushed into the headroom the stack left.
 *
 * Checksums (virtio 1.x 5.1.6.2): the kernel marks received frames
 * VIRTIO_NET_HDR_F_DATA_VALID when it (or the sender's NIC) verified them,
 * and VIRTIO_NET_HDR_F_NEEDS_CSUM when the frame came from the local stack
 * with its L4 checksum left partial; both are trusted (RUSTY_BUF_CSUM_VALID).
 * On tx a RUSTY_BUF_CSUM_PARTIAL buffer becomes NEEDS_CSUM with csum_start /
 * csum_offset, and the kernel finishes the sum (or the receiving side never
 * needs it). TUNSETOFFLOAD(TUN_F_CSUM) says we accept partial frames too.
 *
 * TSO and scatter-gather on tx (virtio 1.x 5.1.6.2, GSO): a frame with an
 * external tail (a static payload's bytes, buf.h ext) is written with
 * writev(), header and payload from where they lie; one with gso_size is a
 * TCP frame of up to 64 KiB that the kernel cuts into MSS segments
 * (VIRTIO_NET_HDR_GSO_TCPV4, hdr_len = its headers), so 64 KiB of a body
 * costs one write instead of 45. On rx gso_type stays NONE: we do not offer
 * TUN_F_TSO4, so the kernel never hands us a frame larger than the MTU.
 *
 * Multi-queue (queues=N > 1, whether this process opens all N or worker K
 * opens queue K alone with RUSTY_DEVF_SINGLE_QUEUE): queue K attaches when
 * exactly K are attached (tun numbers queues by attach order), then the
 * steering program goes on the tap (tap_steer.c). A failure of either is an
 * error, not a fall-back to the kernel's hash: a load generator whose replies
 * land on another worker's queue fails half its connections, which is worse
 * to diagnose than a refused open. The kernel side's MAC becomes the device's
 * peer_mac: ARP replies to any worker land on queue 0 only, so the stack
 * sends to the kernel's netdev unasked (arp.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dev.h"

/* virtio_net_hdr_mrg_rxbuf: the 1.0 layout (num_buffers unused by tun). */
#define VNET_HDR_LEN 12

struct tap {
    int fds[RUSTY_MAX_QUEUES];
    uint16_t nfds;
    uint16_t hdr_len;                   /* 0 without IFF_VNET_HDR */
};

/* The stack numbers queues 0..queues-1; tolerate the global number too when
 * one queue of many was opened (first_queue != 0). */
static int local_queue(const struct rusty_dev *dev, uint16_t queue)
{
    if (queue >= dev->queues && queue >= dev->first_queue)
        queue -= dev->first_queue;
    return queue < dev->queues ? queue : -1;
}

static int tap_rx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int max, uint64_t now_us)
{
    struct tap *t = dev->priv;
    int q = local_queue(dev, queue);
    (void)now_us;
    if (q < 0)
        return -EINVAL;
    int fd = t->fds[q], n = 0;
    while (n < max) {
        struct rusty_buf *b = rusty_pool_get(dev->pool);
        if (!b)
            break;                      /* counted in pool->exhausted; the kernel queue holds the rest */
        uint8_t *p = rusty_buf_push(b, t->hdr_len);
        ssize_t got = read(fd, p, RUSTY_BUF_SIZE - b->off);
        if (got < 0) {
            rusty_buf_free(b);
            if (errno == EAGAIN || errno == EINTR)
                break;
            dev->stats.rx_errors++;
            break;
        }
        if ((size_t)got < t->hdr_len + 14u) {
            rusty_buf_free(b);
            dev->stats.rx_errors++;
            continue;
        }
        b->len = (uint16_t)got;
        if (t->hdr_len) {
            const struct virtio_net_hdr *h = (const void *)p;
            if (h->gso_type != VIRTIO_NET_HDR_GSO_NONE) {
                /* Never negotiated (no TUN_F_TSO*): a kernel bug or a changed offload. */
                rusty_buf_free(b);
                dev->stats.rx_dropped++;
                continue;
            }
            if (h->flags & (VIRTIO_NET_HDR_F_DATA_VALID | VIRTIO_NET_HDR_F_NEEDS_CSUM))
                b->flags |= RUSTY_BUF_CSUM_VALID;
            rusty_buf_pull(b, t->hdr_len);
        }
        b->queue = (uint8_t)q;
        bufs[n++] = b;
    }
    return n;
}

static int tap_tx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us)
{
    struct tap *t = dev->priv;
    int q = local_queue(dev, queue);
    (void)now_us;
    if (q < 0)
        return -EINVAL;
    int fd = t->fds[q], i;
    for (i = 0; i < n; i++) {
        struct rusty_buf *b = bufs[i];
        uint8_t *p = rusty_buf_push(b, t->hdr_len);
        if (!p) {                       /* no headroom for the header: cannot happen with pool buffers */
            dev->stats.tx_errors++;
            rusty_buf_free(b);
            continue;
        }
        if (t->hdr_len) {
            struct virtio_net_hdr *h = (void *)p;
            memset(p, 0, t->hdr_len);
            if (b->flags & RUSTY_BUF_CSUM_PARTIAL) {
                h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
                h->csum_start = b->csum_start;      /* little-endian host: virtio 1.x byte order */
                h->csum_offset = b->csum_offset;
                if (b->gso_size) {
                    /* csum_start is the TCP header (relative to the frame); its data offset
                       ends the headers the kernel repeats in every segment. */
                    const uint8_t *tcp = p + t->hdr_len + b->csum_start;
                    h->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
                    h->gso_size = b->gso_size;
                    h->hdr_len = (uint16_t)(b->csum_start + (tcp[12] >> 4) * 4);
                }
            }
        }
        ssize_t w;
        if (b->ext_len) {
            struct iovec iov[2] = {{p, b->len}, {(void *)b->ext, b->ext_len}};
            w = writev(fd, iov, 2);
        } else {
            w = write(fd, p, b->len);
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            rusty_buf_pull(b, t->hdr_len);      /* the caller keeps it, unchanged */
            break;
        }
        if (w < 0)
            dev->stats.tx_errors++;     /* e.g. EIO while the link is down: dropped, not retried */
        rusty_buf_free(b);
    }
    return i;
}

static int tap_fd(struct rusty_dev *dev, uint16_t queue)
{
    struct tap *t = dev->priv;
    int q = local_queue(dev, queue);
    return q < 0 ? -1 : t->fds[q];
}

static void tap_close(struct rusty_dev *dev)
{
    struct tap *t = dev->priv;
    for (uint16_t i = 0; i < t->nfds; i++)
        close(t->fds[i]);
    t->nfds = 0;
}

static const struct rusty_dev_ops tap_ops = {
    .driver = "tap",
    .rx_burst = tap_rx,
    .tx_burst = tap_tx,
    .fd = tap_fd,
    .close = tap_close,
};

/* One queue: open /dev/net/tun and attach it to the tap `name` (created by
 * the kernel when missing and we may). Returns the fd or -errno; `ifname`
 * receives the kernel's name for the device. */
static int open_queue(const char *name, short flags, int vnet_hdr, char ifname[IFNAMSIZ])
{
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    ifr.ifr_flags = flags;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (vnet_hdr) {
        int sz = VNET_HDR_LEN;
        /* The kernel then hands us frames with partial checksums (TUN_F_CSUM). */
        if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0 || ioctl(fd, TUNSETOFFLOAD, (unsigned long)TUN_F_CSUM) < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
    }
    memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
    ifname[IFNAMSIZ - 1] = '\0';
    return fd;
}

/* The kernel side's MAC, to make sure ours differs; 0 when it could be read. */
static int kernel_mac(const char *ifname, uint8_t mac[6])
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    int ret = ioctl(s, SIOCGIFHWADDR, &ifr) < 0 ? -errno : 0;
    close(s);
    if (!ret)
        memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    return ret;
}

int rusty_tap_open(const char *name, const struct rusty_dev_config *cfg, struct rusty_dev **out)
{
    uint16_t flags = cfg ? cfg->flags : 0;
    uint16_t nq = (flags & RUSTY_DEVF_SINGLE_QUEUE) ? 1 : (cfg && cfg->queues ? cfg->queues : 1);
    if (!name || !*name || strlen(name) >= IFNAMSIZ || nq > RUSTY_MAX_QUEUES)
        return -EINVAL;
    int vnet_hdr = !(flags & RUSTY_DEVF_NO_OFFLOAD);
    int multi = (flags & RUSTY_DEVF_SINGLE_QUEUE) || nq > 1;
    /* Queue `first` of `total`: worker K of N, or queues 0..N-1 of this process. */
    uint16_t total = (flags & RUSTY_DEVF_SINGLE_QUEUE) ? (cfg->queues ? cfg->queues : 1) : nq;
    uint16_t first = (flags & RUSTY_DEVF_SINGLE_QUEUE) ? cfg->queue : 0;
    if (first >= total || total > RUSTY_MAX_QUEUES)
        return -EINVAL;                 /* queue K of N needs K < N: `queues=N,queue=K` */

    /* Without CREATE only an existing tap will do: TUNSETIFF would create one
       whenever we hold CAP_NET_ADMIN. (Checked in our network namespace, as
       TUNSETIFF looks it up.) */
    if (!(flags & RUSTY_DEVF_CREATE) && if_nametoindex(name) == 0)
        return -ENODEV;

    int err;
    if (total > 1 && (err = rusty_tap_steer_wait_turn(name, first)) != 0)
        return err;
    struct rusty_dev *dev;
    if ((err = rusty_dev_alloc(&tap_ops, cfg, sizeof(struct tap), &dev)) != 0)
        return err;
    struct tap *t = dev->priv;
    char ifname[IFNAMSIZ] = "";
    short ifflags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
    for (uint16_t i = 0; i < nq; i++) {
        int fd = open_queue(name, (short)(ifflags | (multi ? IFF_MULTI_QUEUE : 0)), vnet_hdr, ifname);
        if (fd == -EINVAL && i == 0 && nq == 1 && !(flags & RUSTY_DEVF_SINGLE_QUEUE)) {
            /* An existing tap made the other way (multi-queue or not): the
               kernel insists IFF_MULTI_QUEUE matches. */
            multi = !multi;
            fd = open_queue(name, (short)(ifflags | (multi ? IFF_MULTI_QUEUE : 0)), vnet_hdr, ifname);
        }
        if (fd < 0) {
            err = fd;
            goto fail;
        }
        t->fds[t->nfds++] = fd;
    }
    if (total > 1 && (err = rusty_tap_steer_attach(t->fds[0], total)) != 0)
        goto fail;
    t->hdr_len = vnet_hdr ? VNET_HDR_LEN : 0;
    dev->queues = nq;
    dev->first_queue = first;
    dev->offloads = vnet_hdr ? (RUSTY_OFF_RX_CSUM | RUSTY_OFF_TX_CSUM | RUSTY_OFF_TX_SG | RUSTY_OFF_TSO) : 0;
    snprintf(dev->name, sizeof(dev->name), "%s", ifname);
    /* Ours must differ from the kernel side's, or each side takes the other's
       frames for its own. */
    uint8_t kmac[6] = {0};
    if (kernel_mac(ifname, kmac) == 0 && total > 1) {
        memcpy(dev->peer_mac, kmac, 6);
        dev->has_peer_mac = 1;
    }
    for (uint32_t salt = 0;; salt++) {
        rusty_mac_from_name(dev->name, salt, dev->mac);
        if (memcmp(dev->mac, kmac, 6) != 0)
            break;
    }
    *out = dev;
    return 0;

fail:
    tap_close(dev);
    rusty_pool_destroy(&dev->own_pool);
    free(dev);
    return err;
}
