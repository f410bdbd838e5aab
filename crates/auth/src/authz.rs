//! Delegated authorization (spec F.3): always-allow paths, `system:masters`, then a cached
//! SubjectAccessReview.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authorization::v1 as authzv1;

use crate::cache::{AuthMetrics, DEFAULT_CACHE_SIZE, TtlCache};
use crate::error::{Error, ReviewError, flag_error};
use crate::review::{AccessReviewer, CallPolicy, review_bounded};
use crate::user::{MASTERS_GROUP, User};

// === Attributes ===

// The request attributes (E.9) are derived by the API layer, which knows the routes; authorization uses
// the same type rather than a copy of it.
pub use metrics_server_api::{Attributes, NonResourceAttributes, ResourceAttributes};

/// What authorization does with request attributes: ask kube-apiserver, or explain a denial.
pub(crate) trait AuthorizationAttributes {
    /// The SubjectAccessReview spec for this request by `user`.
    fn to_spec(&self, user: &User) -> authzv1::SubjectAccessReviewSpec;
    /// Go's `forbiddenMessage` + `NewForbidden`: the 403 Status message.
    fn forbidden_message(&self, user: &User, reason: &str) -> String;
}

impl AuthorizationAttributes for Attributes {
    fn to_spec(&self, user: &User) -> authzv1::SubjectAccessReviewSpec {
        let none_if_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let (resource_attributes, non_resource_attributes) = match self {
            Self::Resource(r) => (
                Some(authzv1::ResourceAttributes {
                    verb: none_if_empty(&r.verb),
                    group: none_if_empty(&r.group),
                    version: none_if_empty(&r.version),
                    resource: none_if_empty(&r.resource),
                    subresource: none_if_empty(&r.subresource),
                    namespace: none_if_empty(&r.namespace),
                    name: none_if_empty(&r.name),
                    field_selector: r.field_selector.as_deref().and_then(none_if_empty).map(
                        |raw| authzv1::FieldSelectorAttributes {
                            raw_selector: Some(raw),
                            requirements: None,
                        },
                    ),
                    label_selector: r.label_selector.as_deref().and_then(none_if_empty).map(
                        |raw| authzv1::LabelSelectorAttributes {
                            raw_selector: Some(raw),
                            requirements: None,
                        },
                    ),
                }),
                None,
            ),
            Self::NonResource(n) => (
                None,
                Some(authzv1::NonResourceAttributes {
                    path: none_if_empty(&n.path),
                    verb: none_if_empty(&n.verb),
                }),
            ),
        };
        authzv1::SubjectAccessReviewSpec {
            user: none_if_empty(&user.name),
            uid: none_if_empty(&user.uid),
            groups: (!user.groups.is_empty()).then(|| user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes,
            non_resource_attributes,
        }
    }

    fn forbidden_message(&self, user: &User, reason: &str) -> String {
        let name = go_quote(&user.name);
        let mut msg = match self {
            Self::NonResource(n) => {
                format!(
                    "forbidden: User {name} cannot {} path {}",
                    n.verb,
                    go_quote(&n.path)
                )
            }
            Self::Resource(r) => {
                let mut resource = r.resource.clone();
                if !r.subresource.is_empty() {
                    resource = format!("{resource}/{}", r.subresource);
                }
                let scope = if r.namespace.is_empty() {
                    "at the cluster scope".to_owned()
                } else {
                    format!("in the namespace {}", go_quote(&r.namespace))
                };
                let detail = format!(
                    "User {name} cannot {} resource {} in API group {} {scope}",
                    r.verb,
                    go_quote(&resource),
                    go_quote(&r.group)
                );
                let qualified = if r.group.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}.{}", r.resource, r.group)
                };
                if r.name.is_empty() {
                    format!("{qualified} is forbidden: {detail}")
                } else {
                    format!("{qualified} {} is forbidden: {detail}", go_quote(&r.name))
                }
            }
        };
        if !reason.is_empty() {
            msg.push_str(": ");
            msg.push_str(reason);
        }
        msg
    }
}

/// Go's `%q` (`strconv.Quote`): printable characters kept, control characters escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() => {
                let n = u32::from(c);
                if n < 0x80 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// === Always-allow paths ===

/// `--authorization-always-allow-paths`: exact paths and trailing-`*` prefixes, matched
/// against non-resource requests only (Go's `path.NewAuthorizer`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlwaysAllowPaths {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

/// The upstream default: `/healthz,/readyz,/livez`.
pub const DEFAULT_ALWAYS_ALLOW_PATHS: &[&str] = &["/healthz", "/readyz", "/livez"];

impl AlwaysAllowPaths {
    /// Parses the flag values. A `*` anywhere but at the end is an error naming the flag.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, Error> {
        let mut out = Self::default();
        for p in patterns {
            let p = p.as_ref().trim().trim_start_matches('/');
            if let Some(prefix) = p.strip_suffix('*') {
                if prefix.contains('*') {
                    return Err(flag_error(
                        "authorization-always-allow-paths",
                        p,
                        format!("only trailing * allowed in {p:?}"),
                    ));
                }
                out.prefixes.push(prefix.to_owned());
            } else if p.contains('*') {
                return Err(flag_error(
                    "authorization-always-allow-paths",
                    p,
                    format!("only trailing * allowed in {p:?}"),
                ));
            } else {
                out.exact.push(p.to_owned());
            }
        }
        Ok(out)
    }

    /// Whether a request path is always allowed.
    pub fn matches(&self, path: &str) -> bool {
        let p = path.strip_prefix('/').unwrap_or(path);
        self.exact.iter().any(|e| e == p) || self.prefixes.iter().any(|pre| p.starts_with(pre))
    }
}

impl Default for AuthorizationOptions {
    fn default() -> Self {
        Self {
            always_allow_paths: DEFAULT_ALWAYS_ALLOW_PATHS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            authorized_ttl: Duration::from_secs(10),
            unauthorized_ttl: Duration::from_secs(10),
            cache_size: DEFAULT_CACHE_SIZE,
            call_policy: CallPolicy::default(),
        }
    }
}

/// The authorization flags (B.2).
#[derive(Debug, Clone)]
pub struct AuthorizationOptions {
    /// `--authorization-always-allow-paths`; setting the flag replaces the default list.
    pub always_allow_paths: Vec<String>,
    /// `--authorization-webhook-cache-authorized-ttl` (10s).
    pub authorized_ttl: Duration,
    /// `--authorization-webhook-cache-unauthorized-ttl` (10s).
    pub unauthorized_ttl: Duration,
    /// Entries of the SubjectAccessReview cache (least recently used evicted first).
    pub cache_size: usize,
    /// Deadline and retries of SubjectAccessReviews.
    pub call_policy: CallPolicy,
}

// === The authorizer ===

/// The outcome of authorization.
#[derive(Debug)]
pub enum Decision {
    /// Serve the request.
    Allow,
    /// 403, with the SubjectAccessReview's reason (may be empty).
    Deny {
        /// Appended to the 403 message after `: ` when non-empty.
        reason: String,
    },
    /// The review could not be made: 500, not cached.
    Error(ReviewError),
}

/// Always-allow paths → `system:masters` → SubjectAccessReview (cached).
#[derive(Clone)]
pub struct Authorizer {
    always_allow: AlwaysAllowPaths,
    reviewer: Option<Arc<dyn AccessReviewer>>,
    cache: Arc<TtlCache<String, authzv1::SubjectAccessReviewStatus>>,
    authorized_ttl: Duration,
    unauthorized_ttl: Duration,
    call_policy: CallPolicy,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("always_allow", &self.always_allow)
            .field("reviewer", &self.reviewer)
            .field("authorized_ttl", &self.authorized_ttl)
            .field("unauthorized_ttl", &self.unauthorized_ttl)
            .field("cache", &self.cache)
            .field("call_policy", &self.call_policy)
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    /// Validates the options. `reviewer` is `None` without a kube client: everything not
    /// allowed by path or group is then denied (upstream logs and does the same). Cache
    /// evictions go uncounted; see [`Self::with_metrics`].
    pub fn new(
        options: &AuthorizationOptions,
        reviewer: Option<Arc<dyn AccessReviewer>>,
    ) -> Result<Self, Error> {
        Self::with_metrics(options, reviewer, &AuthMetrics::unregistered())
    }

    /// Like [`Self::new`]; evictions from the review cache are counted in `metrics`.
    pub fn with_metrics(
        options: &AuthorizationOptions,
        reviewer: Option<Arc<dyn AccessReviewer>>,
        metrics: &AuthMetrics,
    ) -> Result<Self, Error> {
        Ok(Self {
            always_allow: AlwaysAllowPaths::parse(&options.always_allow_paths)?,
            reviewer,
            cache: Arc::new(TtlCache::new("authorization", options.cache_size, metrics)),
            authorized_ttl: options.authorized_ttl,
            unauthorized_ttl: options.unauthorized_ttl,
            call_policy: options.call_policy,
        })
    }

    /// Decides whether `user` may do `attrs`.
    pub async fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        if user.in_group(MASTERS_GROUP) {
            return Decision::Allow;
        }
        if let Attributes::NonResource(n) = attrs
            && self.always_allow.matches(&n.path)
        {
            return Decision::Allow;
        }
        let Some(reviewer) = &self.reviewer else {
            return Decision::Deny {
                reason: String::new(),
            };
        };
        let spec = attrs.to_spec(user);
        // Go keys its cache on the JSON of the spec; so do we.
        let key = serde_json::to_string(&spec).unwrap_or_default();
        let status = match self.cache.get(&key) {
            Some(status) => status,
            None => {
                match review_bounded(self.call_policy, || reviewer.review(spec.clone())).await {
                    Ok(status) => {
                        let ttl = if status.allowed {
                            self.authorized_ttl
                        } else {
                            self.unauthorized_ttl
                        };
                        self.cache.insert(key, status.clone(), ttl);
                        status
                    }
                    Err(e) => return Decision::Error(e),
                }
            }
        };
        if status.allowed {
            Decision::Allow
        } else {
            Decision::Deny {
                reason: status.reason.unwrap_or_default(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(p: &[&str]) -> AlwaysAllowPaths {
        AlwaysAllowPaths::parse(p).expect("valid patterns")
    }

    #[test]
    fn default_always_allow_paths_match_exactly() {
        let a = paths(DEFAULT_ALWAYS_ALLOW_PATHS);
        assert!(a.matches("/healthz"));
        assert!(a.matches("/readyz"));
        assert!(a.matches("/livez"));
        assert!(!a.matches("/readyz/ping"));
        assert!(!a.matches("/metrics"));
        assert!(!a.matches("/healthzz"));
    }

    #[test]
    fn a_trailing_star_is_a_prefix_pattern() {
        let a = paths(&["/readyz*", "/debug/*"]);
        assert!(a.matches("/readyz"));
        assert!(a.matches("/readyz/metric-storage-ready"));
        assert!(a.matches("/debug/pprof/heap"));
        assert!(!a.matches("/debug"));
        assert!(!a.matches("/livez"));
    }

    #[test]
    fn a_star_that_is_not_trailing_is_rejected() {
        let err = AlwaysAllowPaths::parse(&["/a*b"])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--authorization-always-allow-paths"), "{err}");
        assert!(err.contains("only trailing * allowed"), "{err}");
    }

    #[test]
    fn setting_the_flag_replaces_the_defaults() {
        let a = paths(&["/metrics"]);
        assert!(a.matches("/metrics"));
        assert!(!a.matches("/readyz"));
    }

    fn pods(ns: &str, name: &str) -> Attributes {
        Attributes::Resource(ResourceAttributes {
            verb: if name.is_empty() { "list" } else { "get" }.into(),
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            resource: "pods".into(),
            namespace: ns.into(),
            name: name.into(),
            ..ResourceAttributes::default()
        })
    }

    fn alice() -> User {
        User {
            name: "alice".into(),
            ..User::default()
        }
    }

    #[test]
    fn selectors_are_sent_as_raw_selectors() {
        let attrs = Attributes::Resource(ResourceAttributes {
            verb: "list".into(),
            resource: "pods".into(),
            field_selector: Some("metadata.name=x".into()),
            label_selector: Some(String::new()),
            ..ResourceAttributes::default()
        });
        let spec = attrs.to_spec(&alice());
        let ra = spec.resource_attributes.expect("resource attributes");
        assert_eq!(
            ra.field_selector.and_then(|f| f.raw_selector).as_deref(),
            Some("metadata.name=x")
        );
        assert!(ra.label_selector.is_none(), "an empty selector is omitted");
        assert_eq!(spec.user.as_deref(), Some("alice"));
        assert!(spec.groups.is_none() && spec.extra.is_none() && spec.uid.is_none());
    }

    #[test]
    fn names_are_quoted_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("x\u{1}y\n"), r#""x\x01y\n""#);
        assert_eq!(go_quote("ümlaut"), "\"ümlaut\"");
    }

    #[test]
    fn forbidden_messages_match_go() {
        assert_eq!(
            pods("default", "").forbidden_message(&alice(), ""),
            r#"pods.metrics.k8s.io is forbidden: User "alice" cannot list resource "pods" in API group "metrics.k8s.io" in the namespace "default""#
        );
        assert_eq!(
            pods("", "").forbidden_message(&alice(), "no RBAC policy matched"),
            r#"pods.metrics.k8s.io is forbidden: User "alice" cannot list resource "pods" in API group "metrics.k8s.io" at the cluster scope: no RBAC policy matched"#
        );
        assert_eq!(
            pods("kube-system", "coredns").forbidden_message(&alice(), ""),
            r#"pods.metrics.k8s.io "coredns" is forbidden: User "alice" cannot get resource "pods" in API group "metrics.k8s.io" in the namespace "kube-system""#
        );
        assert_eq!(
            Attributes::non_resource(&http::Method::GET, "/metrics")
                .forbidden_message(&User::anonymous(), ""),
            r#"forbidden: User "system:anonymous" cannot get path "/metrics""#
        );
    }
}
