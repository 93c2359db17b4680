/*
 * buf.h - frame buffers and the fixed pool they come from.
 *
 * Every frame the stack touches lives in a rusty_buf taken from a pool sized
 * when its device opens; nothing on the data path calls malloc. A buffer is a
 * 2 KiB slot with headroom so headers can be pushed in front of a payload
 * (like an sk_buff): reserve(), then put() the payload, then push() headers.
 *
 * A transmit buffer may also carry an external tail (scatter-gather): `ext_len`
 * bytes at `ext` that follow the frame's linear part without being copied into
 * it - a static payload's bytes, kept alive by a reference the buffer holds
 * (ext_release drops it when the buffer is freed). Only devices that say
 * RUSTY_OFF_TX_SG get such frames; every other consumer sees them made linear
 * first (rusty_buf_linearize: rusty_dev_tx, local delivery, clones).
 *
 * Owns: buffer layout, the pool, checksum-offload metadata. Not: what frames mean.
 */
#ifndef RUSTY_BUF_H
#define RUSTY_BUF_H

#include <stdint.h>
#include <stddef.h>

#define RUSTY_BUF_SIZE 2048u
#define RUSTY_BUF_HEADROOM 128u         /* virtio-net header + Ethernet + IPv4 + TCP with options */

/* flags */
#define RUSTY_BUF_CSUM_PARTIAL 1u       /* tx: L4 checksum field holds the pseudo-header sum; finish it
                                           over [csum_start, end) and store at csum_start + csum_offset */
#define RUSTY_BUF_CSUM_VALID 2u         /* rx: the device verified the L4 checksum */
#define RUSTY_BUF_LOCAL 4u              /* rx: sent by this stack to its own address (ipv4.c local
                                           delivery), never seen on a wire */

struct rusty_pool;

struct rusty_buf {
    uint8_t *storage;                   /* RUSTY_BUF_SIZE bytes */
    uint16_t off;                       /* frame start within storage */
    uint16_t len;                       /* frame length */
    uint16_t csum_start;                /* relative to the frame start */
    uint16_t csum_offset;               /* relative to csum_start */
    uint8_t flags;
    uint8_t queue;                      /* rx: queue it arrived on */
    uint16_t l3_off;                    /* rx: set by the stack while parsing */
    uint32_t index;                     /* slot in the pool */
    uint64_t stamp_us;                  /* wrappers may stamp (delay line) */
    struct rusty_pool *pool;
    struct rusty_buf *next;             /* free list and queues */
    /* tx only: the external tail (see above); ext_len 0 when there is none */
    uint16_t gso_size;                  /* tx, RUSTY_OFF_TSO devices: a TCP frame the device cuts
                                           into segments of this many payload bytes; 0: none */
    const uint8_t *ext;
    uint16_t ext_len;
    void (*ext_release)(void *owner);
    void *ext_owner;
};

struct rusty_pool {
    struct rusty_buf *bufs;
    uint8_t *memory;
    struct rusty_buf *free_list;
    uint32_t count;
    uint32_t free;
    uint64_t exhausted;                 /* get() that found the pool empty */
};

int rusty_pool_init(struct rusty_pool *pool, uint32_t count);
void rusty_pool_destroy(struct rusty_pool *pool);

static inline struct rusty_buf *rusty_pool_get(struct rusty_pool *pool)
{
    struct rusty_buf *b = pool->free_list;
    if (!b) {
        pool->exhausted++;
        return NULL;
    }
    pool->free_list = b->next;
    pool->free--;
    b->next = NULL;
    b->off = RUSTY_BUF_HEADROOM;
    b->len = 0;
    b->flags = 0;
    b->queue = 0;
    b->l3_off = 0;
    b->stamp_us = 0;
    b->gso_size = 0;
    return b;
}

void rusty_buf_drop_ext(struct rusty_buf *b);

static inline void rusty_buf_free(struct rusty_buf *b)
{
    if (b->ext_len)
        rusty_buf_drop_ext(b);
    struct rusty_pool *pool = b->pool;
    b->next = pool->free_list;
    pool->free_list = b;
    pool->free++;
}

static inline uint8_t *rusty_buf_data(const struct rusty_buf *b)
{
    return b->storage + b->off;
}

/* Prepend n bytes (a header); NULL when the headroom is used up. */
static inline uint8_t *rusty_buf_push(struct rusty_buf *b, uint16_t n)
{
    if (b->off < n)
        return NULL;
    b->off -= n;
    b->len += n;
    return b->storage + b->off;
}

/* Remove n bytes from the front (a parsed header); NULL when shorter. */
static inline uint8_t *rusty_buf_pull(struct rusty_buf *b, uint16_t n)
{
    if (b->len < n)
        return NULL;
    b->off += n;
    b->len -= n;
    return b->storage + b->off;
}

/* Append n bytes at the tail; NULL when they do not fit. */
static inline uint8_t *rusty_buf_put(struct rusty_buf *b, uint16_t n)
{
    uint8_t *tail = b->storage + b->off + b->len;
    if ((uint32_t)b->off + b->len + n > RUSTY_BUF_SIZE)
        return NULL;
    b->len += n;
    return tail;
}

static inline uint16_t rusty_buf_tailroom(const struct rusty_buf *b)
{
    return (uint16_t)(RUSTY_BUF_SIZE - b->off - b->len);
}

/* The whole frame's length: the linear part and the external tail. */
static inline uint32_t rusty_buf_frame_len(const struct rusty_buf *b)
{
    return (uint32_t)b->len + b->ext_len;
}

/* Attach `len` external bytes after the linear part; `release(owner)` runs when the
   buffer is freed or made linear (the caller took the reference it drops). */
static inline void rusty_buf_set_ext(struct rusty_buf *b, const uint8_t *data, uint16_t len,
                                     void (*release)(void *owner), void *owner)
{
    b->ext = data;
    b->ext_len = len;
    b->ext_release = release;
    b->ext_owner = owner;
}

/* Copy the external tail into the linear part and drop it: 0, or -EMSGSIZE when it
   does not fit (the buffer is then unchanged). */
int rusty_buf_linearize(struct rusty_buf *b);

/* Copy a whole frame into a fresh buffer of `pool`; NULL when exhausted or too big. */
struct rusty_buf *rusty_buf_clone(struct rusty_pool *pool, const struct rusty_buf *src);

/* Finish a RUSTY_BUF_CSUM_PARTIAL checksum in software. */
void rusty_buf_complete_csum(struct rusty_buf *b);

/*
 * Large transmit buffers: where a TSO frame's payload is gathered when it is
 * not one static payload range (bytes the app wrote, in a TCP send ring). A
 * frame takes one as its external tail (rusty_buf_set_ext with
 * rusty_big_release as release and the buffer as owner), so the frame owns a
 * copy of its bytes for as long as any queue or wrapper holds it: the send
 * ring may grow, be acknowledged and overwritten, or go back to tcp_mem
 * meanwhile. The pool is reference-counted by its user and by every buffer
 * out, so frames freed after their stack (a delay line in a wrapper device)
 * stay safe. Buffers are allocated when first needed, up to `count`, then
 * recycled: a stack that never sends a large write holds none.
 */
#define RUSTY_BIG_SIZE 65536u

struct rusty_big_pool;

/* A pool of at most `count` buffers; NULL when out of memory. */
struct rusty_big_pool *rusty_big_pool_new(uint32_t count);
/* Drop the creator's reference: the memory goes when the last buffer comes back. */
void rusty_big_pool_release(struct rusty_big_pool *p);
/* Whether a get() would succeed without allocating beyond the cap. */
int rusty_big_available(const struct rusty_big_pool *p);
/* A buffer of RUSTY_BIG_SIZE bytes and its owner handle, or NULL when all are out. */
uint8_t *rusty_big_get(struct rusty_big_pool *p, void **owner);
/* ext_release of a frame carrying a big buffer. */
void rusty_big_release(void *owner);

#endif
