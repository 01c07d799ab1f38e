//! Media relay benchmark: G.711 calls, DTLS-SRTP on the browser leg and plain RTP on the trunk leg,
//! relayed by `MediaSession` through real UDP sockets on 127.0.0.1, measured in the same run against a
//! bare recv/send relay on the very same sockets (the limit of this machine's kernel path).
//!
//! - Each call: two gateway sockets (browser leg, trunk leg) and one `MediaSession`, connected for real
//!   (ICE check, DTLS handshake with str0m's `dimpl` as the browser) before any load runs.
//! - The load generator sends 50 packets/s per direction per call (172-byte G.711 20 ms packets; SRTP
//!   toward the browser leg), paced evenly, bounded in count and time, with `sendmmsg`/`recvmmsg` on two
//!   sockets so that the relay, not the generator, saturates first. It sends a consent check per call
//!   every 4 s, as a browser does.
//! - The relay under test is one thread (one core): a mio loop reading the clock once per wake, with
//!   the sessions' timers in a heap as gatewayd's media thread keeps them. Like gatewayd's media thread
//!   (`[media] realtime_priority`) it runs on SCHED_FIFO, pinned to its own CPU, the generator on the
//!   other (`--no-realtime` leaves both to the normal scheduler: the figures then mostly show this
//!   shared machine's scheduling noise, for both relays alike).
//! - For each relay the number of calls doubles, then bisects, to the largest count relayed at < 0.1 %
//!   loss; then both relays' CPU per packet at that load in five alternating rounds (the median ratio
//!   is the one against the goal); then both relays run at half that load for latency, in alternating
//!   rounds: the added latency
//!   is each datagram's time inside the relay (kernel receive stamp on the relay's socket → its send
//!   returned), the end-to-end one is from the generator's stamp in the payload to the kernel's
//!   receive stamp back at the generator. The latency rounds run twice: with the CPUs idling as the
//!   machine has them, then holding a PM QoS request of 0 µs as gatewayd does with `[media]
//!   cpu_latency_us = 0` (on a VM a halted virtual CPU's wake-up is most of the tail).
//!
//! Prints figures and ratios; never fails on a time. `cargo bench -p edge-media --bench relay`
//! (`-- --quick` for shorter steps, as CI runs it).

#![allow(
    unsafe_code,
    reason = "recvmmsg/sendmmsg, setrlimit and the thread CPU clock through libc"
)]
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a benchmark reads the clock and owns sockets"
)]
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    clippy::cast_lossless,
    reason = "benchmark arithmetic on small, known ranges; a failure here is a failed run"
)]

#[allow(dead_code, reason = "the benchmark uses part of the test kit")]
#[path = "../src/testkit.rs"]
mod testkit;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edge_media::dtls::{DtlsIdentity, DtlsRole, FingerprintHash};
use edge_media::rtp::{RtpHeader, is_rtcp};
use edge_media::session::{Direction, Forward, MediaEvent, MediaSession, Negotiated, SessionConfig, Socket};
use edge_media::srtp::SrtpContext;
use mio::{Events, Interest, Poll, Token};

const PTIME: Duration = Duration::from_millis(20);
const PAYLOAD: usize = 160;
const LOSS_LIMIT: f64 = 0.001;
const BATCH: usize = 64;
/// The generator's pacing tick: packets due within it leave together.
const TICK_NS: u64 = 50_000;
/// Packets later than this (the generator was descheduled) are skipped, not sent in a burst.
const MAX_LAG: Duration = Duration::from_millis(1);
const ICE_PWD: &str = "bench-ice-password-0123";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Bare,
    Edge,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare recv/send",
            Mode::Edge => "edge-media",
        }
    }
}

/// The gateway's side of one call.
struct GwCall {
    browser: mio::net::UdpSocket,
    trunk: mio::net::UdpSocket,
    session: MediaSession,
    /// The earliest deadline this call has in the timer heap.
    armed: Option<Instant>,
}

impl GwCall {
    fn socket(&self, s: Socket) -> &mio::net::UdpSocket {
        match s {
            Socket::Browser => &self.browser,
            Socket::TrunkRtp | Socket::TrunkRtcp => &self.trunk,
        }
    }
}

/// The generator's (browser's and trunk's) side of one call.
struct GenCall {
    gw_browser: SocketAddrV4,
    gw_trunk: SocketAddrV4,
    tx: SrtpContext,
    rx: SrtpContext,
    seq: u16,
    consent: Vec<u8>,
}

#[derive(Default, Debug, Clone, Copy)]
struct RelayReport {
    cpu: Duration,
    send_errors: u64,
}

#[derive(Debug, Clone, Copy)]
struct Step {
    sent: u64,
    /// Packets the generator skipped because it was itself stalled for more than [`MAX_LAG`].
    skipped: u64,
    received: u64,
    wall: Duration,
    relay: RelayReport,
    gen_cpu: Duration,
    max_lag: Duration,
}

impl Step {
    fn loss(&self) -> f64 {
        1.0 - self.received as f64 / self.sent.max(1) as f64
    }
    fn passed(&self) -> bool {
        self.loss() < LOSS_LIMIT
    }
    fn relay_share(&self) -> f64 {
        self.relay.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }
    fn cpu_per_packet(&self) -> Duration {
        self.relay.cpu.div_f64(self.received.max(1) as f64)
    }
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit; raising the soft limit to the hard one is allowed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// Large buffers, and the kernel's receive timestamp on every datagram (so that the generator's own
/// loop never counts as relay latency).
fn set_buffers(fd: i32, bytes: i32) {
    set_options(
        fd,
        &[
            (libc::SO_RCVBUF, bytes),
            (libc::SO_SNDBUF, bytes),
            (libc::SO_TIMESTAMPNS, 1),
        ],
    );
}

fn set_options(fd: i32, options: &[(i32, i32)]) {
    for &(opt, bytes) in options {
        // SAFETY: `fd` is an open socket and the option value is a valid i32 of the given size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&raw const bytes).cast(),
                size_of::<i32>() as libc::socklen_t,
            );
        }
    }
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("the bench runs on 127.0.0.1"),
    }
}

fn to_sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Fixed arrays for one `recvmmsg`/`sendmmsg` batch.
struct Mmsg {
    bufs: Vec<[u8; 1500]>,
    lens: Vec<usize>,
    /// Control space for the kernel's receive timestamp.
    ctrl: Vec<[u64; 8]>,
    /// The kernel's receive time of each datagram (CLOCK_REALTIME ns), 0 if absent.
    received: Vec<u64>,
    addrs: Vec<libc::sockaddr_in>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    count: usize,
}

impl Mmsg {
    fn new() -> Self {
        Self {
            bufs: vec![[0u8; 1500]; BATCH],
            lens: vec![0; BATCH],
            ctrl: vec![[0; 8]; BATCH],
            received: vec![0; BATCH],
            addrs: vec![to_sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)); BATCH],
            // SAFETY: iovec and mmsghdr are plain C structs for which all-zero is a valid value.
            iov: vec![unsafe { std::mem::zeroed() }; BATCH],
            // SAFETY: as above.
            hdrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            count: 0,
        }
    }

    fn wire(&mut self, count: usize, receiving: bool) {
        for i in 0..count {
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: if receiving { 1500 } else { self.lens[i] },
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.addrs[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iov[i];
            h.msg_iovlen = 1;
            if receiving {
                h.msg_control = self.ctrl[i].as_mut_ptr().cast();
                h.msg_controllen = size_of::<[u64; 8]>();
            } else {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            }
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
    }

    /// Receives up to a batch without blocking; returns how many arrived.
    fn recv(&mut self, fd: i32) -> usize {
        self.wire(BATCH, true);
        // SAFETY: the headers point into this struct's own buffers, which outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let n = n.max(0) as usize;
        for i in 0..n {
            self.lens[i] = self.hdrs[i].msg_len as usize;
            self.received[i] = 0;
            let h = &self.hdrs[i].msg_hdr;
            // SAFETY: the kernel filled `msg_control` of this header; the CMSG macros walk it within
            // `msg_controllen`, and an SCM_TIMESTAMPNS payload is one timespec.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(h);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                        let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                        self.received[i] = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                    }
                    c = libc::CMSG_NXTHDR(h, c);
                }
            }
        }
        n
    }

    fn push(&mut self) -> (&mut [u8; 1500], &mut usize, &mut libc::sockaddr_in) {
        let i = self.count;
        self.count += 1;
        (&mut self.bufs[i], &mut self.lens[i], &mut self.addrs[i])
    }

    /// Sends the queued datagrams; returns how many the kernel refused.
    fn flush(&mut self, fd: i32) -> u64 {
        let total = self.count;
        self.wire(total, false);
        let mut done = 0;
        while done < total {
            // SAFETY: the headers point into this struct's own buffers, which outlive the call.
            let n = unsafe { libc::sendmmsg(fd, self.hdrs[done..].as_mut_ptr(), (total - done) as u32, 0) };
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        self.count = 0;
        (total - done) as u64
    }
}

/// Pins the calling thread to `cpu` and gives it SCHED_FIFO priority, as a media thread on an
/// appliance runs: the relay and the generator then neither share a CPU nor wait behind the machine's
/// other work. Best effort (needs root or CAP_SYS_NICE and two CPUs); says once if refused.
fn realtime(cpu: usize) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if std::env::args().any(|a| a == "--no-realtime") {
        return;
    }
    // SAFETY: `set` is a valid cpu_set_t built with the libc macros; the param struct is valid.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let pinned = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) == 0;
        let param = libc::sched_param { sched_priority: 10 };
        pinned && libc::sched_setscheduler(0, libc::SCHED_FIFO, &raw const param) == 0
    };
    if !ok && !WARNED.swap(true, Ordering::Relaxed) {
        println!("  (no SCHED_FIFO or CPU pinning here: latency includes the machine's scheduling noise)");
    }
}

/// One datagram with the kernel's receive time (CLOCK_REALTIME ns; SO_TIMESTAMPNS must be on).
fn recv_stamped(fd: i32, buf: &mut [u8; 1500]) -> Option<(usize, SocketAddr, u64)> {
    // SAFETY: all-zero is a valid sockaddr_in and msghdr.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut ctrl = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_name = (&raw mut addr).cast();
    hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    hdr.msg_iov = &raw mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = ctrl.as_mut_ptr().cast();
    hdr.msg_controllen = size_of_val(&ctrl);
    // SAFETY: every pointer in `hdr` points at a live local of the size given.
    let n = unsafe { libc::recvmsg(fd, &raw mut hdr, libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    let mut received = 0;
    // SAFETY: the kernel filled `msg_control` within `msg_controllen`; an SCM_TIMESTAMPNS payload is
    // one timespec.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                received = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            }
            c = libc::CMSG_NXTHDR(&raw const hdr, c);
        }
    }
    let from = SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    );
    Some((n as usize, SocketAddr::V4(from), received))
}

/// The load generator: a browser-side and a trunk-side socket for all calls.
struct Generator {
    browser: UdpSocket,
    trunk: UdpSocket,
    calls: Vec<GenCall>,
    /// Gateway port → call index (both legs' ports).
    by_port: Vec<u32>,
    out_b: Mmsg,
    out_t: Mmsg,
    inbox: Mmsg,
}

/// CLOCK_REALTIME in ns: the clock the kernel stamps received datagrams with (SO_TIMESTAMPNS).
fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn stamp(buf: &mut [u8], now_ns: u64) {
    buf[12..20].copy_from_slice(&now_ns.to_be_bytes());
}

fn read_stamp(buf: &[u8], received_ns: u64) -> Option<u64> {
    let sent = u64::from_be_bytes(buf.get(12..20)?.try_into().ok()?);
    received_ns.checked_sub(sent)
}

impl Generator {
    /// Runs `calls` calls for `length` against the relay in `mode`; returns sent, received, and
    /// one-way latencies in ns when `latency` is set.
    fn run(&mut self, calls: usize, length: Duration, mode: Mode, latency: &mut Option<Vec<u64>>) -> Step {
        let rounds = (length.as_nanos() / PTIME.as_nanos()) as usize;
        let total = rounds * calls;
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer; 1 µs slack makes the pacing tick precise.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000) };
        realtime(0);
        let start = Instant::now();
        let cpu0 = thread_cpu();
        let (mut cursor, mut sent, mut received, mut skipped) = (0usize, 0u64, 0u64, 0u64);
        let mut max_lag = Duration::ZERO;
        let mut drain_until = None;
        let slot = PTIME.as_nanos() as u64 / calls as u64;
        loop {
            let now = Instant::now();
            let elapsed = (now - start).as_nanos() as u64;
            // Queue every packet that is due, in schedule order.
            while cursor < total {
                let (round, call) = (cursor / calls, cursor % calls);
                let due = round as u64 * PTIME.as_nanos() as u64 + call as u64 * slot;
                if due > elapsed {
                    break;
                }
                let lag = Duration::from_nanos(elapsed - due);
                max_lag = max_lag.max(lag);
                cursor += 1;
                // A phone does not catch up: when this shared machine stalls the generator itself,
                // what it missed is skipped rather than sent in one burst that no real call makes.
                if lag > MAX_LAG {
                    skipped += 2;
                    continue;
                }
                self.queue(call, round, mode);
                sent += 2;
                // Under latency measurement, small batches: a datagram's stamp is taken when its batch
                // goes out, so a long batch would count the generator's own sending as relay time.
                let batch = if latency.is_some() { 16 } else { BATCH };
                if self.out_b.count + 1 >= batch || self.out_t.count >= batch {
                    self.flush(mode);
                }
            }
            self.flush(mode);
            received += self.receive(mode, latency);
            if cursor >= total {
                let until = *drain_until.get_or_insert(now + Duration::from_millis(300));
                if now >= until {
                    break;
                }
            }
            // Sleep (never spin: the relay needs the other core) until the next packet is due, at least
            // one tick. Arrivals wait in the socket: their kernel receive stamp is what counts.
            let next_due = if cursor < total {
                let (round, call) = (cursor / calls, cursor % calls);
                round as u64 * PTIME.as_nanos() as u64 + call as u64 * slot
            } else {
                elapsed + 1_000_000
            };
            let wait = next_due
                .saturating_sub(start.elapsed().as_nanos() as u64)
                .clamp(TICK_NS, 10_000_000);
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: wait as i64,
            };
            // SAFETY: `ts` is a valid timespec; the remainder pointer may be null.
            unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
        }
        Step {
            sent,
            received,
            skipped,
            wall: start.elapsed(),
            relay: RelayReport::default(),
            gen_cpu: thread_cpu() - cpu0,
            max_lag,
        }
    }

    fn queue(&mut self, call: usize, round: usize, mode: Mode) {
        let c = &mut self.calls[call];
        c.seq = c.seq.wrapping_add(1);
        let h = RtpHeader {
            marker: false,
            pt: 0,
            seq: c.seq,
            ts: u32::from(c.seq).wrapping_mul(160),
            ssrc: 0x1000_0000 + call as u32,
        };
        for (out, to, ssrc) in [
            (&mut self.out_b, c.gw_browser, h.ssrc),
            (&mut self.out_t, c.gw_trunk, h.ssrc ^ 0x0100_0000),
        ] {
            let (buf, len, addr) = out.push();
            buf[0] = 0x80;
            RtpHeader { ssrc, ..h }.write(&mut buf[..]);
            buf[12..12 + PAYLOAD].fill(0xd5);
            *len = 12 + PAYLOAD;
            *addr = to_sockaddr(to);
        }
        // A consent check every 4 s per call, spread over the calls.
        if mode == Mode::Edge && (round + call).is_multiple_of(200) {
            let (buf, len, addr) = self.out_b.push();
            buf[..c.consent.len()].copy_from_slice(&c.consent);
            *len = c.consent.len();
            *addr = to_sockaddr(c.gw_browser);
        }
    }

    /// Stamps the send time into the queued packets, protects the browser-side ones and sends.
    fn flush(&mut self, mode: Mode) {
        let now = realtime_ns();
        for i in 0..self.out_b.count {
            let len = self.out_b.lens[i];
            let buf = &mut self.out_b.bufs[i];
            if buf[0] < 128 {
                continue; // a consent check
            }
            stamp(buf, now);
            if mode == Mode::Edge {
                let port = u16::from_be(self.out_b.addrs[i].sin_port);
                let call = self.by_port[usize::from(port)] as usize;
                self.out_b.lens[i] = self.calls[call].tx.protect_rtp(buf, len).unwrap();
            }
        }
        for i in 0..self.out_t.count {
            stamp(&mut self.out_t.bufs[i], now);
        }
        self.out_b.flush(self.browser.as_raw_fd());
        self.out_t.flush(self.trunk.as_raw_fd());
    }

    /// Drains both sockets; returns the media packets that arrived.
    fn receive(&mut self, mode: Mode, latency: &mut Option<Vec<u64>>) -> u64 {
        let mut got = 0;
        for browser_side in [true, false] {
            let fd = if browser_side {
                self.browser.as_raw_fd()
            } else {
                self.trunk.as_raw_fd()
            };
            loop {
                let n = self.inbox.recv(fd);
                for i in 0..n {
                    let len = self.inbox.lens[i];
                    let buf = &mut self.inbox.bufs[i][..len];
                    if buf.first().is_none_or(|b| *b < 128) || is_rtcp(buf) {
                        // STUN: a consent response, or a check the bare relay passed on; RTCP: the
                        // relay's own receiver reports (the generator sends no RTCP to translate).
                        continue;
                    }
                    got += 1;
                    let Some(samples) = latency.as_mut() else {
                        continue;
                    };
                    let plain = if browser_side && mode == Mode::Edge {
                        let port = u16::from_be(self.inbox.addrs[i].sin_port);
                        let call = self.by_port[usize::from(port)] as usize;
                        match self.calls[call].rx.unprotect_rtp(buf) {
                            Ok(n) => &buf[..n],
                            Err(e) => panic!("the browser rejects the gateway's SRTP: {e:?}"),
                        }
                    } else {
                        &buf[..]
                    };
                    if let Some(ns) = read_stamp(plain, self.inbox.received[i]) {
                        samples.push(ns);
                    }
                }
                if n < BATCH {
                    break;
                }
            }
        }
        got
    }
}

/// The relay under test: one thread, one mio loop over both legs' sockets of `calls`.
/// With `residence`, each relayed datagram's time inside the relay (kernel receive stamp → its send
/// returned) goes into it: the latency the relay adds, free of the generator's own delays.
fn relay(
    calls: &mut [GwCall],
    mode: Mode,
    stop: &AtomicBool,
    gen_b: SocketAddr,
    gen_t: SocketAddr,
    mut residence: Option<&mut Vec<u64>>,
) -> RelayReport {
    let mut poll = Poll::new().unwrap();
    for (i, c) in calls.iter_mut().enumerate() {
        poll.registry()
            .register(&mut c.browser, Token(2 * i), Interest::READABLE)
            .unwrap();
        poll.registry()
            .register(&mut c.trunk, Token(2 * i + 1), Interest::READABLE)
            .unwrap();
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 1500];
    let mut report = RelayReport::default();
    // Session timers as gatewayd's media thread keeps them: a heap of (deadline, call), a call re-armed
    // after each datagram only when its deadline moved earlier; stale entries are skipped when popped.
    let mut timers = BinaryHeap::with_capacity(calls.len() * 4);
    if mode == Mode::Edge {
        for (i, c) in calls.iter_mut().enumerate() {
            c.armed = None;
            arm(&mut timers, c, i);
        }
    }
    realtime(1);
    let cpu0 = thread_cpu();
    while !stop.load(Ordering::Relaxed) {
        let wait = timers
            .peek()
            .map_or(Duration::from_millis(20), |(Reverse(at), _)| {
                at.saturating_duration_since(Instant::now())
            });
        poll.poll(&mut events, Some(wait.min(Duration::from_millis(20))))
            .unwrap();
        // One clock read per wake.
        let now = Instant::now();
        for ev in &events {
            let (i, browser_side) = (ev.token().0 / 2, ev.token().0 % 2 == 0);
            let c = &mut calls[i];
            loop {
                let sock = if browser_side { &c.browser } else { &c.trunk };
                let (len, from, received) = if residence.is_some() {
                    match recv_stamped(sock.as_raw_fd(), &mut buf) {
                        Some(r) => r,
                        None => break,
                    }
                } else {
                    match sock.recv_from(&mut buf) {
                        Ok((len, from)) => (len, from, 0),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("recv: {e}"),
                    }
                };
                match mode {
                    Mode::Bare => {
                        let (out, to) = if browser_side {
                            (&c.trunk, gen_t)
                        } else {
                            (&c.browser, gen_b)
                        };
                        if out.send_to(&buf[..len], to).is_err() {
                            report.send_errors += 1;
                        } else if let Some(r) = residence.as_deref_mut() {
                            r.push(realtime_ns().saturating_sub(received));
                        }
                    }
                    Mode::Edge => {
                        let fwd = if browser_side {
                            c.session.from_browser(now, from, &mut buf, len)
                        } else {
                            c.session.from_trunk(now, from, false, &mut buf, len)
                        };
                        if let Forward::Send { from, to, len } = fwd {
                            if c.socket(from).send_to(&buf[..len], to).is_err() {
                                report.send_errors += 1;
                            } else if let Some(r) = residence.as_deref_mut() {
                                r.push(realtime_ns().saturating_sub(received));
                            }
                        }
                        flush_session(c, &mut report);
                        arm(&mut timers, c, i);
                    }
                }
            }
        }
        while let Some(&(Reverse(at), i)) = timers.peek()
            && at <= now
        {
            timers.pop();
            let c = &mut calls[i];
            if c.armed != Some(at) {
                continue;
            }
            c.armed = None;
            c.session.handle_timeout(now);
            flush_session(c, &mut report);
            arm(&mut timers, c, i);
        }
    }
    report.cpu = thread_cpu() - cpu0;
    for c in calls.iter_mut() {
        poll.registry().deregister(&mut c.browser).unwrap();
        poll.registry().deregister(&mut c.trunk).unwrap();
    }
    report
}

fn arm(timers: &mut BinaryHeap<(Reverse<Instant>, usize)>, c: &mut GwCall, i: usize) {
    if let Some(at) = c.session.poll_timeout()
        && c.armed.is_none_or(|armed| at < armed)
    {
        timers.push((Reverse(at), i));
        c.armed = Some(at);
    }
}

fn flush_session(c: &mut GwCall, report: &mut RelayReport) {
    while let Some(t) = c.session.poll_transmit() {
        if c.socket(t.from).send_to(&t.bytes, t.to).is_err() {
            report.send_errors += 1;
        }
    }
    while let Some(e) = c.session.poll_event() {
        assert!(
            matches!(e, MediaEvent::TrunkLatched(_)),
            "the call broke under load: {e:?}"
        );
    }
}

struct Bench {
    gw: Vec<GwCall>,
    generator: Generator,
    step: Duration,
    /// Time inside the relay per datagram of the last latency step (ns).
    residence: Vec<u64>,
}

impl Bench {
    fn step(&mut self, calls: usize, mode: Mode, latency: &mut Option<Vec<u64>>) -> Step {
        if mode == Mode::Edge {
            self.refresh_consent(calls);
        }
        let stop = AtomicBool::new(false);
        let gen_b = self.generator.browser.local_addr().unwrap();
        let gen_t = self.generator.trunk.local_addr().unwrap();
        let (gw, generator, length) = (&mut self.gw[..calls], &mut self.generator, self.step);
        self.residence.clear();
        let residence = latency.is_some().then_some(&mut self.residence);
        let (mut step, report) = std::thread::scope(|s| {
            let relay = s.spawn(|| relay(gw, mode, &stop, gen_b, gen_t, residence));
            let step = generator.run(calls, length, mode, latency);
            stop.store(true, Ordering::Relaxed);
            (step, relay.join().unwrap())
        });
        step.relay = report;
        // Nothing left over for the next step.
        let mut buf = [0u8; 1500];
        for c in &self.gw[..calls] {
            while c.browser.recv_from(&mut buf).is_ok() {}
            while c.trunk.recv_from(&mut buf).is_ok() {}
        }
        self.generator.receive(mode, &mut None);
        println!(
            "  {:<15} {:>5} calls  sent {:>8}  lost {:>6} ({:>6.3} %)  relay CPU {:>5.1} %, {:>5.2} µs/packet  generator CPU {:>5.1} %, max lag {:>5.1} ms, skipped {}  {}",
            mode.name(),
            calls,
            step.sent,
            step.sent.saturating_sub(step.received),
            step.loss() * 100.0,
            step.relay_share() * 100.0,
            step.cpu_per_packet().as_secs_f64() * 1e6,
            step.gen_cpu.as_secs_f64() / step.wall.as_secs_f64() * 100.0,
            step.max_lag.as_secs_f64() * 1e3,
            step.skipped,
            if step.passed() { "ok" } else { "LOSS" },
        );
        step
    }

    /// The bare relay's steps do not reach the sessions: renew each browser's consent in memory (as
    /// its periodic check would have) so that no session expires between steps, and run what timers
    /// came due meanwhile.
    fn refresh_consent(&mut self, calls: usize) {
        let now = Instant::now();
        let from = self.generator.browser.local_addr().unwrap();
        let mut buf = [0u8; 1500];
        for (c, g) in self.gw[..calls].iter_mut().zip(&self.generator.calls) {
            buf[..g.consent.len()].copy_from_slice(&g.consent);
            c.session.from_browser(now, from, &mut buf, g.consent.len());
            // Timers that came due between steps (own RTCP reports, nobody listening) run now, not
            // all in the step's first wake.
            if c.session.poll_timeout().is_some_and(|t| t <= now) {
                c.session.handle_timeout(now);
            }
            while c.session.poll_transmit().is_some() {}
        }
    }

    /// Doubles, then bisects, to the largest call count relayed at < 0.1 % loss.
    fn max_calls(&mut self, mode: Mode, start: usize) -> (usize, Option<Step>) {
        let cap = self.gw.len();
        let (mut lo, mut hi) = (0usize, None::<usize>);
        let mut best = None;
        let mut n = start.min(cap);
        loop {
            let s = self.step(n, mode, &mut None);
            if s.passed() {
                lo = n;
                best = Some(s);
            } else {
                hi = Some(n);
            }
            n = match hi {
                None if n == cap => break,
                None => (n * 2).min(cap),
                Some(h) if h - lo > (lo / 16).max(25) => usize::midpoint(lo, h),
                Some(_) => break,
            };
        }
        (lo, best)
    }
}

fn setup(capacity: usize) -> Bench {
    let epoch = Instant::now();
    let identity = DtlsIdentity::generate().unwrap();
    let generator_browser = UdpSocket::bind("127.0.0.1:0").unwrap();
    let generator_trunk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&generator_browser, &generator_trunk] {
        s.set_nonblocking(true).unwrap();
        set_buffers(s.as_raw_fd(), 8 << 20);
    }
    let gen_b = generator_browser.local_addr().unwrap();
    let gen_t = generator_trunk.local_addr().unwrap();
    let rss0 = rss_bytes();
    let mut gw = Vec::with_capacity(capacity);
    let mut gen_calls = Vec::with_capacity(capacity);
    let mut by_port = vec![u32::MAX; 65536];
    for i in 0..capacity {
        let browser = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let trunk = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        for s in [&browser, &trunk] {
            set_options(s.as_raw_fd(), &[(libc::SO_TIMESTAMPNS, 1)]);
        }
        let (gw_browser, gw_trunk) = (v4(browser.local_addr().unwrap()), v4(trunk.local_addr().unwrap()));
        by_port[usize::from(gw_browser.port())] = i as u32;
        by_port[usize::from(gw_trunk.port())] = i as u32;
        let (mut dtls, fingerprint) = testkit::dimpl_peer(true, epoch);
        let ufrag = format!("b{i}");
        let mut session = MediaSession::new(
            epoch,
            &identity,
            SessionConfig {
                ice_ufrag: format!("g{i}"),
                ice_pwd: ICE_PWD.into(),
                ssrcs: (0x5000_0000 + i as u32, 0x6000_0000 + i as u32),
                initial_seqs: (i as u16, (i as u16).wrapping_mul(7)),
                inactivity_timeout: Duration::from_secs(600),
                hold_timeout: Duration::from_secs(3600),
            },
            Negotiated {
                browser_ufrag: ufrag.clone(),
                browser_fingerprint: (FingerprintHash::Sha256, fingerprint),
                dtls_role: DtlsRole::Server,
                trunk_rtp: Some(gen_t),
                trunk_rtcp: None,
                trunk_rtcp_mux: true,
                trunk_sdes: None,
                codec: (8000, 0, 0),
                alternatives: Vec::new(),
                telephone_event: Some((126, 101, 8000)),
                browser_direction: Direction::SendRecv,
                trunk_direction: Direction::SendRecv,
                ptime: PTIME,
            },
        )
        .unwrap();
        // ICE (nominating) and DTLS, in memory, from the generator's real address.
        let username = format!("g{i}:{ufrag}");
        let mut check = testkit::stun_request(&username, ICE_PWD, true);
        let n = check.len();
        check.resize(1500, 0);
        assert_eq!(session.from_browser(epoch, gen_b, &mut check, n), Forward::Done);
        while session.poll_transmit().is_some() {}
        let ((tx, rx), _) = testkit::dtls_handshake(&mut session, epoch, gen_b, &mut dtls);
        while session.poll_event().is_some() {}
        gw.push(GwCall {
            armed: None,
            browser,
            trunk,
            session,
        });
        gen_calls.push(GenCall {
            gw_browser,
            gw_trunk,
            tx,
            rx,
            seq: i as u16,
            consent: testkit::stun_request(&username, ICE_PWD, false),
        });
    }
    let rss = rss_bytes().saturating_sub(rss0);
    println!(
        "setup: {capacity} calls connected (ICE + DTLS-SRTP with dimpl) in {:.1} s; RSS grew {:.1} KiB per call \
         (gateway sockets' user side + session, plus the generator's per-call SRTP state and consent check)",
        epoch.elapsed().as_secs_f64(),
        rss as f64 / capacity as f64 / 1024.0
    );
    Bench {
        gw,
        generator: Generator {
            browser: generator_browser,
            trunk: generator_trunk,
            calls: gen_calls,
            by_port,
            out_b: Mmsg::new(),
            out_t: Mmsg::new(),
            inbox: Mmsg::new(),
        },
        step: Duration::from_secs(3),
        residence: Vec::with_capacity(capacity * 400),
    }
}

/// Prints the search results; returns the calls edge-media relayed.
fn report(found: &[(Mode, usize, Option<Step>)], capacity: usize) -> usize {
    let (_, bare_calls, _) = found[0];
    let (_, edge_calls, _) = found[1];
    println!("results:");
    for (mode, calls, best) in found {
        let per_packet = best.map_or(Duration::ZERO, |s| s.cpu_per_packet());
        let capped = if *calls == capacity {
            " (every call the bench could open passed: a lower bound)"
        } else {
            ""
        };
        println!(
            "  {:<15} {:>5} calls/core at < 0.1 % loss{capped}; {:.2} µs relay CPU per packet → {:.0} calls per fully busy core",
            mode.name(),
            calls,
            per_packet.as_secs_f64() * 1e6,
            1.0 / (per_packet.as_secs_f64().max(1e-9) * 100.0),
        );
    }
    println!(
        "  ratio to the limit by calls at < 0.1 % loss: {:.2}×",
        edge_calls as f64 / bare_calls.max(1) as f64
    );
    edge_calls
}

/// CPU per packet of both relays at `calls`, in alternating rounds (one round's figure moves by ±10 %
/// with this shared machine's other work); prints each round and the median ratio.
fn cpu_rounds(bench: &mut Bench, calls: usize) {
    let rounds = 5;
    println!("CPU per packet at {calls} calls, {rounds} alternating rounds:");
    let mut per_mode = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (m, mode) in [Mode::Bare, Mode::Edge].into_iter().enumerate() {
            let step = bench.step(calls, mode, &mut None);
            per_mode[m].push(step.cpu_per_packet().as_secs_f64());
        }
    }
    let [bare, edge] = per_mode.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    println!(
        "  median: bare recv/send {:.2} µs, edge-media {:.2} µs per packet → {:.0} / {:.0} calls per fully busy core; \
         ratio to the limit by CPU per packet: {:.2}× (goal ≥ 0.8×)",
        bare * 1e6,
        edge * 1e6,
        1.0 / (bare.max(1e-9) * 100.0),
        1.0 / (edge.max(1e-9) * 100.0),
        bare / edge.max(1e-12)
    );
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Duration::from_nanos(sorted.get(i).copied().unwrap_or(0))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let fds = raise_fd_limit();
    let capacity = (((fds.saturating_sub(64)) / 2) as usize).min(if quick { 3000 } else { 4000 });
    println!(
        "media relay bench: G.711 (172-byte RTP, 20 ms), 50 packets/s per direction per call, DTLS-SRTP (browser) ⇄ RTP (trunk) on 127.0.0.1; \
         relay = one thread; pass = loss < {} %",
        LOSS_LIMIT * 100.0
    );
    let mut bench = setup(capacity);
    if quick {
        bench.step = Duration::from_millis(1500);
    }
    // `--latency N`: only the half-load latency run, at N calls.
    let latency_only = std::env::args()
        .skip_while(|a| a != "--latency")
        .nth(1)
        .map(|n| n.parse::<usize>().unwrap());
    let mut found = Vec::new();
    for mode in [Mode::Bare, Mode::Edge] {
        if latency_only.is_some() {
            break;
        }
        println!("{} (steps of {:.1} s):", mode.name(), bench.step.as_secs_f64());
        let (calls, best) = bench.max_calls(mode, 250);
        found.push((mode, calls, best));
    }
    let edge_calls = match latency_only {
        Some(n) => n * 2,
        None => {
            let calls = report(&found, capacity);
            cpu_rounds(&mut bench, calls.min(found[0].1).max(10));
            calls
        }
    };
    let half = (edge_calls / 2).clamp(10, capacity);
    // Twice: with the CPUs idling as this machine has them, then as gatewayd runs with
    // `[media] cpu_latency_us = 0` (idle CPUs poll instead of halting while calls are up).
    let idle = latency_rounds(
        &mut bench,
        half,
        "CPU idle as the machine has it (no cpu_latency_us)",
    );
    match hold_cpu_latency(0) {
        Ok(_request) => {
            let polled = latency_rounds(
                &mut bench,
                half,
                "[media] cpu_latency_us = 0 (PM QoS request held, as gatewayd holds it while calls are up)",
            );
            println!(
                "  added latency p99 at half load, edge-media: {:.1} µs with cpu_latency_us = 0 (goal ≤ 200 µs), {:.1} µs \
                 without; bare relay {:.1} / {:.1} µs",
                polled[1][1], idle[1][1], polled[0][1], idle[0][1]
            );
        }
        Err(e) => println!(
            "  !! cannot hold a CPU latency request ({CPU_LATENCY_DEVICE}: {e}; needs root): the run with \
             cpu_latency_us = 0 is SKIPPED"
        ),
    }
}

const CPU_LATENCY_DEVICE: &str = "/dev/cpu_dma_latency";

/// A PM QoS CPU latency request of `us`, held until the file is dropped (as gatewayd's media thread
/// holds `[media] cpu_latency_us`).
fn hold_cpu_latency(us: i32) -> std::io::Result<std::fs::File> {
    let mut file = std::fs::OpenOptions::new().write(true).open(CPU_LATENCY_DEVICE)?;
    std::io::Write::write_all(&mut file, &us.to_ne_bytes())?;
    Ok(file)
}

/// Alternating short rounds of both relays at `calls`; prints each round and the medians, returns
/// [bare, edge] × [added p50, added p99, end-to-end p50, end-to-end p99] (medians of rounds, µs).
fn latency_rounds(bench: &mut Bench, calls: usize, setting: &str) -> [[f64; 4]; 2] {
    // Median of each round's percentile: a stall of this shared machine (milliseconds, now and then)
    // lands in one round of one relay, not in the figure; nine rounds, because on this shared machine
    // a noisy stretch can last two or three of them.
    let rounds = 9;
    println!(
        "latency at half load ({calls} calls), {setting}, {rounds} alternating rounds; added = inside the relay \
         (kernel receive stamp on its socket → its send returned), end to end = generator stamp before sendmmsg → \
         kernel receive stamp back at the generator (adds the generator's batching and both kernel hops):"
    );
    let mut per_mode = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (m, mode) in [Mode::Bare, Mode::Edge].into_iter().enumerate() {
            let mut samples = Some(Vec::with_capacity(calls * 100 * 4));
            bench.step(calls, mode, &mut samples);
            let mut e2e = samples.unwrap();
            e2e.sort_unstable();
            bench.residence.sort_unstable();
            let (e2e, added) = (Percentiles::of(&e2e), Percentiles::of(&bench.residence));
            println!("    {:<15} added      {added}", mode.name());
            println!("    {:<15} end to end {e2e}", "");
            per_mode[m].push((added, e2e));
        }
    }
    let median = |v: &[(Percentiles, Percentiles)], f: fn(&(Percentiles, Percentiles)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let [bare, edge] = per_mode.map(|v| {
        [
            median(&v, |p| p.0.p50),
            median(&v, |p| p.0.p99),
            median(&v, |p| p.1.p50),
            median(&v, |p| p.1.p99),
        ]
    });
    println!(
        "  median of rounds: added latency edge-media p50 {:.1} µs p99 {:.1} µs (goal p99 ≤ 200 µs), bare relay p50 {:.1} µs \
         p99 {:.1} µs; end to end edge-media p50 {:.1} µs p99 {:.1} µs, bare relay p50 {:.1} µs p99 {:.1} µs",
        edge[0], edge[1], bare[0], bare[1], edge[2], edge[3], bare[2], bare[3]
    );
    [bare, edge]
}

/// Latency percentiles of one round, in µs.
#[derive(Debug, Clone, Copy)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    samples: usize,
}

impl Percentiles {
    fn of(sorted: &[u64]) -> Self {
        let us = |p| percentile(sorted, p).as_secs_f64() * 1e6;
        Self {
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            p999: us(0.999),
            max: us(1.0),
            samples: sorted.len(),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:>6.1} µs  p90 {:>6.1} µs  p99 {:>7.1} µs  p99.9 {:>7.1} µs  max {:>7.1} µs  ({} samples)",
            self.p50, self.p90, self.p99, self.p999, self.max, self.samples
        )
    }
}
