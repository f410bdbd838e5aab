//! The two calls to kube-apiserver: `TokenReview` and `SubjectAccessReview`, behind traits so
//! tests (and alternative transports) can substitute fakes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

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

// === Deadlines and retries ===

/// How a call to kube-apiserver is bounded: one deadline for the whole call, retries
/// included, and a few retries with growing backoff for transient failures (connection
/// errors, 429, 5xx), as the generic apiserver's webhook clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy {
    /// Total time the call may take; past it the call fails (and the request fails closed).
    pub deadline: Duration,
    /// Attempts in all (at least one is always made).
    pub max_attempts: u32,
    /// Wait before the second attempt; each later wait is 1.5 times the previous one.
    pub first_backoff: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
        }
    }
}

/// Whether a kube error may go away by itself (the server was unreachable or overloaded).
pub(crate) fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

fn review_is_transient(error: &ReviewError) -> bool {
    match error {
        ReviewError::Kube(e) => is_transient(e),
        ReviewError::DeadlineExceeded(_) | ReviewError::Other(_) => false,
    }
}

/// Runs `attempt` under `policy`; `transient` says which errors are worth another attempt and
/// `expired` builds the error returned when the deadline passes.
pub(crate) async fn bounded<T, E, Fut>(
    policy: CallPolicy,
    mut attempt: impl FnMut() -> Fut,
    transient: impl Fn(&E) -> bool,
    expired: impl FnOnce() -> E,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + policy.deadline;
    let attempts = async {
        let mut backoff = policy.first_backoff;
        let mut made = 0;
        loop {
            made += 1;
            match attempt().await {
                Err(e) if made < policy.max_attempts && transient(&e) => {
                    // Not worth waiting if the next attempt could not start before the deadline.
                    if tokio::time::Instant::now() + backoff >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.mul_f64(1.5);
                }
                other => return other,
            }
        }
    };
    match tokio::time::timeout_at(deadline, attempts).await {
        Ok(result) => result,
        Err(_) => Err(expired()),
    }
}

/// A review under `policy`; the error after the deadline is [`ReviewError::DeadlineExceeded`].
pub(crate) async fn review_bounded<T, Fut>(
    policy: CallPolicy,
    attempt: impl FnMut() -> Fut,
) -> Result<T, ReviewError>
where
    Fut: Future<Output = Result<T, ReviewError>>,
{
    bounded(policy, attempt, review_is_transient, || {
        ReviewError::DeadlineExceeded(policy.deadline)
    })
    .await
}

/// A kube call under `policy`; the error after the deadline is a (transient) service error.
pub(crate) async fn kube_bounded<T, Fut>(
    policy: CallPolicy,
    attempt: impl FnMut() -> Fut,
) -> Result<T, kube::Error>
where
    Fut: Future<Output = Result<T, kube::Error>>,
{
    bounded(policy, attempt, is_transient, || {
        kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from kube-apiserver within {:?}", policy.deadline),
        )))
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn policy(deadline_ms: u64, attempts: u32) -> CallPolicy {
        CallPolicy {
            deadline: Duration::from_millis(deadline_ms),
            max_attempts: attempts,
            first_backoff: Duration::from_millis(10),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_fails_at_the_deadline() {
        let r: Result<(), ReviewError> = review_bounded(policy(10_000, 5), || {
            std::future::pending::<Result<(), ReviewError>>()
        })
        .await;
        assert!(matches!(r, Err(ReviewError::DeadlineExceeded(d)) if d == Duration::from_secs(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_a_bounded_number_of_times() {
        let calls = AtomicU32::new(0);
        let r: Result<(), kube::Error> = kube_bounded(policy(10_000, 3), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(kube::Error::Service("connection refused".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_that_succeeds_returns_the_answer() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, kube::Error> = kube_bounded(policy(10_000, 5), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(kube::Error::Service("reset".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.ok(), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn definite_answers_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), ReviewError> = review_bounded(policy(10_000, 5), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(ReviewError::Other("forbidden".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
