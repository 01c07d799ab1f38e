//! `edge-ota`: make signing keys, rotate them, build and sign bundles, verify and inspect them.
//!
//! The only part of this crate that touches files and the clock.

#![allow(
    clippy::disallowed_methods,
    reason = "the CLI reads the wall clock for the manifest's creation and expiry times"
)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use edge_ota::manifest::FORMAT;
use edge_ota::{Endorsement, Header, Keyring, Manifest, PayloadCheck, PublicKey, SigningKey, Version};

const USAGE: &str = "\
Usage:
  edge-ota keygen --out NAME
      writes NAME.key (the signing key: keep it offline) and NAME.pub (ships in images)
  edge-ota endorse --key OLD.key --new NEW.pub --out FILE
      rotation: OLD vouches for NEW; bundles signed by NEW carry FILE (--endorsement)
  edge-ota bundle --key KEY --board BOARD --version V --payload FILE --out FILE.bundle
                  [--min-version V] [--expires-days N (365)] [--notes TEXT] [--endorsement FILE]...
      signs a manifest for FILE (a slot squashfs) and writes the bundle
  edge-ota verify --trust PUB [--trust PUB]... [--board BOARD] [--running V] FILE.bundle
      checks the signature and the payload (and, given --board/--running, what a device would refuse)
  edge-ota inspect FILE.bundle
      prints the manifest and the signing key
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-ota: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let command = match parser.next().map_err(|e| e.to_string())? {
        Some(Value(v)) => v.string().map_err(|e| e.to_string())?,
        Some(Short('h') | Long("help")) | None => {
            print!("{USAGE}");
            return Ok(());
        }
        Some(other) => return Err(format!("{}\n{USAGE}", other.unexpected())),
    };
    let mut opts = Opts::default();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("out") => opts.out = Some(PathBuf::from(value(&mut parser)?)),
            Long("key") => opts.key = Some(PathBuf::from(value(&mut parser)?)),
            Long("new") => opts.new = Some(PathBuf::from(value(&mut parser)?)),
            Long("board") => opts.board = Some(value(&mut parser)?),
            Long("version") => opts.version = Some(value(&mut parser)?),
            Long("min-version") => opts.min_version = Some(value(&mut parser)?),
            Long("expires-days") => {
                opts.expires_days = value(&mut parser)?
                    .parse()
                    .map_err(|e| format!("--expires-days: {e}"))?;
            }
            Long("notes") => opts.notes = Some(value(&mut parser)?),
            Long("payload") => opts.payload = Some(PathBuf::from(value(&mut parser)?)),
            Long("endorsement") => opts.endorsements.push(PathBuf::from(value(&mut parser)?)),
            Long("trust") => opts.trust.push(PathBuf::from(value(&mut parser)?)),
            Long("running") => opts.running = Some(value(&mut parser)?),
            Value(v) if opts.file.is_none() => opts.file = Some(PathBuf::from(v)),
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("{}\n{USAGE}", other.unexpected())),
        }
    }
    match command.as_str() {
        "keygen" => keygen(&opts),
        "endorse" => endorse(&opts),
        "bundle" => bundle(&opts),
        "verify" => verify(&opts),
        "inspect" => inspect(&opts),
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

#[derive(Debug)]
struct Opts {
    out: Option<PathBuf>,
    key: Option<PathBuf>,
    new: Option<PathBuf>,
    board: Option<String>,
    version: Option<String>,
    min_version: Option<String>,
    expires_days: u64,
    notes: Option<String>,
    payload: Option<PathBuf>,
    endorsements: Vec<PathBuf>,
    trust: Vec<PathBuf>,
    running: Option<String>,
    file: Option<PathBuf>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            out: None,
            key: None,
            new: None,
            board: None,
            version: None,
            min_version: None,
            expires_days: 365,
            notes: None,
            payload: None,
            endorsements: Vec::new(),
            trust: Vec::new(),
            running: None,
            file: None,
        }
    }
}

fn value(parser: &mut lexopt::Parser) -> Result<String, String> {
    use lexopt::ValueExt;
    parser
        .value()
        .map_err(|e| e.to_string())?
        .string()
        .map_err(|e| e.to_string())
}

fn need<'a, T>(v: &'a Option<T>, flag: &str) -> Result<&'a T, String> {
    v.as_ref().ok_or_else(|| format!("{flag} is required\n{USAGE}"))
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn version(text: &str, flag: &str) -> Result<Version, String> {
    Version::parse(text).map_err(|e| format!("{flag} {text:?} is not a semver version: {e}"))
}

fn keygen(o: &Opts) -> Result<(), String> {
    let out = need(&o.out, "--out")?;
    let key = SigningKey::generate().map_err(|e| e.to_string())?;
    let private = out.with_extension("key");
    let public = out.with_extension("pub");
    for p in [&private, &public] {
        if p.exists() {
            return Err(format!("{} exists: refusing to overwrite a key", p.display()));
        }
    }
    write_private(&private, key.to_file().as_bytes())?;
    std::fs::write(&public, key.public().to_file()).map_err(|e| format!("{}: {e}", public.display()))?;
    println!(
        "key {} -> {} (secret) and {}",
        key.public().id(),
        private.display(),
        public.display()
    );
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn load_key(path: &Path) -> Result<SigningKey, String> {
    SigningKey::from_file(&read_text(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

fn endorse(o: &Opts) -> Result<(), String> {
    let old = load_key(need(&o.key, "--key")?)?;
    let new_path = need(&o.new, "--new")?;
    let new =
        PublicKey::from_file(&read_text(new_path)?).map_err(|e| format!("{}: {e}", new_path.display()))?;
    let out = need(&o.out, "--out")?;
    std::fs::write(out, old.endorse(&new).to_file()).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "key {} endorses key {} -> {}",
        old.public().id(),
        new.id(),
        out.display()
    );
    Ok(())
}

/// Prints progress on stderr every 10 % of `total`.
#[derive(Debug)]
struct Progress<'a> {
    what: &'a str,
    total: u64,
    next: u64,
}

impl<'a> Progress<'a> {
    fn new(what: &'a str, total: u64) -> Self {
        Self { what, total, next: 0 }
    }

    fn at(&mut self, done: u64) {
        if self.total == 0 || done < self.next {
            return;
        }
        let pct = done.saturating_mul(100) / self.total;
        eprintln!("{}: {pct:>3}% ({done} of {} bytes)", self.what, self.total);
        self.next = (pct / 10 + 1) * 10 * self.total / 100;
    }
}

/// Streams the rest of `from` into `check`, with progress.
fn stream(from: &mut impl Read, check: &mut PayloadCheck, what: &str) -> Result<(), String> {
    let mut buf = vec![0u8; 1 << 16];
    let mut progress = Progress::new(what, check.remaining());
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{what}: {e}")),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        check.update(chunk).map_err(|e| e.to_string())?;
        progress.at(check.seen());
    }
}

fn bundle(o: &Opts) -> Result<(), String> {
    let key = load_key(need(&o.key, "--key")?)?;
    let payload = need(&o.payload, "--payload")?;
    let out = need(&o.out, "--out")?;
    let endorsements = o
        .endorsements
        .iter()
        .map(|p| Endorsement::from_file(&read_text(p)?).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let (payload_size, payload_sha256) = hash_file(payload)?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let manifest = Manifest {
        format: FORMAT,
        board: need(&o.board, "--board")?.clone(),
        version: version(need(&o.version, "--version")?, "--version")?,
        min_version: o
            .min_version
            .as_deref()
            .map(|v| version(v, "--min-version"))
            .transpose()?,
        created,
        expires: created + o.expires_days * 86_400,
        payload_size,
        payload_sha256,
        notes: o.notes.clone(),
    };
    // The manifest must read back as a device will read it (board name rules and all).
    Manifest::parse(manifest.to_toml().as_bytes()).map_err(|e| e.to_string())?;
    let tmp = out.with_extension("bundle.part");
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut src = File::open(payload).map_err(|e| format!("{}: {e}", payload.display()))?;
        let mut progress = Progress::new("writing the bundle", manifest.payload_size);
        edge_ota::bundle::write(&manifest, &key, &endorsements, &mut src, &mut file, |d| {
            progress.at(d);
        })
        .map_err(|e| format!("{}: {e}", payload.display()))?;
        file.sync_all().map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    println!(
        "{} {} for {} ({} bytes of payload), signed by key {}",
        out.display(),
        manifest.version,
        manifest.board,
        manifest.payload_size,
        key.public().id()
    );
    Ok(())
}

fn hash_file(path: &Path) -> Result<(u64, String), String> {
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        ctx.update(buf.get(..n).unwrap_or_default());
        len += n as u64;
    }
    Ok((len, edge_ota::hex(ctx.finish().as_ref())))
}

fn read_header(file: &mut File, path: &Path) -> Result<Header, String> {
    let mut prefix = Vec::new();
    Read::by_ref(file)
        .take(edge_ota::MAX_HEADER as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let header = Header::parse(&prefix).map_err(|e| format!("{}: {e}", path.display()))?;
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(header.payload_offset))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(header)
}

fn verify(o: &Opts) -> Result<(), String> {
    let path = need(&o.file, "FILE.bundle")?;
    if o.trust.is_empty() {
        return Err(format!("--trust PUB is required\n{USAGE}"));
    }
    let keys = o
        .trust
        .iter()
        .map(|p| PublicKey::from_file(&read_text(p)?).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = read_header(&mut file, path)?;
    let signer = header.verify(&Keyring::new(keys)).map_err(|e| e.to_string())?;
    println!("signature: good (key {signer})");
    if let Some(board) = &o.board {
        let running = version(need(&o.running, "--running (with --board)")?, "--running")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        edge_ota::Device {
            board,
            version: &running,
            now: Some(now),
            blocked: &[],
        }
        .accepts(&header.manifest)
        .map_err(|e| format!("a {board} device on {running} refuses it: {e}"))?;
        println!("policy: a {board} device on {running} accepts it");
    }
    let mut check = PayloadCheck::new(&header.manifest);
    stream(&mut file, &mut check, "checking the payload")?;
    check.finish().map_err(|e| e.to_string())?;
    println!("payload: good ({} bytes)", header.manifest.payload_size);
    Ok(())
}

fn inspect(o: &Opts) -> Result<(), String> {
    let path = need(&o.file, "FILE.bundle")?;
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = read_header(&mut file, path)?;
    print!("{}", String::from_utf8_lossy(&header.manifest_bytes));
    println!("# signed by key {}", header.signer.id());
    for e in &header.endorsements {
        let id = PublicKey::from_hex(&e.key).map_or_else(|_| "?".to_owned(), |k| k.id().to_string());
        println!("# key {id} endorsed by key {}", e.by);
    }
    Ok(())
}
