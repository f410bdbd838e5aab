//! Content negotiation (spec E.7, E.8, E.10), ported from
//! `github.com/munnerz/goautoneg` and
//! `k8s.io/apiserver/pkg/endpoints/handlers/negotiation`.
//!
//! Resources, discovery documents and Status errors are served as JSON, YAML
//! and protobuf, tried in that order for each Accept clause like the codec
//! factory's serializers (`application/*` and `*/*` pick JSON); only our own
//! scrape-health document is JSON only. 406 only when no clause is left.

use std::collections::BTreeMap;

use crate::protobuf::PROTOBUF;
use crate::yaml::YAML;

/// The JSON media type.
pub(crate) const JSON: &str = "application/json";

/// A serialization format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Yaml,
    Protobuf,
}

impl Format {
    /// Media type and subtype.
    pub(crate) fn media_type(self) -> &'static str {
        match self {
            Self::Json => JSON,
            Self::Yaml => YAML,
            Self::Protobuf => PROTOBUF,
        }
    }

    fn subtype(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Yaml => "yaml",
            Self::Protobuf => "vnd.kubernetes.protobuf",
        }
    }

    /// Whether a `stream=watch` clause can be served (a stream serializer;
    /// YAML has none).
    fn streams(self) -> bool {
        self != Self::Yaml
    }
}

/// What resources, discovery documents and Status errors are served as, in
/// the serializers' order (metrics-server's codec factory, and the
/// aggregated-discovery wrapper's).
pub(crate) const ALL_FORMATS: &[Format] = &[Format::Json, Format::Yaml, Format::Protobuf];

/// What our scrape-health document is served as.
pub(crate) const JSON_ONLY: &[Format] = &[Format::Json];

/// Message of the 406 Status when nothing acceptable remains.
pub(crate) fn not_acceptable_message(formats: &[Format]) -> String {
    let types: Vec<&str> = formats.iter().map(|f| f.media_type()).collect();
    format!(
        "only the following media types are accepted: {}",
        types.join(", ")
    )
}

/// One clause of an `Accept` header.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AcceptClause {
    pub(crate) ty: String,
    pub(crate) sub: String,
    pub(crate) q: f64,
    /// Only the parameters some handler reads ([`PARAMS_READ`]); the last
    /// value of a repeated parameter wins, as in Go's map.
    pub(crate) params: BTreeMap<String, String>,
}

/// The media type parameters any handler looks at. Keeping only these keeps
/// a clause with thousands of parameters from allocating for each.
const PARAMS_READ: &[&str] = &["as", "g", "v", "stream", "sv", "pretty", "escaping"];

/// How many comma-separated media ranges of an `Accept` header are
/// considered; the rest is ignored. Real clients send one to six, so this
/// only bounds the work a hostile header can cause.
pub(crate) const MAX_MEDIA_RANGES: usize = 64;

/// A media range longer than this is skipped unread (real ones are under
/// 200 bytes), so one range of a megabyte of parameters costs nothing.
pub(crate) const MAX_MEDIA_RANGE_BYTES: usize = 1024;

/// Up to this many clauses, Go's `sort.Sort` is an insertion sort, which
/// this reproduces exactly (even where goautoneg's comparator is not a
/// consistent order).
const GO_INSERTION_SORT_MAX: usize = 12;

fn next_split(s: &str, sep: char) -> (&str, &str) {
    match s.find(sep) {
        Some(i) => (&s[..i], &s[i + sep.len_utf8()..]),
        None => (s, ""),
    }
}

fn trim_spaces(s: &str) -> &str {
    s.trim_matches(' ')
}

/// `goautoneg.ParseAccept`: clauses sorted by quality, then specificity.
/// Looks at the first [`MAX_MEDIA_RANGES`] ranges only, and skips any longer
/// than [`MAX_MEDIA_RANGE_BYTES`].
pub(crate) fn parse_accept(header: &str) -> Vec<AcceptClause> {
    let mut out: Vec<AcceptClause> = header
        .split(',')
        .take(MAX_MEDIA_RANGES)
        .filter(|range| range.len() <= MAX_MEDIA_RANGE_BYTES)
        .filter_map(parse_clause)
        .collect();
    if out.len() <= GO_INSERTION_SORT_MAX {
        for i in 1..out.len() {
            let mut j = i;
            while j > 0 && less(&out[j], &out[j - 1]) {
                out.swap(j, j - 1);
                j -= 1;
            }
        }
    } else {
        // Go switches to pdqsort here, which is not stable; a stable sort by
        // (quality, type specificity, subtype specificity) gives the same
        // order wherever the comparator is a consistent one.
        out.sort_by(|a, b| {
            b.q.total_cmp(&a.q)
                .then((a.ty == "*").cmp(&(b.ty == "*")))
                .then((a.sub == "*").cmp(&(b.sub == "*")))
        });
    }
    out
}

/// One media range, or `None` when goautoneg skips it.
fn parse_clause(part: &str) -> Option<AcceptClause> {
    let part = trim_spaces(part);
    let (sp, mut remaining_part) = next_split(part, ';');
    let (sp0, sp_rest) = next_split(sp, '/');
    let ty = trim_spaces(sp0).to_owned();
    let sub = if sp_rest.is_empty() {
        if ty != "*" {
            return None;
        }
        "*".to_owned()
    } else {
        let (sp1, more) = next_split(sp_rest, '/');
        if !more.is_empty() {
            return None;
        }
        trim_spaces(sp1).to_owned()
    };
    let mut clause = AcceptClause {
        ty,
        sub,
        q: 1.0,
        params: BTreeMap::new(),
    };
    while !remaining_part.is_empty() {
        let (p, rest) = next_split(remaining_part, ';');
        remaining_part = rest;
        let (k, v_rest) = next_split(p, '=');
        if v_rest.is_empty() {
            continue;
        }
        let (v, extra) = next_split(v_rest, '=');
        if !extra.is_empty() {
            continue;
        }
        let token = trim_spaces(k);
        if token == "q" {
            // strconv.ParseFloat(v, 32); errors give 0.
            clause.q = v.parse::<f32>().map_or(0.0, f64::from);
        } else if PARAMS_READ.contains(&token) {
            clause
                .params
                .insert(token.to_owned(), trim_spaces(v).to_owned());
        }
    }
    Some(clause)
}

/// goautoneg's `Less`: higher quality, or a concrete type or subtype
/// against a wildcard.
fn less(a: &AcceptClause, b: &AcceptClause) -> bool {
    a.q > b.q || (a.ty != "*" && b.ty == "*") || (a.sub != "*" && b.sub == "*")
}

/// What a resource response is converted to before encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The object itself.
    Object,
    /// `meta.k8s.io` Table (`v1beta1` when true).
    Table { v1beta1: bool },
    /// `meta.k8s.io` PartialObjectMetadata.
    Partial { v1beta1: bool },
    /// `meta.k8s.io` PartialObjectMetadataList.
    PartialList { v1beta1: bool },
}

impl Target {
    /// The `apiVersion` of the meta types.
    pub(crate) fn meta_api_version(v1beta1: bool) -> &'static str {
        if v1beta1 {
            "meta.k8s.io/v1beta1"
        } else {
            "meta.k8s.io/v1"
        }
    }
}

/// Which endpoint restrictions apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// metrics.k8s.io resources: Table and PartialObjectMetadata allowed.
    Resource,
    /// Everything else (`DefaultEndpointRestrictions`): no conversion.
    Plain,
}

/// The outcome of a successful negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub(crate) format: Format,
    pub(crate) target: Target,
    /// `pretty=1` media type parameter.
    pub(crate) pretty_param: bool,
}

/// `NegotiateMediaTypeOptions` against the JSON serializer only.
pub(crate) fn negotiate(accept: &str, endpoint: Endpoint) -> Option<Negotiated> {
    negotiate_formats(accept, endpoint, JSON_ONLY)
}

/// `NegotiateMediaTypeOptions` against `formats`, in their order for each
/// clause.
pub(crate) fn negotiate_formats(
    accept: &str,
    endpoint: Endpoint,
    formats: &[Format],
) -> Option<Negotiated> {
    if accept.is_empty() {
        return Some(Negotiated {
            format: formats.first().copied().unwrap_or(Format::Json),
            target: Target::Object,
            pretty_param: false,
        });
    }
    for clause in parse_accept(accept) {
        for &format in formats {
            if !clause_matches(&clause, format) {
                continue;
            }
            if let Some(n) = accept_options(&clause, endpoint, format) {
                return Some(n);
            }
        }
    }
    None
}

/// Whether a clause names the serializer's media type (`*` allowed for the
/// subtype, or `*/*`).
fn clause_matches(clause: &AcceptClause, format: Format) -> bool {
    (clause.ty == "application" && (clause.sub == format.subtype() || clause.sub == "*"))
        || (clause.ty == "*" && clause.sub == "*")
}

fn accept_options(clause: &AcceptClause, endpoint: Endpoint, format: Format) -> Option<Negotiated> {
    let mut pretty_param = false;
    let (mut group, mut version, mut kind) = (None::<&str>, None::<&str>, None::<&str>);
    for (k, v) in &clause.params {
        match k.as_str() {
            "as" => kind = Some(v),
            "g" => group = Some(v),
            "v" => version = Some(v),
            // Every endpoint allows "watch", if the format can stream.
            "stream" if !v.is_empty() && (v != "watch" || !format.streams()) => return None,
            "sv" if !v.is_empty() => return None,
            "pretty" => pretty_param = v == "1",
            _ => {}
        }
    }
    let convert = group.is_some() || version.is_some() || kind.is_some();
    let target = if !convert {
        Target::Object
    } else {
        if endpoint == Endpoint::Plain {
            return None;
        }
        if group != Some("meta.k8s.io") {
            return None;
        }
        let v1beta1 = match version {
            Some("v1") => false,
            Some("v1beta1") => true,
            _ => return None,
        };
        match kind {
            // Tables only as JSON or YAML (`AllowsMediaTypeTransform`).
            Some("Table") if format == Format::Protobuf => return None,
            Some("Table") => Target::Table { v1beta1 },
            Some("PartialObjectMetadata") => Target::Partial { v1beta1 },
            Some("PartialObjectMetadataList") => Target::PartialList { v1beta1 },
            _ => return None,
        }
    };
    Some(Negotiated {
        format,
        target,
        pretty_param,
    })
}

/// The aggregated-discovery media type of an answer in `format`: the
/// serializer's type with the group, version and kind
/// (`generateMediaTypeWithGVK`).
pub(crate) fn aggregated_discovery_media_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        Format::Yaml => "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        Format::Protobuf => {
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        }
    }
}

/// The format `/apis` must answer the aggregated `APIGroupDiscoveryList` in,
/// and the `pretty=1` parameter; `None` for the legacy `APIGroupList`.
///
/// The generic apiserver's wrapper negotiates with the aggregated-discovery
/// restrictions, which accept a clause only when it asks for
/// `apidiscovery.k8s.io/v2 APIGroupDiscoveryList` (`IsAggregatedDiscoveryGVK`;
/// v2beta1 is gone since Kubernetes 1.35, where
/// `AggregatedDiscoveryRemoveBetaType` is locked on): the first such clause
/// and serializer win, every other clause is passed over.
pub(crate) fn wants_aggregated_discovery(accept: &str) -> Option<(Format, bool)> {
    if accept.is_empty() {
        return None;
    }
    for clause in parse_accept(accept) {
        for &format in ALL_FORMATS {
            if !clause_matches(&clause, format) {
                continue;
            }
            let p = &clause.params;
            let stream_refused = p
                .get("stream")
                .is_some_and(|v| !v.is_empty() && (v != "watch" || !format.streams()));
            if stream_refused || p.get("sv").is_some_and(|v| !v.is_empty()) {
                continue;
            }
            if p.get("g").map(String::as_str) == Some("apidiscovery.k8s.io")
                && p.get("v").map(String::as_str) == Some("v2")
                && p.get("as").map(String::as_str) == Some("APIGroupDiscoveryList")
            {
                return Some((format, p.get("pretty").map(String::as_str) == Some("1")));
            }
        }
    }
    None
}

/// `strconv.ParseBool`.
pub(crate) fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `isPrettyPrint`: `?pretty=<bool>` wins when present and non-empty;
/// otherwise curl, Wget and browsers get indented output.
pub(crate) fn is_pretty_print(
    raw_query: &str,
    pretty_value: Option<&str>,
    user_agent: &str,
) -> bool {
    if raw_query.contains("pretty")
        && let Some(v) = pretty_value.filter(|v| !v.is_empty())
    {
        return go_parse_bool(v).unwrap_or(false);
    }
    user_agent.starts_with("curl")
        || user_agent.starts_with("Wget")
        || user_agent.starts_with("Mozilla/5.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(accept: &str) -> Option<Target> {
        negotiate(accept, Endpoint::Resource).map(|n| n.target)
    }

    fn served(accept: &str) -> Option<(Format, Target)> {
        negotiate_formats(accept, Endpoint::Resource, ALL_FORMATS).map(|n| (n.format, n.target))
    }

    #[test]
    fn protobuf_is_chosen_when_asked_for_first() {
        let pb = Some((Format::Protobuf, Target::Object));
        assert_eq!(served("application/vnd.kubernetes.protobuf, */*"), pb);
        assert_eq!(served("application/vnd.kubernetes.protobuf"), pb);
        assert_eq!(
            served("application/vnd.kubernetes.protobuf;stream=watch"),
            pb
        );
        assert_eq!(
            served("application/*"),
            Some((Format::Json, Target::Object))
        );
        assert_eq!(
            served("application/json;q=0.5,application/vnd.kubernetes.protobuf"),
            pb
        );
        // Tables are never protobuf: the next clause decides.
        assert_eq!(
            served(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"
            ),
            Some((Format::Json, Target::Object))
        );
        assert_eq!(
            served(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"
            ),
            Some((Format::Protobuf, Target::Partial { v1beta1: false }))
        );
        assert_eq!(served("text/plain"), None);
        assert_eq!(
            not_acceptable_message(ALL_FORMATS),
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
    }

    #[test]
    fn protobuf_first_lists_fall_back_to_json() {
        assert_eq!(
            target("application/vnd.kubernetes.protobuf, */*"),
            Some(Target::Object)
        );
        assert_eq!(target("application/vnd.kubernetes.protobuf"), None);
        assert_eq!(target("application/yaml"), None);
        assert_eq!(target("application/*"), Some(Target::Object));
        assert_eq!(target(""), Some(Target::Object));
    }

    #[test]
    fn kubectl_table_accept_selects_table_v1() {
        assert_eq!(
            target(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Some(Target::Table { v1beta1: false })
        );
        assert_eq!(
            target("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
            Some(Target::Table { v1beta1: true })
        );
        assert_eq!(
            negotiate(
                "application/json;as=Table;v=v1;g=meta.k8s.io",
                Endpoint::Plain
            ),
            None
        );
        assert_eq!(target("application/json;as=Pod;v=v1;g=meta.k8s.io"), None);
    }

    #[test]
    fn quality_orders_clauses() {
        let c = parse_accept("text/plain;q=0.5, application/json");
        assert_eq!(c[0].sub, "json");
        assert_eq!(c[1].q, 0.5);
    }

    /// The parser before media ranges were bounded: every clause, every
    /// parameter, insertion sort. The reference for "same result".
    fn parse_accept_unbounded(header: &str) -> Vec<AcceptClause> {
        let mut out = Vec::new();
        let mut remaining = header;
        while !remaining.is_empty() {
            let (part, rest) = next_split(remaining, ',');
            remaining = rest;
            let part = trim_spaces(part);
            let (sp, mut remaining_part) = next_split(part, ';');
            let (sp0, sp_rest) = next_split(sp, '/');
            let ty = trim_spaces(sp0).to_owned();
            let sub = if sp_rest.is_empty() {
                if ty == "*" {
                    "*".to_owned()
                } else {
                    continue;
                }
            } else {
                let (sp1, more) = next_split(sp_rest, '/');
                if !more.is_empty() {
                    continue;
                }
                trim_spaces(sp1).to_owned()
            };
            let mut clause = AcceptClause {
                ty,
                sub,
                q: 1.0,
                params: BTreeMap::new(),
            };
            while !remaining_part.is_empty() {
                let (p, rest) = next_split(remaining_part, ';');
                remaining_part = rest;
                let (k, v_rest) = next_split(p, '=');
                if v_rest.is_empty() {
                    continue;
                }
                let (v, extra) = next_split(v_rest, '=');
                if !extra.is_empty() {
                    continue;
                }
                let token = trim_spaces(k);
                if token == "q" {
                    clause.q = v.parse::<f32>().map_or(0.0, f64::from);
                } else {
                    clause
                        .params
                        .insert(token.to_owned(), trim_spaces(v).to_owned());
                }
            }
            out.push(clause);
        }
        for i in 1..out.len() {
            let mut j = i;
            while j > 0 && less(&out[j], &out[j - 1]) {
                out.swap(j, j - 1);
                j -= 1;
            }
        }
        for c in &mut out {
            c.params.retain(|k, _| PARAMS_READ.contains(&k.as_str()));
        }
        out
    }

    /// A deterministic header of `ranges` random media ranges; with
    /// `wildcards` false no range has a `*`.
    fn random_accept(seed: &mut u64, ranges: usize, wildcards: bool) -> String {
        let mut next = |n: usize| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed % n as u64) as usize
        };
        let types = ["application", "text", "*", "", " application "];
        let subs = ["json", "yaml", "*", "vnd.kubernetes.protobuf", "", "a/b"];
        let params = [
            ";q=0.5",
            ";q=1",
            ";q=0",
            ";q=x",
            ";q=0.9",
            ";as=Table",
            ";g=meta.k8s.io",
            ";v=v1",
            ";v=v1beta1",
            ";pretty=1",
            ";foo=bar",
            ";stream=watch",
            ";a=b=c",
            "; q = 0.5",
            ";escaping=dots",
        ];
        let mut out = String::new();
        for i in 0..ranges {
            if i > 0 {
                out.push(',');
            }
            let (ty, sub) = loop {
                let (ty, sub) = (types[next(types.len())], subs[next(subs.len())]);
                if wildcards || (ty != "*" && sub != "*") {
                    break (ty, sub);
                }
            };
            out.push_str(ty);
            if next(8) != 0 {
                out.push('/');
                out.push_str(sub);
            }
            for _ in 0..next(4) {
                out.push_str(params[next(params.len())]);
            }
        }
        out
    }

    #[test]
    fn bounded_parsing_gives_the_same_clauses_as_before() {
        let mut seed = 0x5eed_acce_0001;
        // Up to Go's insertion-sort size: identical, whatever the header.
        for round in 0..5000 {
            let header = random_accept(&mut seed, round % 13, true);
            assert_eq!(
                parse_accept(&header),
                parse_accept_unbounded(&header),
                "{header}"
            );
        }
        // Beyond it: identical wherever goautoneg's comparator is consistent.
        for round in 0..500 {
            let header = random_accept(
                &mut seed,
                13 + round % MAX_MEDIA_RANGES.saturating_sub(12),
                false,
            );
            assert_eq!(
                parse_accept(&header),
                parse_accept_unbounded(&header),
                "{header}"
            );
        }
    }

    #[test]
    fn small_headers_keep_goautoneg_order_quirks_included() {
        // goautoneg ranks a concrete subtype above a wildcard even against a
        // higher quality; Go's insertion sort then yields this order.
        let c = parse_accept("*/*;q=0.9,application/*,application/json;q=0.9");
        let order: Vec<_> = c.iter().map(|c| format!("{}/{}", c.ty, c.sub)).collect();
        assert_eq!(order, ["application/json", "application/*", "*/*"]);
        // Beyond twelve ranges: wildcards after concrete ranges of equal quality.
        let many = format!("*/*,{}", ["text/plain"; 12].join(","));
        let clauses = parse_accept(&many);
        assert_eq!(clauses.len(), 13);
        assert_eq!(clauses.last().map(|c| c.ty.as_str()), Some("*"));
        assert_eq!(clauses.first().map(|c| c.sub.as_str()), Some("plain"));
    }

    #[test]
    fn a_range_longer_than_the_bound_is_skipped() {
        let long = format!(
            "application/json{}",
            ";p=v".repeat(MAX_MEDIA_RANGE_BYTES / 4)
        );
        assert_eq!(target(&long), None);
        assert_eq!(target(&format!("{long},*/*")), Some(Target::Object));
        let fits = format!(
            "application/json;as=Table;g=meta.k8s.io;v=v1{}",
            " ".repeat(900)
        );
        assert_eq!(target(&fits), Some(Target::Table { v1beta1: false }));
    }

    #[test]
    fn only_the_first_media_ranges_are_considered() {
        let mut header = ["text/plain"; MAX_MEDIA_RANGES].join(",");
        header.push_str(",application/json");
        assert_eq!(parse_accept(&header).len(), MAX_MEDIA_RANGES);
        assert_eq!(target(&header), None);
        let header = header.replacen("text/plain", "application/json", 1);
        assert_eq!(target(&header), Some(Target::Object));
    }

    #[test]
    fn aggregated_discovery_needs_v2() {
        assert_eq!(
            wants_aggregated_discovery(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            ),
            Some((Format::Json, false))
        );
        assert_eq!(
            wants_aggregated_discovery(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            ),
            None
        );
        assert_eq!(wants_aggregated_discovery("application/json"), None);
    }

    #[test]
    fn aggregated_discovery_is_served_in_each_format() {
        const GVK: &str = ";g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        let pb = format!("application/vnd.kubernetes.protobuf{GVK}");
        assert_eq!(
            wants_aggregated_discovery(&format!("{pb},application/json")),
            Some((Format::Protobuf, false))
        );
        assert_eq!(
            wants_aggregated_discovery(&format!("application/yaml{GVK};pretty=1")),
            Some((Format::Yaml, true))
        );
        // A wildcard picks the first serializer; a plain clause before it is passed over.
        assert_eq!(
            wants_aggregated_discovery(&format!("application/vnd.kubernetes.protobuf,*/*{GVK}")),
            Some((Format::Json, false))
        );
        // YAML cannot stream: its watch clause goes to nothing, protobuf's to protobuf.
        assert_eq!(
            wants_aggregated_discovery(&format!("application/yaml{GVK};stream=watch")),
            None
        );
        assert_eq!(
            wants_aggregated_discovery(&format!("{pb};stream=watch")),
            Some((Format::Protobuf, false))
        );
        assert_eq!(
            aggregated_discovery_media_type(Format::Protobuf),
            format!("application/vnd.kubernetes.protobuf{GVK}")
        );
    }

    #[test]
    fn pretty_follows_query_then_user_agent() {
        assert!(is_pretty_print("pretty=true", Some("true"), ""));
        assert!(!is_pretty_print("pretty=false", Some("false"), "curl/8"));
        assert!(is_pretty_print("", None, "curl/8.5"));
        assert!(is_pretty_print("", None, "Mozilla/5.0 (X11)"));
        assert!(!is_pretty_print("", None, "kubectl/v1.36"));
        assert!(!is_pretty_print("pretty=yes", Some("yes"), ""));
    }
}
