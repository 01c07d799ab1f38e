//! Personal data in logs.
//!
//! Phone numbers, SIP URIs and display names identify people. Everything that logs such a value wraps it
//! in [`Pii`], which prints a redacted form unless the operator turned `log.show_pii` on. Redaction keeps
//! enough to correlate lines (scheme, first and last two characters of the user part, the domain's
//! top-level label) without revealing the value.

use std::fmt;

/// A value that identifies a person, shown redacted unless `show` is set.
#[derive(Clone, Copy)]
pub struct Pii<'a> {
    value: &'a str,
    show: bool,
}

impl<'a> Pii<'a> {
    /// Wraps `value`; `show` comes from the configuration (`log.show_pii`).
    pub fn new(value: &'a str, show: bool) -> Self {
        Self { value, show }
    }
}

impl fmt::Debug for Pii<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Pii<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.show {
            return f.write_str(self.value);
        }
        // Find the URI inside a name-addr and drop the display name.
        let v = self.value;
        let uri = match (v.find('<'), v.rfind('>')) {
            (Some(a), Some(b)) if a < b => v.get(a + 1..b).unwrap_or(v),
            _ => v.split(';').next().unwrap_or(v),
        };
        let (scheme, rest) = match uri.split_once(':') {
            Some((s, r)) if matches!(s, "sip" | "sips" | "tel") => (Some(s), r),
            _ => (None, uri),
        };
        let (user, host) = match rest.split_once('@') {
            Some((u, h)) => (u, Some(h)),
            None if scheme == Some("tel") || scheme.is_none() => (rest, None),
            None => ("", Some(rest)),
        };
        if let Some(s) = scheme {
            write!(f, "{s}:")?;
        }
        let chars: Vec<char> = user.chars().collect();
        if chars.len() > 6 {
            let head: String = chars.iter().take(2).collect();
            let tail: String = chars.iter().skip(chars.len() - 2).collect();
            write!(f, "{head}…{tail}")?;
        } else if !chars.is_empty() {
            f.write_str("…")?;
        }
        if let Some(h) = host {
            let h = h.split([';', '?', '>']).next().unwrap_or_default();
            let h = h.split(':').next().unwrap_or(h);
            let tld = h
                .rsplit('.')
                .next()
                .filter(|t| t.chars().all(|c| c.is_ascii_alphabetic()) && *t != h);
            match tld {
                Some(t) => write!(f, "@….{t}")?,
                None => f.write_str("@…")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_uris_numbers_and_names() {
        let r = |s| Pii::new(s, false).to_string();
        assert_eq!(
            r("\"Alice Liddell\" <sip:+441632960123@pbx.example.com;user=phone>;tag=1"),
            "sip:+4…23@….com"
        );
        assert_eq!(r("sip:bob@192.0.2.4:5060"), "sip:…@…");
        assert_eq!(r("tel:+15550100123"), "tel:+1…23");
        assert_eq!(r("<sips:alice.smith@example.org>"), "sips:al…th@….org");
        assert_eq!(r("sip:gw.example.net"), "sip:@….net");
        assert_eq!(r("0163296012345"), "01…45");
        assert_eq!(
            Pii::new("sip:bob@192.0.2.4", true).to_string(),
            "sip:bob@192.0.2.4"
        );
    }
}
