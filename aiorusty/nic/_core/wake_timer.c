/*
 * wake_timer.c - a timerfd the loop sleeps on for deadlines finer than a
 * millisecond.
 *
 * epoll_wait counts its timeout in whole milliseconds, and Python rounds a
 * shorter timeout up, so a loop whose next timer is 300 us away sleeps a full
 * millisecond: an open-loop generator then sends late and charges the delay to
 * its latency. Before such a sleep the loop arms this timerfd at the exact
 * deadline (CLOCK_MONOTONIC, the clock of asyncio's time() and of now_us); it
 * sits in the same epoll set and ends the sleep on time.
 */
#include <errno.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "dev.h"

int rusty_wake_timer_open(void)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int rusty_wake_timer_arm(int fd, uint64_t deadline_us)
{
    /* Setting the timer also clears expirations not read yet (timerfd_create(2)),
     * so a timer that fired for an earlier sleep does not end this one. */
    struct itimerspec when = { .it_interval = { 0, 0 },
                               .it_value = { .tv_sec = (time_t)(deadline_us / 1000000u),
                                             .tv_nsec = (long)(deadline_us % 1000000u) * 1000 } };
    if (deadline_us == 0)
        when.it_value.tv_nsec = 0;      /* all zero: disarm */
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &when, NULL) < 0 ? -errno : 0;
}
