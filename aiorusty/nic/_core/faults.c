/*
 * faults.c - a seeded fault injector that wraps any device (rusty_faults_wrap).
 *
 * Owns: drop, duplicate, reorder, corrupt, delay + jitter and a byte-rate
 * limit on received and/or transmitted frames, the PRNG that decides them and
 * the counters of what it did. Not: the frames' meaning (a corrupted frame is
 * caught by the stack's checksums, never here).
 *
 * Call chain:
 *   rx: rusty_dev_rx(faults) -> faults_rx -> rusty_dev_rx(inner) -> inject -> line_drain
 *   tx: rusty_dev_tx(faults) -> faults_tx -> inject -> line_drain -> rusty_dev_tx(inner)
 *
 * Every frame passes, per direction and queue: drop? -> corrupt? ->
 * duplicate? -> reorder (hold one frame back, release it after the next or
 * after REORDER_HOLD_US) -> the delay line, a bounded FIFO of buffers
 * stamped with their release time (now + delay +- jitter, never earlier
 * than the frame before it, so jitter delays but does not reorder, as netem
 * does with a rate) -> the token bucket, which releases the line's head only
 * when it holds the frame's bytes. Frames wait in the line for tokens (a
 * shaper, like tbf); a frame that finds more than the line's byte limit
 * queued behind the shaper is dropped and counted as rate_limited.
 *
 * Decisions come from one splitmix64 generator per direction seeded from
 * cfg->seed, and draws happen per frame in a fixed order independent of time,
 * so the same seed and the same frame sequence give the same decisions
 * (timing only moves when a held or delayed frame comes out). Transmitted
 * frames the injector drops count as sent, as on a lossy wire.
 *
 * Frames queued in the line of the tx direction go out on the next call of
 * either burst op for that queue; rusty_dev_next_deadline says when that is due.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"

#define LINE_SLOTS 4096u                /* frames held per direction and queue */
#define REORDER_HOLD_US 1000u           /* a held frame goes out alone after this */
#define RATE_MIN_BURST 4096u            /* bucket depth: at least a couple of MTU-sized frames */
#define RATE_MIN_BACKLOG 32768u         /* bytes the shaper may queue before dropping */
#define ETH_HDR 14u                     /* corrupt only past the Ethernet header */
#define DIR_RX 0
#define DIR_TX 1

struct line {                           /* one direction of one queue */
    struct rusty_buf *slot[LINE_SLOTS]; /* FIFO; buf->stamp_us = release time */
    uint32_t head, count;
    uint32_t bytes;                     /* queued bytes (shaper backlog bound) */
    uint64_t last_release;
    struct rusty_buf *held;             /* reorder */
    uint64_t held_until;
    double tokens;                      /* bytes */
    uint64_t tokens_at;                 /* time of the last refill; 0 = never */
};

struct faults {
    struct rusty_faults_config cfg;
    struct rusty_faults_stats st;
    uint64_t rng[2];                    /* per direction */
    double bucket;                      /* depth in bytes */
    uint32_t backlog_limit;             /* bytes */
    struct line *lines;                 /* [queue * 2 + dir] */
};

static const struct rusty_dev_ops faults_ops;

/* splitmix64 (Steele, Lea, Flood 2014): a full-period 64-bit generator. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One draw per enabled fault per frame, whatever the outcome. */
static int chance(uint64_t *s, uint32_t ppm)
{
    if (!ppm)
        return 0;
    return next_rand(s) % 1000000u < ppm;
}

static void line_push(struct faults *f, struct line *l, struct rusty_buf *b, int dir, uint64_t now_us, int *dropped)
{
    const struct rusty_faults_config *c = &f->cfg;
    if (l->count == LINE_SLOTS || (c->rate_bps && l->bytes + b->len > f->backlog_limit && l->count)) {
        if (c->rate_bps)
            f->st.rate_limited++;
        else
            f->st.dropped++;
        (*dropped)++;
        rusty_buf_free(b);
        return;
    }
    uint64_t release = now_us + c->delay_us;
    if (c->jitter_us) {
        uint64_t span = 2ull * c->jitter_us + 1;
        int64_t j = (int64_t)(next_rand(&f->rng[dir]) % span) - (int64_t)c->jitter_us;
        release = (int64_t)release + j < (int64_t)now_us ? now_us : (uint64_t)((int64_t)release + j);
    }
    if (release < l->last_release)
        release = l->last_release;      /* FIFO: jitter never reorders */
    if (release > now_us)
        f->st.delayed++;
    l->last_release = release;
    b->stamp_us = release;
    l->slot[(l->head + l->count) % LINE_SLOTS] = b;
    l->count++;
    l->bytes += b->len;
}

/* drop -> corrupt -> duplicate -> reorder -> line. */
static void inject(struct rusty_dev *dev, struct line *l, int dir, struct rusty_buf *b, uint64_t now_us, int *dropped)
{
    struct faults *f = dev->priv;
    const struct rusty_faults_config *c = &f->cfg;
    uint64_t *rng = &f->rng[dir];
    if (chance(rng, c->drop_ppm)) {
        f->st.dropped++;
        (*dropped)++;
        rusty_buf_free(b);
        return;
    }
    if (chance(rng, c->corrupt_ppm)) {
        uint64_t r = next_rand(rng);
        if (b->len > ETH_HDR) {
            /* The checksum must exist before it can catch the damage: finish a
               partial one now, and never let the receiver trust this frame. */
            rusty_buf_complete_csum(b);
            b->flags &= (uint8_t)~RUSTY_BUF_CSUM_VALID;
            uint32_t pos = ETH_HDR + (uint32_t)(r % (b->len - ETH_HDR));
            rusty_buf_data(b)[pos] ^= (uint8_t)(1u + (r >> 32) % 255u);
            f->st.corrupted++;
        }
    }
    struct rusty_buf *dup = NULL;
    if (chance(rng, c->duplicate_ppm)) {
        dup = rusty_buf_clone(dev->pool, b);
        if (dup)
            f->st.duplicated++;
    }
    struct rusty_buf *out[3];
    int n = 0;
    if (chance(rng, c->reorder_ppm) && !l->held) {
        l->held = b;
        l->held_until = now_us + REORDER_HOLD_US;
        f->st.reordered++;
    } else {
        out[n++] = b;
    }
    if (dup)
        out[n++] = dup;
    if (l->held && l->held != b) {      /* the frame after the held one has passed it */
        out[n++] = l->held;
        l->held = NULL;
    }
    for (int i = 0; i < n; i++)
        line_push(f, l, out[i], dir, now_us, dropped);
}

static void release_held(struct faults *f, struct line *l, int dir, uint64_t now_us)
{
    if (l->held && l->held_until <= now_us) {
        struct rusty_buf *b = l->held;
        int dropped = 0;
        l->held = NULL;
        line_push(f, l, b, dir, now_us, &dropped);
    }
}

static void refill(struct faults *f, struct line *l, uint64_t now_us)
{
    if (!l->tokens_at) {
        l->tokens = f->bucket;
    } else if (now_us > l->tokens_at) {
        l->tokens += (double)(now_us - l->tokens_at) * (double)f->cfg.rate_bps / 8e6;
        if (l->tokens > f->bucket)
            l->tokens = f->bucket;
    }
    if (now_us > l->tokens_at || !l->tokens_at)
        l->tokens_at = now_us ? now_us : 1;
}

/* Pop frames whose time has come and whose bytes the bucket holds, up to max. */
static int line_drain(struct faults *f, struct line *l, struct rusty_buf **out, int max, uint64_t now_us)
{
    int n = 0;
    if (f->cfg.rate_bps)
        refill(f, l, now_us);
    while (n < max && l->count) {
        struct rusty_buf *b = l->slot[l->head];
        if (b->stamp_us > now_us)
            break;
        if (f->cfg.rate_bps) {
            if (l->tokens < b->len)
                break;
            l->tokens -= b->len;
        }
        out[n++] = b;
        l->head = (l->head + 1) % LINE_SLOTS;
        l->count--;
        l->bytes -= b->len;
    }
    return n;
}

/* Put frames back at the head of the line (the inner device did not take them). */
static void line_unpop(struct faults *f, struct line *l, struct rusty_buf **bufs, int n)
{
    for (int i = n; i-- > 0;) {
        l->head = (l->head + LINE_SLOTS - 1) % LINE_SLOTS;
        l->slot[l->head] = bufs[i];
        l->count++;
        l->bytes += bufs[i]->len;
        if (f->cfg.rate_bps)
            l->tokens += bufs[i]->len;
    }
}

static int active(const struct faults *f, int dir)
{
    return (f->cfg.direction & (dir == DIR_RX ? 1u : 2u)) != 0;
}

static void flush_tx(struct rusty_dev *dev, uint16_t queue, uint64_t now_us)
{
    struct faults *f = dev->priv;
    struct line *l = &f->lines[queue * 2 + DIR_TX];
    struct rusty_buf *bufs[RUSTY_BURST_MAX];
    release_held(f, l, DIR_TX, now_us);
    while (l->count) {
        int n = line_drain(f, l, bufs, RUSTY_BURST_MAX, now_us);
        if (!n)
            return;
        int sent = rusty_dev_tx(dev->inner, queue, bufs, n, now_us);
        if (sent < n) {
            line_unpop(f, l, bufs + sent, n - sent);
            return;
        }
    }
}

static int faults_rx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int max, uint64_t now_us)
{
    struct faults *f = dev->priv;
    if (queue >= dev->queues)
        return -EINVAL;
    if (active(f, DIR_TX))
        flush_tx(dev, queue, now_us);
    if (!active(f, DIR_RX))
        return rusty_dev_rx(dev->inner, queue, bufs, max, now_us);
    struct line *l = &f->lines[queue * 2 + DIR_RX];
    release_held(f, l, DIR_RX, now_us);
    /* Take what the inner device holds (bounded per call) whatever the
       caller asked for: the injector sits on the wire, so frames wait in its
       line, where the shaper's backlog bound and the delay apply, not in the
       inner device's ring. */
    for (int round = 0; round < 8; round++) {
        /* Each frame in may become three out (itself, a duplicate, a
           released held frame): leave room in the line for that. */
        int room = (int)(LINE_SLOTS - l->count) / 3;
        int want = room < RUSTY_BURST_MAX ? room : RUSTY_BURST_MAX;
        if (want <= 0)
            break;
        struct rusty_buf *in[RUSTY_BURST_MAX];
        int n = rusty_dev_rx(dev->inner, queue, in, want, now_us);
        if (n < 0)
            return n;
        int dropped = 0;
        for (int i = 0; i < n; i++)
            inject(dev, l, DIR_RX, in[i], now_us, &dropped);
        if (n < want)
            break;
    }
    return line_drain(f, l, bufs, max, now_us);
}

static int faults_tx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us)
{
    struct faults *f = dev->priv;
    if (queue >= dev->queues)
        return -EINVAL;
    if (!active(f, DIR_TX))
        return rusty_dev_tx(dev->inner, queue, bufs, n, now_us);
    struct line *l = &f->lines[queue * 2 + DIR_TX];
    flush_tx(dev, queue, now_us);       /* releases a timed-out held frame too */
    int room = (int)(LINE_SLOTS - l->count) / 3;
    if (n > room)
        n = room;                       /* the line is full: the caller keeps the rest */
    int dropped = 0;
    for (int i = 0; i < n; i++)
        inject(dev, l, DIR_TX, bufs[i], now_us, &dropped);
    flush_tx(dev, queue, now_us);
    if (dropped)
        dev->stats.tx_dropped += (uint64_t)dropped;
    return n;
}

static int faults_fd(struct rusty_dev *dev, uint16_t queue)
{
    return rusty_dev_fd(dev->inner, queue);
}

static int64_t min_deadline(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

static int64_t faults_deadline(struct rusty_dev *dev, uint64_t now_us)
{
    struct faults *f = dev->priv;
    int64_t d = rusty_dev_next_deadline(dev->inner, now_us);
    for (uint32_t i = 0; i < (uint32_t)dev->queues * 2; i++) {
        struct line *l = &f->lines[i];
        if (l->held)
            d = min_deadline(d, (int64_t)l->held_until);
        if (!l->count)
            continue;
        struct rusty_buf *b = l->slot[l->head];
        uint64_t at = b->stamp_us;
        if (f->cfg.rate_bps) {
            /* When the bucket will hold the head frame's bytes. */
            refill(f, l, now_us);
            if (l->tokens < b->len) {
                double wait = ((double)b->len - l->tokens) * 8e6 / (double)f->cfg.rate_bps;
                uint64_t t = now_us + (uint64_t)wait + 1;
                if (t > at)
                    at = t;
            }
        }
        d = min_deadline(d, (int64_t)(at > now_us ? at : now_us));
    }
    return d;
}

static void faults_close(struct rusty_dev *dev)
{
    struct faults *f = dev->priv;
    for (uint32_t i = 0; i < (uint32_t)dev->queues * 2; i++) {
        struct line *l = &f->lines[i];
        while (l->count) {
            rusty_buf_free(l->slot[l->head]);
            l->head = (l->head + 1) % LINE_SLOTS;
            l->count--;
        }
        if (l->held)
            rusty_buf_free(l->held);
    }
    free(f->lines);
}

static const struct rusty_dev_ops faults_ops = {
    .driver = "faults",
    .rx_burst = faults_rx,
    .tx_burst = faults_tx,
    .fd = faults_fd,
    .next_deadline = faults_deadline,
    .close = faults_close,
};

int rusty_faults_wrap(struct rusty_dev *inner, const struct rusty_faults_config *cfg, struct rusty_dev **out)
{
    if (!inner || !cfg || !out)
        return -EINVAL;
    if (cfg->drop_ppm > 1000000u || cfg->duplicate_ppm > 1000000u || cfg->reorder_ppm > 1000000u ||
        cfg->corrupt_ppm > 1000000u || cfg->direction > 3)
        return -EINVAL;
    struct rusty_dev *dev;
    int err = rusty_dev_alloc_wrapper(&faults_ops, inner, sizeof(struct faults), &dev);
    if (err)
        return err;
    struct faults *f = dev->priv;
    f->cfg = *cfg;
    if (!f->cfg.direction)
        f->cfg.direction = 3;
    /* Drop, reorder, delay and duplicate treat a frame as a whole, so TSO frames
       (with their external tail) pass through them as the inner device offers:
       a drop loses a 64 KiB burst, and the stack's retransmission of TSO'd
       ranges is exercised. Corruption and the rate limit look at the linear
       bytes, so with either the stack gets linear, MSS-sized frames. (A TSO frame
       is not duplicated: a clone must be linear; it passes once.) */
    if (!cfg->corrupt_ppm && !cfg->rate_bps)
        dev->offloads |= inner->offloads & (RUSTY_OFF_TX_SG | RUSTY_OFF_TSO);
    f->lines = calloc((size_t)dev->queues * 2, sizeof(*f->lines));
    if (!f->lines) {
        free(dev);
        return -ENOMEM;
    }
    /* Distinct, reproducible streams per direction. */
    f->rng[DIR_RX] = cfg->seed ^ 0x5258000000000000ull;
    f->rng[DIR_TX] = cfg->seed ^ 0x5458000000000000ull;
    if (cfg->rate_bps) {
        double ten_ms = (double)cfg->rate_bps / 8.0 / 100.0;
        f->bucket = ten_ms > RATE_MIN_BURST ? ten_ms : RATE_MIN_BURST;
        double backlog = (double)cfg->rate_bps / 8.0 / 10.0;    /* 100 ms of traffic */
        f->backlog_limit = backlog > RATE_MIN_BACKLOG ? (backlog > 1e9 ? 1000000000u : (uint32_t)backlog)
                                                      : RATE_MIN_BACKLOG;
    }
    *out = dev;
    return 0;
}

int rusty_faults_counts(struct rusty_dev *dev, struct rusty_faults_stats *out)
{
    for (struct rusty_dev *d = dev; d; d = d->inner) {
        if (d->ops == &faults_ops) {
            *out = ((struct faults *)d->priv)->st;
            return 0;
        }
    }
    return -ENODEV;
}
