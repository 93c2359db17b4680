/*
 * dev.c - what all devices share: allocation, the tx path with software
 * checksum fallback, stats, and the frame-at-a-time helpers for tests.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dev.h"

#define DEFAULT_POOL_BUFFERS 4096u

int rusty_dev_alloc(const struct rusty_dev_ops *ops, const struct rusty_dev_config *cfg,
                    size_t priv_size, struct rusty_dev **out)
{
    uint32_t nbufs = cfg && cfg->pool_buffers ? cfg->pool_buffers : DEFAULT_POOL_BUFFERS;
    struct rusty_dev *dev = calloc(1, sizeof(*dev) + priv_size);
    if (!dev)
        return -ENOMEM;
    int err = rusty_pool_init(&dev->own_pool, nbufs);
    if (err) {
        free(dev);
        return err;
    }
    dev->ops = ops;
    dev->pool = &dev->own_pool;
    dev->mtu = cfg && cfg->mtu ? cfg->mtu : 1500;
    dev->queues = cfg && cfg->queues ? cfg->queues : 1;
    dev->priv = priv_size ? (void *)(dev + 1) : NULL;
    *out = dev;
    return 0;
}

int rusty_dev_alloc_wrapper(const struct rusty_dev_ops *ops, struct rusty_dev *inner,
                            size_t priv_size, struct rusty_dev **out)
{
    struct rusty_dev *dev = calloc(1, sizeof(*dev) + priv_size);
    if (!dev)
        return -ENOMEM;
    dev->ops = ops;
    dev->inner = inner;
    dev->pool = inner->pool;
    memcpy(dev->name, inner->name, sizeof(dev->name));
    memcpy(dev->mac, inner->mac, 6);
    dev->mtu = inner->mtu;
    dev->queues = inner->queues;
    dev->first_queue = inner->first_queue;
    /* Wrappers look into and copy frames: they get them linear and cut (no TX_SG, no
       TSO) unless they say otherwise (faults.c, when it only drops, delays or reorders). */
    dev->offloads = inner->offloads & ~(uint32_t)(RUSTY_OFF_TX_SG | RUSTY_OFF_TSO);
    memcpy(dev->peer_mac, inner->peer_mac, 6);
    dev->has_peer_mac = inner->has_peer_mac;
    dev->priv = priv_size ? (void *)(dev + 1) : NULL;
    *out = dev;
    return 0;
}

void rusty_dev_close(struct rusty_dev *dev)
{
    if (!dev)
        return;
    if (dev->ops->close)
        dev->ops->close(dev);
    rusty_dev_close(dev->inner);
    if (dev->pool == &dev->own_pool)
        rusty_pool_destroy(&dev->own_pool);
    free(dev);
}

int rusty_dev_rx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int max, uint64_t now_us)
{
    int n = dev->ops->rx_burst(dev, queue, bufs, max, now_us);
    for (int i = 0; i < n; i++) {
        dev->stats.rx_frames++;
        dev->stats.rx_bytes += bufs[i]->len;
    }
    return n;
}

int rusty_dev_tx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us)
{
    if (!(dev->offloads & RUSTY_OFF_TX_SG)) {
        for (int i = 0; i < n; i++)
            (void)rusty_buf_linearize(bufs[i]);     /* within the MTU it always fits */
    }
    if (!(dev->offloads & RUSTY_OFF_TX_CSUM)) {
        for (int i = 0; i < n; i++)
            rusty_buf_complete_csum(bufs[i]);
    }
    /* Lengths are read first: a consumed buffer belongs to the device. */
    uint32_t lens[RUSTY_BURST_MAX];
    if (n > RUSTY_BURST_MAX)
        n = RUSTY_BURST_MAX;
    for (int i = 0; i < n; i++)
        lens[i] = rusty_buf_frame_len(bufs[i]);
    int sent = dev->ops->tx_burst(dev, queue, bufs, n, now_us);
    if (sent < 0)
        sent = 0;
    dev->stats.tx_frames += (uint64_t)sent;
    for (int i = 0; i < sent; i++)
        dev->stats.tx_bytes += lens[i];
    return sent;
}

int64_t rusty_dev_next_deadline(struct rusty_dev *dev, uint64_t now_us)
{
    return dev->ops->next_deadline ? dev->ops->next_deadline(dev, now_us) : -1;
}

int rusty_dev_arm_wakeup(struct rusty_dev *dev, uint16_t queue)
{
    while (!dev->ops->arm_wakeup && dev->inner)
        dev = dev->inner;
    return dev->ops->arm_wakeup ? dev->ops->arm_wakeup(dev, queue) : 0;
}

void rusty_dev_get_info(struct rusty_dev *dev, struct rusty_dev_info *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->name, dev->name, sizeof(out->name));
    strncpy(out->driver, dev->ops->driver, sizeof(out->driver) - 1);
    memcpy(out->mac, dev->mac, 6);
    out->mtu = dev->mtu;
    out->queues = dev->queues;
    out->offloads = dev->offloads;
}

void rusty_dev_get_stats(struct rusty_dev *dev, struct rusty_dev_stats *out)
{
    *out = dev->stats;
}

int rusty_dev_fd(struct rusty_dev *dev, uint16_t queue)
{
    return dev->ops->fd ? dev->ops->fd(dev, queue) : -1;
}

int rusty_dev_set_mac(struct rusty_dev *dev, const uint8_t *mac)
{
    for (struct rusty_dev *d = dev; d; d = d->inner)
        memcpy(d->mac, mac, 6);
    return 0;
}

int rusty_dev_send(struct rusty_dev *dev, uint16_t queue, const uint8_t *frame, size_t len)
{
    return rusty_dev_send_at(dev, queue, frame, len, rusty_monotonic_us());
}

int rusty_dev_send_at(struct rusty_dev *dev, uint16_t queue, const uint8_t *frame, size_t len, uint64_t now_us)
{
    if (len > RUSTY_BUF_SIZE - RUSTY_BUF_HEADROOM)
        return -EMSGSIZE;
    struct rusty_buf *b = rusty_pool_get(dev->pool);
    if (!b)
        return -ENOBUFS;
    memcpy(rusty_buf_put(b, (uint16_t)len), frame, len);
    int sent = rusty_dev_tx(dev, queue, &b, 1, now_us);
    if (sent != 1) {
        rusty_buf_free(b);
        dev->stats.tx_dropped++;
        return -EAGAIN;
    }
    return 0;
}

int rusty_dev_send_partial(struct rusty_dev *dev, uint16_t queue, const uint8_t *frame, size_t len,
                           uint16_t csum_start, uint16_t csum_offset, uint64_t now_us)
{
    if (len > RUSTY_BUF_SIZE - RUSTY_BUF_HEADROOM)
        return -EMSGSIZE;
    if ((size_t)csum_start + csum_offset + 2 > len)
        return -EINVAL;
    struct rusty_buf *b = rusty_pool_get(dev->pool);
    if (!b)
        return -ENOBUFS;
    memcpy(rusty_buf_put(b, (uint16_t)len), frame, len);
    b->flags = RUSTY_BUF_CSUM_PARTIAL;
    b->csum_start = csum_start;
    b->csum_offset = csum_offset;
    int sent = rusty_dev_tx(dev, queue, &b, 1, now_us);
    if (sent != 1) {
        rusty_buf_free(b);
        dev->stats.tx_dropped++;
        return -EAGAIN;
    }
    return 0;
}

int rusty_dev_recv(struct rusty_dev *dev, uint16_t queue, uint8_t *frame, size_t cap)
{
    return rusty_dev_recv_at(dev, queue, frame, cap, rusty_monotonic_us());
}

int rusty_dev_recv_at(struct rusty_dev *dev, uint16_t queue, uint8_t *frame, size_t cap, uint64_t now_us)
{
    struct rusty_buf *b;
    int n = rusty_dev_rx(dev, queue, &b, 1, now_us);
    if (n < 0)
        return n;
    if (n == 0)
        return -EAGAIN;
    size_t len = b->len < cap ? b->len : cap;
    memcpy(frame, rusty_buf_data(b), len);
    rusty_buf_free(b);
    return (int)len;
}

int64_t rusty_dev_bench_rx(struct rusty_dev *dev, uint16_t queue, uint64_t max, uint64_t budget_us, uint64_t *bytes)
{
    struct rusty_buf *bufs[RUSTY_BURST_MAX];
    uint64_t start = rusty_monotonic_us(), got = 0, total = 0;
    while (got < max) {
        uint64_t now = rusty_monotonic_us();
        if (now - start >= budget_us)
            break;
        int want = max - got < RUSTY_BURST_MAX ? (int)(max - got) : RUSTY_BURST_MAX;
        int n = rusty_dev_rx(dev, queue, bufs, want, now);
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++) {
            total += bufs[i]->len;
            rusty_buf_free(bufs[i]);
        }
        got += (uint64_t)n;
    }
    if (bytes)
        *bytes = total;
    return (int64_t)got;
}

int64_t rusty_dev_bench_tx(struct rusty_dev *dev, uint16_t queue, const uint8_t *frame, size_t len, uint64_t count)
{
    struct rusty_buf *bufs[RUSTY_BURST_MAX];
    uint64_t sent = 0;
    if (len > RUSTY_BUF_SIZE - RUSTY_BUF_HEADROOM)
        return -EMSGSIZE;
    while (sent < count) {
        int want = count - sent < RUSTY_BURST_MAX ? (int)(count - sent) : RUSTY_BURST_MAX;
        int n = 0;
        for (; n < want; n++) {
            bufs[n] = rusty_pool_get(dev->pool);
            if (!bufs[n])
                break;
            memcpy(rusty_buf_put(bufs[n], (uint16_t)len), frame, len);
        }
        if (n == 0)
            return -ENOBUFS;
        int done = rusty_dev_tx(dev, queue, bufs, n, rusty_monotonic_us());
        for (int i = done; i < n; i++)
            rusty_buf_free(bufs[i]);
        sent += (uint64_t)done;
        if (done == 0)
            break;                      /* device full: report what went out */
    }
    return (int64_t)sent;
}

void rusty_mac_from_name(const char *name, uint32_t salt, uint8_t mac[6])
{
    uint32_t h = 2166136261u ^ salt;    /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    mac[0] = 0x02;                      /* locally administered, unicast */
    mac[1] = 0x52;                      /* 'R' */
    mac[2] = (uint8_t)(h >> 24);
    mac[3] = (uint8_t)(h >> 16);
    mac[4] = (uint8_t)(h >> 8);
    mac[5] = (uint8_t)h;
}

uint64_t rusty_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
