/*
 * iface.c - an interface's addresses: its first one (rusty_stack_add_iface)
 * and the secondary addresses rusty_stack_add_address gives it, and which
 * interface owns an address.
 *
 * Owns: the per-interface array of secondary addresses (a fixed part of
 * struct rusty_iface, so adding one allocates nothing), kept in ascending
 * order, and the lookups every layer makes through rusty_iface_by_ip and
 * rusty_iface_has_ip. Not: what ARP, IPv4 and the transports do with an
 * address once it is ours (arp.c replies for each, ipv4.c accepts datagrams
 * to each, tcp.c and udp.c bind and connect from each).
 *
 * Call chain: rusty_stack_add_address -> rusty_arp_announce -> rusty_stack_flush
 *             rusty_ipv4_input, rusty_ipv4_output, tcp/udp bind -> rusty_iface_by_ip
 *             rusty_arp_input -> rusty_iface_has_ip
 *
 * Why: one address reaches one destination port from at most the ephemeral
 * port range (16k ports); a load generator holding 100k connections to one
 * server needs several source addresses, as Linux gives with `ip addr add`.
 * Secondary addresses share the first one's subnet (RFC 1122 3.3.4.1 calls
 * this a multihomed host with several addresses on one interface), so routing
 * (ipv4.c), the ARP subnet check and the directed broadcast stay the first
 * address's. rusty_iface_by_ip runs per received datagram: the first
 * addresses are compared before any secondary, and an interface's secondary
 * addresses are binary-searched after a bounds check, so a stack without any
 * pays nothing and one with 255 pays eight comparisons at most.
 */
#include <errno.h>
#include <string.h>

#include "stack.h"

static int has_secondary(const struct rusty_iface *ifc, uint32_t ip)
{
    uint32_t lo = 0, hi = ifc->n_addrs;
    if (!hi || ip < ifc->addrs[0] || ip > ifc->addrs[hi - 1])
        return 0;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (ifc->addrs[mid] == ip)
            return 1;
        if (ifc->addrs[mid] < ip)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

int rusty_iface_has_ip(const struct rusty_iface *ifc, uint32_t ip)
{
    return ip == ifc->ip || has_secondary(ifc, ip);
}

struct rusty_iface *rusty_iface_by_ip(struct rusty_stack *s, uint32_t ip)
{
    for (uint8_t i = 0; i < s->n_ifaces; i++)
        if (s->ifaces[i].ip == ip)
            return &s->ifaces[i];
    for (uint8_t i = 0; i < s->n_ifaces; i++)
        if (has_secondary(&s->ifaces[i], ip))
            return &s->ifaces[i];
    return NULL;
}

int rusty_stack_add_address(struct rusty_stack *s, int iface, uint32_t ip, uint64_t now_us)
{
    if (iface < 0 || iface >= s->n_ifaces || ip == 0)
        return -EINVAL;
    struct rusty_iface *ifc = &s->ifaces[iface];
    /* A host address of the interface's subnet: not another subnet (routing is
     * by the first address's prefix), not the network or broadcast address
     * (RFC 1122 3.2.1.3; /31 has neither, RFC 3021; /32 has no other host). */
    if ((ip & ifc->netmask) != (ifc->ip & ifc->netmask) || ifc->prefix_len == 32)
        return -EINVAL;
    if (ifc->prefix_len < 31 && ((ip & ~ifc->netmask) == 0 || (ip | ifc->netmask) == 0xffffffffu))
        return -EINVAL;
    if (rusty_iface_by_ip(s, ip))
        return -EADDRINUSE;
    if (ifc->n_addrs >= RUSTY_IFACE_MAX_ADDRS - 1)
        return -ENOSPC;
    uint32_t at = ifc->n_addrs;
    while (at > 0 && ifc->addrs[at - 1] > ip)
        at--;
    memmove(&ifc->addrs[at + 1], &ifc->addrs[at], (ifc->n_addrs - at) * sizeof(ifc->addrs[0]));
    ifc->addrs[at] = ip;
    ifc->n_addrs++;
    s->now_us = now_us;
    /* RFC 5227 2.3: announce it, as rusty_stack_add_iface does the first. */
    rusty_arp_announce(s, ifc, ip, now_us);
    rusty_stack_flush(s, now_us);
    return 0;
}
