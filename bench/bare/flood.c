/*
 * flood.c - the traffic source for bench/nic_frames.py: floods UDP frames out
 * of an interface through a packet socket (sendmmsg batches, qdisc bypassed),
 * pinned to one core, bounded by a frame count and a time limit.
 *
 * usage: flood IFNAME DSTMAC FRAME_LEN COUNT SECONDS CPU
 * prints: sent=N seconds=S refused=R  (R: batches the device refused, ENOBUFS:
 *         a tap whose queue is full pushes back; a veth never does)
 */
#include "common.h"

#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: flood IFNAME DSTMAC FRAME_LEN COUNT SECONDS CPU\n");
        return 2;
    }
    uint8_t dst[6], frame[2048];
    size_t len = strtoul(argv[3], NULL, 0);
    unsigned long long count = strtoull(argv[4], NULL, 0);
    double seconds = atof(argv[5]);
    if (parse_mac(argv[2], dst) || len < 60 || len > 1514) {
        fprintf(stderr, "flood: bad mac or length\n");
        return 2;
    }
    pin(atoi(argv[6]));
    make_frame(frame, len, dst);
    /* Protocol 0: the socket only sends, it never queues received frames. */
    int fd = socket(AF_PACKET, SOCK_RAW, 0), one = 1;
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(argv[1])};
    if (fd < 0 || sll.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        perror("flood: socket/bind");
        return 1;
    }
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
    struct iovec iov = {.iov_base = frame, .iov_len = len};
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < BATCH; i++) {
        msgs[i].msg_hdr.msg_iov = &iov;
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long long sent = 0, refused = 0;
    double start = now_s(), end = start + seconds, t = start;
    while (sent < count && t < end) {
        int want = count - sent < BATCH ? (int)(count - sent) : BATCH;
        int n = sendmmsg(fd, msgs, (unsigned)want, 0);
        if (n > 0)
            sent += (unsigned long long)n;
        else if (errno == ENOBUFS || errno == EAGAIN)
            refused++;
        else if (errno != EINTR) {
            perror("flood: sendmmsg");
            break;
        }
        t = now_s();
    }
    printf("sent=%llu seconds=%.6f refused=%llu\n", sent, t - start, refused);
    return 0;
}
