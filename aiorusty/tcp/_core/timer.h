/*
 * timer.h - the stack's timers: an indexed binary min-heap of deadlines.
 *
 * Timers are embedded in their owners (a TCP control block, an ARP entry), so
 * arming one allocates nothing. The heap is an array of pointers that always
 * has a slot for every embedded timer: an owner reserves its slots
 * (rusty_timers_reserve) before its timers exist, when TCP adds a slab of
 * control blocks, so an arm never finds the heap full. A heap rather than a hashed wheel gives the exact next
 * deadline in O(1), which is what the loop sleeps on, with O(log n) arm and
 * cancel; at the connection counts one core serves (10^4-10^5) that is a few
 * dozen compares. Time is microseconds and always passed in.
 */
#ifndef RUSTY_TIMER_H
#define RUSTY_TIMER_H

#include <stdint.h>

struct rusty_stack;
struct rusty_timer;

typedef void (*rusty_timer_fn)(struct rusty_stack *stack, struct rusty_timer *timer, uint64_t now_us);

struct rusty_timer {
    uint64_t expires_us;
    uint32_t heap_index;                /* position + 1; 0 when not armed */
    rusty_timer_fn fn;
};

struct rusty_timer_heap {
    struct rusty_timer **slots;
    uint32_t count, capacity;
};

int rusty_timers_init(struct rusty_timer_heap *heap, uint32_t capacity);
/* Make room for `capacity` armed timers (existing ones keep their places); -ENOMEM. */
int rusty_timers_reserve(struct rusty_timer_heap *heap, uint32_t capacity);
void rusty_timers_destroy(struct rusty_timer_heap *heap);

static inline void rusty_timer_init(struct rusty_timer *t, rusty_timer_fn fn)
{
    t->expires_us = 0;
    t->heap_index = 0;
    t->fn = fn;
}

static inline int rusty_timer_armed(const struct rusty_timer *t)
{
    return t->heap_index != 0;
}

/* Arm (or re-arm) a timer for an absolute time. Cannot fail when the timer's owner
   reserved its slot; -ENOSPC otherwise if the heap is full. */
int rusty_timer_arm(struct rusty_timer_heap *heap, struct rusty_timer *t, uint64_t expires_us);
void rusty_timer_cancel(struct rusty_timer_heap *heap, struct rusty_timer *t);
/* Run every timer due at now_us (callbacks may re-arm); returns how many ran. */
int rusty_timers_run(struct rusty_timer_heap *heap, struct rusty_stack *stack, uint64_t now_us);
/* Earliest deadline, or -1 when nothing is armed. */
static inline int64_t rusty_timers_next(const struct rusty_timer_heap *heap)
{
    return heap->count ? (int64_t)heap->slots[0]->expires_us : -1;
}

#endif
