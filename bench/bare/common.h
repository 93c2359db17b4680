/*
 * common.h - shared by the bare C programs of bench/nic_frames.py: pinning,
 * a clock, and a test frame (Ethernet + IPv4 + UDP, valid checksums).
 * These programs are the "no driver" baseline: the same syscalls or ring walk
 * the aiorusty drivers do, without the device layer and frame pool.
 */
#ifndef BARE_COMMON_H
#define BARE_COMMON_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of this process (user + system): the figure preemption by other
 * work on a shared machine does not inflate. */
static inline double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        perror("sched_setaffinity");
}

static uint16_t sum16(const uint8_t *p, size_t n, uint32_t acc)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        acc += (uint32_t)p[n - 1] << 8;
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)acc;
}

/* A UDP frame of `len` bytes (>= 42) from 10.254.0.1:9 to 10.254.0.2:9. */
static inline void make_frame(uint8_t *f, size_t len, const uint8_t dst[6])
{
    static const uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
    memset(f, 0, len);
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x08;
    uint8_t *ip = f + 14, *udp = ip + 20;
    uint16_t iplen = (uint16_t)(len - 14), udplen = (uint16_t)(len - 34);
    ip[0] = 0x45;
    ip[2] = (uint8_t)(iplen >> 8), ip[3] = (uint8_t)iplen;
    ip[8] = 64, ip[9] = 17;
    ip[12] = 10, ip[13] = 254, ip[14] = 0, ip[15] = 1;
    ip[16] = 10, ip[17] = 254, ip[18] = 0, ip[19] = 2;
    uint16_t c = (uint16_t)~sum16(ip, 20, 0);
    ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
    udp[1] = 9, udp[3] = 9;
    udp[4] = (uint8_t)(udplen >> 8), udp[5] = (uint8_t)udplen;
    uint32_t pseudo = (10 << 8 | 254) * 2u + 1u + 2u + 17u + udplen;
    c = (uint16_t)~sum16(udp, udplen, pseudo);
    udp[6] = (uint8_t)(c >> 8), udp[7] = (uint8_t)(c ? c : 0xffff);
}

static inline int parse_mac(const char *s, uint8_t mac[6])
{
    unsigned m[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)m[i];
    return 0;
}

#endif
