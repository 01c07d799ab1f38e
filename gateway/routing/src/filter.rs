//! `[filter]`: who may call whom. Deny lists win over allow lists; an allow list that is not empty
//! admits only what it lists. Callers are the From user, callees the Request-URI user, both matched by
//! prefix as written; networks are matched on the sender's IP address; User-Agent patterns on every
//! `User-Agent` field. A caller is anonymous when the From user or host is `anonymous` or
//! `anonymous.invalid` (any case, RFC 3323 §4.1.1.3) or a `Privacy` header lists `id` (RFC 3325).

use std::net::IpAddr;

use edge_config::routing::{Filter, Prefix};
use edge_sip::HeaderName;
use edge_sip::message::{Header, split_list};

/// What the filter looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    pub(crate) ip: IpAddr,
    pub(crate) from_user: &'a str,
    pub(crate) from_host: &'a str,
    pub(crate) callee: &'a str,
    pub(crate) headers: &'a [Header],
}

fn listed(list: &[Prefix], user: &str) -> bool {
    list.iter().any(|p| user.starts_with(p.as_str()))
}

/// Whether `c` is refused.
pub(crate) fn refused(f: &Filter, c: &Caller<'_>) -> bool {
    let denied = listed(&f.deny_callers, c.from_user)
        || listed(&f.deny_callees, c.callee)
        || f.deny_networks.iter().any(|n| n.contains(c.ip))
        || c.headers
            .iter()
            .filter(|h| h.name == HeaderName::UserAgent)
            .any(|h| f.deny_user_agents.iter().any(|p| p.regex().is_match(&h.value)))
        || (f.reject_anonymous && anonymous(c));
    let not_allowed = (!f.allow_callers.is_empty() && !listed(&f.allow_callers, c.from_user))
        || (!f.allow_callees.is_empty() && !listed(&f.allow_callees, c.callee))
        || (!f.allow_networks.is_empty() && !f.allow_networks.iter().any(|n| n.contains(c.ip)));
    denied || not_allowed
}

fn anonymous(c: &Caller<'_>) -> bool {
    let anon = |s: &str| s.eq_ignore_ascii_case("anonymous") || s.eq_ignore_ascii_case("anonymous.invalid");
    anon(c.from_user)
        || anon(c.from_host)
        || c.headers
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case("Privacy"))
            .flat_map(|h| split_list(&h.value))
            .flat_map(|v| v.split(';'))
            .any(|t| t.trim().eq_ignore_ascii_case("id"))
}
