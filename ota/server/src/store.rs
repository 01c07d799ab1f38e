//! The store folder: `<store>/<board>/<channel>/<version>.bundle` and `<store>/state.json`.
//!
//! The only module that touches the disk. Uploads stream into a temporary file in the store and are
//! checked while they stream (header, signature, payload length and SHA-256); a refused upload leaves
//! nothing behind, an accepted one is renamed into place. `state.json` is replaced atomically (temporary
//! file, fsync, rename, fsync of the folder).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use edge_ota::{Header, HeaderError, KeyError, Keyring, MAX_HEADER, PayloadCheck, PayloadError};

use crate::fleet::{BundleInfo, Fleet, Release, is_name};

/// The persisted fleet state, in the store folder.
pub const STATE_FILE: &str = "state.json";
const UPLOAD_PREFIX: &str = ".upload-";

/// Why the store cannot be opened (the host or the operator is at fault; the message names the path).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or folder cannot be read or made.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// What the system said.
        source: io::Error,
    },
    /// `state.json` is not this server's state.
    #[error("{}: {message} (move it away to start with an empty fleet)", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Why an upload is refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Not a bundle header.
    #[error("not a bundle: {0}")]
    Header(HeaderError),
    /// The body ended before the header did.
    #[error("the upload ended inside the bundle header")]
    Truncated,
    /// The manifest's board or version cannot name a file.
    #[error("{0}")]
    Name(String),
    /// Signed by a key the configuration does not trust, or a bad signature.
    #[error("the signature is not accepted: {0}")]
    Signature(KeyError),
    /// Already past its expiry.
    #[error("the bundle expired at {expires} (Unix time); it is now {now}")]
    Expired {
        /// The manifest's expiry.
        expires: u64,
        /// The server's clock.
        now: u64,
    },
    /// The payload is not the one the manifest signed (length or SHA-256).
    #[error("the payload does not match the manifest: {0}")]
    Payload(PayloadError),
    /// The channel already holds this version.
    #[error("release {version} of board {board} is already in channel {channel}")]
    Exists {
        /// The board.
        board: String,
        /// The channel.
        channel: String,
        /// The version already there.
        version: String,
    },
    /// Reading the request body failed.
    #[error("reading the upload failed: {0}")]
    Body(io::Error),
    /// Writing the store failed (the host is at fault).
    #[error("writing to the store failed: {0}")]
    Disk(io::Error),
}

impl UploadError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::Exists { .. } => 409,
            Self::Disk(_) => 500,
            _ => 400,
        }
    }
}

/// The store folder.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
}

/// An upload that passed every check, in a temporary file; removed when dropped uncommitted.
#[derive(Debug)]
pub struct Staged {
    temp: PathBuf,
    info: BundleInfo,
    committed: bool,
}

impl Staged {
    /// What the bundle's header says.
    pub fn info(&self) -> &BundleInfo {
        &self.info
    }

    /// Moves the bundle to `<store>/<board>/<channel>/<version>.bundle`.
    pub fn commit(mut self, store: &Store, channel: &str) -> io::Result<PathBuf> {
        let dir = store.root.join(&self.info.board).join(channel);
        fs::create_dir_all(&dir)?;
        let to = dir.join(format!("{}.bundle", self.info.version));
        fs::rename(&self.temp, &to)?;
        File::open(&dir)?.sync_all()?;
        self.committed = true;
        Ok(to)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Removes a temporary file unless disarmed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Reads into `buf`, retrying reads interrupted by a signal.
fn read_some(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root`: finds the bundles in it, loads `state.json`, and
    /// reconciles the two (see [`Fleet::reconcile`]). Also returns what an operator should know
    /// (skipped files, releases added or forgotten), for the log.
    pub fn open(root: &Path) -> Result<(Self, Fleet, Vec<String>), StoreError> {
        fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> StoreError {
            let path = path.to_owned();
            move |source| StoreError::Io { path, what, source }
        }
        fs::create_dir_all(root).map_err(io_err(root, "cannot create the store folder"))?;
        let store = Self {
            root: root.to_owned(),
        };
        let mut notes = Vec::new();

        let state = root.join(STATE_FILE);
        let mut fleet = match fs::read(&state) {
            Ok(bytes) => Fleet::from_json(&bytes).map_err(|message| StoreError::State {
                path: state.clone(),
                message,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Fleet::new(),
            Err(e) => return Err(io_err(&state, "cannot read the state")(e)),
        };

        let mut found = Vec::new();
        for board in store.dirs(root)? {
            for channel in store.dirs(&board)? {
                let entries = fs::read_dir(&channel).map_err(io_err(&channel, "cannot list"))?;
                for entry in entries {
                    let entry = entry.map_err(io_err(&channel, "cannot list"))?;
                    let path = entry.path();
                    if path.extension().is_none_or(|e| e != "bundle") {
                        continue;
                    }
                    match Self::index(&path) {
                        Ok(release) => found.push(release),
                        Err(why) => notes.push(format!("{}: skipped: {why}", path.display())),
                    }
                }
            }
        }
        let (added, gone) = fleet.reconcile(found);
        for r in added {
            notes.push(format!(
                "{}: found without rollout state: registered at 0 % (set a rollout to offer it)",
                store.bundle_path(&r.board, &r.channel, &r.file_name()).display()
            ));
        }
        for r in gone {
            notes.push(format!(
                "release {} of {} in {} is in the state but its bundle is gone: forgotten",
                r.version, r.board, r.channel
            ));
        }

        // Uploads cut short by a crash.
        for entry in fs::read_dir(root).map_err(io_err(root, "cannot list"))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(UPLOAD_PREFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok((store, fleet, notes))
    }

    /// The sub-folders of `dir` whose names can be boards or channels.
    fn dirs(&self, dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let err = |source| StoreError::Io {
            path: dir.to_owned(),
            what: "cannot list",
            source,
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            if entry.file_type().map_err(err)?.is_dir() && name.to_str().is_some_and(is_name) {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// A bundle already in the store, as a release at 0 %.
    fn index(path: &Path) -> Result<Release, String> {
        let mut file = File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut prefix = Vec::new();
        (&mut file)
            .take(MAX_HEADER as u64)
            .read_to_end(&mut prefix)
            .map_err(|e| e.to_string())?;
        let header = Header::parse(&prefix).map_err(|e| e.to_string())?;
        let info = BundleInfo::from_header(&header);
        let channel_dir = path.parent();
        let board_dir = channel_dir.and_then(Path::parent);
        fn name(p: Option<&Path>) -> &str {
            p.and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        }
        if name(board_dir) != info.board {
            return Err(format!("its manifest is for board {}", info.board));
        }
        if name(Some(path)) != format!("{}.bundle", info.version) {
            return Err(format!("its manifest says version {}", info.version));
        }
        if len != info.size {
            return Err(format!("{len} bytes, its manifest makes {}", info.size));
        }
        Ok(Release::new(info, name(channel_dir), 0))
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a release's bundle is (the names must have passed [`is_name`]).
    pub fn bundle_path(&self, board: &str, channel: &str, file: &str) -> PathBuf {
        self.root.join(board).join(channel).join(file)
    }

    /// Opens a bundle to send it: the file and its length.
    pub fn open_bundle(&self, board: &str, channel: &str, file: &str) -> io::Result<(File, u64)> {
        let f = File::open(self.bundle_path(board, channel, file))?;
        let len = f.metadata()?.len();
        Ok((f, len))
    }

    /// Replaces `state.json` with `json`, atomically.
    pub fn save_state(&self, json: &[u8]) -> io::Result<()> {
        let temp = self.root.join(".state.json.tmp");
        let mut f = File::create(&temp)?;
        f.write_all(json)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&temp, self.root.join(STATE_FILE))?;
        File::open(&self.root)?.sync_all()
    }

    /// Streams an upload from `body` into a temporary file, checking it on the way: the header parses,
    /// the board and version can name files, the signature verifies against `keys` (if any), it has not
    /// expired at `now`, `admit` accepts it (called once the header is known, before the payload is
    /// read), and the payload is exactly the signed one. Never holds more than the header and one chunk
    /// in memory.
    pub fn stage(
        &self,
        body: &mut dyn Read,
        keys: &Keyring,
        now: u64,
        admit: &mut dyn FnMut(&BundleInfo) -> Result<(), UploadError>,
    ) -> Result<Staged, UploadError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let temp = self.root.join(format!(
            "{UPLOAD_PREFIX}{}-{}.part",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(UploadError::Disk)?;
        let mut guard = TempFile(Some(temp));

        let mut head = Vec::new();
        let mut checked: Option<(BundleInfo, PayloadCheck)> = None;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = read_some(body, &mut buf).map_err(UploadError::Body)?;
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            file.write_all(chunk).map_err(UploadError::Disk)?;
            if let Some((_, check)) = &mut checked {
                check.update(chunk).map_err(UploadError::Payload)?;
                continue;
            }
            head.extend_from_slice(chunk);
            let header = match Header::parse(&head) {
                Ok(h) => h,
                Err(HeaderError::Incomplete { .. }) => continue,
                Err(e) => return Err(UploadError::Header(e)),
            };
            let info = BundleInfo::from_header(&header);
            if !is_name(&info.board) || !is_name(&info.version.to_string()) {
                return Err(UploadError::Name(format!(
                    "board {:?} and version {:?} must be 1-64 of A-Z a-z 0-9 . _ + - (they name files)",
                    info.board,
                    info.version.to_string()
                )));
            }
            if !keys.keys().is_empty() {
                header.verify(keys).map_err(UploadError::Signature)?;
            }
            if now > info.expires {
                return Err(UploadError::Expired {
                    expires: info.expires,
                    now,
                });
            }
            admit(&info)?;
            let mut check = PayloadCheck::new(&header.manifest);
            let start = usize::try_from(header.payload_offset).unwrap_or(usize::MAX);
            check
                .update(head.get(start..).unwrap_or_default())
                .map_err(UploadError::Payload)?;
            checked = Some((info, check));
            head = Vec::new();
        }
        let Some((info, check)) = checked else {
            return Err(if head.is_empty() {
                UploadError::Header(HeaderError::Magic)
            } else {
                UploadError::Truncated
            });
        };
        check.finish().map_err(UploadError::Payload)?;
        file.sync_all().map_err(UploadError::Disk)?;
        Ok(Staged {
            temp: guard.0.take().expect("the guard holds the path until here"),
            info,
            committed: false,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use edge_ota::{Manifest, SigningKey, Version, manifest::FORMAT};

    use super::*;

    /// A scratch folder unique to this test process and call.
    pub(crate) fn scratch(name: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "edge-update-server-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A signed bundle of `payload`.
    pub(crate) fn bundle(key: &SigningKey, board: &str, version: &str, payload: &[u8]) -> Vec<u8> {
        let m = Manifest {
            format: FORMAT,
            board: board.into(),
            version: Version::parse(version).unwrap(),
            min_version: None,
            created: 1_700_000_000,
            expires: 1_900_000_000,
            payload_size: payload.len() as u64,
            payload_sha256: edge_ota::sha256_hex(payload),
            notes: Some("notes".into()),
        };
        let mut b = Header::sign(&m, key, &[]);
        b.extend_from_slice(payload);
        b
    }

    const NOW: u64 = 1_800_000_000;

    fn stage(store: &Store, bytes: &[u8], keys: &Keyring) -> Result<Staged, UploadError> {
        store.stage(&mut &bytes[..], keys, NOW, &mut |_| Ok(()))
    }

    fn leftovers(root: &Path) -> Vec<String> {
        fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    #[test]
    fn uploads_are_checked_while_streaming_and_refusals_leave_nothing() {
        let root = scratch("upload");
        let (store, _, _) = Store::open(&root).unwrap();
        let key = SigningKey::generate().unwrap();
        let trusted = Keyring::new(vec![key.public()]);
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let good = bundle(&key, "qemu-x86_64", "1.0.1", &payload);

        let staged = stage(&store, &good, &trusted).unwrap();
        assert_eq!(staged.info().size, good.len() as u64);
        let at = staged.commit(&store, "stable").unwrap();
        assert_eq!(at, root.join("qemu-x86_64/stable/1.0.1.bundle"));
        assert_eq!(fs::read(&at).unwrap(), good);

        let stranger = SigningKey::generate().unwrap();
        let mut tampered = good.clone();
        *tampered.last_mut().unwrap() ^= 1;
        let mut long = good.clone();
        long.push(0);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (bundle(&stranger, "qemu-x86_64", "1.0.2", b"x"), "signature"),
            (tampered, "SHA-256"),
            (good[..good.len() - 1].to_vec(), "short"),
            (long, "longer"),
            (good[..20].to_vec(), "ended inside the bundle header"),
            (b"GIF89a........................".to_vec(), "bad magic"),
            (Vec::new(), "bad magic"),
            (bundle(&key, "..", "1.0.2", b"x"), "name files"),
        ];
        for (bytes, why) in cases {
            let err = stage(&store, &bytes, &trusted).unwrap_err();
            assert!(err.to_string().contains(why), "{why}: {err}");
            assert_eq!(err.status(), 400);
        }
        // Without configured keys a stranger's bundle is indexed (devices verify it themselves).
        stage(
            &store,
            &bundle(&stranger, "qemu-x86_64", "1.0.2", b"x"),
            &Keyring::default(),
        )
        .unwrap();
        // `admit` is asked before the payload is read.
        let err = store
            .stage(&mut &good[..], &trusted, NOW, &mut |info| {
                Err(UploadError::Exists {
                    board: info.board.clone(),
                    channel: "stable".into(),
                    version: info.version.to_string(),
                })
            })
            .unwrap_err();
        assert_eq!(err.status(), 409);
        let err = store
            .stage(&mut &good[..], &trusted, 2_000_000_000, &mut |_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, UploadError::Expired { .. }), "{err}");
        assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    }

    #[test]
    fn reopening_finds_bundles_and_state_again() {
        let root = scratch("reopen");
        let key = SigningKey::generate().unwrap();
        let (store, mut fleet, notes) = Store::open(&root).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        for (version, channel) in [("1.0.1", "stable"), ("1.0.2", "beta")] {
            let staged = stage(
                &store,
                &bundle(&key, "qemu-x86_64", version, b"payload"),
                &Keyring::default(),
            )
            .unwrap();
            let info = staged.info().clone();
            staged.commit(&store, channel).unwrap();
            fleet.add_release(Release::new(info, channel, 40)).unwrap();
        }
        store.save_state(&fleet.to_json()).unwrap();
        // A stray file, a bundle in the wrong folder, a crashed upload.
        fs::write(root.join("qemu-x86_64/stable/junk.bundle"), b"junk").unwrap();
        fs::create_dir_all(root.join("rpi4/stable")).unwrap();
        fs::write(
            root.join("rpi4/stable/1.0.1.bundle"),
            bundle(&key, "qemu-x86_64", "1.0.1", b"p"),
        )
        .unwrap();
        fs::write(root.join(".upload-1-1.part"), b"half").unwrap();
        fs::write(
            root.join("qemu-x86_64/beta/1.0.3.bundle"),
            bundle(&key, "qemu-x86_64", "1.0.3", b"p"),
        )
        .unwrap();

        let (_, reopened, notes) = Store::open(&root).unwrap();
        assert_eq!(notes.len(), 3, "{notes:#?}");
        assert!(notes.iter().any(|n| n.contains("junk.bundle: skipped")));
        assert!(
            notes
                .iter()
                .any(|n| n.contains("rpi4/stable/1.0.1.bundle: skipped"))
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("1.0.3.bundle: found without rollout state"))
        );
        let percents: Vec<(String, u8)> = reopened
            .releases()
            .iter()
            .map(|r| (format!("{}/{}", r.channel, r.version), r.percent))
            .collect();
        assert_eq!(
            percents,
            [
                ("beta/1.0.2".into(), 40),
                ("beta/1.0.3".into(), 0),
                ("stable/1.0.1".into(), 40)
            ]
        );
        assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));

        fs::write(root.join(STATE_FILE), b"{not json").unwrap();
        assert!(matches!(Store::open(&root), Err(StoreError::State { .. })));
    }
}
