//! Index, event-handling and client-configuration tests. No cluster: objects are built with
//! `mk_node`/`mk_pod` and fed straight into the indexes and handlers.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use metrics_server_api::{ClusterView, LabelMap};
use metrics_server_core::LabelSelector;
use metrics_server_kubelet::{PemSource, ServerVerification, TokenSource, Transport};

use crate::cluster::Cluster;
use crate::config::{KubeletCredentialFlags, ders_to_pem, kubelet_client_config, load_config};
use crate::node::{NodeEntry, NodeIndex};
use crate::pod::PodIndex;
use crate::watch::EventHandler;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn mk_node(name: &str, node_labels: &[(&str, &str)], ready: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels(node_labels)),
            annotations: Some(labels(&[(
                "metrics.k8s.io/resource-metrics-path",
                "/metrics/nodes/x/metrics/resource",
            )])),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: "10.0.0.1".into(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.to_owned(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: 10247 }),
            }),
            conditions: Some(vec![
                NodeCondition {
                    type_: "MemoryPressure".into(),
                    status: "False".into(),
                    ..NodeCondition::default()
                },
                NodeCondition {
                    type_: "Ready".into(),
                    status: ready.to_owned(),
                    ..NodeCondition::default()
                },
            ]),
            ..NodeStatus::default()
        }),
    }
}

fn mk_pod(namespace: &str, name: &str, pod_labels: &[(&str, &str)]) -> PartialObjectMeta<Pod> {
    PartialObjectMeta {
        types: None,
        metadata: ObjectMeta {
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
            labels: Some(labels(pod_labels)),
            ..ObjectMeta::default()
        },
        _phantom: std::marker::PhantomData,
    }
}

fn everything(_: &LabelMap) -> bool {
    true
}

fn names<T>(items: &[Arc<T>], name: impl Fn(&T) -> String) -> Vec<String> {
    let mut out: Vec<String> = items.iter().map(|i| name(i)).collect();
    out.sort();
    out
}

// === Nodes ===

#[test]
fn a_node_is_trimmed_to_what_the_api_and_scraper_read() {
    let entry = NodeEntry::from_node(mk_node("n1", &[("role", "worker")], "True")).unwrap();
    assert_eq!(entry.meta.name, "n1");
    assert_eq!(entry.meta.labels, labels(&[("role", "worker")]));
    assert_eq!(entry.target.name, "n1");
    assert_eq!(
        entry.target.addresses,
        vec![
            ("InternalIP".to_owned(), "10.0.0.1".to_owned()),
            ("Hostname".to_owned(), "n1".to_owned())
        ]
    );
    assert_eq!(entry.target.status_port, 10247);
    assert_eq!(
        entry.target.metrics_path_annotation.as_deref(),
        Some("/metrics/nodes/x/metrics/resource")
    );
    assert!(entry.target.ready);
}

#[test]
fn a_node_is_ready_only_when_its_ready_condition_is_true() {
    for status in ["False", "Unknown", ""] {
        let entry = NodeEntry::from_node(mk_node("n1", &[], status)).unwrap();
        assert!(!entry.target.ready, "status {status:?}");
    }
    let mut bare = mk_node("n1", &[], "True");
    bare.status = None;
    let entry = NodeEntry::from_node(bare).unwrap();
    assert!(!entry.target.ready);
    assert!(entry.target.addresses.is_empty());
    assert_eq!(entry.target.status_port, 0);
}

#[test]
fn a_node_without_a_name_is_ignored() {
    let mut node = mk_node("n1", &[], "True");
    node.metadata.name = None;
    let mut index = NodeIndex::new();
    index.apply(node);
    assert!(index.is_empty());
}

#[test]
fn an_out_of_range_kubelet_port_counts_as_unset() {
    let mut node = mk_node("n1", &[], "True");
    if let Some(status) = node.status.as_mut() {
        status.daemon_endpoints = Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 70_000 }),
        });
    }
    assert_eq!(NodeEntry::from_node(node).unwrap().target.status_port, 0);
}

#[test]
fn apply_replaces_a_node_and_delete_removes_it() {
    let mut index = NodeIndex::new();
    index.apply(mk_node("n1", &[("a", "1")], "True"));
    index.apply(mk_node("n1", &[("a", "2")], "True"));
    assert_eq!(index.len(), 1);
    assert_eq!(index.get("n1").unwrap().meta.labels, labels(&[("a", "2")]));
    index.delete("n1");
    index.delete("missing");
    assert!(index.get("n1").is_none());
}

#[test]
fn targets_follow_the_node_selector_and_are_sorted_by_name() {
    let mut index = NodeIndex::new();
    index.apply(mk_node("n3", &[], "True"));
    index.apply(mk_node("n1", &[], "False"));
    index.apply(mk_node("skip", &[("metrics-server-skip", "true")], "True"));
    let selector = LabelSelector::parse("metrics-server-skip!=true").unwrap();
    let targets: Vec<String> = index
        .targets(&selector)
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(targets, ["n1", "n3"]);
    assert_eq!(index.targets(&LabelSelector::everything()).len(), 3);
}

#[test]
fn reset_replaces_every_node() {
    let mut index = NodeIndex::new();
    index.apply(mk_node("old", &[], "True"));
    index.reset(vec![
        NodeEntry::from_node(mk_node("new", &[], "True")).unwrap(),
    ]);
    assert!(index.get("old").is_none());
    assert!(index.get("new").is_some());
}

// === Pods ===

#[test]
fn pods_are_listed_by_namespace_and_label_filter() {
    let mut index = PodIndex::new();
    index.apply(mk_pod("a", "p1", &[("app", "web")]));
    index.apply(mk_pod("a", "p2", &[("app", "db")]));
    index.apply(mk_pod("b", "p1", &[("app", "web")]));
    assert_eq!(index.len(), 3);
    let web = |l: &LabelMap| l.get("app").is_some_and(|v| v == "web");
    assert_eq!(
        names(&index.list(None, web), |p| format!(
            "{}/{}",
            p.namespace, p.name
        )),
        ["a/p1", "b/p1"]
    );
    assert_eq!(
        names(&index.list(Some("a"), everything), |p| p.name.clone()),
        ["p1", "p2"]
    );
    assert!(index.list(Some("c"), everything).is_empty());
    assert_eq!(
        index.get("b", "p1").unwrap().labels,
        labels(&[("app", "web")])
    );
    assert!(index.get("b", "p2").is_none());
}

#[test]
fn reapplying_a_pod_replaces_it_and_deleting_counts_down() {
    let mut index = PodIndex::new();
    index.apply(mk_pod("a", "p1", &[("v", "1")]));
    index.apply(mk_pod("a", "p1", &[("v", "2")]));
    assert_eq!(index.len(), 1);
    assert_eq!(index.get("a", "p1").unwrap().labels, labels(&[("v", "2")]));
    index.delete("a", "p1");
    index.delete("a", "p1");
    assert!(index.is_empty());
    assert!(index.list(None, everything).is_empty());
}

/// Pods listed the way the API used to order them: any order, then a sort
/// on namespace, then name.
fn sorted_the_old_way(mut pods: Vec<Arc<metrics_server_api::PodMeta>>) -> Vec<(String, String)> {
    pods.sort_by(|a, b| match a.namespace.cmp(&b.namespace) {
        std::cmp::Ordering::Equal => a.name.cmp(&b.name),
        o => o,
    });
    pods.iter()
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect()
}

fn keys(pods: &[Arc<metrics_server_api::PodMeta>]) -> Vec<(String, String)> {
    pods.iter()
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect()
}

#[test]
fn pods_are_listed_in_namespace_then_name_order_through_adds_and_deletes() {
    // Prefixes of each other, non-ASCII, the same names in every namespace.
    const PIECES: &[&str] = &["a", "-", "aa", "b", "é", "e\u{301}", "日", "Z", "0"];
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        usize::try_from(rng % n as u64).unwrap_or(0)
    };
    let mut word = |max: usize| -> String {
        let len = 1 + next(max);
        (0..len).map(|_| PIECES[next(PIECES.len())]).collect()
    };
    let mut index = PodIndex::new();
    assert!(index.list(None, everything).is_empty());
    let mut namespaces = Vec::new();
    for _ in 0..400 {
        let (ns, name) = (word(2), word(3));
        let app = if name.len() % 2 == 0 { "even" } else { "odd" };
        index.apply(mk_pod(&ns, &name, &[("app", app)]));
        namespaces.push(ns);
    }
    // Deletes of present and absent pods.
    for _ in 0..150 {
        let (ns, name) = (word(2), word(3));
        index.delete(&ns, &name);
    }
    let odd = |l: &LabelMap| l.get("app").is_some_and(|v| v == "odd");
    for filter in [&everything as &dyn Fn(&LabelMap) -> bool, &odd] {
        let all = index.list(None, filter);
        assert_eq!(keys(&all), sorted_the_old_way(all.clone()));
        for ns in namespaces.iter().map(String::as_str).chain(["", "zz"]) {
            let some = index.list(Some(ns), filter);
            assert!(some.iter().all(|p| p.namespace == ns));
            assert_eq!(keys(&some), sorted_the_old_way(some.clone()));
        }
    }
    assert_eq!(index.list(None, everything).len(), index.len());
}

#[test]
fn a_pod_without_namespace_or_name_is_ignored() {
    let mut index = PodIndex::new();
    let mut pod = mk_pod("a", "p", &[]);
    pod.metadata.namespace = None;
    index.apply(pod);
    let mut pod = mk_pod("a", "p", &[]);
    pod.metadata.name = Some(String::new());
    index.apply(pod);
    assert!(index.is_empty());
}

// === ClusterView ===

#[test]
fn the_cluster_view_reads_both_indexes() {
    let cluster = Cluster::new();
    cluster.with_nodes(|n| {
        n.apply(mk_node("n1", &[("zone", "a")], "True"));
        n.apply(mk_node("n2", &[("zone", "b")], "True"));
    });
    cluster.with_pods(|p| p.apply(mk_pod("default", "web", &[])));
    let zone_a = |l: &LabelMap| l.get("zone").is_some_and(|v| v == "a");
    let nodes = cluster.list_nodes(&zone_a).unwrap();
    assert_eq!(names(&nodes, |n| n.name.clone()), ["n1"]);
    assert_eq!(cluster.get_node("n2").unwrap().unwrap().name, "n2");
    assert!(cluster.get_node("n3").unwrap().is_none());
    assert_eq!(
        cluster
            .list_pods(Some("default"), &everything)
            .unwrap()
            .len(),
        1
    );
    assert!(cluster.get_pod("default", "web").unwrap().is_some());
    assert!(cluster.get_pod("other", "web").unwrap().is_none());
    assert_eq!(cluster.targets(&LabelSelector::everything()).len(), 2);
}

// === Watch events ===

#[test]
fn the_first_complete_list_replaces_the_index_and_marks_it_synced() {
    let index = Arc::new(RwLock::new(NodeIndex::new()));
    let (mut handler, synced) = EventHandler::new(Arc::clone(&index), "Node");
    handler.handle(Event::Apply(mk_node("stale", &[], "True")));
    handler.handle(Event::Init);
    handler.handle(Event::InitApply(mk_node("n1", &[], "True")));
    handler.handle(Event::InitApply(mk_node("n2", &[], "True")));
    assert!(!synced.is_synced(), "not synced before InitDone");
    assert!(
        index.read().unwrap().get("n1").is_none(),
        "buffered until InitDone"
    );
    handler.handle(Event::InitDone);
    assert!(synced.is_synced());
    let idx = index.read().unwrap();
    assert_eq!(idx.len(), 2);
    assert!(idx.get("stale").is_none());
}

#[test]
fn apply_and_delete_events_update_the_index_after_sync() {
    let index = Arc::new(RwLock::new(PodIndex::new()));
    let (mut handler, synced) = EventHandler::new(Arc::clone(&index), "Pod");
    handler.handle(Event::Init);
    handler.handle(Event::InitDone);
    assert!(synced.is_synced(), "an empty list still syncs");
    handler.handle(Event::Apply(mk_pod("a", "p1", &[])));
    handler.handle(Event::Apply(mk_pod("a", "p2", &[])));
    handler.handle(Event::Delete(mk_pod("a", "p1", &[])));
    let idx = index.read().unwrap();
    assert_eq!(idx.len(), 1);
    assert!(idx.get("a", "p2").is_some());
}

#[test]
fn a_relist_keeps_the_index_synced_and_drops_objects_that_vanished() {
    let index = Arc::new(RwLock::new(NodeIndex::new()));
    let (mut handler, synced) = EventHandler::new(Arc::clone(&index), "Node");
    handler.handle(Event::Init);
    handler.handle(Event::InitApply(mk_node("n1", &[], "True")));
    handler.handle(Event::InitDone);
    handler.handle(Event::Init);
    assert!(synced.is_synced(), "a relist in progress does not unsync");
    handler.handle(Event::InitApply(mk_node("n2", &[], "True")));
    handler.handle(Event::InitDone);
    let idx = index.read().unwrap();
    assert!(idx.get("n1").is_none());
    assert!(idx.get("n2").is_some());
}

#[tokio::test]
async fn waiting_on_the_sync_signal_returns_once_the_list_is_done() {
    let index = Arc::new(RwLock::new(NodeIndex::new()));
    let (handler, mut synced) = EventHandler::new(index, "Node");
    let events = futures::stream::iter(vec![
        Ok(Event::Init),
        Ok(Event::InitApply(mk_node("n1", &[], "True"))),
        Ok(Event::InitDone),
    ]);
    let run = tokio::spawn(handler.run(events));
    assert!(synced.wait().await);
    run.await.unwrap();
}

// === Client configuration ===

/// A kubeconfig whose user has a static token and inline client certificate, and whose
/// cluster has an inline CA. Returns the file and the PEM fixtures.
fn kubeconfig_with(user: &str, cluster_extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig.yaml");
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n{cluster_extra}contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\nusers:\n- name: u\n  user:\n{user}"
    )
    .unwrap();
    (dir, path)
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn test_pki() -> (String, String, String) {
    let pki = metrics_server_test_support::TestPki::new().unwrap();
    let client = pki.client_cert("admin", &["system:masters"]).unwrap();
    (
        pki.ca_pem(),
        client.cert_pem.clone(),
        client.key_pem.clone(),
    )
}

#[tokio::test]
async fn kubelet_credentials_come_from_the_kubeconfig_like_upstream() {
    let (ca, cert, key) = test_pki();
    let (_dir, path) = kubeconfig_with(
        &format!(
            "    token: abc\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&cert),
            b64(&key)
        ),
        &format!("    certificate-authority-data: {}\n", b64(&ca)),
    );
    let config = load_config(Some(&path)).await.unwrap();
    let kubelet = kubelet_client_config(&config, &KubeletCredentialFlags::default()).unwrap();
    assert_eq!(kubelet.token, TokenSource::Static("abc".into()));
    let Transport::Https(tls) = &kubelet.transport else {
        panic!("expected https, got {:?}", kubelet.transport)
    };
    let ServerVerification::Ca(PemSource::Inline(ca_pem)) = &tls.verification else {
        panic!("expected the kubeconfig CA, got {:?}", tls.verification)
    };
    assert_eq!(String::from_utf8_lossy(ca_pem).trim(), ca.trim());
    let client = tls.client_cert.as_ref().expect("client certificate");
    assert_eq!(client.cert, PemSource::Inline(cert.into_bytes()));
    assert_eq!(client.key, PemSource::Inline(key.into_bytes()));
    // The whole thing must actually build a client.
    metrics_server_kubelet::KubeletClient::new(&kubelet).unwrap();
}

#[tokio::test]
async fn kubelet_flags_override_the_kubeconfig() {
    let (ca, _, _) = test_pki();
    let (_dir, path) = kubeconfig_with(
        "    tokenFile: token.txt\n    client-certificate: crt.pem\n    client-key: key.pem\n",
        &format!("    certificate-authority-data: {}\n", b64(&ca)),
    );
    let config = load_config(Some(&path)).await.unwrap();
    let base = kubelet_client_config(&config, &KubeletCredentialFlags::default()).unwrap();
    let dir = path.parent().unwrap();
    let TokenSource::File { path: token, .. } = &base.token else {
        panic!("expected a token file, got {:?}", base.token)
    };
    assert_eq!(token, &dir.join("token.txt"), "relative to the kubeconfig");
    let Transport::Https(tls) = &base.transport else {
        panic!("https")
    };
    assert_eq!(
        tls.client_cert.as_ref().unwrap().cert,
        PemSource::File(dir.join("crt.pem"))
    );

    let flags = KubeletCredentialFlags {
        certificate_authority: Some("/ca.pem".into()),
        client_certificate: Some("/c.pem".into()),
        client_key: Some("/k.pem".into()),
        ..KubeletCredentialFlags::default()
    };
    let over = kubelet_client_config(&config, &flags).unwrap();
    let Transport::Https(tls) = &over.transport else {
        panic!("https")
    };
    assert_eq!(
        tls.verification,
        ServerVerification::Ca(PemSource::File("/ca.pem".into()))
    );
    let cc = tls.client_cert.as_ref().unwrap();
    assert_eq!(cc.cert, PemSource::File("/c.pem".into()));
    assert_eq!(cc.key, PemSource::File("/k.pem".into()));

    let insecure = KubeletCredentialFlags {
        insecure_tls: true,
        ..KubeletCredentialFlags::default()
    };
    let Transport::Https(tls) = kubelet_client_config(&config, &insecure).unwrap().transport else {
        panic!("https")
    };
    assert_eq!(tls.verification, ServerVerification::Insecure);
}

#[tokio::test]
async fn completely_insecure_kubelets_get_plain_http_and_no_credentials() {
    let (_dir, path) = kubeconfig_with("    token: abc\n", "    insecure-skip-tls-verify: true\n");
    let config = load_config(Some(&path)).await.unwrap();
    let flags = KubeletCredentialFlags {
        completely_insecure: true,
        ..KubeletCredentialFlags::default()
    };
    let kubelet = kubelet_client_config(&config, &flags).unwrap();
    assert_eq!(kubelet.transport, Transport::Http);
    assert_eq!(kubelet.token, TokenSource::None);
    // insecure-skip-tls-verify in the kubeconfig also applies to kubelets, as in client-go.
    let Transport::Https(tls) = kubelet_client_config(&config, &KubeletCredentialFlags::default())
        .unwrap()
        .transport
    else {
        panic!("https")
    };
    assert_eq!(tls.verification, ServerVerification::Insecure);
}

#[tokio::test]
async fn a_missing_kubeconfig_is_an_error_naming_the_file() {
    let err = load_config(Some(std::path::Path::new("/nonexistent/kc.yaml")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/kc.yaml"), "{err}");
}

#[test]
fn der_certificates_are_re_encoded_as_pem() {
    let pki = metrics_server_test_support::TestPki::new().unwrap();
    let der = pki.ca_der().to_vec();
    let pem = ders_to_pem(&[der.clone(), der]);
    let text = String::from_utf8(pem).unwrap();
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    assert!(text.lines().all(|l| l.len() <= 64));
    assert!(text.starts_with(pki.ca_pem().trim()), "{text}");
}
