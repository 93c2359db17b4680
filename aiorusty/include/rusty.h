/*
 * rusty.h - the whole public C API of aiorusty's core.
 *
 * This header is also the cffi cdef (aiorusty/_build.py reads it, dropping
 * preprocessor lines other than `#define NAME <integer>`), so it is written in
 * the subset of C that cffi parses: no macros with arguments, no inline code.
 *
 * Conventions: functions return 0 (or a count) on success and a negative errno
 * on failure, outputs go through pointers, and time is always an argument
 * (`now_us`, microseconds on a monotonic clock chosen by the caller).
 * IPv4 addresses are host-order integers (10.0.0.2 == 0x0a000002).
 */
#ifndef RUSTY_H
#define RUSTY_H

#include <stdint.h>
#include <stddef.h>

/* ---------------------------------------------------------------- devices */

struct rusty_dev;                       /* a NIC driver or a wrapper around one */

#define RUSTY_OFF_RX_CSUM 1             /* device tells us received L4 checksums are valid */
#define RUSTY_OFF_TX_CSUM 2             /* device completes partial L4 checksums on transmit */
#define RUSTY_OFF_TSO 4                 /* device segments large TCP frames (buf.h gso_size; with TX_SG) */
#define RUSTY_OFF_TX_SG 8               /* device transmits a frame with an external tail (buf.h ext) */

struct rusty_dev_info {
    char name[32];
    char driver[16];
    uint8_t mac[6];
    uint16_t mtu;
    uint16_t queues;
    uint32_t offloads;                  /* RUSTY_OFF_* */
};

struct rusty_dev_stats {
    uint64_t rx_frames;
    uint64_t rx_bytes;
    uint64_t tx_frames;
    uint64_t tx_bytes;
    uint64_t rx_dropped;                /* no buffer, truncated, ring overrun */
    uint64_t tx_dropped;                /* device full or error */
    uint64_t rx_errors;
    uint64_t tx_errors;
    uint64_t rx_bad_slots;              /* ring drivers (shm): slots or ring indices the peer wrote
                                           wrong, skipped (also counted in rx_errors) */
};

/* Options every driver understands; zero means "the default". */
struct rusty_dev_config {
    uint32_t pool_buffers;              /* frame buffers in this device's pool (default 4096) */
    uint16_t queues;                    /* number of queues (default 1) */
    uint16_t mtu;                       /* default: the device's own, or 1500 */
    uint16_t queue;                     /* open only this queue (multi-queue devices, one per worker) */
    uint16_t flags;                     /* RUSTY_DEVF_* */
    uint32_t ring_frames;               /* ring size for ring-based drivers (default per driver) */
};

#define RUSTY_DEVF_CREATE 1             /* create the device if missing (tap, shm) */
#define RUSTY_DEVF_NO_OFFLOAD 2         /* do not negotiate checksum offload */
#define RUSTY_DEVF_SINGLE_QUEUE 4       /* open one explicit queue, not all */
#define RUSTY_DEVF_STEER 8              /* shm, several queues: each frame's queue by symmetric flow hash */
#define RUSTY_DEVF_GATHER 16            /* pair: offer TX checksum and scatter-gather offload and do both
                                           in software at transmit, as a NIC would (tests those paths) */

/* Fault injection: probabilities are parts per million, delays microseconds. */
struct rusty_faults_config {
    uint64_t seed;
    uint32_t drop_ppm;
    uint32_t duplicate_ppm;
    uint32_t reorder_ppm;               /* hold a frame back and send it after the next one */
    uint32_t corrupt_ppm;               /* flip one random byte past the Ethernet header */
    uint32_t delay_us;                  /* added latency, both directions */
    uint32_t jitter_us;
    uint64_t rate_bps;                  /* token-bucket rate limit, 0 = none */
    uint32_t direction;                 /* 1 = rx only, 2 = tx only, 3 = both (default) */
};

int rusty_loopback_open(const struct rusty_dev_config *cfg, struct rusty_dev **out);
int rusty_pair_open(const struct rusty_dev_config *cfg, struct rusty_dev **a, struct rusty_dev **b);
int rusty_tap_open(const char *name, const struct rusty_dev_config *cfg, struct rusty_dev **out);
int rusty_afpacket_open(const char *ifname, const struct rusty_dev_config *cfg, struct rusty_dev **out);
int rusty_shm_open(const char *name, const struct rusty_dev_config *cfg, struct rusty_dev **out);
/* The eBPF program a tap opened with queues=N > 1 steers flows with (tap_steer.c: the
 * symmetric flow hash % queues, ARP and the rest to queue 0), loaded into the kernel:
 * its fd (the caller closes it) or -errno, the verifier's log copied into `log` (may be
 * NULL) when the load fails. rusty_tap_open loads and attaches it itself. */
int rusty_tap_steer_load(uint16_t queues, char *log, size_t log_cap);

/* Wrappers: take ownership of `inner`, are devices themselves. */
int rusty_pcap_wrap(struct rusty_dev *inner, const char *path, struct rusty_dev **out);
int rusty_faults_wrap(struct rusty_dev *inner, const struct rusty_faults_config *cfg, struct rusty_dev **out);
int rusty_trace_wrap(struct rusty_dev *inner, struct rusty_dev **out);
/* Copies decoded trace lines (one per frame, '\n'-terminated) out of the tracer. */
size_t rusty_trace_drain(struct rusty_dev *dev, char *out, size_t cap);

/* What a fault injector did so far (dev: the injector or any wrapper around it). */
struct rusty_faults_stats {
    uint64_t dropped;
    uint64_t duplicated;
    uint64_t reordered;
    uint64_t corrupted;
    uint64_t delayed;
    uint64_t rate_limited;              /* frames dropped because the shaper's backlog was full */
};
int rusty_faults_counts(struct rusty_dev *dev, struct rusty_faults_stats *out);  /* -ENODEV: no injector */

void rusty_dev_close(struct rusty_dev *dev);
void rusty_dev_get_info(struct rusty_dev *dev, struct rusty_dev_info *out);
void rusty_dev_get_stats(struct rusty_dev *dev, struct rusty_dev_stats *out);
int rusty_dev_fd(struct rusty_dev *dev, uint16_t queue);      /* -1 when it has none */
int rusty_dev_set_mac(struct rusty_dev *dev, const uint8_t *mac);

/* Frame-at-a-time access for tests and tools; the stack never uses these. */
int rusty_dev_send(struct rusty_dev *dev, uint16_t queue, const uint8_t *frame, size_t len);
int rusty_dev_recv(struct rusty_dev *dev, uint16_t queue, uint8_t *frame, size_t cap); /* -EAGAIN when none */
/* The same with the time given (wrappers with delay lines and rate limits act on it). */
int rusty_dev_send_at(struct rusty_dev *dev, uint16_t queue, const uint8_t *frame, size_t len, uint64_t now_us);
int rusty_dev_recv_at(struct rusty_dev *dev, uint16_t queue, uint8_t *frame, size_t cap, uint64_t now_us);
/* Send with the L4 checksum left to the device (RUSTY_BUF_CSUM_PARTIAL: the field at
 * csum_start + csum_offset holds the pseudo-header sum), as the stack does: tests of offload paths. */
int rusty_dev_send_partial(struct rusty_dev *dev, uint16_t queue, const uint8_t *frame, size_t len,
                           uint16_t csum_start, uint16_t csum_offset, uint64_t now_us);
/* Absolute time (us) a device next needs a call (delay lines, held frames), -1 if never;
 * wrappers combine their own with their inner device's. */
int64_t rusty_dev_next_deadline(struct rusty_dev *dev, uint64_t now_us);
/* Before sleeping on rusty_dev_fd(queue): have the fd become readable when the next
 * frame arrives. Returns 1 when frames already wait (poll instead of sleeping), 0 when
 * armed. A poll that finds a ring empty does not arm it, so a busy-polling consumer
 * costs its producer no wakeup syscalls (shm; taps and AF_PACKET need no arming). */
int rusty_dev_arm_wakeup(struct rusty_dev *dev, uint16_t queue);
/* Benchmark loops kept in C: receive and drop up to `max` frames in bursts for at
 * most `budget_us` (by the monotonic clock); transmit `count` copies of a frame. */
int64_t rusty_dev_bench_rx(struct rusty_dev *dev, uint16_t queue, uint64_t max, uint64_t budget_us, uint64_t *bytes);
int64_t rusty_dev_bench_tx(struct rusty_dev *dev, uint16_t queue, const uint8_t *frame, size_t len, uint64_t count);
/* The machine's ceiling for an shm link: Gbps two threads pinned to cpu_tx and cpu_rx
 * copy frame_bytes frames through a ring shaped like the shm link's, over duration_us
 * (probe.c); -EINVAL for a bad argument or a core the process may not use. */
double rusty_probe_xcore_gbps(int cpu_tx, int cpu_rx, uint32_t frame_bytes, uint64_t duration_us);
/* A timerfd for sleeps shorter than epoll's millisecond (wake_timer.c): arm it at an
 * absolute CLOCK_MONOTONIC deadline in us, 0 to disarm; arming also drops
 * expirations not read yet. Both return -errno on failure. */
int rusty_wake_timer_open(void);
int rusty_wake_timer_arm(int fd, uint64_t deadline_us);

/* ----------------------------------------------------------------- stack */

struct rusty_stack;

struct rusty_stack_config {
    uint64_t seed;                      /* ISNs, ephemeral ports, ARP jitter */
    uint32_t max_sockets;               /* socket table slots, grown on use (default and most 1048575) */
    uint32_t max_tcp_conns;             /* TCP control blocks, grown on use (default 1000000) */
    uint32_t max_timers;                /* timer heap slots at start; it grows with the blocks (default 320) */
    uint32_t event_queue;               /* most events held between polls, grown on use (default 1048576) */
    uint32_t arp_cache;                 /* ARP entries (default 256) */
    uint32_t arp_timeout_us;            /* reachable time of an entry (default 60 s) */
    uint32_t udp_rx_queue;              /* datagrams queued per UDP socket (default 256) */
    uint32_t tcp_rcvbuf;                /* initial receive buffer (window) per connection (default 64 KiB) */
    uint32_t tcp_sndbuf;                /* send buffer maximum per connection (default 4 MiB, Linux tcp_wmem[2]) */
    uint32_t tcp_rcvbuf_max;            /* receive buffer auto-tuning ceiling (default 6 MiB, Linux tcp_rmem[2]) */
    uint64_t tcp_mem;                   /* bytes of TCP buffers and open windows in all (default 1/8 of RAM) */
    uint32_t tcp_msl_us;                /* maximum segment lifetime; TIME-WAIT is 2*MSL (default 30 s) */
    uint32_t tcp_max_time_wait;         /* TIME-WAIT blocks kept; past it the oldest ends early (default 262144,
                                           Linux tcp_max_tw_buckets) */
    uint16_t ephemeral_lo;              /* default 49152 */
    uint16_t ephemeral_hi;              /* default 65535 */
    uint16_t rx_burst;                  /* frames per rx burst (default 32) */
    uint16_t flags;
    uint32_t rx_budget;                 /* frames per device queue per poll, in rx_burst bursts (default 256) */
};

/* Socket events returned by rusty_stack_poll. 16 bytes, packed for struct.iter_unpack("<IHHiI"). */
struct rusty_event {
    uint32_t sock;                      /* socket handle (ICMP: the echo identifier) */
    uint16_t type;                      /* RUSTY_EV_* */
    uint16_t flags;
    int32_t arg;                        /* bytes, sequence number, or negative errno */
    uint32_t arg2;                      /* e.g. a peer address */
};

#define RUSTY_EV_UDP_READABLE 1         /* datagrams queued on sock (once per poll: drain with recvfrom until -EAGAIN) */
#define RUSTY_EV_UDP_ERROR 2            /* ICMP error for sock, arg = -errno, arg2 = peer ip */
#define RUSTY_EV_F_SOFT 1               /* flags of UDP_ERROR: a soft error (net/host unreachable, time
                                           exceeded, ...), which Linux shows a UDP socket only with IP_RECVERR */
#define RUSTY_EV_ICMP_ECHO_REPLY 3      /* sock = identifier, arg = sequence, arg2 = source ip */
#define RUSTY_EV_LIMIT 8                /* a limit refused work for the first time: arg = RUSTY_LIMIT_* (sock 0) */
#define RUSTY_LIMIT_TCP_MEM 1           /* cfg.tcp_mem: a connection was refused (ENOBUFS) */
#define RUSTY_LIMIT_TCP_CONNS 2         /* cfg.max_tcp_conns: a connection was refused (EMFILE) */
#define RUSTY_LIMIT_SOCKETS 3           /* cfg.max_sockets: a socket was refused (EMFILE) */
#define RUSTY_EV_TCP_ACCEPT 16          /* a listener has connections to accept */
#define RUSTY_EV_TCP_CONNECTED 17       /* active open completed */
#define RUSTY_EV_TCP_READABLE 18        /* data (or a FIN) to read */
#define RUSTY_EV_TCP_WRITABLE 19        /* send space became available after a send took less than asked */
#define RUSTY_EV_TCP_EOF 20             /* peer sent FIN, all data before it was read */
#define RUSTY_EV_TCP_CLOSED 21          /* arg = 0 or -errno (ECONNRESET, ETIMEDOUT, ECONNREFUSED) */

int rusty_stack_new(const struct rusty_stack_config *cfg, struct rusty_stack **out);
void rusty_stack_free(struct rusty_stack *stack);     /* does not close the devices */
/* Attach a device as an interface; returns the interface index. Sends a gratuitous ARP. */
int rusty_stack_add_iface(struct rusty_stack *stack, struct rusty_dev *dev, uint32_t ip,
                          uint8_t prefix_len, uint32_t gateway, uint64_t now_us);
/* Give interface `iface` (an index rusty_stack_add_iface returned) one more address of
 * its own: ARP answers for it, IPv4 to it is accepted, sockets bind and connect from it.
 * It must lie in the interface's subnet (ip/prefix of rusty_stack_add_iface) and be
 * neither that subnet's network nor its broadcast address. Announced with a
 * gratuitous ARP. An interface holds at most RUSTY_IFACE_MAX_ADDRS addresses, its
 * first one included. Returns 0, -EINVAL (bad index, or the address is not a host
 * of the subnet), -EADDRINUSE (already the stack's) or -ENOSPC (the interface is full). */
#define RUSTY_IFACE_MAX_ADDRS 256
int rusty_stack_add_address(struct rusty_stack *stack, int iface, uint32_t ip, uint64_t now_us);
/* rx bursts from every queue -> protocol processing -> due timers -> tx flush. */
int rusty_stack_poll(struct rusty_stack *stack, uint64_t now_us, struct rusty_event *events, int max);
/* The output half of a poll: segments for what the user queued since, handed to the
 * devices now (the loop calls it amid a long batch of events, so the first answers
 * leave before the last request is handled). Events it raises come with the next poll. */
void rusty_stack_output(struct rusty_stack *stack, uint64_t now_us);
/* Absolute time (us) the stack next needs polling, now_us if it has work pending, -1 if never. */
int64_t rusty_stack_next_deadline(struct rusty_stack *stack, uint64_t now_us);
/* The same, for a loop about to sleep on the stack's fds: arms every device queue's
 * wakeup (rusty_dev_arm_wakeup) and returns now_us if frames arrived meanwhile. */
int64_t rusty_stack_prepare_sleep(struct rusty_stack *stack, uint64_t now_us);
/* Does `ip` route through one of the stack's interfaces? 1 = local address, 2 = reachable, 0 = no. */
int rusty_stack_route(struct rusty_stack *stack, uint32_t ip);

struct rusty_stats {
    uint64_t eth_rx_frames;
    uint64_t eth_tx_frames;
    uint64_t eth_rx_bytes;
    uint64_t eth_tx_bytes;
    uint64_t eth_rx_malformed;
    uint64_t eth_rx_not_for_us;
    uint64_t eth_rx_unknown_type;
    uint64_t tx_no_buffer;
    uint64_t tx_device_full;            /* frames freed: the device queue stayed full */
    uint64_t tx_device_busy;            /* flushes a device did not take whole (frames kept) */
    uint64_t arp_rx;
    uint64_t arp_tx_requests;
    uint64_t arp_tx_replies;
    uint64_t arp_malformed;
    uint64_t arp_unresolved_drops;
    uint64_t arp_entries;
    uint64_t ip_rx;
    uint64_t ip_tx;
    uint64_t ip_malformed;
    uint64_t ip_bad_options;            /* malformed IP options (RFC 791 3.1) */
    uint64_t ip_source_routed;          /* datagrams with a source route option (dropped, RFC 7126 4.3-4.4) */
    uint64_t ip_rx_martian;             /* impossible sources: ours, 0/8, 127/8, 224/4, 240/4, broadcast */
    uint64_t ip_bad_checksum;
    uint64_t ip_not_for_us;
    uint64_t ip_fragments_dropped;
    uint64_t ip_unknown_protocol;
    uint64_t ip_no_route;
    uint64_t icmp_rx;
    uint64_t icmp_tx;
    uint64_t icmp_malformed;
    uint64_t icmp_echo_requests;
    uint64_t icmp_echo_replies;
    uint64_t icmp_unreachable_tx;
    uint64_t udp_rx;
    uint64_t udp_tx;
    uint64_t udp_malformed;
    uint64_t udp_bad_checksum;
    uint64_t udp_no_port;
    uint64_t udp_queue_full;
    uint64_t tcp_rx;
    uint64_t tcp_tx;
    uint64_t tcp_malformed;
    uint64_t tcp_bad_checksum;
    uint64_t tcp_retransmits;
    uint64_t tcp_fast_retransmits;
    uint64_t tcp_timeouts;
    uint64_t tcp_rst_rx;
    uint64_t tcp_rst_tx;
    uint64_t tcp_challenge_acks;
    uint64_t tcp_syn_cookies_sent;
    uint64_t tcp_syn_cookies_ok;
    uint64_t tcp_ooo_segments;
    uint64_t tcp_rx_past_window;        /* segments cut at the end of the receive ring */
    uint64_t tcp_active_opens;
    uint64_t tcp_passive_opens;
    uint64_t tcp_time_wait_recycled;    /* TIME-WAIT blocks taken early for new connections (table full) */
    uint64_t tcp_conns_refused;         /* connections refused (connect EMFILE, SYN dropped): max_tcp_conns in use */
    uint64_t tcp_conns;                 /* gauge: control blocks in use */
    uint64_t tcp_buffer_bytes;          /* gauge: bytes allocated to TCP rings */
    uint64_t tcp_mem_bytes;             /* gauge: bytes charged against tcp_mem (rings and open windows) */
    uint64_t tcp_mem_pressure;          /* windows or buffer growth clamped by tcp_mem */
    uint64_t tcp_mem_refused;           /* connections refused by tcp_mem (ENOBUFS, dropped SYNs) */
    uint64_t tcp_rx_mem_drops;          /* segments dropped: no memory for the receive ring */
    uint64_t tcp_rcvbuf_grown;          /* receive auto-tuning steps */
    uint64_t tcp_listen_overflows;      /* handshakes completed on a full accept queue (dropped, the peer retries) */
    uint64_t sockets;                   /* gauge: socket table slots in use */
    uint64_t timers;                    /* gauge: armed timers */
    uint64_t pool_free;                 /* gauge: free frame buffers, all interfaces */
    uint64_t events_dropped;
};
void rusty_stack_get_stats(struct rusty_stack *stack, struct rusty_stats *out);
/* The configuration in force (defaults filled in). */
void rusty_stack_get_config(struct rusty_stack *stack, struct rusty_stack_config *out);

/* Test entries for the wire formats (tests/test_wire.py): parse one header of
 * `proto` (RUSTY_WIRE_*) from data and emit it again into out; returns the
 * emitted length or the parse error (-EINVAL malformed, -EBADMSG bad IPv4
 * header checksum). rusty_wire_selftest_csum returns the folded ones'-complement
 * sum of data, plus the IPv4 pseudo-header when proto is nonzero (0xffff = valid). */
#define RUSTY_WIRE_ETH 1
#define RUSTY_WIRE_ARP 2
#define RUSTY_WIRE_IPV4 3
#define RUSTY_WIRE_ICMP 4
#define RUSTY_WIRE_UDP 5
int rusty_wire_selftest_parse(int proto, const uint8_t *data, size_t len, uint8_t *out, size_t cap);
int rusty_wire_selftest_csum(const uint8_t *data, size_t len, uint32_t src, uint32_t dst, uint8_t proto);

/* ------------------------------------------------------------------ ICMP */

/* Send an echo request with `payload_len` bytes of pattern payload. */
int rusty_icmp_echo(struct rusty_stack *stack, uint32_t dst, uint16_t ident, uint16_t seq,
                    uint16_t payload_len, uint64_t now_us);

/* ------------------------------------------------------------------- UDP */

int rusty_udp_bind(struct rusty_stack *stack, uint32_t ip, uint16_t port, uint32_t *sock);
int rusty_udp_sendto(struct rusty_stack *stack, uint32_t sock, uint32_t dst, uint16_t port,
                     const uint8_t *data, size_t len, uint64_t now_us);
/* Copies one datagram out; returns its length (truncated to cap), -EAGAIN when none. */
int rusty_udp_recvfrom(struct rusty_stack *stack, uint32_t sock, uint8_t *buf, size_t cap,
                       uint32_t *src, uint16_t *port);
int rusty_udp_getsockname(struct rusty_stack *stack, uint32_t sock, uint32_t *ip, uint16_t *port);
int rusty_udp_close(struct rusty_stack *stack, uint32_t sock);

/* -------------------------------------------------------- static payloads */

/* A payload sent many times (a static file), with a prefix table of partial
 * checksums so the sum of any byte range is read in O(1). */
struct rusty_payload;
int rusty_payload_new(const uint8_t *data, size_t len, struct rusty_payload **out);
/* Drops the caller's reference: TCP send queues hold their own while bytes of
 * the payload are queued, so it is freed once the last one is acknowledged. */
void rusty_payload_free(struct rusty_payload *p);
size_t rusty_payload_len(const struct rusty_payload *p);
const uint8_t *rusty_payload_data(const struct rusty_payload *p);
/* Folded ones'-complement sum of bytes [off, off+len), aligned as if the range
 * started at an even offset (what a segment carrying exactly those bytes needs). */
uint16_t rusty_payload_sum(const struct rusty_payload *p, size_t off, size_t len);

/* ------------------------------------------------------------------- TCP */
/* RFC 9293 TCP (aiorusty/tcp/_core/tcp*.c). Handles are socket handles as for UDP.
 * connect is non-blocking: it returns 0 and RUSTY_EV_TCP_CONNECTED or
 * RUSTY_EV_TCP_CLOSED (arg -ECONNREFUSED / -ETIMEDOUT) follows. A handle stays
 * valid after its connection ended (recv/send answer 0, -EPIPE or the error)
 * until rusty_tcp_close or rusty_tcp_abort releases it. */

/* Options for rusty_tcp_set_option; times are microseconds. */
#define RUSTY_TCP_NODELAY 1             /* value != 0: disable Nagle (RFC 1122 4.2.3.4) */
#define RUSTY_TCP_KEEPALIVE 2           /* value != 0: keep-alive probes (RFC 1122 4.2.3.6) */
#define RUSTY_TCP_KEEPIDLE 3            /* idle time before the first probe (default 2 h) */
#define RUSTY_TCP_KEEPINTVL 4           /* between probes (default 75 s) */
#define RUSTY_TCP_KEEPCNT 5             /* unanswered probes before ETIMEDOUT (default 9) */
#define RUSTY_TCP_SNDBUF 6              /* bytes: the send buffer's maximum (SO_SNDBUF) */
#define RUSTY_TCP_RCVBUF 7              /* bytes: the receive buffer, fixed (no auto-tuning; the window never
                                           shrinks); on a listener or before the SYN it also sets window scaling */
#define RUSTY_TCP_RETRIES 8             /* retransmissions before ETIMEDOUT (default 15; SYN 6) */

/* state: 0 CLOSED, 1 LISTEN, 2 SYN-SENT, 3 SYN-RECEIVED, 4 ESTABLISHED, 5 FIN-WAIT-1,
 * 6 FIN-WAIT-2, 7 CLOSE-WAIT, 8 CLOSING, 9 LAST-ACK, 10 TIME-WAIT (RFC 9293 3.3.2). */
struct rusty_tcp_info {
    uint32_t state;
    uint32_t local_ip, remote_ip;
    uint16_t local_port, remote_port;
    uint32_t snd_una, snd_nxt, rcv_nxt;
    uint32_t cwnd, ssthresh;
    uint32_t srtt_us, rto_us;
    uint32_t mss;
    uint32_t snd_wnd, rcv_wnd;
    uint32_t bytes_queued;              /* in the send buffer (unacked + unsent); listener: accept queue */
    uint32_t bytes_readable;
    uint32_t retransmits;
    uint8_t snd_wscale, rcv_wscale, timestamps, pad;
    int32_t error;
};

/* Flags for rusty_tcp_listen. */
#define RUSTY_TCP_LISTEN_REUSEPORT 1    /* SO_REUSEPORT: share the port with other listeners that set it */

/* ip 0: every address; port 0: an ephemeral port no listener uses. Listeners
 * whose addresses overlap (equal, or either one 0) fail with -EADDRINUSE unless
 * both set RUSTY_TCP_LISTEN_REUSEPORT, as on Linux. A SYN goes to the listeners
 * on its exact address if any, else to those on 0; within such a group one
 * listener is chosen by a hash of the 4-tuple, so a flow always meets the same
 * one while the group is unchanged. Closing a listener resets the connections
 * it has not handed out; later SYNs go to the rest of its group. */
int rusty_tcp_listen(struct rusty_stack *stack, uint32_t ip, uint16_t port, uint32_t backlog, uint32_t flags,
                     uint32_t *sock);
/* -EAGAIN when no connection is waiting. */
int rusty_tcp_accept(struct rusty_stack *stack, uint32_t lsock, uint32_t *sock);
/* src_ip 0: the routing interface's address; src_port 0: an ephemeral port. */
int rusty_tcp_connect(struct rusty_stack *stack, uint32_t src_ip, uint32_t dst, uint16_t port,
                      uint16_t src_port, uint64_t now_us, uint32_t *sock);
/* Bytes accepted into the send buffer; -EAGAIN when full, -EPIPE after shutdown/close. */
int rusty_tcp_send(struct rusty_stack *stack, uint32_t sock, const uint8_t *data, size_t len, uint64_t now_us);
/* Queue bytes [off, off+len) of a static payload without copying them: segments
 * are built from the payload and checksummed from its prefix table. Returns
 * bytes accepted (counted against a per-connection bound of queued payload
 * bytes, max(4 MiB, 4 x sndbuf), and 16 queue descriptors (byte runs and payload
 * ranges alternating), not against
 * the send buffer); -EAGAIN when none, -EPIPE after shutdown/close, -EINVAL
 * for a range outside the payload. */
int rusty_tcp_send_payload(struct rusty_stack *stack, uint32_t sock, struct rusty_payload *p, size_t off,
                           size_t len, uint64_t now_us);
/* Bytes copied out; 0 at EOF; -EAGAIN when nothing is readable yet. */
int rusty_tcp_recv(struct rusty_stack *stack, uint32_t sock, uint8_t *buf, size_t cap);
/* Zero-copy receive: the first contiguous readable region of the receive ring,
 * valid until those bytes are consumed (consume/recv) or the handle is closed;
 * returns its length (also in *len), 0 at EOF, -EAGAIN when nothing is
 * readable yet, or the connection's error as recv does. */
int rusty_tcp_peek(struct rusty_stack *stack, uint32_t sock, const uint8_t **data, size_t *len);
/* Release the first n readable bytes (n <= readable); may send a window update. */
int rusty_tcp_consume(struct rusty_stack *stack, uint32_t sock, size_t n, uint64_t now_us);
/* For a peeked view kept past its use: the connection moves to a copy of its
 * receive ring and the old ring (still holding the view's bytes) becomes the
 * caller's, to free with rusty_tcp_ring_free once the view is gone. Call it
 * before rusty_tcp_consume: consuming the last readable bytes gives the ring back. */
int rusty_tcp_rx_detach(struct rusty_stack *stack, uint32_t sock, uint8_t **old_ring);
void rusty_tcp_ring_free(uint8_t *ring);
/* how: 0 read side, 1 write side (FIN after queued data), 2 both. */
int rusty_tcp_shutdown(struct rusty_stack *stack, uint32_t sock, int how, uint64_t now_us);
/* Graceful close; the handle is released, the connection finishes on its own. */
int rusty_tcp_close(struct rusty_stack *stack, uint32_t sock, uint64_t now_us);
/* Reset the connection (RST) and release the handle. */
int rusty_tcp_abort(struct rusty_stack *stack, uint32_t sock, uint64_t now_us);
int rusty_tcp_get_info(struct rusty_stack *stack, uint32_t sock, struct rusty_tcp_info *out);
int rusty_tcp_set_option(struct rusty_stack *stack, uint32_t sock, int opt, int64_t value);
/* The value in force of RUSTY_TCP_NODELAY or RUSTY_TCP_KEEPALIVE (0 or 1), on a connection or a listener. */
int rusty_tcp_get_option(struct rusty_stack *stack, uint32_t sock, int opt, int64_t *value);

#endif
