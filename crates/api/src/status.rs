//! `meta/v1 Status` error bodies (spec E.6), byte-compatible with
//! `k8s.io/apimachinery/pkg/api/errors` as rendered by the apiserver.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use crate::json::JsonWriter;

/// `metav1.StatusDetails` (field order: name, group, kind).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusDetails {
    /// `details.name`.
    pub name: String,
    /// `details.group`.
    pub group: String,
    /// `details.kind` (Go puts the *resource* here).
    pub kind: String,
}

/// A failure `Status`. `details: None` omits the field; `Some(default)`
/// renders `"details":{}` like Go's non-nil empty `*StatusDetails`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// HTTP and `code` field.
    pub code: u16,
    /// `reason` (omitted when empty: Go's `StatusReasonUnknown`).
    pub reason: &'static str,
    /// `message`.
    pub message: String,
    /// `details`.
    pub details: Option<StatusDetails>,
}

impl Status {
    /// `errors.NewNotFound(groupResource, name)`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = if group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{group}")
        };
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{qualified} {} not found", go_quote(name)),
            details: Some(StatusDetails {
                name: name.to_owned(),
                group: group.to_owned(),
                kind: resource.to_owned(),
            }),
        }
    }

    /// [`Self::not_found`] whose message also says why (`... not found: <why>`); reason,
    /// code and details stay upstream's, so clients that match on them are unaffected.
    pub fn not_found_because(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let mut status = Self::not_found(group, resource, name);
        status.message.push_str(": ");
        status.message.push_str(why);
        status
    }

    /// `errors.NewBadRequest(message)`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    /// `errors.NewMethodNotSupported(groupResource, action)`.
    pub fn method_not_supported(group: &str, resource: &str, action: &str) -> Self {
        Self {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!(
                "{action} is not supported on resources of kind {}",
                go_quote(&format!("{resource}.{group}"))
            ),
            details: Some(StatusDetails {
                group: group.to_owned(),
                kind: resource.to_owned(),
                ..StatusDetails::default()
            }),
        }
    }

    /// A plain Go error turned into a Status by `ErrorToAPIStatus`: code 500
    /// and no reason.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: 500,
            reason: "",
            message: message.into(),
            details: None,
        }
    }

    /// 406 NotAcceptable with the given message.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self {
            code: 406,
            reason: "NotAcceptable",
            message: message.into(),
            details: None,
        }
    }

    /// go-restful's "no route" (404) through `NewGenericServerResponse`.
    pub fn route_not_found() -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".to_owned(),
            details: Some(StatusDetails::default()),
        }
    }

    /// go-restful's "route exists, method does not" (405).
    pub fn route_method_not_allowed() -> Self {
        Self {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".to_owned(),
            details: Some(StatusDetails::default()),
        }
    }

    /// `errors.NewTimeoutError("request did not complete within the allotted timeout", 0)`.
    pub fn request_timeout() -> Self {
        Self {
            code: 504,
            reason: "Timeout",
            message: "Timeout: request did not complete within the allotted timeout".to_owned(),
            details: Some(StatusDetails::default()),
        }
    }

    /// Writes the Status object. `type_meta` adds `kind`/`apiVersion`
    /// (absent only in the timeout filter's raw encoding).
    pub(crate) fn write_json(&self, w: &mut JsonWriter<'_>, type_meta: bool) {
        w.begin_object();
        if type_meta {
            w.field_str("kind", "Status");
            w.field_str("apiVersion", "v1");
        }
        w.field_empty_object("metadata");
        w.field_str("status", "Failure");
        w.field_str_omitempty("message", &self.message);
        w.field_str_omitempty("reason", self.reason);
        if let Some(d) = &self.details {
            w.key("details");
            w.begin_object();
            w.field_str_omitempty("name", &d.name);
            w.field_str_omitempty("group", &d.group);
            w.field_str_omitempty("kind", &d.kind);
            w.end_object();
        }
        w.key("code");
        w.int(i64::from(self.code));
        w.end_object();
    }

    /// The body as the negotiated JSON serializer writes it: compact with a
    /// trailing newline, or indented without one.
    pub fn to_json(&self, pretty: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let mut w = JsonWriter::new(&mut out, pretty);
        self.write_json(&mut w, true);
        if !pretty {
            out.push(b'\n');
        }
        out
    }

    /// The HTTP response: `Content-Type: application/json`.
    pub fn into_response(self, pretty: bool) -> http::Response<axum::body::Body> {
        let body = self.to_json(pretty);
        json_response(self.code, body)
    }
}

/// A response with `Content-Type: application/json`.
pub(crate) fn json_response(code: u16, body: Vec<u8>) -> http::Response<axum::body::Body> {
    json_body_response(code, axum::body::Body::from(Bytes::from(body)))
}

/// [`json_response`] for a body that may be streamed.
pub(crate) fn json_body_response(
    code: u16,
    body: axum::body::Body,
) -> http::Response<axum::body::Body> {
    let mut resp = http::Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Go's `strconv.Quote` / `%q` for the characters that occur in names.
pub(crate) fn go_quote(s: &str) -> String {
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
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &Status) -> String {
        String::from_utf8(s.to_json(false)).unwrap_or_default()
    }

    #[test]
    fn pod_metrics_not_found_matches_spec_example() {
        assert_eq!(
            body(&Status::not_found(
                "metrics.k8s.io",
                "podmetrics",
                "default/foo"
            )),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"podmetrics.metrics.k8s.io \\\"default/foo\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"default/foo\",\"group\":\"metrics.k8s.io\",\"kind\":\"podmetrics\"},\"code\":404}\n"
        );
    }

    #[test]
    fn core_not_found_has_no_group() {
        assert_eq!(
            body(&Status::not_found("", "node", "n1")),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"node \\\"n1\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"n1\",\"kind\":\"node\"},\"code\":404}\n"
        );
    }

    #[test]
    fn internal_errors_have_no_reason() {
        assert_eq!(
            body(&Status::internal("failed listing nodes: boom")),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"failed listing nodes: boom\",\"code\":500}\n"
        );
    }

    #[test]
    fn watch_is_method_not_allowed_with_group_and_kind() {
        assert_eq!(
            body(&Status::method_not_supported(
                "metrics.k8s.io",
                "pods",
                "watch"
            )),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"watch is not supported on resources of kind \\\"pods.metrics.k8s.io\\\"\",\"reason\":\"MethodNotAllowed\",\"details\":{\"group\":\"metrics.k8s.io\",\"kind\":\"pods\"},\"code\":405}\n"
        );
    }

    #[test]
    fn unknown_route_has_empty_details() {
        assert_eq!(
            body(&Status::route_not_found()),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"the server could not find the requested resource\",\"reason\":\"NotFound\",\"details\":{},\"code\":404}\n"
        );
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\x01\"");
    }
}
