/*
 * pcap.c - a capture wrapper (rusty_pcap_wrap): every frame received and
 * transmitted through it goes to a classic pcap file that tcpdump and
 * Wireshark read (LINKTYPE_ETHERNET, microsecond timestamps).
 *
 * Owns: the capture file and its record buffer. Not: the frames (it only
 * copies them).
 *
 * Call chain:
 *   rx: rusty_dev_rx(pcap) -> pcap_rx -> rusty_dev_rx(inner) -> record
 *   tx: rusty_dev_tx(pcap) [completes checksums: the wrapper hides the inner's
 *       TX_CSUM offload so the capture shows the bytes a wire would carry]
 *       -> pcap_tx -> record -> rusty_dev_tx(inner) -> forget the unsent ones
 *
 * Records are written into our own buffer, not straight into stdio: a frame
 * must be copied before the inner device consumes it, and the ones it then
 * refuses (the caller keeps and retries them) are cut off the buffer again,
 * so a retried frame appears once. The buffer goes to the file with fwrite
 * every FLUSH_FRAMES frames, when it fills, and at close.
 *
 * Received frames are captured as they arrive: one that came over an
 * offloading in-memory link (loopback, pair, shm) marked RUSTY_BUF_CSUM_VALID
 * may carry an unfinished L4 checksum, which tcpdump -v reports as incorrect,
 * as it does on a host with checksum offload.
 *
 * Timestamps are the now_us the caller passes (monotonic) plus the offset of
 * the wall clock from the monotonic one, read once at open.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dev.h"

#define PCAP_MAGIC 0xa1b2c3d4u          /* microsecond timestamps, writer's byte order */
#define LINKTYPE_ETHERNET 1u
#define SNAPLEN 65535u
#define REC_HDR 16u
#define OUT_BYTES (256u * 1024u)        /* > RUSTY_BURST_MAX records of a full buffer */
#define FLUSH_FRAMES 64u

struct pcap {
    FILE *file;
    uint8_t *out;
    size_t used;
    uint32_t unflushed;                 /* frames since the last fwrite */
    int64_t wall_offset_us;             /* wall = now_us + offset */
    int failed;                         /* a write failed: stop recording */
};

static void flush_out(struct rusty_dev *dev)
{
    struct pcap *p = dev->priv;
    if (p->used && !p->failed) {
        if (fwrite(p->out, 1, p->used, p->file) != p->used || fflush(p->file) != 0) {
            p->failed = 1;
            dev->stats.tx_errors++;
        }
    }
    p->used = 0;
    p->unflushed = 0;
}

static void put32(uint8_t *d, uint32_t v)
{
    memcpy(d, &v, 4);                   /* pcap fields are in the writer's byte order */
}

static void record(struct rusty_dev *dev, const struct rusty_buf *b, uint64_t now_us)
{
    struct pcap *p = dev->priv;
    if (p->failed)
        return;
    if (p->used + REC_HDR + b->len > OUT_BYTES)
        flush_out(dev);
    int64_t t = (int64_t)now_us + p->wall_offset_us;
    if (t < 0)
        t = 0;
    uint8_t *d = p->out + p->used;
    put32(d, (uint32_t)(t / 1000000));
    put32(d + 4, (uint32_t)(t % 1000000));
    put32(d + 8, b->len);               /* incl_len: frames are < SNAPLEN */
    put32(d + 12, b->len);              /* orig_len */
    memcpy(d + REC_HDR, rusty_buf_data(b), b->len);
    p->used += REC_HDR + b->len;
    p->unflushed++;
}

static int pcap_rx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int max, uint64_t now_us)
{
    struct pcap *p = dev->priv;
    int n = rusty_dev_rx(dev->inner, queue, bufs, max, now_us);
    for (int i = 0; i < n; i++)
        record(dev, bufs[i], now_us);
    if (p->unflushed >= FLUSH_FRAMES)
        flush_out(dev);
    return n;
}

static int pcap_tx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us)
{
    struct pcap *p = dev->priv;
    size_t ends[RUSTY_BURST_MAX + 1];
    uint32_t unflushed[RUSTY_BURST_MAX + 1];
    if (n > RUSTY_BURST_MAX)
        n = RUSTY_BURST_MAX;
    /* Room for the whole burst up front, so no flush happens between
       recording a frame and learning whether it was sent. */
    if (p->used + (size_t)n * (REC_HDR + RUSTY_BUF_SIZE) > OUT_BYTES)
        flush_out(dev);
    ends[0] = p->used;
    unflushed[0] = p->unflushed;
    for (int i = 0; i < n; i++) {
        record(dev, bufs[i], now_us);
        ends[i + 1] = p->used;
        unflushed[i + 1] = p->unflushed;
    }
    int sent = rusty_dev_tx(dev->inner, queue, bufs, n, now_us);
    if (sent < 0)
        sent = 0;
    if (!p->failed) {
        p->used = ends[sent];
        p->unflushed = unflushed[sent];
    }
    if (p->unflushed >= FLUSH_FRAMES)
        flush_out(dev);
    return sent;
}

static int pcap_fd(struct rusty_dev *dev, uint16_t queue)
{
    return rusty_dev_fd(dev->inner, queue);
}

static int64_t pcap_deadline(struct rusty_dev *dev, uint64_t now_us)
{
    return rusty_dev_next_deadline(dev->inner, now_us);
}

static void pcap_close(struct rusty_dev *dev)
{
    struct pcap *p = dev->priv;
    flush_out(dev);
    fclose(p->file);
    free(p->out);
}

static const struct rusty_dev_ops pcap_ops = {
    .driver = "pcap",
    .rx_burst = pcap_rx,
    .tx_burst = pcap_tx,
    .fd = pcap_fd,
    .next_deadline = pcap_deadline,
    .close = pcap_close,
};

int rusty_pcap_wrap(struct rusty_dev *inner, const char *path, struct rusty_dev **out)
{
    if (!inner || !path || !*path || !out)
        return -EINVAL;
    struct rusty_dev *dev;
    int err = rusty_dev_alloc_wrapper(&pcap_ops, inner, sizeof(struct pcap), &dev);
    if (err)
        return err;
    struct pcap *p = dev->priv;
    p->out = malloc(OUT_BYTES);
    p->file = p->out ? fopen(path, "wb") : NULL;
    if (!p->file) {
        err = p->out ? -errno : -ENOMEM;
        free(p->out);
        free(dev);
        return err;
    }
    /* Opening is not the data path: reading the clocks once here is allowed. */
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    p->wall_offset_us = (int64_t)wall.tv_sec * 1000000 + wall.tv_nsec / 1000 - (int64_t)rusty_monotonic_us();
    uint8_t hdr[24];
    uint16_t major = 2, minor = 4;
    put32(hdr, PCAP_MAGIC);
    memcpy(hdr + 4, &major, 2);
    memcpy(hdr + 6, &minor, 2);
    put32(hdr + 8, 0);                  /* thiszone: UTC */
    put32(hdr + 12, 0);                 /* sigfigs */
    put32(hdr + 16, SNAPLEN);
    put32(hdr + 20, LINKTYPE_ETHERNET);
    if (fwrite(hdr, 1, sizeof(hdr), p->file) != sizeof(hdr) || fflush(p->file) != 0) {
        err = -errno;
        fclose(p->file);
        free(p->out);
        free(dev);
        return err ? err : -EIO;
    }
    /* Frames reach the capture with checksums finished (rusty_dev_tx does it). */
    dev->offloads &= ~(uint32_t)RUSTY_OFF_TX_CSUM;
    *out = dev;
    return 0;
}
