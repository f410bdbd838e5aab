//! The plain facts `gather` collects and `analyze` judges. No client types leak in here, so tests
//! build any cluster state by hand.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::scrape_health::ScrapeHealth;

/// The outcome of looking something up in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "value", rename_all = "camelCase")]
pub enum Lookup<T> {
    /// It exists; here it is.
    Found(T),
    /// The cluster says it does not exist (the message says so in its own words).
    Missing(String),
    /// It could not be read (forbidden, timeout, unexpected answer).
    Failed(String),
    /// Not looked at (nothing pointed at it).
    #[default]
    NotChecked,
}

impl<T> Lookup<T> {
    /// The value when found.
    pub fn found(&self) -> Option<&T> {
        match self {
            Self::Found(v) => Some(v),
            _ => None,
        }
    }
}

/// Everything doctor knows about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// The server's namespace (`--namespace`).
    pub namespace: String,
    /// The server's ServiceAccount (`--service-account`).
    pub service_account: String,
    /// APIServices of group `metrics.k8s.io`.
    pub api_services: Lookup<Vec<ApiServiceFacts>>,
    /// Whether the ServiceAccount exists.
    pub service_account_exists: Lookup<bool>,
    /// One answer per [`REQUIRED_ACCESS`] entry, same order.
    pub access: Vec<AccessCheck>,
    /// `kube-system/extension-apiserver-authentication`.
    pub auth_config: Lookup<AuthConfigFacts>,
    /// The server's per-node scrape health, read through the aggregator.
    pub scrape_health: Lookup<ScrapeHealth>,
    /// HPAs with at least one resource metric that has no current value.
    pub hpas: Lookup<Vec<HpaFacts>>,
}

/// One condition of an object's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// Finds the condition of type `type_`.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// An APIService of group `metrics.k8s.io` and the Service behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiServiceFacts {
    pub name: String,
    /// `spec.service`; `None` for an APIService served by kube-apiserver itself.
    pub service: Option<ServiceRef>,
    pub insecure_skip_tls_verify: bool,
    pub has_ca_bundle: bool,
    pub conditions: Vec<Condition>,
    /// The Service `spec.service` names.
    pub backend: Lookup<ServiceFacts>,
}

/// `spec.service` of an APIService.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    /// `spec.service.port` (443 when unset).
    pub port: i32,
}

/// A Service and what stands behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceFacts {
    /// `ClusterIP`, `ExternalName`, `NodePort`, `LoadBalancer`.
    pub type_: String,
    /// `spec.clusterIP` (`None` for headless Services).
    pub cluster_ip: Option<String>,
    pub external_name: Option<String>,
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePort>,
    /// Endpoints from the Service's EndpointSlices.
    pub endpoints: Lookup<Vec<EndpointFacts>>,
    /// Pods the selector matches.
    pub pods: Lookup<Vec<PodFacts>>,
}

impl ServiceFacts {
    /// The selector as `k=v,k2=v2`.
    pub fn selector_string(&self) -> String {
        self.selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One port of a Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: i32,
    /// `targetPort` as written (a number or a container port's name).
    pub target_port: Option<String>,
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointFacts {
    pub address: String,
    pub ready: bool,
    pub pod: Option<String>,
}

/// A pod behind the Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodFacts {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    /// Why it is not ready (a container's waiting reason or the Ready condition's message).
    pub not_ready_reason: Option<String>,
    pub restarts: i32,
    /// `(name, containerPort)` of every container port.
    pub container_ports: Vec<(Option<String>, i32)>,
}

/// Which binding grants a permission the server needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Grant {
    /// ClusterRole `system:metrics-server` (nodes, pods, nodes/metrics).
    ServerRole,
    /// ClusterRole `system:auth-delegator` (TokenReview, SubjectAccessReview).
    AuthDelegator,
    /// Role `extension-apiserver-authentication-reader` in kube-system.
    AuthReader,
}

/// A permission the server needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    pub namespace: Option<&'static str>,
    pub name: Option<&'static str>,
    pub grant: Grant,
}

impl Permission {
    const fn new(verb: &'static str, group: &'static str, resource: &'static str) -> Self {
        Self {
            verb,
            group,
            resource,
            subresource: None,
            namespace: None,
            name: None,
            grant: Grant::ServerRole,
        }
    }

    /// `get nodes/metrics`, `create subjectaccessreviews.authorization.k8s.io`, ...
    pub fn describe(&self) -> String {
        let mut resource = self.resource.to_owned();
        if let Some(sub) = self.subresource {
            resource = format!("{resource}/{sub}");
        }
        if !self.group.is_empty() {
            resource = format!("{resource}.{}", self.group);
        }
        let mut out = format!("{} {resource}", self.verb);
        if let Some(name) = self.name {
            out = format!("{out} {name}");
        }
        if let Some(ns) = self.namespace {
            out = format!("{out} in {ns}");
        }
        out
    }
}

/// Every permission metrics-server needs, and the binding that grants it.
pub const REQUIRED_ACCESS: [Permission; 8] = [
    Permission {
        subresource: Some("metrics"),
        ..Permission::new("get", "", "nodes")
    },
    Permission::new("list", "", "nodes"),
    Permission::new("watch", "", "nodes"),
    Permission::new("list", "", "pods"),
    Permission::new("watch", "", "pods"),
    Permission {
        namespace: Some("kube-system"),
        name: Some("extension-apiserver-authentication"),
        grant: Grant::AuthReader,
        ..Permission::new("get", "", "configmaps")
    },
    Permission {
        grant: Grant::AuthDelegator,
        ..Permission::new("create", "authentication.k8s.io", "tokenreviews")
    },
    Permission {
        grant: Grant::AuthDelegator,
        ..Permission::new("create", "authorization.k8s.io", "subjectaccessreviews")
    },
];

/// The answer to one [`Permission`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessCheck {
    pub permission: Permission,
    pub result: Access,
}

/// A SubjectAccessReview's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "camelCase")]
pub enum Access {
    Allowed,
    /// Denied, with the authorizer's reason (often empty).
    Denied(String),
    /// The review itself failed.
    Unknown(String),
}

/// `kube-system/extension-apiserver-authentication`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfigFacts {
    pub client_ca_present: bool,
    /// Subjects of the CA certificates in `requestheader-client-ca-file` (`None` when the key is absent).
    pub requestheader_ca_subjects: Option<Vec<String>>,
    pub requestheader_allowed_names: Vec<String>,
    pub requestheader_username_headers: Vec<String>,
}

/// An HPA with a resource metric that has no current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaFacts {
    pub namespace: String,
    pub name: String,
    /// `scaleTargetRef.kind`.
    pub target_kind: String,
    /// `scaleTargetRef.name`.
    pub target_name: String,
    pub metrics: Vec<HpaResourceMetric>,
    pub conditions: Vec<Condition>,
    /// The target's pods (at most a few).
    pub pods: Lookup<Vec<TargetPod>>,
}

/// A `Resource` or `ContainerResource` metric of an HPA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaResourceMetric {
    /// `cpu`, `memory`.
    pub resource: String,
    /// `Utilization` or `AverageValue`.
    pub target_type: String,
    /// Set for `ContainerResource` metrics.
    pub container: Option<String>,
    /// The current value kubectl shows; `None` is `<unknown>`.
    pub current: Option<String>,
}

/// A pod of an HPA's target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetPod {
    pub name: String,
    pub phase: String,
    /// Every regular container and the resources it requests.
    pub containers: Vec<ContainerRequests>,
    /// The pod's PodMetrics: found, or the API's NotFound message (which says why).
    pub metrics: Lookup<()>,
}

/// A container and the names of the resources it requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRequests {
    pub name: String,
    pub requests: Vec<String>,
}
