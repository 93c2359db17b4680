/*
 * checksum.c - RFC 1071 ones'-complement sums, read in 32-bit words.
 */
#include <string.h>

#include "checksum.h"

uint64_t rusty_csum_add(uint64_t acc, const void *data, size_t len)
{
    const uint8_t *p = data;
    /* Big-endian 32-bit words: the ones'-complement sum is byte-order independent
       per RFC 1071 2(B), but summing in network order means no swap at the end. */
    while (len >= 4) {
        acc += ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        acc += ((uint32_t)p[0] << 8) | p[1];
        p += 2;
        len -= 2;
    }
    if (len)
        acc += (uint32_t)p[0] << 8;
    return acc;
}

uint16_t rusty_csum_fold(uint64_t acc)
{
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    return (uint16_t)acc;
}

uint64_t rusty_csum_combine(uint64_t acc, uint16_t partial, size_t offset)
{
    if (offset & 1)
        partial = (uint16_t)((partial << 8) | (partial >> 8));
    return acc + partial;
}

uint64_t rusty_csum_pseudo_ipv4(uint32_t src, uint32_t dst, uint8_t proto, uint16_t l4_len)
{
    return (uint64_t)(src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + l4_len;
}
