/*
 * tcp_sndq.c - the TCP send queue: bytes in a ring and ranges of static payloads.
 *
 * Owns: the order of what a connection sends. The queue is a small fixed
 * ring of descriptors (struct snd_chunk, TCP_SND_CHUNKS per connection) over
 * the sequence space [sbuf_seq, sbuf_seq + slen): a descriptor is either a run
 * of bytes copied into the connection's send ring (adjacent runs merge, so a
 * byte-only connection uses one descriptor) or a reference to a range of a
 * static payload (DESIGN 4, "zero-copy": the bytes are never copied into a
 * send buffer, and the payload is reference-counted so it outlives its
 * creator while queued). Gathering a segment's bytes from the queue into a
 * frame, and the segment's payload checksum from the payloads' prefix tables
 * (Rusty's precomputed checksums: no pass over payload bytes).
 * Not: when to send (tcp_out.c), acknowledgement processing (tcp_in.c calls
 * tcp_sndq_advance), the user calls (tcp.c), the ring's memory (tcp_buf.c:
 * it grows as bytes are pushed and goes back when the last is acknowledged).
 *
 * Call chains: rusty_tcp_send / rusty_tcp_send_payload -> tcp_sndq_push_*;
 *              tcp_out.c xmit -> tcp_sndq_copy (into a frame, or a big buffer for TSO);
 *              tcp_in.c ack_process -> tcp_sndq_advance;  tcp.c drop/free -> tcp_sndq_clear
 */
#include <string.h>

#include "checksum.h"
#include "payload.h"
#include "tcp.h"

static struct snd_chunk *chunk_at(struct rusty_tcb *t, uint32_t i)
{
    return &t->chunks[(t->chead + i) % TCP_SND_CHUNKS];
}

static struct snd_chunk *tail_chunk(struct rusty_tcb *t)
{
    return t->ccount ? chunk_at(t, t->ccount - 1u) : NULL;
}

static struct snd_chunk *new_chunk(struct rusty_tcb *t)
{
    if (t->ccount == TCP_SND_CHUNKS)
        return NULL;
    struct snd_chunk *c = chunk_at(t, t->ccount);
    t->ccount++;
    c->p = NULL;
    c->off = 0;
    c->len = 0;
    return c;
}

uint32_t tcp_sndq_ring_space(const struct rusty_tcb *t)
{
    return t->sndbuf_max > t->sring ? t->sndbuf_max - t->sring : 0;
}

uint32_t tcp_sndq_payload_limit(const struct rusty_tcb *t)
{
    uint64_t lim = (uint64_t)t->sndbuf_max * 4;
    if (lim < TCP_PAYLOAD_QUEUE_MIN)
        lim = TCP_PAYLOAD_QUEUE_MIN;
    if (lim > INT32_MAX)
        lim = INT32_MAX;
    return (uint32_t)lim;
}

uint32_t tcp_sndq_push_bytes(struct rusty_stack *s, struct rusty_tcb *t, const uint8_t *data, uint32_t len)
{
    uint32_t space = tcp_sndq_ring_space(t);
    if (len > space)
        len = space;
    if (!len)
        return 0;
    struct snd_chunk *c = tail_chunk(t);
    if (!c || c->p)
        c = new_chunk(t);
    if (!c)
        return 0;                       /* every descriptor holds a payload range */
    uint32_t cap = tcp_snd_reserve(s, t, t->sring + len);
    if (len > cap - t->sring)
        len = cap - t->sring;           /* tcp_mem allowed less */
    if (!len) {
        if (!c->len)
            t->ccount--;                /* the descriptor just taken stays free */
        return 0;
    }
    uint32_t tail = (t->shead + t->sring) % t->scap;
    uint32_t first = t->scap - tail < len ? t->scap - tail : len;
    memcpy(t->sbuf + tail, data, first);
    memcpy(t->sbuf, data + first, len - first);
    c->len += len;
    t->sring += len;
    t->slen += len;
    return len;
}

uint32_t tcp_sndq_push_payload(struct rusty_tcb *t, struct rusty_payload *p, size_t off, uint32_t len)
{
    uint32_t lim = tcp_sndq_payload_limit(t);
    uint32_t room = t->spay < lim ? lim - t->spay : 0;
    if (len > room)
        len = room;
    if (!len)
        return 0;
    struct snd_chunk *c = tail_chunk(t);
    if (c && c->p == p && c->off + c->len == off) {
        c->len += len;                  /* the rest of a range queued by an earlier partial call */
    } else {
        c = new_chunk(t);
        if (!c)
            return 0;
        rusty_payload_ref(p);
        c->p = p;
        c->off = off;
        c->len = len;
    }
    t->spay += len;
    t->slen += len;
    return len;
}

void tcp_sndq_advance(struct rusty_stack *s, struct rusty_tcb *t, uint32_t n)
{
    if (n > t->slen)
        n = t->slen;
    t->slen -= n;
    t->sbuf_seq += n;
    while (n && t->ccount) {
        struct snd_chunk *c = chunk_at(t, 0);
        uint32_t k = n < c->len ? n : c->len;
        if (c->p) {
            c->off += k;
            t->spay -= k;
        } else {
            t->shead = (t->shead + k) % t->scap;
            t->sring -= k;
        }
        c->len -= k;
        n -= k;
        if (!c->len) {
            rusty_payload_free(c->p);   /* drops the queue's reference (NULL: no-op) */
            c->p = NULL;
            t->chead = (uint8_t)((t->chead + 1) % TCP_SND_CHUNKS);
            t->ccount--;
        }
    }
    if (!t->sring)
        tcp_snd_release(s, t);
}

void tcp_sndq_clear(struct rusty_stack *s, struct rusty_tcb *t)
{
    while (t->ccount) {
        struct snd_chunk *c = chunk_at(t, 0);
        rusty_payload_free(c->p);
        c->p = NULL;
        t->chead = (uint8_t)((t->chead + 1) % TCP_SND_CHUNKS);
        t->ccount--;
    }
    t->chead = 0;
    t->slen = t->sring = t->spay = 0;
    tcp_snd_release(s, t);
}

/* Where the queue's byte at seq lies when it is in a static payload range: its
   address, *run the bytes of that range from there on, *owner its payload;
   NULL when it is in the ring. What a scatter-gather device sends from where
   it lies, and how far one TSO frame can reach. */
const uint8_t *tcp_sndq_payload_at(struct rusty_tcb *t, uint32_t seq, uint32_t *run, struct rusty_payload **owner)
{
    if (!t->spay)
        return NULL;
    uint32_t skip = seq_diff(seq, t->sbuf_seq);
    for (uint32_t i = 0; i < t->ccount; i++) {
        const struct snd_chunk *c = chunk_at(t, i);
        if (skip >= c->len) {
            skip -= c->len;
            continue;
        }
        if (!c->p)
            return NULL;
        *run = c->len - skip;
        *owner = c->p;
        return c->p->data + c->off + skip;
    }
    return NULL;
}

/* How many of the queue's bytes from seq on lie in the send ring in one run (0
   when seq is in a static payload range): how far one TSO frame gathered from
   the ring reaches before a payload range, which goes by reference instead. */
uint32_t tcp_sndq_ring_run(struct rusty_tcb *t, uint32_t seq)
{
    uint32_t skip = seq_diff(seq, t->sbuf_seq);
    for (uint32_t i = 0; i < t->ccount; i++) {
        const struct snd_chunk *c = chunk_at(t, i);
        if (skip >= c->len) {
            skip -= c->len;
            continue;
        }
        return c->p ? 0 : c->len - skip;
    }
    return 0;
}

/* Copy [seq, seq + len) of the queue to `out`. When the queue holds payload
   ranges, also return 1 and the (unfolded) ones'-complement sum of those
   bytes as placed at `out` (an even offset of the TCP segment, since TCP
   headers are multiples of 4 bytes): payload pieces come from the prefix
   tables, ring pieces are summed as they are copied. Otherwise (or when the
   caller does not want the sum: its device finishes checksums itself) return
   0 and leave the sum to the device (CSUM_PARTIAL). */
int tcp_sndq_copy(struct rusty_tcb *t, uint32_t seq, uint32_t len, uint8_t *out, uint64_t *sum, int want_sum)
{
    int summing = want_sum && t->spay != 0;
    uint64_t acc = 0;
    uint32_t skip = seq_diff(seq, t->sbuf_seq);   /* queue offset of the first byte */
    uint32_t ring_off = 0;                          /* ring bytes before the current chunk */
    uint32_t done = 0;
    for (uint32_t i = 0; i < t->ccount && done < len; i++) {
        struct snd_chunk *c = chunk_at(t, i);
        if (skip >= c->len) {
            skip -= c->len;
            if (!c->p)
                ring_off += c->len;
            continue;
        }
        uint32_t n = c->len - skip;
        if (n > len - done)
            n = len - done;
        uint8_t *dst = out + done;
        if (c->p) {
            memcpy(dst, c->p->data + c->off + skip, n);
            if (summing)
                acc = rusty_csum_combine(acc, rusty_payload_sum(c->p, c->off + skip, n), done);
        } else {
            uint32_t pos = (t->shead + ring_off + skip) % t->scap;
            uint32_t first = t->scap - pos < n ? t->scap - pos : n;
            memcpy(dst, t->sbuf + pos, first);
            memcpy(dst + first, t->sbuf, n - first);
            ring_off += c->len;
            if (summing)
                acc = rusty_csum_combine(acc, rusty_csum_fold(rusty_csum_add(0, dst, n)), done);
        }
        skip = 0;
        done += n;
    }
    *sum = acc;
    return summing;
}
