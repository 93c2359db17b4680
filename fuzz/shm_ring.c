/*
 * shm_ring.c - libFuzzer harness: the shm link's receive path against a
 * hostile peer process.
 *
 * Each input opens a fresh link (rusty_shm_open, side A, as a process using
 * `shm:NAME` does) and maps the same /dev/shm file a second time as the peer
 * of side B would. The peer can write any byte of the file at any time, so
 * the input is a script of what it writes between our polls (fuzz_input.h):
 *   SLOT     a slot of the B->A ring: its header (length, flags, checksum
 *            start/offset, all unchecked) and frame bytes
 *   PUBLISH  move the ring's head: a small step past our tail, or any value
 *   POLL     our side reads: a stack attached to the link polls it (frames go
 *            up through Ethernet/ARP/IPv4/...), or frames are taken one at a
 *            time with rusty_dev_recv; then the sleep path (arm_wakeup)
 *   POKE     a 32-bit value anywhere in the file: header, claims, either
 *            ring's indices and wakeup flags, slots
 * Every input ends with the link closed (shm_close reads the header too).
 * The first byte picks the variant: bit 0 NO_OFFLOAD (partial checksums are
 * finished in software from the peer's offsets), bit 1 attach a stack.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rusty.h"
#include "fuzz_input.h"

/* The file's layout as shm.c writes it (checked against the file's size below). */
#define HEADER_BYTES 4096u
#define RING_CTL 192u                   /* head, tail, wants_wakeup: one cache line each */
#define SLOT_BYTES 2048u
#define SLOTS 4u
#define RING_BYTES (RING_CTL + SLOTS * SLOT_BYTES)

enum { OP_SLOT, OP_PUBLISH, OP_POLL, OP_POKE, OP_COUNT };

static const uint8_t STACK_MAC[6] = {0x02, 0x52, 0, 0, 0, 1};

static void poll_side(struct rusty_dev *dev, struct rusty_stack *st, uint64_t now)
{
    if (st) {
        struct rusty_event ev[32];
        rusty_stack_poll(st, now, ev, 32);
        rusty_stack_prepare_sleep(st, now);
    } else {
        static uint8_t frame[2048];
        for (int i = 0; i < 16 && rusty_dev_recv_at(dev, 0, frame, sizeof(frame), now) >= 0; i++)
            ;
        rusty_dev_arm_wakeup(dev, 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fin in = {data, size};
    uint8_t variant = fin_u8(&in);
    char name[32];
    snprintf(name, sizeof(name), "fuzz-%d", (int)getpid());
    struct rusty_dev_config cfg = {.pool_buffers = 64, .queues = 1, .ring_frames = SLOTS,
                                   .flags = RUSTY_DEVF_CREATE | ((variant & 1) ? RUSTY_DEVF_NO_OFFLOAD : 0)};
    struct rusty_dev *dev;
    if (rusty_shm_open(name, &cfg, &dev) != 0)
        return 0;
    rusty_dev_set_mac(dev, STACK_MAC);      /* the file's MACs follow its name, which holds our pid */

    char path[64];
    snprintf(path, sizeof(path), "/aiorusty-%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    struct stat sb;
    uint8_t *map = MAP_FAILED;
    size_t total = HEADER_BYTES + 2 * RING_BYTES;
    if (fd >= 0 && fstat(fd, &sb) == 0 && (size_t)sb.st_size == total)
        map = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd >= 0)
        close(fd);
    if (map == MAP_FAILED) {
        rusty_dev_close(dev);
        return 0;
    }
    /* The peer attaches as side B of queue 0 (claim[0][1].pid, after the fixed header fields). */
    int32_t me = (int32_t)getpid();
    memcpy(map + 64 + 8, &me, 4);
    uint8_t *rx = map + HEADER_BYTES + RING_BYTES;      /* ring 1: B -> A, what side A reads */
    uint64_t now = 1000000;

    struct rusty_stack *st = NULL;
    if (variant & 2) {
        struct rusty_stack_config sc = {.seed = 1};
        if (rusty_stack_new(&sc, &st) != 0 || rusty_stack_add_iface(st, dev, 0x0a000001u, 24, 0, now) < 0) {
            if (st)
                rusty_stack_free(st);
            st = NULL;
        }
    }

    for (int steps = 0; fin_more(&in) && steps < 64; steps++) {
        switch (fin_u8(&in) % OP_COUNT) {
        case OP_SLOT: {
            uint8_t *slot = rx + RING_CTL + (size_t)(fin_u8(&in) % SLOTS) * SLOT_BYTES;
            fin_bytes(&in, slot, 8);
            size_t len = fin_u16(&in) % (SLOT_BYTES - 8 + 1);
            fin_bytes(&in, slot + 8, len);
            break;
        }
        case OP_PUBLISH: {
            uint8_t how = fin_u8(&in);
            uint32_t tail, head;
            memcpy(&tail, rx + 64, 4);
            head = (how & 1) ? fin_u32(&in) : tail + (how >> 1) % (2 * SLOTS);
            __atomic_store_n((uint32_t *)rx, head, __ATOMIC_RELEASE);
            break;
        }
        case OP_POLL:
            now += 1000 + fin_u16(&in);
            poll_side(dev, st, now);
            break;
        case OP_POKE: {
            size_t off = (fin_u32(&in) % total) & ~(size_t)3;
            uint32_t v = fin_u32(&in);
            memcpy(map + off, &v, 4);
            break;
        }
        }
    }
    poll_side(dev, st, now + 1000);
    if (st)
        rusty_stack_free(st);
    memset(map + 64 + 8, 0, 4);                         /* the peer exits */
    rusty_dev_close(dev);
    munmap(map, total);
    /* Pokes may have left claims that look alive (pid 1): remove the name ourselves. */
    shm_unlink(path);
    for (int d = 0; d < 2; d++) {
        char fifo[96];
        snprintf(fifo, sizeof(fifo), "/dev/shm/aiorusty-%s.q0.%d", name, d);
        unlink(fifo);
    }
    return 0;
}
