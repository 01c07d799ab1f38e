//! The HTTP API over plain values: a [`Request`] and its body in, a [`Response`] out. Routing, tokens,
//! byte ranges, status codes. The shell turns sockets into these and back; nothing here owns a socket or
//! reads the clock (`now` comes with every call).

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::api::{CheckinRequest, RolloutRequest};
use crate::config::Config;
use crate::fleet::{Fleet, Release, RolloutError, is_name};
use crate::html;
use crate::store::{Store, StoreError, UploadError};

/// The largest JSON request body read, in bytes (larger: 413).
pub const MAX_JSON: u64 = 1024 * 1024;

pub use edge_http::{Body, Request, Response};

/// Who a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Device,
    Admin,
}

use edge_http::{percent_decode, query_param, same_secret};

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) range: the whole file, 200.
    Full,
    /// Bytes `first..=last`, 206.
    Part {
        /// First byte.
        first: u64,
        /// Last byte (inclusive).
        last: u64,
    },
    /// 416.
    Unsatisfiable,
}

/// Reads a `Range` header (`bytes=A-B`, `bytes=A-`, `bytes=-N`). Malformed headers, other units and
/// multiple ranges are ignored (the whole file is sent), as RFC 9110 §14.2 allows.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    let Some((a, b)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return RangeRequest::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return match number(b) {
            None => RangeRequest::Full,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if len == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Part {
                first: len - n.min(len),
                last: len - 1,
            },
        };
    }
    let Some(first) = number(a) else {
        return RangeRequest::Full;
    };
    let last = if b.is_empty() {
        None
    } else {
        match number(b) {
            Some(last) if last >= first => Some(last),
            _ => return RangeRequest::Full,
        }
    };
    if first >= len {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Part {
        first,
        last: last.map_or(len - 1, |l| l.min(len - 1)),
    }
}

/// Reads a JSON body of at most [`MAX_JSON`] bytes.
fn read_json_body(body: &mut dyn Read) -> Result<Vec<u8>, Response> {
    let mut bytes = Vec::new();
    loop {
        match body.take(MAX_JSON + 1).read_to_end(&mut bytes) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Response::error(400, format!("reading the body failed: {e}"))),
            Ok(_) => break,
        }
    }
    if bytes.len() as u64 > MAX_JSON {
        return Err(Response::error(
            413,
            format!("the body is larger than {MAX_JSON} bytes"),
        ));
    }
    Ok(bytes)
}

struct Shared {
    fleet: Fleet,
    /// Bumped by every change; `state.json` is written only with a newer generation than it holds.
    generation: u64,
}

/// The update server: configuration, store and fleet behind the HTTP API. Shared by the shell's
/// threads (`&self` everywhere); uploads and downloads stream without holding the fleet's lock.
pub struct Service {
    config: Config,
    store: Store,
    shared: Mutex<Shared>,
    /// The generation `state.json` holds.
    saved: Mutex<u64>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Opens the store the configuration names. Also returns notes for the log (see [`Store::open`]).
    pub fn open(config: Config) -> Result<(Self, Vec<String>), StoreError> {
        let (store, fleet, notes) = Store::open(&config.store)?;
        let service = Self {
            config,
            store,
            shared: Mutex::new(Shared { fleet, generation: 0 }),
            saved: Mutex::new(0),
        };
        Ok((service, notes))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `change` on the fleet; if it succeeds, writes `state.json`. A failed write is logged, not
    /// returned: the fleet in memory stays right and the next change writes it again.
    fn change<T, E>(&self, change: impl FnOnce(&mut Fleet) -> Result<T, E>) -> Result<T, E> {
        let (value, generation, json) = {
            let mut shared = self.lock();
            let value = change(&mut shared.fleet)?;
            shared.generation += 1;
            (value, shared.generation, shared.fleet.to_json())
        };
        let mut saved = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        if generation > *saved {
            match self.store.save_state(&json) {
                Ok(()) => *saved = generation,
                Err(e) => {
                    tracing::error!(store = %self.store.root().display(), "cannot write the state: {e}");
                }
            }
        }
        Ok(value)
    }

    fn role(&self, req: &Request, query: &str) -> Option<Role> {
        let bearer = req.authorization.as_deref().and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
        // Only the page may carry the token in its URL (a browser cannot set a header on a link).
        let token = bearer.or_else(|| {
            (req.url.split('?').next() == Some("/"))
                .then(|| query_param(query, "token").flatten())
                .flatten()
        })?;
        if same_secret(&token, &self.config.admin_token) {
            return Some(Role::Admin);
        }
        // Every token is compared, so the time taken does not tell which one matched.
        let device = self
            .config
            .device_tokens
            .iter()
            .fold(false, |hit, t| same_secret(&token, t) | hit);
        device.then_some(Role::Device)
    }

    /// Answers `req` with `body` at `now` (server clock, Unix seconds).
    pub fn handle(&self, req: &Request, body: &mut dyn Read, now: u64) -> Response {
        let (path, query) = req.url.split_once('?').unwrap_or((&req.url, ""));
        let Some(segments) = path
            .strip_prefix('/')
            .and_then(|p| p.split('/').map(percent_decode).collect::<Option<Vec<_>>>())
        else {
            return Response::error(404, "not found");
        };
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let (methods, admin): (&[&str], bool) = match segments.as_slice() {
            [""] | ["v1", "fleet"] => (&["GET", "HEAD"], true),
            ["v1", "checkin"] => (&["POST"], false),
            ["v1", "bundles", _, _, _] => (&["GET", "HEAD"], false),
            ["v1", "admin", "bundles", _] => (&["PUT"], true),
            ["v1", "admin", "rollout"] => (&["POST"], true),
            _ => return Response::error(404, "not found"),
        };
        if !methods.contains(&req.method.as_str()) {
            let mut r = Response::error(405, format!("{} is not allowed here", req.method));
            r.headers.push(("Allow", methods.join(", ")));
            return r;
        }
        match (self.role(req, query), admin) {
            (Some(Role::Admin), _) | (Some(Role::Device), false) => {}
            _ => {
                let mut r = Response::error(401, "a valid token is needed (Authorization: Bearer <token>)");
                r.headers.push(("WWW-Authenticate", "Bearer".into()));
                return r;
            }
        }
        match segments.as_slice() {
            [""] => self.page(now),
            ["v1", "fleet"] => Response::json(200, &self.lock().fleet.view()),
            ["v1", "checkin"] => self.checkin(body, now),
            ["v1", "bundles", board, channel, file] => {
                self.download(board, channel, file, req.range.as_deref())
            }
            ["v1", "admin", "bundles", channel] => self.upload(channel, query, body, now),
            ["v1", "admin", "rollout"] => self.rollout(body),
            _ => Response::error(404, "not found"),
        }
    }

    fn page(&self, now: u64) -> Response {
        let page = html::fleet_page(&self.lock().fleet.view(), now);
        Response {
            status: 200,
            headers: vec![
                ("Content-Type", "text/html; charset=utf-8".into()),
                ("Cache-Control", "no-store".into()),
                // The token may be in the URL: never send it elsewhere; and nothing but inline style runs.
                ("Referrer-Policy", "no-referrer".into()),
                (
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'".into(),
                ),
                ("X-Content-Type-Options", "nosniff".into()),
            ],
            body: Body::Bytes(page.into_bytes()),
        }
    }

    fn checkin(&self, body: &mut dyn Read, now: u64) -> Response {
        let bytes = match read_json_body(body) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let req: CheckinRequest = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => return Response::error(400, format!("malformed check-in: {e}")),
        };
        let device = req.device.clone();
        let (interval, policy) = (self.config.checkin_interval_s, self.config.pause);
        match self.change(|fleet| fleet.checkin(req, now, interval, policy)) {
            Ok(c) => {
                for r in &c.new_results {
                    tracing::info!(%device, version = %r.version, outcome = ?r.outcome, reason = %r.reason, "install result");
                }
                for (release, reason) in &c.paused {
                    tracing::warn!(board = %release.board, channel = %release.channel, version = %release.version, "{reason}");
                }
                if let Some(offer) = &c.response.update {
                    tracing::debug!(%device, version = %offer.version, "update offered");
                }
                Response::json(200, &c.response)
            }
            Err(e) => Response::error(400, format!("malformed check-in: {e}")),
        }
    }

    fn download(&self, board: &str, channel: &str, file: &str, range: Option<&str>) -> Response {
        let known = [board, channel, file].into_iter().all(is_name)
            && self.lock().fleet.release_file(board, channel, file).is_some();
        if !known {
            return Response::error(404, "no such bundle");
        }
        let (mut f, len) = match self.store.open_bundle(board, channel, file) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(board, channel, file, "a registered bundle cannot be opened: {e}");
                return Response::error(404, "no such bundle");
            }
        };
        let mut headers = vec![
            ("Content-Type", "application/octet-stream".into()),
            ("Accept-Ranges", "bytes".into()),
        ];
        match parse_range(range, len) {
            RangeRequest::Full => Response {
                status: 200,
                headers,
                body: Body::File { file: f, len },
            },
            RangeRequest::Part { first, last } => {
                if let Err(e) = f.seek(SeekFrom::Start(first)) {
                    return Response::error(500, format!("cannot read the bundle: {e}"));
                }
                headers.push(("Content-Range", format!("bytes {first}-{last}/{len}")));
                Response {
                    status: 206,
                    headers,
                    body: Body::File {
                        file: f,
                        len: last - first + 1,
                    },
                }
            }
            RangeRequest::Unsatisfiable => {
                let mut r = Response::error(416, format!("the bundle has {len} bytes"));
                r.headers.push(("Content-Range", format!("bytes */{len}")));
                r.headers.push(("Accept-Ranges", "bytes".into()));
                r
            }
        }
    }

    fn upload(&self, channel: &str, query: &str, body: &mut dyn Read, now: u64) -> Response {
        let percent = match query_param(query, "percent") {
            None => 100,
            Some(p) => match p.and_then(|p| p.parse::<u8>().ok()).filter(|p| *p <= 100) {
                Some(p) => p,
                None => return Response::error(400, "percent must be 0 to 100"),
            },
        };
        if !is_name(channel) {
            return Response::error(
                400,
                "a channel is 1-64 of A-Z a-z 0-9 . _ + -, not starting with a dot",
            );
        }
        let exists = |fleet: &Fleet, info: &crate::fleet::BundleInfo| {
            fleet
                .release(&info.board, channel, &info.version)
                .map(|r| UploadError::Exists {
                    board: r.board.clone(),
                    channel: r.channel.clone(),
                    version: r.version.to_string(),
                })
        };
        let staged = self.store.stage(body, &self.config.keys, now, &mut |info| {
            exists(&self.lock().fleet, info).map_or(Ok(()), Err)
        });
        let result = staged.and_then(|staged| {
            self.change(|fleet| {
                if let Some(e) = exists(fleet, staged.info()) {
                    return Err(e);
                }
                let release = Release::new(staged.info().clone(), channel, percent);
                staged.commit(&self.store, channel).map_err(UploadError::Disk)?;
                let board = release.board.clone();
                fleet
                    .add_release(release)
                    .cloned()
                    .map_err(|version| UploadError::Exists {
                        board,
                        channel: channel.to_owned(),
                        version: version.to_string(),
                    })
            })
        });
        match result {
            Ok(release) => {
                tracing::info!(board = %release.board, channel, version = %release.version, percent, "release uploaded");
                Response::json(201, &release)
            }
            Err(e) => {
                tracing::warn!(channel, "upload refused: {e}");
                Response::error(e.status(), e.to_string())
            }
        }
    }

    fn rollout(&self, body: &mut dyn Read) -> Response {
        let bytes = match read_json_body(body) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let req: RolloutRequest = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => return Response::error(400, format!("malformed rollout: {e}")),
        };
        match self.change(|fleet| fleet.set_rollout(&req).cloned()) {
            Ok(r) => {
                tracing::info!(board = %r.board, channel = %r.channel, version = %r.version, percent = r.percent, paused = r.paused, "rollout changed");
                Response::json(200, &r)
            }
            Err(e @ RolloutError::Invalid(_)) => Response::error(400, e.to_string()),
            Err(e @ RolloutError::Unknown { .. }) => Response::error(404, e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use edge_ota::SigningKey;

    use super::*;
    use crate::api::{CheckinResponse, FleetView};
    use crate::store::tests::{bundle, scratch};

    const NOW: u64 = 1_800_000_000;

    fn service(name: &str) -> Service {
        let dir = scratch(name);
        let text =
            "listen = \"127.0.0.1:0\"\nstore = \"store\"\ndevice_tokens = [\"dev\"]\nadmin_token = \"adm\"\n";
        let config = Config::parse(text, "server.toml", &dir).unwrap();
        Service::open(config).unwrap().0
    }

    fn call(s: &Service, method: &str, url: &str, token: Option<&str>, body: &[u8]) -> Response {
        let req = Request {
            method: method.into(),
            url: url.into(),
            authorization: token.map(|t| format!("Bearer {t}")),
            range: None,
            ..Request::default()
        };
        s.handle(&req, &mut &body[..], NOW)
    }

    fn bytes(r: Response) -> Vec<u8> {
        match r.body {
            Body::Bytes(b) => b,
            Body::File { mut file, len } => {
                let mut out = Vec::new();
                file.by_ref().take(len).read_to_end(&mut out).unwrap();
                out
            }
        }
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let r = |h: &str| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(r("bytes=0-9"), Part { first: 0, last: 9 });
        assert_eq!(r("bytes=50-"), Part { first: 50, last: 99 });
        assert_eq!(r("bytes=90-500"), Part { first: 90, last: 99 });
        assert_eq!(r("bytes=-10"), Part { first: 90, last: 99 });
        assert_eq!(r("bytes=-1000"), Part { first: 0, last: 99 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        for ignored in [
            "bytes=5-1",
            "bytes=a-b",
            "bytes=+1-2",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=",
            "bytes=-",
        ] {
            assert_eq!(r(ignored), Full, "{ignored}");
        }
    }

    #[test]
    fn routes_methods_and_tokens() {
        let s = service("routes");
        assert_eq!(call(&s, "GET", "/nope", Some("adm"), b"").status, 404);
        assert_eq!(call(&s, "GET", "/v1/checkin", Some("dev"), b"").status, 405);
        assert_eq!(call(&s, "POST", "/v1/checkin", None, b"{}").status, 401);
        assert_eq!(call(&s, "POST", "/v1/checkin", Some("wrong"), b"{}").status, 401);
        assert_eq!(
            call(&s, "GET", "/v1/fleet", Some("dev"), b"").status,
            401,
            "devices are not admins"
        );
        assert_eq!(call(&s, "GET", "/v1/fleet", Some("adm"), b"").status, 200);
        assert_eq!(call(&s, "GET", "/?token=adm", None, b"").status, 200);
        assert_eq!(
            call(&s, "GET", "/v1/fleet?token=adm", None, b"").status,
            401,
            "only the page"
        );
        assert_eq!(call(&s, "GET", "/?token=dev", None, b"").status, 401);
        // Malformed, oversized, and semantically wrong check-ins.
        let r = call(&s, "POST", "/v1/checkin", Some("dev"), b"{\"device\":");
        assert_eq!(r.status, 400);
        assert!(String::from_utf8(bytes(r)).unwrap().contains("\"error\""));
        let big = vec![b' '; usize::try_from(MAX_JSON).unwrap() + 1];
        assert_eq!(call(&s, "POST", "/v1/checkin", Some("dev"), &big).status, 413);
        let bad = br#"{"device":"d","board":"b","channel":"c","version":"x"}"#;
        assert_eq!(call(&s, "POST", "/v1/checkin", Some("dev"), bad).status, 400);
        let good = br#"{"device":"d","board":"b","channel":"c","version":"1.0.0","future":1}"#;
        let r = call(&s, "POST", "/v1/checkin", Some("dev"), good);
        assert_eq!(r.status, 200);
        let reply: CheckinResponse = serde_json::from_slice(&bytes(r)).unwrap();
        assert_eq!(reply.update, None);
        assert!(s.config.store.join("state.json").exists());
        // Paths that try to leave the store.
        for url in [
            "/v1/bundles/../stable/x.bundle",
            "/v1/bundles/b/%2e%2e/x.bundle",
            "/v1/bundles/b/c/%ff",
        ] {
            assert_eq!(call(&s, "GET", url, Some("dev"), b"").status, 404, "{url}");
        }
        assert_eq!(
            call(&s, "PUT", "/v1/admin/bundles/..", Some("adm"), b"").status,
            400
        );
        assert_eq!(
            call(&s, "PUT", "/v1/admin/bundles/x?percent=101", Some("adm"), b"").status,
            400
        );
        let r = call(
            &s,
            "POST",
            "/v1/admin/rollout",
            Some("adm"),
            br#"{"board":"b","channel":"c","version":"1.0.0"}"#,
        );
        assert_eq!(r.status, 404);
        let r = call(
            &s,
            "POST",
            "/v1/admin/rollout",
            Some("adm"),
            br#"{"board":"b","chanel":"c"}"#,
        );
        assert_eq!(r.status, 400);
    }

    #[test]
    fn upload_offer_download_and_rollout() {
        let s = service("flow");
        let key = SigningKey::generate().unwrap();
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let b = bundle(&key, "qemu-x86_64", "1.0.1", &payload);
        let r = call(&s, "PUT", "/v1/admin/bundles/stable?percent=0", Some("adm"), &b);
        assert_eq!(r.status, 201);
        let release: Release = serde_json::from_slice(&bytes(r)).unwrap();
        assert_eq!((release.percent, release.size), (0, b.len() as u64));
        assert_eq!(
            call(&s, "PUT", "/v1/admin/bundles/stable", Some("adm"), &b).status,
            409
        );
        assert_eq!(
            call(&s, "PUT", "/v1/admin/bundles/stable", Some("dev"), &b).status,
            401
        );

        let checkin = br#"{"device":"dev-1","board":"qemu-x86_64","channel":"stable","version":"1.0.0+g1"}"#;
        let offer = |s: &Service| {
            let r: CheckinResponse =
                serde_json::from_slice(&bytes(call(s, "POST", "/v1/checkin", Some("dev"), checkin))).unwrap();
            r.update
        };
        assert_eq!(offer(&s), None, "0 %");
        let r = call(
            &s,
            "POST",
            "/v1/admin/rollout",
            Some("adm"),
            br#"{"board":"qemu-x86_64","channel":"stable","version":"1.0.1","percent":100}"#,
        );
        assert_eq!(r.status, 200);
        let o = offer(&s).unwrap();
        assert_eq!(
            (o.url.as_str(), o.size),
            ("/v1/bundles/qemu-x86_64/stable/1.0.1.bundle", b.len() as u64)
        );

        let r = call(&s, "GET", &o.url, Some("dev"), b"");
        assert_eq!(r.status, 200);
        assert_eq!(bytes(r), b);
        let ranged = |range: &str| {
            let req = Request {
                method: "GET".into(),
                url: o.url.clone(),
                authorization: Some("Bearer dev".into()),
                range: Some(range.into()),
                ..Request::default()
            };
            s.handle(&req, &mut io::empty(), NOW)
        };
        let r = ranged("bytes=1000-1999");
        assert_eq!(r.status, 206);
        assert!(
            r.headers
                .contains(&("Content-Range", format!("bytes 1000-1999/{}", b.len())))
        );
        assert_eq!(bytes(r), &b[1000..2000]);
        let r = ranged(&format!("bytes={}-", b.len()));
        assert_eq!(r.status, 416);
        assert!(
            r.headers
                .contains(&("Content-Range", format!("bytes */{}", b.len())))
        );
        assert_eq!(
            call(
                &s,
                "GET",
                "/v1/bundles/qemu-x86_64/stable/9.9.9.bundle",
                Some("dev"),
                b""
            )
            .status,
            404
        );

        // A restart finds the release, its rollout and the device again.
        let config = s.config.clone();
        drop(s);
        let (s, notes) = Service::open(config).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        let fleet: FleetView =
            serde_json::from_slice(&bytes(call(&s, "GET", "/v1/fleet", Some("adm"), b""))).unwrap();
        assert_eq!(fleet.releases.len(), 1);
        assert_eq!((fleet.releases[0].percent, fleet.releases[0].offered), (100, 1));
        assert_eq!(fleet.devices[0].device, "dev-1");
        assert!(
            Path::new(&s.config.store)
                .join("qemu-x86_64/stable/1.0.1.bundle")
                .exists()
        );
    }
}
