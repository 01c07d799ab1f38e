//! Host tools: finding them (also in /usr/sbin and /sbin, which a normal user's PATH often lacks),
//! checking they are all there before a build, and running them with errors that name the step, the
//! command and its stderr.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::Error;

/// The tools an image build runs, each with the Debian package providing it.
pub(crate) const BUILD_TOOLS: &[(&str, &str)] = &[
    ("apt-cache", "apt"),
    ("apt-get", "apt"),
    ("debugfs", "e2fsprogs"),
    ("depmod", "kmod"),
    ("dpkg", "dpkg"),
    ("dpkg-deb", "dpkg"),
    ("grub-mkimage", "grub-common"),
    ("gzip", "gzip"),
    ("mcopy", "mtools"),
    ("mke2fs", "e2fsprogs"),
    ("mkfs.vfat", "dosfstools"),
    ("mksquashfs", "squashfs-tools"),
    ("modprobe", "kmod"),
    ("sfdisk", "fdisk"),
    ("sha256sum", "coreutils"),
];

/// The tools editing an existing image needs (grubenv, slot extraction).
pub(crate) const EDIT_TOOLS: &[(&str, &str)] = &[("mcopy", "mtools"), ("unsquashfs", "squashfs-tools")];

/// Full path of `tool`: PATH first, then /usr/sbin and /sbin.
pub(crate) fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Errors naming every missing tool of `tools` with its package.
pub(crate) fn check(tools: &[(&str, &str)]) -> Result<(), Error> {
    let missing: Vec<(String, String)> = tools
        .iter()
        .filter(|(t, _)| find(t).is_none())
        .map(|(t, p)| ((*t).to_owned(), (*p).to_owned()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingTools(missing))
    }
}

/// A command for `tool`, resolved through [`find`] (falls back to the bare name).
pub(crate) fn cmd(tool: &str) -> Command {
    Command::new(find(tool).unwrap_or_else(|| PathBuf::from(tool)))
}

/// The command line as text, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let quote = |s: &OsStr| {
        let s = s.to_string_lossy();
        if s.is_empty() || s.contains([' ', '"', '\'']) {
            format!("'{s}'")
        } else {
            s.into_owned()
        }
    };
    let prog = Path::new(cmd.get_program())
        .file_name()
        .map_or_else(|| quote(cmd.get_program()), quote);
    std::iter::once(prog)
        .chain(cmd.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion, capturing its output; a spawn failure or a non-zero exit is an error
/// naming `step`, the command and its stderr.
pub(crate) fn run(step: &str, cmd: &mut Command) -> Result<Output, Error> {
    run_with_input(step, cmd, None)
}

/// [`run`], writing `input` to the command's stdin.
pub(crate) fn run_with_input(step: &str, cmd: &mut Command, input: Option<&[u8]>) -> Result<Output, Error> {
    let command = describe(cmd);
    let fail = |status: String, stderr: String| Error::Command {
        step: step.to_owned(),
        command: command.clone(),
        status,
        stderr,
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}"), String::new()))?;
    if let Some(data) = input {
        let mut stdin = child.stdin.take().expect("stdin was requested as a pipe above");
        // A command that exits early closes the pipe; its status and stderr tell why.
        let _ = stdin.write_all(data);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("cannot wait: {e}"), String::new()))?;
    if out.status.success() {
        Ok(out)
    } else {
        let status = out
            .status
            .code()
            .map_or_else(|| out.status.to_string(), |c| format!("exit status {c}"));
        Err(fail(status, String::from_utf8_lossy(&out.stderr).into_owned()))
    }
}

/// stdout of a successful [`run`] as text.
pub(crate) fn stdout(step: &str, cmd: &mut Command) -> Result<String, Error> {
    let out = run(step, cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// sha256 of a file, as lower-case hex (coreutils `sha256sum`).
pub(crate) fn sha256(path: &Path) -> Result<String, Error> {
    let out = stdout("sha256", cmd("sha256sum").arg(path))?;
    out.split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| Error::Other(format!("sha256sum printed nothing for {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_named_with_their_package() {
        let e = check(&[("sh", "dash"), ("no-such-tool-edge-image", "edge-pkg")]).expect_err("missing");
        let msg = e.to_string();
        assert!(msg.contains("no-such-tool-edge-image"), "{msg}");
        assert!(msg.contains("apt-get install edge-pkg"), "{msg}");
        assert!(!msg.contains("dash"), "{msg}");
    }

    #[test]
    fn failed_command_reports_step_command_and_stderr() {
        let e = run(
            "probe step",
            Command::new("sh").args(["-c", "echo oops >&2; exit 3"]),
        )
        .expect_err("fails");
        let msg = e.to_string();
        assert!(
            msg.starts_with("probe step: `sh -c 'echo oops >&2; exit 3'` failed (exit status 3)"),
            "{msg}"
        );
        assert!(msg.contains("oops"), "{msg}");
    }

    #[test]
    fn input_reaches_stdin() {
        let out = run_with_input("cat", &mut Command::new("cat"), Some(b"hello")).unwrap();
        assert_eq!(out.stdout, b"hello");
    }
}
