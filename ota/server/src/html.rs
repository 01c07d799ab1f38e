//! The fleet page: one self-contained HTML document (no scripts, no external assets). Every value is
//! escaped: device ids, states and reasons come from devices.

use std::fmt::Write;

use crate::api::FleetView;

/// `text` escaped for HTML text and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:2em}\
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#eee}\
.paused{color:#a00;font-weight:bold}.bad{color:#a00}small{color:#555}";

/// The page for `fleet`, as of `now` (server clock, Unix seconds).
pub fn fleet_page(fleet: &FleetView, now: u64) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"30\"><title>RTC Edge fleet</title>\
         <style>{STYLE}</style></head><body>\n<h1>RTC Edge fleet</h1>\n\
         <h2>Releases</h2>\n<table><tr><th>Board</th><th>Channel</th><th>Version</th><th>Rollout</th>\
         <th>Status</th><th>Offered</th><th>Installed</th><th>Failures</th><th>Size</th><th>Notes</th></tr>\n"
    );
    for r in &fleet.releases {
        let status = if r.paused {
            format!(
                "<span class=\"paused\">paused</span> <small>{}</small>",
                escape(r.paused_reason.as_deref().unwrap_or(""))
            )
        } else {
            "active".to_owned()
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} %</td><td>{status}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.board),
            escape(&r.channel),
            escape(&r.version.to_string()),
            r.percent,
            r.offered,
            r.installed,
            r.failures,
            r.size,
            escape(r.notes.as_deref().unwrap_or(""))
        );
    }
    let _ = write!(
        h,
        "</table>\n<h2>Devices</h2>\n<table><tr><th>Device</th><th>Board</th><th>Channel</th>\
         <th>Version</th><th>Slot</th><th>State</th><th>Progress</th><th>Last seen</th><th>Results</th></tr>\n"
    );
    for d in &fleet.devices {
        let progress = d.progress.as_ref().map_or(String::new(), |p| {
            format!("{}: {} / {} bytes", escape(&p.version), p.done, p.total)
        });
        let mut results = String::new();
        for r in d.results.iter().rev() {
            let outcome = serde_json::to_value(r.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let class = if r.outcome.is_failure() {
                " class=\"bad\""
            } else {
                ""
            };
            let _ = write!(
                results,
                "<div{class}>{} {}{}{}</div>",
                escape(&r.version),
                escape(&outcome),
                if r.reason.is_empty() { "" } else { ": " },
                escape(&r.reason)
            );
        }
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{progress}</td>\
             <td>{} s ago</td><td>{results}</td></tr>",
            escape(&d.device),
            escape(&d.board),
            escape(&d.channel),
            escape(&d.version),
            escape(&d.slot),
            escape(&d.state),
            now.saturating_sub(d.last_seen)
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DeviceView, InstallResult, Outcome};

    #[test]
    fn every_peer_value_is_escaped() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let evil = "<script>alert(1)</script>";
        let fleet = FleetView {
            devices: vec![DeviceView {
                device: evil.into(),
                board: evil.into(),
                channel: evil.into(),
                version: evil.into(),
                slot: evil.into(),
                state: evil.into(),
                progress: None,
                last_seen: 90,
                results: vec![InstallResult {
                    id: "r".into(),
                    version: evil.into(),
                    outcome: Outcome::RolledBack,
                    reason: evil.into(),
                    log: evil.into(),
                    at: 0,
                }],
            }],
            releases: vec![],
        };
        let page = fleet_page(&fleet, 100);
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("rolled-back"));
        assert!(page.contains("10 s ago"));
    }
}
