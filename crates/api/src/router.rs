//! Request routing, mirroring the generic apiserver's director: go-restful
//! web services for `/apis`, `/apis/metrics.k8s.io[/...]` and `/version`,
//! a plain path mux for everything else (probes, `/metrics`, OpenAPI, `/`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use metrics_server_core::{FieldSelector, LabelSelector};

use crate::attributes::watch_requested;
use crate::cluster::{LabelMap, PodMeta};
use crate::diagnosis;
use crate::discovery::{Discovery, Document, GROUP, MetricsVersion};
use crate::health::{self, ProbeContext};
use crate::json::JsonWriter;
use crate::limits::go_http_error;
use crate::metrics::{render_openmetrics, render_text};
use crate::negotiate::{
    self, ALL_FORMATS, Endpoint, Format, JSON_ONLY, Negotiated, Target, is_pretty_print, negotiate,
    negotiate_formats,
};
use crate::objects::{self, Created, Encoding, IncludeObject, NodeItem, PodItem};
use crate::protobuf::{self, PROTOBUF, ProtoItem};
use crate::query::{Query, unescape_path};
use crate::source::unix_nanos;
use crate::state::ApiState;
use crate::status::{Status, StatusDetails, json_body_response, json_response};
use crate::yaml::{self, YAML};

/// Builds the router: every path of spec E.1, the handlers only. The
/// max-in-flight and request-timeout filters ([`crate::InFlightLimits`],
/// [`crate::request_timed_out`]) belong to the serving stack around it
/// (metrics-server-auth's `stack`), in the generic apiserver's order.
pub fn router(state: ApiState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// Per-request inputs shared by the handlers.
pub(crate) struct Ctx {
    method: Method,
    accept: String,
    user_agent: String,
    query: Query,
    if_none_match: Option<String>,
}

impl Ctx {
    fn from_request(req: &Request) -> Self {
        let header = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        Self {
            method: req.method().clone(),
            accept: header(header::ACCEPT).unwrap_or_default(),
            user_agent: header(header::USER_AGENT).unwrap_or_default(),
            query: Query::parse(req.uri().query().unwrap_or("")),
            if_none_match: header(header::IF_NONE_MATCH),
        }
    }

    /// `isPrettyPrint(req)`.
    fn pretty_request(&self) -> bool {
        is_pretty_print(self.query.raw(), self.query.get("pretty"), &self.user_agent)
    }

    /// An error Status, negotiated like `ErrorNegotiated`: when no JSON
    /// clause is acceptable, Go falls back to indented raw JSON.
    fn error(&self, status: Status) -> Response<Body> {
        match negotiate_formats(&self.accept, Endpoint::Plain, ALL_FORMATS) {
            Some(n) if n.format == Format::Protobuf => {
                typed_response(status.code, PROTOBUF, protobuf::encode_status(&status))
            }
            Some(n) if n.format == Format::Yaml => {
                yaml_response(status.code, &status.to_json(false))
            }
            Some(n) => status.into_response(n.pretty_param || self.pretty_request()),
            None => {
                let mut out = Vec::new();
                status.write_json(&mut JsonWriter::new(&mut out, true), true);
                json_response(status.code, out)
            }
        }
    }

    /// Writes a JSON-only document of ours (scrape health), negotiated with
    /// the default endpoint restrictions.
    fn plain_json(&self, write: impl FnOnce(&mut JsonWriter<'_>)) -> Response<Body> {
        let Some(n) = negotiate(&self.accept, Endpoint::Plain) else {
            return self.error(Status::not_acceptable(negotiate::not_acceptable_message(
                JSON_ONLY,
            )));
        };
        let pretty = n.pretty_param || self.pretty_request();
        json_response(200, json_body(write, pretty))
    }

    /// A discovery document, negotiated like `WriteObjectNegotiated` with
    /// the default endpoint restrictions against every serializer.
    fn discovery(&self, discovery: &Discovery, doc: Document) -> Response<Body> {
        let Some(n) = negotiate_formats(&self.accept, Endpoint::Plain, ALL_FORMATS) else {
            return self.error(Status::not_acceptable(negotiate::not_acceptable_message(
                ALL_FORMATS,
            )));
        };
        match n.format {
            Format::Protobuf => typed_response(200, PROTOBUF, discovery.protobuf(doc)),
            Format::Yaml => yaml_response(200, &json_body(|w| discovery.write_json(doc, w), false)),
            Format::Json => {
                let pretty = n.pretty_param || self.pretty_request();
                json_response(200, json_body(|w| discovery.write_json(doc, w), pretty))
            }
        }
    }
}

/// A JSON document as Go's serializer writes it: a line feed after the
/// compact form, none after the indented one.
fn json_body(write: impl FnOnce(&mut JsonWriter<'_>), pretty: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write(&mut JsonWriter::new(&mut out, pretty));
    if !pretty {
        out.push(b'\n');
    }
    out
}

/// go-restful's route-level Accept check (`Route.matchesAccept`).
fn restful_accepts(accept: &str, produces: &[&str]) -> bool {
    let accept = if accept.is_empty() { "*/*" } else { accept };
    accept.split(',').any(|clause| {
        let t = clause.split(';').next().unwrap_or("").trim_matches(' ');
        t == "*/*" || produces.contains(&t)
    })
}

/// Our scrape-health route.
const PRODUCES_GET: &[&str] = &[negotiate::JSON];
/// Discovery routes and routes of a named object: every serializer
/// (`MediaTypesForSerializer`).
const PRODUCES_OBJECT: &[&str] = &[negotiate::JSON, YAML, PROTOBUF];
/// List routes: every format, then the stream forms.
const PRODUCES_LIST: &[&str] = &[
    negotiate::JSON,
    YAML,
    PROTOBUF,
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];

/// go-restful's 406, which the generic apiserver writes with an empty
/// (non-nil) `details`.
fn restful_not_acceptable(produces: &[&str]) -> Status {
    let mut status = Status::not_acceptable(format!(
        "406: Not Acceptable\n\nAvailable representations: {}",
        produces.join(", ")
    ));
    status.details = Some(StatusDetails::default());
    status
}

/// A response with a status code and content type.
fn typed_response(code: u16, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn text_ok(content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.into()));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn not_found_page() -> Response<Body> {
    go_http_error(StatusCode::NOT_FOUND, "404 page not found")
}

async fn dispatch(State(state): State<ApiState>, req: Request) -> Response<Body> {
    let ctx = Ctx::from_request(&req);
    let Some(path) = unescape_path(req.uri().path()) else {
        return go_http_error(StatusCode::BAD_REQUEST, "400 Bad Request");
    };
    let mut resp = route(&state, &ctx, &path);
    // WithCacheControl: set unless a handler chose its own.
    resp.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache, private"));
    resp
}

fn route(state: &ApiState, ctx: &Ctx, path: &str) -> Response<Body> {
    // go-restful web services, as the director claims them.
    if path == "/apis" || path == "/apis/" {
        return apis_root(state, ctx);
    }
    let group_root = "/apis/metrics.k8s.io";
    if let Some(rest) = path.strip_prefix(group_root)
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return api_group(state, ctx, path);
    }
    if let Some(rest) = path.strip_prefix("/version")
        && (rest.is_empty() || rest.starts_with('/'))
    {
        if path.trim_matches('/') != "version" {
            return ctx.error(Status::route_not_found());
        }
        if ctx.method != Method::GET {
            return ctx.error(Status::route_method_not_allowed());
        }
        return version(state);
    }
    // The non-go-restful mux: any method.
    match path {
        "/" | "/index.html" => return index(state),
        "/metrics" => return metrics(state, ctx),
        "/scrape-health" => return scrape_health(state, ctx),
        "/openapi/v2" => return json_bytes(state.openapi.v2.clone()),
        "/openapi/v3" => return json_bytes(state.openapi.v3_index.clone()),
        _ => {}
    }
    if let Some(doc) = path
        .strip_prefix("/openapi/v3/apis/metrics.k8s.io/")
        .and_then(|v| state.openapi.v3_document(v))
    {
        return openapi_v3_group_version(doc, ctx);
    }
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    if let Some(endpoint) = health::Endpoint::from_path_segment(first) {
        if rest.is_empty() && trimmed.len() > first.len() {
            // "/healthz/" is not registered.
            return not_found_page();
        }
        let view = state.metrics.view();
        let probe = ProbeContext {
            health: &state.health,
            metrics: view.as_ref(),
            clock: state.clock.as_ref(),
        };
        return health::serve(endpoint, rest, &ctx.query, &probe).unwrap_or_else(not_found_page);
    }
    not_found_page()
}

/// The per-node scrape-health document (ours, JSON only).
fn scrape_health(state: &ApiState, ctx: &Ctx) -> Response<Body> {
    let nodes = state.diagnosis.nodes();
    let resolution = state.health.resolution();
    let now = state.clock.now();
    ctx.plain_json(|w| diagnosis::write_scrape_health(w, &nodes, resolution, now))
}

fn json_bytes(body: Bytes) -> Response<Body> {
    text_ok("application/json", body)
}

fn openapi_v3_group_version(doc: &crate::openapi::GroupVersionDoc, ctx: &Ctx) -> Response<Body> {
    let mut resp = json_bytes(doc.body.clone());
    let etag = format!("\"{}\"", doc.hash);
    if ctx.if_none_match.as_deref() == Some(etag.as_str()) {
        *resp.body_mut() = Body::empty();
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    if ctx.query.get("hash") == Some(doc.hash.as_str()) {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, immutable"),
        );
        h.insert(
            header::EXPIRES,
            HeaderValue::from_static("Fri, 01 Jan 2100 00:00:00 GMT"),
        );
    }
    resp
}

const LISTED_PATHS: &[&str] = &[
    "/apis",
    "/apis/",
    "/apis/metrics.k8s.io",
    "/healthz",
    "/healthz/log",
    "/healthz/metadata-informer-sync",
    "/healthz/ping",
    "/healthz/poststarthook/max-in-flight-filter",
    "/healthz/poststarthook/storage-object-count-tracker-hook",
    "/livez",
    "/livez/log",
    "/livez/metadata-informer-sync",
    "/livez/metric-collection-timely",
    "/livez/ping",
    "/livez/poststarthook/max-in-flight-filter",
    "/livez/poststarthook/storage-object-count-tracker-hook",
    "/metrics",
    "/openapi/v2",
    "/openapi/v3",
    "/openapi/v3/",
    "/readyz",
    "/readyz/log",
    "/readyz/metadata-informer-sync",
    "/readyz/metric-informer-sync",
    "/readyz/metric-storage-ready",
    "/readyz/ping",
    "/readyz/poststarthook/max-in-flight-filter",
    "/readyz/poststarthook/storage-object-count-tracker-hook",
    "/readyz/shutdown",
    "/version",
];

/// `GET /`: `metav1.RootPaths` (sorted, with a path per served version),
/// written with `WriteRawJSON` (indented).
fn index(state: &ApiState) -> Response<Body> {
    let versions: Vec<String> = state
        .config
        .served_versions
        .iter()
        .map(|v| format!("/apis/{}", v.group_version()))
        .collect();
    let mut paths: Vec<&str> = LISTED_PATHS.to_vec();
    paths.extend(versions.iter().map(String::as_str));
    paths.sort_unstable();
    let mut out = Vec::new();
    let mut w = JsonWriter::new(&mut out, true);
    w.begin_object();
    w.field_str_array("paths", &paths);
    w.end_object();
    json_response(200, out)
}

/// `GET /version`: `version.Info` via `WriteRawJSON` (indented).
fn version(state: &ApiState) -> Response<Body> {
    let v = &state.config.version;
    let mut out = Vec::new();
    let mut w = JsonWriter::new(&mut out, true);
    w.begin_object();
    w.field_str("major", &v.major);
    w.field_str("minor", &v.minor);
    w.field_str("gitVersion", &v.git_version);
    w.field_str("gitCommit", &v.git_commit);
    w.field_str("gitTreeState", &v.git_tree_state);
    w.field_str("buildDate", &v.build_date);
    w.field_str("goVersion", &v.go_version);
    w.field_str("compiler", &v.compiler);
    w.field_str("platform", &v.platform);
    w.end_object();
    json_response(200, out)
}

fn metrics(state: &ApiState, ctx: &Ctx) -> Response<Body> {
    if state.config.openmetrics {
        let wants_om = negotiate::parse_accept(&ctx.accept)
            .first()
            .is_some_and(|c| c.ty == "application" && c.sub == "openmetrics-text");
        if wants_om {
            return text_ok(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                render_openmetrics(&state.registry),
            );
        }
    }
    // expfmt.Negotiate keeps a valid `escaping` parameter of the Accept clause.
    let mut escaping = "underscores";
    for c in negotiate::parse_accept(&ctx.accept) {
        if let Some(e) = c.params.get("escaping")
            && let Some(known) = ["allow-utf-8", "underscores", "dots", "values"]
                .into_iter()
                .find(|k| k == e)
        {
            escaping = known;
        }
        if c.ty == "text" && c.sub == "plain" {
            break;
        }
    }
    let content_type = format!("text/plain; version=0.0.4; charset=utf-8; escaping={escaping}");
    let mut resp = Response::new(Body::from(render_text(&state.registry)));
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

// === discovery ===

fn apis_root(state: &ApiState, ctx: &Ctx) -> Response<Body> {
    if ctx.method != Method::GET {
        return ctx.error(Status::route_method_not_allowed());
    }
    if !restful_accepts(&ctx.accept, PRODUCES_OBJECT) {
        return ctx.error(restful_not_acceptable(PRODUCES_OBJECT));
    }
    if let Some((format, pretty_param)) = negotiate::wants_aggregated_discovery(&ctx.accept) {
        return aggregated_discovery(&state.discovery, ctx, format, pretty_param);
    }
    ctx.discovery(&state.discovery, Document::GroupList)
}

/// The aggregated `APIGroupDiscoveryList` with its ETag (`ServeHTTPWithETag`).
fn aggregated_discovery(
    discovery: &Discovery,
    ctx: &Ctx,
    format: Format,
    pretty_param: bool,
) -> Response<Body> {
    let etag = discovery.etag();
    let mut resp = if ctx.if_none_match.as_deref() == Some(etag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let body = match format {
            Format::Protobuf => discovery.aggregated_protobuf(),
            Format::Yaml => {
                let json = json_body(|w| discovery.write_aggregated(w), false);
                match yaml::from_json(&json) {
                    Some(yaml) => yaml,
                    // Not reached: our JSON parses. `yaml_response` logs and answers 500.
                    None => return yaml_response(200, &json),
                }
            }
            Format::Json => {
                let pretty = pretty_param || ctx.pretty_request();
                json_body(|w| discovery.write_aggregated(w), pretty)
            }
        };
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(negotiate::aggregated_discovery_media_type(format)),
        );
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public"));
    resp
}

/// Everything under `/apis/metrics.k8s.io`, routed like go-restful's
/// CurlyRouter (tokens of the trimmed path).
fn api_group(state: &ApiState, ctx: &Ctx, path: &str) -> Response<Body> {
    let tokens: Vec<&str> = path.trim_matches('/').split('/').collect();
    enum Route<'a> {
        Resources,
        Nodes,
        Node(&'a str),
        Pods(Option<&'a str>),
        Pod(&'a str, &'a str),
        ScrapeHealth,
    }
    if let ["apis", GROUP] = tokens.as_slice() {
        return group_route(state, ctx);
    }
    // Every served version has the same routes (an unserved one has none).
    let Some((version, rest)) = tokens
        .get(2)
        .and_then(|v| state.config.served_versions.get(v))
        .zip(tokens.get(3..))
        .filter(|_| tokens.get(..2) == Some(&["apis", GROUP][..]))
    else {
        return ctx.error(Status::route_not_found());
    };
    let route = match rest {
        [] => Route::Resources,
        ["nodes"] => Route::Nodes,
        ["nodes", name] => Route::Node(name),
        ["pods"] => Route::Pods(None),
        // Not in discovery: the scrape-health document, reachable through the aggregator.
        ["scrapehealth"] => Route::ScrapeHealth,
        ["namespaces", ns, "pods"] => Route::Pods(Some(ns)),
        ["namespaces", ns, "pods", name] => Route::Pod(ns, name),
        _ => return ctx.error(Status::route_not_found()),
    };
    if ctx.method != Method::GET {
        return ctx.error(Status::route_method_not_allowed());
    }
    let produces = match route {
        Route::Nodes | Route::Pods(_) => PRODUCES_LIST,
        Route::Node(_) | Route::Pod(..) | Route::Resources => PRODUCES_OBJECT,
        Route::ScrapeHealth => PRODUCES_GET,
    };
    if !restful_accepts(&ctx.accept, produces) {
        return ctx.error(restful_not_acceptable(produces));
    }
    match route {
        Route::Resources => ctx.discovery(&state.discovery, Document::Resources(version)),
        Route::Nodes => list_nodes(state, ctx, version),
        Route::Node(name) => get_node(state, ctx, version, name),
        Route::Pods(ns) => list_pods(state, ctx, version, ns),
        Route::Pod(ns, name) => get_pod(state, ctx, version, ns, name),
        Route::ScrapeHealth => scrape_health(state, ctx),
    }
}

/// `GET /apis/metrics.k8s.io`: the group with its served versions.
fn group_route(state: &ApiState, ctx: &Ctx) -> Response<Body> {
    if ctx.method != Method::GET {
        return ctx.error(Status::route_method_not_allowed());
    }
    if !restful_accepts(&ctx.accept, PRODUCES_OBJECT) {
        return ctx.error(restful_not_acceptable(PRODUCES_OBJECT));
    }
    ctx.discovery(&state.discovery, Document::Group)
}

// === resources ===

/// Negotiation for resource endpoints; `Err` is the ready 406.
fn negotiate_resource(ctx: &Ctx) -> Result<Negotiated, Box<Response<Body>>> {
    negotiate_formats(&ctx.accept, Endpoint::Resource, ALL_FORMATS).ok_or_else(|| {
        Box::new(
            ctx.error(Status::not_acceptable(negotiate::not_acceptable_message(
                ALL_FORMATS,
            ))),
        )
    })
}

/// `TableOptions` decoding and validation (`optionsForTransform`).
fn encoding_for(ctx: &Ctx, n: Negotiated, version: MetricsVersion) -> Result<Encoding, Status> {
    let pretty = n.pretty_param || ctx.pretty_request();
    let mut include = IncludeObject::Metadata;
    if let Target::Table { .. } = n.target {
        include = match ctx.query.get("includeObject").unwrap_or("") {
            "" | "Metadata" => IncludeObject::Metadata,
            "None" => IncludeObject::None,
            "Object" => IncludeObject::Object,
            other => {
                let mut quoted = Vec::new();
                crate::json::write_go_string(&mut quoted, other);
                return Err(Status::bad_request(format!(
                    "Unable to convert to Table as requested: includeObject: Invalid value: {}: must be 'Metadata', 'Object', 'None', or empty",
                    String::from_utf8_lossy(&quoted)
                )));
            }
        };
    }
    Ok(Encoding {
        version,
        target: n.target,
        include,
        pretty,
    })
}

/// Selectors of a list request, decoded like `ListOptions`.
struct ListSelectors {
    labels: LabelSelector,
    fields: FieldSelector,
}

fn go_parse_int_error(value: &str) -> String {
    let all_digits = {
        let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let kind = if all_digits {
        "value out of range"
    } else {
        "invalid syntax"
    };
    format!(
        "strconv.ParseInt: parsing {}: {kind}",
        crate::status::go_quote(value)
    )
}

fn list_selectors(ctx: &Ctx) -> Result<ListSelectors, Status> {
    // url.Values -> v1.ListOptions (integers), then -> internal (selectors).
    for key in ["timeoutSeconds", "limit"] {
        if let Some(v) = ctx.query.get(key)
            && v.parse::<i64>().is_err()
        {
            return Err(Status::bad_request(go_parse_int_error(v)));
        }
    }
    let labels = match ctx.query.get("labelSelector") {
        Some(s) => LabelSelector::parse(s).map_err(|e| Status::bad_request(e.to_string()))?,
        None => LabelSelector::everything(),
    };
    let fields = match ctx.query.get("fieldSelector") {
        Some(s) => FieldSelector::parse(s).map_err(|e| Status::bad_request(e.to_string()))?,
        None => FieldSelector::default(),
    };
    Ok(ListSelectors { labels, fields })
}

/// Seconds since `timestamp_ns` (Go's `time.Since` of the zero time
/// saturates at the maximum duration).
fn age_seconds(now_ns: i64, timestamp_ns: i64) -> f64 {
    if timestamp_ns == 0 {
        return i64::MAX as f64 / 1e9;
    }
    let d = i128::from(now_ns) - i128::from(timestamp_ns);
    let d = d.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    d as f64 / 1e9
}

fn now_string(state: &ApiState) -> (i64, String) {
    let now = unix_nanos(state.clock.now());
    (now, metrics_server_core::Rfc3339Seconds(now).to_string())
}

fn created(now: i64, text: &str) -> Created<'_> {
    Created { text, unix_ns: now }
}

fn ok_json(body: Vec<u8>) -> Response<Body> {
    json_response(200, body)
}

/// A JSON document of ours, answered as YAML.
fn yaml_response(code: u16, json: &[u8]) -> Response<Body> {
    match yaml::from_json(json) {
        Some(body) => typed_response(code, YAML, body),
        None => {
            tracing::error!("a JSON body of ours did not parse for YAML");
            json_response(500, Status::internal("encoding YAML failed").to_json(false))
        }
    }
}

/// What a resource handler answers with: the negotiated form and version.
#[derive(Clone, Copy)]
struct Answer {
    negotiated: Negotiated,
    version: MetricsVersion,
}

fn respond_list<T: ProtoItem + Send + Unpin + 'static>(
    ctx: &Ctx,
    items: Vec<T>,
    created: Created<'_>,
    a: Answer,
) -> Response<Body> {
    let n = a.negotiated;
    let enc = match encoding_for(ctx, n, a.version) {
        Ok(e) => e,
        Err(s) => return ctx.error(s),
    };
    if let Some(msg) = objects::partial_mismatch_message::<T>(n.target, true) {
        return ctx.error(Status::not_acceptable(msg));
    }
    if n.format == Format::Protobuf {
        let body = protobuf::encode_list(&items, created, a.version, n.target);
        return typed_response(200, PROTOBUF, body);
    }
    if n.format == Format::Yaml {
        let plain = Encoding {
            pretty: false,
            ..enc
        };
        return yaml_response(200, &objects::encode_list(&items, created.text, plain));
    }
    json_body_response(200, objects::list_body(items, created.text, enc))
}

fn respond_one<T: ProtoItem>(
    ctx: &Ctx,
    item: &T,
    created: Created<'_>,
    a: Answer,
) -> Response<Body> {
    let n = a.negotiated;
    let enc = match encoding_for(ctx, n, a.version) {
        Ok(e) => e,
        Err(s) => return ctx.error(s),
    };
    if let Some(msg) = objects::partial_mismatch_message::<T>(n.target, false) {
        return ctx.error(Status::not_acceptable(msg));
    }
    if n.format == Format::Protobuf {
        let body = protobuf::encode_one(item, created, a.version, n.target);
        return typed_response(200, PROTOBUF, body);
    }
    if n.format == Format::Yaml {
        let plain = Encoding {
            pretty: false,
            ..enc
        };
        return yaml_response(200, &objects::encode_one(item, created.text, plain));
    }
    ok_json(objects::encode_one(item, created.text, enc))
}

fn list_nodes(state: &ApiState, ctx: &Ctx, version: MetricsVersion) -> Response<Body> {
    let n = match negotiate_resource(ctx) {
        Ok(negotiated) => Answer {
            negotiated,
            version,
        },
        Err(r) => return *r,
    };
    let sel = match list_selectors(ctx) {
        Ok(s) => s,
        Err(s) => return ctx.error(s),
    };
    if watch_requested(&ctx.query) {
        return ctx.error(Status::method_not_supported(GROUP, "nodes", "watch"));
    }
    let selector = sel.labels.and(&state.config.node_selector);
    let filter = |l: &LabelMap| selector.matches(l);
    let nodes = match state.cluster.list_nodes(&filter) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, labelSelector = %selector, "Failed listing nodes");
            return ctx.error(Status::internal(format!("failed listing nodes: {e}")));
        }
    };
    let view = state.metrics.view();
    let (now, text) = now_string(state);
    let mut items: Vec<NodeItem> = nodes
        .into_iter()
        .filter(|node| sel.fields.matches(&[("metadata.name", node.name.as_str())]))
        .filter_map(|meta| {
            let usage = view.node_metrics(&meta.name)?;
            Some(NodeItem { meta, usage })
        })
        .collect();
    for item in &items {
        state
            .api_metrics
            .observe_freshness(age_seconds(now, item.usage.timestamp_ns));
    }
    items.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    respond_list(ctx, items, created(now, &text), n)
}

fn get_node(state: &ApiState, ctx: &Ctx, version: MetricsVersion, name: &str) -> Response<Body> {
    let n = match negotiate_resource(ctx) {
        Ok(negotiated) => Answer {
            negotiated,
            version,
        },
        Err(r) => return *r,
    };
    let meta = match state.cluster.get_node(name) {
        Ok(Some(m)) => m,
        Ok(None) => return ctx.error(Status::not_found("", "node", name)),
        Err(e) => {
            tracing::error!(error = %e, node = name, "Failed getting node");
            return ctx.error(Status::internal(format!("failed getting node: {e}")));
        }
    };
    let Some(usage) = state.metrics.view().node_metrics(name) else {
        let selected = state.config.node_selector.matches(&meta.labels);
        let why = diagnosis::node_reason(
            state.diagnosis.node(name).as_ref(),
            selected,
            state.clock.now(),
            state.health.resolution(),
        );
        return ctx.error(Status::not_found_because(GROUP, "nodemetrics", name, &why));
    };
    let (now, text) = now_string(state);
    state
        .api_metrics
        .observe_freshness(age_seconds(now, usage.timestamp_ns));
    respond_one(ctx, &NodeItem { meta, usage }, created(now, &text), n)
}

fn list_pods(
    state: &ApiState,
    ctx: &Ctx,
    version: MetricsVersion,
    namespace: Option<&str>,
) -> Response<Body> {
    let n = match negotiate_resource(ctx) {
        Ok(negotiated) => Answer {
            negotiated,
            version,
        },
        Err(r) => return *r,
    };
    let sel = match list_selectors(ctx) {
        Ok(s) => s,
        Err(s) => return ctx.error(s),
    };
    if watch_requested(&ctx.query) {
        return ctx.error(Status::method_not_supported(GROUP, "pods", "watch"));
    }
    let filter = |l: &LabelMap| sel.labels.matches(l);
    let mut pods = match state.cluster.list_pods(namespace, &filter) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, labelSelector = %sel.labels, namespace = namespace.unwrap_or(""), "Failed listing pods");
            return ctx.error(Status::internal(format!("failed listing pods: {e}")));
        }
    };
    pods.retain(|p| {
        sel.fields.matches(&[
            ("metadata.name", p.name.as_str()),
            ("metadata.namespace", p.namespace.as_str()),
        ])
    });
    // The list is served in (namespace, name) order. The cluster cache hands
    // pods out in that order already, and the snapshot stores them in it, so
    // checking costs one compare per pod and the lookups below walk forward.
    if !pods.is_sorted_by(|a, b| pod_key(a) <= pod_key(b)) {
        pods.sort_by(|a, b| pod_key(a).cmp(&pod_key(b)));
    }
    let view = state.metrics.view();
    let (now, text) = now_string(state);
    let mut items: Vec<PodItem> = Vec::with_capacity(pods.len());
    view.pods_metrics(&pods, &mut |i, usage| {
        if let Some(meta) = pods.get(i) {
            log_skipped(&meta.namespace, &meta.name, &usage);
            items.push(PodItem {
                meta: Arc::clone(meta),
                usage,
            });
        }
    });
    for item in &items {
        state
            .api_metrics
            .observe_freshness(age_seconds(now, item.usage.timestamp_ns));
    }
    respond_list(ctx, items, created(now, &text), n)
}

fn get_pod(
    state: &ApiState,
    ctx: &Ctx,
    version: MetricsVersion,
    namespace: &str,
    name: &str,
) -> Response<Body> {
    let n = match negotiate_resource(ctx) {
        Ok(negotiated) => Answer {
            negotiated,
            version,
        },
        Err(r) => return *r,
    };
    let meta = match state.cluster.get_pod(namespace, name) {
        Ok(Some(m)) => m,
        Ok(None) => return ctx.error(Status::not_found("", "pods", name)),
        Err(e) => {
            tracing::error!(error = %e, pod = %format!("{namespace}/{name}"), "Failed getting pod");
            return ctx.error(Status::internal(format!("failed getting pod: {e}")));
        }
    };
    let Some(usage) = state.metrics.view().pod_metrics(namespace, name) else {
        let failing: Vec<_> = state
            .diagnosis
            .nodes()
            .into_iter()
            .filter(|n| n.last_error.is_some())
            .collect();
        let why = diagnosis::pod_reason(
            meta.created,
            &failing,
            state.clock.now(),
            state.health.resolution(),
        );
        return ctx.error(Status::not_found_because(
            GROUP,
            "podmetrics",
            &format!("{namespace}/{name}"),
            &why,
        ));
    };
    log_skipped(namespace, name, &usage);
    let (now, text) = now_string(state);
    state
        .api_metrics
        .observe_freshness(age_seconds(now, usage.timestamp_ns));
    respond_one(ctx, &PodItem { meta, usage }, created(now, &text), n)
}

/// The order pod lists are served in: namespace, then name, bytewise.
fn pod_key(p: &PodMeta) -> (&str, &str) {
    (&p.namespace, &p.name)
}

/// Upstream logs each container whose rate failed when serving its pod.
fn log_skipped(namespace: &str, name: &str, usage: &metrics_server_core::PodUsage) {
    for (container, err) in &usage.skipped {
        tracing::error!(
            error = %err,
            container = %container,
            pod = %format!("{namespace}/{name}"),
            "Skipping container usage metric"
        );
    }
}
