//! The media plane's I/O shell: one dedicated OS thread (not tokio) around every call's sans-IO
//! [`MediaSession`].
//!
//! **Owns**: every media socket (per call a block of four ports from `[media]`: the browser port at the
//! block's base, the trunk's RTP/RTCP pair at base+2/base+3, base+1 unused so that trunk RTP stays
//! even), the port pool those blocks come from, the media thread and its clock reads, and the timer
//! heap that wakes sessions when their `poll_timeout` is due.
//!
//! **Never touches**: SDP, SIP, or any protocol rule. Sessions arrive fully described
//! ([`SessionConfig`] + [`Negotiated`]); what they decide comes back as [`MediaNotice`]s. This module
//! only moves datagrams and time between the sockets and the sessions.
//!
//! The SIP shell (a tokio current-thread runtime) drives it through cheap calls that never wait on
//! the media thread: port allocation binds sockets on the caller's thread under a small lock held per
//! call setup/release only; everything else is a command over a `std::sync::mpsc` channel plus a
//! `mio::Waker`. Events come back over a tokio unbounded channel.
//!
//! The thread's loop: `poll` until the earliest session deadline, one clock read per wake, every
//! readable socket drained into one fixed 1500-byte buffer and handed to its session (the session
//! rewrites it in place; plain RTP forwarding allocates nothing), then each touched session's
//! generated datagrams and events are drained and its timer re-armed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use edge_config::{MediaConfig, MediaSide};
use edge_media::dtls::{DtlsError, DtlsIdentity};
use edge_media::session::{
    Forward, Leg, MediaEvent, MediaSession, MediaStats, Negotiated, SessionConfig, Socket,
};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// The caller's name for a call (the SIP shell picks it; unique among running sessions).
pub(crate) type CallKey = u64;

/// A timeout of 0 in the configuration means "never": a deadline this far away never comes (and
/// still adds to an `Instant` without overflow).
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Largest datagram we read; longer ones are truncated by the kernel and fail the session's checks.
const DATAGRAM: usize = 1500;
/// The waker's token; socket tokens are `block * 3 + socket`.
const WAKER: Token = Token(usize::MAX);
/// Consecutive receive errors on one socket before we stop draining it for this wake.
const MAX_RECV_ERRORS: u32 = 8;
/// A session whose deadline is still due right after `handle_timeout` is retried this much later
/// rather than in a busy loop.
const RETRY: Duration = Duration::from_millis(1);

/// What the media plane tells the SIP shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MediaNotice {
    /// An event of the call's session, forwarded as is.
    Event(CallKey, MediaEvent),
}

/// Why a call's media could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MediaShellError {
    /// Every block of the `[media]` port range is in use (by our calls or by other programs).
    #[error("no free media port block in the configured range")]
    Exhausted,
    /// A media port could not be bound for a reason other than being in use.
    #[error("cannot bind media port {address}: {source}")]
    Bind { address: SocketAddr, source: io::Error },
    /// The session could not be created (DTLS configuration).
    #[error(transparent)]
    Dtls(#[from] DtlsError),
    /// The media thread is gone.
    #[error("the media thread has stopped")]
    Stopped,
}

/// The media plane: a handle on the media thread. Cheap to clone; the thread stops when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct MediaShell {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    commands: mpsc::Sender<Command>,
    waker: Waker,
    pool: Arc<Pool>,
    active: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    identity: DtlsIdentity,
    browser: MediaSide,
    trunk: MediaSide,
    timeouts: (Duration, Duration),
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The codec each call bridges (the anchor notes it; the web UI shows it). Signalling only.
    codecs: Mutex<HashMap<CallKey, &'static str>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.commands.send(Command::Shutdown).is_ok() {
            wake(&self.waker);
        }
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the media thread panicked");
        }
    }
}

/// Error counters of the media thread (the sessions count what they drop themselves).
#[derive(Debug, Default)]
struct Counters {
    send_errors: AtomicU64,
    recv_errors: AtomicU64,
    /// Packets relayed by sessions that have closed (added once per session, at its end).
    closed_packets: AtomicU64,
}

/// The free port blocks (indices into the configured range), handed out oldest-freed first so that a
/// just-closed port is not reused while the last call's peers may still send to it.
#[derive(Debug)]
struct Pool {
    port_min: u16,
    blocks: usize,
    free: Mutex<VecDeque<usize>>,
}

impl Pool {
    fn take(&self) -> Option<usize> {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    fn give_back(&self, block: usize) {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(block);
    }

    /// The block's first port (the browser's); `None` if the block is outside the range.
    fn base(&self, block: usize) -> Option<u16> {
        u16::try_from(usize::from(self.port_min) + block * 4).ok()
    }
}

/// One block of the pool, held: returned when dropped (after the sockets, which are declared before
/// it wherever it is held, so the ports are closed when the block is free again).
#[derive(Debug)]
struct Lease {
    pool: Arc<Pool>,
    block: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.give_back(self.block);
    }
}

/// One call's three sockets.
#[derive(Debug)]
struct Sockets {
    browser: UdpSocket,
    trunk_rtp: UdpSocket,
    trunk_rtcp: UdpSocket,
}

impl Sockets {
    fn get(&self, s: Socket) -> &UdpSocket {
        match s {
            Socket::Browser => &self.browser,
            Socket::TrunkRtp => &self.trunk_rtp,
            Socket::TrunkRtcp => &self.trunk_rtcp,
        }
    }

    fn by_index(&self, i: usize) -> (&UdpSocket, Socket) {
        match i {
            0 => (&self.browser, Socket::Browser),
            1 => (&self.trunk_rtp, Socket::TrunkRtp),
            _ => (&self.trunk_rtcp, Socket::TrunkRtcp),
        }
    }
}

/// The bound sockets of one call, not yet running. Dropping it returns the ports to the pool.
#[derive(Debug)]
pub(crate) struct Ports {
    sockets: Sockets,
    browser: SocketAddr,
    trunk_rtp: SocketAddr,
    trunk_rtcp: SocketAddr,
    lease: Lease,
}

impl Ports {
    /// Where the browser sends (the advertised browser-side address and the call's port), for the
    /// ICE candidate and `c=`/`m=` lines.
    pub(crate) fn browser(&self) -> SocketAddr {
        self.browser
    }

    /// Where the trunk sends RTP (advertised trunk-side address).
    pub(crate) fn trunk_rtp(&self) -> SocketAddr {
        self.trunk_rtp
    }

    /// Where the trunk sends RTCP (RTP port + 1).
    pub(crate) fn trunk_rtcp(&self) -> SocketAddr {
        self.trunk_rtcp
    }
}

/// What the SIP shell asks of the media thread.
#[derive(Debug)]
enum Command {
    Start {
        key: CallKey,
        session: Box<MediaSession>,
        sockets: Sockets,
        lease: Lease,
    },
    Update(CallKey, Box<Negotiated>),
    Dtmf(CallKey, Leg, char, Duration),
    Release(CallKey),
    /// Every running session's counters, for the web UI (asked at most every second or two).
    Stats(mpsc::SyncSender<Vec<(CallKey, MediaStats)>>),
    Shutdown,
}

/// The clock, read here (on the caller's thread for a new session, once per wake on the media
/// thread) and handed to the sessions.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell is where time is read; the media core receives it"
)]
fn clock() -> Instant {
    Instant::now()
}

/// Puts the calling (media) thread on SCHED_FIFO at `priority` (0: leave it alone). Refused without
/// root, CAP_SYS_NICE or a high enough RLIMIT_RTPRIO: then it says so and runs at normal priority.
fn realtime(priority: u8) {
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    if priority == 0 {
        return;
    }
    let result = ThreadPriorityValue::try_from(priority).and_then(|value| {
        set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Crossplatform(value),
            ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
        )
        .map_err(|e| format!("{e:?}"))
    });
    match result {
        Ok(()) => tracing::info!(priority, "media thread on real-time scheduling (SCHED_FIFO)"),
        Err(why) => tracing::info!(
            priority,
            %why,
            "media thread on normal scheduling: SCHED_FIFO refused (needs root, CAP_SYS_NICE or RLIMIT_RTPRIO)"
        ),
    }
}

fn wake(waker: &Waker) {
    if let Err(e) = waker.wake() {
        tracing::error!(error = %e, "cannot wake the media thread");
    }
}

fn timeout(seconds: u32) -> Duration {
    if seconds == 0 {
        NEVER
    } else {
        Duration::from_secs(u64::from(seconds))
    }
}

impl MediaShell {
    /// Generates the DTLS identity and starts the media thread. Nothing is bound yet: ports are bound
    /// per call by [`Self::allocate`].
    pub(crate) fn start(cfg: &MediaConfig) -> io::Result<(Self, UnboundedReceiver<MediaNotice>)> {
        let identity = DtlsIdentity::generate().map_err(io::Error::other)?;
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (commands, command_rx) = mpsc::channel();
        let (notices, notice_rx) = unbounded_channel();
        let blocks = cfg.max_calls();
        let pool = Arc::new(Pool {
            port_min: cfg.port_min,
            blocks,
            free: Mutex::new((0..blocks).collect()),
        });
        let active = Arc::new(AtomicUsize::new(0));
        let counters = Arc::new(Counters::default());
        let mut media = MediaThread {
            poll,
            commands: command_rx,
            notices,
            identity: identity.clone(),
            calls: std::iter::repeat_with(|| None).take(blocks).collect(),
            keys: HashMap::new(),
            timers: BinaryHeap::new(),
            next_generation: 0,
            active: Arc::clone(&active),
            counters: Arc::clone(&counters),
            cpu_latency: CpuLatency::new(cfg.cpu_latency_us),
        };
        let priority = cfg.realtime_priority;
        let thread = std::thread::Builder::new().name("media".into()).spawn(move || {
            realtime(priority);
            media.run();
        })?;
        tracing::info!(
            port_min = cfg.port_min,
            port_max = cfg.port_max,
            calls = blocks,
            "media thread started"
        );
        let shell = Self {
            shared: Arc::new(Shared {
                commands,
                waker,
                pool,
                active,
                counters,
                identity,
                browser: cfg.browser,
                trunk: cfg.trunk,
                timeouts: (timeout(cfg.inactivity_timeout_s), timeout(cfg.hold_timeout_s)),
                thread: Mutex::new(Some(thread)),
                codecs: Mutex::new(HashMap::new()),
            }),
        };
        Ok((shell, notice_rx))
    }

    /// SHA-256 of our DTLS certificate, for `a=fingerprint:sha-256` in every SDP toward a browser.
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        self.shared.identity.fingerprint_sha256()
    }

    /// The configured (inactivity, hold) timeouts for [`SessionConfig`]; 0 in the file ("never") is
    /// a deadline a century away.
    pub(crate) fn timeouts(&self) -> (Duration, Duration) {
        self.shared.timeouts
    }

    /// Every running session's counters, asked of the media thread (`None` if it does not answer
    /// within half a second). Not for the media path: for the web UI and metrics.
    pub(crate) fn call_stats(&self) -> Option<Vec<(CallKey, MediaStats)>> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.command(Command::Stats(tx));
        rx.recv_timeout(Duration::from_millis(500)).ok()
    }

    /// Packets relayed by sessions that have ended, since start.
    pub(crate) fn closed_packets(&self) -> u64 {
        self.shared.counters.closed_packets.load(Ordering::Relaxed)
    }

    /// Sessions running (started and not yet closed by the media thread).
    pub(crate) fn active(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// Datagrams the kernel refused to send (buffer full, unreachable), since start.
    pub(crate) fn send_errors(&self) -> u64 {
        self.shared.counters.send_errors.load(Ordering::Relaxed)
    }

    /// Receive errors on media sockets, since start.
    pub(crate) fn recv_errors(&self) -> u64 {
        self.shared.counters.recv_errors.load(Ordering::Relaxed)
    }

    /// Binds the next free block of ports: the browser port on the browser-side address, the trunk
    /// RTP/RTCP pair on the trunk-side address. A block with a port another program holds is skipped
    /// (and stays in the pool for later).
    pub(crate) fn allocate(&self) -> Result<Ports, MediaShellError> {
        let pool = &self.shared.pool;
        for _ in 0..pool.blocks {
            let Some(block) = pool.take() else {
                break;
            };
            let lease = Lease {
                pool: Arc::clone(pool),
                block,
            };
            let Some(base) = pool.base(block) else {
                continue;
            };
            let (browser, trunk) = (self.shared.browser, self.shared.trunk);
            let bind = |side: &MediaSide, offset: u16| {
                let address = SocketAddr::new(side.address, base.saturating_add(offset));
                UdpSocket::bind(address).map_err(|source| (address, source))
            };
            let bound = (|| {
                Ok::<_, (SocketAddr, io::Error)>(Sockets {
                    browser: bind(&browser, 0)?,
                    trunk_rtp: bind(&trunk, 2)?,
                    trunk_rtcp: bind(&trunk, 3)?,
                })
            })();
            match bound {
                Ok(sockets) => {
                    return Ok(Ports {
                        sockets,
                        browser: SocketAddr::new(browser.advertised(), base),
                        trunk_rtp: SocketAddr::new(trunk.advertised(), base.saturating_add(2)),
                        trunk_rtcp: SocketAddr::new(trunk.advertised(), base.saturating_add(3)),
                        lease,
                    });
                }
                Err((address, source)) if source.kind() == ErrorKind::AddrInUse => {
                    tracing::debug!(%address, "media port in use by another program; block skipped");
                }
                Err((address, source)) => return Err(MediaShellError::Bind { address, source }),
            }
        }
        Err(MediaShellError::Exhausted)
    }

    /// Creates the call's session (now, on the caller's thread, so that a DTLS configuration error is
    /// returned here) and hands it with its sockets to the media thread.
    pub(crate) fn start_session(
        &self,
        key: CallKey,
        ports: Ports,
        config: SessionConfig,
        neg: Negotiated,
    ) -> Result<(), MediaShellError> {
        let session = MediaSession::new(clock(), &self.shared.identity, config, neg)?;
        let Ports { sockets, lease, .. } = ports;
        self.shared.active.fetch_add(1, Ordering::Relaxed);
        let start = Command::Start {
            key,
            session: Box::new(session),
            sockets,
            lease,
        };
        if self.send(start).is_err() {
            self.shared.active.fetch_sub(1, Ordering::Relaxed);
            return Err(MediaShellError::Stopped);
        }
        Ok(())
    }

    /// A re-offer/answer changed the call's media terms ([`MediaSession::update`]). A failure comes
    /// back as [`MediaEvent::DtlsFailed`].
    pub(crate) fn update(&self, key: CallKey, neg: Negotiated) {
        self.command(Command::Update(key, Box::new(neg)));
    }

    /// A DTMF digit toward the `toward` leg as RFC 4733 telephone-events ([`MediaSession::send_dtmf`]).
    pub(crate) fn dtmf(&self, key: CallKey, toward: Leg, digit: char, duration: Duration) {
        self.command(Command::Dtmf(key, toward, digit, duration));
    }

    /// Ends the call's media: the media thread closes its sockets, returns its ports to the pool, and
    /// only then counts it out of [`Self::active`]. A key that never started is ignored.
    pub(crate) fn release(&self, key: CallKey) {
        self.codecs().remove(&key);
        self.command(Command::Release(key));
    }

    fn codecs(&self) -> std::sync::MutexGuard<'_, HashMap<CallKey, &'static str>> {
        self.shared.codecs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes the codec a call bridges (on each negotiation).
    pub(crate) fn note_codec(&self, key: CallKey, codec: &'static str) {
        self.codecs().insert(key, codec);
    }

    /// The codec a call bridges, once negotiated.
    pub(crate) fn codec_of(&self, key: CallKey) -> Option<&'static str> {
        self.codecs().get(&key).copied()
    }

    fn command(&self, command: Command) {
        if self.send(command).is_err() {
            tracing::error!("the media thread has stopped; command dropped");
        }
    }

    fn send(&self, command: Command) -> Result<(), mpsc::SendError<Command>> {
        self.shared.commands.send(command)?;
        wake(&self.shared.waker);
        Ok(())
    }
}

/// A running call on the media thread. Field order matters: the sockets close before the lease
/// returns the block.
struct Call {
    key: CallKey,
    /// Unique per started session: timer entries of a previous call in the same slot are stale.
    generation: u64,
    /// The earliest pending timer entry of this call, if any.
    armed: Option<Instant>,
    session: MediaSession,
    sockets: Sockets,
    lease: Lease,
}

/// The media thread's state.
struct MediaThread {
    poll: Poll,
    commands: mpsc::Receiver<Command>,
    notices: UnboundedSender<MediaNotice>,
    identity: DtlsIdentity,
    /// Running calls by port block (the slot of their socket tokens).
    calls: Vec<Option<Box<Call>>>,
    keys: HashMap<CallKey, usize>,
    /// Deadlines: (when, slot, generation). May hold stale entries (skipped when popped), but every
    /// running session with a deadline has an entry at or before it.
    timers: BinaryHeap<(Reverse<Instant>, usize, u64)>,
    next_generation: u64,
    active: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    cpu_latency: CpuLatency,
}

/// `[media] cpu_latency_us`: a PM QoS CPU latency request, held while any call has media (the kernel
/// keeps it exactly as long as `/dev/cpu_dma_latency` stays open).
struct CpuLatency {
    want: Option<u32>,
    held: Option<std::fs::File>,
    refused: bool,
}

impl CpuLatency {
    const DEVICE: &str = "/dev/cpu_dma_latency";

    fn new(want: Option<u32>) -> Self {
        Self {
            want,
            held: None,
            refused: false,
        }
    }

    /// Holds the request while `calls` is above zero, drops it at zero. A refusal is logged once.
    fn update(&mut self, calls: usize) {
        let Some(us) = self.want else {
            return;
        };
        if calls == 0 {
            if self.held.take().is_some() {
                tracing::debug!("CPU latency request dropped: no call has media");
            }
            return;
        }
        if self.held.is_some() || self.refused {
            return;
        }
        let request = || -> io::Result<std::fs::File> {
            let mut file = std::fs::OpenOptions::new().write(true).open(Self::DEVICE)?;
            // The device takes the bound as a native-endian 32-bit integer.
            io::Write::write_all(&mut file, &i32::try_from(us).unwrap_or(i32::MAX).to_ne_bytes())?;
            Ok(file)
        };
        match request() {
            Ok(file) => {
                tracing::info!(us, "CPU latency request held while calls have media (PM QoS)");
                self.held = Some(file);
            }
            Err(e) => {
                self.refused = true;
                tracing::warn!(
                    us,
                    error = %e,
                    device = Self::DEVICE,
                    "CPU latency request refused (needs root or write access to the device): idle CPUs may add \
                     their wake-up time to media latency"
                );
            }
        }
    }
}

impl MediaThread {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        let mut buf = [0u8; DATAGRAM];
        let mut now = clock();
        loop {
            let wait = self
                .timers
                .peek()
                .map(|(Reverse(at), _, _)| at.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, wait) {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::error!(error = %e, "media poll failed");
                }
                continue;
            }
            // One clock read per wake.
            now = clock();
            for ev in &events {
                if ev.token() != WAKER {
                    self.readable(ev.token().0, now, &mut buf);
                }
            }
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => {
                        tracing::info!(calls = self.keys.len(), "media thread stopping");
                        return;
                    }
                    Ok(command) => self.command(command, now, &mut buf),
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            self.fire_timers(now);
        }
    }

    /// Drains one socket into its session.
    fn readable(&mut self, token: usize, now: Instant, buf: &mut [u8; DATAGRAM]) {
        let (slot, which) = (token / 3, token % 3);
        let Some(call) = self.calls.get_mut(slot).and_then(Option::as_deref_mut) else {
            return;
        };
        let mut errors = 0;
        loop {
            let (socket, kind) = call.sockets.by_index(which);
            let (len, from) = match socket.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.counters.recv_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(call = call.key, error = %e, "media receive error");
                    errors += 1;
                    if errors >= MAX_RECV_ERRORS {
                        break;
                    }
                    continue;
                }
            };
            let forward = match kind {
                Socket::Browser => call.session.from_browser(now, from, buf, len),
                Socket::TrunkRtp => call.session.from_trunk(now, from, false, buf, len),
                Socket::TrunkRtcp => call.session.from_trunk(now, from, true, buf, len),
            };
            if let Forward::Send { from, to, len } = forward {
                send(
                    &call.sockets,
                    from,
                    buf.get(..len).unwrap_or_default(),
                    to,
                    &self.counters,
                );
            }
            flush(call, &self.notices, &self.counters);
        }
        arm(&mut self.timers, call, slot, None);
    }

    fn command(&mut self, command: Command, now: Instant, buf: &mut [u8; DATAGRAM]) {
        match command {
            Command::Start {
                key,
                session,
                sockets,
                lease,
            } => self.start(key, *session, sockets, lease, now, buf),
            Command::Update(key, neg) => {
                let Some((slot, call)) = running(&self.keys, &mut self.calls, key) else {
                    return;
                };
                if let Err(e) = call.session.update(now, &self.identity, *neg) {
                    tracing::warn!(call = key, error = %e, "media update failed");
                    if self
                        .notices
                        .send(MediaNotice::Event(key, MediaEvent::DtlsFailed(e.to_string())))
                        .is_err()
                    {
                        tracing::debug!(call = key, "media notice dropped: the SIP shell is gone");
                    }
                }
                flush(call, &self.notices, &self.counters);
                arm(&mut self.timers, call, slot, None);
            }
            Command::Dtmf(key, toward, digit, duration) => {
                let Some((slot, call)) = running(&self.keys, &mut self.calls, key) else {
                    return;
                };
                if !call.session.send_dtmf(now, toward, digit, duration) {
                    tracing::debug!(
                        call = key,
                        ?toward,
                        "DTMF not sent: no telephone-event that way or not a digit"
                    );
                }
                flush(call, &self.notices, &self.counters);
                arm(&mut self.timers, call, slot, None);
            }
            Command::Release(key) => self.release(key),
            Command::Stats(reply) => {
                let stats = self
                    .keys
                    .iter()
                    .filter_map(|(key, slot)| {
                        let call = self.calls.get(*slot)?.as_deref()?;
                        Some((*key, call.session.stats()))
                    })
                    .collect();
                // The asker may have given up waiting: nothing to do then.
                let _ = reply.try_send(stats);
            }
            Command::Shutdown => {}
        }
    }

    fn start(
        &mut self,
        key: CallKey,
        session: MediaSession,
        mut sockets: Sockets,
        lease: Lease,
        now: Instant,
        buf: &mut [u8; DATAGRAM],
    ) {
        let slot = lease.block;
        if self.keys.contains_key(&key) || self.calls.get(slot).is_none_or(Option::is_some) {
            tracing::warn!(call = key, "media session started twice; the second is dropped");
            self.active.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let registry = self.poll.registry();
        let registered = [
            &mut sockets.browser,
            &mut sockets.trunk_rtp,
            &mut sockets.trunk_rtcp,
        ]
        .into_iter()
        .enumerate()
        .try_for_each(|(i, s)| registry.register(s, Token(slot * 3 + i), Interest::READABLE));
        self.next_generation += 1;
        let call = Call {
            key,
            generation: self.next_generation,
            armed: None,
            session,
            sockets,
            lease,
        };
        self.calls[slot] = Some(Box::new(call));
        self.keys.insert(key, slot);
        if let Err(e) = registered {
            // The call keeps its ports until released; it carries no media, and the call core ends it.
            tracing::error!(call = key, error = %e, "cannot register media sockets");
            self.notify(MediaNotice::Event(
                key,
                MediaEvent::DtlsFailed(format!("media sockets: {e}")),
            ));
            return;
        }
        tracing::debug!(call = key, block = slot, "media session running");
        self.cpu_latency.update(self.keys.len());
        // Whatever arrived between binding and registering.
        for i in 0..3 {
            self.readable(slot * 3 + i, now, buf);
        }
    }

    fn release(&mut self, key: CallKey) {
        let Some(slot) = self.keys.remove(&key) else {
            return;
        };
        let Some(mut call) = self.calls.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let registry = self.poll.registry();
        for s in [
            &mut call.sockets.browser,
            &mut call.sockets.trunk_rtp,
            &mut call.sockets.trunk_rtcp,
        ] {
            // Closing the socket deregisters it too; an error here changes nothing.
            let _ = registry.deregister(s);
        }
        let stats = call.session.stats();
        self.counters
            .closed_packets
            .fetch_add(stats.to_trunk + stats.to_browser, Ordering::Relaxed);
        tracing::debug!(
            call = key,
            block = call.lease.block,
            ?stats,
            "media session closed"
        );
        // Sockets close, then the block returns to the pool.
        drop(call);
        // Release: whoever sees the count drop also sees the block back in the pool.
        self.active.fetch_sub(1, Ordering::Release);
        self.cpu_latency.update(self.keys.len());
        // Stale timer entries of closed calls are skipped when due; keep them from piling up.
        if self.timers.len() > 64 + 8 * self.keys.len() {
            let calls = &self.calls;
            self.timers.retain(|&(_, slot, generation)| {
                calls
                    .get(slot)
                    .and_then(Option::as_deref)
                    .is_some_and(|c| c.generation == generation)
            });
        }
    }

    fn notify(&self, notice: MediaNotice) {
        if self.notices.send(notice).is_err() {
            tracing::debug!("media notice dropped: the SIP shell is gone");
        }
    }

    /// Runs every session whose deadline has come.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(&(Reverse(at), slot, generation)) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(call) = self
                .calls
                .get_mut(slot)
                .and_then(Option::as_deref_mut)
                .filter(|c| c.generation == generation)
            else {
                continue;
            };
            if call.armed == Some(at) {
                call.armed = None;
            }
            if call.session.poll_timeout().is_some_and(|t| t <= now) {
                call.session.handle_timeout(now);
                flush(call, &self.notices, &self.counters);
            }
            // Never re-armed at or before `now`: this loop ends, and a session that did not move its
            // deadline does not spin the thread.
            arm(&mut self.timers, call, slot, Some(now + RETRY));
        }
    }
}

/// The running call under `key`, with its slot.
fn running<'a>(
    keys: &HashMap<CallKey, usize>,
    calls: &'a mut [Option<Box<Call>>],
    key: CallKey,
) -> Option<(usize, &'a mut Call)> {
    let Some(&slot) = keys.get(&key) else {
        tracing::debug!(call = key, "media command for a call that is not running");
        return None;
    };
    Some((slot, calls.get_mut(slot)?.as_deref_mut()?))
}

/// Files the session's next deadline unless an entry at or before it is already pending.
fn arm(
    timers: &mut BinaryHeap<(Reverse<Instant>, usize, u64)>,
    call: &mut Call,
    slot: usize,
    not_before: Option<Instant>,
) {
    let Some(at) = call.session.poll_timeout() else {
        return;
    };
    let at = not_before.map_or(at, |floor| at.max(floor));
    if call.armed.is_none_or(|armed| at < armed) {
        timers.push((Reverse(at), slot, call.generation));
        call.armed = Some(at);
    }
}

/// Sends what the session generated and forwards its events.
fn flush(call: &mut Call, notices: &UnboundedSender<MediaNotice>, counters: &Counters) {
    while let Some(t) = call.session.poll_transmit() {
        send(&call.sockets, t.from, &t.bytes, t.to, counters);
    }
    while let Some(event) = call.session.poll_event() {
        tracing::debug!(call = call.key, ?event, "media event");
        if notices.send(MediaNotice::Event(call.key, event)).is_err() {
            tracing::debug!(call = call.key, "media notice dropped: the SIP shell is gone");
        }
    }
}

fn send(sockets: &Sockets, from: Socket, bytes: &[u8], to: SocketAddr, counters: &Counters) {
    if let Err(e) = sockets.get(from).send_to(bytes, to) {
        let n = counters.send_errors.fetch_add(1, Ordering::Relaxed);
        // Counted always; logged sparsely (a full buffer fails many sends in a row).
        if n.is_power_of_two() || n == 0 {
            tracing::debug!(error = %e, send_errors = n + 1, "media send failed");
        }
    }
}

#[cfg(test)]
#[allow(dead_code, reason = "the shell's test uses part of edge-media's test kit")]
#[path = "../../media/src/testkit.rs"]
mod testkit;

#[cfg(test)]
#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the test plays the browser and the trunk on real sockets, on real time (every wait has a deadline)"
)]
mod tests {
    use std::net::UdpSocket as PeerSocket;

    use edge_media::dtls::{DtlsRole, FingerprintHash};
    use edge_media::rtp::RtpHeader;
    use edge_media::session::Direction;
    use tokio::runtime::Runtime;

    use super::*;

    /// The longest any single step may take.
    const WAIT: Duration = Duration::from_secs(4);
    const ICE_PWD: &str = "shell-test-password-0123";

    fn random() -> u64 {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(0u8)
    }

    /// A configuration with room for four calls on an even base in 40000-56000 whose 16 ports are
    /// free right now (tests run in parallel and the host has other sockets).
    fn config() -> MediaConfig {
        for _ in 0..100 {
            let base = 40_000 + u16::try_from(random() % 4000).unwrap() * 4;
            let free = (base..base + 16).all(|p| PeerSocket::bind(("127.0.0.1", p)).is_ok());
            if free {
                return MediaConfig {
                    port_min: base,
                    port_max: base + 15,
                    ..MediaConfig::default()
                };
            }
        }
        panic!("no free range of 16 ports found");
    }

    fn session_config(inactivity: Duration) -> SessionConfig {
        SessionConfig {
            ice_ufrag: "gw1".into(),
            ice_pwd: ICE_PWD.into(),
            ssrcs: (0x1111_2222, 0x3333_4444),
            initial_seqs: (100, 200),
            inactivity_timeout: inactivity,
            hold_timeout: Duration::from_secs(3600),
        }
    }

    fn negotiated(fingerprint: Vec<u8>, trunk: SocketAddr) -> Negotiated {
        Negotiated {
            browser_ufrag: "br1".into(),
            browser_fingerprint: (FingerprintHash::Sha256, fingerprint),
            dtls_role: DtlsRole::Server,
            trunk_rtp: Some(trunk),
            trunk_rtcp: None,
            trunk_rtcp_mux: false,
            trunk_sdes: None,
            codec: (8000, 0, 0),
            alternatives: Vec::new(),
            telephone_event: Some((126, 101, 8000)),
            browser_direction: Direction::SendRecv,
            trunk_direction: Direction::SendRecv,
            ptime: Duration::from_millis(20),
        }
    }

    fn peer() -> PeerSocket {
        let s = PeerSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        s
    }

    /// The effective PM QoS CPU latency bound, as the device reads back.
    fn cpu_latency_now() -> Option<i32> {
        let bytes = std::fs::read(CpuLatency::DEVICE).ok()?;
        Some(i32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?))
    }

    #[test]
    fn cpu_latency_request_is_held_only_while_calls_have_media() {
        if std::fs::OpenOptions::new()
            .write(true)
            .open(CpuLatency::DEVICE)
            .is_err()
        {
            eprintln!(
                "SKIPPED cpu_latency_request_is_held_only_while_calls_have_media: {} not writable here (needs root)",
                CpuLatency::DEVICE
            );
            return;
        }
        let mut off = CpuLatency::new(None);
        off.update(3);
        assert!(off.held.is_none(), "no request without the setting");
        let mut request = CpuLatency::new(Some(7));
        request.update(0);
        assert!(request.held.is_none(), "no call, no request");
        request.update(1);
        assert!(request.held.is_some());
        assert!(
            cpu_latency_now().is_some_and(|us| us <= 7),
            "the kernel's bound honours the request: {:?}",
            cpu_latency_now()
        );
        request.update(2);
        request.update(0);
        assert!(request.held.is_none(), "dropped when the last call ends");
        assert!(!request.refused);
    }

    fn runtime() -> Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// The next notice that `wanted` accepts (others are skipped), within [`WAIT`].
    fn notice(
        rt: &Runtime,
        notices: &mut UnboundedReceiver<MediaNotice>,
        what: &str,
        wanted: impl Fn(&MediaNotice) -> bool,
    ) -> MediaNotice {
        let deadline = clock() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(clock());
            let n = rt
                .block_on(async { tokio::time::timeout(left, notices.recv()).await })
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .expect("the media thread stopped");
            if wanted(&n) {
                return n;
            }
        }
    }

    /// Until the media thread has closed every session (it does within microseconds of a release).
    fn wait_idle(shell: &MediaShell) {
        let deadline = clock() + WAIT;
        while shell.active() != 0 {
            assert!(clock() < deadline, "sessions still running");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_call_over_real_sockets_then_its_ports_return_to_the_pool() {
        let rt = runtime();
        let cfg = config();
        let (shell, mut notices) = MediaShell::start(&cfg).unwrap();
        assert_ne!(shell.fingerprint(), [0; 32]);
        let ports = shell.allocate().unwrap();
        let base = cfg.port_min;
        let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
        assert_eq!(ports.browser(), SocketAddr::new(localhost, base));
        assert_eq!(ports.trunk_rtp(), SocketAddr::new(localhost, base + 2));
        assert_eq!(ports.trunk_rtcp(), SocketAddr::new(localhost, base + 3));
        let (gw_browser, gw_trunk) = (ports.browser(), ports.trunk_rtp());

        let (browser, trunk) = (peer(), peer());
        let (browser_addr, trunk_addr) = (browser.local_addr().unwrap(), trunk.local_addr().unwrap());
        let (mut dtls, fingerprint) = testkit::dimpl_peer(true, clock());
        shell
            .start_session(
                7,
                ports,
                session_config(Duration::from_secs(60)),
                negotiated(fingerprint, trunk_addr),
            )
            .unwrap();
        assert_eq!(shell.active(), 1);

        // ICE: the browser's nominating check is answered with a Binding success.
        let check = testkit::stun_request("gw1:br1", ICE_PWD, true);
        browser.send_to(&check, gw_browser).unwrap();
        let (answer, _) = testkit::recv_until(&browser, "the STUN answer", WAIT, |p| p.len() >= 20);
        assert_eq!(answer[..2], [0x01, 0x01], "Binding success");
        assert_eq!(answer[8..20], check[8..20], "same transaction");
        notice(&rt, &mut notices, "IceConnected", |n| {
            *n == MediaNotice::Event(7, MediaEvent::IceConnected(browser_addr))
        });

        // DTLS over real UDP, the browser as client.
        let (mut tx, mut rx) = testkit::udp_handshake(&browser, gw_browser, &mut dtls, WAIT);
        notice(&rt, &mut notices, "DtlsConnected", |n| {
            matches!(n, MediaNotice::Event(7, MediaEvent::DtlsConnected(_)))
        });

        // Browser → trunk: SRTP in, plain RTP out with the payload intact.
        let (mut buf, n) = testkit::rtp_packet(0, 1, 0xb505, &[0x55; 160]);
        let n = tx.protect_rtp(&mut buf, n).unwrap();
        browser.send_to(&buf[..n], gw_browser).unwrap();
        let (got, _) = testkit::recv_until(&trunk, "RTP at the trunk", WAIT, |_| true);
        let h = RtpHeader::parse(&got).unwrap();
        assert_eq!((h.pt, h.ssrc), (0, 0x3333_4444));
        assert_eq!(got[12..], [0x55; 160]);

        // Trunk → browser: plain RTP in, SRTP out that the browser decrypts.
        let (buf, n) = testkit::rtp_packet(0, 9, 0x7e7e, &[0x33; 160]);
        trunk.send_to(&buf[..n], gw_trunk).unwrap();
        let (mut got, _) = testkit::recv_until(&browser, "SRTP at the browser", WAIT, |p| {
            (128..=191).contains(&p[0]) && RtpHeader::parse(p).is_some()
        });
        let plain = rx.unprotect_rtp(&mut got).unwrap();
        let h = RtpHeader::parse(&got).unwrap();
        assert_eq!((h.pt, h.ssrc), (0, 0x1111_2222));
        assert_eq!(got[12..plain], [0x33; 160]);
        notice(&rt, &mut notices, "TrunkLatched", |n| {
            *n == MediaNotice::Event(7, MediaEvent::TrunkLatched(trunk_addr))
        });

        // DTMF toward the trunk as telephone-events (RFC 4733: the event code first).
        shell.dtmf(7, Leg::Trunk, '5', Duration::from_millis(100));
        let (event, _) = testkit::recv_until(&trunk, "a telephone-event", WAIT, |p| {
            RtpHeader::parse(p).is_some_and(|h| h.pt == 101)
        });
        assert_eq!(event[12], 5);

        // Release: the session closes and its block returns; the range holds exactly four calls.
        shell.release(7);
        wait_idle(&shell);
        let mut held: Vec<Ports> = (0..4).map(|_| shell.allocate().unwrap()).collect();
        assert!(
            held.iter().any(|p| p.browser() == gw_browser),
            "the freed block is reused"
        );
        assert!(matches!(shell.allocate(), Err(MediaShellError::Exhausted)));
        // Ports dropped without a session return too; a key that never ran is ignored.
        drop(held.pop());
        let again = shell.allocate().unwrap();
        shell.release(12_345);
        drop((again, held));
        assert_eq!(shell.active(), 0);
        assert_eq!(shell.send_errors(), 0);
    }

    #[test]
    fn a_silent_call_is_reported_inactive() {
        let rt = runtime();
        let (shell, mut notices) = MediaShell::start(&config()).unwrap();
        let ports = shell.allocate().unwrap();
        let (_, fingerprint) = testkit::dimpl_peer(true, clock());
        let trunk = peer();
        shell
            .start_session(
                3,
                ports,
                session_config(Duration::from_secs(1)),
                negotiated(fingerprint, trunk.local_addr().unwrap()),
            )
            .unwrap();
        let started = clock();
        let n = notice(&rt, &mut notices, "Inactive", |n| {
            matches!(n, MediaNotice::Event(3, MediaEvent::Inactive { .. }))
        });
        let MediaNotice::Event(_, MediaEvent::Inactive { idle, .. }) = n else {
            unreachable!()
        };
        assert!(idle >= Duration::from_secs(1));
        assert!(clock() - started >= Duration::from_millis(900));
        shell.release(3);
        wait_idle(&shell);
    }

    #[test]
    fn a_block_with_a_port_held_elsewhere_is_skipped() {
        let cfg = config();
        let (shell, _notices) = MediaShell::start(&cfg).unwrap();
        // Another program holds the first block's trunk RTCP port.
        let squatter = PeerSocket::bind(("127.0.0.1", cfg.port_min + 3)).unwrap();
        let ports = shell.allocate().unwrap();
        assert_eq!(ports.browser().port(), cfg.port_min + 4);
        let others = [shell.allocate().unwrap(), shell.allocate().unwrap()];
        assert!(matches!(shell.allocate(), Err(MediaShellError::Exhausted)));
        // Once it is gone, the skipped block is there for the next call.
        drop(squatter);
        assert_eq!(shell.allocate().unwrap().browser().port(), cfg.port_min);
        drop((ports, others));
    }

    #[test]
    fn zero_timeouts_mean_never() {
        let cfg = MediaConfig {
            inactivity_timeout_s: 0,
            hold_timeout_s: 30,
            ..config()
        };
        let (shell, _notices) = MediaShell::start(&cfg).unwrap();
        assert_eq!(shell.timeouts(), (NEVER, Duration::from_secs(30)));
        assert!(clock().checked_add(NEVER).is_some());
    }
}
