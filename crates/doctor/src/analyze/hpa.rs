//! HPAs showing `<unknown>` for a resource metric, with the root cause: a container without a
//! request (for Utilization targets), pods without metrics (the API's NotFound message says why),
//! or the metrics API unavailable.

use crate::facts::{Facts, HpaFacts, HpaResourceMetric, Lookup, condition};
use crate::finding::{Finding, Severity};

pub(super) fn analyze(facts: &Facts) -> Vec<Finding> {
    let hpas = match &facts.hpas {
        Lookup::Found(h) => h,
        Lookup::Failed(e) | Lookup::Missing(e) => {
            return vec![Finding::new(
                Severity::Warning,
                "hpa",
                "horizontalpodautoscalers",
                format!("could not list HPAs: {e}"),
                "run doctor with credentials that may list horizontalpodautoscalers.autoscaling",
            )];
        }
        Lookup::NotChecked => return Vec::new(),
    };
    let api_down = super::api_available(facts) == Some(false);
    let mut out = Vec::new();
    for hpa in hpas {
        for metric in hpa.metrics.iter().filter(|m| m.current.is_none()) {
            out.push(unknown_metric(hpa, metric, api_down));
        }
    }
    out
}

fn unknown_metric(hpa: &HpaFacts, metric: &HpaResourceMetric, api_down: bool) -> Finding {
    let subject = format!("HorizontalPodAutoscaler/{}/{}", hpa.namespace, hpa.name);
    let shown = format!("{} shows <unknown>", metric.resource);
    let ns = &hpa.namespace;
    if api_down {
        return Finding::new(
            Severity::Error,
            "hpa",
            subject,
            format!("{shown}: the metrics API is unavailable (see the apiservice finding)"),
            "fix the APIService first; the HPA recovers on its next sync",
        );
    }
    if metric.target_type == "Utilization"
        && let Some(finding) = missing_request(hpa, metric, &subject, &shown)
    {
        return finding;
    }
    let pods = hpa.pods.found().map_or(&[][..], Vec::as_slice);
    let without: Vec<String> = pods
        .iter()
        .filter_map(|p| match &p.metrics {
            Lookup::Missing(msg) | Lookup::Failed(msg) => Some(format!("{}: {msg}", p.name)),
            _ => None,
        })
        .collect();
    if !without.is_empty() {
        return Finding::new(
            Severity::Warning,
            "hpa",
            subject,
            format!(
                "{shown}: pods without metrics: {}",
                super::list(&without, 2)
            ),
            format!(
                "kubectl top pods -n {ns}; pods get metrics one resolution after they start; for a node-level cause see the kubelet findings"
            ),
        );
    }
    let cond = condition(&hpa.conditions, "ScalingActive")
        .filter(|c| c.status == "False")
        .or_else(|| condition(&hpa.conditions, "AbleToScale").filter(|c| c.status == "False"));
    match cond {
        Some(c) => Finding::new(
            Severity::Warning,
            "hpa",
            subject,
            format!("{shown}: {} ({})", c.message, c.reason),
            format!("kubectl describe hpa -n {ns} {}", hpa.name),
        ),
        None if pods.is_empty() && hpa.pods.found().is_some() => Finding::new(
            Severity::Warning,
            "hpa",
            subject,
            format!(
                "{shown}: its target {}/{} has no pods",
                hpa.target_kind, hpa.target_name
            ),
            format!(
                "kubectl -n {ns} get {} {}",
                hpa.target_kind.to_ascii_lowercase(),
                hpa.target_name
            ),
        ),
        None => Finding::new(
            Severity::Info,
            "hpa",
            subject,
            format!(
                "{shown}: no cause visible yet (a new HPA gets its first value within a sync period)"
            ),
            format!("kubectl describe hpa -n {ns} {}", hpa.name),
        ),
    }
}

/// A Utilization target needs a request for the resource in every container it averages over.
fn missing_request(
    hpa: &HpaFacts,
    metric: &HpaResourceMetric,
    subject: &str,
    shown: &str,
) -> Option<Finding> {
    let pods = hpa.pods.found()?;
    let mut missing: Vec<(String, String)> = Vec::new();
    for pod in pods {
        for c in &pod.containers {
            let counted = metric.container.as_ref().is_none_or(|only| *only == c.name);
            if counted && !c.requests.contains(&metric.resource) {
                missing.push((c.name.clone(), pod.name.clone()));
            }
        }
    }
    let (container, pod) = missing.first()?;
    let mut containers: Vec<String> = missing.iter().map(|(c, _)| c.clone()).collect();
    containers.sort();
    containers.dedup();
    let kind = hpa.target_kind.to_ascii_lowercase();
    Some(Finding::new(
        Severity::Error,
        "hpa",
        subject,
        format!(
            "{shown}: container(s) {} of pod {pod} request no {}, so {} utilization cannot be computed",
            containers.join(", "),
            metric.resource,
            metric.resource
        ),
        format!(
            "kubectl -n {} set resources {kind}/{} -c {container} --requests={}=<amount> (or add resources.requests.{} to the container in the manifest)",
            hpa.namespace, hpa.target_name, metric.resource, metric.resource
        ),
    ))
}
