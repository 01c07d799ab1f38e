//! What the core knows of transports: their names, whether they are reliable, and the shapes of
//! datagrams in and out. The sockets themselves live in the shell.

use std::net::SocketAddr;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (RFC 3261 §18).
    Udp,
    /// TCP (RFC 3261 §18).
    Tcp,
    /// TLS over TCP (RFC 3261 §26).
    Tls,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket (RFC 7118).
    Wss,
}

impl Transport {
    /// Reliable transports retransmit for us: timers A, E and G are not run over them, and D, I, J, K
    /// are zero (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Self::Udp)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Ws => "WS",
            Self::Wss => "WSS",
        }
    }
}

/// A received message.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Transport it arrived on.
    pub transport: Transport,
    /// Our address it arrived at (the listener).
    pub local: SocketAddr,
    /// The sender.
    pub remote: SocketAddr,
    /// The bytes.
    pub payload: &'a [u8],
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Transport to send by.
    pub transport: Transport,
    /// Our address to send from.
    pub local: SocketAddr,
    /// Where to.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}
