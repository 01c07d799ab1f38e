//! Reading a TOML file so that every refusal names its line, column and key: the document is parsed once
//! with its spans, deserialised through `serde_path_to_error` for the key path, and checks made after
//! deserialisation are located with [`Document::problem_at`]. Shared by every file the product reads —
//! `gatewayd.toml` here, board files (`edge-image`), PID 1's `init.toml`/`network.toml` (`edge-init`) —
//! each of which wraps a [`Problem`] in its own error type with the file's name.
//!
//! Knows TOML and serde; knows nothing of any one file's schema.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// The path of dotted `keys` (`path(&["sip", "trunk", "transport"])`).
pub fn path(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::Key((*k).to_owned())).collect()
}

/// `sip.listen[0].port`.
pub fn format_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// What is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The dotted key path (`(top level)` for the document itself); `None` for a TOML syntax error.
    pub key: Option<String>,
    /// What the parser, serde or the check said.
    pub message: String,
}

impl Problem {
    /// The refusal of the file `file` (a path, or another name for the text).
    pub fn in_file(self, file: &str) -> FileError {
        let file = file.to_owned();
        match self.key {
            None => FileError::Syntax {
                file,
                line: self.line,
                column: self.column,
                message: self.message,
            },
            Some(key) => FileError::Invalid {
                file,
                line: self.line,
                column: self.column,
                key,
                message: self.message,
            },
        }
    }
}

/// A refused file: the message names the file, line, column and (for a wrong key or value) the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Not TOML.
    #[error("{file}:{line}:{column}: TOML syntax error: {message}")]
    Syntax {
        /// Path as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The parser's words.
        message: String,
    },
    /// TOML, but a key or value is wrong.
    #[error("{file}:{line}:{column}: key `{key}`: {message}")]
    Invalid {
        /// Path as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// Dotted key path, e.g. `sip.listen[0].port`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl FileError {
    /// The offending key path, when the error is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            Self::Syntax { .. } => None,
        }
    }

    /// The 1-based line.
    pub fn line(&self) -> usize {
        match self {
            Self::Syntax { line, .. } | Self::Invalid { line, .. } => *line,
        }
    }
}

/// A parsed document with its spans.
#[derive(Debug)]
pub struct Document<'a> {
    text: &'a str,
    root: Spanned<DeTable<'a>>,
}

impl<'a> Document<'a> {
    /// Parses `text` as TOML.
    pub fn parse(text: &'a str) -> Result<Self, Problem> {
        let root = DeTable::parse(text).map_err(|e| {
            let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
            Problem {
                line,
                column,
                key: None,
                message: e.message().trim().to_owned(),
            }
        })?;
        Ok(Self { text, root })
    }

    /// Deserialises the document; a refusal names the key (the unknown or missing one itself, even when
    /// serde's path stops at its table).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        let deserializer = toml::de::Deserializer::from(self.root.clone());
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path: Vec<Seg> = e
                .path()
                .iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => None,
                })
                .collect();
            let inner = e.into_inner();
            let span = inner.span().unwrap_or_else(|| locate(&self.root, &path));
            let (line, column) = line_col(self.text, span.start);
            let message = inner.message().trim().to_owned();
            let key = match named_key(&message) {
                Some(k) if path.last() != Some(&Seg::Key(k.to_owned())) => {
                    let mut p = path;
                    p.push(Seg::Key(k.to_owned()));
                    format_path(&p)
                }
                _ if path.is_empty() => "(top level)".to_owned(),
                _ => format_path(&path),
            };
            Problem {
                line,
                column,
                key: Some(key),
                message,
            }
        })
    }

    /// A problem a later check found with the value at `path` (located at it, or at the deepest
    /// ancestor the document has).
    pub fn problem_at(&self, path: &[Seg], message: String) -> Problem {
        let (line, column) = line_col(self.text, locate(&self.root, path).start);
        Problem {
            line,
            column,
            key: Some(format_path(path)),
            message,
        }
    }
}

/// The key named by serde's "unknown field `x`" or "missing field `x`".
fn named_key(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next()
}

/// 1-based (line, column) of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    // Walk back to a char boundary so slicing cannot panic on a span inside a multi-byte character.
    let at = (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Finds the span of the value at `path` in the parsed document, or of the deepest ancestor present.
fn locate(root: &Spanned<DeTable<'_>>, path: &[Seg]) -> Range<usize> {
    let mut span = root.span();
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => table.and_then(|t| {
                t.iter().find(|(key, _)| key.get_ref() == k).map(|(key, value)| {
                    // For a table, point at its header/key rather than its whole body.
                    if matches!(value.get_ref(), DeValue::Table(_)) {
                        (key.span(), value)
                    } else {
                        (value.span(), value)
                    }
                })
            }),
            Seg::Index(i) => array.and_then(|a| a.get(*i)).map(|v| (v.span(), v)),
        };
        let Some((found_span, value)) = next else { break };
        span = found_span;
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a.as_ref()),
            _ => {}
        }
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "read only through Debug in the tests")]
    struct File {
        net: Net,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "read only through Debug in the tests")]
    struct Net {
        port: u16,
        names: Vec<String>,
    }

    #[test]
    fn syntax_errors_have_no_key() {
        let p = Document::parse("[net\nport = 1\n").unwrap_err();
        assert_eq!((p.line, p.key), (1, None));
    }

    #[test]
    fn unknown_missing_and_wrong_keys_are_named_where_they_stand() {
        let doc = Document::parse("[net]\nport = 1\nnames = []\nprot = 2\n").unwrap();
        let p = doc.deserialize::<File>().unwrap_err();
        assert_eq!((p.line, p.key.as_deref()), (4, Some("net.prot")), "{p:?}");
        let doc = Document::parse("[net]\nnames = []\n").unwrap();
        let p = doc.deserialize::<File>().unwrap_err();
        assert_eq!(p.key.as_deref(), Some("net.port"), "{p:?}");
        let doc = Document::parse("[net]\nport = 1\nnames = [\"a\", 7]\n").unwrap();
        let p = doc.deserialize::<File>().unwrap_err();
        assert_eq!((p.line, p.key.as_deref()), (3, Some("net.names[1]")), "{p:?}");
    }

    #[test]
    fn later_checks_are_located_at_the_value_or_its_nearest_ancestor() {
        let doc = Document::parse("# c\n[net]\nport = 1\nnames = [\"a\", \"b\"]\n").unwrap();
        let p = doc.problem_at(
            &[Seg::Key("net".into()), Seg::Key("names".into()), Seg::Index(1)],
            "no".into(),
        );
        assert_eq!(
            (p.line, p.column, p.key.as_deref()),
            (4, 15, Some("net.names[1]"))
        );
        let p = doc.problem_at(&path(&["net", "absent"]), "no".into());
        assert_eq!((p.line, p.key.as_deref()), (2, Some("net.absent")));
    }

    #[test]
    fn line_col_is_char_based_and_total() {
        assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
        assert_eq!(line_col("ab\ncé\nx", 5), (2, 2)); // inside 'é': walks back to its start
        assert_eq!(line_col("", 10), (1, 1));
    }
}
