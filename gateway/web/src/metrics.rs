//! Prometheus text exposition (format 0.0.4): `# HELP`, `# TYPE`, then samples. Label values are
//! escaped as the format says (backslash, double quote, line feed), so a trunk named by an operator
//! cannot break the page.

use std::fmt::Write as _;

/// A page of metrics being written.
#[derive(Debug, Default)]
pub struct Metrics {
    out: String,
}

impl Metrics {
    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.head(name, help, "gauge");
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.head(name, help, "counter");
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// A metric of `kind` (`gauge`/`counter`) with one sample per label set.
    pub fn labelled(&mut self, name: &str, help: &str, kind: &str, rows: &[(&[(&str, &str)], u64)]) {
        self.head(name, help, kind);
        for (labels, value) in rows {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| {
                    let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                    format!("{k}=\"{v}\"")
                })
                .collect();
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut m = Metrics::default();
        m.counter("rtcedge_calls_total", "Calls since start", 3);
        m.labelled(
            "rtcedge_trunk_up",
            "1 if up",
            "gauge",
            &[(&[("trunk", "a\"b\\c\nd")], 1), (&[("trunk", "x")], 0)],
        );
        assert_eq!(
            m.finish(),
            "# HELP rtcedge_calls_total Calls since start\n# TYPE rtcedge_calls_total counter\nrtcedge_calls_total 3\n\
             # HELP rtcedge_trunk_up 1 if up\n# TYPE rtcedge_trunk_up gauge\n\
             rtcedge_trunk_up{trunk=\"a\\\"b\\\\c\\nd\"} 1\nrtcedge_trunk_up{trunk=\"x\"} 0\n"
        );
    }
}
