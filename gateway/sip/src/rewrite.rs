//! SIP header manipulation rules: what an SBC calls "message manipulation" (AudioCodes) and Kamailio
//! does with textops, applied by the call core to a request on its way out (toward a trunk or toward a
//! browser).
//!
//! **Owns**: the rule types the configuration builds ([`Rule`], [`Target`], [`Action`]), the checked
//! text types they carry ([`HeaderValue`], [`HeaderField`]) and [`apply`], which runs a rule list over
//! one [`Message`].
//!
//! **Never touches**: the headers that carry the dialog or the transaction — Via, From, To, Call-ID,
//! CSeq, Contact, Record-Route, Route, Max-Forwards — nor the body and the headers describing it
//! (Content-Length, Content-Type). They are refused when a rule is built ([`HeaderField::new`]), so a
//! configuration cannot break routing, dialog matching or framing. The user part of the Request-URI,
//! From and To *can* be changed ([`Target::RequestUser`], [`Target::FromUser`], [`Target::ToUser`]):
//! only that part of the URI is replaced; scheme, host, port, URI parameters, display name and header
//! parameters (the tag) stay as written.
//!
//! # Injection
//! A header value or replacement text is a [`HeaderValue`], which cannot hold CR, LF or any other
//! control character but HTAB; a header name is an RFC 3261 token. So no rule can add a header line or
//! end the header section. [`apply`] checks every result again before writing it (a message built in
//! memory is not re-parsed), and a result that would be invalid — a control character, or a user part
//! that makes the URI unreadable by [`SipUri::parse`] — leaves its target unchanged and is reported in
//! [`Applied::refused`].
//!
//! # User parts
//! User parts are matched and written **as they appear on the wire**, percent-escapes included:
//! `sip:%2B4420@host` is matched as `%2B4420`, and a replacement must write `%2B` itself if it wants
//! one (a bare `+` is allowed in a user part and is what most trunks expect). A URI without a user part
//! is matched as the empty string; `Set` (or a rewrite producing a non-empty user) adds one
//! (`sip:host` → `sip:new@host`), and a rewrite to the empty string removes it.
//!
//! # Regular expressions
//! The `regex` crate's syntax (Perl-like, Unicode-aware `\d`, no look-around, linear time). A
//! `Rewrite` replaces **every** non-overlapping match (anchor with `^…$` to match a whole value); the
//! replacement may use `$1`, `${1}`, `$name`, `${name}` and `$$` for a literal `$`. Note that `$1a`
//! means the group named `1a`: write `${1}a`. No match leaves the value unchanged.

use std::fmt;

use regex::Regex;

use crate::message::{HeaderName, Message, StartLine, is_token_byte};
use crate::uri::SipUri;

/// A header value or replacement text that cannot carry CR, LF or other control characters (except
/// HTAB): header injection is impossible by type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderValue(String);

impl HeaderValue {
    /// Checks `s`: any control character other than HTAB (C0, DEL, C1) is refused.
    pub fn new(s: &str) -> Result<Self, RewriteError> {
        match s.char_indices().find(|(_, c)| c.is_control() && *c != '\t') {
            Some((at, c)) => Err(RewriteError::ControlCharacter {
                at,
                code: u32::from(c),
            }),
            None => Ok(Self(s.to_owned())),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A header name: an RFC 3261 token (no `:`, spaces, controls). Names that carry the dialog or the
/// transaction (Via, From, To, Call-ID, CSeq, Contact, Record-Route, Route, Content-Length,
/// Content-Type, Max-Forwards, in long or compact form) are refused — From/To user parts are changed
/// with [`Target::FromUser`] / [`Target::ToUser`] instead.
///
/// Names match case-insensitively, and the compact forms of RFC 3261 and its extensions (`s` for
/// Subject, `o` for Event, …) match their long form. A name ending in `*` (e.g. `X-Asterisk-*`) is a
/// prefix wildcard: it may only be removed or rewritten, and it never matches a protected header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    /// The name to match and to write (compact forms expanded).
    name: HeaderName,
    /// For a wildcard, the prefix before the `*`.
    prefix: Option<String>,
}

impl HeaderField {
    /// Checks `s` and refuses the protected names.
    pub fn new(s: &str) -> Result<Self, RewriteError> {
        if s.is_empty() {
            return Err(RewriteError::EmptyHeaderName);
        }
        if !s.bytes().all(is_token_byte) {
            return Err(RewriteError::InvalidHeaderName(s.to_owned()));
        }
        if let Some(prefix) = s.strip_suffix('*') {
            return Ok(Self {
                name: HeaderName::Other(s.to_owned()),
                prefix: Some(prefix.to_owned()),
            });
        }
        let name = match HeaderName::from_wire(s) {
            HeaderName::Other(other) => HeaderName::Other(expand_compact(&other).to_owned()),
            known => known,
        };
        if let Some(reason) = protected(&name) {
            return Err(RewriteError::ProtectedHeader {
                name: name.as_str().to_owned(),
                reason,
            });
        }
        Ok(Self { name, prefix: None })
    }

    /// The name as configured (compact forms expanded).
    pub fn as_str(&self) -> &str {
        self.name.as_str()
    }

    /// Whether this is a `prefix*` wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.prefix.is_some()
    }

    /// Whether a header named `other` (as received) is one this field designates.
    fn matches(&self, other: &HeaderName) -> bool {
        if protected(other).is_some() {
            return false;
        }
        if let Some(prefix) = &self.prefix {
            let long = match other {
                HeaderName::Other(o) => expand_compact(o),
                known => known.as_str(),
            };
            return long
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix));
        }
        match (&self.name, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(expand_compact(b)),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compact header forms that [`HeaderName`] does not know (it expands its own): RFC 3261 §7.3.3, RFC
/// 3265/6665, RFC 3515, RFC 3892, RFC 3841, RFC 4474. Unknown names are returned unchanged.
fn expand_compact(name: &str) -> &str {
    const COMPACT: &[(&str, &str)] = &[
        ("a", "Accept-Contact"),
        ("b", "Referred-By"),
        ("d", "Request-Disposition"),
        ("e", "Content-Encoding"),
        ("j", "Reject-Contact"),
        ("n", "Identity-Info"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("s", "Subject"),
        ("u", "Allow-Events"),
        ("y", "Identity"),
    ];
    COMPACT
        .iter()
        .find(|(short, _)| short.eq_ignore_ascii_case(name))
        .map_or(name, |(_, long)| long)
}

/// Why a header may not be touched by a rule, or `None` if it may.
fn protected(name: &HeaderName) -> Option<&'static str> {
    Some(match name {
        HeaderName::Via => "carries the transaction; the gateway writes its own Via on each leg",
        HeaderName::From | HeaderName::To => {
            "carries the dialog; change its user part with the from-user / to-user targets instead"
        }
        HeaderName::CallId | HeaderName::CSeq => "carries the dialog; the gateway generates it for each leg",
        HeaderName::Contact | HeaderName::RecordRoute | HeaderName::Route => {
            "carries the dialog's routing; the gateway writes it for each leg"
        }
        HeaderName::ContentLength | HeaderName::ContentType => {
            "describes the body; the gateway writes it from the body it sends"
        }
        HeaderName::MaxForwards => "protects against loops; the gateway decrements it",
        _ => return None,
    })
}

/// What a rule acts on.
#[derive(Debug, Clone)]
pub enum Target {
    /// Every instance of a header field.
    Header(HeaderField),
    /// The user part of the Request-URI.
    RequestUser,
    /// The user part of the URI in From (display name and tag untouched).
    FromUser,
    /// The user part of the URI in To (display name and tag untouched).
    ToUser,
}

impl Target {
    /// The header holding the URI of a user target.
    fn uri_header(&self) -> Option<HeaderName> {
        match self {
            Self::FromUser => Some(HeaderName::From),
            Self::ToUser => Some(HeaderName::To),
            Self::Header(_) | Self::RequestUser => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(h) => write!(f, "header {h}"),
            Self::RequestUser => f.write_str("Request-URI user"),
            Self::FromUser => f.write_str("From user"),
            Self::ToUser => f.write_str("To user"),
        }
    }
}

/// What a rule does to its target.
#[derive(Debug, Clone)]
pub enum Action {
    /// Header only: append a header field with this value.
    Add(HeaderValue),
    /// Header only: remove every instance.
    Remove,
    /// Header: replace every instance by one with this value (added if absent). User target: set the
    /// user part.
    Set(HeaderValue),
    /// Every instance of the header / the user part: replace every match of `pattern` by
    /// `replacement` (captures `$1`, `${name}`). No match leaves the value unchanged.
    Rewrite {
        /// The expression to find.
        pattern: Regex,
        /// What to put instead, with capture references.
        replacement: HeaderValue,
    },
}

impl Action {
    fn verb(&self) -> &'static str {
        match self {
            Self::Add(_) => "add",
            Self::Remove => "remove",
            Self::Set(_) => "set",
            Self::Rewrite { .. } => "rewrite",
        }
    }
}

/// One manipulation rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// What the rule acts on.
    pub target: Target,
    /// What it does.
    pub action: Action,
}

impl Rule {
    /// Builds a rule, refusing the combinations that mean nothing: add/remove on a user part, add/set
    /// on a wildcard header, and setting a user part to something that is not a valid SIP user.
    pub fn new(target: Target, action: Action) -> Result<Self, RewriteError> {
        check(&target, &action)?;
        Ok(Self { target, action })
    }
}

fn check(target: &Target, action: &Action) -> Result<(), RewriteError> {
    match (target, action) {
        (Target::Header(h), Action::Add(_) | Action::Set(_)) if h.is_wildcard() => {
            Err(RewriteError::WildcardNeedsMatch {
                name: h.as_str().to_owned(),
                action: action.verb(),
            })
        }
        (Target::Header(_), _) => Ok(()),
        (_, Action::Add(_) | Action::Remove) => Err(RewriteError::NotForUser {
            target: target.to_string(),
            action: action.verb(),
        }),
        (_, Action::Set(user)) if !valid_user(user.as_str()) => {
            Err(RewriteError::InvalidUser(user.as_str().to_owned()))
        }
        (_, Action::Set(_) | Action::Rewrite { .. }) => Ok(()),
    }
}

/// Whether `user` can stand as the user part of a SIP URI, written as it is.
fn valid_user(user: &str) -> bool {
    SipUri::parse(&format!("sip:{user}@host.invalid")).is_ok_and(|u| u.user == Some(user))
}

/// Why a rule could not be built. The messages are meant for a configuration error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewriteError {
    /// A value contains a control character other than HTAB.
    ControlCharacter {
        /// Byte offset of the character.
        at: usize,
        /// Its code point.
        code: u32,
    },
    /// The header name is empty.
    EmptyHeaderName,
    /// The header name is not an RFC 3261 token.
    InvalidHeaderName(String),
    /// The header carries the dialog or the transaction (or describes the body).
    ProtectedHeader {
        /// Its canonical name.
        name: String,
        /// Why it may not be touched, and what to do instead.
        reason: &'static str,
    },
    /// Add or remove on a user part.
    NotForUser {
        /// The target, as shown to the operator.
        target: String,
        /// The refused action.
        action: &'static str,
    },
    /// Add or set on a wildcard header name.
    WildcardNeedsMatch {
        /// The name with its `*`.
        name: String,
        /// The refused action.
        action: &'static str,
    },
    /// A value set as a user part that is not a valid SIP user.
    InvalidUser(String),
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ControlCharacter { at, code } => write!(
                f,
                "control character U+{code:04X} at byte {at}: header text cannot contain CR, LF or other \
                 control characters (only HTAB)"
            ),
            Self::EmptyHeaderName => f.write_str("the header name is empty"),
            Self::InvalidHeaderName(name) => write!(
                f,
                "{name:?} is not a valid header name (letters, digits and -.!%*_+`'~ only, no ':' or spaces)"
            ),
            Self::ProtectedHeader { name, reason } => {
                write!(f, "{name:?} cannot be rewritten: it {reason}")
            }
            Self::NotForUser { target, action } => write!(
                f,
                "{action} applies to headers only; a {target} can be set or rewritten"
            ),
            Self::WildcardNeedsMatch { name, action } => write!(
                f,
                "{name:?} is a wildcard: it can be removed or rewritten, not {action}"
            ),
            Self::InvalidUser(user) => write!(
                f,
                "{user:?} is not a valid SIP user part (letters, digits, -_.!~*'() &=+$,;?/ and %XX \
                 escapes; RFC 3261 §25.1)"
            ),
        }
    }
}

impl std::error::Error for RewriteError {}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// How many rules changed something.
    pub changed: usize,
    /// One line per rule whose result was refused (its target left unchanged). The lines name the
    /// rule and the reason, never the values (they may be phone numbers).
    pub refused: Vec<String>,
}

/// Applies `rules` in order to `request`: each rule sees the result of the previous ones. Returns how
/// many rules changed something and which results were refused (their target left unchanged).
pub fn apply(rules: &[Rule], request: &mut Message) -> Applied {
    let mut applied = Applied::default();
    for (i, rule) in rules.iter().enumerate() {
        let outcome = check(&rule.target, &rule.action)
            .map_err(|e| e.to_string())
            .and_then(|()| match &rule.target {
                Target::Header(field) => apply_header(field, &rule.action, request).map_err(str::to_owned),
                Target::RequestUser => apply_request_user(&rule.action, request),
                Target::FromUser | Target::ToUser => apply_header_user(&rule.target, &rule.action, request),
            });
        match outcome {
            Ok(true) => applied.changed += 1,
            Ok(false) => {}
            Err(why) => applied.refused.push(format!(
                "rule {} ({} {}): {why}; left unchanged",
                i + 1,
                rule.target,
                rule.action.verb()
            )),
        }
    }
    applied
}

/// Runs a header action. `Err` (nothing changed) if a rewritten instance would be invalid.
fn apply_header(field: &HeaderField, action: &Action, m: &mut Message) -> Result<bool, &'static str> {
    match action {
        Action::Add(value) => {
            m.push_header(field.name.clone(), value.as_str().trim());
            Ok(true)
        }
        Action::Remove => {
            let before = m.headers.len();
            m.headers.retain(|h| !field.matches(&h.name));
            Ok(m.headers.len() != before)
        }
        Action::Set(value) => {
            let value = value.as_str().trim();
            let mut first = true;
            let mut changed = false;
            m.headers.retain_mut(|h| {
                if !field.matches(&h.name) {
                    return true;
                }
                if std::mem::take(&mut first) {
                    if h.value != value {
                        value.clone_into(&mut h.value);
                        changed = true;
                    }
                    return true;
                }
                changed = true;
                false
            });
            if first {
                m.push_header(field.name.clone(), value);
                changed = true;
            }
            Ok(changed)
        }
        Action::Rewrite { pattern, replacement } => {
            // Every instance is computed first: if one result is invalid, none is written.
            let mut new_values = Vec::new();
            for (i, h) in m.headers.iter().enumerate() {
                if !field.matches(&h.name) {
                    continue;
                }
                let new = pattern.replace_all(&h.value, replacement.as_str());
                let new = new.trim();
                if new != h.value {
                    HeaderValue::new(new).map_err(|_| "the result would contain a control character")?;
                    new_values.push((i, new.to_owned()));
                }
            }
            let changed = !new_values.is_empty();
            for (i, new) in new_values {
                if let Some(h) = m.headers.get_mut(i) {
                    h.value = new;
                }
            }
            Ok(changed)
        }
    }
}

/// The new user part for a user target, or `None` if the action leaves it as it is.
fn new_user(action: &Action, current: &str) -> Result<Option<String>, String> {
    let new = match action {
        Action::Set(user) => user.as_str().to_owned(),
        Action::Rewrite { pattern, replacement } => {
            pattern.replace_all(current, replacement.as_str()).into_owned()
        }
        // Refused by `check` before we get here.
        Action::Add(_) | Action::Remove => return Err("add and remove apply to headers only".into()),
    };
    if new == current {
        return Ok(None);
    }
    if HeaderValue::new(&new).is_err() {
        return Err("the result would contain a control character".into());
    }
    Ok(Some(new))
}

/// `uri` with its user part replaced by `user` (removed if empty). `Err` if `uri` is not a SIP URI or
/// the result would not read back as a SIP URI with exactly that user.
fn replace_user(uri: &str, user: &str) -> Result<String, &'static str> {
    let parsed = SipUri::parse(uri).map_err(|_| "the URI is not a readable sip: or sips: URI")?;
    let colon = uri.find(':').ok_or("the URI has no scheme")?;
    let (scheme, after) = (
        uri.get(..=colon).unwrap_or_default(),
        uri.get(colon + 1..).unwrap_or_default(),
    );
    // The user part is the start of what follows the scheme (it is borrowed from there).
    let rest = match parsed.user {
        Some(old) => after
            .get(old.len()..)
            .ok_or("the URI's user part is out of place")?,
        None => "",
    };
    let new = match (parsed.user, user.is_empty()) {
        (Some(_), false) => format!("{scheme}{user}{rest}"),
        (None, false) => format!("{scheme}{user}@{after}"),
        (Some(_), true) => match rest.strip_prefix('@') {
            Some(hostport) => format!("{scheme}{hostport}"),
            None => return Err("the user part cannot be removed while a password follows it"),
        },
        (None, true) => return Ok(uri.to_owned()),
    };
    let want = (!user.is_empty()).then_some(user);
    match SipUri::parse(&new) {
        Ok(u) if u.user == want => Ok(new),
        _ => Err("the new user part would make the URI unreadable"),
    }
}

fn apply_request_user(action: &Action, m: &mut Message) -> Result<bool, String> {
    let StartLine::Request { uri, .. } = &mut m.start else {
        return Err("a response has no Request-URI".into());
    };
    let current = SipUri::parse(uri)
        .map_err(|_| "the Request-URI is not a readable sip: or sips: URI")?
        .user
        .unwrap_or_default();
    let Some(user) = new_user(action, current)? else {
        return Ok(false);
    };
    *uri = replace_user(uri, &user)?;
    Ok(true)
}

fn apply_header_user(target: &Target, action: &Action, m: &mut Message) -> Result<bool, String> {
    let name = target.uri_header().ok_or("not a header user target")?;
    let header = m
        .headers
        .iter_mut()
        .find(|h| h.name == name)
        .ok_or_else(|| format!("the request has no {} header", name.as_str()))?;
    let (start, end) = uri_span(&header.value).ok_or("the header holds no URI")?;
    let uri = header.value.get(start..end).unwrap_or_default();
    let current = SipUri::parse(uri)
        .map_err(|_| format!("the {} URI is not a readable sip: or sips: URI", name.as_str()))?
        .user
        .unwrap_or_default();
    let Some(user) = new_user(action, current)? else {
        return Ok(false);
    };
    let new_uri = replace_user(uri, &user)?;
    let value = format!(
        "{}{new_uri}{}",
        header.value.get(..start).unwrap_or_default(),
        header.value.get(end..).unwrap_or_default()
    );
    // Read the whole field back: in addr-spec form (no angle brackets) a user with `;` or `?` would
    // move the end of the URI and turn part of it into header parameters.
    let reads_back = uri_span(&value)
        .and_then(|(s, e)| value.get(s..e))
        .and_then(|u| SipUri::parse(u).ok())
        .is_some_and(|u| u.user.unwrap_or_default() == user);
    if !reads_back || HeaderValue::new(&value).is_err() {
        return Err(format!(
            "the new user part would make the {} header unreadable",
            name.as_str()
        ));
    }
    header.value = value;
    Ok(true)
}

/// Byte range of the URI in a From/To value: inside the first `<…>` outside a quoted display name
/// (name-addr), else from the start to the first `;` or whitespace (addr-spec, RFC 3261 §20.10).
fn uri_span(value: &str) -> Option<(usize, usize)> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => {
                let start = i + 1;
                let len = value.get(start..)?.find('>')?;
                return Some((start, start + len));
            }
            _ => {}
        }
    }
    if quoted || value.starts_with('"') {
        return None;
    }
    let end = value
        .find(|c: char| c == ';' || c.is_whitespace())
        .unwrap_or(value.len());
    Some((0, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:02079460000@trunk.example.net;user=phone SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
        Max-Forwards: 70\r\n\
        From: \"Alice <Sales>\" <sip:alice@edge.example.com;transport=tls>;tag=f1\r\n\
        To: sip:02079460000@trunk.example.net;user=phone\r\n\
        Call-ID: c1@192.0.2.1\r\n\
        CSeq: 1 INVITE\r\n\
        Contact: <sip:gw@192.0.2.1:5060>\r\n\
        X-Secret: one\r\n\
        x-secret: two\r\n\
        s: hello world\r\n\
        User-Agent: Edge\r\n\
        \r\n";

    fn invite() -> Message {
        Message::parse(INVITE.as_bytes()).unwrap()
    }

    fn v(s: &str) -> HeaderValue {
        HeaderValue::new(s).unwrap()
    }

    fn h(s: &str) -> Target {
        Target::Header(HeaderField::new(s).unwrap())
    }

    fn rw(pattern: &str, replacement: &str) -> Action {
        Action::Rewrite {
            pattern: Regex::new(pattern).unwrap(),
            replacement: v(replacement),
        }
    }

    fn rule(target: Target, action: Action) -> Rule {
        Rule::new(target, action).unwrap()
    }

    fn all(m: &Message, name: &str) -> Vec<String> {
        let field = HeaderField::new(name).unwrap();
        m.headers
            .iter()
            .filter(|h| field.matches(&h.name))
            .map(|h| h.value.clone())
            .collect()
    }

    fn ruri(m: &Message) -> &str {
        let StartLine::Request { uri, .. } = &m.start else {
            panic!("not a request")
        };
        uri
    }

    #[test]
    fn header_values_refuse_controls() {
        for bad in [
            "x\r\nVia: evil",
            "x\nVia: evil",
            "x\ry",
            "nul\0",
            "del\x7f",
            "c1\u{85}",
            "\x1b[31m",
        ] {
            let err = HeaderValue::new(bad).unwrap_err();
            assert!(matches!(err, RewriteError::ControlCharacter { .. }), "{bad:?}");
        }
        assert_eq!(
            HeaderValue::new("x\r\nVia: evil").unwrap_err().to_string(),
            "control character U+000D at byte 1: header text cannot contain CR, LF or other control \
             characters (only HTAB)"
        );
        assert_eq!(v("a\tb ü").as_str(), "a\tb ü");
        assert_eq!(v("").as_str(), "");
    }

    #[test]
    fn header_names_are_tokens_and_dialog_headers_are_refused() {
        for bad in ["X Foo", "X-Foo:", "X\r\nVia", "", "Ünicode"] {
            assert!(HeaderField::new(bad).is_err(), "{bad:?}");
        }
        for protected in [
            "Via",
            "v",
            "From",
            "f",
            "To",
            "t",
            "Call-ID",
            "i",
            "call-id",
            "CSeq",
            "Contact",
            "m",
            "Record-Route",
            "Route",
            "Content-Length",
            "l",
            "Content-Type",
            "c",
            "Max-Forwards",
        ] {
            let err = HeaderField::new(protected).unwrap_err();
            assert!(matches!(err, RewriteError::ProtectedHeader { .. }), "{protected}");
        }
        assert_eq!(
            HeaderField::new("via").unwrap_err().to_string(),
            "\"Via\" cannot be rewritten: it carries the transaction; the gateway writes its own Via on each leg"
        );
        assert!(
            HeaderField::new("From")
                .unwrap_err()
                .to_string()
                .contains("from-user / to-user")
        );
        assert_eq!(HeaderField::new("s").unwrap().as_str(), "Subject");
        assert!(HeaderField::new("User-Agent").is_ok());
    }

    #[test]
    fn user_targets_refuse_add_remove_and_invalid_users() {
        for target in [Target::RequestUser, Target::FromUser, Target::ToUser] {
            assert!(matches!(
                Rule::new(target.clone(), Action::Remove),
                Err(RewriteError::NotForUser { .. })
            ));
            assert!(Rule::new(target.clone(), Action::Add(v("x"))).is_err());
            for bad in ["", "a b", "a@b", "a:b", "50%", "é"] {
                assert!(
                    matches!(
                        Rule::new(target.clone(), Action::Set(v(bad))),
                        Err(RewriteError::InvalidUser(_))
                    ),
                    "{bad:?}"
                );
            }
            assert!(Rule::new(target, Action::Set(v("%2B4420;x=1"))).is_ok());
        }
        assert!(Rule::new(h("X-Asterisk-*"), Action::Add(v("x"))).is_err());
        assert!(Rule::new(h("X-Asterisk-*"), Action::Set(v("x"))).is_err());
        assert!(Rule::new(h("X-Asterisk-*"), Action::Remove).is_ok());
    }

    #[test]
    fn header_add_remove_set_rewrite() {
        let mut m = invite();
        let applied = apply(&[rule(h("X-Tenant"), Action::Add(v("acme")))], &mut m);
        assert_eq!(
            applied,
            Applied {
                changed: 1,
                refused: vec![]
            }
        );
        assert_eq!(all(&m, "x-tenant"), ["acme"]);

        // Remove: every instance, names matched case-insensitively.
        let applied = apply(&[rule(h("X-SECRET"), Action::Remove)], &mut m);
        assert_eq!(applied.changed, 1);
        assert!(all(&m, "X-Secret").is_empty());
        assert_eq!(apply(&[rule(h("X-Secret"), Action::Remove)], &mut m).changed, 0);

        // Set: replaces the instances by one, at the first one's place; adds when absent.
        let mut m = invite();
        apply(&[rule(h("X-Secret"), Action::Set(v("only")))], &mut m);
        assert_eq!(all(&m, "X-Secret"), ["only"]);
        let pos = m.headers.iter().position(|h| h.value == "only").unwrap();
        assert_eq!(m.headers[pos - 1].name, HeaderName::Contact);
        assert_eq!(
            apply(&[rule(h("X-Secret"), Action::Set(v("only")))], &mut m).changed,
            0
        );
        apply(&[rule(h("X-New"), Action::Set(v(" trimmed ")))], &mut m);
        assert_eq!(all(&m, "X-New"), ["trimmed"]);

        // Rewrite: every instance; no match leaves it alone; the compact `s` is Subject.
        let mut m = invite();
        let applied = apply(&[rule(h("X-Secret"), rw("^t(\\w+)$", "T-$1"))], &mut m);
        assert_eq!(applied.changed, 1);
        assert_eq!(all(&m, "X-Secret"), ["one", "T-wo"]);
        assert_eq!(apply(&[rule(h("X-Secret"), rw("zzz", "y"))], &mut m).changed, 0);
        apply(&[rule(h("Subject"), rw("(?P<w>world)", "${w}!"))], &mut m);
        assert_eq!(all(&m, "s"), ["hello world!"]);
    }

    #[test]
    fn wildcards_never_reach_protected_headers() {
        let mut m = invite();
        m.push_header(HeaderName::Other("X-Asterisk-Chan".into()), "PJSIP/1");
        m.push_header(HeaderName::Other("x-asterisk-id".into()), "7");
        apply(&[rule(h("X-Asterisk-*"), Action::Remove)], &mut m);
        assert!(
            !m.headers
                .iter()
                .any(|h| h.name.as_str().to_ascii_lowercase().starts_with("x-asterisk"))
        );
        let before = m.headers.len();
        apply(&[rule(h("*"), Action::Remove)], &mut m);
        let left: Vec<_> = m.headers.iter().map(|h| h.name.clone()).collect();
        assert!(before > left.len());
        assert_eq!(
            left,
            [
                HeaderName::Via,
                HeaderName::MaxForwards,
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
                HeaderName::CSeq,
                HeaderName::Contact
            ]
        );
    }

    #[test]
    fn rules_apply_in_order() {
        let to_e164 = rule(Target::RequestUser, rw("^0(\\d+)$", "+44$1"));
        let strip_plus = rule(Target::RequestUser, rw("^\\+", "00"));
        let mut m = invite();
        assert_eq!(apply(&[to_e164.clone(), strip_plus.clone()], &mut m).changed, 2);
        assert_eq!(ruri(&m), "sip:00442079460000@trunk.example.net;user=phone");
        let mut m = invite();
        assert_eq!(apply(&[strip_plus, to_e164], &mut m).changed, 1);
        assert_eq!(ruri(&m), "sip:+442079460000@trunk.example.net;user=phone");
    }

    #[test]
    fn request_user_set_and_rewrite() {
        let mut m = invite();
        apply(
            &[rule(Target::RequestUser, Action::Set(v("%2B442079460000")))],
            &mut m,
        );
        assert_eq!(ruri(&m), "sip:%2B442079460000@trunk.example.net;user=phone");
        // Escapes are matched as written.
        apply(&[rule(Target::RequestUser, rw("^%2B", "+"))], &mut m);
        assert_eq!(ruri(&m), "sip:+442079460000@trunk.example.net;user=phone");

        // Without a user part: Set adds one, Rewrite matches "".
        let mut m = Message::parse(b"OPTIONS sip:trunk.example.net:5060 SIP/2.0\r\n\r\n").unwrap();
        assert_eq!(
            apply(&[rule(Target::RequestUser, rw("x", "y"))], &mut m).changed,
            0
        );
        apply(&[rule(Target::RequestUser, Action::Set(v("ping")))], &mut m);
        assert_eq!(ruri(&m), "sip:ping@trunk.example.net:5060");
        // A rewrite to "" removes it again.
        apply(&[rule(Target::RequestUser, rw("^.*$", ""))], &mut m);
        assert_eq!(ruri(&m), "sip:trunk.example.net:5060");
        apply(&[rule(Target::RequestUser, rw("^$", "1000"))], &mut m);
        assert_eq!(ruri(&m), "sip:1000@trunk.example.net:5060");
        // A password stays.
        let mut m = Message::parse(b"OPTIONS sips:a:pw@[2001:db8::1]:5061 SIP/2.0\r\n\r\n").unwrap();
        apply(&[rule(Target::RequestUser, Action::Set(v("b")))], &mut m);
        assert_eq!(ruri(&m), "sips:b:pw@[2001:db8::1]:5061");
        let applied = apply(&[rule(Target::RequestUser, rw(".*", ""))], &mut m);
        assert_eq!(applied.changed, 0);
        assert_eq!(applied.refused.len(), 1, "{applied:?}");
    }

    #[test]
    fn results_that_break_the_uri_are_refused_and_reported() {
        let mut m = invite();
        let before = m.clone();
        let applied = apply(
            &[
                rule(Target::RequestUser, rw("^0", "a b")),
                rule(Target::RequestUser, rw("^0", "x@y")),
                rule(Target::FromUser, rw("alice", "al:ice")),
                rule(Target::ToUser, rw("^0", "1;tag=evil")),
            ],
            &mut m,
        );
        assert_eq!(applied.changed, 0);
        assert_eq!(applied.refused.len(), 4, "{applied:?}");
        assert_eq!(m, before);
        assert!(
            applied.refused[0].starts_with("rule 1 (Request-URI user rewrite): the new user part"),
            "{}",
            applied.refused[0]
        );
        // No values in the report: they may be phone numbers.
        assert!(
            applied
                .refused
                .iter()
                .all(|r| !r.contains("0207") && !r.contains("alice")),
            "{applied:?}"
        );

        // A tel: URI or a response is refused, not guessed at.
        let mut m =
            Message::parse(b"INVITE tel:+442079460000 SIP/2.0\r\nFrom: <tel:+1>;tag=a\r\n\r\n").unwrap();
        let applied = apply(
            &[
                rule(Target::RequestUser, Action::Set(v("1"))),
                rule(Target::FromUser, Action::Set(v("1"))),
            ],
            &mut m,
        );
        assert_eq!((applied.changed, applied.refused.len()), (0, 2));
        let mut m = Message::parse(b"SIP/2.0 200 OK\r\n\r\n").unwrap();
        assert_eq!(
            apply(&[rule(Target::RequestUser, Action::Set(v("1")))], &mut m)
                .refused
                .len(),
            1
        );
        assert_eq!(
            apply(&[rule(Target::ToUser, Action::Set(v("1")))], &mut m)
                .refused
                .len(),
            1
        );
    }

    #[test]
    fn rules_built_by_hand_are_checked_too() {
        let mut m = invite();
        let applied = apply(
            &[Rule {
                target: Target::FromUser,
                action: Action::Remove,
            }],
            &mut m,
        );
        assert_eq!(applied.refused.len(), 1);
        assert_eq!(m, invite());
    }

    #[test]
    fn a_control_character_carried_in_memory_is_not_written() {
        // A message built in memory is not re-parsed: the check at write time still holds.
        let mut m = invite();
        m.push_header(HeaderName::Other("X-Raw".into()), "clean");
        m.push_header(HeaderName::Other("X-Raw".into()), "a\r\nVia: evil");
        let applied = apply(&[rule(h("X-Raw"), rw("a", "b"))], &mut m);
        assert_eq!(applied.changed, 0);
        assert_eq!(
            applied.refused,
            ["rule 1 (header X-Raw rewrite): the result would contain a control character; left unchanged"]
        );
        // The whole target is left unchanged, the clean instance too.
        assert_eq!(all(&m, "X-Raw"), ["clean", "a\r\nVia: evil"]);
    }

    #[test]
    fn from_user_keeps_display_name_params_and_tag() {
        let mut m = invite();
        let applied = apply(&[rule(Target::FromUser, rw("^(a)lice$", "${1}nonymous"))], &mut m);
        assert_eq!(applied.changed, 1);
        assert_eq!(
            m.header(&HeaderName::From),
            Some("\"Alice <Sales>\" <sip:anonymous@edge.example.com;transport=tls>;tag=f1")
        );
        // addr-spec form: the URI ends at the first `;`, which starts the header parameters.
        let mut m = Message::parse(b"INVITE sip:a@b SIP/2.0\r\nFrom: sip:+15550100@b.example;tag=x9\r\n\r\n")
            .unwrap();
        apply(&[rule(Target::FromUser, rw("^\\+1(\\d+)$", "1$1"))], &mut m);
        assert_eq!(m.header(&HeaderName::From), Some("sip:15550100@b.example;tag=x9"));
    }

    #[test]
    fn to_user_set_with_and_without_user() {
        let mut m = invite();
        apply(&[rule(Target::ToUser, Action::Set(v("+442079460000")))], &mut m);
        assert_eq!(
            m.header(&HeaderName::To),
            Some("sip:+442079460000@trunk.example.net;user=phone")
        );
        let mut m =
            Message::parse(b"INVITE sip:a@b SIP/2.0\r\nTo: Trunk <sips:trunk.example.net>;tag=t\r\n\r\n")
                .unwrap();
        apply(&[rule(Target::ToUser, Action::Set(v("bob")))], &mut m);
        assert_eq!(
            m.header(&HeaderName::To),
            Some("Trunk <sips:bob@trunk.example.net>;tag=t")
        );
    }

    #[test]
    fn uri_spans() {
        assert_eq!(uri_span("\"a<b\" <sip:x@y>;tag=1"), Some((7, 14)));
        assert_eq!(uri_span("sip:x@y;tag=1"), Some((0, 7)));
        assert_eq!(uri_span("sip:x@y"), Some((0, 7)));
        assert_eq!(uri_span("\"unterminated <sip:x@y>"), None);
        assert_eq!(uri_span("<sip:x@y"), None);
    }
}
