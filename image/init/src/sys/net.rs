//! The network side of the shell: rtnetlink requests (built by [`edge_init::netlink`]), `/etc/resolv.conf`,
//! the sd_notify socket, the SIP probe socket and the SNTP query.
#![allow(
    clippy::disallowed_types,
    reason = "the shell owns the sockets: the SIP probe and SNTP over std's UdpSocket"
)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, sockopt,
};
use nix::sys::time::TimeVal;

use super::{Ctx, SysError};
use edge_init::config::{NetMode, NetworkConfig, NtpServer};
use edge_init::netlink::{self, Ack};

/// An rtnetlink socket.
#[derive(Debug)]
pub(crate) struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Opens and binds the socket (2 s receive timeout: the kernel answers at once).
    pub(crate) fn open() -> Result<Self, SysError> {
        let fd = nix::sys::socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .ctx(format_args!("netlink socket"))?;
        nix::sys::socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).ctx(format_args!("netlink bind"))?;
        nix::sys::socket::setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(2, 0))
            .ctx(format_args!("netlink timeout"))?;
        Ok(Self { fd, seq: 0 })
    }

    /// Sends the request `build(seq)` and waits for its acknowledgement.
    fn request(&mut self, what: &str, build: impl FnOnce(u32) -> Vec<u8>) -> Result<(), SysError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let msg = build(seq);
        nix::sys::socket::sendto(
            self.fd.as_raw_fd(),
            &msg,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .ctx(format_args!("{what}: send"))?;
        let mut buf = vec![0u8; 8192];
        for _ in 0..16 {
            let n = nix::sys::socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())
                .ctx(format_args!("{what}: no answer from the kernel"))?;
            match netlink::find_ack(buf.get(..n).unwrap_or_default(), seq) {
                Some(Ack::Ok) => return Ok(()),
                Some(Ack::Errno(code)) => {
                    return Err(SysError::Sys {
                        what: what.to_owned(),
                        errno: nix::errno::Errno::from_raw(code),
                    });
                }
                None => {}
            }
        }
        Err(SysError::Unusable(format!(
            "{what}: no acknowledgement from the kernel"
        )))
    }

    /// Sets interface `index` up.
    pub(crate) fn link_up(&mut self, name: &str, index: u32) -> Result<(), SysError> {
        self.request(&format!("{name} up"), |seq| netlink::link_up(seq, index))
    }

    /// Adds `address/prefix` to interface `index`.
    pub(crate) fn add_address(
        &mut self,
        name: &str,
        index: u32,
        address: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), SysError> {
        self.request(&format!("{name} address {address}/{prefix}"), |seq| {
            netlink::add_address(seq, index, address, prefix)
        })
    }

    /// Adds the default route via `gateway` out of `index`.
    pub(crate) fn default_route(
        &mut self,
        name: &str,
        index: u32,
        gateway: Ipv4Addr,
    ) -> Result<(), SysError> {
        self.request(&format!("default route via {gateway} dev {name}"), |seq| {
            netlink::add_default_route(seq, index, gateway)
        })
    }
}

/// The interface index of `name`.
pub(crate) fn index_of(name: &str) -> Result<u32, SysError> {
    nix::net::if_::if_nametoindex(name).ctx(format_args!("interface {name}"))
}

/// The first Ethernet-like interface (`eth*`, `en*`, else any but `lo`), waiting up to `limit` for
/// the driver to register it.
pub(crate) fn first_interface(limit: Duration) -> Option<String> {
    let start = super::now();
    loop {
        let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n != "lo")
                    .collect()
            })
            .unwrap_or_default();
        names.sort_by_key(|n| (!(n.starts_with("eth") || n.starts_with("en")), n.clone()));
        if let Some(first) = names.into_iter().next() {
            return Some(first);
        }
        if super::now().saturating_sub(start) >= limit {
            return None;
        }
        super::sleep(Duration::from_millis(50));
    }
}

/// `lo` up with 127.0.0.1/8, then the first interface per `[network]`. Returns the interface configured.
pub(crate) fn configure(net: &NetworkConfig) -> Result<String, SysError> {
    let mut nl = Netlink::open()?;
    let lo = index_of("lo")?;
    nl.link_up("lo", lo)?;
    nl.add_address("lo", lo, Ipv4Addr::LOCALHOST, 8)?;
    let name = first_interface(Duration::from_secs(3))
        .ok_or_else(|| SysError::Unusable("no network interface besides lo".into()))?;
    let index = index_of(&name)?;
    nl.link_up(&name, index)?;
    match net.mode {
        NetMode::Static => {
            let address = net
                .address
                .ok_or_else(|| SysError::Unusable("static mode without an address".into()))?;
            nl.add_address(&name, index, address.address, address.prefix)?;
            if let Some(gw) = net.gateway {
                nl.default_route(&name, index, gw)?;
            }
            write_resolv_conf(&net.dns)?;
            sntp_in_background(&net.ntp);
        }
        NetMode::Dhcp => dhcp_in_background(name.clone(), index, net.clone()),
    }
    Ok(name)
}

/// Runs the DHCP client for `name` on its own thread for the life of the box (leases are renewed);
/// the first lease also starts the SNTP query.
fn dhcp_in_background(name: String, index: u32, net: NetworkConfig) {
    let spawned = std::thread::Builder::new().name("dhcp".into()).spawn(move || {
        if let Err(e) = run_dhcp(&name, index, &net) {
            super::say(format!("dhcp on {name}: {e}; no address"));
        }
    });
    if let Err(e) = spawned {
        super::say(format!("dhcp: cannot start a thread: {e}"));
    }
}

/// A transaction id seed that differs across boots (the kernel's random pool, else the clock).
fn xid_seed() -> u32 {
    let mut b = [0u8; 4];
    let read =
        std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    match read {
        Ok(()) => u32::from_ne_bytes(b),
        Err(_) => super::now().subsec_nanos() ^ std::process::id(),
    }
}

fn run_dhcp(name: &str, index: u32, net: &NetworkConfig) -> Result<(), SysError> {
    use edge_init::dhcp::{Client, Output};
    let mac_text = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .ctx(format_args!("hardware address"))?;
    let mac = edge_init::dhcp::parse_mac(&mac_text)
        .ok_or_else(|| SysError::Unusable(format!("hardware address {mac_text:?}")))?;
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68)).ctx(format_args!("port 68"))?;
    sock.set_broadcast(true).ctx(format_args!("SO_BROADCAST"))?;
    nix::sys::socket::setsockopt(&sock, sockopt::BindToDevice, &std::ffi::OsString::from(name))
        .ctx(format_args!("SO_BINDTODEVICE"))?;
    let mut nl = Netlink::open()?;
    let mut client = Client::new(mac, xid_seed(), super::now());
    let mut current: Option<edge_init::dhcp::Lease> = None;
    let mut buf = [0u8; 1500];
    let mut outputs = client.poll(super::now());
    loop {
        for out in outputs.drain(..) {
            match out {
                Output::Send { packet, to } => {
                    if let Err(e) = sock.send_to(&packet, (to, 67)) {
                        super::say(format!("dhcp on {name}: send to {to}: {e}"));
                    }
                }
                Output::Bound(lease) => {
                    let same = current.as_ref().is_some_and(|c| {
                        (c.address, c.prefix, c.router, &c.dns)
                            == (lease.address, lease.prefix, lease.router, &lease.dns)
                    });
                    if !same {
                        apply_lease(&mut nl, name, index, &lease, net);
                    }
                    if current.is_none() {
                        sntp_in_background(&net.ntp);
                    }
                    current = Some(lease);
                }
                Output::Lost(address) => {
                    super::say(format!(
                        "dhcp on {name}: the lease on {address} ran out, asking again"
                    ));
                    current = None;
                }
            }
        }
        let wait = client
            .poll_timeout()
            .saturating_sub(super::now())
            .clamp(Duration::from_millis(1), Duration::from_secs(3600));
        sock.set_read_timeout(Some(wait)).ctx("SO_RCVTIMEO")?;
        match sock.recv(&mut buf) {
            Ok(n) => outputs = client.handle(super::now(), buf.get(..n).unwrap_or_default()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                outputs = client.poll(super::now());
            }
            Err(e) => {
                super::say(format!("dhcp on {name}: receive: {e}"));
                super::sleep(Duration::from_secs(1));
                outputs = client.poll(super::now());
            }
        }
    }
}

/// Address, default route and resolv.conf from a lease (DNS from the lease, else `[network].dns`).
fn apply_lease(
    nl: &mut Netlink,
    name: &str,
    index: u32,
    lease: &edge_init::dhcp::Lease,
    net: &NetworkConfig,
) {
    let mut problems = Vec::new();
    if let Err(e) = nl.add_address(name, index, lease.address, lease.prefix) {
        problems.push(e);
    }
    if let Some(router) = lease.router
        && let Err(e) = nl.default_route(name, index, router)
    {
        problems.push(e);
    }
    let dns: Vec<std::net::IpAddr> = if lease.dns.is_empty() {
        net.dns.clone()
    } else {
        lease.dns.iter().map(|d| std::net::IpAddr::V4(*d)).collect()
    };
    if let Err(e) = write_resolv_conf(&dns) {
        problems.push(e);
    }
    super::say(format!(
        "dhcp: {name} {}/{}{} from {} for {}",
        lease.address,
        lease.prefix,
        lease.router.map(|r| format!(" via {r}")).unwrap_or_default(),
        lease.server,
        lease
            .duration
            .map_or_else(|| "ever".to_owned(), |d| format!("{} s", d.as_secs())),
    ));
    for p in problems {
        super::say(format!("dhcp: {p}"));
    }
}

/// Writes `/etc/resolv.conf` (nothing when there are no servers).
pub(crate) fn write_resolv_conf(dns: &[std::net::IpAddr]) -> Result<(), SysError> {
    if dns.is_empty() {
        return Ok(());
    }
    let text: String = dns.iter().map(|d| format!("nameserver {d}\n")).collect();
    std::fs::write("/etc/resolv.conf", text).ctx(format_args!("write /etc/resolv.conf"))
}

// ---------------------------------------------------------------------------------------------------
// sd_notify

/// The socket gatewayd's sd_notify datagrams arrive on, with the sender's credentials.
#[derive(Debug)]
pub(crate) struct NotifySocket {
    sock: UnixDatagram,
}

impl NotifySocket {
    /// Binds `path` (replacing a stale one), non-blocking, with `SO_PASSCRED`.
    pub(crate) fn bind(path: &Path) -> Result<Self, SysError> {
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path).ctx(format_args!("bind {}", path.display()))?;
        sock.set_nonblocking(true).ctx(format_args!("notify socket"))?;
        nix::sys::socket::setsockopt(&sock, sockopt::PassCred, &true)
            .ctx(format_args!("notify socket SO_PASSCRED"))?;
        Ok(Self { sock })
    }

    /// The socket, for polling.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.sock)
    }

    /// The next datagram and its sender's pid, `None` when none is waiting.
    pub(crate) fn recv(&self) -> Option<(Vec<u8>, Option<i32>)> {
        let mut buf = vec![0u8; edge_init::notify::MAX_DATAGRAM];
        let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let (n, pid) = {
            let msg = nix::sys::socket::recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            )
            .ok()?;
            let pid = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|c| match c {
                    ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                    _ => None,
                })
            });
            (msg.bytes, pid)
        };
        buf.truncate(n);
        Some((buf, pid))
    }
}

// ---------------------------------------------------------------------------------------------------
// SIP probe

/// The socket SIP OPTIONS probes go out of.
#[derive(Debug)]
pub(crate) struct ProbeSocket {
    sock: UdpSocket,
    local: SocketAddrV4,
    target: SocketAddrV4,
    n: u32,
}

impl ProbeSocket {
    /// Binds 127.0.0.1 on an ephemeral port, non-blocking; probes go to 127.0.0.1:`port`.
    pub(crate) fn bind(port: u16) -> Result<Self, SysError> {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ctx(format_args!("probe socket"))?;
        sock.set_nonblocking(true).ctx(format_args!("probe socket"))?;
        let local = match sock.local_addr() {
            Ok(SocketAddr::V4(a)) => a,
            Ok(SocketAddr::V6(_)) | Err(_) => SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        };
        Ok(Self {
            sock,
            local,
            target: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            n: 0,
        })
    }

    /// The socket, for polling.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.sock)
    }

    /// Sends the next OPTIONS.
    pub(crate) fn send(&mut self) -> Result<(), SysError> {
        self.n = self.n.wrapping_add(1);
        let req = edge_init::probe::options(self.local, self.target, self.n);
        self.sock
            .send_to(&req, self.target)
            .map(drop)
            .ctx(format_args!("probe to {}", self.target))
    }

    /// Whether a waiting datagram is a 200 to a probe (drains everything waiting).
    pub(crate) fn answered(&self) -> bool {
        let mut buf = [0u8; 2048];
        let mut ok = false;
        while let Ok(n) = self.sock.recv(&mut buf) {
            ok |= edge_init::probe::is_ok(buf.get(..n).unwrap_or_default());
        }
        ok
    }
}

// ---------------------------------------------------------------------------------------------------
// SNTP

/// One SNTP query to `server` with a 2 s timeout, on its own thread; sets `CLOCK_REALTIME` from the
/// answer and says what happened. The boot never waits for it.
pub(crate) fn sntp_in_background(server: &NtpServer) {
    let Some(target) = server.target() else { return };
    let shown = server.to_string();
    let spawned = std::thread::Builder::new()
        .name("sntp".into())
        .spawn(move || match sntp_query(&target) {
            Ok(t) => super::say(format!("time set from {shown}: {}", edge_init::sntp::Utc(t))),
            Err(e) => super::say(format!("ntp {shown}: {e}; keeping the RTC's time")),
        });
    if let Err(e) = spawned {
        super::say(format!("ntp: cannot start a thread: {e}"));
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the shell measures the round trip on the monotonic clock"
)]
fn sntp_query(target: &str) -> Result<Duration, SysError> {
    let addr = target
        .to_socket_addrs()
        .ctx(format_args!("cannot resolve {target}"))?
        .next()
        .ok_or_else(|| SysError::Unusable(format!("{target} has no address")))?;
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).ctx("SNTP socket")?;
    sock.connect(addr).ctx(format_args!("{addr}"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    // A nonce, not our clock: the server echoes it back (see edge_init::sntp).
    let nonce =
        u64::from(std::process::id()) << 32 ^ u64::from(super::now().subsec_nanos()) ^ 0x5eed_0000_0000_0001;
    let sent = std::time::Instant::now();
    sock.send(&edge_init::sntp::request(nonce))
        .ctx(format_args!("send to {addr}"))?;
    let mut buf = [0u8; 512];
    let mut refused: Option<edge_init::sntp::SntpError> = None;
    let timed_out = |refused: &Option<edge_init::sntp::SntpError>| {
        SysError::Unusable(match refused {
            Some(e) => format!("no usable answer in 2 s (last one: {e})"),
            None => "no answer in 2 s".to_owned(),
        })
    };
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(timed_out(&refused));
        }
        sock.set_read_timeout(Some(left)).ctx("SO_RCVTIMEO")?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out(&refused));
            }
            Err(e) => {
                return Err(SysError::Io {
                    what: format!("receive from {addr}"),
                    source: e,
                });
            }
        };
        // A refused datagram (stale, forged, kiss-o'-death) is noted; the deadline still holds.
        match edge_init::sntp::parse_reply(buf.get(..n).unwrap_or_default(), nonce) {
            Ok(reply) => {
                let t = reply.time_at_arrival(sent.elapsed());
                let ts = nix::sys::time::TimeSpec::from_duration(t);
                nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, ts)
                    .ctx(format_args!("clock_settime"))?;
                return Ok(t);
            }
            Err(e) => refused = Some(e),
        }
    }
}
