//! Errors at the crate boundary.

use std::path::PathBuf;

/// Everything that can go wrong while setting up serving, authentication or authorization.
///
/// Request-time failures never surface as this type: they become 401/403/500 responses.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag value was rejected. The message names the flag, as pflag/cobra would.
    #[error("invalid argument {value:?} for \"--{flag}\" flag: {reason}")]
    Flag {
        /// Flag name without the leading dashes.
        flag: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A certificate, key or CA file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },

    /// A certificate, key or CA file could not be written (self-signed fallback).
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },

    /// PEM or DER content was unusable.
    #[error("{what}: {reason}")]
    BadPem {
        /// What was being parsed (usually a file name or ConfigMap key).
        what: String,
        /// The parse error.
        reason: String,
    },

    /// Only one of a pair of files was given or readable.
    #[error("{0}")]
    Pair(String),

    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),

    /// Generating the self-signed serving certificate failed.
    #[error("unable to generate self signed cert: {0}")]
    Generate(#[from] rcgen::Error),

    /// A CA bundle could not be turned into a verifier (empty or malformed).
    #[error("client CA {what}: {reason}")]
    ClientCa {
        /// Where the bundle came from.
        what: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The `extension-apiserver-authentication` ConfigMap could not be read at startup and
    /// `--authentication-tolerate-lookup-failure` was not set.
    #[error("unable to load configmap based request-header-client-ca-file: {0}")]
    Lookup(#[source] Box<kube::Error>),

    /// A ConfigMap value that must be a JSON string array was not.
    #[error("configmap key {key}: {reason}")]
    ConfigMapValue {
        /// The key.
        key: &'static str,
        /// The parse error.
        reason: String,
    },
}

/// A review call (TokenReview or SubjectAccessReview) failed; not cached, never fatal.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// kube-apiserver could not be reached or returned an error.
    #[error(transparent)]
    Kube(#[from] Box<kube::Error>),
    /// No answer within the call's deadline (retries included).
    #[error("no answer from kube-apiserver within {0:?}")]
    DeadlineExceeded(std::time::Duration),
    /// A fake or alternative reviewer failed.
    #[error("{0}")]
    Other(String),
}

impl From<kube::Error> for ReviewError {
    fn from(e: kube::Error) -> Self {
        Self::Kube(Box::new(e))
    }
}

pub(crate) fn flag_error(flag: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::Flag {
        flag,
        value: value.to_owned(),
        reason: reason.into(),
    }
}
