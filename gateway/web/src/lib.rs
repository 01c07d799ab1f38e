//! The appliance's local web UI and REST API.
//!
//! **Owns**: who may do what (the admin password, sessions, CSRF tokens, the login limiter: [`auth`]),
//! the REST routes and their JSON ([`api`], described by the embedded `openapi.json`), the embedded UI
//! assets ([`assets`]), and the security headers every answer carries. [`App`] is an
//! [`edge_http::Handler`]: `gatewayd` serves it with `edge_http::server` and provides the data and the
//! actions through [`api::Backend`].
//!
//! **Never touches**: sockets, the SIP or media cores, or the configuration's format. Everything the
//! gateway knows or does reaches this crate through [`api::Backend`].
//!
//! Architecture Invariant: no route but the public ones ([`PUBLIC`]) answers without a session, every
//! state change needs the session's CSRF token, and every answer carries [`SECURITY_HEADERS`]. The
//! route table ([`ROUTES`]) is the one list the router, the OpenAPI document and the tests agree on.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use edge_http::{Handler, Request, Response, query_param};
use serde::de::DeserializeOwned;

pub mod api;
pub mod assets;
pub mod auth;
pub mod metrics;

use api::{Backend, Rejected};
use auth::{Auth, LoginRefused};

/// The session cookie's name.
pub const COOKIE: &str = "edge_session";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The largest JSON body read, in bytes.
pub const MAX_JSON: u64 = 1024 * 1024;
/// The largest update bundle accepted, in bytes.
pub const MAX_BUNDLE: u64 = 1024 * 1024 * 1024;

/// The OpenAPI 3.0 document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// On every answer.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
];

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login, first-boot setup, the UI's static files, the API document).
    Public,
    /// A session (and, for a state change, its CSRF token).
    Session,
    /// A session, or `Authorization: Bearer <metrics token>`.
    Metrics,
}

/// Every API route: method, path, who may call it.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/api/login", Access::Public),
    ("POST", "/api/login", Access::Public),
    ("POST", "/api/setup", Access::Public),
    ("GET", "/api/openapi.json", Access::Public),
    ("POST", "/api/logout", Access::Session),
    ("GET", "/api/session", Access::Session),
    ("POST", "/api/password", Access::Session),
    ("GET", "/api/status", Access::Session),
    ("GET", "/api/calls", Access::Session),
    ("GET", "/api/history", Access::Session),
    ("GET", "/api/config", Access::Session),
    ("PUT", "/api/config", Access::Session),
    ("GET", "/api/config/export", Access::Session),
    ("POST", "/api/config/import", Access::Session),
    ("GET", "/api/network", Access::Session),
    ("PUT", "/api/network", Access::Session),
    ("GET", "/api/certificate", Access::Session),
    ("PUT", "/api/certificate", Access::Session),
    ("POST", "/api/certificate/generate", Access::Session),
    ("POST", "/api/test-call", Access::Session),
    ("GET", "/api/update", Access::Session),
    ("POST", "/api/update/check", Access::Session),
    ("POST", "/api/update/upload", Access::Session),
    ("POST", "/api/update/rollback", Access::Session),
    ("GET", "/api/logs", Access::Session),
    ("GET", "/api/logs/download", Access::Session),
    ("GET", "/api/cdrs", Access::Session),
    ("GET", "/api/cdrs/download", Access::Session),
    ("GET", "/metrics", Access::Metrics),
];

/// The routes anyone may call.
pub const PUBLIC: &[&str] = &["/api/login", "/api/setup", "/api/openapi.json", "/", "/assets/*"];

/// The web application: routes, sessions, and the backend.
#[derive(Debug)]
pub struct App<B> {
    backend: B,
    auth: Mutex<Auth>,
}

/// `n` random bytes as lower-case hex.
fn random_hex(n: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[allow(
    clippy::disallowed_methods,
    reason = "sessions and the login limiter need the time; the HTTP shell's thread reads it here"
)]
fn now() -> Instant {
    Instant::now()
}

impl<B: Backend> App<B> {
    /// The application over `backend` (the saved admin password is read from it now).
    pub fn new(backend: B) -> Arc<Self> {
        let hash = backend.load_password_hash();
        Arc::new(Self {
            backend,
            auth: Mutex::new(Auth::new(hash)),
        })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn auth(&self) -> MutexGuard<'_, Auth> {
        self.auth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn route(&self, req: &Request, body: &mut dyn Read) -> Response {
        let path = req.path();
        let method = req.method.as_str();
        if !path.starts_with("/api/") && path != "/metrics" {
            return match method {
                "GET" | "HEAD" => assets::serve(path),
                _ => Response::error(405, format!("{method} is not allowed here")).with("Allow", "GET, HEAD"),
            };
        }
        let Some(access) = ROUTES.iter().find(|(_, p, _)| *p == path).map(|(_, _, a)| *a) else {
            // Unknown API paths look the same as known ones to a caller without a session.
            if self.session_csrf(req).is_none() {
                return unauthorized();
            }
            return Response::error(404, "no such API route");
        };
        let allowed = ROUTES.iter().any(|(m, p, _)| *p == path && *m == method)
            || (method == "HEAD" && ROUTES.iter().any(|(m, p, _)| *p == path && *m == "GET"));
        match access {
            Access::Public => {}
            Access::Metrics if self.bearer_ok(req) => {}
            Access::Session | Access::Metrics => {
                let Some(csrf) = self.session_csrf(req) else {
                    return unauthorized();
                };
                if allowed && !matches!(method, "GET" | "HEAD") {
                    let sent = req.header(CSRF_HEADER).unwrap_or_default();
                    if !edge_http::same_secret(sent, &csrf) {
                        return Response::error(403, "missing or wrong X-CSRF-Token: reload the page");
                    }
                }
            }
        }
        if !allowed {
            let mut methods: Vec<&str> = ROUTES
                .iter()
                .filter(|(_, p, _)| *p == path)
                .map(|(m, _, _)| *m)
                .collect();
            if methods.contains(&"GET") {
                methods.push("HEAD");
            }
            return Response::error(405, format!("{method} is not allowed on {path}"))
                .with("Allow", methods.join(", "));
        }
        let method = if method == "HEAD" { "GET" } else { method };
        self.call(method, path, req, body)
    }

    fn call(&self, method: &str, path: &str, req: &Request, body: &mut dyn Read) -> Response {
        let b = &self.backend;
        match (method, path) {
            ("GET", "/api/login") => Response::json(
                200,
                &api::LoginState {
                    setup_required: self.auth().setup_required(),
                },
            ),
            ("POST", "/api/setup") => self.setup(req, body),
            ("POST", "/api/login") => self.login(req, body),
            ("GET", "/api/openapi.json") => Response::bytes(200, "application/json", OPENAPI.into()),
            ("POST", "/api/logout") => {
                if let Some(token) = req.cookie(COOKIE) {
                    self.auth().close(token);
                }
                Response::empty(204).with("Set-Cookie", cookie("", req.secure, true))
            }
            ("GET", "/api/session") => match self.session_csrf(req) {
                Some(csrf) => Response::json(200, &session_view(csrf)),
                None => unauthorized(),
            },
            ("POST", "/api/password") => self.change_password(req, body),
            ("GET", "/api/status") => Response::json(200, &b.status()),
            ("GET", "/api/calls") => Response::json(200, &b.calls()),
            ("GET", "/api/history") => Response::json(200, &b.history()),
            ("GET", "/api/config") => answer(b.config()),
            ("PUT", "/api/config") => match json::<api::ConfigBody>(req, body) {
                Ok(c) => rejected_or(b.apply_config_json(&c.config)),
                Err(r) => r,
            },
            ("GET", "/api/config/export") => match b.export_config() {
                Ok(text) => Response::bytes(200, "application/toml; charset=utf-8", text.into_bytes())
                    .with("Content-Disposition", "attachment; filename=gatewayd.toml")
                    .with("Cache-Control", "no-store"),
                Err((status, e)) => Response::error(status, e),
            },
            ("POST", "/api/config/import") => match text(req, body) {
                Ok(t) => rejected_or(b.apply_config(&t)),
                Err(r) => r,
            },
            ("GET", "/api/network") => answer(b.network()),
            ("PUT", "/api/network") => match json::<api::NetworkSettings>(req, body) {
                Ok(n) => rejected_or(b.set_network(&n)),
                Err(r) => r,
            },
            ("GET", "/api/certificate") => Response::json(200, &b.certificate()),
            ("POST", "/api/certificate/generate") => match json::<api::GenerateBody>(req, body) {
                Ok(g) => rejected_or(b.generate_certificate(&g.hostname)),
                Err(r) => r,
            },
            ("PUT", "/api/certificate") => match json::<api::CertificateBody>(req, body) {
                Ok(c) => rejected_or(b.set_certificate(&c.cert_pem, &c.key_pem)),
                Err(r) => r,
            },
            ("POST", "/api/test-call") => {
                let parsed = if req.content_length == 0 {
                    Ok(api::TestCallBody::default())
                } else {
                    json::<api::TestCallBody>(req, body)
                };
                match parsed {
                    Ok(t) => answer(b.test_call(t.trunk.as_deref())),
                    Err(r) => r,
                }
            }
            ("GET", "/api/update") => Response::json(200, &b.update()),
            ("POST", "/api/update/check") => accepted(b.check_update()),
            ("POST", "/api/update/upload") => {
                if req.content_length == 0 {
                    return Response::error(
                        422,
                        "the upload is empty: send the bundle file as the request body",
                    );
                }
                if req.content_length > MAX_BUNDLE {
                    return Response::error(413, format!("a bundle is at most {MAX_BUNDLE} bytes"));
                }
                match b.upload_update(body, req.content_length) {
                    Ok(u) => Response::json(202, &u),
                    Err((status, e)) => Response::error(status, e),
                }
            }
            ("POST", "/api/update/rollback") => accepted(b.rollback()),
            ("GET", "/api/logs") => {
                let limit = match query_param(req.query(), "limit") {
                    None => 200,
                    Some(v) => match v.and_then(|v| v.parse::<usize>().ok()) {
                        Some(n) if (1..=5000).contains(&n) => n,
                        _ => return Response::error(400, "limit must be 1 to 5000"),
                    },
                };
                Response::json(200, &b.logs(limit))
            }
            ("GET", "/api/logs/download") => {
                let logs = b.logs(5000);
                let text: String = logs
                    .lines
                    .iter()
                    .map(|l| format!("{} {:5} {}\n", l.time, l.level, l.message))
                    .collect();
                Response::bytes(200, "text/plain; charset=utf-8", text.into_bytes())
                    .with("Content-Disposition", "attachment; filename=gatewayd.log")
            }
            ("GET", "/api/cdrs") => Response::json(200, &b.cdrs()),
            ("GET", "/api/cdrs/download") => {
                Response::bytes(200, "text/csv; charset=utf-8", cdr_csv(&b.cdrs()).into_bytes())
                    .with("Content-Disposition", "attachment; filename=cdrs.csv")
            }
            ("GET", "/metrics") => Response::bytes(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                b.metrics().into_bytes(),
            ),
            _ => Response::error(404, "no such API route"),
        }
    }

    /// The CSRF token of the request's live session.
    fn session_csrf(&self, req: &Request) -> Option<String> {
        let token = req.cookie(COOKIE)?;
        self.auth().session(token, now()).map(|s| s.csrf.clone())
    }

    fn bearer_ok(&self, req: &Request) -> bool {
        let (Some(token), Some(sent)) = (
            self.backend.metrics_token(),
            req.authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer ")),
        ) else {
            return false;
        };
        edge_http::same_secret(sent.trim(), &token)
    }

    fn open_session(&self, req: &Request, status: u16) -> Response {
        let (Ok(token), Ok(csrf)) = (random_hex(32), random_hex(32)) else {
            return Response::error(500, "no randomness for a session");
        };
        let session = self.auth().open(token.clone(), csrf, now());
        Response::json(status, &session_view(session.csrf))
            .with("Set-Cookie", cookie(&token, req.secure, false))
    }

    fn setup(&self, req: &Request, body: &mut dyn Read) -> Response {
        if let Some(r) = cross_origin(req) {
            return r;
        }
        let p = match json::<api::PasswordBody>(req, body) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if !self.auth().setup_required() {
            return Response::error(409, "the admin password is already set: log in");
        }
        let hash = match new_hash(&p.password) {
            Ok(h) => h,
            Err(r) => return Response::json(422, &r),
        };
        let mut auth = self.auth();
        // Two first-boot forms at once: the first one wins.
        if !auth.setup_required() {
            return Response::error(409, "the admin password is already set: log in");
        }
        if let Err(e) = self.backend.save_password_hash(&hash) {
            return Response::error(500, format!("cannot save the password: {e}"));
        }
        auth.set_hash(hash);
        drop(auth);
        tracing::info!("admin password set (first boot)");
        self.open_session(req, 200)
    }

    fn login(&self, req: &Request, body: &mut dyn Read) -> Response {
        if let Some(r) = cross_origin(req) {
            return r;
        }
        let p = match json::<api::PasswordBody>(req, body) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let peer = req.peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        let outcome = self.auth().login(&p.password, peer, now());
        match outcome {
            Ok(()) => {
                tracing::info!(%peer, "admin logged in");
                self.open_session(req, 200)
            }
            Err(LoginRefused::SetupRequired) => Response::error(409, "no admin password yet: set one first"),
            Err(LoginRefused::Wrong) => {
                tracing::warn!(%peer, "failed admin login");
                Response::error(401, "wrong password")
            }
            Err(LoginRefused::Locked(wait)) => {
                let secs = wait.as_secs().max(1);
                tracing::warn!(%peer, "admin login refused: too many failures");
                Response::error(429, format!("too many failed logins: try again in {secs} s"))
                    .with("Retry-After", secs.to_string())
            }
        }
    }

    fn change_password(&self, req: &Request, body: &mut dyn Read) -> Response {
        let p = match json::<api::PasswordChange>(req, body) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if !self.auth().check(&p.current) {
            return Response::json(422, &Rejected::field("current", "wrong password"));
        }
        let hash = match new_hash(&p.new) {
            Ok(h) => h,
            Err(mut r) => {
                r.fields = r.fields.into_values().map(|m| ("new".to_owned(), m)).collect();
                return Response::json(422, &r);
            }
        };
        if let Err(e) = self.backend.save_password_hash(&hash) {
            return Response::error(500, format!("cannot save the password: {e}"));
        }
        // Every session ends, this one too: log in again with the new password.
        self.auth().set_hash(hash);
        tracing::info!("admin password changed");
        Response::empty(204).with("Set-Cookie", cookie("", req.secure, true))
    }
}

impl<B: Backend> Handler for App<B> {
    fn handle(&self, req: &Request, body: &mut dyn Read) -> Response {
        let mut response = self.route(req, body);
        for (name, value) in SECURITY_HEADERS {
            response.headers.push((name, value.to_owned()));
        }
        if req.secure {
            response
                .headers
                .push(("Strict-Transport-Security", "max-age=31536000".into()));
        }
        response
    }
}

fn new_hash(password: &str) -> Result<String, Rejected> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Rejected::whole(format!("no randomness: {e}")))?;
    auth::hash_password(password, &salt).map_err(|e| Rejected::field("password", e.to_string()))
}

fn unauthorized() -> Response {
    Response::error(401, "log in first")
}

/// A login or setup posted from another site's page (login CSRF): refused when the browser says so.
fn cross_origin(req: &Request) -> Option<Response> {
    let origin = req.header("origin")?;
    let host = req.header("host")?;
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    (origin != "null" && origin_host == host)
        .then_some(())
        .map_or_else(
            || Some(Response::error(403, "cross-origin login refused")),
            |()| None,
        )
}

fn session_view(csrf: String) -> api::SessionView {
    api::SessionView {
        csrf,
        idle_timeout_s: auth::IDLE.as_secs(),
    }
}

/// The session cookie (`clear`: one that deletes it).
fn cookie(token: &str, secure: bool, clear: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let age = if clear { "; Max-Age=0" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}{age}")
}

fn answer<T: serde::Serialize>(r: Result<T, api::Failure>) -> Response {
    match r {
        Ok(v) => Response::json(200, &v),
        Err((status, e)) => Response::error(status, e),
    }
}

fn accepted(r: Result<String, api::Failure>) -> Response {
    match r {
        Ok(message) => Response::json(202, &api::Message { message }),
        Err((status, e)) => Response::error(status, e),
    }
}

fn rejected_or<T: serde::Serialize>(r: Result<T, Rejected>) -> Response {
    match r {
        Ok(v) => Response::json(200, &v),
        Err(e) => Response::json(422, &e),
    }
}

/// The body as UTF-8 text, bounded.
fn text(req: &Request, body: &mut dyn Read) -> Result<String, Response> {
    if req.content_length > MAX_JSON {
        return Err(Response::error(413, format!("at most {MAX_JSON} bytes")));
    }
    let mut bytes = Vec::new();
    body.take(MAX_JSON)
        .read_to_end(&mut bytes)
        .map_err(|e| Response::error(400, format!("reading the body failed: {e}")))?;
    String::from_utf8(bytes).map_err(|_| Response::error(400, "the body is not UTF-8 text"))
}

/// The body as JSON of type `T` (`Content-Type: application/json` required: a form post from another
/// site cannot send it without a CORS preflight).
fn json<T: DeserializeOwned>(req: &Request, body: &mut dyn Read) -> Result<T, Response> {
    let ct = req.header("content-type").unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err(Response::error(415, "send JSON (Content-Type: application/json)"));
    }
    let t = text(req, body)?;
    serde_json::from_str(&t).map_err(|e| Response::error(400, format!("malformed JSON: {e}")))
}

/// The first line of the call records' CSV.
pub const CDR_CSV_HEADER: &str = "id,start,answer,end,duration_s,from,to,trunk,status,reason\n";

/// One call record as a CSV line (RFC 4180 quoting; a field that a spreadsheet would run as a
/// formula, `=`/`+`/`-`/`@` first, gets a leading `'`).
pub fn cdr_csv_line(c: &api::Cdr) -> String {
    let q = |s: &str| {
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    };
    format!(
        "{},{},{},{},{},{},{},{},{},{}\n",
        q(&c.id),
        c.start,
        c.answer.map_or(String::new(), |a| a.to_string()),
        c.end,
        c.duration_s,
        q(&c.from),
        q(&c.to),
        q(c.trunk.as_deref().unwrap_or_default()),
        c.status.map_or(String::new(), |s| s.to_string()),
        q(&c.reason),
    )
}

/// CDRs as CSV, with its header line.
fn cdr_csv(cdrs: &api::Cdrs) -> String {
    let mut out = String::from(CDR_CSV_HEADER);
    for c in &cdrs.records {
        out.push_str(&cdr_csv_line(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router's table and the OpenAPI document list the same routes, with the same access.
    #[test]
    fn the_route_table_is_the_openapi_document() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = Vec::new();
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                let public = op
                    .get("security")
                    .is_some_and(|s| s.as_array().is_some_and(Vec::is_empty));
                documented.push((method.to_uppercase(), path.clone(), public));
            }
        }
        documented.sort();
        let mut routes: Vec<_> = ROUTES
            .iter()
            .map(|(m, p, a)| ((*m).to_owned(), (*p).to_owned(), *a == Access::Public))
            .collect();
        routes.sort();
        assert_eq!(routes, documented);
        for (_, path, public) in &routes {
            assert_eq!(*public, PUBLIC.contains(&path.as_str()), "{path}");
        }
    }

    #[test]
    fn cdrs_quote_what_they_carry() {
        let cdrs = api::Cdrs {
            records: vec![api::Cdr {
                id: "c1".into(),
                start: 1,
                answer: None,
                end: 3,
                duration_s: 0,
                from: "=a\"b,c".into(),
                to: "d".into(),
                trunk: None,
                status: Some(486),
                reason: "486 from B".into(),
            }],
        };
        assert_eq!(
            cdr_csv(&cdrs).lines().nth(1),
            Some("\"c1\",1,,3,0,\"'=a\"\"b,c\",\"d\",\"\",486,\"486 from B\"")
        );
    }
}
