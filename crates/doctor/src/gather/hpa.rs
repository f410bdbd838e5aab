//! HPAs with a resource metric at `<unknown>`, their conditions and their target's pods.

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricStatus, MetricValueStatus};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

use super::{Failure, Options, lookup, pods, timed};
use crate::facts::{Condition, HpaFacts, HpaResourceMetric, Lookup, TargetPod};

pub(super) async fn gather(client: &kube::Client, opts: &Options) -> Lookup<Vec<HpaFacts>> {
    let api = Api::<HorizontalPodAutoscaler>::all(client.clone());
    let listed = match timed(opts.request_timeout, api.list(&ListParams::default())).await {
        Ok(l) => l.items,
        Err(f) => return lookup(Err(f)),
    };
    let mut out = Vec::new();
    for hpa in &listed {
        let mut facts = hpa_facts(hpa);
        if facts.metrics.iter().all(|m| m.current.is_some()) {
            continue;
        }
        facts.pods = target_pods(client, &facts, hpa, opts).await;
        out.push(facts);
    }
    Lookup::Found(out)
}

/// Everything but the pods.
pub(crate) fn hpa_facts(hpa: &HorizontalPodAutoscaler) -> HpaFacts {
    let spec = hpa.spec.clone().unwrap_or_default();
    let status = hpa.status.clone().unwrap_or_default();
    let current = status.current_metrics.unwrap_or_default();
    let metrics = spec
        .metrics
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            let (resource, target_type, container) = match (&m.resource, &m.container_resource) {
                (Some(r), _) => (r.name.clone(), r.target.type_.clone(), None),
                (None, Some(c)) => (
                    c.name.clone(),
                    c.target.type_.clone(),
                    Some(c.container.clone()),
                ),
                (None, None) => return None,
            };
            let now = current_value(&current, &resource, container.as_deref());
            Some(HpaResourceMetric {
                resource,
                target_type,
                container,
                current: now,
            })
        })
        .collect();
    HpaFacts {
        namespace: hpa.metadata.namespace.clone().unwrap_or_default(),
        name: hpa.metadata.name.clone().unwrap_or_default(),
        target_kind: spec.scale_target_ref.kind.clone(),
        target_name: spec.scale_target_ref.name.clone(),
        metrics,
        conditions: status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| Condition {
                type_: c.type_,
                status: c.status,
                reason: c.reason.unwrap_or_default(),
                message: c.message.unwrap_or_default(),
            })
            .collect(),
        pods: Lookup::NotChecked,
    }
}

/// What kubectl prints for the metric's current value; `None` is `<unknown>`.
fn current_value(
    current: &[MetricStatus],
    resource: &str,
    container: Option<&str>,
) -> Option<String> {
    let value =
        current
            .iter()
            .find_map(|m| match (container, &m.resource, &m.container_resource) {
                (None, Some(r), _) if r.name == resource => Some(&r.current),
                (Some(c), _, Some(cr)) if cr.name == resource && cr.container == c => {
                    Some(&cr.current)
                }
                _ => None,
            })?;
    shown(value)
}

fn shown(v: &MetricValueStatus) -> Option<String> {
    if let Some(u) = v.average_utilization {
        return Some(format!("{u}%"));
    }
    v.average_value
        .as_ref()
        .or(v.value.as_ref())
        .map(|q| q.0.clone())
}

async fn target_pods(
    client: &kube::Client,
    facts: &HpaFacts,
    hpa: &HorizontalPodAutoscaler,
    opts: &Options,
) -> Lookup<Vec<TargetPod>> {
    let t = opts.request_timeout;
    let api_version = hpa
        .spec
        .as_ref()
        .and_then(|s| s.scale_target_ref.api_version.clone())
        .unwrap_or_else(|| "apps/v1".to_owned());
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let gvk = GroupVersionKind::gvk(group, version, &facts.target_kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &plural(&facts.target_kind));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &facts.namespace, &resource);
    let selector = match timed(t, api.get_scale(&facts.target_name)).await {
        Ok(scale) => scale.status.and_then(|s| s.selector).unwrap_or_default(),
        Err(f) => return lookup(Err(f)),
    };
    if selector.is_empty() {
        return Lookup::Failed(format!(
            "{}/{} reports no pod selector in its scale subresource",
            facts.target_kind, facts.target_name
        ));
    }
    let listed: Result<Vec<_>, Failure> = pods::list(client, &facts.namespace, &selector, t).await;
    let listed = match listed {
        Ok(p) => p,
        Err(f) => return lookup(Err(f)),
    };
    let mut out = Vec::new();
    for pod in listed.iter().take(opts.max_pods) {
        out.push(pods::target_pod(client, pod, t).await);
    }
    Lookup::Found(out)
}

/// The resource name of a scalable kind (`Deployment` -> `deployments`).
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}
