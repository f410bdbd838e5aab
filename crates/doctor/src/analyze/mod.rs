//! `analyze(&Facts) -> Vec<Finding>`: the pure diagnosis. Every rule reads only [`Facts`], so the
//! unit tests below build the cluster states by hand.

mod access;
mod apiservice;
mod hpa;
mod nodes;
#[cfg(test)]
mod tests;

use crate::facts::{Facts, Lookup};
use crate::finding::{self, Finding};

/// Diagnoses `facts`; the findings come most severe first.
pub fn analyze(facts: &Facts) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(apiservice::analyze(facts));
    findings.extend(access::analyze_rbac(facts));
    findings.extend(access::analyze_auth_config(facts));
    findings.extend(nodes::analyze(facts));
    findings.extend(hpa::analyze(facts));
    finding::sort(&mut findings);
    findings
}

/// Whether some APIService of `metrics.k8s.io` is Available (`None` when unknown).
fn api_available(facts: &Facts) -> Option<bool> {
    let Lookup::Found(services) = &facts.api_services else {
        return None;
    };
    Some(services.iter().any(|s| {
        crate::facts::condition(&s.conditions, "Available").is_some_and(|c| c.status == "True")
    }))
}

/// `a, b, c` or `a, b, c and 4 more`.
fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        return items.join(", ");
    }
    format!("{} and {} more", items[..max].join(", "), items.len() - max)
}
