/*
 * shm.c - a shared-memory link between two processes (rusty_shm_open): no
 * root, no kernel in the data path.
 *
 * Owns: the file /dev/shm/aiorusty-NAME (shm_open + mmap), its layout, who is
 * attached to it, and the wakeup FIFOs beside it. Not: what the frames mean.
 *
 * Layout: a header page (magic, version, queue and slot counts, a MAC per
 * side, and per queue the pid holding each side), then per queue two
 * single-producer/single-consumer rings, A->B and B->A. A ring is three
 * cache lines (head: producer's, tail: consumer's, wants_wakeup: consumer's)
 * and fixed-size slots (a small header: length, checksum metadata; then the
 * frame). head and tail run freely (uint32, wrap) and are published with
 * release stores and read with acquire loads (C11 atomics; lock-free 32-bit
 * atomics are address-free, so they work across processes).
 *
 * Call chain:
 *   tx: rusty_dev_tx -> shm_tx -> copy into slots -> publish head -> wake the peer if it sleeps
 *   rx: rusty_dev_rx -> shm_rx -> copy out of slots into pool buffers -> publish tail
 *   sleep: rusty_stack_prepare_sleep -> rusty_dev_arm_wakeup -> shm_arm_wakeup
 *       -> drain the FIFO, ask for a wakeup, look once more
 *
 * Sleeping: the loop sleeps on a FIFO per ring (/dev/shm/aiorusty-NAME.qQ.D,
 * opened O_RDWR|O_NONBLOCK so it never blocks and never sees EOF). A consumer
 * about to sleep sets wants_wakeup; a producer that published frames and
 * finds the flag set clears it and writes one byte. Both sides order their
 * store before the other's load with a seq_cst fence (the Dekker pattern), so
 * a wakeup is never lost; a spurious one costs one empty poll. A consumer
 * that is busy-polling never sets the flag (virtio's event suppression), so
 * neither side makes a syscall per frame while both are busy.
 *
 * Attaching: the first opener creates the file (O_CREAT|O_EXCL) and takes
 * side A; the next takes side B; a third gets -EBUSY. Sides are claimed per
 * queue: an all-queues open needs the same side free on every queue, and with
 * RUSTY_DEVF_SINGLE_QUEUE each worker claims its one queue, side A if that
 * queue's A is free, else B (so start one side's workers before the other's).
 * The creator fixes the queue count (cfg->queues) and ring size; an attacher
 * asking for 0 or 1 queues takes the file's count, any other count must match
 * (-EINVAL). Attach and detach run under flock() on the file, which the kernel
 * drops when a process dies.
 *
 * Crashed peers: a claim records the holder's pid. A claim whose process no
 * longer exists (kill(pid, 0) fails with ESRCH) is free: a new process may
 * take that side over, and starts with its receive ring emptied (the frames
 * the dead side never read are discarded) and its transmit ring as it was.
 * (A recycled pid looks alive: the side stays busy until that process exits.
 * Both processes must share a pid namespace, or each would see the other dead.)
 * A file where no live process holds any claim is stale: the next opener
 * removes it and creates a fresh one, with its own queue count.
 *
 * Freeing the name: each close releases its claims; the close that leaves no
 * claim at all unlinks the file and the FIFOs. So the name goes away when both
 * sides have closed, or when the creator closes and the other side never came.
 *
 * Frames sent while the other side of a queue is not attached are dropped and
 * counted (tx_dropped), like a cable with nothing at the far end. A full ring
 * accepts what fits and returns that count (the caller keeps the rest).
 * Steering: with RUSTY_DEVF_STEER a device holding several queues picks each
 * frame's queue by a symmetric flow hash (see steer_queue) instead of the
 * queue the caller names; without it, the caller's queue is used as is.
 * Offloads: frames never leave memory, so a frame with a partial checksum
 * travels as is and arrives with RUSTY_BUF_CSUM_VALID; a receiver opened with
 * RUSTY_DEVF_NO_OFFLOAD finishes such a checksum itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dev.h"

#define SHM_MAGIC 0x4d48535954535552ull    /* "RUSTYSHM" little-endian */
#define SHM_VERSION 1u
#define HEADER_BYTES 4096u
#define CACHE_LINE 64u
#define SLOT_BYTES 2048u
#define SLOT_HDR 8u
#define SLOT_DATA (SLOT_BYTES - SLOT_HDR)
#define DEFAULT_SLOTS 512u
#define MAX_SLOTS 65536u
#define SIDE_A 0
#define SIDE_B 1
#define SLOT_PARTIAL 1u                 /* the frame's L4 checksum is not finished */
#define OPEN_TRIES 400                  /* x 5 ms: wait for a creator still initialising */

struct shm_claim {
    _Atomic int32_t pid;                /* 0: free */
    uint32_t attaches;                  /* how many times this side was taken (diagnostics) */
};

struct shm_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_bytes;
    uint32_t queues;
    uint32_t slots;                     /* per ring, a power of two */
    uint32_t slot_bytes;
    uint32_t ring_bytes;                /* control lines + slots */
    uint64_t total_bytes;
    uint8_t mac[2][8];                  /* per side, from the name and the side */
    _Atomic uint32_t ready;             /* set last by the creator */
    uint32_t pad;
    struct shm_claim claim[RUSTY_MAX_QUEUES][2];
};

struct ring_ctl {
    _Alignas(CACHE_LINE) _Atomic uint32_t head;     /* written by the producer */
    _Alignas(CACHE_LINE) _Atomic uint32_t tail;     /* written by the consumer */
    _Alignas(CACHE_LINE) _Atomic uint32_t wants_wakeup;  /* set by the consumer, cleared by the producer */
};
#define RING_CTL_BYTES ((uint32_t)sizeof(struct ring_ctl))
_Static_assert(sizeof(struct shm_header) <= HEADER_BYTES, "header page");
_Static_assert(sizeof(struct ring_ctl) == 3 * CACHE_LINE, "one cache line per index");

struct slot_hdr {
    uint16_t len;
    uint16_t flags;                     /* SLOT_* */
    uint16_t csum_start;
    uint16_t csum_offset;
};

struct shm_queue {
    uint16_t q;                         /* queue index in the file */
    struct ring_ctl *tx, *rx;
    uint8_t *tx_slots, *rx_slots;
    int rx_fd;                          /* our FIFO: the loop sleeps on it */
    int tx_fd;                          /* the peer's FIFO: we wake it */
};

struct shm {
    struct shm_header *hdr;
    size_t map_bytes;
    int fd;
    int side;
    int32_t pid;
    uint32_t mask;                      /* slots - 1 */
    uint16_t nq;
    int steer;                          /* RUSTY_DEVF_STEER: queue per frame by flow hash */
    char shm_name[64];                  /* "/aiorusty-NAME" */
    char name[40];
    struct shm_queue q[RUSTY_MAX_QUEUES];
};

static void fifo_path(char *out, size_t cap, const char *name, unsigned q, unsigned dir)
{
    snprintf(out, cap, "/dev/shm/aiorusty-%s.q%u.%u", name, q, dir);
}

static struct ring_ctl *ring_at(struct shm_header *h, unsigned q, unsigned dir)
{
    return (struct ring_ctl *)((uint8_t *)h + h->header_bytes + ((size_t)q * 2 + dir) * h->ring_bytes);
}

/* Is the claim holder still running? A zombie (exited, not yet reaped by its
 * parent) is not: its claim is as dead as its process. */
static int alive(int32_t pid)
{
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    char path[32], stat[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;                       /* no /proc: trust kill() */
    ssize_t n = read(fd, stat, sizeof(stat) - 1);
    close(fd);
    if (n <= 0)
        return 1;
    stat[n] = 0;
    const char *end = strrchr(stat, ')');       /* "pid (comm) S ...": comm may hold spaces */
    return !(end && end[1] == ' ' && (end[2] == 'Z' || end[2] == 'X'));
}

static void unlink_all(const char *shm_name, const char *name, unsigned queues)
{
    char path[128];
    shm_unlink(shm_name);
    for (unsigned q = 0; q < queues && q < RUSTY_MAX_QUEUES; q++)
        for (unsigned d = 0; d < 2; d++) {
            fifo_path(path, sizeof(path), name, q, d);
            unlink(path);
        }
}

static int create_file(struct shm *s, const struct rusty_dev_config *cfg)
{
    unsigned queues = cfg && cfg->queues ? cfg->queues : 1;
    unsigned slots = cfg && cfg->ring_frames ? cfg->ring_frames : DEFAULT_SLOTS;
    if (queues > RUSTY_MAX_QUEUES || slots > MAX_SLOTS)
        return -EINVAL;
    unsigned p2 = 2;
    while (p2 < slots)
        p2 <<= 1;
    slots = p2;
    uint32_t ring_bytes = RING_CTL_BYTES + slots * SLOT_BYTES;
    uint64_t total = HEADER_BYTES + (uint64_t)queues * 2 * ring_bytes;

    int fd = shm_open(s->shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    flock(fd, LOCK_EX);                 /* attachers wait until the file is ready */
    int err = 0;
    if (ftruncate(fd, (off_t)total) != 0) {
        err = -errno;
        goto fail;
    }
    void *map = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        err = -errno;
        goto fail;
    }
    /* A fresh file is zero-filled: only non-zero fields need writing. */
    struct shm_header *h = map;
    h->magic = SHM_MAGIC;
    h->version = SHM_VERSION;
    h->header_bytes = HEADER_BYTES;
    h->queues = queues;
    h->slots = slots;
    h->slot_bytes = SLOT_BYTES;
    h->ring_bytes = ring_bytes;
    h->total_bytes = total;
    for (int side = 0; side < 2; side++)
        rusty_mac_from_name(s->name, (uint32_t)side, h->mac[side]);
    for (unsigned q = 0; q < queues; q++)
        for (unsigned d = 0; d < 2; d++) {
            char path[128];
            atomic_store(&ring_at(h, q, d)->wants_wakeup, 0);  /* asked for before a sleep */
            fifo_path(path, sizeof(path), s->name, q, d);
            unlink(path);               /* a leftover of a stale link */
            if (mkfifo(path, 0600) != 0) {
                err = -errno;
                munmap(map, total);
                goto fail;
            }
        }
    atomic_store_explicit(&h->ready, 1, memory_order_release);
    s->fd = fd;
    s->hdr = h;
    s->map_bytes = total;
    return 0;                           /* still locked: the caller claims, then unlocks */
fail:
    unlink_all(s->shm_name, s->name, queues);
    close(fd);
    return err;
}

/* Open the existing file, locked and mapped; 1 = it is gone or stale (start over). */
static int attach_file(struct shm *s)
{
    for (int tries = 0;; tries++) {
        int fd = shm_open(s->shm_name, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0)
            return errno == ENOENT ? 1 : -errno;
        flock(fd, LOCK_EX);
        struct stat st;
        if (fstat(fd, &st) != 0) {
            int err = -errno;
            close(fd);
            return err;
        }
        if (st.st_nlink == 0) {         /* unlinked while we waited for the lock */
            close(fd);
            return 1;
        }
        if ((size_t)st.st_size >= HEADER_BYTES) {
            struct shm_header *h = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (h == MAP_FAILED) {
                int err = -errno;
                close(fd);
                return err;
            }
            if (atomic_load_explicit(&h->ready, memory_order_acquire)) {
                if (h->magic != SHM_MAGIC || h->version != SHM_VERSION || h->header_bytes != HEADER_BYTES ||
                    h->slot_bytes != SLOT_BYTES || h->queues == 0 || h->queues > RUSTY_MAX_QUEUES ||
                    h->slots == 0 || (h->slots & (h->slots - 1)) || h->slots > MAX_SLOTS ||
                    h->ring_bytes != RING_CTL_BYTES + h->slots * SLOT_BYTES ||
                    h->total_bytes != HEADER_BYTES + (uint64_t)h->queues * 2 * h->ring_bytes ||
                    h->total_bytes != (uint64_t)st.st_size) {
                    munmap(h, (size_t)st.st_size);
                    close(fd);
                    return -EPROTO;     /* another version's (or a foreign) file */
                }
                s->fd = fd;
                s->hdr = h;
                s->map_bytes = (size_t)st.st_size;
                return 0;               /* locked */
            }
            munmap(h, (size_t)st.st_size);
        }
        if (tries >= OPEN_TRIES) {
            /* Never became ready: its creator died while setting it up. */
            unlink_all(s->shm_name, s->name, RUSTY_MAX_QUEUES);
            close(fd);
            return 1;
        }
        close(fd);                      /* drops the lock: let the creator finish */
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int side_free(struct shm_header *h, unsigned q, int side)
{
    return !alive(atomic_load(&h->claim[q][side].pid));
}

static int any_live_claim(struct shm_header *h)
{
    /* The peer can rewrite the header after attaching: read the count once, bounded by the claim table. */
    uint32_t queues = *(volatile uint32_t *)&h->queues;
    if (queues > RUSTY_MAX_QUEUES)
        queues = RUSTY_MAX_QUEUES;
    for (unsigned q = 0; q < queues; q++)
        for (int side = 0; side < 2; side++)
            if (alive(atomic_load(&h->claim[q][side].pid)))
                return 1;
    return 0;
}

static void release_claims(struct shm *s)
{
    for (unsigned i = 0; i < s->nq; i++) {
        int32_t me = s->pid;
        atomic_compare_exchange_strong(&s->hdr->claim[s->q[i].q][s->side].pid, &me, 0);
    }
}

static void close_queues(struct shm *s)
{
    for (unsigned i = 0; i < s->nq; i++) {
        if (s->q[i].rx_fd >= 0)
            close(s->q[i].rx_fd);
        if (s->q[i].tx_fd >= 0)
            close(s->q[i].tx_fd);
    }
}

/* Claim the queues this device uses and wire them up; the file is locked. */
static int claim(struct shm *s, const struct rusty_dev_config *cfg)
{
    struct shm_header *h = s->hdr;
    unsigned first = 0, count = h->queues;
    if (cfg && cfg->queues > 1 && cfg->queues != h->queues)
        return -EINVAL;                 /* the link was made with another queue count */
    if (cfg && (cfg->flags & RUSTY_DEVF_SINGLE_QUEUE)) {
        if (cfg->queue >= h->queues)
            return -EINVAL;
        first = cfg->queue;
        count = 1;
    }
    int side = -1;
    for (int cand = SIDE_A; cand <= SIDE_B && side < 0; cand++) {
        int ok = 1;
        for (unsigned q = first; q < first + count; q++)
            ok &= side_free(h, q, cand);
        if (ok)
            side = cand;
    }
    if (side < 0)
        return -EBUSY;
    s->side = side;
    s->mask = h->slots - 1;
    s->nq = (uint16_t)count;
    for (unsigned i = 0; i < count; i++) {
        struct shm_queue *sq = &s->q[i];
        unsigned q = first + i;
        char path[128];
        sq->q = (uint16_t)q;
        sq->tx = ring_at(h, q, (unsigned)side);          /* dir 0 = A->B, 1 = B->A */
        sq->rx = ring_at(h, q, (unsigned)(1 - side));
        sq->tx_slots = (uint8_t *)sq->tx + RING_CTL_BYTES;
        sq->rx_slots = (uint8_t *)sq->rx + RING_CTL_BYTES;
        fifo_path(path, sizeof(path), s->name, q, (unsigned)(1 - side));
        sq->rx_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        fifo_path(path, sizeof(path), s->name, q, (unsigned)side);
        sq->tx_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (sq->rx_fd < 0 || sq->tx_fd < 0) {
            int err = -errno;
            s->nq = (uint16_t)(i + 1);
            close_queues(s);
            s->nq = 0;
            return err;
        }
    }
    for (unsigned i = 0; i < count; i++) {
        struct shm_queue *sq = &s->q[i];
        /* A fresh start: what a previous holder of this side never read is discarded. */
        atomic_store(&sq->rx->tail, atomic_load(&sq->rx->head));
        atomic_store(&sq->rx->wants_wakeup, 0);
        atomic_store(&h->claim[sq->q][side].pid, s->pid);
        h->claim[sq->q][side].attaches++;
    }
    return 0;
}

static int peer_attached(struct shm *s, const struct shm_queue *sq)
{
    return atomic_load_explicit(&s->hdr->claim[sq->q][1 - s->side].pid, memory_order_relaxed) != 0;
}

/* Copy one frame into a queue's ring at head + *published; 0 when the ring is full. */
static int ring_put(struct rusty_dev *dev, struct shm *s, struct shm_queue *sq, uint32_t head,
                    uint32_t *published, const struct rusty_buf *b)
{
    uint32_t tail = atomic_load_explicit(&sq->tx->tail, memory_order_acquire);
    if (head + *published - tail >= s->mask + 1)
        return 0;
    uint32_t len = rusty_buf_frame_len(b);
    if (len > SLOT_DATA) {
        dev->stats.tx_errors++;         /* cannot happen within the MTU; kept safe */
        return 1;
    }
    uint8_t *slot = sq->tx_slots + (size_t)((head + *published) & s->mask) * SLOT_BYTES;
    struct slot_hdr sh = {(uint16_t)len, 0, 0, 0};
    if (b->flags & RUSTY_BUF_CSUM_PARTIAL) {
        sh.flags = SLOT_PARTIAL;
        sh.csum_start = b->csum_start;
        sh.csum_offset = b->csum_offset;
    }
    memcpy(slot, &sh, sizeof(sh));
    memcpy(slot + SLOT_HDR, rusty_buf_data(b), b->len);
    if (b->ext_len)                     /* scatter-gather: the payload goes in from where it lies */
        memcpy(slot + SLOT_HDR + b->len, b->ext, b->ext_len);
    (*published)++;
    return 1;
}

/* Make `published` frames visible to the peer and wake it if it sleeps. */
static void ring_publish(struct shm_queue *sq, uint32_t head, uint32_t published)
{
    if (!published)
        return;
    atomic_store_explicit(&sq->tx->head, head + published, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&sq->tx->wants_wakeup, memory_order_relaxed) &&
        atomic_exchange(&sq->tx->wants_wakeup, 0)) {
        char one = 1;
        (void)!write(sq->tx_fd, &one, 1);       /* EAGAIN: the FIFO is full, so readable already */
    }
}

/*
 * Flow steering (RUSTY_DEVF_STEER, added for the test-bed's workers): the
 * queue of an IPv4 frame is a hash of its addresses and TCP/UDP ports that
 * is symmetric - both directions of a flow land on the same queue index - so
 * a process holding every queue can talk to one worker per queue on the
 * other side and each flow stays with one worker:
 *   x = saddr ^ daddr ^ ((sport ^ dport) * 0x10001), then murmur3's fmix32,
 *   queue = x % queues.
 * The same function lives in aiorusty/testbed/steer.py, which picks source
 * ports of outgoing connections so that their flows hash to the worker's own
 * queue. Frames that are not IPv4 (ARP) go to every queue whose peer is
 * attached: each worker must see the requests and announcements.
 * Returns the queue, or -1 for "every queue".
 */
static int steer_queue(const struct rusty_buf *b, unsigned nq)
{
    const uint8_t *f = rusty_buf_data(b);
    if (b->len < 34 || f[12] != 0x08 || f[13] != 0x00)
        return -1;
    const uint8_t *ip = f + 14;
    unsigned ihl = (ip[0] & 0x0fu) * 4u;
    uint32_t saddr = (uint32_t)ip[12] << 24 | (uint32_t)ip[13] << 16 | (uint32_t)ip[14] << 8 | ip[15];
    uint32_t daddr = (uint32_t)ip[16] << 24 | (uint32_t)ip[17] << 16 | (uint32_t)ip[18] << 8 | ip[19];
    uint32_t ports = 0;
    int first_fragment = ((ip[6] & 0x1fu) | ip[7]) == 0;
    if ((ip[9] == 6 || ip[9] == 17) && first_fragment && ihl >= 20 && b->len >= 14 + ihl + 4) {
        const uint8_t *l4 = ip + ihl;
        ports = ((uint32_t)l4[0] << 8 | l4[1]) ^ ((uint32_t)l4[2] << 8 | l4[3]);
    }
    uint32_t x = saddr ^ daddr ^ (ports * 0x10001u);
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= x >> 13;
    x *= 0xc2b2ae35u;
    x ^= x >> 16;
    return (int)(x % nq);
}

static int shm_tx_steered(struct rusty_dev *dev, struct rusty_buf **bufs, int n)
{
    struct shm *s = dev->priv;
    uint32_t head[RUSTY_MAX_QUEUES], published[RUSTY_MAX_QUEUES] = {0};
    int attached[RUSTY_MAX_QUEUES];
    for (unsigned q = 0; q < s->nq; q++) {
        head[q] = atomic_load_explicit(&s->q[q].tx->head, memory_order_relaxed);
        attached[q] = peer_attached(s, &s->q[q]);
    }
    int i;
    for (i = 0; i < n; i++) {
        struct rusty_buf *b = bufs[i];
        int q = steer_queue(b, s->nq);
        if (q < 0) {
            for (unsigned k = 0; k < s->nq; k++)
                if (!attached[k] || !ring_put(dev, s, &s->q[k], head[k], &published[k], b))
                    dev->stats.tx_dropped++;        /* a full ring: ARP is retried */
        } else if (!attached[q]) {
            dev->stats.tx_dropped++;
        } else if (!ring_put(dev, s, &s->q[q], head[q], &published[q], b)) {
            break;                      /* the caller keeps this frame and the rest */
        }
        rusty_buf_free(b);
    }
    for (unsigned q = 0; q < s->nq; q++)
        ring_publish(&s->q[q], head[q], published[q]);
    return i;
}

static int shm_tx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int n, uint64_t now_us)
{
    struct shm *s = dev->priv;
    (void)now_us;
    if (queue >= s->nq)
        return -EINVAL;
    if (s->steer && s->nq > 1)
        return shm_tx_steered(dev, bufs, n);
    struct shm_queue *sq = &s->q[queue];
    if (!peer_attached(s, sq)) {
        for (int i = 0; i < n; i++)
            rusty_buf_free(bufs[i]);
        dev->stats.tx_dropped += (uint64_t)n;
        return n;
    }
    uint32_t head = atomic_load_explicit(&sq->tx->head, memory_order_relaxed);
    uint32_t published = 0;
    int k;
    for (k = 0; k < n; k++) {
        if (!ring_put(dev, s, sq, head, &published, bufs[k]))
            break;
        rusty_buf_free(bufs[k]);
    }
    ring_publish(sq, head, published);
    return k;
}

static int shm_rx(struct rusty_dev *dev, uint16_t queue, struct rusty_buf **bufs, int max, uint64_t now_us)
{
    struct shm *s = dev->priv;
    (void)now_us;
    if (queue >= s->nq)
        return -EINVAL;
    struct shm_queue *sq = &s->q[queue];
    uint32_t tail = atomic_load_explicit(&sq->rx->tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&sq->rx->head, memory_order_acquire);
    int n = 0;
    uint32_t skipped = 0;
    /* At most one ring's worth of skipped slots per call: a peer that publishes
       a head billions of slots ahead, over garbage, must not hold us here. */
    while (n < max && skipped <= s->mask && tail != head) {
        const uint8_t *slot = sq->rx_slots + (size_t)(tail & s->mask) * SLOT_BYTES;
        struct slot_hdr sh;
        memcpy(&sh, slot, sizeof(sh));
        /* A peer wrote garbage - longer than a slot holds or a buffer takes after
           its headroom (our tx never sends more than the MTU): skip the slot. */
        if (sh.len > SLOT_DATA || sh.len > RUSTY_BUF_SIZE - RUSTY_BUF_HEADROOM) {
            dev->stats.rx_errors++;
            skipped++;
            tail++;
            continue;
        }
        struct rusty_buf *b = rusty_pool_get(dev->pool);
        if (!b)
            break;                      /* frames wait in the ring until buffers come back */
        memcpy(rusty_buf_put(b, sh.len), slot + SLOT_HDR, sh.len);
        b->queue = (uint8_t)(dev->first_queue + queue);
        if (sh.flags & SLOT_PARTIAL) {
            if (dev->offloads & RUSTY_OFF_RX_CSUM) {
                b->flags = RUSTY_BUF_CSUM_VALID;
            } else {
                b->flags = RUSTY_BUF_CSUM_PARTIAL;
                b->csum_start = sh.csum_start;
                b->csum_offset = sh.csum_offset;
                rusty_buf_complete_csum(b);
            }
        }
        bufs[n++] = b;
        tail++;
    }
    atomic_store_explicit(&sq->rx->tail, tail, memory_order_release);
    /* Awake and taking frames: a wakeup asked for before the last sleep is not
       needed any more, and the producer would pay a write() for it. */
    if (n && atomic_load_explicit(&sq->rx->wants_wakeup, memory_order_relaxed))
        atomic_store_explicit(&sq->rx->wants_wakeup, 0, memory_order_relaxed);
    return n;
}

/* The loop is about to sleep on rx_fd: drain the FIFO, ask for a wakeup, then
   look once more - a producer that published after this look sees the flag. */
static int shm_arm_wakeup(struct rusty_dev *dev, uint16_t queue)
{
    struct shm *s = dev->priv;
    if (queue >= s->nq)
        return 0;
    struct shm_queue *sq = &s->q[queue];
    char junk[64];
    while (read(sq->rx_fd, junk, sizeof(junk)) > 0)
        ;
    atomic_store(&sq->rx->wants_wakeup, 1);
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t tail = atomic_load_explicit(&sq->rx->tail, memory_order_relaxed);
    if (atomic_load_explicit(&sq->rx->head, memory_order_acquire) != tail) {
        atomic_store(&sq->rx->wants_wakeup, 0);     /* frames came first: no sleep */
        return 1;
    }
    return 0;
}

static int shm_fd(struct rusty_dev *dev, uint16_t queue)
{
    struct shm *s = dev->priv;
    return queue < s->nq ? s->q[queue].rx_fd : -1;
}

static void shm_close(struct rusty_dev *dev)
{
    struct shm *s = dev->priv;
    flock(s->fd, LOCK_EX);
    release_claims(s);
    if (!any_live_claim(s->hdr))
        unlink_all(s->shm_name, s->name, s->hdr->queues);
    close_queues(s);
    munmap(s->hdr, s->map_bytes);
    flock(s->fd, LOCK_UN);
    close(s->fd);
}

static const struct rusty_dev_ops shm_ops = {
    .driver = "shm",
    .rx_burst = shm_rx,
    .tx_burst = shm_tx,
    .fd = shm_fd,
    .arm_wakeup = shm_arm_wakeup,
    .close = shm_close,
};

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 32)
        return 0;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p <= ' ' || *p == 127)
            return 0;
    return strcmp(name, ".") && strcmp(name, "..");
}

int rusty_shm_open(const char *name, const struct rusty_dev_config *cfg, struct rusty_dev **out)
{
    if (!name || !out || !valid_name(name))
        return -EINVAL;
    if (cfg && cfg->queues > RUSTY_MAX_QUEUES)
        return -EINVAL;
    struct rusty_dev *dev;
    int err = rusty_dev_alloc(&shm_ops, cfg, sizeof(struct shm), &dev);
    if (err)
        return err;
    struct shm *s = dev->priv;
    s->fd = -1;
    s->pid = (int32_t)getpid();
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->shm_name, sizeof(s->shm_name), "/aiorusty-%s", name);
    for (int attempt = 0;; attempt++) {
        if (attempt > 8) {
            err = -EAGAIN;              /* others keep creating and removing it */
            goto fail;
        }
        err = create_file(s, cfg);
        if (err == -EEXIST) {
            err = attach_file(s);
            if (err == 1)
                continue;
            if (err == 0 && !any_live_claim(s->hdr)) {
                /* Stale: nobody alive holds it. Make a fresh one. */
                unlink_all(s->shm_name, s->name, s->hdr->queues);
                munmap(s->hdr, s->map_bytes);
                close(s->fd);
                s->fd = -1;
                continue;
            }
        }
        if (err)
            goto fail;
        break;
    }
    err = claim(s, cfg);
    if (err) {
        if (!any_live_claim(s->hdr))
            unlink_all(s->shm_name, s->name, s->hdr->queues);
        munmap(s->hdr, s->map_bytes);
        close(s->fd);                   /* drops the lock */
        goto fail;
    }
    flock(s->fd, LOCK_UN);
    dev->queues = s->nq;
    dev->first_queue = s->q[0].q;
    s->steer = cfg && (cfg->flags & RUSTY_DEVF_STEER);
    dev->offloads = (cfg && (cfg->flags & RUSTY_DEVF_NO_OFFLOAD)) ? 0
                    : RUSTY_OFF_RX_CSUM | RUSTY_OFF_TX_CSUM | RUSTY_OFF_TX_SG;
    memcpy(dev->mac, s->hdr->mac[s->side], 6);
    snprintf(dev->name, sizeof(dev->name), "%s", name);
    *out = dev;
    return 0;
fail:
    rusty_pool_destroy(&dev->own_pool);
    free(dev);
    return err;
}
