//! Debian packages the image needs (the kernel; GRUB's EFI modules when the host has none for the
//! board's architecture): resolved with apt-cache, fetched once with `apt-get download` into the cache,
//! unpacked once with `dpkg-deb -x` (and `depmod` for kernels), reused offline afterwards.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::board::Arch;
use crate::tools;

/// A fetched and unpacked package.
#[derive(Debug, Clone)]
pub(crate) struct Deb {
    /// Package name (`linux-image-6.1.0-56-amd64`).
    pub(crate) name: String,
    /// Its version (`6.1.192-2`).
    pub(crate) version: String,
    /// The unpacked tree.
    pub(crate) root: PathBuf,
}

/// The package cache: `<dir>/*.deb` and `<dir>/x/<deb file stem>/` unpacked.
pub(crate) struct Cache<'a> {
    pub(crate) dir: &'a Path,
    /// Progress lines go here.
    pub(crate) log: &'a dyn Fn(&str),
}

impl std::fmt::Debug for Cache<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Cache<'_> {
    /// The kernel package of a board (a metapackage is resolved to its concrete package), unpacked,
    /// with `modules.dep` generated.
    pub(crate) fn kernel(&self, package: &str, arch: Arch) -> Result<Deb, Error> {
        let deb_arch = arch.deb_arch();
        let concrete = is_concrete_kernel(package, deb_arch);
        let apt_ready = self.apt_knows(arch)?;
        let name = if concrete {
            Some(package.to_owned())
        } else if apt_ready {
            Some(resolve_meta(package, deb_arch)?)
        } else {
            None
        };
        let deb = match name {
            Some(n) => self.fetch(&n, arch, apt_ready)?,
            None => {
                let file = self
                    .cached(deb_arch, |n| is_concrete_kernel(n, deb_arch))
                    .ok_or_else(|| self.need_arch(arch))?;
                (self.log)(&format!(
                    "apt has no {deb_arch} packages configured: using the cached {}",
                    file.display()
                ));
                file
            }
        };
        let unpacked = self.unpack(&deb)?;
        let kver = kernel_version(&unpacked.root)?;
        let moddir = unpacked.root.join("lib/modules").join(&kver);
        if !moddir.join("modules.dep").is_file() {
            tools::run(
                "depmod (kernel module dependencies)",
                tools::cmd("depmod").arg("-b").arg(&unpacked.root).arg(&kver),
            )?;
        }
        Ok(unpacked)
    }

    /// A concrete package (e.g. `grub-efi-arm64-bin`) for `arch`, unpacked.
    pub(crate) fn package(&self, name: &str, arch: Arch) -> Result<Deb, Error> {
        let apt_ready = self.apt_knows(arch)?;
        let file = if apt_ready {
            self.fetch(name, arch, true)?
        } else {
            let file = self
                .cached(arch.deb_arch(), |n| n == name)
                .ok_or_else(|| self.need_arch(arch))?;
            (self.log)(&format!(
                "apt has no {} packages configured: using the cached {}",
                arch.deb_arch(),
                file.display()
            ));
            file
        };
        self.unpack(&file)
    }

    /// Whether apt can resolve packages of `arch`. A foreign architecture apt does not know yet is
    /// added (`dpkg --add-architecture` + `apt-get update`) when we run as root and nothing usable is
    /// cached; it is the one root-only step, and it is announced.
    fn apt_knows(&self, arch: Arch) -> Result<bool, Error> {
        let deb_arch = arch.deb_arch();
        let native = tools::stdout(
            "dpkg architecture",
            tools::cmd("dpkg").arg("--print-architecture"),
        )?;
        if native.trim() == deb_arch {
            return Ok(true);
        }
        let foreign = tools::stdout(
            "dpkg architectures",
            tools::cmd("dpkg").arg("--print-foreign-architectures"),
        )?;
        if foreign.split_whitespace().any(|a| a == deb_arch) {
            return Ok(true);
        }
        if self.cached(deb_arch, |_| true).is_some() {
            return Ok(false);
        }
        if !is_root() {
            return Err(self.need_arch(arch));
        }
        (self.log)(&format!(
            "apt does not know the {deb_arch} architecture yet: running `dpkg --add-architecture {deb_arch}` and \
             `apt-get update` (needed once to download {deb_arch} packages; root only)"
        ));
        tools::run(
            "add dpkg architecture",
            tools::cmd("dpkg").args(["--add-architecture", deb_arch]),
        )?;
        tools::run("apt-get update", tools::cmd("apt-get").args(["update", "-qq"]))?;
        Ok(true)
    }

    fn need_arch(&self, arch: Arch) -> Error {
        let a = arch.deb_arch();
        Error::Other(format!(
            "{a} packages are needed and apt does not know the {a} architecture; as root run once: \
             dpkg --add-architecture {a} && apt-get update (or put the .deb files into {})",
            self.dir.display()
        ))
    }

    /// The cached .deb of `name` at apt's candidate version, downloaded when missing.
    fn fetch(&self, name: &str, arch: Arch, apt_ready: bool) -> Result<PathBuf, Error> {
        let deb_arch = arch.deb_arch();
        let qualified = format!("{name}:{deb_arch}");
        let version = if apt_ready {
            candidate_version(&qualified).ok()
        } else {
            None
        };
        let Some(version) = version else {
            // apt cannot say (no lists, offline): use what the cache has.
            return self.cached(deb_arch, |n| n == name).ok_or_else(|| {
                Error::Other(format!("apt-cache knows no {qualified} and the cache has none"))
            });
        };
        let file = self
            .dir
            .join(format!("{name}_{}_{deb_arch}.deb", version.replace(':', "%3a")));
        if file.is_file() {
            return Ok(file);
        }
        std::fs::create_dir_all(self.dir).map_err(|e| Error::io("package cache", self.dir, e))?;
        (self.log)(&format!(
            "downloading {qualified} {version} into {}",
            self.dir.display()
        ));
        tools::run(
            "apt-get download",
            tools::cmd("apt-get")
                .arg("download")
                .arg(&qualified)
                .current_dir(self.dir),
        )?;
        if file.is_file() {
            Ok(file)
        } else {
            Err(Error::Other(format!(
                "apt-get download {qualified} did not leave {}",
                file.display()
            )))
        }
    }

    /// The newest cached .deb of `deb_arch` whose package name passes `accept`.
    fn cached(&self, deb_arch: &str, accept: impl Fn(&str) -> bool) -> Option<PathBuf> {
        let suffix = format!("_{deb_arch}.deb");
        let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(self.dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let f = p.file_name()?.to_str()?.to_owned();
                let stem = f.strip_suffix(&suffix)?;
                let (name, _) = stem.split_once('_')?;
                accept(name).then(|| (stem.to_owned(), p.clone()))
            })
            .collect();
        found.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        found.pop().map(|(_, p)| p)
    }

    /// Unpacks `deb` once into `<cache>/x/<stem>` (atomically: a half-unpacked tree is never used).
    fn unpack(&self, deb: &Path) -> Result<Deb, Error> {
        let stem = deb
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| Error::Other(format!("odd package file name {}", deb.display())))?;
        let mut parts = stem.splitn(3, '_');
        let name = parts.next().unwrap_or_default().to_owned();
        let version = parts.next().unwrap_or_default().replace("%3a", ":");
        let root = self.dir.join("x").join(stem);
        if !root.is_dir() {
            (self.log)(&format!("unpacking {}", deb.display()));
            let tmp = self.dir.join("x").join(format!(".{stem}.{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(|e| Error::io("unpack package", &tmp, e))?;
            tools::run(
                "unpack package",
                tools::cmd("dpkg-deb").arg("-x").arg(deb).arg(&tmp),
            )?;
            // depmod writes into the tree: do it before the tree becomes visible.
            if let Ok(kver) = kernel_version(&tmp) {
                tools::run(
                    "depmod (kernel module dependencies)",
                    tools::cmd("depmod").arg("-b").arg(&tmp).arg(&kver),
                )?;
            }
            if let Err(e) = std::fs::rename(&tmp, &root) {
                // Another build unpacked it meanwhile: use theirs.
                let _ = std::fs::remove_dir_all(&tmp);
                if !root.is_dir() {
                    return Err(Error::io("unpack package", &root, e));
                }
            }
        }
        Ok(Deb { name, version, root })
    }
}

/// The kernel release inside an unpacked kernel package (`6.1.0-56-amd64`: the one folder of
/// `lib/modules`).
pub(crate) fn kernel_version(root: &Path) -> Result<String, Error> {
    let dir = root.join("lib/modules");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io("find kernel version", &dir, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(Error::Other(format!(
            "{}: expected exactly one kernel release, found {found:?}",
            dir.display()
        ))),
    }
}

/// `linux-image-6.1.0-56-amd64` (concrete, generic flavour) rather than `linux-image-amd64` (meta).
fn is_concrete_kernel(name: &str, deb_arch: &str) -> bool {
    name.strip_prefix("linux-image-")
        .and_then(|r| r.strip_suffix(&format!("-{deb_arch}")))
        .is_some_and(|mid| {
            mid.starts_with(|c: char| c.is_ascii_digit())
                && !mid.ends_with("-cloud")
                && !mid.ends_with("-rt")
                && !mid.contains("-dbg")
        })
}

/// The concrete kernel package a metapackage depends on.
fn resolve_meta(meta: &str, deb_arch: &str) -> Result<String, Error> {
    let out = tools::stdout(
        "resolve kernel package",
        tools::cmd("apt-cache").args(["depends", &format!("{meta}:{deb_arch}")]),
    )?;
    parse_depends(&out, deb_arch).ok_or_else(|| {
        Error::Other(format!(
            "apt-cache depends {meta}:{deb_arch} names no linux-image package:\n{out}"
        ))
    })
}

fn parse_depends(out: &str, deb_arch: &str) -> Option<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|d| d.split(':').next().unwrap_or(d).trim().trim_matches(['<', '>']))
        .find(|d| is_concrete_kernel(d, deb_arch))
        .map(str::to_owned)
}

/// apt's candidate version of `qualified` (`name:arch`).
fn candidate_version(qualified: &str) -> Result<String, Error> {
    let out = tools::stdout(
        "package version",
        tools::cmd("apt-cache").args(["show", "--no-all-versions", qualified]),
    )?;
    out.lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| Error::Other(format!("apt-cache show {qualified} gave no version")))
}

/// Compares names with digit runs as numbers (`6.1.0-9` < `6.1.0-56`).
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let strip = |d: &[u8]| {
                    let z = d.iter().take_while(|&&c| c == b'0').count();
                    d[z..].to_vec()
                };
                let (sa, sb) = (strip(da), strip(db));
                let ord = sa.len().cmp(&sb.len()).then_with(|| sa.cmp(&sb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// Whether this process runs as root (`id -u`; no libc call needed for one answer).
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concrete_kernels_are_told_from_meta_and_other_flavours() {
        assert!(is_concrete_kernel("linux-image-6.1.0-56-amd64", "amd64"));
        assert!(!is_concrete_kernel("linux-image-amd64", "amd64"));
        assert!(!is_concrete_kernel("linux-image-6.1.0-56-cloud-amd64", "amd64"));
        assert!(!is_concrete_kernel("linux-image-6.1.0-56-rt-arm64", "arm64"));
        assert!(!is_concrete_kernel("linux-image-6.1.0-56-arm64", "amd64"));
    }

    #[test]
    fn depends_output_resolves_to_the_concrete_package() {
        let out = "linux-image-arm64:arm64\n  Depends: linux-image-6.1.0-56-arm64:arm64\n";
        assert_eq!(
            parse_depends(out, "arm64").as_deref(),
            Some("linux-image-6.1.0-56-arm64")
        );
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_depends(out, "amd64").as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(parse_depends("x\n  Depends: foo\n", "amd64"), None);
    }

    #[test]
    fn natural_order_compares_numbers() {
        assert_eq!(
            natural_cmp("linux-image-6.1.0-9-amd64", "linux-image-6.1.0-56-amd64"),
            Ordering::Less
        );
        assert_eq!(natural_cmp("a10", "a010"), Ordering::Equal);
        assert_eq!(natural_cmp("b", "a"), Ordering::Greater);
    }
}
