//! The tower middleware: authenticate, authorize, then hand the request (with a [`User`]
//! extension) to the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use serde::Serialize;
use tower::{Layer, Service};

use crate::authn::Authenticator;
use crate::authz::{Attributes, AuthorizationAttributes as _, Authorizer, Decision};
use crate::serve::PeerCertificates;
use crate::user::User;

type AttributesFn = dyn Fn(&Method, &Uri) -> Attributes + Send + Sync;

/// Wraps a service with delegated authentication and authorization.
#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

struct Shared {
    authn: Authenticator,
    authz: Authorizer,
    attributes: Box<AttributesFn>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("authn", &self.shared.authn)
            .field("authz", &self.shared.authz)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// `attributes` derives the E.9 authorization attributes from the method and URI
    /// (the API crate's `request_attributes`, bridged to [`Attributes`]).
    pub fn new(
        authn: Authenticator,
        authz: Authorizer,
        attributes: impl Fn(&Method, &Uri) -> Attributes + Send + Sync + 'static,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                authn,
                authz,
                attributes: Box::new(attributes),
            }),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; keep the one that is (tower's standard swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let peer = req.extensions().get::<PeerCertificates>();
            let user = match shared.authn.authenticate(req.headers(), peer).await {
                Ok(user) => user,
                Err(failure) => {
                    tracing::error!(err = %failure, "Unable to authenticate the request");
                    return Ok(unauthorized());
                }
            };
            // Identity headers were consumed (or are untrusted); handlers never see them.
            shared
                .authn
                .config()
                .load()
                .strip_headers(req.headers_mut());
            req.headers_mut().remove(header::AUTHORIZATION);

            let attrs = (shared.attributes)(req.method(), req.uri());
            match shared.authz.authorize(&user, &attrs).await {
                Decision::Allow => {}
                Decision::Deny { reason } => {
                    tracing::debug!(uri = %req.uri(), user = %user.name, %reason, "Forbidden");
                    return Ok(forbidden(&attrs, &user, &reason));
                }
                Decision::Error(error) => {
                    tracing::error!(%error, "Failed to make webhook authorizer request");
                    return Ok(internal_error(req.uri(), &error.to_string()));
                }
            }
            req.extensions_mut().insert(user);
            inner.call(req).await
        })
    }
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
    let mut resp = Response::new(B::from(format!(
        "Internal Server Error: {request_uri:?}: {error}\n"
    )));
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
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
