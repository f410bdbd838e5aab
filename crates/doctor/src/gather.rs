//! Reading the cluster into [`Facts`]. Every lookup has a deadline; a failed lookup becomes a fact
//! (`Lookup::Failed`), never an error, except when kube-apiserver does not answer at all.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ListParams, PostParams};

use crate::error::DoctorError;
use crate::facts::{
    Access, AccessCheck, ApiServiceFacts, AuthConfigFacts, Condition, EndpointFacts, Facts, Lookup,
    Permission, REQUIRED_ACCESS, ServiceFacts, ServicePort, ServiceRef,
};
use crate::scrape_health;

mod hpa;
mod pods;
#[cfg(test)]
mod tests;

/// Where the server runs and how long each lookup may take.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's namespace.
    pub namespace: String,
    /// The server's ServiceAccount.
    pub service_account: String,
    /// The deadline of each request to kube-apiserver.
    pub request_timeout: Duration,
    /// How many pods per HPA target are looked at.
    pub max_pods: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: "kube-system".to_owned(),
            service_account: "metrics-server".to_owned(),
            request_timeout: Duration::from_secs(10),
            max_pods: 5,
        }
    }
}

/// Why one lookup failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// 404 with the API's message.
    NotFound(String),
    /// Any other API status.
    Status(u16, String),
    /// No HTTP answer (connection, TLS, timeout).
    Transport(String),
}

impl Failure {
    fn message(&self) -> String {
        match self {
            Self::NotFound(m) | Self::Transport(m) => m.clone(),
            Self::Status(code, m) => format!("{code}: {m}"),
        }
    }
}

/// Runs a kube request under the deadline.
pub(crate) async fn timed<T>(
    limit: Duration,
    fut: impl Future<Output = kube::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Err(_) => Err(Failure::Transport(format!("no answer within {limit:?}"))),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
            Err(Failure::NotFound(status.message.clone()))
        }
        Ok(Err(kube::Error::Api(status))) => {
            Err(Failure::Status(status.code, status.message.clone()))
        }
        Ok(Err(e)) => Err(Failure::Transport(chain(&e))),
    }
}

/// An error and its sources, `outer: inner: innermost` (kube's own text omits the cause, e.g.
/// `client error (Connect)` without `Connection refused`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = s.source();
    }
    text
}

/// A result as a [`Lookup`].
pub(crate) fn lookup<T>(r: Result<T, Failure>) -> Lookup<T> {
    match r {
        Ok(v) => Lookup::Found(v),
        Err(Failure::NotFound(m)) => Lookup::Missing(m),
        Err(f) => Lookup::Failed(f.message()),
    }
}

/// Reads everything doctor judges. Fails only when kube-apiserver cannot be reached.
pub async fn gather(client: &kube::Client, opts: &Options) -> Result<Facts, DoctorError> {
    let t = opts.request_timeout;
    let listed = timed(
        t,
        Api::<APIService>::all(client.clone()).list(&ListParams::default()),
    )
    .await;
    if let Err(Failure::Transport(e)) = &listed {
        return Err(DoctorError::Unreachable(e.clone()));
    }
    let mut api_services = Vec::new();
    let listed = listed.map(|l| l.items);
    if let Ok(items) = &listed {
        for api in items {
            if api.spec.as_ref().and_then(|s| s.group.as_deref()) == Some("metrics.k8s.io") {
                api_services.push(api_service(client, api, t).await);
            }
        }
    }
    let sa_api = Api::<ServiceAccount>::namespaced(client.clone(), &opts.namespace);
    let service_account_exists =
        lookup(timed(t, sa_api.get_opt(&opts.service_account)).await).map_found(|o| o.is_some());
    Ok(Facts {
        namespace: opts.namespace.clone(),
        service_account: opts.service_account.clone(),
        api_services: lookup(listed).map_found(|_| api_services),
        service_account_exists,
        access: access(client, opts).await,
        auth_config: auth_config(client, t).await,
        scrape_health: scrape_health_doc(client, t).await,
        hpas: hpa::gather(client, opts).await,
    })
}

impl<T> Lookup<T> {
    /// Maps the found value.
    pub(crate) fn map_found<U>(self, f: impl FnOnce(T) -> U) -> Lookup<U> {
        match self {
            Self::Found(v) => Lookup::Found(f(v)),
            Self::Missing(m) => Lookup::Missing(m),
            Self::Failed(m) => Lookup::Failed(m),
            Self::NotChecked => Lookup::NotChecked,
        }
    }
}

async fn api_service(client: &kube::Client, api: &APIService, t: Duration) -> ApiServiceFacts {
    let spec = api.spec.clone().unwrap_or_default();
    let service = spec.service.as_ref().map(|s| ServiceRef {
        namespace: s.namespace.clone().unwrap_or_default(),
        name: s.name.clone().unwrap_or_default(),
        port: s.port.unwrap_or(443),
    });
    let conditions = api
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| Condition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let backend = match &service {
        Some(r) => service_facts(client, r, t).await,
        None => Lookup::NotChecked,
    };
    ApiServiceFacts {
        name: api.metadata.name.clone().unwrap_or_default(),
        service,
        insecure_skip_tls_verify: spec.insecure_skip_tls_verify.unwrap_or(false),
        has_ca_bundle: spec.ca_bundle.is_some_and(|b| !b.0.is_empty()),
        conditions,
        backend,
    }
}

async fn service_facts(client: &kube::Client, r: &ServiceRef, t: Duration) -> Lookup<ServiceFacts> {
    let svc = match timed(
        t,
        Api::<Service>::namespaced(client.clone(), &r.namespace).get(&r.name),
    )
    .await
    {
        Ok(svc) => svc,
        Err(f) => return lookup(Err(f)),
    };
    let spec = svc.spec.unwrap_or_default();
    let mut facts = ServiceFacts {
        type_: spec.type_.unwrap_or_else(|| "ClusterIP".to_owned()),
        cluster_ip: spec.cluster_ip.filter(|ip| ip != "None"),
        external_name: spec.external_name,
        selector: spec.selector.unwrap_or_default(),
        ports: spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| ServicePort {
                name: p.name,
                port: p.port,
                target_port: p.target_port.map(|tp| match tp {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => {
                        i.to_string()
                    }
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s,
                }),
            })
            .collect(),
        endpoints: Lookup::NotChecked,
        pods: Lookup::NotChecked,
    };
    if facts.type_ == "ExternalName" {
        return Lookup::Found(facts);
    }
    facts.endpoints = endpoints(client, r, t).await;
    if !facts.selector.is_empty() {
        let selector = facts.selector_string();
        facts.pods = pods::service_pods(client, &r.namespace, &selector, t).await;
    }
    Lookup::Found(facts)
}

async fn endpoints(
    client: &kube::Client,
    r: &ServiceRef,
    t: Duration,
) -> Lookup<Vec<EndpointFacts>> {
    let api = Api::<EndpointSlice>::namespaced(client.clone(), &r.namespace);
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={}", r.name));
    lookup(timed(t, api.list(&params)).await).map_found(|slices| {
        slices
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .map(|e| EndpointFacts {
                address: e.addresses.first().cloned().unwrap_or_default(),
                // A missing `ready` means ready (discovery.k8s.io/v1).
                ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
                pod: e.target_ref.as_ref().and_then(|t| t.name.clone()),
            })
            .collect()
    })
}

async fn access(client: &kube::Client, opts: &Options) -> Vec<AccessCheck> {
    let api = Api::<SubjectAccessReview>::all(client.clone());
    let mut out = Vec::new();
    for permission in REQUIRED_ACCESS {
        let review = sar(&opts.namespace, &opts.service_account, &permission);
        let result = match timed(
            opts.request_timeout,
            api.create(&PostParams::default(), &review),
        )
        .await
        {
            Ok(answer) => match answer.status {
                Some(s) if s.allowed => Access::Allowed,
                Some(s) => Access::Denied(s.reason.unwrap_or_default()),
                None => Access::Unknown("no status in the answer".to_owned()),
            },
            Err(f) => Access::Unknown(f.message()),
        };
        out.push(AccessCheck { permission, result });
    }
    out
}

fn sar(ns: &str, sa: &str, p: &Permission) -> SubjectAccessReview {
    let own = |s: Option<&str>| s.map(str::to_owned);
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{ns}:{sa}")),
            groups: Some(vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".to_owned(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(p.verb.to_owned()),
                group: Some(p.group.to_owned()),
                resource: Some(p.resource.to_owned()),
                subresource: own(p.subresource),
                namespace: own(p.namespace),
                name: own(p.name),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn auth_config(client: &kube::Client, t: Duration) -> Lookup<AuthConfigFacts> {
    let api = Api::<ConfigMap>::namespaced(client.clone(), "kube-system");
    let cm = timed(t, api.get("extension-apiserver-authentication")).await;
    lookup(cm).map_found(|cm| auth_config_facts(&cm.data.unwrap_or_default()))
}

/// The facts of the ConfigMap's data.
pub fn auth_config_facts(data: &std::collections::BTreeMap<String, String>) -> AuthConfigFacts {
    let strings = |key: &str| -> Vec<String> {
        data.get(key)
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default()
    };
    AuthConfigFacts {
        client_ca_present: data
            .get("client-ca-file")
            .is_some_and(|v| !v.trim().is_empty()),
        requestheader_ca_subjects: data
            .get("requestheader-client-ca-file")
            .map(|pem| pem_subjects(pem.as_bytes())),
        requestheader_allowed_names: strings("requestheader-allowed-names"),
        requestheader_username_headers: strings("requestheader-username-headers"),
    }
}

/// The subject of every certificate in a PEM bundle (unreadable blocks are skipped).
pub fn pem_subjects(pem: &[u8]) -> Vec<String> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter_map(|block| block.parse_x509().ok().map(|c| c.subject().to_string()))
        .collect()
}

async fn scrape_health_doc(
    client: &kube::Client,
    t: Duration,
) -> Lookup<scrape_health::ScrapeHealth> {
    let request = match http::Request::get(scrape_health::AGGREGATED_PATH).body(Vec::new()) {
        Ok(r) => r,
        Err(e) => return Lookup::Failed(e.to_string()),
    };
    match timed(t, client.request_text(request)).await {
        Ok(text) => match scrape_health::parse(&text) {
            Ok(doc) => Lookup::Found(doc),
            Err(e) => Lookup::Failed(e.to_string()),
        },
        Err(f) => lookup::<()>(Err(f)).map_found(|()| scrape_health::ScrapeHealth::default()),
    }
}
