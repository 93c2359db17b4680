/*
 * checksum.h - the Internet checksum (RFC 1071) with a 64-bit accumulator.
 *
 * Sums are kept unfolded in a uint64_t while data is added (32 bits at a
 * time, so no carry is lost for any realistic length) and folded to 16 bits
 * once at the end. Partial sums of byte ranges combine with rusty_csum_combine,
 * which is what lets a static payload's checksum be precomputed.
 */
#ifndef RUSTY_CHECKSUM_H
#define RUSTY_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Add `len` bytes to an accumulator; the data starts at an even offset of the summed range. */
uint64_t rusty_csum_add(uint64_t acc, const void *data, size_t len);
/* Fold to 16 bits (ones'-complement sum, not yet inverted). */
uint16_t rusty_csum_fold(uint64_t acc);
/* Add a partial sum of a range that starts at `offset` within the summed data:
 * an odd offset swaps the bytes of that sum (RFC 1071 2(B)). */
uint64_t rusty_csum_combine(uint64_t acc, uint16_t partial, size_t offset);
/* The TCP/UDP pseudo-header sum (RFC 768, RFC 9293 3.1) for IPv4. */
uint64_t rusty_csum_pseudo_ipv4(uint32_t src, uint32_t dst, uint8_t proto, uint16_t l4_len);
/* Checksum field value for a complete header or segment: ~fold(sum). */
static inline uint16_t rusty_csum_finish(uint64_t acc)
{
    return (uint16_t)~rusty_csum_fold(acc);
}

#endif
