/*
 * afpacket_rw.c - the bare baseline for the AF_PACKET driver: the same
 * TPACKET_V3 RX ring (2 KiB frames, 128 KiB blocks, 1 ms retire timeout) and
 * TX ring (512 slots, one send() per 64 frames), with each received frame
 * copied into one static buffer, as the driver copies it into a pool buffer.
 *
 * usage: afpacket_rw rx IFNAME COUNT RING_MB   (ring, bind, print "ready", wait
 *                                               for a line on stdin - the ring is
 *                                               being filled - then walk COUNT frames)
 *        afpacket_rw tx IFNAME FRAME_LEN COUNT
 * prints: frames=N seconds=S cpu=C  (C: CPU seconds used meanwhile)
 */
#include "common.h"

#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#define FRAME 2048u
#define BLOCK (128u * 1024u)
#define TX_SLOTS 512u
#define TX_OFF TPACKET_ALIGN(sizeof(struct tpacket3_hdr))

static void die(const char *what)
{
    perror(what);
    exit(1);
}

int main(int argc, char **argv)
{
    static uint8_t buf[2048];
    if (argc != 5) {
        fprintf(stderr, "usage: afpacket_rw rx IFNAME COUNT RING_MB | afpacket_rw tx IFNAME FRAME_LEN COUNT\n");
        return 2;
    }
    int rx = strcmp(argv[1], "rx") == 0, one = 1, v3 = TPACKET_V3;
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, 0);
    int ifindex = (int)if_nametoindex(argv[2]);
    if (fd < 0 || ifindex == 0)
        die("afpacket_rw: socket");
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v3, sizeof(v3)) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_LOSS, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0)
        die("afpacket_rw: setsockopt");
    struct tpacket_req3 req = {.tp_frame_size = FRAME};
    unsigned blocks = rx ? (unsigned)atoi(argv[4]) * (1024u * 1024u / BLOCK) : 0;
    if (rx) {
        req.tp_block_size = BLOCK, req.tp_block_nr = blocks, req.tp_frame_nr = BLOCK / FRAME * blocks;
        req.tp_retire_blk_tov = 1;
    } else {
        req.tp_block_size = 64u * 1024u, req.tp_block_nr = TX_SLOTS * FRAME / (64u * 1024u);
        req.tp_frame_nr = TX_SLOTS;
    }
    if (setsockopt(fd, SOL_PACKET, rx ? PACKET_RX_RING : PACKET_TX_RING, &req, sizeof(req)) < 0)
        die("afpacket_rw: ring");
    size_t len = (size_t)req.tp_block_size * req.tp_block_nr;
    uint8_t *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED)
        die("afpacket_rw: mmap");
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = rx ? htons(ETH_P_ALL) : 0,
                              .sll_ifindex = ifindex};
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
        die("afpacket_rw: bind");
    if (rx) {
        struct packet_mreq mr = {.mr_ifindex = ifindex, .mr_type = PACKET_MR_PROMISC};
        setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr));
        unsigned long long want = strtoull(argv[3], NULL, 0), frames = 0;
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof(line), stdin))
            return 1;
        unsigned blk = 0;
        double start = now_s(), cpu0 = cpu_s(), last = start, t = start;
        while (frames < want && t - last < 3.0) {
            struct tpacket_block_desc *bd = (void *)(map + (size_t)blk * BLOCK);
            if (__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) {
                struct tpacket3_hdr *h = (void *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
                for (unsigned i = 0; i < bd->hdr.bh1.num_pkts; i++) {
                    if (h->tp_snaplen <= sizeof(buf))
                        memcpy(buf, (uint8_t *)h + h->tp_mac, h->tp_snaplen);
                    h = (void *)((uint8_t *)h + h->tp_next_offset);
                }
                frames += bd->hdr.bh1.num_pkts;
                __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
                blk = (blk + 1) % blocks;
                last = t = now_s();
            } else {
                t = now_s();
            }
        }
        printf("frames=%llu seconds=%.6f cpu=%.6f\n", frames, last - start, cpu_s() - cpu0);
        return 0;
    }
    size_t flen = strtoul(argv[3], NULL, 0);
    unsigned long long count = strtoull(argv[4], NULL, 0), frames = 0;
    static const uint8_t dst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
    make_frame(buf, flen, dst);
    unsigned head = 0;
    double start = now_s(), cpu0 = cpu_s();
    while (frames < count) {
        int n = 0;
        for (; n < 64 && frames < count; n++) {
            struct tpacket3_hdr *h = (void *)(map + (size_t)head * FRAME);
            if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE)
                break;
            memcpy((uint8_t *)h + TX_OFF, buf, flen);
            h->tp_len = (uint32_t)flen;
            h->tp_snaplen = (uint32_t)flen;
            h->tp_next_offset = 0;
            __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
            head = (head + 1) % TX_SLOTS;
            frames++;
        }
        if (send(fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS)
            die("afpacket_rw: send");
    }
    printf("frames=%llu seconds=%.6f cpu=%.6f\n", frames, now_s() - start, cpu_s() - cpu0);
    return 0;
}
