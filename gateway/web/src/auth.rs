//! Who may use the UI: the admin password (argon2id), sessions with their CSRF tokens, and the login
//! limiter. Pure state: time comes in as `now`, randomness as bytes the caller drew, and the password
//! hash goes in and out as its PHC string (the caller keeps it on the data partition).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest admin password accepted, in characters.
pub const MIN_PASSWORD: usize = 10;
/// The longest, in bytes (argon2 takes any length; a megabyte of password is an attack).
pub const MAX_PASSWORD: usize = 256;
/// Failed logins from one address within [`WINDOW`] before the next attempt is refused.
pub const MAX_FAILURES: usize = 5;
/// The window the failures are counted in, and how long a refused address waits.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Failed logins from everywhere within [`WINDOW`] before every login is refused for a while (a
/// guesser spread over many addresses).
pub const MAX_FAILURES_ALL: usize = 30;
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after its login, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; a new login past it ends the least recently used one.
pub const MAX_SESSIONS: usize = 32;

/// Why a password is not accepted as the new admin password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Too short.
    #[error("use at least {MIN_PASSWORD} characters")]
    Short,
    /// Too long.
    #[error("use at most {MAX_PASSWORD} bytes")]
    Long,
    /// Hashing failed (argon2 parameters; not the user's fault).
    #[error("the password could not be hashed: {0}")]
    Hash(String),
}

/// Why a login is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefused {
    /// No admin password yet: first boot.
    SetupRequired,
    /// Wrong password (counted).
    Wrong,
    /// Too many failures: try again after this long (the password was not even checked).
    Locked(Duration),
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The token that must come with every state change (`X-CSRF-Token`).
    pub csrf: String,
    created: Instant,
    last_used: Instant,
}

/// The admin account, its sessions and the login limiter.
#[derive(Debug, Default)]
pub struct Auth {
    /// The argon2id PHC string of the admin password; `None` until first boot set it.
    hash: Option<String>,
    sessions: HashMap<String, Session>,
    failures: HashMap<IpAddr, VecDeque<Instant>>,
    all_failures: VecDeque<Instant>,
}

/// Our argon2id parameters: RFC 9106's second recommendation scaled down for small boards
/// (19 MiB, 2 passes: OWASP's minimum), about 50 ms on a Raspberry Pi 4 class core.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a new admin password; `salt` is 16 random bytes the caller drew.
pub fn hash_password(password: &str, salt: &[u8; 16]) -> Result<String, WeakPassword> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(WeakPassword::Short);
    }
    if password.len() > MAX_PASSWORD {
        return Err(WeakPassword::Long);
    }
    let salt = SaltString::encode_b64(salt).map_err(|e| WeakPassword::Hash(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| WeakPassword::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (any argon2 variant and parameters it names).
pub fn verify_password(password: &str, hash: &str) -> bool {
    password.len() <= MAX_PASSWORD
        && PasswordHash::new(hash)
            .is_ok_and(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok())
}

impl Auth {
    /// The account as stored: `hash` is the saved PHC string, if any.
    pub fn new(hash: Option<String>) -> Self {
        Self {
            hash: hash.filter(|h| PasswordHash::new(h).is_ok()),
            ..Self::default()
        }
    }

    /// Whether first boot must set the password before anything else.
    pub fn setup_required(&self) -> bool {
        self.hash.is_none()
    }

    /// Sets the password hash (first boot, or a change) and ends every session.
    pub fn set_hash(&mut self, hash: String) {
        self.hash = Some(hash);
        self.sessions.clear();
    }

    /// Starts a session (after setup or login): `token` and `csrf` are fresh random strings.
    pub fn open(&mut self, token: String, csrf: String, now: Instant) -> Session {
        self.expire(now);
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(t, _)| t.clone())
        {
            self.sessions.remove(&oldest);
        }
        let session = Session {
            csrf,
            created: now,
            last_used: now,
        };
        self.sessions.insert(token, session.clone());
        session
    }

    /// Checks a password for a login from `peer`: the limiter first (a locked address is refused
    /// without a check, so guessing gains nothing), then the hash. A failure is counted.
    pub fn login(&mut self, password: &str, peer: IpAddr, now: Instant) -> Result<(), LoginRefused> {
        let Some(hash) = &self.hash else {
            return Err(LoginRefused::SetupRequired);
        };
        let cutoff = now.checked_sub(WINDOW);
        let fresh = |t: &Instant| cutoff.is_none_or(|c| *t > c);
        let mine = self.failures.entry(peer).or_default();
        mine.retain(fresh);
        self.all_failures.retain(fresh);
        let wait = |oldest: Option<&Instant>| {
            oldest.map_or(WINDOW, |t| {
                WINDOW.saturating_sub(now.saturating_duration_since(*t))
            })
        };
        if mine.len() >= MAX_FAILURES {
            return Err(LoginRefused::Locked(wait(mine.front())));
        }
        if self.all_failures.len() >= MAX_FAILURES_ALL {
            return Err(LoginRefused::Locked(wait(self.all_failures.front())));
        }
        if verify_password(password, hash) {
            mine.clear();
            self.failures.remove(&peer);
            return Ok(());
        }
        mine.push_back(now);
        self.all_failures.push_back(now);
        // Bounded: addresses with no recent failure are forgotten.
        if self.failures.len() > 4096 {
            self.failures.retain(|_, q| q.back().is_some_and(fresh));
        }
        Err(LoginRefused::Wrong)
    }

    /// Whether `password` is the admin password (a password change confirms the current one).
    pub fn check(&self, password: &str) -> bool {
        self.hash.as_deref().is_some_and(|h| verify_password(password, h))
    }

    /// The live session for `token`, touched.
    pub fn session(&mut self, token: &str, now: Instant) -> Option<&Session> {
        self.expire(now);
        let s = self.sessions.get_mut(token)?;
        s.last_used = now;
        Some(s)
    }

    /// Ends a session.
    pub fn close(&mut self, token: &str) {
        self.sessions.remove(token);
    }

    fn expire(&mut self, now: Instant) {
        self.sessions.retain(|_, s| {
            now.saturating_duration_since(s.last_used) < IDLE
                && now.saturating_duration_since(s.created) < ABSOLUTE
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 16] = [7; 16];

    /// Any instant will do: the tests move time by hand from here.
    #[allow(clippy::disallowed_methods, reason = "a starting point for fake time")]
    fn start() -> Instant {
        Instant::now()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn passwords_hash_and_verify() {
        assert_eq!(hash_password("short", &SALT), Err(WeakPassword::Short));
        assert_eq!(hash_password(&"x".repeat(300), &SALT), Err(WeakPassword::Long));
        let hash = hash_password("correct horse", &SALT).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn the_sixth_wrong_password_in_a_minute_is_refused_even_if_right() {
        let t0 = start();
        let mut auth = Auth::new(Some(hash_password("correct horse", &SALT).unwrap()));
        for i in 0..5 {
            let now = t0 + Duration::from_secs(i);
            assert_eq!(auth.login("wrong", ip(1), now), Err(LoginRefused::Wrong));
        }
        let now = t0 + Duration::from_secs(10);
        assert_eq!(
            auth.login("correct horse", ip(1), now),
            Err(LoginRefused::Locked(Duration::from_secs(50)))
        );
        // Another address is not locked out by this one.
        assert_eq!(auth.login("correct horse", ip(2), now), Ok(()));
        // Once the oldest failure is a minute old, the address may try again.
        assert_eq!(
            auth.login("correct horse", ip(1), t0 + Duration::from_secs(61)),
            Ok(())
        );
    }

    #[test]
    fn many_addresses_guessing_lock_everyone_for_a_while() {
        let t0 = start();
        let mut auth = Auth::new(Some(hash_password("correct horse", &SALT).unwrap()));
        for i in 0..MAX_FAILURES_ALL {
            let last = u8::try_from(i % 200).unwrap();
            assert_eq!(auth.login("guess", ip(last), t0), Err(LoginRefused::Wrong));
        }
        assert!(matches!(
            auth.login("correct horse", ip(250), t0),
            Err(LoginRefused::Locked(_))
        ));
        assert_eq!(
            auth.login("correct horse", ip(250), t0 + WINDOW + Duration::from_secs(1)),
            Ok(())
        );
    }

    #[test]
    fn sessions_expire_when_idle_or_old_and_end_on_password_change() {
        let t0 = start();
        let mut auth = Auth::new(None);
        assert!(auth.setup_required());
        assert_eq!(auth.login("x", ip(1), t0), Err(LoginRefused::SetupRequired));
        auth.set_hash(hash_password("correct horse", &SALT).unwrap());
        auth.open("tok".into(), "csrf".into(), t0);
        assert_eq!(
            auth.session("tok", t0 + IDLE / 2).map(|s| s.csrf.as_str()),
            Some("csrf")
        );
        assert!(auth.session("nope", t0).is_none());
        // Used every 20 minutes it lives until the absolute limit.
        let mut now = t0;
        while now + IDLE / 2 < t0 + ABSOLUTE {
            now += IDLE / 2;
            assert!(auth.session("tok", now).is_some());
        }
        assert!(auth.session("tok", t0 + ABSOLUTE).is_none());
        auth.open("idle".into(), "c".into(), t0);
        assert!(auth.session("idle", t0 + IDLE).is_none());
        auth.open("a".into(), "c".into(), t0);
        auth.set_hash(hash_password("another horse", &SALT).unwrap());
        assert!(auth.session("a", t0).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let t0 = start();
        let mut auth = Auth::new(Some(hash_password("correct horse", &SALT).unwrap()));
        for i in 0..=MAX_SESSIONS {
            auth.open(
                format!("t{i}"),
                "c".into(),
                t0 + Duration::from_millis(u64::try_from(i).unwrap()),
            );
        }
        assert!(auth.session("t0", t0 + Duration::from_secs(1)).is_none());
        assert!(
            auth.session(&format!("t{MAX_SESSIONS}"), t0 + Duration::from_secs(1))
                .is_some()
        );
    }
}
