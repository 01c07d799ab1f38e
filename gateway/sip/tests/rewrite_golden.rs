//! Golden cases for the header manipulation rules ([`edge_sip::rewrite`]): for each
//! `tests/golden/rewrite/<case>.in.sip`, the rules in `<case>.rules` are applied and the result's
//! `Message::encode()` is compared byte for byte with `<case>.out.sip`. `UPDATE_GOLDEN=1 cargo test -p
//! edge-sip --test rewrite_golden` rewrites the `.out.sip` files instead (review the diff before
//! committing).
//!
//! # The `.rules` format (for these tests only; the gateway's configuration has its own)
//! One rule per line, in order; blank lines and lines starting with `#` are ignored. Fields are
//! separated by single spaces; a pattern cannot contain a space (write `\s` or `\x20`); a value or a
//! replacement is the rest of the line and may contain spaces.
//! ```text
//! header <Name> add <value>
//! header <Name> remove
//! header <Name> set <value>
//! header <Name> rewrite <pattern> <replacement>
//! ruri-user|from-user|to-user set <user>
//! ruri-user|from-user|to-user rewrite <pattern> <replacement>
//! expect-refused <n>          (default 0: how many rules apply() must report as refused)
//! ```
// Helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use edge_sip::Message;
use edge_sip::rewrite::{Action, HeaderField, HeaderValue, Rule, Target, apply};
use regex::Regex;

fn dir() -> PathBuf {
    // The runtime value first: cargo sets it for the test process. The compile-time one is wrong when
    // a target dir shared between checkouts hands this binary to another clone.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/golden/rewrite")
}

/// The rules of a `.rules` file and how many refusals it expects.
fn parse_rules(path: &Path) -> (Vec<Rule>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rules = Vec::new();
    let mut expect_refused = 0;
    for (n, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), n + 1);
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (target, rest) = match word {
            "expect-refused" => {
                expect_refused = rest.trim().parse().unwrap_or_else(|e| panic!("{}: {e}", at()));
                continue;
            }
            "header" => {
                let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                let field = HeaderField::new(name).unwrap_or_else(|e| panic!("{}: {e}", at()));
                (Target::Header(field), rest)
            }
            "ruri-user" => (Target::RequestUser, rest),
            "from-user" => (Target::FromUser, rest),
            "to-user" => (Target::ToUser, rest),
            other => panic!("{}: unknown target {other:?}", at()),
        };
        let (verb, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        let value = |s: &str| HeaderValue::new(s).unwrap_or_else(|e| panic!("{}: {e}", at()));
        let action = match verb {
            "add" => Action::Add(value(arg)),
            "remove" => Action::Remove,
            "set" => Action::Set(value(arg)),
            "rewrite" => {
                let (pattern, replacement) = arg.split_once(' ').unwrap_or((arg, ""));
                Action::Rewrite {
                    pattern: Regex::new(pattern).unwrap_or_else(|e| panic!("{}: {e}", at())),
                    replacement: value(replacement),
                }
            }
            other => panic!("{}: unknown action {other:?}", at()),
        };
        rules.push(Rule::new(target, action).unwrap_or_else(|e| panic!("{}: {e}", at())));
    }
    (rules, expect_refused)
}

/// Runs one case; `Err` describes a difference from the golden output.
fn run_case(name: &str) -> Result<(), String> {
    let dir = dir();
    let input = std::fs::read(dir.join(format!("{name}.in.sip"))).unwrap();
    let (rules, expect_refused) = parse_rules(&dir.join(format!("{name}.rules")));
    let mut message = Message::parse(&input).unwrap_or_else(|e| panic!("{name}.in.sip: {e}"));
    message
        .frame_datagram_body()
        .unwrap_or_else(|e| panic!("{name}.in.sip: {e}"));
    let applied = apply(&rules, &mut message);
    if applied.refused.len() != expect_refused {
        return Err(format!(
            "{name}: expected {expect_refused} refused rule(s), got {:?}",
            applied.refused
        ));
    }
    let actual = message.encode();
    // The result must still be a message the gateway itself can read.
    Message::parse(&actual).map_err(|e| format!("{name}: the output does not parse: {e}"))?;

    let out = dir.join(format!("{name}.out.sip"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&out, &actual).unwrap();
        return Ok(());
    }
    let expected = std::fs::read(&out)
        .map_err(|e| format!("{name}.out.sip: {e} (run with UPDATE_GOLDEN=1 to create it)",))?;
    if expected != actual {
        return Err(format!(
            "{name}.out.sip differs (UPDATE_GOLDEN=1 rewrites it after review)\n--- expected\n{}\n--- actual\n{}",
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(&actual)
        ));
    }
    Ok(())
}

/// Every case in the directory, sorted.
fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".in.sip").map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[test]
fn golden_cases() {
    let names = cases();
    for required in [
        "e164_request_uri",
        "strip_privacy_headers",
        "tenant_header",
        "from_user_captures",
        "set_to_user",
        "order_matters",
    ] {
        assert!(names.iter().any(|n| n == required), "missing case {required}");
    }
    let failures: Vec<String> = names.iter().filter_map(|n| run_case(n).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
