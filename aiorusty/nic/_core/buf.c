/*
 * buf.c - the frame buffer pool: one allocation at start-up, a free list after.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "../../tcp/_core/checksum.h"

int rusty_pool_init(struct rusty_pool *pool, uint32_t count)
{
    memset(pool, 0, sizeof(*pool));
    if (count == 0)
        return -EINVAL;
    pool->bufs = calloc(count, sizeof(*pool->bufs));
    /* 64-byte alignment keeps every slot on its own cache lines. */
    if (posix_memalign((void **)&pool->memory, 64, (size_t)count * RUSTY_BUF_SIZE) != 0)
        pool->memory = NULL;
    if (!pool->bufs || !pool->memory) {
        free(pool->bufs);
        free(pool->memory);
        memset(pool, 0, sizeof(*pool));
        return -ENOMEM;
    }
    pool->count = count;
    for (uint32_t i = count; i-- > 0;) {
        struct rusty_buf *b = &pool->bufs[i];
        b->storage = pool->memory + (size_t)i * RUSTY_BUF_SIZE;
        b->index = i;
        b->pool = pool;
        b->next = pool->free_list;
        pool->free_list = b;
    }
    pool->free = count;
    return 0;
}

void rusty_pool_destroy(struct rusty_pool *pool)
{
    free(pool->bufs);
    free(pool->memory);
    memset(pool, 0, sizeof(*pool));
}

void rusty_buf_drop_ext(struct rusty_buf *b)
{
    if (b->ext_release)
        b->ext_release(b->ext_owner);
    b->ext = NULL;
    b->ext_len = 0;
    b->ext_release = NULL;
    b->ext_owner = NULL;
}

int rusty_buf_linearize(struct rusty_buf *b)
{
    if (!b->ext_len)
        return 0;
    if (rusty_buf_tailroom(b) < b->ext_len)
        return -EMSGSIZE;
    memcpy(rusty_buf_data(b) + b->len, b->ext, b->ext_len);
    b->len = (uint16_t)(b->len + b->ext_len);
    rusty_buf_drop_ext(b);
    return 0;
}

struct rusty_buf *rusty_buf_clone(struct rusty_pool *pool, const struct rusty_buf *src)
{
    if (src->ext_len && (uint32_t)src->off + src->len + src->ext_len > RUSTY_BUF_SIZE)
        return NULL;
    struct rusty_buf *b = rusty_pool_get(pool);
    if (!b)
        return NULL;
    b->off = src->off;
    b->len = src->len;
    b->flags = src->flags;
    b->csum_start = src->csum_start;
    b->csum_offset = src->csum_offset;
    b->queue = src->queue;
    b->stamp_us = src->stamp_us;
    memcpy(rusty_buf_data(b), rusty_buf_data(src), src->len);
    if (src->ext_len) {                 /* the clone is linear */
        memcpy(rusty_buf_data(b) + src->len, src->ext, src->ext_len);
        b->len = (uint16_t)(b->len + src->ext_len);
    }
    return b;
}

void rusty_buf_complete_csum(struct rusty_buf *b)
{
    if (!(b->flags & RUSTY_BUF_CSUM_PARTIAL))
        return;
    if (rusty_buf_linearize(b) != 0)
        return;                         /* cannot happen for frames within the MTU */
    b->flags &= (uint8_t)~RUSTY_BUF_CSUM_PARTIAL;
    if ((uint32_t)b->csum_start + b->csum_offset + 2 > b->len)
        return;                         /* malformed request: leave the frame as it is */
    uint8_t *data = rusty_buf_data(b);
    uint8_t *field = data + b->csum_start + b->csum_offset;
    /* The field holds the folded pseudo-header sum; summing over it includes it. */
    uint16_t sum = rusty_csum_fold(rusty_csum_add(0, data + b->csum_start, b->len - b->csum_start));
    /* A sum that complements to 0 is sent as 0xffff, its other ones'-complement
       form: for UDP 0 means "no checksum" (RFC 768), and TCP accepts both. */
    uint16_t csum = (uint16_t)~sum;
    if (csum == 0)
        csum = 0xffff;
    field[0] = (uint8_t)(csum >> 8);
    field[1] = (uint8_t)csum;
}

/* A big buffer: this header, then RUSTY_BIG_SIZE bytes. */
struct big {
    struct rusty_big_pool *pool;
    struct big *next;
    uint8_t data[];
};

struct rusty_big_pool {
    struct big *free_list;
    uint32_t made, count;
    uint32_t refs;                      /* the creator's, plus one per buffer out */
};

struct rusty_big_pool *rusty_big_pool_new(uint32_t count)
{
    struct rusty_big_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->count = count;
    p->refs = 1;
    return p;
}

static void big_pool_unref(struct rusty_big_pool *p)
{
    if (--p->refs)
        return;
    while (p->free_list) {
        struct big *b = p->free_list;
        p->free_list = b->next;
        free(b);
    }
    free(p);
}

void rusty_big_pool_release(struct rusty_big_pool *p)
{
    if (p)
        big_pool_unref(p);
}

int rusty_big_available(const struct rusty_big_pool *p)
{
    return p->free_list || p->made < p->count;
}

uint8_t *rusty_big_get(struct rusty_big_pool *p, void **owner)
{
    struct big *b = p->free_list;
    if (b) {
        p->free_list = b->next;
    } else {
        if (p->made >= p->count)
            return NULL;
        /* Grown on first use only (see buf.h): afterwards buffers are recycled. */
        b = malloc(sizeof(*b) + RUSTY_BIG_SIZE);
        if (!b)
            return NULL;
        b->pool = p;
        p->made++;
    }
    b->next = NULL;
    p->refs++;
    *owner = b;
    return b->data;
}

void rusty_big_release(void *owner)
{
    struct big *b = owner;
    struct rusty_big_pool *p = b->pool;
    b->next = p->free_list;
    p->free_list = b;
    big_pool_unref(p);
}
