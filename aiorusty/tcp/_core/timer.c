/*
 * timer.c - indexed min-heap of embedded timers (see timer.h for why a heap).
 */
#include <errno.h>
#include <stdlib.h>

#include "timer.h"

int rusty_timers_init(struct rusty_timer_heap *heap, uint32_t capacity)
{
    heap->slots = calloc(capacity ? capacity : 1, sizeof(*heap->slots));
    heap->count = 0;
    heap->capacity = capacity;
    return heap->slots ? 0 : -ENOMEM;
}

int rusty_timers_reserve(struct rusty_timer_heap *heap, uint32_t capacity)
{
    if (capacity <= heap->capacity)
        return 0;
    /* Grow by half again at least, so reserving a slab at a time reallocates
       O(log n) times, not once per slab. */
    uint64_t want = (uint64_t)heap->capacity + heap->capacity / 2;
    if (want < capacity || want > UINT32_MAX)
        want = capacity;
    struct rusty_timer **slots = realloc(heap->slots, (size_t)want * sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    heap->slots = slots;
    heap->capacity = (uint32_t)want;
    return 0;
}

void rusty_timers_destroy(struct rusty_timer_heap *heap)
{
    free(heap->slots);
    heap->slots = NULL;
    heap->count = heap->capacity = 0;
}

static void place(struct rusty_timer_heap *heap, uint32_t i, struct rusty_timer *t)
{
    heap->slots[i] = t;
    t->heap_index = i + 1;
}

static void sift_up(struct rusty_timer_heap *heap, uint32_t i)
{
    struct rusty_timer *t = heap->slots[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (heap->slots[parent]->expires_us <= t->expires_us)
            break;
        place(heap, i, heap->slots[parent]);
        i = parent;
    }
    place(heap, i, t);
}

static void sift_down(struct rusty_timer_heap *heap, uint32_t i)
{
    struct rusty_timer *t = heap->slots[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= heap->count)
            break;
        if (child + 1 < heap->count && heap->slots[child + 1]->expires_us < heap->slots[child]->expires_us)
            child++;
        if (t->expires_us <= heap->slots[child]->expires_us)
            break;
        place(heap, i, heap->slots[child]);
        i = child;
    }
    place(heap, i, t);
}

int rusty_timer_arm(struct rusty_timer_heap *heap, struct rusty_timer *t, uint64_t expires_us)
{
    if (t->heap_index) {
        uint64_t old = t->expires_us;
        t->expires_us = expires_us;
        if (expires_us < old)
            sift_up(heap, t->heap_index - 1);
        else
            sift_down(heap, t->heap_index - 1);
        return 0;
    }
    if (heap->count == heap->capacity)
        return -ENOSPC;
    t->expires_us = expires_us;
    place(heap, heap->count++, t);
    sift_up(heap, heap->count - 1);
    return 0;
}

void rusty_timer_cancel(struct rusty_timer_heap *heap, struct rusty_timer *t)
{
    if (!t->heap_index)
        return;
    uint32_t i = t->heap_index - 1;
    t->heap_index = 0;
    struct rusty_timer *last = heap->slots[--heap->count];
    if (i == heap->count)
        return;
    place(heap, i, last);
    if (i > 0 && heap->slots[(i - 1) / 2]->expires_us > last->expires_us)
        sift_up(heap, i);
    else
        sift_down(heap, i);
}

int rusty_timers_run(struct rusty_timer_heap *heap, struct rusty_stack *stack, uint64_t now_us)
{
    int ran = 0;
    while (heap->count && heap->slots[0]->expires_us <= now_us) {
        struct rusty_timer *t = heap->slots[0];
        rusty_timer_cancel(heap, t);
        t->fn(stack, t, now_us);
        ran++;
    }
    return ran;
}
