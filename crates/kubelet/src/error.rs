//! Per-node scrape errors and their bounded classes.

use std::fmt;
use std::time::Duration;

use metrics_server_core::DecodeError;

use crate::target::AddressError;

/// Why one node contributed nothing (or no node point) this tick.
///
/// Transport errors keep the URL and a flattened cause chain as text, so the error is cheap to
/// clone into the per-node health record. Texts follow upstream's (`Get "<url>": ...`,
/// `request failed, status: "401 Unauthorized"`) so operators' log searches keep working.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    /// No node address of a preferred type.
    #[error(transparent)]
    NoAddress(#[from] AddressError),
    /// The URL could not be turned into a request (for example a bad path annotation).
    #[error("invalid URL {url:?}: {detail}")]
    InvalidUrl {
        /// The URL that was built.
        url: String,
        /// Why it is invalid.
        detail: String,
    },
    /// Name resolution failed.
    #[error("Get {url:?}: {detail}")]
    Dns {
        /// Request URL.
        url: String,
        /// Flattened cause chain.
        detail: String,
    },
    /// The TCP connection was refused (kubelet down or port closed).
    #[error("Get {url:?}: {detail}")]
    ConnectRefused {
        /// Request URL.
        url: String,
        /// Flattened cause chain.
        detail: String,
    },
    /// No connection (TCP or TLS handshake) before the deadline: usually a firewall or
    /// security group dropping packets to the kubelet port.
    #[error("Get {url:?}: context deadline exceeded (while connecting)")]
    ConnectTimeout {
        /// Request URL.
        url: String,
    },
    /// TLS failed: unknown CA, missing IP SAN, expired, client certificate refused...
    #[error("Get {url:?}: {detail}")]
    Tls {
        /// Request URL.
        url: String,
        /// What about the handshake failed.
        kind: TlsFailure,
        /// Flattened cause chain.
        detail: String,
    },
    /// Any other transport failure (connection reset, protocol error, ...).
    #[error("Get {url:?}: {detail}")]
    Transport {
        /// Request URL.
        url: String,
        /// Flattened cause chain.
        detail: String,
    },
    /// The kubelet answered with a status other than 200.
    #[error("request failed, status: \"{code} {reason}\"")]
    HttpStatus {
        /// HTTP status code (401 and 403 point at RBAC or credentials).
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// Connected, but the response did not complete before the deadline (slow kubelet).
    #[error("Get {url:?}: context deadline exceeded")]
    Timeout {
        /// Request URL.
        url: String,
    },
    /// The response body exceeded the configured cap.
    #[error("response body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The body is not a valid exposition; the whole node is dropped.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The node reported zero or missing CPU or memory, so its node point was dropped
    /// (its pods are still kept). Recorded in health, not counted as a failed request.
    #[error("Failed getting complete node metric")]
    Incomplete {
        /// Which value was zero, missing or unstorable, for the log.
        reason: String,
    },
}

/// Why a TLS handshake with a kubelet failed; each points at a different fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// The kubelet's certificate is not signed by a CA we trust (`--kubelet-certificate-authority`).
    UnknownAuthority,
    /// The certificate has no SAN for the address we connect to (kubelet self-signed or
    /// serving certificates issued without the node's IP).
    NameMismatch,
    /// The certificate is expired or not yet valid.
    Expired,
    /// Anything else: protocol mismatch, our client certificate refused, an alert.
    Handshake,
}

impl TlsFailure {
    /// Classifies a rustls error.
    pub(crate) fn of(err: &rustls::Error) -> Self {
        use rustls::CertificateError as C;
        match err {
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer | C::BadSignature | C::UnknownRevocationStatus => {
                    Self::UnknownAuthority
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => Self::NameMismatch,
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => Self::Expired,
                _ => Self::Handshake,
            },
            _ => Self::Handshake,
        }
    }

    /// Classifies a rustls error that only survived as text (h2 keeps IO errors as text).
    pub(crate) fn of_text(text: &str) -> Self {
        if [
            "UnknownIssuer",
            "unknown issuer",
            "BadSignature",
            "bad signature",
        ]
        .iter()
        .any(|m| text.contains(m))
        {
            Self::UnknownAuthority
        } else if text.contains("NotValidForName") || text.contains("not valid for name") {
            Self::NameMismatch
        } else if ["xpired", "NotValidYet", "not valid yet"]
            .iter()
            .any(|m| text.contains(m))
        {
            Self::Expired
        } else {
            Self::Handshake
        }
    }

    /// The stable class name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownAuthority => "tls_unknown_authority",
            Self::NameMismatch => "tls_name_mismatch",
            Self::Expired => "tls_expired",
            Self::Handshake => "tls_handshake",
        }
    }
}

/// A bounded classification of [`ScrapeError`] for metrics labels and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// [`ScrapeError::NoAddress`].
    NoAddress,
    /// [`ScrapeError::InvalidUrl`].
    InvalidUrl,
    /// [`ScrapeError::Dns`].
    Dns,
    /// [`ScrapeError::ConnectRefused`].
    ConnectRefused,
    /// [`ScrapeError::ConnectTimeout`].
    ConnectTimeout,
    /// [`ScrapeError::Tls`], with what failed.
    Tls(TlsFailure),
    /// [`ScrapeError::Transport`].
    Transport,
    /// [`ScrapeError::HttpStatus`], with the code so 401/403 stand out.
    HttpStatus(u16),
    /// [`ScrapeError::Timeout`].
    Timeout,
    /// [`ScrapeError::BodyTooLarge`].
    BodyTooLarge,
    /// [`ScrapeError::Decode`].
    Decode,
    /// [`ScrapeError::Incomplete`].
    Incomplete,
}

impl ErrorClass {
    /// A stable snake_case name (`http_status` for every status code).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAddress => "no_address",
            Self::InvalidUrl => "invalid_url",
            Self::Dns => "dns",
            Self::ConnectRefused => "connect_refused",
            Self::ConnectTimeout => "connect_timeout",
            Self::Tls(kind) => kind.as_str(),
            Self::Transport => "transport",
            Self::HttpStatus(_) => "http_status",
            Self::Timeout => "timeout",
            Self::BodyTooLarge => "body_too_large",
            Self::Decode => "decode",
            Self::Incomplete => "incomplete",
        }
    }
}

impl ErrorClass {
    /// A short phrase naming the failure, for messages such as
    /// `last scrape failed 40s ago: connect timeout to 10.0.0.81:10250`.
    pub fn summary(self) -> String {
        match self {
            Self::NoAddress => "no address of a preferred type".to_owned(),
            Self::InvalidUrl => "invalid scrape URL".to_owned(),
            Self::Dns => "DNS lookup failed for".to_owned(),
            Self::ConnectRefused => "connection refused by".to_owned(),
            Self::ConnectTimeout => "connect timeout to".to_owned(),
            Self::Tls(TlsFailure::UnknownAuthority) => {
                "TLS: certificate signed by an unknown authority at".to_owned()
            }
            Self::Tls(TlsFailure::NameMismatch) => {
                "TLS: certificate not valid for the address".to_owned()
            }
            Self::Tls(TlsFailure::Expired) => {
                "TLS: certificate expired or not yet valid at".to_owned()
            }
            Self::Tls(TlsFailure::Handshake) => "TLS handshake failed with".to_owned(),
            Self::Transport => "connection failed to".to_owned(),
            Self::HttpStatus(code) => format!("HTTP {code} from"),
            Self::Timeout => "no complete answer before the deadline from".to_owned(),
            Self::BodyTooLarge => "response larger than --kubelet-max-body-bytes from".to_owned(),
            Self::Decode => "unparsable metrics from".to_owned(),
            Self::Incomplete => "zero or missing node CPU or memory from".to_owned(),
        }
    }

    /// What the class usually means for an operator, and where to look.
    pub fn hint(self) -> &'static str {
        match self {
            Self::NoAddress => {
                "the node lists no address of a type in --kubelet-preferred-address-types"
            }
            Self::InvalidUrl => "check the node's metrics.k8s.io/resource-metrics-path annotation",
            Self::Dns => {
                "the node's hostname does not resolve from metrics-server; prefer InternalIP in --kubelet-preferred-address-types"
            }
            Self::ConnectRefused => {
                "nothing listens on the kubelet port at that address, or a firewall rejects it"
            }
            Self::ConnectTimeout => {
                "kubelet port unreachable from metrics-server (firewall, security group or network policy)"
            }
            Self::Tls(TlsFailure::UnknownAuthority) => {
                "the kubelet's serving certificate is not signed by --kubelet-certificate-authority"
            }
            Self::Tls(TlsFailure::NameMismatch) => {
                "the kubelet's serving certificate has no SAN for the scraped address (enable serverTLSBootstrap and approve the kubelet CSRs, or pick an address type the certificate covers)"
            }
            Self::Tls(TlsFailure::Expired) => {
                "the kubelet's serving certificate is expired or not yet valid (rotation, or clock skew)"
            }
            Self::Tls(TlsFailure::Handshake) => {
                "TLS versions, ciphers or client certificates do not match between metrics-server and the kubelet"
            }
            Self::Transport => "the connection broke during the request",
            Self::HttpStatus(401) => {
                "the kubelet rejected metrics-server's credentials (webhook authentication on the kubelet)"
            }
            Self::HttpStatus(403) => "metrics-server's identity lacks RBAC get on nodes/metrics",
            Self::HttpStatus(_) => "the kubelet answered with an error status",
            Self::Timeout => "the kubelet is overloaded or slow; see --kubelet-request-timeout",
            Self::BodyTooLarge => {
                "raise --kubelet-max-body-bytes if the node really runs that many containers"
            }
            Self::Decode => {
                "the kubelet (or a proxy in front of it) returned something that is not Prometheus text"
            }
            Self::Incomplete => {
                "the kubelet or its container runtime reports no usage for the node yet"
            }
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HttpStatus(code) => write!(f, "http_status({code})"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl ScrapeError {
    /// The bounded class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::NoAddress(_) => ErrorClass::NoAddress,
            Self::InvalidUrl { .. } => ErrorClass::InvalidUrl,
            Self::Dns { .. } => ErrorClass::Dns,
            Self::ConnectRefused { .. } => ErrorClass::ConnectRefused,
            Self::ConnectTimeout { .. } => ErrorClass::ConnectTimeout,
            Self::Tls { kind, .. } => ErrorClass::Tls(*kind),
            Self::Transport { .. } => ErrorClass::Transport,
            Self::HttpStatus { code, .. } => ErrorClass::HttpStatus(*code),
            Self::Timeout { .. } => ErrorClass::Timeout,
            Self::BodyTooLarge { .. } => ErrorClass::BodyTooLarge,
            Self::Decode(_) => ErrorClass::Decode,
            Self::Incomplete { .. } => ErrorClass::Incomplete,
        }
    }

    /// Whether a deadline expired (upstream logs these as
    /// `Failed to scrape node, timeout to access kubelet`).
    pub fn is_deadline(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::ConnectTimeout { .. })
    }
}

/// Flattens an error and its sources into `a: b: c`, skipping a source whose text the
/// previous level already included (hyper and rustls often repeat themselves).
pub(crate) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// Time budget text for logs, Go style (`10s`, `1.5s`, `300ms`).
pub(crate) fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_read_like_upstream_and_keep_their_code() {
        let e = ScrapeError::HttpStatus {
            code: 401,
            reason: "Unauthorized".into(),
        };
        assert_eq!(
            e.to_string(),
            r#"request failed, status: "401 Unauthorized""#
        );
        assert_eq!(e.class(), ErrorClass::HttpStatus(401));
        assert_eq!(e.class().as_str(), "http_status");
        assert_eq!(e.class().to_string(), "http_status(401)");
        assert!(!e.is_deadline());
    }

    #[test]
    fn timeouts_read_like_go_context_errors() {
        let e = ScrapeError::Timeout {
            url: "https://10.0.0.1:10250/metrics/resource".into(),
        };
        assert_eq!(
            e.to_string(),
            r#"Get "https://10.0.0.1:10250/metrics/resource": context deadline exceeded"#
        );
        assert!(e.is_deadline());
        assert!(ScrapeError::ConnectTimeout { url: String::new() }.is_deadline());
    }

    #[test]
    fn tls_failures_are_told_apart_from_text_as_from_errors() {
        use rustls::CertificateError as C;
        let of = |c: C| TlsFailure::of(&rustls::Error::InvalidCertificate(c));
        assert_eq!(of(C::UnknownIssuer), TlsFailure::UnknownAuthority);
        assert_eq!(of(C::BadSignature), TlsFailure::UnknownAuthority);
        assert_eq!(of(C::NotValidForName), TlsFailure::NameMismatch);
        assert_eq!(of(C::Expired), TlsFailure::Expired);
        assert_eq!(of(C::Revoked), TlsFailure::Handshake);
        for (text, want) in [
            (
                "invalid peer certificate: UnknownIssuer",
                TlsFailure::UnknownAuthority,
            ),
            (
                "invalid peer certificate: BadSignature",
                TlsFailure::UnknownAuthority,
            ),
            (
                "invalid peer certificate: certificate not valid for name \"10.0.0.1\"",
                TlsFailure::NameMismatch,
            ),
            (
                "invalid peer certificate: certificate expired: ...",
                TlsFailure::Expired,
            ),
            (
                "received fatal alert: BadCertificate",
                TlsFailure::Handshake,
            ),
        ] {
            assert_eq!(TlsFailure::of_text(text), want, "{text}");
            // Text and error agree where both exist.
            assert_eq!(ErrorClass::Tls(want).as_str(), want.as_str());
        }
    }

    #[test]
    fn durations_print_go_style() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }
}
