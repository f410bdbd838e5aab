//! The two calls to kube-apiserver: `TokenReview` and `SubjectAccessReview`, behind traits so
//! tests (and alternative transports) can substitute fakes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::authorization::v1::{
    SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::api::{Api, PostParams};

use crate::error::ReviewError;

/// A boxed, sendable future (keeps the traits object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reviews a bearer token (`authentication.k8s.io/v1` TokenReview).
pub trait TokenReviewer: Send + Sync + fmt::Debug {
    /// Submits the spec and returns the status kube-apiserver filled in.
    fn review(
        &self,
        spec: TokenReviewSpec,
    ) -> BoxFuture<'_, Result<TokenReviewStatus, ReviewError>>;
}

/// Asks whether a user may do something (`authorization.k8s.io/v1` SubjectAccessReview).
pub trait AccessReviewer: Send + Sync + fmt::Debug {
    /// Submits the spec and returns the status kube-apiserver filled in.
    fn review(
        &self,
        spec: SubjectAccessReviewSpec,
    ) -> BoxFuture<'_, Result<SubjectAccessReviewStatus, ReviewError>>;
}

/// [`TokenReviewer`] that POSTs to `/apis/authentication.k8s.io/v1/tokenreviews`.
#[derive(Clone)]
pub struct KubeTokenReviewer {
    api: Api<TokenReview>,
}

impl KubeTokenReviewer {
    /// Uses `client` (from `--authentication-kubeconfig` or in-cluster config).
    pub fn new(client: kube::Client) -> Self {
        Self {
            api: Api::all(client),
        }
    }
}

impl fmt::Debug for KubeTokenReviewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeTokenReviewer").finish_non_exhaustive()
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review(
        &self,
        spec: TokenReviewSpec,
    ) -> BoxFuture<'_, Result<TokenReviewStatus, ReviewError>> {
        Box::pin(async move {
            let review = TokenReview {
                spec,
                ..TokenReview::default()
            };
            let created = self.api.create(&PostParams::default(), &review).await?;
            Ok(created.status.unwrap_or_default())
        })
    }
}

/// [`AccessReviewer`] that POSTs to `/apis/authorization.k8s.io/v1/subjectaccessreviews`.
#[derive(Clone)]
pub struct KubeAccessReviewer {
    api: Api<SubjectAccessReview>,
}

impl KubeAccessReviewer {
    /// Uses `client` (from `--authorization-kubeconfig` or in-cluster config).
    pub fn new(client: kube::Client) -> Self {
        Self {
            api: Api::all(client),
        }
    }
}

impl fmt::Debug for KubeAccessReviewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeAccessReviewer").finish_non_exhaustive()
    }
}

impl AccessReviewer for KubeAccessReviewer {
    fn review(
        &self,
        spec: SubjectAccessReviewSpec,
    ) -> BoxFuture<'_, Result<SubjectAccessReviewStatus, ReviewError>> {
        Box::pin(async move {
            let review = SubjectAccessReview {
                spec,
                ..SubjectAccessReview::default()
            };
            let created = self.api.create(&PostParams::default(), &review).await?;
            Ok(created.status.unwrap_or_default())
        })
    }
}
