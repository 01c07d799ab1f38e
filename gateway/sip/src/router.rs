//! The call core's port to routing and policy: [`Router`] decides where a new call goes (or refuses
//! it), which trunk to try next when one fails, what a request looks like on its way out, and which
//! trunks to probe with OPTIONS. The B2BUA asks; it never decides. `gatewayd` plugs in
//! `edge_routing::Engine` (the routing table, admission control, filters, monitoring); [`OneTrunk`] is
//! the plain "every call to one trunk" router the call core's own tests use.
//!
//! Never touches: sockets, the clock (time comes in as `now`), randomness sources.

use std::time::{Duration, Instant};

use crate::b2bua::CallRef;
use crate::message::Message;
use crate::transaction::Route;

/// One trunk a request can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The router's index of the trunk (for its bookkeeping and for [`Router::credentials`]).
    pub trunk: usize,
    /// Transport, our local address, the trunk's address.
    pub route: Route,
    /// The host part for Request-URIs toward it (`pbx.example.com`, `192.0.2.1:5070`).
    pub host: String,
}

/// What to do with a new call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer it with this status (filter, admission control, a rejecting route, no route).
    Reject {
        /// Final status, 400-699.
        status: u16,
        /// Reason phrase.
        reason: String,
        /// `Retry-After` seconds (with 503).
        retry_after: Option<u32>,
    },
    /// Send it to this trunk first.
    Forward(Target),
    /// Admitted; it goes to the registered browser its Request-URI names.
    Local,
}

/// Why an attempt toward a trunk failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A final response (3xx-6xx).
    Status(u16),
    /// No final response in time (Timer B).
    Timeout,
    /// The transport could not reach it.
    Unreachable,
}

/// Where a request goes out, for header manipulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// To this trunk.
    Trunk(usize),
    /// To a browser.
    Browser,
}

/// Routing and policy, as the call core sees it. Every method is a decision from data: no I/O.
pub trait Router: std::fmt::Debug + Send {
    /// A new out-of-dialog INVITE `request` from `source`. `registered` says whether its
    /// Request-URI names a browser registered here. Admission counts the call from now until
    /// [`Router::ended`].
    fn route(
        &mut self,
        now: Instant,
        call: CallRef,
        request: &Message,
        source: Route,
        registered: bool,
    ) -> Decision;

    /// The attempt of `call` toward its current trunk failed: the next trunk of its route, or `None`
    /// (the failure is final: not a failover code, nothing left, out of time budget).
    fn next(&mut self, now: Instant, call: CallRef, failure: Failure) -> Option<Target>;

    /// How long a trunk may stay silent (not even 100 Trying) before the call tries the next trunk
    /// (`None`: only Timer B).
    fn attempt_timeout(&self) -> Option<Duration>;

    /// The call ended (whatever ended it): its admission counts are released.
    fn ended(&mut self, call: CallRef);

    /// Applies the header manipulation rules for `toward` to an out-of-dialog request.
    fn rewrite(&self, toward: Toward, request: &mut Message);

    /// Digest credentials (user name, password) for a trunk's 401/407.
    fn credentials(&self, trunk: usize) -> Option<(&str, &str)>;

    /// Where browsers' REGISTERs go.
    fn registrar(&self) -> Option<Target>;

    /// Registration offload: forward a browser's refresh at most this often (`None`: always).
    fn offload_interval(&self) -> Option<Duration>;

    /// The trunk (if any) that sent from `source`: one at that exact address; over TCP or TLS (a
    /// connection from an ephemeral port) one at that IP address.
    fn trunk_of(&self, source: Route) -> Option<usize>;

    /// A trunk due for an OPTIONS probe now (call again until `None`).
    fn poll_probe(&mut self, now: Instant) -> Option<Target>;

    /// Trunk `trunk` as it stands (for an operator's test OPTIONS): `None` if unknown or unresolved.
    fn target_of(&self, trunk: usize) -> Option<Target>;

    /// The answer to a probe: `Some(status)` for a final response, `None` for none (timeout,
    /// unreachable).
    fn probe_answered(&mut self, now: Instant, trunk: usize, status: Option<u16>);

    /// When [`Router::poll_probe`] next has something.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Whether trunk `trunk` can take calls now (up by monitoring and resolved).
    fn is_up(&self, trunk: usize) -> bool;

    /// The shell resolved (or re-resolved, or lost) trunk `trunk`'s address: how to reach it now.
    fn set_route(&mut self, trunk: usize, route: Option<Route>);

    /// A trunk's monitoring state changed: `(trunk name, up)`, for the shell's log (call until `None`).
    fn poll_change(&mut self) -> Option<(String, bool)>;

    /// One line for the service manager's status: e.g. `trunks up: 2/3`.
    fn summary(&self) -> String;

    /// The concrete router, for the shell's own calls on it (a configuration reload).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

/// Every call and registration to one trunk, no policy: what the call core's tests use.
#[derive(Debug, Clone)]
pub struct OneTrunk {
    /// The trunk.
    pub route: Route,
}

impl OneTrunk {
    fn target(&self) -> Target {
        Target {
            trunk: 0,
            route: self.route,
            host: self.route.remote.to_string(),
        }
    }
}

impl Router for OneTrunk {
    fn route(&mut self, _: Instant, _: CallRef, _: &Message, source: Route, registered: bool) -> Decision {
        if registered {
            Decision::Local
        } else if source.remote == self.route.remote {
            // From the trunk and for nobody registered here: never send it back where it came from.
            Decision::Reject {
                status: 404,
                reason: "Not Found".into(),
                retry_after: None,
            }
        } else {
            Decision::Forward(self.target())
        }
    }
    fn next(&mut self, _: Instant, _: CallRef, _: Failure) -> Option<Target> {
        None
    }
    fn attempt_timeout(&self) -> Option<Duration> {
        None
    }
    fn ended(&mut self, _: CallRef) {}
    fn rewrite(&self, _: Toward, _: &mut Message) {}
    fn credentials(&self, _: usize) -> Option<(&str, &str)> {
        None
    }
    fn registrar(&self) -> Option<Target> {
        Some(self.target())
    }
    fn offload_interval(&self) -> Option<Duration> {
        None
    }
    fn trunk_of(&self, source: Route) -> Option<usize> {
        (source.remote == self.route.remote).then_some(0)
    }
    fn poll_probe(&mut self, _: Instant) -> Option<Target> {
        None
    }
    fn target_of(&self, trunk: usize) -> Option<Target> {
        (trunk == 0).then(|| self.target())
    }
    fn probe_answered(&mut self, _: Instant, _: usize, _: Option<u16>) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn is_up(&self, _: usize) -> bool {
        true
    }
    fn set_route(&mut self, _: usize, route: Option<Route>) {
        if let Some(r) = route {
            self.route = r;
        }
    }
    fn poll_change(&mut self) -> Option<(String, bool)> {
        None
    }
    fn summary(&self) -> String {
        format!("trunk {}", self.route.remote)
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}
