/*
 * fuzz_input.h - reading a libFuzzer input as a stream of small fields.
 *
 * Every harness decodes its input as a script; a field read past the end
 * comes back as zero bytes, so every input is a valid (possibly short) script
 * and the fuzzer never wastes runs on inputs a parser rejects.
 */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fin {
    const uint8_t *p;
    size_t left;
};

static inline int fin_more(const struct fin *in)
{
    return in->left > 0;
}

static inline uint8_t fin_u8(struct fin *in)
{
    if (!in->left)
        return 0;
    in->left--;
    return *in->p++;
}

static inline uint16_t fin_u16(struct fin *in)
{
    uint16_t lo = fin_u8(in);
    return (uint16_t)(lo | (uint16_t)fin_u8(in) << 8);
}

static inline uint32_t fin_u32(struct fin *in)
{
    uint32_t lo = fin_u16(in);
    return lo | (uint32_t)fin_u16(in) << 16;
}

/* Copy up to n bytes into out, zero-filling what the input lacks. */
static inline void fin_bytes(struct fin *in, uint8_t *out, size_t n)
{
    size_t k = n < in->left ? n : in->left;
    memcpy(out, in->p, k);
    memset(out + k, 0, n - k);
    in->p += k;
    in->left -= k;
}

#endif
