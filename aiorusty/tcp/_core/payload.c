/*
 * payload.c - static payloads with precomputed checksums (Rusty's trick).
 *
 * A static payload (a file the server sends again and again) keeps a prefix
 * table of ones'-complement partial sums, one 16-bit entry per 2 bytes:
 *   prefix[i] = sum of data[0 .. 2i) as big-endian 16-bit words.
 * The sum is linear in the bytes (each byte weighs 256 at an even offset and
 * 1 at an odd one), so the sum of any range [a, b) is prefix(b) - prefix(a)
 * in ones'-complement arithmetic, read in O(1); a range starting at an odd
 * offset comes out byte-swapped relative to its own start (RFC 1071 2(B)) and
 * is swapped back. A TCP segment carrying payload bytes [a, b) then needs only
 * its header and this value to be checksummed: no pass over the payload.
 *
 * Memory: the table is as large as the payload (2 bytes per 2 bytes).
 * Lifetime: reference-counted (payload.h); rusty_payload_free drops one
 * reference, so TCP send queues can hold a payload its creator released.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rusty.h"
#include "checksum.h"
#include "payload.h"

int rusty_payload_new(const uint8_t *data, size_t len, struct rusty_payload **out)
{
    struct rusty_payload *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->len = len;
    p->refs = 1;
    p->data = malloc(len ? len : 1);
    p->prefix = malloc((len / 2 + 1) * sizeof(uint16_t));
    if (!p->data || !p->prefix) {
        rusty_payload_free(p);
        return -ENOMEM;
    }
    memcpy(p->data, data, len);
    uint64_t acc = 0;
    p->prefix[0] = 0;
    for (size_t i = 0; 2 * i + 2 <= len; i++) {
        acc += ((uint32_t)data[2 * i] << 8) | data[2 * i + 1];
        p->prefix[i + 1] = rusty_csum_fold(acc);
    }
    *out = p;
    return 0;
}

void rusty_payload_free(struct rusty_payload *p)
{
    if (!p || --p->refs)
        return;
    free(p->data);
    free(p->prefix);
    free(p);
}

size_t rusty_payload_len(const struct rusty_payload *p)
{
    return p->len;
}

const uint8_t *rusty_payload_data(const struct rusty_payload *p)
{
    return p->data;
}

/* Sum of data[0, k) in absolute alignment (bytes at even offsets are high bytes). */
static uint32_t prefix_at(const struct rusty_payload *p, size_t k)
{
    uint32_t s = p->prefix[k / 2];
    if (k & 1)
        s += (uint32_t)p->data[k - 1] << 8;
    return s;
}

uint16_t rusty_payload_sum(const struct rusty_payload *p, size_t off, size_t len)
{
    if (off > p->len || len > p->len - off)
        return 0;
    /* Ones'-complement subtraction: add the complement. */
    uint64_t acc = (uint64_t)prefix_at(p, off + len) + (uint16_t)~rusty_csum_fold(prefix_at(p, off));
    uint16_t sum = rusty_csum_fold(acc);
    if (off & 1)
        sum = (uint16_t)((sum << 8) | (sum >> 8));
    return sum;
}
