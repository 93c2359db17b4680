/*
 * payload.h - static payloads inside the core (payload.c owns them).
 *
 * A payload is reference-counted: the creator (Python's StaticPayload) holds
 * one reference and every TCP send-queue descriptor that points into it holds
 * another, so a payload released by Python while still queued stays alive
 * until its last byte is acknowledged (or the connection is dropped).
 */
#ifndef RUSTY_PAYLOAD_H
#define RUSTY_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

struct rusty_payload {
    size_t len;
    uint8_t *data;
    uint16_t *prefix;                   /* len / 2 + 1 entries */
    uint32_t refs;
};

static inline void rusty_payload_ref(struct rusty_payload *p)
{
    p->refs++;
}

/* rusty_payload_free (rusty.h) drops one reference; the last one frees. */

#endif
