/*
 * tap_steer.c - flow steering of a multi-queue tap by the stack's own hash.
 *
 * Owns: the eBPF program a multi-queue tap runs to pick the queue of each
 * frame the kernel sends into it (assembled here by hand, loaded with bpf(),
 * attached with TUNSETSTEERINGEBPF), and the order in which queues attach, on
 * which the queue numbering depends. Not: opening the queues (tap.c), the
 * hash's definition (aiorusty/testbed/steer.py; shm.c and af_packet.c compute
 * it too).
 *
 * Call chain: rusty_tap_open -> rusty_tap_steer_wait_turn -> tap_queue_count (netlink)
 *             rusty_tap_open -> rusty_tap_steer_attach -> rusty_tap_steer_load -> bpf(BPF_PROG_LOAD)
 *                                                      -> ioctl(TUNSETSTEERINGEBPF)
 *
 * The kernel (drivers/net/tun.c): a tap's ndo_select_queue, tun_select_queue,
 * runs the steering program when one is set (tun_ebpf_select_queue) instead
 * of its own flow hash (tun_automq_select_queue, seeded at random per boot),
 * on the skb the kernel transmits into the tap: skb->data is at the Ethernet
 * header (dev_hard_header ran; tun's run_filter reads the header at skb->data
 * the same way), so BPF_LD_ABS offsets are frame offsets, as in a packet
 * socket's filter. The program's return value is taken as u16 and reduced
 * `% tun->numqueues`, the number of queues ATTACHED now, and tun_net_xmit
 * hands the frame to tun->tfiles[that]. Two consequences:
 *  - our program returns hash % N with N the configured count, so a queue
 *    index means worker K only once all N are attached; before that the
 *    kernel folds the missing queues' flows onto the attached ones (a worker
 *    must be up before traffic for it arrives, as with shm and afpacket);
 *  - tun numbers queues by attach order (tun_attach: queue_index =
 *    numqueues), and a detach moves the last queue into the hole
 *    (__tun_detach). So queue K must attach when exactly K queues are
 *    attached: rusty_tap_steer_wait_turn waits for that (read from the tap's
 *    IFLA_TUN_NUM_QUEUES over rtnetlink), so workers started together attach
 *    in order; a worker that exits and restarts alone finds the count wrong
 *    and fails with -EBUSY instead of silently taking another's flows.
 *
 * The hash (steer.py flow_hash): x = saddr ^ daddr ^ ((sport ^ dport) * 0x10001),
 * murmur3's fmix32, then x % N. It is symmetric, so a generator worker picks
 * source ports whose replies land on its own queue (steer.PortPicker).
 * Frames it does not cover go to queue 0: ARP (so worker 0 answers who-has
 * for the address every worker shares, see arp.c for the other workers' side),
 * non-IPv4, IPv4 other than TCP/UDP, IP fragments (unlike shm and afpacket,
 * which hash a fragment on its addresses: here all of a datagram's fragments
 * at least meet on one queue) and frames too short for the loads (BPF_LD_ABS
 * past the end ends the program with 0).
 *
 * The program is one per tap (TUNSETSTEERINGEBPF replaces it), the same
 * bytes from every worker, so each worker setting it is idempotent. The tap
 * holds its own reference (tun_set_ebpf -> bpf_prog_get_type), so our fd is
 * closed right after; a persistent tap keeps the program after we exit.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dev.h"

#define WAIT_TRIES 2000                 /* x 5 ms: how long queue K waits for queues 0..K-1 */
#define STEER_LEN 38

/* Instruction builders (the kernel's own BPF_* helpers live in linux/filter.h,
 * which is not uapi). 32-bit ALU ops (BPF_ALU) wrap like the C uint32_t of shm.c. */
#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define LD_ABS(size, k) INSN(BPF_LD | (size) | BPF_ABS, 0, 0, 0, (k))           /* r0 = ntoh(frame[k]) */
#define LD_IND(size, r, k) INSN(BPF_LD | (size) | BPF_IND, 0, (r), 0, (k))      /* r0 = ntoh(frame[r + k]) */
#define ALU32_K(op, d, k) INSN(BPF_ALU | (op) | BPF_K, (d), 0, 0, (int32_t)(k))
#define ALU32_X(op, d, s) INSN(BPF_ALU | (op) | BPF_X, (d), (s), 0, 0)
#define JMP_K(at, op, d, k, to) INSN(BPF_JMP | (op) | BPF_K, (d), 0, (to) - (at) - 1, (k))
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
enum { R0 = 0, R1 = 1, R6 = 6, R7 = 7, R8 = 8 };
enum { L_PORTS = 8, L_OTHER = 36 };

/* The program for n queues: r6 = skb (BPF_LD_ABS/IND read through r6),
 * r7 = IPv4 header length, r8 = the hash. */
static void steer_prog(struct bpf_insn *p, uint32_t n)
{
    const struct bpf_insn prog[STEER_LEN] = {
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, R6, R1, 0, 0),        /*  0 r6 = ctx */
        LD_ABS(BPF_H, 12),                                      /*  1 ethertype */
        JMP_K(2, BPF_JNE, R0, ETH_P_IP, L_OTHER),
        LD_ABS(BPF_H, 20),                                      /*  3 flags, fragment offset */
        JMP_K(4, BPF_JSET, R0, 0x3fff, L_OTHER),                /*  4 MF or an offset: a fragment */
        LD_ABS(BPF_B, 23),                                      /*  5 protocol */
        JMP_K(6, BPF_JEQ, R0, 6, L_PORTS),                      /*  6 TCP */
        JMP_K(7, BPF_JNE, R0, 17, L_OTHER),                     /*  7 not UDP */
        LD_ABS(BPF_B, 14),                                      /*  8 L_PORTS: version, ihl */
        ALU32_K(BPF_AND, R0, 0x0f),
        ALU32_K(BPF_LSH, R0, 2),
        JMP_K(11, BPF_JLT, R0, 20, L_OTHER),                    /* 11 ihl < 20 bytes: malformed */
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, R7, R0, 0, 0),
        LD_IND(BPF_H, R7, 14),                                  /* 13 sport */
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, R8, R0, 0, 0),
        LD_IND(BPF_H, R7, 16),                                  /* 15 dport */
        ALU32_X(BPF_XOR, R8, R0),                               /* 16 sport ^ dport */
        ALU32_K(BPF_MUL, R8, 0x10001),
        LD_ABS(BPF_W, 26),                                      /* 18 saddr */
        ALU32_X(BPF_XOR, R8, R0),
        LD_ABS(BPF_W, 30),                                      /* 20 daddr */
        ALU32_X(BPF_XOR, R8, R0),                               /* 21 x */
        ALU32_X(BPF_MOV, R0, R8),                               /* 22 fmix32(x) */
        ALU32_K(BPF_RSH, R0, 16),
        ALU32_X(BPF_XOR, R8, R0),
        ALU32_K(BPF_MUL, R8, 0x85ebca6bu),
        ALU32_X(BPF_MOV, R0, R8),
        ALU32_K(BPF_RSH, R0, 13),
        ALU32_X(BPF_XOR, R8, R0),
        ALU32_K(BPF_MUL, R8, 0xc2b2ae35u),
        ALU32_X(BPF_MOV, R0, R8),
        ALU32_K(BPF_RSH, R0, 16),
        ALU32_X(BPF_XOR, R8, R0),
        ALU32_K(BPF_MOD, R8, n),                                /* 33 the queue */
        ALU32_X(BPF_MOV, R0, R8),
        EXIT(),
        ALU32_K(BPF_MOV, R0, 0),                                /* 36 L_OTHER: queue 0 */
        EXIT(),
    };
    memcpy(p, prog, sizeof(prog));
}

static int prog_load(const struct bpf_insn *insns, char *log, size_t log_cap)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = STEER_LEN;
    attr.license = (uint64_t)(uintptr_t)"MIT";     /* the project's; the program calls no GPL-only helper */
    snprintf(attr.prog_name, sizeof(attr.prog_name), "rusty_steer");
    if (log && log_cap > 1) {
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_cap > UINT32_MAX ? UINT32_MAX : (uint32_t)log_cap;
        attr.log_level = 1;
    }
    int fd = (int)syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
    return fd < 0 ? -errno : fd;
}

int rusty_tap_steer_load(uint16_t queues, char *log, size_t log_cap)
{
    if (log && log_cap)
        log[0] = '\0';
    if (queues == 0 || queues > RUSTY_MAX_QUEUES)
        return -EINVAL;
    struct bpf_insn insns[STEER_LEN];
    steer_prog(insns, queues);
    /* Without a log first: a log too small for a successful load's output
       would fail it with ENOSPC. The verifier's words only matter on failure. */
    int fd = prog_load(insns, NULL, 0);
    if (fd < 0 && log && log_cap > 1) {
        int again = prog_load(insns, log, log_cap);
        if (again >= 0)
            close(again);               /* passed the second time: keep the first error */
        log[log_cap - 1] = '\0';
    }
    return fd;
}

int rusty_tap_steer_attach(int fd, uint16_t queues)
{
    int prog = rusty_tap_steer_load(queues, NULL, 0);
    if (prog < 0)
        return prog;
    int err = ioctl(fd, TUNSETSTEERINGEBPF, &prog) < 0 ? -errno : 0;
    close(prog);                        /* the tap holds its own reference */
    return err;
}

/* ---- how many queues the tap has attached (rtnetlink, IFLA_TUN_NUM_QUEUES) */

static const struct rtattr *find_attr(const struct rtattr *a, int len, unsigned short type)
{
    for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
        if ((a->rta_type & NLA_TYPE_MASK) == type)
            return a;
    return NULL;
}

/* Attached queues of tap `ifname` in our namespace; -ENODEV when there is no
 * such device, -EINVAL when it is not a tun/tap. */
static int tap_queue_count(const char *ifname)
{
    struct {
        struct nlmsghdr nh;
        struct ifinfomsg ifi;
        char attrs[RTA_SPACE(IFNAMSIZ)];
    } req;
    memset(&req, 0, sizeof(req));
    size_t name_len = strlen(ifname) + 1;
    if (name_len > IFNAMSIZ)
        return -EINVAL;
    struct rtattr *name = (struct rtattr *)req.attrs;
    name->rta_type = IFLA_IFNAME;
    name->rta_len = (unsigned short)RTA_LENGTH(name_len);
    memcpy(RTA_DATA(name), ifname, name_len);
    req.nh.nlmsg_len = (uint32_t)(NLMSG_LENGTH(sizeof(req.ifi)) + RTA_ALIGN(name->rta_len));
    req.nh.nlmsg_type = RTM_GETLINK;
    req.nh.nlmsg_flags = NLM_F_REQUEST;
    req.nh.nlmsg_seq = 1;
    req.ifi.ifi_family = AF_UNSPEC;

    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0)
        return -errno;
    /* A link message with its statistics is ~1.5 KiB; 16 KiB leaves room. */
    static const size_t cap = 16384;
    uint32_t buf[16384 / sizeof(uint32_t)];
    int ret = -EPROTO;
    ssize_t got;
    if (send(s, &req, req.nh.nlmsg_len, 0) < 0 || (got = recv(s, buf, cap, 0)) < 0) {
        ret = -errno;
        close(s);
        return ret;
    }
    close(s);
    int len = (int)got;
    for (const struct nlmsghdr *nh = (const void *)buf; NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
        if (nh->nlmsg_type == NLMSG_ERROR) {
            const struct nlmsgerr *e = NLMSG_DATA(nh);
            return e->error ? e->error : -EPROTO;
        }
        if (nh->nlmsg_type != RTM_NEWLINK)
            continue;
        const struct ifinfomsg *ifi = NLMSG_DATA(nh);
        const struct rtattr *info = find_attr(IFLA_RTA(ifi), (int)IFLA_PAYLOAD(nh), IFLA_LINKINFO);
        const struct rtattr *kind = info ? find_attr(RTA_DATA(info), (int)RTA_PAYLOAD(info), IFLA_INFO_KIND) : NULL;
        if (!kind || strncmp(RTA_DATA(kind), "tun", RTA_PAYLOAD(kind)) != 0)
            return -EINVAL;
        const struct rtattr *data = find_attr(RTA_DATA(info), (int)RTA_PAYLOAD(info), IFLA_INFO_DATA);
        const struct rtattr *nq = data ? find_attr(RTA_DATA(data), (int)RTA_PAYLOAD(data), IFLA_TUN_NUM_QUEUES) : NULL;
        if (!nq || RTA_PAYLOAD(nq) < sizeof(uint32_t))
            return -EPROTO;             /* a kernel before 4.15: no tun link info */
        uint32_t n;
        memcpy(&n, RTA_DATA(nq), sizeof(n));
        return n > INT32_MAX ? -EPROTO : (int)n;
    }
    return ret;
}

int rusty_tap_steer_wait_turn(const char *ifname, uint16_t queue)
{
    const struct timespec tick = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
    for (int i = 0; i < WAIT_TRIES; i++) {
        int n = tap_queue_count(ifname);
        if (n == -ENODEV)
            n = 0;                      /* queue 0 creates it; the others wait for that */
        if (n < 0)
            return n;
        if (n == queue)
            return 0;
        if (n > queue)
            return -EBUSY;              /* our index is taken: a restarted worker, another process */
        nanosleep(&tick, NULL);
    }
    return -ETIMEDOUT;                  /* queues 0..queue-1 never all attached */
}
