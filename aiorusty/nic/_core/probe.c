/*
 * probe.c - what this machine lets two cores move through a ring: the ceiling
 * of an shm link, measured beside a benchmark.
 *
 * A producer thread pinned to one core copies frames from a 1 MiB source into a
 * ring laid out like the shm link's default (512 slots of 2 KiB); a consumer
 * pinned to another copies them out into a 1 MiB destination. That is the shm
 * data path with the stack taken away: every frame's cache lines cross from one
 * core to the other. On this VM the rate changes over minutes (seen here: 180-280
 * Gbps, then 30-47, apparently after sustained load on both cores), and an shm
 * bulk run moves with it, so the bench records it before each run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dev.h"

#define PROBE_SLOTS 512u
#define PROBE_SLOT_BYTES 2048u
#define PROBE_SPAN (1u << 20)           /* bytes walked on each side, as a 1 MiB response */

struct probe {
    _Alignas(64) _Atomic uint32_t head;     /* written by the producer */
    _Alignas(64) _Atomic uint32_t tail;     /* written by the consumer */
    _Alignas(64) _Atomic int stop;
    uint8_t *ring;
    uint32_t frame;
    int cpu_tx, cpu_rx;
    int pin_error;
    uint64_t frames;                    /* consumed; read after the join */
};

static int pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* A side's start: pinned to its core with its 1 MiB span, or NULL (and the run stopped). */
static uint8_t *side_begin(struct probe *p, int cpu)
{
    uint8_t *span = NULL;
    if (pin_self(cpu))
        p->pin_error = 1;
    else
        span = malloc(PROBE_SPAN);
    if (!span)
        atomic_store(&p->stop, 1);
    return span;
}

static void *producer(void *arg)
{
    struct probe *p = arg;
    uint8_t *src = side_begin(p, p->cpu_tx);
    if (!src)
        return NULL;
    memset(src, 0x5a, PROBE_SPAN);
    uint32_t off = 0;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        uint32_t h = atomic_load_explicit(&p->head, memory_order_relaxed);
        if (h - atomic_load_explicit(&p->tail, memory_order_acquire) >= PROBE_SLOTS)
            continue;
        memcpy(p->ring + (size_t)(h % PROBE_SLOTS) * PROBE_SLOT_BYTES, src + off, p->frame);
        off = off + 2 * p->frame <= PROBE_SPAN ? off + p->frame : 0;
        atomic_store_explicit(&p->head, h + 1, memory_order_release);
    }
    free(src);
    return NULL;
}

static void *consumer(void *arg)
{
    struct probe *p = arg;
    uint8_t *dst = side_begin(p, p->cpu_rx);
    if (!dst)
        return NULL;
    uint32_t off = 0;
    uint64_t frames = 0;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        uint32_t t = atomic_load_explicit(&p->tail, memory_order_relaxed);
        if (atomic_load_explicit(&p->head, memory_order_acquire) == t)
            continue;
        memcpy(dst + off, p->ring + (size_t)(t % PROBE_SLOTS) * PROBE_SLOT_BYTES, p->frame);
        off = off + 2 * p->frame <= PROBE_SPAN ? off + p->frame : 0;
        atomic_store_explicit(&p->tail, t + 1, memory_order_release);
        frames++;
    }
    p->frames = frames;
    free(dst);
    return NULL;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double rusty_probe_xcore_gbps(int cpu_tx, int cpu_rx, uint32_t frame_bytes, uint64_t duration_us)
{
    if (cpu_tx < 0 || cpu_rx < 0 || cpu_tx >= CPU_SETSIZE || cpu_rx >= CPU_SETSIZE ||
            frame_bytes == 0 || frame_bytes > PROBE_SLOT_BYTES || duration_us == 0)
        return -EINVAL;
    struct probe *p = aligned_alloc(64, sizeof(*p));
    uint8_t *ring = aligned_alloc(4096, (size_t)PROBE_SLOTS * PROBE_SLOT_BYTES);
    if (!p || !ring) {
        free(p);
        free(ring);
        return -ENOMEM;
    }
    memset(p, 0, sizeof(*p));
    memset(ring, 0, (size_t)PROBE_SLOTS * PROBE_SLOT_BYTES);
    p->ring = ring;
    p->frame = frame_bytes;
    p->cpu_tx = cpu_tx;
    p->cpu_rx = cpu_rx;
    pthread_t tx, rx;
    if (pthread_create(&rx, NULL, consumer, p)) {
        free(ring);
        free(p);
        return -EAGAIN;
    }
    if (pthread_create(&tx, NULL, producer, p)) {
        atomic_store(&p->stop, 1);
        pthread_join(rx, NULL);
        free(ring);
        free(p);
        return -EAGAIN;
    }
    uint64_t t0 = monotonic_ns();
    struct timespec nap = { .tv_sec = (time_t)(duration_us / 1000000u),
                            .tv_nsec = (long)(duration_us % 1000000u) * 1000 };
    while (nanosleep(&nap, &nap) == -1 && errno == EINTR)
        ;
    atomic_store(&p->stop, 1);
    pthread_join(tx, NULL);
    pthread_join(rx, NULL);
    uint64_t elapsed = monotonic_ns() - t0;
    double gbps = p->pin_error ? -EINVAL : (double)p->frames * frame_bytes * 8.0 / (double)elapsed;
    free(ring);
    free(p);
    return gbps;
}
