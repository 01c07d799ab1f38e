//! The image build: board file in, `<out>/<board>.img` out, rootless, offline except for fetching
//! Debian packages into the cache. Intermediate pieces stay in `<out>/<board>.work/` (the HIL harness
//! can boot `vmlinuz` + `initrd.img` from there directly, and they help when a boot fails).

use std::fmt;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::Error;
use crate::board::{Arch, Board};
use crate::configs;
use crate::cpio::Cpio;
use crate::debs::{self, Cache};
use crate::disk::{self, Layout, Partition};
use crate::grubenv::GrubEnv;
use crate::slot::{self, SlotContent};
use crate::tar;
use crate::tools;

/// The GRUB modules built into the EFI binary (dependencies are added by `grub-mkimage`).
pub const GRUB_MODULES: &[&str] = &[
    "memdisk",
    "tar",
    "normal",
    "part_gpt",
    "fat",
    "squash4",
    "xzio",
    "gzio",
    "search",
    "search_fs_file",
    "regexp",
    "loadenv",
    "test",
    "echo",
    "linux",
    "configfile",
];

/// Timestamp for file systems that cannot store 0 (FAT starts in 1980): 1980-01-01T00:00:00Z, unless
/// `SOURCE_DATE_EPOCH` says otherwise.
pub const DEFAULT_EPOCH: u64 = 315_532_800;

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Where `<board>.img` and `<board>.work/` go. Default: `$CARGO_TARGET_DIR/images`.
    pub out_dir: PathBuf,
    /// Add `appl.testhooks=1` to the kernel command line (HIL images).
    pub test_hooks: bool,
    /// The image version (`/etc/rtc-edge/version`); `None`: [`default_version`].
    pub version: Option<String>,
    /// The cargo workspace holding `image/init` and `gateway/gatewayd`.
    pub workspace: PathBuf,
    /// Cargo's target folder (binaries are at `<target_dir>/<triple>/appliance/`).
    pub target_dir: PathBuf,
    /// The Debian package cache (default `$HOME/.cache/rtc-edge/debs`).
    pub cache_dir: PathBuf,
    /// Print progress lines on stderr.
    pub progress: bool,
    /// OTA public key files (`edge-ota keygen`) the image's update agent trusts.
    pub ota_keys: Vec<PathBuf>,
}

impl Default for BuildOptions {
    /// This repository's workspace, `$CARGO_TARGET_DIR` (or `<workspace>/target`), output in its
    /// `images/`, the shared package cache, no test hooks, the default version, progress on.
    fn default() -> Self {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let workspace = workspace.canonicalize().unwrap_or(workspace);
        let target_dir =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        Self {
            out_dir: target_dir.join("images"),
            test_hooks: false,
            version: None,
            workspace,
            target_dir,
            cache_dir: home.join(".cache/rtc-edge/debs"),
            progress: true,
            ota_keys: Vec::new(),
        }
    }
}

/// The workspace version plus the git commit: `0.1.0+g<12 hex>`, `.dirty` when tracked files changed.
pub fn default_version(workspace: &Path) -> String {
    let base = env!("CARGO_PKG_VERSION");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let dirty =
                git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            format!("{base}+g{hash}{}", if dirty { ".dirty" } else { "" })
        }
        _ => base.to_owned(),
    }
}

/// One partition in the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    /// Which.
    pub partition: Partition,
    /// Partition size in bytes.
    pub size: u64,
    /// Bytes of content in it (files on the ESP and data, the squashfs of a slot).
    pub content: u64,
    /// What it holds, for humans.
    pub what: String,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The board.
    pub board: String,
    /// The image file.
    pub image: PathBuf,
    /// Intermediate pieces (`vmlinuz`, `initrd.img`, `slot.squashfs`, `esp.img`, `data.img`, ...).
    pub work_dir: PathBuf,
    /// The image version.
    pub version: String,
    /// Built with `appl.testhooks=1`.
    pub test_hooks: bool,
    /// Each partition.
    pub partitions: Vec<PartitionReport>,
    /// Size of the image file.
    pub image_bytes: u64,
    /// sha256 of the image file.
    pub sha256: String,
    /// Kernel package, version and release.
    pub kernel: String,
    /// GRUB modules' package and version.
    pub grub: String,
    /// `gatewayd --version` and the binary's size.
    pub gatewayd: String,
    /// `edge-init`'s crate version and the binary's size.
    pub edge_init: String,
    /// The lines of `/modules.list` in the initramfs.
    pub modules: Vec<String>,
    /// How long the build took.
    pub elapsed: Duration,
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / disk::MIB as f64;
        writeln!(f, "image     {}", self.image.display())?;
        writeln!(
            f,
            "board     {}  version {}{}",
            self.board,
            self.version,
            if self.test_hooks {
                "  (test hooks: appl.testhooks=1)"
            } else {
                ""
            }
        )?;
        for p in &self.partitions {
            writeln!(
                f,
                "  {:<6} {:>5.1} MiB partition, {:>5.1} MiB used ({:>3.0}%): {}",
                p.partition.name(),
                mib(p.size),
                mib(p.content),
                100.0 * p.content as f64 / p.size as f64,
                p.what
            )?;
        }
        writeln!(
            f,
            "size      {:.1} MiB ({} bytes)",
            mib(self.image_bytes),
            self.image_bytes
        )?;
        writeln!(f, "kernel    {}", self.kernel)?;
        writeln!(f, "grub      {}", self.grub)?;
        writeln!(f, "gatewayd  {}", self.gatewayd)?;
        writeln!(f, "edge-init {}", self.edge_init)?;
        writeln!(f, "modules   {}", self.modules.len())?;
        writeln!(f, "sha256    {}", self.sha256)?;
        write!(f, "built in  {:.1} s", self.elapsed.as_secs_f64())
    }
}

/// Progress printer: step counter and the time each step took.
struct Progress {
    on: bool,
    board: String,
    started: Instant,
}

impl Progress {
    const STEPS: usize = 11;

    fn step(&self, n: usize, what: &str) {
        if self.on {
            eprintln!(
                "edge-image {}: [{n:>2}/{}] {:>5.1}s {what}",
                self.board,
                Self::STEPS,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn note(&self, what: &str) {
        if self.on {
            eprintln!("edge-image {}:          {what}", self.board);
        }
    }
}

/// Builds `<out_dir>/<board>.img` for `board` (see the crate docs and image/README.md for what is in it).
#[allow(
    clippy::disallowed_methods,
    reason = "the build reports how long it took; the image itself never depends on the clock"
)]
pub fn build_image(board: &Board, opts: &BuildOptions) -> Result<BuildReport, Error> {
    let started = Instant::now();
    let p = Progress {
        on: opts.progress,
        board: board.name.clone(),
        started,
    };
    let version = opts
        .version
        .clone()
        .unwrap_or_else(|| default_version(&opts.workspace));
    slot::check_version(&version)?;
    let epoch = source_date_epoch()?;

    p.step(1, "checking host tools");
    tools::check(tools::BUILD_TOOLS)?;
    let work = opts.out_dir.join(format!("{}.work", board.name));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| Error::io("work folder", &work, e))?;

    p.step(
        2,
        &format!(
            "building edge-init and gatewayd (cargo, profile appliance, {})",
            board.target
        ),
    );
    let edge_init = cargo_build(opts, "edge-init", &board.target, "image/init (edge-init, PID 1)")?;
    let gatewayd = cargo_build(opts, "gatewayd", &board.target, "gateway/gatewayd")?;
    let agent = cargo_build(opts, "edge-agent", &board.target, "ota/agent (the update agent)")?;

    p.step(
        3,
        &format!(
            "kernel package {} (cache {})",
            board.kernel_package_qualified(),
            opts.cache_dir.display()
        ),
    );
    let log = |m: &str| p.note(m);
    let cache = Cache {
        dir: &opts.cache_dir,
        log: &log,
    };
    let kernel = cache.kernel(&board.kernel.package, board.arch)?;
    let kver = debs::kernel_version(&kernel.root)?;
    let vmlinuz_src = kernel.root.join(format!("boot/vmlinuz-{kver}"));
    let vmlinuz = work.join("vmlinuz");
    fs::copy(&vmlinuz_src, &vmlinuz).map_err(|e| Error::io("kernel", &vmlinuz_src, e))?;

    p.step(
        4,
        &format!(
            "initramfs: edge-init + module closure of {} modules",
            board.kernel.modules.len()
        ),
    );
    let modules = module_closure(board, &kernel.root, &kver)?;
    let initrd = work.join("initrd.img");
    write_initramfs(&edge_init, &modules, &work, &initrd)?;

    p.step(
        5,
        "init.toml, gatewayd.toml (checked with gatewayd --check-config)",
    );
    let init_toml = configs::init_toml(board);
    let gatewayd_toml = configs::gatewayd_toml(board);
    let (checker, gatewayd_version) = gatewayd_checker(board, opts, &gatewayd)?;
    write(&work.join("init.toml"), init_toml.as_bytes())?;
    let gw_conf = work.join("gatewayd.toml");
    write(&gw_conf, gatewayd_toml.as_bytes())?;
    let mut check = checker.command();
    check.arg("--check-config").arg("-c").arg(&gw_conf);
    tools::run(
        "check the image's gatewayd.toml with gatewayd --check-config",
        &mut check,
    )?;

    p.step(6, "slot squashfs (xz)");
    let layout = Layout::new(&board.partitions);
    let slot_file = work.join("slot.squashfs");
    let content = SlotContent {
        kernel: vmlinuz.clone(),
        initrd: initrd.clone(),
        gatewayd: gatewayd.clone(),
        version: version.clone(),
        gatewayd_toml,
        init_toml,
        agent: Some(agent),
        board: board.name.clone(),
        update_toml: configs::update_toml(board),
        ota_keys: opts
            .ota_keys
            .iter()
            .map(|p| {
                let text = fs::read_to_string(p).map_err(|e| Error::io("OTA keys", p, e))?;
                let name = p
                    .file_name()
                    .map_or_else(|| "key.pub".into(), |n| n.to_string_lossy().into_owned());
                Ok((name, text))
            })
            .collect::<Result<_, Error>>()?,
    };
    let slot_bytes = slot::build_slot(&content, &slot_file)?;
    if slot_bytes > layout.size(Partition::SlotA) {
        return Err(Error::Other(format!(
            "{}: the slot content is {:.1} MiB and does not fit partitions.slot_mib = {}",
            board.file.display(),
            slot_bytes as f64 / disk::MIB as f64,
            board.partitions.slot_mib
        )));
    }

    p.step(
        7,
        &format!("GRUB {} with the A/B script, grubenv", board.arch.grub_platform()),
    );
    let (grub_dir, grub_version) = grub_modules(board.arch, &cache)?;
    let cfg = configs::grub_cfg(board, opts.test_hooks);
    write(&work.join("grub.cfg"), cfg.as_bytes())?;
    let memdisk = work.join("memdisk.tar");
    write(&memdisk, &tar::archive(&[("boot/grub/grub.cfg", cfg.as_bytes())]))?;
    let esp_tree = work.join("esp");
    let efi_dir = esp_tree.join("EFI/BOOT");
    fs::create_dir_all(&efi_dir).map_err(|e| Error::io("ESP tree", &efi_dir, e))?;
    let efi = efi_dir.join(&board.efi_binary);
    tools::run(
        "GRUB EFI binary (grub-mkimage)",
        tools::cmd("grub-mkimage")
            .args(["-O", board.arch.grub_platform(), "-p", "(memdisk)/boot/grub"])
            .arg("-d")
            .arg(&grub_dir)
            .arg("-m")
            .arg(&memdisk)
            .arg("-o")
            .arg(&efi)
            .args(GRUB_MODULES),
    )?;
    let grubenv = GrubEnv::fresh()
        .to_block()
        .map_err(|m| Error::Other(format!("fresh grubenv: {m}")))?;
    write(&efi_dir.join("grubenv"), &grubenv)?;

    p.step(
        8,
        &format!(
            "ESP ({} MiB, FAT via mkfs.vfat + mtools)",
            board.partitions.esp_mib
        ),
    );
    let esp_img = work.join("esp.img");
    let esp_content = make_esp(board, &esp_tree, &esp_img, layout.size(Partition::Esp), epoch)?;

    p.step(
        9,
        &format!(
            "data ({} MiB, ext4 via mke2fs + debugfs)",
            board.partitions.data_mib
        ),
    );
    let data_img = work.join("data.img");
    make_data(board, &data_img, epoch)?;

    p.step(
        10,
        &format!(
            "disk image ({} MiB, GPT via sfdisk)",
            layout.total_bytes() / disk::MIB
        ),
    );
    fs::create_dir_all(&opts.out_dir).map_err(|e| Error::io("output folder", &opts.out_dir, e))?;
    let image = opts.out_dir.join(format!("{}.img", board.name));
    let tmp = opts.out_dir.join(format!(".{}.img.tmp", board.name));
    assemble(
        board,
        &layout,
        &tmp,
        &[
            (Partition::Esp, &esp_img),
            (Partition::SlotA, &slot_file),
            (Partition::SlotB, &slot_file),
            (Partition::Data, &data_img),
        ],
    )?;
    fs::rename(&tmp, &image).map_err(|e| Error::io("disk image", &image, e))?;

    p.step(11, "sha256");
    let sha256 = tools::sha256(&image)?;
    let size_of = |f: &Path| fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    let ws = |b: u64| format!("{:.1} MiB", b as f64 / disk::MIB as f64);
    let slot_what = format!(
        "squashfs xz: vmlinuz {}, initrd.img {}, gatewayd {}",
        ws(size_of(&vmlinuz)),
        ws(size_of(&initrd)),
        ws(size_of(&gatewayd))
    );
    let report = BuildReport {
        board: board.name.clone(),
        image: image.clone(),
        work_dir: work.clone(),
        version,
        test_hooks: opts.test_hooks,
        partitions: vec![
            PartitionReport {
                partition: Partition::Esp,
                size: layout.size(Partition::Esp),
                content: esp_content,
                what: format!(
                    "FAT: /EFI/BOOT/{} {}, grubenv",
                    board.efi_binary,
                    ws(size_of(&efi))
                ),
            },
            PartitionReport {
                partition: Partition::SlotA,
                size: layout.size(Partition::SlotA),
                content: slot_bytes,
                what: slot_what,
            },
            PartitionReport {
                partition: Partition::SlotB,
                size: layout.size(Partition::SlotB),
                content: slot_bytes,
                what: "same as slotA".into(),
            },
            PartitionReport {
                partition: Partition::Data,
                size: layout.size(Partition::Data),
                content: ext4_used(&data_img).unwrap_or(0),
                what: "ext4 label data: /etc/rtc-edge/, /log/".into(),
            },
        ],
        image_bytes: size_of(&image),
        sha256,
        kernel: format!("{} {} ({kver})", kernel.name, kernel.version),
        grub: grub_version,
        gatewayd: format!("{gatewayd_version}, {} stripped", ws(size_of(&gatewayd))),
        edge_init: format!(
            "{} (workspace), {}",
            env!("CARGO_PKG_VERSION"),
            ws(size_of(&edge_init))
        ),
        modules: modules.iter().map(|m| m.line.clone()).collect(),
        elapsed: started.elapsed(),
    };
    write(&work.join("summary.txt"), format!("{report}\n").as_bytes())?;
    Ok(report)
}

/// `SOURCE_DATE_EPOCH` or [`DEFAULT_EPOCH`].
fn source_date_epoch() -> Result<u64, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| Error::Other(format!("SOURCE_DATE_EPOCH=\"{v}\" is not a number of seconds"))),
        Err(_) => Ok(DEFAULT_EPOCH),
    }
}

fn write(path: &Path, data: &[u8]) -> Result<(), Error> {
    fs::write(path, data).map_err(|e| Error::io("write", path, e))
}

/// `cargo build --profile appliance -p <package> --target <triple>` in the workspace; the binary's path.
fn cargo_build(opts: &BuildOptions, package: &str, target: &str, folder: &str) -> Result<PathBuf, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&opts.workspace)
        .env("CARGO_TARGET_DIR", &opts.target_dir)
        .args([
            "build",
            "--profile",
            "appliance",
            "-p",
            package,
            "--target",
            target,
        ]);
    tools::run(&format!("build {package} from {folder}"), &mut cmd).map_err(|e| match e {
        Error::Command {
            step,
            command,
            status,
            stderr,
        } => Error::Command {
            step: format!("{step} (fix the build there: the image needs it)"),
            command,
            status,
            stderr,
        },
        other => other,
    })?;
    let bin = opts.target_dir.join(target).join("appliance").join(package);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(Error::Other(format!(
            "cargo built {package} but {} is missing (is it a [[bin]] named {package}?)",
            bin.display()
        )))
    }
}

/// How to run some `gatewayd` on this host, and its `--version` line. The board's own binary when the
/// host has the board's arch, else under `qemu-<arch>` (qemu-user) when installed, else the host's
/// musl build of the same sources.
enum Checker {
    Native(PathBuf),
    Qemu(PathBuf, PathBuf),
}

impl Checker {
    fn command(&self) -> Command {
        match self {
            Self::Native(bin) => Command::new(bin),
            Self::Qemu(qemu, bin) => {
                let mut c = Command::new(qemu);
                c.arg(bin);
                c
            }
        }
    }
}

fn gatewayd_checker(board: &Board, opts: &BuildOptions, gatewayd: &Path) -> Result<(Checker, String), Error> {
    let host = Arch::host();
    let checker = if host == Some(board.arch) {
        Checker::Native(gatewayd.to_owned())
    } else if let Some(qemu) = tools::find(&format!("qemu-{}", board.arch)) {
        Checker::Qemu(qemu, gatewayd.to_owned())
    } else {
        let host = host.ok_or_else(|| {
            Error::Other("cannot run any gatewayd on this host to check the image's gatewayd.toml".into())
        })?;
        let triple = format!("{host}-unknown-linux-musl");
        Checker::Native(cargo_build(
            opts,
            "gatewayd",
            &triple,
            "gateway/gatewayd (host build for --check-config)",
        )?)
    };
    let version = tools::stdout("gatewayd --version", checker.command().arg("--version"))?;
    Ok((checker, version.trim().to_owned()))
}

/// One line of `/modules.list` and the file behind it.
#[derive(Debug, Clone)]
struct Module {
    src: PathBuf,
    file: String,
    line: String,
}

/// The board's modules with their dependencies first, each file once, in load order; built-ins skipped.
fn module_closure(board: &Board, root: &Path, kver: &str) -> Result<Vec<Module>, Error> {
    let mut out: Vec<Module> = Vec::new();
    for m in &board.kernel.modules {
        let text = tools::stdout(
            &format!("module closure of {m} (modprobe --show-depends)"),
            tools::cmd("modprobe")
                .args(["-C", "/dev/null", "-d"])
                .arg(root)
                .args(["-S", kver, "--show-depends", m]),
        )?;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("insmod") {
                continue; // "builtin <name>": in the kernel already
            }
            let Some(path) = words.next() else { continue };
            let src = PathBuf::from(path);
            let file = src
                .file_name()
                .and_then(|f| f.to_str())
                .ok_or_else(|| Error::Other(format!("modprobe printed an odd path: {line}")))?
                .to_owned();
            if out.iter().any(|o| o.file == file) {
                continue;
            }
            let name = file.split('.').next().unwrap_or(&file).to_owned();
            let line = match board.module_params(&name) {
                Some(params) => format!("/mods/{file} {params}"),
                None => format!("/mods/{file}"),
            };
            out.push(Module { src, file, line });
        }
    }
    Ok(out)
}

/// The initramfs (image/README.md "Initramfs"): `/init`, `/mods/*.ko`, `/modules.list`, plus the empty
/// mount points PID 1 uses and `/dev/console`; cpio newc, sorted, 0:0, mtime 0, `gzip -9n`.
fn write_initramfs(edge_init: &Path, modules: &[Module], work: &Path, out: &Path) -> Result<(), Error> {
    let step = "initramfs";
    let read = |p: &Path| fs::read(p).map_err(|e| Error::io(step, p, e));
    let mut c = Cpio::default();
    for d in ["dev", "proc", "sys", "mods", "slot", "esp", "data"] {
        c.dir(d, 0o755);
    }
    c.char_device("dev/console", 0o600, 5, 1);
    c.file("init", 0o755, read(edge_init)?);
    let mut list = String::new();
    for m in modules {
        c.file(&format!("mods/{}", m.file), 0o644, read(&m.src)?);
        list.push_str(&m.line);
        list.push('\n');
    }
    write(&work.join("modules.list"), list.as_bytes())?;
    c.file("modules.list", 0o644, list.into_bytes());
    let cpio = work.join("initrd.cpio");
    write(&cpio, &c.to_bytes())?;
    let gz = tools::run(step, tools::cmd("gzip").args(["-9n", "-c"]).arg(&cpio))?;
    let _ = fs::remove_file(&cpio);
    write(out, &gz.stdout)
}

/// GRUB's module folder for `arch` and its package version: the host's `/usr/lib/grub/<platform>` when
/// installed, else the Debian package unpacked from the cache.
fn grub_modules(arch: Arch, cache: &Cache<'_>) -> Result<(PathBuf, String), Error> {
    let host_dir = Path::new("/usr/lib/grub").join(arch.grub_platform());
    let tool = tools::stdout(
        "grub-mkimage --version",
        tools::cmd("grub-mkimage").arg("--version"),
    )?;
    let tool = tool.rsplit(") ").next().unwrap_or(&tool).trim().to_owned();
    if host_dir.join("moddep.lst").is_file() {
        let pkg = format!("{}:{}", arch.grub_package(), arch.deb_arch());
        let v = tools::stdout(
            "GRUB package version",
            tools::cmd("dpkg-query").args(["-W", "-f", "${Version}", &pkg]),
        )
        .unwrap_or_else(|_| "?".into());
        return Ok((
            host_dir,
            format!("{} {v} (host), grub-mkimage {tool}", arch.grub_package()),
        ));
    }
    let deb = cache.package(arch.grub_package(), arch)?;
    let dir = deb.root.join("usr/lib/grub").join(arch.grub_platform());
    if !dir.join("moddep.lst").is_file() {
        return Err(Error::Other(format!("{} has no GRUB modules", dir.display())));
    }
    Ok((
        dir,
        format!("{} {} (cache), grub-mkimage {tool}", deb.name, deb.version),
    ))
}

/// Sets the access and modification times of everything under `dir` (and `dir`) to `epoch`.
fn set_times(dir: &Path, epoch: u64) -> Result<(), Error> {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
    // Access times too: mke2fs -d copies them.
    let times = fs::FileTimes::new().set_accessed(t).set_modified(t);
    let touch = |p: &Path| {
        fs::File::open(p)
            .and_then(|f| f.set_times(times))
            .map_err(|e| Error::io("set timestamps", p, e))
    };
    for entry in fs::read_dir(dir).map_err(|e| Error::io("set timestamps", dir, e))? {
        let path = entry.map_err(|e| Error::io("set timestamps", dir, e))?.path();
        if path.is_dir() {
            set_times(&path, epoch)?;
        } else {
            touch(&path)?;
        }
    }
    touch(dir)
}

/// The ESP image: FAT with a volume id derived from the board, `/EFI/BOOT/*` and the board's
/// `esp_extra` files, timestamps from `epoch`. Returns the bytes of files on it.
fn make_esp(board: &Board, tree: &Path, img: &Path, size: u64, epoch: u64) -> Result<u64, Error> {
    let step = "ESP";
    let f = fs::File::create(img).map_err(|e| Error::io(step, img, e))?;
    f.set_len(size).map_err(|e| Error::io(step, img, e))?;
    drop(f);
    let (fat, per_cluster) = disk::fat_params(board.partitions.esp_mib);
    // --invariant fixes the label's timestamp (mkfs.fat 4.2 ignores SOURCE_DATE_EPOCH) but also the
    // volume id, which is then set to one derived from the board.
    tools::run(
        "ESP file system (mkfs.vfat)",
        tools::cmd("mkfs.vfat")
            .env("TZ", "UTC")
            .args([
                "--invariant",
                "-F",
                &fat.to_string(),
                "-s",
                &per_cluster.to_string(),
                "-n",
                "ESP",
            ])
            .arg(img),
    )?;
    let id = disk::derived_bytes(&board.name, "esp-fat");
    let at = if fat == 32 { 67 } else { 39 };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(img)
        .map_err(|e| Error::io(step, img, e))?;
    f.seek(SeekFrom::Start(at)).map_err(|e| Error::io(step, img, e))?;
    f.write_all(&id[..4]).map_err(|e| Error::io(step, img, e))?;
    drop(f);
    let mut sources = vec![tree.join("EFI")];
    if let Some(extra) = &board.esp_extra {
        let mut entries: Vec<PathBuf> = fs::read_dir(extra)
            .map_err(|e| Error::io("ESP extra files (esp_extra)", extra, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        let staged = tree.join("extra");
        for e in entries {
            let name = e.file_name().map(PathBuf::from).unwrap_or_default();
            copy_tree(&e, &staged.join(name))?;
        }
        set_times(&staged, epoch)?;
        let mut staged_entries: Vec<PathBuf> = fs::read_dir(&staged)
            .map_err(|e| Error::io(step, &staged, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        staged_entries.sort();
        sources.extend(staged_entries);
    }
    set_times(&tree.join("EFI"), epoch)?;
    let mut cmd = tools::cmd("mcopy");
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("TZ", "UTC")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-s", "-m", "-o", "-i"])
        .arg(img)
        .args(&sources)
        .arg("::/");
    tools::run("ESP content (mcopy)", &mut cmd)?;
    tree_bytes(tree)
}

/// Folders on a fresh data partition.
pub const DATA_DIRS: &[&str] = &["etc", "etc/rtc-edge", "log"];

/// The data partition: ext4 labelled `data` with [`DATA_DIRS`], UUID and hash seed derived from the
/// board, every timestamp `epoch`. The folders are made with `debugfs` rather than `mke2fs -d`, which
/// copies the source tree's ctime (the build's clock) into the inodes.
fn make_data(board: &Board, img: &Path, epoch: u64) -> Result<(), Error> {
    let fake_time = epoch.max(1).to_string();
    let _ = fs::remove_file(img);
    tools::run(
        "data partition (mke2fs)",
        tools::cmd("mke2fs")
            .env("E2FSPROGS_FAKE_TIME", &fake_time)
            .args(["-q", "-t", "ext4", "-L", "data", "-U"])
            .arg(disk::derived_guid(&board.name, "data-fs").to_lowercase())
            .arg("-E")
            .arg(format!(
                "root_owner=0:0,hash_seed={}",
                disk::derived_guid(&board.name, "data-hash").to_lowercase()
            ))
            .arg(img)
            .arg(format!("{}M", board.partitions.data_mib)),
    )?;
    let script: String = DATA_DIRS.iter().map(|d| format!("mkdir {d}\n")).collect();
    let out = tools::run_with_input(
        "data partition folders (debugfs)",
        tools::cmd("debugfs")
            .env("E2FSPROGS_FAKE_TIME", &fake_time)
            .args(["-w", "-f", "-"])
            .arg(img),
        Some(script.as_bytes()),
    )?;
    // debugfs reports a failed request on stderr and still exits 0.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .collect();
    if complaints.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "data partition folders (debugfs): {}",
            complaints.join("; ")
        )))
    }
}

/// Puts host files into the data partition of the disk image `image` (for tests and provisioning: the
/// site's `update.toml` and CA, an uploaded bundle): `files` are (path on the partition, host file);
/// missing folders are made. The partition is edited with `debugfs` outside the image, then written back.
pub fn put_data_files(image: &Path, files: &[(&str, &Path)], work: &Path) -> Result<(), Error> {
    let step = "data partition files (debugfs)";
    fs::create_dir_all(work).map_err(|e| Error::io(step, work, e))?;
    let img = work.join("data.edit.img");
    fs::write(&img, disk::read_partition(image, Partition::Data)?).map_err(|e| Error::io(step, &img, e))?;
    let mut script = String::new();
    let mut made: Vec<String> = Vec::new();
    for (dest, src) in files {
        let dest = dest.trim_start_matches('/');
        let (dir, name) = dest.rsplit_once('/').unwrap_or(("", dest));
        let mut at = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            at = if at.is_empty() {
                part.to_owned()
            } else {
                format!("{at}/{part}")
            };
            if !made.contains(&at) {
                // An existing folder makes debugfs complain "File exists": filtered below.
                script.push_str(&format!("mkdir /{at}\n"));
                made.push(at.clone());
            }
        }
        script.push_str(&format!(
            "rm /{dest}\ncd /{dir}\nwrite {} {name}\ncd /\n",
            src.display()
        ));
    }
    let out = tools::run_with_input(
        step,
        tools::cmd("debugfs").args(["-w", "-f", "-"]).arg(&img),
        Some(script.as_bytes()),
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.starts_with("debugfs ")
                && !l.contains("File exists")
                && !l.contains("directory already exists")
                && !l.contains("File not found by ext2_lookup")
        })
        .collect();
    if !complaints.is_empty() {
        return Err(Error::Other(format!("{step}: {}", complaints.join("; "))));
    }
    let bytes = fs::read(&img).map_err(|e| Error::io(step, &img, e))?;
    let _ = fs::remove_file(&img);
    disk::write_partition(image, Partition::Data, &bytes)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<(), Error> {
    if src.is_dir() {
        fs::create_dir_all(dst).map_err(|e| Error::io("copy", dst, e))?;
        for entry in fs::read_dir(src).map_err(|e| Error::io("copy", src, e))? {
            let path = entry.map_err(|e| Error::io("copy", src, e))?.path();
            let name = path.file_name().map(PathBuf::from).unwrap_or_default();
            copy_tree(&path, &dst.join(name))?;
        }
        Ok(())
    } else {
        if let Some(d) = dst.parent() {
            fs::create_dir_all(d).map_err(|e| Error::io("copy", d, e))?;
        }
        fs::copy(src, dst).map_err(|e| Error::io("copy", src, e))?;
        fs::set_permissions(dst, fs::Permissions::from_mode(0o644)).map_err(|e| Error::io("copy", dst, e))
    }
}

fn tree_bytes(dir: &Path) -> Result<u64, Error> {
    let mut sum = 0;
    for entry in fs::read_dir(dir).map_err(|e| Error::io("size", dir, e))? {
        let path = entry.map_err(|e| Error::io("size", dir, e))?.path();
        sum += if path.is_dir() {
            tree_bytes(&path)?
        } else {
            fs::metadata(&path)
                .map_err(|e| Error::io("size", &path, e))?
                .len()
        };
    }
    Ok(sum)
}

/// Used bytes of an ext4 image (dumpe2fs: (blocks - free) * block size); `None` if it cannot tell.
fn ext4_used(img: &Path) -> Option<u64> {
    let out = tools::cmd("dumpe2fs").arg("-h").arg(img).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let (count, free, size) = (
        field("Block count:")?,
        field("Free blocks:")?,
        field("Block size:")?,
    );
    Some((count - free) * size)
}

/// The disk image at `out`: a sparse file of the layout's size, the GPT written by `sfdisk`, and each
/// partition's content placed at its offset.
fn assemble(board: &Board, layout: &Layout, out: &Path, parts: &[(Partition, &Path)]) -> Result<(), Error> {
    let step = "disk image";
    let _ = fs::remove_file(out);
    let f = fs::File::create(out).map_err(|e| Error::io(step, out, e))?;
    f.set_len(layout.total_bytes())
        .map_err(|e| Error::io(step, out, e))?;
    drop(f);
    let script = layout.sfdisk_script(&board.name);
    tools::run_with_input(
        "partition table (sfdisk)",
        tools::cmd("sfdisk")
            .args(["--no-reread", "--no-tell-kernel", "-q", "--wipe", "never"])
            .arg(out),
        Some(script.as_bytes()),
    )?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(out)
        .map_err(|e| Error::io(step, out, e))?;
    for (p, src) in parts {
        let len = fs::metadata(src).map_err(|e| Error::io(step, src, e))?.len();
        if len > layout.size(*p) {
            return Err(Error::Other(format!(
                "{}: {p} content is {len} bytes, over its {} bytes",
                board.file.display(),
                layout.size(*p)
            )));
        }
        disk::place(&mut f, layout.offset(*p), src)?;
    }
    f.sync_all().map_err(|e| Error::io(step, out, e))
}
