//! Digest authentication toward trunks: owns reading a 401/407 challenge and computing the answering
//! `Authorization` / `Proxy-Authorization` value; never touches the clock, randomness, sockets, or any
//! state kept between requests (nonce counts and the cnonce are the caller's).
//!
//! RFC 3261 §22 (SIP's use of HTTP digest), RFC 2617 (qop, cnonce, nonce count, the RFC 2069 compat
//! form), RFC 7616 (SHA-256, `-sess`), RFC 8760 (SHA-256 in SIP, several challenges per response).
//!
//! # Flow
//! A trunk answers 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`). The caller hands every value
//! of that header to [`best`], which parses each with [`Challenge::parse`] and keeps the strongest one
//! it can answer; [`authorization`] then gives the value of `Authorization` (for 401) or
//! `Proxy-Authorization` (for 407) for the retried request, whose CSeq the caller increments.
//!
//! Each header field carries exactly one challenge (RFC 3261 §25.1 `challenge`), and a challenge is a
//! comma list itself: read the fields whole, never through `Message::values` (which splits at commas).
//!
//! # Bad input
//! Nothing in a challenge can make this module panic. A challenge whose values hold control characters
//! (CR, LF, …) is refused ([`ChallengeError::Malformed`]), so nothing a server writes can inject a header
//! into the request we send back. Values we write are quoted with `\` and `"` escaped; control
//! characters in caller-supplied values (username, URI, cnonce) are dropped as a last line of defence
//! (the configuration already refuses them).
//!
//! # Not supported
//! `qop=auth-int` (a challenge offering only it is refused: [`ChallengeError::UnsupportedQop`]),
//! `SHA-512-256` ([`ChallengeError::UnsupportedAlgorithm`]; [`best`] falls back to another challenge),
//! `userhash` (ignored: the username is sent in clear, as RFC 3261 requires), and `username*`.

use std::fmt;

use crate::message::is_token_byte;

/// The hash algorithm of a challenge (RFC 7616 §3.3 `algorithm`, default MD5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617), also when `algorithm` is absent.
    Md5,
    /// `MD5-sess`: the session key also hashes the nonce and cnonce (RFC 7616 §3.4.2). Needs qop.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-256-sess` (RFC 7616 §3.4.2, RFC 8760). Needs qop.
    Sha256Sess,
}

impl Algorithm {
    /// The token as written in `algorithm=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Reads an `algorithm` value; tokens are compared without case (RFC 7616 §3.3).
    fn from_token(token: &str) -> Option<Self> {
        [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(token))
    }

    /// Whether the session key mixes in nonce and cnonce (the `-sess` variants).
    fn is_sess(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    /// Rank of the hash for [`best`]: higher is stronger.
    fn strength(self) -> u8 {
        match self {
            Self::Md5 | Self::Md5Sess => 0,
            Self::Sha256 | Self::Sha256Sess => 1,
        }
    }

    /// Lower-case hex of the hash of `parts` joined by `:` (RFC 7616 §3.4.1 `H(concat(...))`).
    fn hash_hex(self, parts: &[&str]) -> String {
        let joined = parts.join(":");
        match self {
            Self::Md5 | Self::Md5Sess => hex(<md5::Md5 as md5::Digest>::digest(joined.as_bytes()).iter()),
            Self::Sha256 | Self::Sha256Sess => {
                hex(<sha2::Sha256 as sha2::Digest>::digest(joined.as_bytes()).iter())
            }
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed challenge from one WWW-Authenticate / Proxy-Authenticate header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`, unquoted and unescaped.
    pub realm: String,
    /// `nonce`, unquoted and unescaped.
    pub nonce: String,
    /// `opaque`, to be returned as is.
    pub opaque: Option<String>,
    /// `algorithm`, MD5 when absent.
    pub algorithm: Algorithm,
    /// The server offered a `qop` containing `auth`: answer with qop, cnonce and nc. Without `qop`
    /// the answer takes the RFC 2069 compat form.
    pub qop_auth: bool,
    /// `stale=true`: the nonce expired but the credentials were right; retrying with the new nonce is
    /// not a second failure (RFC 7616 §3.3).
    pub stale: bool,
}

/// Why a header value is not a challenge this module can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeError {
    /// The scheme is not `Digest` (e.g. `Basic`), or there is no scheme.
    NotDigest,
    /// A required parameter is absent (`realm`, `nonce`; `qop` with a `-sess` algorithm).
    Missing(&'static str),
    /// An `algorithm` other than MD5, MD5-sess, SHA-256, SHA-256-sess.
    UnsupportedAlgorithm(String),
    /// A `qop` without `auth` (e.g. only `auth-int`).
    UnsupportedQop(String),
    /// Not an auth-param list, a control character in a value, or a parameter given twice.
    Malformed(&'static str),
}

impl fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotDigest => f.write_str("not a Digest challenge"),
            Self::Missing(param) => write!(f, "Digest challenge without {param}"),
            Self::UnsupportedAlgorithm(alg) => write!(f, "unsupported Digest algorithm {alg:?}"),
            Self::UnsupportedQop(qop) => write!(f, "unsupported Digest qop {qop:?} (only auth)"),
            Self::Malformed(why) => write!(f, "malformed Digest challenge: {why}"),
        }
    }
}

impl std::error::Error for ChallengeError {}

impl Challenge {
    /// Parses one `WWW-Authenticate` / `Proxy-Authenticate` value: `Digest` (any case), then
    /// comma-separated `name=value` auth-params (names without case, values a token or a quoted string
    /// with `\` escapes). Whitespace and line folds between items are skipped, empty list items
    /// tolerated, unknown parameters ignored.
    pub fn parse(header_value: &str) -> Result<Self, ChallengeError> {
        let mut cur = Cursor { rest: header_value };
        cur.skip_lws();
        let scheme = cur.token();
        if scheme.is_empty() || !scheme.eq_ignore_ascii_case("Digest") {
            return Err(ChallengeError::NotDigest);
        }
        if !cur.skip_lws() && !cur.rest.is_empty() {
            return Err(ChallengeError::Malformed("no space after Digest"));
        }

        let mut p = Params::default();
        loop {
            cur.skip_lws();
            if cur.eat(',') {
                continue; // empty list item (RFC 7230 §7)
            }
            if cur.rest.is_empty() {
                break;
            }
            let name = cur.token();
            if name.is_empty() {
                return Err(ChallengeError::Malformed("expected a parameter name"));
            }
            cur.skip_lws();
            if !cur.eat('=') {
                return Err(ChallengeError::Malformed("expected '=' after a parameter name"));
            }
            cur.skip_lws();
            let value = cur.value()?;
            p.set(name, value)?;
            cur.skip_lws();
            if !cur.rest.is_empty() && !cur.eat(',') {
                return Err(ChallengeError::Malformed("expected ',' between parameters"));
            }
        }

        let realm = p.realm.ok_or(ChallengeError::Missing("realm"))?;
        let nonce = p.nonce.ok_or(ChallengeError::Missing("nonce"))?;
        let algorithm = match p.algorithm {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(&a).ok_or(ChallengeError::UnsupportedAlgorithm(a))?,
        };
        let qop_auth = match p.qop {
            None => false,
            Some(q) if q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth")) => true,
            Some(q) => return Err(ChallengeError::UnsupportedQop(q)),
        };
        if algorithm.is_sess() && !qop_auth {
            // The -sess key hashes the cnonce, which may be sent only with qop (RFC 2617 §3.2.2).
            return Err(ChallengeError::Missing("qop"));
        }
        Ok(Self {
            realm,
            nonce,
            opaque: p.opaque,
            algorithm,
            qop_auth,
            stale: p.stale.is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

/// Picks the strongest usable challenge among a response's header values (SHA-256 before MD5), RFC 8760
/// §2.4.
///
/// RFC 8760 §2.4 has the UAC take the topmost challenge it supports "unless a local policy dictates
/// otherwise"; ours is the strongest hash, then the topmost among equals. Values that do not parse or
/// are not answerable are skipped.
pub fn best<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let mut chosen: Option<Challenge> = None;
    for challenge in values.into_iter().filter_map(|v| Challenge::parse(v).ok()) {
        if chosen
            .as_ref()
            .is_none_or(|c| challenge.algorithm.strength() > c.algorithm.strength())
        {
            chosen = Some(challenge);
        }
    }
    chosen
}

/// The credentials configured for a trunk.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The digest username (often the trunk account, not the caller's number).
    pub username: &'a str,
    /// The password; never printed (see the `Debug` impl).
    pub password: &'a str,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The Authorization / Proxy-Authorization header value answering `challenge` for `method` and `uri`.
/// `cnonce` comes from the caller (the core has no randomness); `nc` is the nonce count (1 for a fresh
/// nonce).
///
/// `uri` must be the Request-URI exactly as written in the request line (RFC 3261 §22.4), `method` the
/// request's method as written. With qop the value is
/// `Digest username=…, realm=…, nonce=…, uri=…, response=…, algorithm=…, cnonce=…, qop=auth, nc=…`,
/// plus `opaque` when the challenge had one; without qop (RFC 2069) `cnonce`, `qop` and `nc` are absent.
pub fn authorization(
    challenge: &Challenge,
    creds: &Credentials<'_>,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let alg = challenge.algorithm;
    let nc = format!("{nc:08x}");
    let mut ha1 = alg.hash_hex(&[creds.username, &challenge.realm, creds.password]);
    if alg.is_sess() {
        ha1 = alg.hash_hex(&[&ha1, &challenge.nonce, cnonce]);
    }
    let ha2 = alg.hash_hex(&[method, uri]);
    let response = if challenge.qop_auth {
        alg.hash_hex(&[&ha1, &challenge.nonce, &nc, cnonce, "auth", &ha2])
    } else {
        alg.hash_hex(&[&ha1, &challenge.nonce, &ha2])
    };

    let mut out = String::with_capacity(256);
    out.push_str("Digest username=");
    push_quoted(&mut out, creds.username);
    out.push_str(", realm=");
    push_quoted(&mut out, &challenge.realm);
    out.push_str(", nonce=");
    push_quoted(&mut out, &challenge.nonce);
    out.push_str(", uri=");
    push_quoted(&mut out, uri);
    out.push_str(", response=\"");
    out.push_str(&response);
    out.push_str("\", algorithm=");
    out.push_str(alg.as_str());
    // A -sess key hashed the cnonce: the server needs it even if the challenge (built by hand, since
    // `parse` refuses -sess without qop) offered no qop.
    if challenge.qop_auth || alg.is_sess() {
        out.push_str(", cnonce=");
        push_quoted(&mut out, cnonce);
    }
    if challenge.qop_auth {
        out.push_str(", qop=auth, nc=");
        out.push_str(&nc);
    }
    if let Some(opaque) = &challenge.opaque {
        out.push_str(", opaque=");
        push_quoted(&mut out, opaque);
    }
    out
}

/// Appends `value` as a quoted string: `\` and `"` escaped, control characters dropped (no CR/LF can
/// leave through a header value we write).
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Lower-case hex of `bytes`.
fn hex<'b>(bytes: impl Iterator<Item = &'b u8>) -> String {
    fn digit(n: u8) -> char {
        // n < 16: it is a nibble.
        char::from(if n < 10 { b'0' + n } else { b'a' + (n - 10) })
    }
    let mut s = String::with_capacity(64);
    for b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 0x0f));
    }
    s
}

/// The parameters this module reads; the others are skipped.
#[derive(Default)]
struct Params {
    realm: Option<String>,
    nonce: Option<String>,
    opaque: Option<String>,
    algorithm: Option<String>,
    qop: Option<String>,
    stale: Option<String>,
}

impl Params {
    /// Records `name=value` if it is one we read; a known parameter given twice is refused (RFC 7235
    /// §2.1: each name at most once), so two realms or nonces cannot be told apart differently by us and
    /// by a proxy in between.
    fn set(&mut self, name: &str, value: String) -> Result<(), ChallengeError> {
        let slot = match name.to_ascii_lowercase().as_str() {
            "realm" => &mut self.realm,
            "nonce" => &mut self.nonce,
            "opaque" => &mut self.opaque,
            "algorithm" => &mut self.algorithm,
            "qop" => &mut self.qop,
            "stale" => &mut self.stale,
            _ => return Ok(()),
        };
        if slot.is_some() {
            return Err(ChallengeError::Malformed("parameter given twice"));
        }
        *slot = Some(value);
        Ok(())
    }
}

/// A reading position in a header value.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    /// Skips spaces, tabs and line folds (CRLF or LF followed by a space or tab, RFC 3261 §7.3.1).
    /// Returns whether anything was skipped. A CR or LF that is not a fold stays, for the caller to
    /// refuse.
    fn skip_lws(&mut self) -> bool {
        let start = self.rest.len();
        loop {
            let unfolded = self
                .rest
                .strip_prefix("\r\n")
                .or_else(|| self.rest.strip_prefix('\n'))
                .filter(|r| r.starts_with([' ', '\t']));
            if let Some(r) = unfolded {
                self.rest = r;
            } else if let Some(r) = self.rest.strip_prefix([' ', '\t']) {
                self.rest = r;
            } else {
                return self.rest.len() != start;
            }
        }
    }

    /// Consumes `c` if it is next.
    fn eat(&mut self, c: char) -> bool {
        self.rest.strip_prefix(c).is_some_and(|r| {
            self.rest = r;
            true
        })
    }

    /// The longest run of token characters (RFC 3261 §25.1), possibly empty.
    fn token(&mut self) -> &'a str {
        let end = self
            .rest
            .bytes()
            .position(|b| !is_token_byte(b))
            .unwrap_or(self.rest.len());
        // `end` is at an ASCII byte or the end, so on a char boundary.
        let (token, rest) = self.rest.split_at_checked(end).unwrap_or((self.rest, ""));
        self.rest = rest;
        token
    }

    /// A parameter value: a quoted string (unescaped), or else the run up to the next `,` or space.
    /// Unquoted values are read more widely than a token: some servers leave base64 nonces (`/`, `=`)
    /// unquoted. Control characters are refused in both.
    fn value(&mut self) -> Result<String, ChallengeError> {
        if self.eat('"') {
            return self.quoted_rest();
        }
        let end = self.rest.find([',', ' ', '\t', '"']).unwrap_or(self.rest.len());
        let (value, rest) = self.rest.split_at_checked(end).unwrap_or((self.rest, ""));
        if value.is_empty() {
            return Err(ChallengeError::Malformed("expected a parameter value"));
        }
        if value.chars().any(char::is_control) {
            return Err(ChallengeError::Malformed("control character in a value"));
        }
        self.rest = rest;
        Ok(value.to_owned())
    }

    /// The rest of a quoted string whose opening `"` was consumed: `\x` stands for `x`.
    fn quoted_rest(&mut self) -> Result<String, ChallengeError> {
        let mut value = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            let c = match c {
                '"' => {
                    self.rest = self.rest.get(i + 1..).unwrap_or("");
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => escaped,
                    None => break,
                },
                c => c,
            };
            if c.is_control() {
                return Err(ChallengeError::Malformed("control character in a value"));
            }
            value.push(c);
        }
        Err(ChallengeError::Malformed("unterminated quoted string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MUFASA_2617: Credentials<'static> = Credentials {
        username: "Mufasa",
        password: "Circle Of Life",
    };
    const MUFASA_7616: Credentials<'static> = Credentials {
        username: "Mufasa",
        password: "Circle of Life",
    };

    /// The `response="…"` of an Authorization value.
    fn response_of(auth: &str) -> &str {
        let start = auth.find("response=\"").expect("has a response") + "response=\"".len();
        let len = auth[start..].find('"').expect("response is quoted");
        &auth[start..start + len]
    }

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5.
        let c = Challenge::parse(
            "Digest\r\n realm=\"testrealm@host.com\",\r\n qop=\"auth,auth-int\",\r\n \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert!(c.qop_auth);
        let auth = authorization(&c, &MUFASA_2617, "GET", "/dir/index.html", "0a4f113b", 1);
        assert_eq!(
            auth,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", \
             qop=auth, nc=00000001, opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        );
    }

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

    fn rfc7616_challenge(algorithm: &str) -> String {
        // RFC 7616 §3.9.1, folded as printed there.
        format!(
            "Digest\r\n    realm=\"http-auth@example.org\",\r\n    qop=\"auth, auth-int\",\r\n    \
             algorithm={algorithm},\r\n    nonce=\"{RFC7616_NONCE}\",\r\n    opaque=\"{RFC7616_OPAQUE}\""
        )
    }

    #[test]
    fn rfc7616_md5_example() {
        let c = Challenge::parse(&rfc7616_challenge("MD5")).unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        let auth = authorization(&c, &MUFASA_7616, "GET", "/dir/index.html", RFC7616_CNONCE, 1);
        assert_eq!(response_of(&auth), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc7616_sha256_example() {
        let c = Challenge::parse(&rfc7616_challenge("SHA-256")).unwrap();
        assert_eq!(
            c,
            Challenge {
                realm: "http-auth@example.org".into(),
                nonce: RFC7616_NONCE.into(),
                opaque: Some(RFC7616_OPAQUE.into()),
                algorithm: Algorithm::Sha256,
                qop_auth: true,
                stale: false,
            }
        );
        let auth = authorization(&c, &MUFASA_7616, "GET", "/dir/index.html", RFC7616_CNONCE, 1);
        assert_eq!(
            auth,
            format!(
                "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", nonce=\"{RFC7616_NONCE}\", \
                 uri=\"/dir/index.html\", \
                 response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
                 algorithm=SHA-256, cnonce=\"{RFC7616_CNONCE}\", qop=auth, nc=00000001, \
                 opaque=\"{RFC7616_OPAQUE}\""
            )
        );
    }

    #[test]
    fn rfc2069_form_without_qop() {
        // No qop: response = H(HA1:nonce:HA2), no cnonce/qop/nc, no opaque when none was given.
        // Expected value computed independently (Python hashlib).
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"",
        )
        .unwrap();
        assert!(!c.qop_auth);
        assert_eq!(c.opaque, None);
        let auth = authorization(&c, &MUFASA_2617, "GET", "/dir/index.html", "ignored", 7);
        assert_eq!(
            auth,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"670fd8c2df070c60b045671b8b24ff02\", algorithm=MD5"
        );
    }

    #[test]
    fn sess_algorithms_hash_nonce_and_cnonce_into_the_key() {
        // Expected values computed independently (Python hashlib), RFC 7616 §3.4.2.
        let alice = Credentials {
            username: "alice",
            password: "s3cret",
        };
        let c = Challenge::parse(
            r#"Digest realm="sip.example.com", nonce="abc\"def", algorithm=md5-sess, qop=auth"#,
        )
        .unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5Sess);
        assert_eq!(c.nonce, "abc\"def");
        let auth = authorization(
            &c,
            &alice,
            "REGISTER",
            "sip:sip.example.com",
            "0123456789abcdef",
            42,
        );
        assert_eq!(response_of(&auth), "16587e451bb97806475a84a555dfd4c3");
        assert!(auth.contains(r#"nonce="abc\"def""#), "{auth}");
        assert!(auth.contains("algorithm=MD5-sess, cnonce=\"0123456789abcdef\", qop=auth, nc=0000002a"));

        let c = Challenge::parse(
            r#"Digest realm="sip.example.com", nonce="n0nce", algorithm=SHA-256-sess, qop="auth""#,
        )
        .unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256Sess);
        let auth = authorization(
            &c,
            &alice,
            "INVITE",
            "sip:+15551234@sip.example.com;user=phone",
            "cn",
            1,
        );
        assert_eq!(
            response_of(&auth),
            "e87743990cb1fbaf49d312b46b31096eccbe1ba61d2b8fca6006dec5aae22a22"
        );
    }

    #[test]
    fn sess_without_qop_is_refused() {
        assert_eq!(
            Challenge::parse("Digest realm=r, nonce=n, algorithm=MD5-sess"),
            Err(ChallengeError::Missing("qop"))
        );
    }

    #[test]
    fn nonce_count_is_eight_hex_digits() {
        let c = Challenge::parse("Digest realm=r, nonce=n, qop=auth").unwrap();
        let creds = Credentials {
            username: "u",
            password: "p",
        };
        assert!(authorization(&c, &creds, "OPTIONS", "sip:h", "c", 0x2a).ends_with("nc=0000002a"));
        assert!(authorization(&c, &creds, "OPTIONS", "sip:h", "c", u32::MAX).ends_with("nc=ffffffff"));
        let a1 = authorization(&c, &creds, "OPTIONS", "sip:h", "c", 1);
        let a2 = authorization(&c, &creds, "OPTIONS", "sip:h", "c", 2);
        assert_ne!(response_of(&a1), response_of(&a2), "nc is hashed");
    }

    #[test]
    fn written_values_are_escaped_and_never_carry_control_characters() {
        let c = Challenge {
            realm: "a\"b\\c\r\nX-Injected: 1".into(),
            nonce: "n".into(),
            opaque: Some("o\"\n".into()),
            algorithm: Algorithm::Md5,
            qop_auth: true,
            stale: false,
        };
        let creds = Credentials {
            username: "us\"er\r\n",
            password: "p",
        };
        let auth = authorization(&c, &creds, "INVITE", "sip:x@y\r\nVia: z", "c\r\n", 1);
        assert!(!auth.chars().any(char::is_control), "{auth}");
        assert!(auth.contains(r#"username="us\"er""#), "{auth}");
        assert!(auth.contains(r#"realm="a\"b\\cX-Injected: 1""#), "{auth}");
        assert!(auth.contains(r#"opaque="o\"""#), "{auth}");
        // And what we write reads back as written, escapes included.
        let back = Challenge::parse(
            &auth
                .replacen("username", "realm2", 1)
                .replacen("response", "other", 1),
        )
        .unwrap();
        assert_eq!(back.realm, "a\"b\\cX-Injected: 1");
    }

    #[test]
    fn parses_quoted_commas_and_escaped_quotes() {
        let c = Challenge::parse(
            r#"Digest realm="Acme, Inc. \"VoIP\"", nonce="a,b,c=", opaque="x\\y,z", qop="auth""#,
        )
        .unwrap();
        assert_eq!(c.realm, r#"Acme, Inc. "VoIP""#);
        assert_eq!(c.nonce, "a,b,c=");
        assert_eq!(c.opaque.as_deref(), Some(r"x\y,z"));
        assert!(c.qop_auth);
    }

    #[test]
    fn parses_odd_spacing_case_and_compact_lists() {
        let expected = Challenge {
            realm: "sip.example.com".into(),
            nonce: "NzJk/Mg==".into(),
            opaque: None,
            algorithm: Algorithm::Sha256,
            qop_auth: true,
            stale: true,
        };
        for v in [
            r#"digest realm="sip.example.com",nonce="NzJk/Mg==",algorithm=sha-256,qop=auth,stale=TRUE"#,
            "DIGEST   REALM = \"sip.example.com\" ,\tNonce=\"NzJk/Mg==\" , ALGORITHM=\"SHA-256\", qop=\"auth-int,auth\", stale=true  ",
            "  Digest realm=sip.example.com,,, nonce=NzJk/Mg==, algorithm=SHA-256, qop=auth, stale=true,",
            "Digest\trealm=\"sip.example.com\",\n\tnonce=\"NzJk/Mg==\",\r\n  algorithm=SHA-256,qop=\" auth \",stale=true",
            r#"Digest realm="sip.example.com", x-vendor="a,b", nonce="NzJk/Mg==", algorithm=SHA-256, qop="auth", stale="true", charset=UTF-8, userhash=false"#,
        ] {
            assert_eq!(Challenge::parse(v).as_ref(), Ok(&expected), "{v}");
        }
        let c = Challenge::parse("Digest realm=\"\", nonce=n, stale=false").unwrap();
        assert_eq!(c.realm, "");
        assert!(!c.stale);
    }

    #[test]
    fn qop_without_auth_is_unsupported() {
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#),
            Err(ChallengeError::UnsupportedQop("auth-int".into()))
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="""#),
            Err(ChallengeError::UnsupportedQop(String::new()))
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="authx, auth-int""#),
            Err(ChallengeError::UnsupportedQop("authx, auth-int".into()))
        );
    }

    #[test]
    fn best_prefers_sha256_then_the_topmost() {
        let md5 = r#"Digest realm="r", nonce="md5", algorithm=MD5, qop="auth""#;
        let md5_first = r#"Digest realm="r", nonce="first", qop="auth""#;
        let sha = r#"Digest realm="r", nonce="sha", algorithm=SHA-256, qop="auth""#;
        let sha_sess = r#"Digest realm="r", nonce="shasess", algorithm=SHA-256-sess, qop="auth""#;
        let unusable = r#"Digest realm="r", nonce="x", algorithm=SHA-512-256, qop="auth""#;
        assert_eq!(best([md5, sha]).unwrap().nonce, "sha");
        assert_eq!(best([sha, md5]).unwrap().nonce, "sha");
        assert_eq!(best([unusable, "Basic realm=\"r\"", md5]).unwrap().nonce, "md5");
        assert_eq!(best([md5_first, md5]).unwrap().nonce, "first");
        assert_eq!(best([sha_sess, sha]).unwrap().nonce, "shasess");
        assert_eq!(best([sha, sha_sess]).unwrap().nonce, "sha");
        assert_eq!(best([unusable, "Basic realm=\"r\"", ""]), None);
        assert_eq!(best(std::iter::empty()), None);
    }

    #[test]
    fn refuses_other_schemes() {
        for v in [
            "Basic realm=\"r\"",
            "Bearer realm=\"r\", nonce=\"n\"",
            "Digestive realm=\"r\", nonce=\"n\"",
            "",
            "   ",
            "\"Digest\" realm=r, nonce=n",
            "realm=\"r\", nonce=\"n\"",
        ] {
            assert_eq!(Challenge::parse(v), Err(ChallengeError::NotDigest), "{v:?}");
        }
    }

    #[test]
    fn refuses_missing_realm_or_nonce() {
        assert_eq!(Challenge::parse("Digest"), Err(ChallengeError::Missing("realm")));
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\", qop=auth"),
            Err(ChallengeError::Missing("realm"))
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", opaque=\"n\""),
            Err(ChallengeError::Missing("nonce"))
        );
    }

    #[test]
    fn refuses_unknown_algorithms() {
        for alg in ["SHA-512-256", "SHA-1", "MD5x", "\"\""] {
            let v = format!("Digest realm=r, nonce=n, algorithm={alg}");
            let expected = alg.trim_matches('"').to_owned();
            assert_eq!(
                Challenge::parse(&v),
                Err(ChallengeError::UnsupportedAlgorithm(expected)),
                "{v}"
            );
        }
    }

    #[test]
    fn refuses_control_characters_in_values() {
        for v in [
            "Digest realm=\"r\r\nX-Injected: 1\", nonce=\"n\"",
            "Digest realm=\"r\", nonce=\"n\nX: y\"",
            "Digest realm=\"r\", nonce=\"n\", opaque=\"o\ro\"",
            "Digest realm=\"r\", nonce=\"n\", opaque=\"o\\\r\"",
            "Digest realm=\"r\", nonce=\"n\0\"",
            "Digest realm=\"r\", nonce=\"a\tb\"",
            "Digest realm=r\u{7f}, nonce=n",
            "Digest realm=\"r\", nonce=n\r",
            // A CR/LF that is not a fold is not whitespace.
            "Digest realm=\"r\",\r\nnonce=\"n\"",
            "Digest realm=\"r\"\r\n",
        ] {
            assert!(
                matches!(Challenge::parse(v), Err(ChallengeError::Malformed(_))),
                "{v:?}: {:?}",
                Challenge::parse(v)
            );
        }
    }

    #[test]
    fn refuses_broken_syntax() {
        for v in [
            "Digest realm",
            "Digest realm=",
            "Digest realm=, nonce=n",
            "Digest =r, nonce=n",
            "Digest realm=\"r\" nonce=\"n\"",
            "Digest realm=\"r\"x, nonce=n",
            "Digest realm=\"unterminated, nonce=n",
            "Digest realm=\"r\\",
            "Digest realm=r\"q\", nonce=n",
            "Digest,realm=r, nonce=n",
            "Digest realm=r, nonce=n, Digest realm=r2, nonce=n2",
            "Digest realm=r, nonce=n, realm=evil",
            "Digest realm=r, nonce=n, NONCE=m",
        ] {
            assert!(
                matches!(Challenge::parse(v), Err(ChallengeError::Malformed(_))),
                "{v:?}: {:?}",
                Challenge::parse(v)
            );
        }
        // Unknown parameters may repeat: they are not read.
        assert!(Challenge::parse("Digest realm=r, x=1, nonce=n, x=2").is_ok());
    }

    #[test]
    fn parse_never_panics_on_cut_or_mangled_headers() {
        let valid = [
            rfc7616_challenge("SHA-256"),
            r#"Digest realm="Acme, Inc. \"VoIP\"", nonce="a,b,c=", opaque="x\\y,z", qop="auth-int,auth", stale=true"#.to_owned(),
            "digest realm=sip.example.com,,nonce=NzJk/Mg==,algorithm=MD5-sess,qop=auth,".to_owned(),
            "Digest realm=\"é€😀\", nonce=\"ü\"".to_owned(),
        ];
        let noise = ['"', '\\', ',', '=', ' ', '\r', '\n', '\t', '\0', 'é', '😀'];
        for v in &valid {
            for (i, _) in v.char_indices().chain([(v.len(), ' ')]) {
                let (head, tail) = v.split_at(i);
                let _ = Challenge::parse(head);
                let _ = Challenge::parse(tail);
                let _ = best([head, tail, v.as_str()]);
                for n in noise {
                    let _ = Challenge::parse(&format!("{head}{n}{tail}"));
                    // Replace the char at i (if any) with noise.
                    let rest: String = tail.chars().skip(1).collect();
                    let mangled = format!("{head}{n}{rest}");
                    if let Ok(c) = Challenge::parse(&mangled) {
                        // Whatever parses has no control characters, and answers without any.
                        assert!(!c.realm.chars().chain(c.nonce.chars()).any(char::is_control));
                        let auth = authorization(&c, &MUFASA_7616, "INVITE", "sip:a@b", "c", 1);
                        assert!(!auth.chars().any(char::is_control), "{auth:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn errors_display() {
        assert_eq!(ChallengeError::NotDigest.to_string(), "not a Digest challenge");
        assert_eq!(
            ChallengeError::Missing("nonce").to_string(),
            "Digest challenge without nonce"
        );
        assert_eq!(
            ChallengeError::UnsupportedAlgorithm("SHA-512-256".into()).to_string(),
            "unsupported Digest algorithm \"SHA-512-256\""
        );
        assert_eq!(
            ChallengeError::UnsupportedQop("auth-int".into()).to_string(),
            "unsupported Digest qop \"auth-int\" (only auth)"
        );
        assert_eq!(
            ChallengeError::Malformed("parameter given twice").to_string(),
            "malformed Digest challenge: parameter given twice"
        );
        let e: Box<dyn std::error::Error> = Box::new(ChallengeError::NotDigest);
        assert!(e.source().is_none());
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let dbg = format!("{MUFASA_2617:?}");
        assert!(dbg.contains("Mufasa") && !dbg.contains("Circle"), "{dbg}");
    }
}
