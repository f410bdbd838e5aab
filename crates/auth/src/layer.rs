//! The authentication and authorization filters of the serving stack ([`crate::stack`]),
//! and the 401/403/500 responses they send.

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use metrics_server_api::go_http_error;
use serde::Serialize;
use tower::{Service, ServiceExt as _};

use crate::authn::Authenticator;
use crate::authz::{Attributes, AuthorizationAttributes as _, Authorizer, Decision};
use crate::serve::PeerCertificates;
use crate::stack::Filter;
use crate::user::User;

/// Go's `WithAuthentication`: runs the authenticator chain; 401 on failure. The [`User`]
/// joins the request extensions and identity headers (`X-Remote-*`, `Authorization`) are
/// removed, so nothing below ever sees them.
#[derive(Clone)]
pub struct AuthenticationFilter {
    authn: Arc<Authenticator>,
}

impl fmt::Debug for AuthenticationFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticationFilter")
            .field("authn", &self.authn)
            .finish()
    }
}

impl AuthenticationFilter {
    /// The filter for `authn`.
    pub fn new(authn: Authenticator) -> Self {
        Self {
            authn: Arc::new(authn),
        }
    }
}

/// Why the aggregator's requests fail authentication, nearly always.
const FRONT_PROXY_HINT: &str = "a request with front-proxy headers failed authentication: kube-apiserver's \
--proxy-client-cert-file must be signed by the requestheader-client-ca-file in \
kube-system/extension-apiserver-authentication (or --requestheader-client-ca-file) and its CN must be in \
requestheader-allowed-names; run `metrics-server doctor`";

impl Filter for AuthenticationFilter {
    async fn filter<S, ReqB, ResB>(
        &self,
        mut req: Request<ReqB>,
        next: S,
    ) -> Result<Response<ResB>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqB: Send + 'static,
        ResB: From<String> + Send + 'static,
    {
        let peer = req.extensions().get::<PeerCertificates>();
        let user = match self.authn.authenticate(req.headers(), peer).await {
            Ok(user) => user,
            Err(failure) => {
                if self
                    .authn
                    .config()
                    .load()
                    .has_front_proxy_headers(req.headers())
                {
                    tracing::error!(
                        err = %failure,
                        hint = FRONT_PROXY_HINT,
                        "Unable to authenticate the request"
                    );
                } else {
                    tracing::error!(err = %failure, "Unable to authenticate the request");
                }
                return Ok(unauthorized());
            }
        };
        // Identity headers were consumed (or are untrusted); handlers never see them.
        self.authn.config().load().strip_headers(req.headers_mut());
        req.headers_mut().remove(header::AUTHORIZATION);
        req.extensions_mut().insert(user);
        next.oneshot(req).await
    }
}

/// Go's `WithAuthorization`: 403 when denied, 500 when the review could not be made.
/// Reads the attributes the request-info filter stored (deriving them as a fallback) and
/// the [`User`] authentication stored (anonymous if none).
#[derive(Clone)]
pub struct AuthorizationFilter {
    authz: Arc<Authorizer>,
}

impl fmt::Debug for AuthorizationFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationFilter")
            .field("authz", &self.authz)
            .finish()
    }
}

impl AuthorizationFilter {
    /// The filter for `authz`.
    pub fn new(authz: Authorizer) -> Self {
        Self {
            authz: Arc::new(authz),
        }
    }
}

impl Filter for AuthorizationFilter {
    async fn filter<S, ReqB, ResB>(
        &self,
        req: Request<ReqB>,
        next: S,
    ) -> Result<Response<ResB>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqB: Send + 'static,
        ResB: From<String> + Send + 'static,
    {
        let user = req
            .extensions()
            .get::<User>()
            .cloned()
            .unwrap_or_else(User::anonymous);
        let attrs = req
            .extensions()
            .get::<Attributes>()
            .cloned()
            .unwrap_or_else(|| fallback_attributes(req.method(), req.uri()));
        match self.authz.authorize(&user, &attrs).await {
            Decision::Allow => next.oneshot(req).await,
            Decision::Deny { reason } => {
                tracing::debug!(uri = %req.uri(), user = %user.name, %reason, "Forbidden");
                Ok(forbidden(&attrs, &user, &reason))
            }
            Decision::Error(error) => {
                tracing::error!(%error, "Failed to make webhook authorizer request");
                Ok(internal_error(req.uri(), &error.to_string()))
            }
        }
    }
}

/// The API's own derivation, for a request that did not pass the request-info filter.
fn fallback_attributes(method: &Method, uri: &Uri) -> Attributes {
    metrics_server_api::request_attributes(method.as_str(), uri.path(), uri.query().unwrap_or(""))
}

// === Responses ===

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    message: &'a str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    code: u16,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Details<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'a str,
}

fn status_response<B: From<String>>(code: StatusCode, status: &Status<'_>) -> Response<B> {
    // Go's JSON encoder ends the document with a newline.
    let mut body = serde_json::to_string(status).unwrap_or_default();
    body.push('\n');
    let mut resp = Response::new(B::from(body));
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The 401 Status body upstream sends.
pub fn unauthorized<B: From<String>>() -> Response<B> {
    status_response(
        StatusCode::UNAUTHORIZED,
        &Status {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Failure",
            message: "Unauthorized",
            reason: "Unauthorized",
            details: None,
            code: 401,
        },
    )
}

/// The 403 Status for a denied request (Go's `responsewriters.Forbidden`).
pub fn forbidden<B: From<String>>(attrs: &Attributes, user: &User, reason: &str) -> Response<B> {
    let message = attrs.forbidden_message(user, reason);
    let details = match attrs {
        Attributes::Resource(r) => Details {
            name: &r.name,
            group: &r.group,
            kind: &r.resource,
        },
        Attributes::NonResource(_) => Details {
            name: "",
            group: "",
            kind: "",
        },
    };
    status_response(
        StatusCode::FORBIDDEN,
        &Status {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Failure",
            message: &message,
            reason: "Forbidden",
            details: Some(details),
            code: 403,
        },
    )
}

/// Go's `responsewriters.InternalError`: plain text, not a Status.
fn internal_error<B: From<String>>(uri: &Uri, error: &str) -> Response<B> {
    let request_uri = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), ToString::to_string);
    go_http_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("Internal Server Error: {request_uri:?}: {error}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::ResourceAttributes;

    fn body(r: Response<String>) -> String {
        r.into_body()
    }

    #[test]
    fn the_401_body_is_byte_identical_to_upstream() {
        assert_eq!(
            body(unauthorized()),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}\n"
        );
    }

    #[test]
    fn a_non_resource_403_has_empty_details() {
        let attrs = Attributes::non_resource(&Method::GET, "/metrics");
        assert_eq!(
            body(forbidden(&attrs, &User::anonymous(), "")),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"forbidden: User \\\"system:anonymous\\\" cannot get path \\\"/metrics\\\"\",\"reason\":\"Forbidden\",\"details\":{},\"code\":403}\n"
        );
    }

    #[test]
    fn a_resource_403_names_group_and_kind() {
        let attrs = Attributes::Resource(ResourceAttributes {
            verb: "list".into(),
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            resource: "nodes".into(),
            ..ResourceAttributes::default()
        });
        let user = User {
            name: "bob".into(),
            ..User::default()
        };
        let b = body(forbidden(&attrs, &user, ""));
        assert!(
            b.contains(
                "\"details\":{\"group\":\"metrics.k8s.io\",\"kind\":\"nodes\"},\"code\":403}"
            ),
            "{b}"
        );
    }
}
