/*
 * tap_rw.c - the bare baseline for the tap driver: the same read()/write()
 * on a /dev/net/tun fd with the same flags (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR,
 * 12-byte header, TUN_F_CSUM), straight into one static buffer.
 *
 * usage: tap_rw rx TAP COUNT             (attach, print "ready", wait for a line
 *                                         on stdin - the queue is being filled -
 *                                         then read COUNT frames as fast as possible)
 *        tap_rw tx TAP FRAME_LEN COUNT   (write COUNT frames)
 * prints: frames=N seconds=S cpu=C  (C: CPU seconds used meanwhile)
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VNET_HDR_LEN 12

static int open_tap(const char *name)
{
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC), sz = VNET_HDR_LEN;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0 ||
        ioctl(fd, TUNSETOFFLOAD, (unsigned long)TUN_F_CSUM) < 0) {
        perror("tap_rw: open tap");
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    static uint8_t buf[2048];
    if (argc != (argc > 1 && strcmp(argv[1], "rx") == 0 ? 4 : 5)) {
        fprintf(stderr, "usage: tap_rw rx TAP COUNT | tap_rw tx TAP FRAME_LEN COUNT\n");
        return 2;
    }
    int fd = open_tap(argv[2]);
    if (strcmp(argv[1], "rx") == 0) {
        unsigned long long want = strtoull(argv[3], NULL, 0), frames = 0;
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof(line), stdin))
            return 1;
        /* Like the driver: read until EAGAIN, spin, read again; give up 3 s
           after the last frame (frames the kernel dropped never come). */
        double start = now_s(), cpu0 = cpu_s(), last = start, t = start;
        while (frames < want && t - last < 3.0) {
            for (int i = 0; i < 64; i++) {
                if (read(fd, buf, sizeof(buf)) < 0)
                    break;
                frames++;
                last = 0;
            }
            t = now_s();
            if (last == 0)
                last = t;
        }
        printf("frames=%llu seconds=%.6f cpu=%.6f\n", frames, last - start, cpu_s() - cpu0);
        return 0;
    }
    size_t len = strtoul(argv[3], NULL, 0);
    unsigned long long count = strtoull(argv[4], NULL, 0), frames = 0;
    static const uint8_t dst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
    memset(buf, 0, VNET_HDR_LEN);
    make_frame(buf + VNET_HDR_LEN, len, dst);
    double start = now_s(), cpu0 = cpu_s();
    while (frames < count) {
        if (write(fd, buf, VNET_HDR_LEN + len) < 0) {
            if (errno == EAGAIN)
                continue;
            perror("tap_rw: write");
            return 1;
        }
        frames++;
    }
    printf("frames=%llu seconds=%.6f cpu=%.6f\n", frames, now_s() - start, cpu_s() - cpu0);
    return 0;
}
