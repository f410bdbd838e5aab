//! This replica's Lease and the group's membership, through kube-apiserver.
//!
//! Every third of the lease duration: server-side apply of the own Lease (holder, renew time,
//! duration, group label, peer address annotation), then a list of the group's Leases by
//! label, whose unexpired holders are the members. On shutdown the own Lease is deleted so
//! the others take its nodes over at their next listing rather than after expiry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use metrics_server_shard::{LeaseRecord, live_members};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shard;

/// Label that makes Leases one group; its value is `--shard-group`.
pub const GROUP_LABEL: &str = "metrics-server-rs.io/shard-group";
/// Annotation with the holder's `host:port`.
pub const PEER_ADDRESS_ANNOTATION: &str = "metrics-server-rs.io/peer-address";
const FIELD_MANAGER: &str = "metrics-server-rs-shard";

/// The name of this replica's Lease: group and identity.
pub fn lease_name(group: &str, identity: &str) -> String {
    format!("{group}-{identity}")
}

fn own_lease(shard: &Shard, now: Timestamp) -> Lease {
    let s = &shard.settings;
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(&s.group, &s.identity)),
            namespace: Some(s.namespace.clone()),
            labels: Some(BTreeMap::from([(GROUP_LABEL.to_owned(), s.group.clone())])),
            annotations: Some(BTreeMap::from([(
                PEER_ADDRESS_ANNOTATION.to_owned(),
                s.peer_address.clone(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(s.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(s.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// The fields membership reads.
pub fn record(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.as_ref();
    LeaseRecord {
        holder: spec.and_then(|s| s.holder_identity.clone()),
        renew_time_ns: spec
            .and_then(|s| s.renew_time.as_ref())
            .and_then(|t| i64::try_from(t.0.as_nanosecond()).ok()),
        duration_seconds: spec.and_then(|s| s.lease_duration_seconds),
        peer_address: lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PEER_ADDRESS_ANNOTATION).cloned()),
    }
}

/// Renews and lists until `shutdown`, then deletes the own Lease.
pub async fn run(shard: Arc<Shard>, client: kube::Client, shutdown: CancellationToken) {
    let s = shard.settings.clone();
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    let name = lease_name(&s.group, &s.identity);
    let period = (s.lease_duration / 3).max(Duration::from_secs(1));
    let selector = format!("{GROUP_LABEL}={}", s.group);
    let mut renew_failing = false;
    loop {
        let now = Timestamp::now();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api
            .patch(&name, &params, &Patch::Apply(own_lease(&shard, now)))
            .await
        {
            Ok(_) if renew_failing => {
                tracing::info!(lease = %name, "Renewing the shard Lease works again");
                renew_failing = false;
            }
            Ok(_) => {}
            Err(e) => {
                if !renew_failing {
                    tracing::warn!(lease = %name, error = %e, "Could not renew the shard Lease");
                }
                renew_failing = true;
            }
        }
        match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => {
                let records: Vec<LeaseRecord> = list.items.iter().map(record).collect();
                let now_ns = i64::try_from(Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX);
                shard.set_members(&live_members(&records, now_ns), Instant::now());
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not list the shard group's Leases");
                // Peers that stopped answering are still taken over.
                shard.refresh(Instant::now());
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(period) => {}
        }
    }
    match tokio::time::timeout(
        Duration::from_secs(5),
        api.delete(&name, &DeleteParams::default()),
    )
    .await
    {
        Ok(Ok(_)) => tracing::info!(lease = %name, "Released the shard Lease"),
        Ok(Err(e)) => {
            tracing::warn!(lease = %name, error = %e, "Could not release the shard Lease")
        }
        Err(_) => tracing::warn!(lease = %name, "Releasing the shard Lease timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_read_back_gives_the_record_written() {
        let settings = super::super::ShardSettings {
            group: "g".to_owned(),
            namespace: "ns".to_owned(),
            identity: "r1".to_owned(),
            peer_address: "127.0.0.1:9443".to_owned(),
            lease_duration: Duration::from_secs(15),
            allowed_users: vec!["u".to_owned()],
            token_file: String::new(),
            ca_file: String::new(),
        };
        let shard = Shard::new(settings, Duration::from_secs(15), 1, Default::default());
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let lease = own_lease(&shard, now);
        assert_eq!(lease.metadata.name.as_deref(), Some("g-r1"));
        let r = record(&lease);
        assert_eq!(r.holder.as_deref(), Some("r1"));
        assert_eq!(r.peer_address.as_deref(), Some("127.0.0.1:9443"));
        assert_eq!(r.expires_ns(), Some(1_700_000_015_000_000_000));
        assert!(r.is_live(1_700_000_014_999_999_999));
        assert!(!r.is_live(1_700_000_015_000_000_000));
    }
}
