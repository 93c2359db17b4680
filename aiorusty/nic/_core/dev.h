/*
 * dev.h - the device contract every NIC driver and wrapper implements.
 *
 * A device moves frame buffers in bursts: rx_burst fills an array with buffers
 * from the device's pool, tx_burst takes buffers and returns how many it
 * consumed (the caller keeps the rest and may retry). Buffers handed to
 * tx_burst may come from any pool; the device frees them once sent.
 * Wrappers (pcap, faults, trace) hold an inner device and are devices too.
 *
 * Call chain: rusty_stack_poll -> dev->ops->rx_burst ... dev->ops->tx_burst
 *             (through rusty_dev_tx, which finishes software checksums).
 */
#ifndef RUSTY_DEV_H
#define RUSTY_DEV_H

#include "rusty.h"
#include "buf.h"

#define RUSTY_MAX_QUEUES 16
#define RUSTY_BURST_MAX 64

struct rusty_dev_ops {
    const char *driver;
    int (*rx_burst)(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int max, uint64_t now_us);
    int (*tx_burst)(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us);
    int (*fd)(struct rusty_dev *dev, uint16_t queue);                   /* NULL: no fd to sleep on */
    int64_t (*next_deadline)(struct rusty_dev *dev, uint64_t now_us);  /* NULL: never (delay lines need it) */
    /* The loop is about to sleep on fd(queue): make the fd readable when the next
       frame arrives; 1 if frames already wait (do not sleep). NULL: the fd says
       so by itself (tap, AF_PACKET); a wrapper without one asks its inner device. */
    int (*arm_wakeup)(struct rusty_dev *dev, uint16_t queue);
    void (*close)(struct rusty_dev *dev);                               /* free driver state, not the struct */
};

struct rusty_dev {
    const struct rusty_dev_ops *ops;
    struct rusty_pool *pool;            /* rx buffers come from here */
    struct rusty_pool own_pool;         /* drivers own one; wrappers point at the inner's */
    struct rusty_dev *inner;            /* wrappers only */
    struct rusty_dev_stats stats;
    char name[32];
    uint8_t mac[6];
    uint16_t mtu;
    uint16_t queues;
    uint16_t first_queue;               /* queue numbering when one queue of many is opened */
    uint32_t offloads;                  /* RUSTY_OFF_* */
    /* The one other station on the link, when the driver knows it (a
       multi-queue tap: the kernel's netdev): arp.c sends to it unasked. */
    uint8_t peer_mac[6];
    uint8_t has_peer_mac;
    void *priv;
};

/* Allocate a device with its own pool (drivers) - cfg may be NULL. */
int rusty_dev_alloc(const struct rusty_dev_ops *ops, const struct rusty_dev_config *cfg,
                    size_t priv_size, struct rusty_dev **out);
/* Allocate a wrapper around inner: shares the pool, copies the capabilities. */
int rusty_dev_alloc_wrapper(const struct rusty_dev_ops *ops, struct rusty_dev *inner,
                            size_t priv_size, struct rusty_dev **out);

/* Transmit through the device: software checksum for devices without TX
 * offload, stats; returns the number consumed. */
int rusty_dev_tx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us);
int rusty_dev_rx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int max, uint64_t now_us);
int64_t rusty_dev_next_deadline(struct rusty_dev *dev, uint64_t now_us);

/* A locally administered MAC derived from a name, so runs are reproducible. */
void rusty_mac_from_name(const char *name, uint32_t salt, uint8_t mac[6]);
uint64_t rusty_monotonic_us(void);

/* Multi-queue tap steering (tap_steer.c; rusty_tap_steer_load is in rusty.h).
 * wait_turn: wait until exactly `queue` queues of tap `ifname` are attached
 * (tun numbers queues by attach order): 0, -EBUSY when more are, -ETIMEDOUT.
 * attach: load the program for `queues` and set it on the tap of queue fd `fd`. */
int rusty_tap_steer_wait_turn(const char *ifname, uint16_t queue);
int rusty_tap_steer_attach(int fd, uint16_t queues);      /* tools and benchmarks only: the stack is given time */

#endif
