/*
 * loopback.c - in-process links with no kernel in the path.
 *
 *   loopback: one device whose transmitted frames come straight back.
 *   pair:     two devices joined like the two ends of a cable; a frame sent on
 *             one is received on the other. Tests hold one end and attach a
 *             stack to the other; two stacks can share a pair.
 *
 * Each end has a bounded ring of received frames and an eventfd that is
 * readable while the ring holds frames, so a loop can sleep on it. A full ring
 * refuses the sender's frames (tx takes fewer), as the shm link does: the
 * sending stack keeps them queued and TCP holds back, where a dropping ring
 * made a burst from thousands of connections at once (each one segment) cost
 * synchronized retransmission rounds. Frames are copied into the receiver's
 * pool (one side must not be able to starve the other's pool); a receiver
 * whose pool is empty drops, like a NIC, counted in rx_dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dev.h"

#define DEFAULT_RING 1024u

struct link_end {
    struct rusty_dev *peer;             /* where transmitted frames go */
    struct rusty_buf **ring;
    uint32_t size, head, count;         /* head: oldest frame */
    int efd;
};

static int end_init(struct link_end *e, const struct rusty_dev_config *cfg)
{
    e->size = cfg && cfg->ring_frames ? cfg->ring_frames : DEFAULT_RING;
    e->ring = calloc(e->size, sizeof(*e->ring));
    e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!e->ring || e->efd < 0) {
        free(e->ring);
        if (e->efd >= 0)
            close(e->efd);
        return -ENOMEM;
    }
    return 0;
}

static int link_rx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int max, uint64_t now_us)
{
    struct link_end *e = dev->priv;
    (void)queue;
    (void)now_us;
    int n = 0;
    while (n < max && e->count) {
        bufs[n++] = e->ring[e->head];
        e->head = (e->head + 1) % e->size;
        e->count--;
    }
    if (e->count == 0) {
        uint64_t v;
        (void)!read(e->efd, &v, sizeof(v));  /* drained: no longer readable */
    }
    return n;
}

static int link_tx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us)
{
    struct rusty_dev *to = ((struct link_end *)dev->priv)->peer;
    struct link_end *e = to->priv;
    (void)queue;
    (void)now_us;
    for (int i = 0; i < n; i++) {
        struct rusty_buf *b = bufs[i];
        struct rusty_buf *copy = NULL;
        if (e->count >= e->size)
            return i;                   /* the receiver's ring is full: the rest stays the sender's */
        if (dev->offloads & RUSTY_OFF_TX_SG) {
            /* RUSTY_DEVF_GATHER: the "NIC" gathers the external tail and finishes
               the checksum, so the receiver sees what a wire would carry. */
            (void)rusty_buf_linearize(b);
            rusty_buf_complete_csum(b);
        }
        if (e->count < e->size)
            copy = to == dev ? b : rusty_buf_clone(to->pool, b);
        if (!copy) {
            to->stats.rx_dropped++;     /* the wire delivered it; the receiver had no room */
        } else {
            copy->queue = 0;
            /* Like veth: a frame whose checksum was left to "hardware" is
               trusted by the receiver, since it never crossed a wire. */
            if (copy->flags & RUSTY_BUF_CSUM_PARTIAL)
                copy->flags = RUSTY_BUF_CSUM_VALID;
            e->ring[(e->head + e->count) % e->size] = copy;
            if (e->count++ == 0) {
                uint64_t one = 1;
                (void)!write(e->efd, &one, sizeof(one));
            }
        }
        if (copy != b)
            rusty_buf_free(b);
    }
    return n;
}

static int link_fd(struct rusty_dev *dev, uint16_t queue)
{
    (void)queue;
    return ((struct link_end *)dev->priv)->efd;
}

static void link_close(struct rusty_dev *dev)
{
    struct link_end *e = dev->priv;
    while (e->count) {
        rusty_buf_free(e->ring[e->head]);
        e->head = (e->head + 1) % e->size;
        e->count--;
    }
    free(e->ring);
    close(e->efd);
    /* The other end stays usable but its frames now go nowhere. */
    if (e->peer && e->peer != dev)
        ((struct link_end *)e->peer->priv)->peer = e->peer;
}

static const struct rusty_dev_ops loopback_ops = {
    .driver = "loopback",
    .rx_burst = link_rx,
    .tx_burst = link_tx,
    .fd = link_fd,
    .close = link_close,
};

static const struct rusty_dev_ops pair_ops = {
    .driver = "pair",
    .rx_burst = link_rx,
    .tx_burst = link_tx,
    .fd = link_fd,
    .close = link_close,
};

int rusty_loopback_open(const struct rusty_dev_config *cfg, struct rusty_dev **out)
{
    struct rusty_dev *dev;
    int err = rusty_dev_alloc(&loopback_ops, cfg, sizeof(struct link_end), &dev);
    if (err)
        return err;
    struct link_end *e = dev->priv;
    if ((err = end_init(e, cfg)) != 0) {
        rusty_pool_destroy(&dev->own_pool);
        free(dev);
        return err;
    }
    e->peer = dev;
    dev->queues = 1;
    /* Frames never leave memory: checksums need not be computed at all. */
    dev->offloads = (cfg && (cfg->flags & RUSTY_DEVF_NO_OFFLOAD)) ? 0 : RUSTY_OFF_RX_CSUM | RUSTY_OFF_TX_CSUM;
    snprintf(dev->name, sizeof(dev->name), "loopback");
    rusty_mac_from_name(dev->name, 0, dev->mac);
    *out = dev;
    return 0;
}

int rusty_pair_open(const struct rusty_dev_config *cfg, struct rusty_dev **a, struct rusty_dev **b)
{
    struct rusty_dev *end[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        int err = rusty_dev_alloc(&pair_ops, cfg, sizeof(struct link_end), &end[i]);
        if (!err && (err = end_init(end[i]->priv, cfg)) != 0) {
            rusty_pool_destroy(&end[i]->own_pool);
            free(end[i]);
            end[i] = NULL;
        }
        if (err) {
            if (i == 1)
                rusty_dev_close(end[0]);
            return err;
        }
        end[i]->queues = 1;
        if (cfg && (cfg->flags & RUSTY_DEVF_GATHER))
            end[i]->offloads = RUSTY_OFF_TX_CSUM | RUSTY_OFF_TX_SG;
        snprintf(end[i]->name, sizeof(end[i]->name), "pair%d", i);
        rusty_mac_from_name(end[i]->name, 0, end[i]->mac);
    }
    ((struct link_end *)end[0]->priv)->peer = end[1];
    ((struct link_end *)end[1]->priv)->peer = end[0];
    *a = end[0];
    *b = end[1];
    return 0;
}
