//! Where the authentication trust comes from: flags, else the
//! `kube-system/extension-apiserver-authentication` ConfigMap, re-read periodically.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use tokio_util::sync::CancellationToken;

use crate::authn::{AuthnConfig, CaBundle, RequestHeaderConfig};
use crate::cache::DEFAULT_CACHE_SIZE;
use crate::error::Error;
use crate::review::{CallPolicy, kube_bounded};

/// Namespace of the authentication ConfigMap.
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";
/// Name of the authentication ConfigMap.
pub const CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

const KEY_CLIENT_CA: &str = "client-ca-file";
const KEY_RH_CA: &str = "requestheader-client-ca-file";
const KEY_RH_ALLOWED: &str = "requestheader-allowed-names";
const KEY_RH_USER: &str = "requestheader-username-headers";
const KEY_RH_GROUP: &str = "requestheader-group-headers";
const KEY_RH_EXTRA: &str = "requestheader-extra-headers-prefix";

/// The authentication flags (B.2), with upstream defaults.
#[derive(Debug, Clone)]
pub struct AuthenticationOptions {
    /// `--client-ca-file`.
    pub client_ca_file: Option<PathBuf>,
    /// `--requestheader-client-ca-file`. When set, all request-header settings come from
    /// flags; otherwise all of them come from the ConfigMap (as Go's delegating options).
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// `--requestheader-allowed-names`.
    pub requestheader_allowed_names: Vec<String>,
    /// `--requestheader-username-headers` (default `x-remote-user`).
    pub requestheader_username_headers: Vec<String>,
    /// `--requestheader-group-headers` (default `x-remote-group`).
    pub requestheader_group_headers: Vec<String>,
    /// `--requestheader-extra-headers-prefix` (default `x-remote-extra-`).
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// `--authentication-skip-lookup`.
    pub skip_lookup: bool,
    /// `--authentication-tolerate-lookup-failure`.
    pub tolerate_lookup_failure: bool,
    /// `--authentication-token-webhook-cache-ttl` (default 10s).
    pub token_webhook_cache_ttl: Duration,
    /// How often the ConfigMap and CA files are re-read (not a flag upstream; Go watches).
    pub reload_interval: Duration,
    /// Entries of the TokenReview cache (least recently used evicted first).
    pub token_cache_size: usize,
    /// Deadline and retries of TokenReviews and ConfigMap reads.
    pub call_policy: CallPolicy,
}

impl Default for AuthenticationOptions {
    fn default() -> Self {
        Self {
            client_ca_file: None,
            requestheader_client_ca_file: None,
            requestheader_allowed_names: Vec::new(),
            requestheader_username_headers: vec!["x-remote-user".into()],
            requestheader_group_headers: vec!["x-remote-group".into()],
            requestheader_extra_headers_prefix: vec!["x-remote-extra-".into()],
            skip_lookup: false,
            tolerate_lookup_failure: false,
            token_webhook_cache_ttl: Duration::from_secs(10),
            reload_interval: Duration::from_secs(30),
            token_cache_size: DEFAULT_CACHE_SIZE,
            call_policy: CallPolicy::default(),
        }
    }
}

impl AuthenticationOptions {
    /// Whether the ConfigMap is consulted at all.
    fn needs_lookup(&self) -> bool {
        !self.skip_lookup
            && (self.client_ca_file.is_none() || self.requestheader_client_ca_file.is_none())
    }
}

fn lower(v: &[String]) -> Vec<String> {
    v.iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Combines flags with ConfigMap data (`None` when not looked up or absent). Flag files
/// that cannot be read are errors; bad ConfigMap content is logged and that part left out,
/// so a broken ConfigMap never takes the server down.
pub fn resolve(
    opts: &AuthenticationOptions,
    configmap: Option<&BTreeMap<String, String>>,
) -> Result<AuthnConfig, Error> {
    let cm = configmap.filter(|_| !opts.skip_lookup);
    let client_ca = match &opts.client_ca_file {
        Some(path) => Some(CaBundle::from_file(path)?),
        None => cm.and_then(|cm| cm_bundle(cm, KEY_CLIENT_CA)),
    };
    let request_header = match &opts.requestheader_client_ca_file {
        Some(path) => Some(RequestHeaderConfig {
            ca: CaBundle::from_file(path)?,
            allowed_names: opts.requestheader_allowed_names.clone(),
            username_headers: lower(&opts.requestheader_username_headers),
            group_headers: lower(&opts.requestheader_group_headers),
            extra_headers_prefix: lower(&opts.requestheader_extra_headers_prefix),
        }),
        None => cm.and_then(cm_request_header),
    };
    Ok(AuthnConfig {
        client_ca,
        request_header,
    })
}

fn cm_bundle(cm: &BTreeMap<String, String>, key: &'static str) -> Option<CaBundle> {
    let pem = cm.get(key).filter(|v| !v.trim().is_empty())?;
    let what = format!("configmap/{CONFIGMAP_NAME} key {key}");
    CaBundle::from_pem(pem.as_bytes(), &what)
        .inspect_err(|error| tracing::warn!(%error, "ignoring invalid CA bundle"))
        .ok()
}

fn cm_request_header(cm: &BTreeMap<String, String>) -> Option<RequestHeaderConfig> {
    let ca = cm_bundle(cm, KEY_RH_CA)?;
    let list = |key: &'static str| -> Option<Vec<String>> {
        match cm_string_list(cm, key) {
            Ok(v) => Some(v),
            Err(error) => {
                tracing::warn!(%error, "ignoring request-header configuration");
                None
            }
        }
    };
    Some(RequestHeaderConfig {
        ca,
        allowed_names: list(KEY_RH_ALLOWED)?,
        username_headers: lower(&list(KEY_RH_USER)?),
        group_headers: lower(&list(KEY_RH_GROUP)?),
        extra_headers_prefix: lower(&list(KEY_RH_EXTRA)?),
    })
}

/// A JSON string array (`["a","b"]`); missing or empty means an empty list.
fn cm_string_list(cm: &BTreeMap<String, String>, key: &'static str) -> Result<Vec<String>, Error> {
    match cm.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(Vec::new()),
        Some(v) => serde_json::from_str(v).map_err(|e| Error::ConfigMapValue {
            key,
            reason: e.to_string(),
        }),
    }
}

/// Fetches the ConfigMap within `policy`'s deadline. `Ok(None)` when it does not exist
/// (tolerated, as upstream).
async fn fetch(
    client: &kube::Client,
    policy: CallPolicy,
) -> Result<Option<BTreeMap<String, String>>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), CONFIGMAP_NAMESPACE);
    Ok(kube_bounded(policy, || api.get_opt(CONFIGMAP_NAME))
        .await?
        .map(|cm| cm.data.unwrap_or_default()))
}

/// The startup load: flags, plus the ConfigMap unless skipped. A failed lookup is fatal
/// unless `tolerate_lookup_failure`; the reloader keeps trying either way.
pub async fn load(
    opts: &AuthenticationOptions,
    client: Option<&kube::Client>,
) -> Result<AuthnConfig, Error> {
    if !opts.needs_lookup() {
        return resolve(opts, None);
    }
    let Some(client) = client else {
        tracing::warn!(
            "No authentication-kubeconfig provided in order to lookup client-ca-file in configmap/{CONFIGMAP_NAME} in {CONFIGMAP_NAMESPACE}, so client certificate authentication won't work."
        );
        return resolve(opts, None);
    };
    let cm = match fetch(client, opts.call_policy).await {
        Ok(cm) => cm,
        Err(error) => {
            if matches!(&error, kube::Error::Api(s) if s.code == 403) {
                tracing::warn!(
                    "Unable to get configmap/{CONFIGMAP_NAME} in {CONFIGMAP_NAMESPACE}.  Usually fixed by 'kubectl create rolebinding -n {CONFIGMAP_NAMESPACE} ROLEBINDING_NAME --role=extension-apiserver-authentication-reader --serviceaccount=YOUR_NS:YOUR_SA'"
                );
            }
            if !opts.tolerate_lookup_failure {
                return Err(Error::Lookup(Box::new(error)));
            }
            tracing::warn!(
                %error,
                "Error looking up in-cluster authentication configuration; continuing without it"
            );
            None
        }
    };
    let config = resolve(opts, cm.as_ref())?;
    if opts.client_ca_file.is_none() && config.client_ca.is_none() {
        tracing::warn!(
            "Cluster doesn't provide client-ca-file in configmap/{CONFIGMAP_NAME} in {CONFIGMAP_NAMESPACE}, so client certificate authentication won't work."
        );
    }
    if opts.requestheader_client_ca_file.is_none() && config.request_header.is_none() {
        tracing::warn!(
            "Cluster doesn't provide requestheader-client-ca-file in configmap/{CONFIGMAP_NAME} in {CONFIGMAP_NAMESPACE}, so request-header client certificate authentication won't work."
        );
    }
    Ok(config)
}

/// Re-reads the CA files and the ConfigMap every `reload_interval` until `shutdown`; when
/// the result differs, stores it and calls `on_change` (typically to rebuild the TLS config
/// with new acceptable issuers). Failures keep the previous configuration.
pub fn spawn_reloader(
    opts: AuthenticationOptions,
    client: Option<kube::Client>,
    target: Arc<ArcSwap<AuthnConfig>>,
    on_change: impl Fn(&AuthnConfig) + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(opts.reload_interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; startup already loaded
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let cm = match (&client, opts.needs_lookup()) {
                (Some(client), true) => match fetch(client, opts.call_policy).await {
                    Ok(cm) => cm,
                    Err(error) => {
                        tracing::debug!(%error, "re-reading authentication configmap failed");
                        continue;
                    }
                },
                _ => None,
            };
            let next = match resolve(&opts, cm.as_ref()) {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(%error, "reloading authentication configuration failed");
                    continue;
                }
            };
            if **target.load() != next {
                tracing::info!("authentication configuration changed; reloaded");
                target.store(Arc::new(next));
                on_change(&target.load());
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_lists_are_json_string_arrays() {
        let mut cm = BTreeMap::new();
        cm.insert(KEY_RH_USER.to_owned(), r#"["X-Remote-User"]"#.to_owned());
        cm.insert(KEY_RH_ALLOWED.to_owned(), String::new());
        assert_eq!(
            cm_string_list(&cm, KEY_RH_USER).ok(),
            Some(vec!["X-Remote-User".to_owned()])
        );
        assert_eq!(cm_string_list(&cm, KEY_RH_ALLOWED).ok(), Some(vec![]));
        assert_eq!(cm_string_list(&cm, KEY_RH_GROUP).ok(), Some(vec![]));
        cm.insert(KEY_RH_GROUP.to_owned(), "x-remote-group".to_owned());
        assert!(cm_string_list(&cm, KEY_RH_GROUP).is_err());
    }

    #[test]
    fn skip_lookup_ignores_configmap_data() {
        let opts = AuthenticationOptions {
            skip_lookup: true,
            ..AuthenticationOptions::default()
        };
        assert!(!opts.needs_lookup());
        let mut cm = BTreeMap::new();
        cm.insert(KEY_CLIENT_CA.to_owned(), "garbage".to_owned());
        let cfg = resolve(&opts, Some(&cm)).expect("resolves");
        assert_eq!(cfg, AuthnConfig::default());
    }
}
