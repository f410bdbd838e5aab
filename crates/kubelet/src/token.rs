//! Bearer token for kubelet requests, with periodic re-reads of a token file.
//!
//! Bound service-account tokens rotate on disk (about hourly), so like client-go's cached file
//! token source the file is re-read once the cached copy is older than a refresh period. A
//! failed re-read keeps the previous token rather than failing scrapes.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hyper::header::HeaderValue;
use tokio::time::Instant;

/// How often a token file is re-read by default (client-go uses one minute).
pub const DEFAULT_TOKEN_REFRESH: Duration = Duration::from_secs(60);

/// Where the bearer token comes from. `Debug` never prints a static token.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum TokenSource {
    /// No `Authorization` header.
    #[default]
    None,
    /// A fixed token (kubeconfig `token:`).
    Static(String),
    /// A token file (in-cluster `/var/run/secrets/kubernetes.io/serviceaccount/token`,
    /// kubeconfig `tokenFile:`), re-read when older than `refresh`.
    File {
        /// The file.
        path: PathBuf,
        /// Re-read period.
        refresh: Duration,
    },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Static(_) => f.write_str("Static(<redacted>)"),
            Self::File { path, refresh } => f
                .debug_struct("File")
                .field("path", path)
                .field("refresh", refresh)
                .finish(),
        }
    }
}

/// Errors loading the initial token. Fatal at startup.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("reading token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The token is empty or not a valid header value.
    #[error("token from {0} is empty or not a valid header value")]
    Invalid(String),
}

/// A loaded token that hands out `Authorization` header values.
#[derive(Debug)]
pub(crate) struct BearerToken {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    None,
    Static(HeaderValue),
    File {
        path: PathBuf,
        refresh: Duration,
        cached: Mutex<(HeaderValue, Instant)>,
    },
}

impl BearerToken {
    pub(crate) fn load(source: &TokenSource) -> Result<Self, TokenError> {
        let kind = match source {
            TokenSource::None => Kind::None,
            TokenSource::Static(token) => Kind::Static(
                header_value(token).ok_or_else(|| TokenError::Invalid("static token".into()))?,
            ),
            TokenSource::File { path, refresh } => Kind::File {
                cached: Mutex::new((read_token_file(path)?, Instant::now())),
                path: path.clone(),
                refresh: *refresh,
            },
        };
        Ok(Self { kind })
    }

    /// The current `Authorization` value, re-reading the file if the cache is stale.
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        match &self.kind {
            Kind::None => None,
            Kind::Static(v) => Some(v.clone()),
            Kind::File {
                path,
                refresh,
                cached,
            } => {
                // Held across a tiny file read at most once per refresh period; concurrent
                // callers wait briefly instead of all re-reading the same file.
                let mut guard = cached.lock().unwrap_or_else(PoisonError::into_inner);
                if guard.1.elapsed() >= *refresh {
                    match read_token_file(path) {
                        Ok(v) => *guard = (v, Instant::now()),
                        Err(err) => {
                            // Keep using the old token; retry at the next refresh.
                            guard.1 = Instant::now();
                            tracing::warn!(err = %err, "Failed to reload kubelet bearer token, keeping the previous one");
                        }
                    }
                }
                Some(guard.0.clone())
            }
        }
    }
}

fn read_token_file(path: &PathBuf) -> Result<HeaderValue, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.clone(),
        source,
    })?;
    header_value(&text).ok_or_else(|| TokenError::Invalid(path.display().to_string()))
}

fn header_value(token: &str) -> Option<HeaderValue> {
    // client-go trims surrounding whitespace (files usually end with a newline).
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_tokens_are_trimmed_and_marked_sensitive() {
        let t = BearerToken::load(&TokenSource::Static(" abc\n".into())).unwrap();
        let v = t.header().unwrap();
        assert_eq!(v, "Bearer abc");
        assert!(v.is_sensitive());
        assert!(BearerToken::load(&TokenSource::Static("  ".into())).is_err());
        assert!(
            BearerToken::load(&TokenSource::None)
                .unwrap()
                .header()
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn token_files_are_reread_after_the_refresh_period_and_survive_read_errors() {
        let dir = metrics_server_test_support::PemDir::new().unwrap();
        let path = dir.write("token", "one\n").unwrap();
        let t = BearerToken::load(&TokenSource::File {
            path: path.clone(),
            refresh: Duration::from_secs(60),
        })
        .unwrap();
        assert_eq!(t.header().unwrap(), "Bearer one");

        std::fs::write(&path, "two\n").unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(t.header().unwrap(), "Bearer one", "still cached");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(t.header().unwrap(), "Bearer two", "re-read after 60s");

        std::fs::remove_file(&path).unwrap();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            t.header().unwrap(),
            "Bearer two",
            "old token kept on read error"
        );
    }
}
