//! Findings and how they are printed: a table, most severe first, or JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// How bad a finding is. Ordered most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// The metrics API (or a part of it) does not work.
    Error,
    /// Works now, or partly, but something is off.
    Warning,
    /// What was checked and found fine, or context.
    Info,
}

impl Severity {
    /// `ERROR`, `WARNING`, `INFO`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Warning => "WARNING",
            Self::Info => "INFO",
        }
    }
}

/// One thing doctor found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Which check: `apiservice`, `service`, `endpoints`, `pods`, `rbac`, `authentication`,
    /// `kubelet`, `scrape-health`, `hpa`.
    pub check: &'static str,
    /// The object concerned (`APIService/v1beta1.metrics.k8s.io`, `node/worker-2`, ...).
    pub subject: String,
    /// What is wrong (or right), and why.
    pub message: String,
    /// A concrete command or manifest change; empty for Info findings with nothing to do.
    pub fix: String,
}

impl Finding {
    pub fn new(
        severity: Severity,
        check: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            check,
            subject: subject.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// The process exit status for a set of findings: 0 when nothing is wrong (Info only), 1 when
/// there is any Error or Warning.
pub fn exit_code(findings: &[Finding]) -> u8 {
    u8::from(findings.iter().any(|f| f.severity != Severity::Info))
}

/// Sorts most severe first, keeping the order of checks within a severity.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by_key(|f| f.severity);
}

/// The findings as a table (`SEVERITY CHECK SUBJECT MESSAGE`, the fix on an indented line under
/// its finding) and a closing count.
pub fn render_table(findings: &[Finding]) -> String {
    let width = |get: fn(&Finding) -> usize, title: &str| {
        findings.iter().map(get).max().unwrap_or(0).max(title.len())
    };
    let w_sev = width(|f| f.severity.label().len(), "SEVERITY");
    let w_check = width(|f| f.check.len(), "CHECK");
    let w_subj = width(|f| f.subject.chars().count(), "SUBJECT");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:w_sev$}  {:w_check$}  {:w_subj$}  MESSAGE",
        "SEVERITY", "CHECK", "SUBJECT"
    );
    let indent = w_sev + w_check + 4;
    for f in findings {
        let _ = writeln!(
            out,
            "{:w_sev$}  {:w_check$}  {:w_subj$}  {}",
            f.severity.label(),
            f.check,
            f.subject,
            f.message
        );
        if !f.fix.is_empty() {
            let _ = writeln!(out, "{:indent$}fix: {}", "", f.fix);
        }
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "\n{} error(s), {} warning(s), {} info",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    );
    out
}

/// The findings as a JSON document `{"findings": [...], "summary": {...}}`.
pub fn render_json(findings: &[Finding]) -> String {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let doc = serde_json::json!({
        "kind": "DoctorReport",
        "findings": findings,
        "summary": {
            "errors": count(Severity::Error),
            "warnings": count(Severity::Warning),
            "info": count(Severity::Info),
        }
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Finding> {
        vec![
            Finding::new(Severity::Info, "rbac", "sa", "all good", ""),
            Finding::new(
                Severity::Error,
                "apiservice",
                "APIService/x",
                "down",
                "kubectl fix",
            ),
            Finding::new(Severity::Warning, "kubelet", "node/n1", "slow", "look"),
        ]
    }

    #[test]
    fn sorting_puts_errors_first() {
        let mut f = sample();
        sort(&mut f);
        let order: Vec<_> = f.iter().map(|f| f.severity).collect();
        assert_eq!(order, [Severity::Error, Severity::Warning, Severity::Info]);
    }

    #[test]
    fn the_exit_code_says_whether_anything_is_wrong() {
        assert_eq!(exit_code(&sample()), 1);
        assert_eq!(exit_code(&sample()[..1]), 0);
        assert_eq!(exit_code(&[]), 0);
    }

    #[test]
    fn the_table_aligns_columns_and_prints_fixes_under_their_finding() {
        let mut f = sample();
        sort(&mut f);
        let table = render_table(&f);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("SEVERITY  CHECK       SUBJECT       MESSAGE"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("ERROR     apiservice  APIService/x  down"),
            "{table}"
        );
        assert_eq!(lines[2], "                      fix: kubectl fix");
        assert!(
            table.ends_with("1 error(s), 1 warning(s), 1 info\n"),
            "{table}"
        );
        // An Info finding without a fix has no fix line.
        assert!(!table.contains("fix: \n"));
    }

    #[test]
    fn json_carries_every_field_and_a_summary() {
        let v: serde_json::Value = serde_json::from_str(&render_json(&sample())).unwrap();
        assert_eq!(v["findings"][1]["severity"], "Error");
        assert_eq!(v["findings"][1]["fix"], "kubectl fix");
        assert_eq!(v["summary"]["errors"], 1);
    }
}
