//! The discovery documents in protobuf, as the generic apiserver's discovery
//! handlers write them with metrics-server's codec factory: `APIGroupList`
//! (its envelope names the kind only: the root handler strips the version),
//! `APIGroup` and `APIResourceList` (`v1`), and the aggregated
//! `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`.
//!
//! Field numbers are those of `k8s.io/apimachinery/pkg/apis/meta/v1` and
//! `k8s.io/api/apidiscovery/v2`; as everywhere, strings and scalars of value
//! structs are written even when empty, slices and pointers only when set.

use super::{envelope, put_bytes, put_int, put_list_meta, put_message};
use crate::discovery::{GROUP, MetricsVersion, RESOURCES, ServedVersions};

/// `metav1.GroupVersionForDiscovery`.
fn put_group_version(out: &mut Vec<u8>, field: u8, version: MetricsVersion) {
    put_message(out, field, |m| {
        put_bytes(m, 1, version.group_version().as_bytes());
        put_bytes(m, 2, version.as_str().as_bytes());
    });
}

/// The body of `metav1.APIGroup`: name, versions, preferred version and,
/// in the root list only, the server address for every client.
fn put_group(out: &mut Vec<u8>, versions: ServedVersions, server_address: Option<&str>) {
    put_bytes(out, 1, GROUP.as_bytes());
    for version in versions.iter() {
        put_group_version(out, 2, version);
    }
    put_group_version(out, 3, versions.preferred());
    if let Some(address) = server_address {
        put_message(out, 4, |m| {
            put_bytes(m, 1, b"0.0.0.0/0");
            put_bytes(m, 2, address.as_bytes());
        });
    }
}

/// `GET /apis`: an `APIGroupList` whose envelope has an empty `apiVersion`.
pub(crate) fn encode_group_list(versions: ServedVersions, server_address: Option<&str>) -> Vec<u8> {
    envelope("", "APIGroupList", |o| {
        put_message(o, 1, |g| put_group(g, versions, server_address));
    })
}

/// `GET /apis/metrics.k8s.io`.
pub(crate) fn encode_group(versions: ServedVersions) -> Vec<u8> {
    envelope("v1", "APIGroup", |o| put_group(o, versions, None))
}

/// `GET /apis/metrics.k8s.io/<version>`.
pub(crate) fn encode_resource_list(version: MetricsVersion) -> Vec<u8> {
    envelope("v1", "APIResourceList", |o| {
        put_bytes(o, 1, version.group_version().as_bytes());
        for (name, namespaced, kind) in RESOURCES {
            put_message(o, 2, |r| {
                put_bytes(r, 1, name.as_bytes());
                put_int(r, 2, i64::from(namespaced));
                put_bytes(r, 3, kind.as_bytes());
                put_message(r, 4, |verbs| {
                    put_bytes(verbs, 1, b"get");
                    put_bytes(verbs, 1, b"list");
                });
                // singularName, group, version, storageVersionHash: empty.
                for field in [6, 8, 9, 10] {
                    put_bytes(r, field, b"");
                }
            });
        }
    })
}

/// `metav1.ObjectMeta` with a name only (the zero creation time is an
/// empty message).
fn put_name_only_meta(out: &mut Vec<u8>, field: u8, name: &str) {
    put_message(out, field, |m| {
        put_bytes(m, 1, name.as_bytes());
        for field in 2..=6 {
            put_bytes(m, field, b"");
        }
        put_int(m, 7, 0);
        put_message(m, 8, |_| {});
    });
}

/// One `apidiscovery/v2 APIVersionDiscovery`.
fn put_aggregated_version(out: &mut Vec<u8>, version: MetricsVersion) {
    put_message(out, 2, |v| {
        put_bytes(v, 1, version.as_str().as_bytes());
        for (name, namespaced, kind) in RESOURCES {
            put_message(v, 2, |r| {
                put_bytes(r, 1, name.as_bytes());
                // responseKind: group and version empty, as upstream leaves them.
                put_message(r, 2, |gvk| {
                    put_bytes(gvk, 1, b"");
                    put_bytes(gvk, 2, b"");
                    put_bytes(gvk, 3, kind.as_bytes());
                });
                let scope: &[u8] = if namespaced {
                    b"Namespaced"
                } else {
                    b"Cluster"
                };
                put_bytes(r, 3, scope);
                put_bytes(r, 4, b"");
                put_bytes(r, 5, b"get");
                put_bytes(r, 5, b"list");
            });
        }
        put_bytes(v, 3, b"Current");
    });
}

/// `GET /apis` with the aggregated-discovery protobuf media type.
pub(crate) fn encode_aggregated(versions: ServedVersions) -> Vec<u8> {
    envelope("apidiscovery.k8s.io/v2", "APIGroupDiscoveryList", |o| {
        put_list_meta(o, 1);
        put_message(o, 2, |item| {
            put_name_only_meta(item, 1, GROUP);
            for version in versions.iter() {
                put_aggregated_version(item, version);
            }
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protobuf::tests::{golden, golden_text};

    /// The golden program's server address (hack/golden/protobuf/discovery.go).
    const ADDRESS: &str = "127.0.0.1:4443";

    #[test]
    fn legacy_documents_match_the_go_discovery_handlers_byte_for_byte() {
        let both = ServedVersions::default();
        assert_eq!(
            encode_group_list(both, Some(ADDRESS)),
            golden("discovery_apis")
        );
        assert_eq!(encode_group(both), golden("discovery_group"));
        assert_eq!(
            encode_resource_list(MetricsVersion::V1),
            golden("discovery_resources_v1")
        );
        assert_eq!(
            encode_resource_list(MetricsVersion::V1beta1),
            golden("discovery_resources_v1beta1")
        );
        for case in [
            "discovery_apis",
            "discovery_group",
            "discovery_resources_v1",
            "discovery_resources_v1beta1",
        ] {
            assert_eq!(golden_text(&format!("{case}.status")), "200");
            assert_eq!(
                golden_text(&format!("{case}.content-type")),
                super::super::PROTOBUF
            );
        }
    }

    #[test]
    fn aggregated_document_matches_the_go_resource_manager_byte_for_byte() {
        assert_eq!(
            encode_aggregated(ServedVersions::default()),
            golden("discovery_aggregated")
        );
    }

    #[test]
    fn a_server_of_v1beta1_only_matches_go_too() {
        let Ok(beta) = ServedVersions::new(&[MetricsVersion::V1beta1]) else {
            panic!("v1beta1 is a version");
        };
        assert_eq!(
            encode_group_list(beta, Some(ADDRESS)),
            golden("discovery_beta_apis")
        );
        assert_eq!(encode_group(beta), golden("discovery_beta_group"));
        assert_eq!(encode_aggregated(beta), golden("discovery_beta_aggregated"));
    }

    #[test]
    fn the_aggregated_media_type_is_named_in_the_content_type() {
        assert_eq!(
            golden_text("discovery_aggregated.content-type"),
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
    }
}
