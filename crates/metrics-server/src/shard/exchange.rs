//! The exchange of points between replicas: a long-poll endpoint on the secure port and one
//! polling task per live peer.
//!
//! `GET /shard/v1/points?epoch=E&since=V&wait=S` answers at once when the replica's shard
//! moved past `(E, V)`, else when it does or after `S` seconds (at most [`MAX_WAIT`]), with a
//! binary delta (`metrics_server_shard::codec`). It passes the serving stack's
//! authentication like every request; authorization is this handler's: only the users of
//! `--shard-peer-allowed-users` get an answer, everyone else a 403.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use http::{HeaderValue, Response, StatusCode, header};
use metrics_server_auth::User;
use metrics_server_kubelet::{
    KubeletClient, KubeletClientConfig, PemSource, ServerVerification, TlsSettings, TokenSource,
    Transport,
};
use metrics_server_shard::codec::{self, CONTENT_TYPE};
use metrics_server_shard::{ApplyError, PeerView};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shard;

/// The endpoint's path (exact; the authorizer lets it through to the handler's own check).
pub const PATH: &str = "/shard/v1/points";

/// Longest long poll; below the default `--request-timeout` of 60 s.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Largest delta read from a peer.
const MAX_BODY: usize = 256 * 1024 * 1024;

fn plain(code: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{text}\n")));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The query of a poll.
#[derive(Debug, Default, PartialEq, Eq)]
struct PollQuery {
    epoch: u64,
    since: u64,
    wait: Duration,
}

fn parse_query(q: &str) -> PollQuery {
    let mut out = PollQuery::default();
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "epoch" => out.epoch = v.parse().unwrap_or(0),
            "since" => out.since = v.parse().unwrap_or(0),
            "wait" => {
                out.wait = Duration::from_secs(v.parse().unwrap_or(0)).min(MAX_WAIT);
            }
            _ => {}
        }
    }
    out
}

/// The handler of [`PATH`].
pub async fn serve(State(shard): State<Arc<Shard>>, req: Request) -> Response<Body> {
    let user = req.extensions().get::<User>().map(|u| u.name.as_str());
    let allowed = user.is_some_and(|u| shard.settings.allowed_users.iter().any(|a| a == u));
    if !allowed {
        tracing::debug!(user = ?user, "Refused a shard exchange request");
        return plain(
            StatusCode::FORBIDDEN,
            "forbidden: not an allowed shard peer",
        );
    }
    let q = parse_query(req.uri().query().unwrap_or(""));
    if q.epoch == shard.epoch && !q.wait.is_zero() {
        let mut rx = shard.version.subscribe();
        let _ = tokio::time::timeout(q.wait, rx.wait_for(|v| *v != q.since)).await;
    }
    let body = {
        let own = shard.own();
        codec::encode(&own.delta_since(q.epoch, q.since))
    };
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

/// The client peers are polled with: TLS verified against `--shard-peer-ca-file` when set,
/// the bearer token of `--shard-peer-token-file` when it exists.
pub fn peer_client(shard: &Shard, user_agent: String) -> anyhow::Result<KubeletClient> {
    let s = &shard.settings;
    let verification = if s.ca_file.is_empty() {
        tracing::warn!(
            "--shard-peer-ca-file is empty: peers' serving certificates are not verified"
        );
        ServerVerification::Insecure
    } else {
        ServerVerification::Ca(PemSource::File(s.ca_file.clone().into()))
    };
    let token = if std::path::Path::new(&s.token_file).is_file() {
        TokenSource::File {
            path: s.token_file.clone().into(),
            refresh: Duration::from_secs(60),
        }
    } else {
        tracing::warn!(file = %s.token_file, "No shard peer token file; polling peers without a token");
        TokenSource::None
    };
    let mut config = KubeletClientConfig::new(Transport::Https(TlsSettings {
        verification,
        client_cert: None,
    }));
    config.token = token;
    config.user_agent = user_agent;
    config.request_timeout = MAX_WAIT + Duration::from_secs(10);
    config.max_body_bytes = MAX_BODY;
    Ok(KubeletClient::new(&config)?)
}

/// Starts and stops one poller per live peer as membership changes, until `shutdown`.
pub async fn supervise(shard: Arc<Shard>, client: Arc<KubeletClient>, shutdown: CancellationToken) {
    let mut pollers: BTreeMap<String, (String, JoinHandle<()>)> = BTreeMap::new();
    loop {
        let wanted: BTreeMap<String, String> = shard
            .peers()
            .iter()
            .filter(|(_, s)| s.left_at.is_none())
            .filter_map(|(id, s)| Some((id.clone(), s.address.clone()?)))
            .collect();
        pollers.retain(|id, (addr, task)| {
            let keep = wanted.get(id) == Some(addr) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, addr) in wanted {
            if pollers.contains_key(&id) {
                continue;
            }
            let task = tokio::spawn(poll_peer(
                Arc::clone(&shard),
                Arc::clone(&client),
                id.clone(),
                addr.clone(),
                shutdown.child_token(),
            ));
            pollers.insert(id, (addr, task));
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = shard.peers_changed.notified() => {}
        }
    }
    for (_, (_, task)) in pollers {
        task.abort();
    }
}

/// Long-polls one peer and applies what it sends to its copy.
async fn poll_peer(
    shard: Arc<Shard>,
    client: Arc<KubeletClient>,
    id: String,
    address: String,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    let wait = MAX_WAIT.min(shard.resolution.max(Duration::from_secs(1)));
    loop {
        let cursor = shard.peers().get(&id).map_or((0, 0), |s| s.view.cursor());
        let url = format!(
            "https://{address}{PATH}?epoch={}&since={}&wait={}",
            cursor.0,
            cursor.1,
            wait.as_secs()
        );
        let deadline = Instant::now() + wait + Duration::from_secs(10);
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            r = client.get(&url, deadline) => r,
        };
        let outcome = result
            .map_err(|e| e.to_string())
            .and_then(|f| {
                shard.metrics.received_bytes.inc_by(f.body.len() as u64);
                codec::decode(&f.body).map_err(|e| e.to_string())
            })
            .map(|delta| apply(&shard, &id, delta));
        match outcome {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(error) => {
                shard.metrics.exchange_errors.inc();
                let first = mark_failing(&shard, &id);
                if first {
                    tracing::warn!(peer = %id, %address, %error, "Shard exchange with a peer failed");
                } else {
                    tracing::debug!(peer = %id, %address, %error, "Shard exchange with a peer failed");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Applies a delta to the peer's copy; a gap resets the copy so the next poll gets it whole.
fn apply(shard: &Shard, id: &str, delta: metrics_server_shard::Delta) {
    let mut peers = shard.peers();
    let Some(slot) = peers.get_mut(id) else {
        return;
    };
    if slot.failing_since.take().is_some() {
        tracing::info!(peer = %id, "Shard exchange with a peer works again");
    }
    match slot.view.apply(delta) {
        Ok(true) => {
            drop(peers);
            shard.changed.notify_one();
        }
        Ok(false) => {}
        Err(ApplyError::Gap { .. }) => slot.view = PeerView::new(),
    }
}

/// Marks a peer failing; true when it was not already.
fn mark_failing(shard: &Shard, id: &str) -> bool {
    let mut peers = shard.peers();
    match peers.get_mut(id) {
        Some(slot) if slot.failing_since.is_none() => {
            slot.failing_since = Some(Instant::now());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Marks `id` failing since `at` (for the shard's own tests).
    pub(in crate::shard) fn mark(shard: &Shard, id: &str, at: Instant) -> bool {
        let mut peers = shard.peers();
        match peers.get_mut(id) {
            Some(slot) => {
                slot.failing_since = Some(at);
                true
            }
            None => false,
        }
    }

    /// Applies a delta as the poller would.
    pub(in crate::shard) fn deliver(shard: &Shard, id: &str, delta: metrics_server_shard::Delta) {
        apply(shard, id, delta);
    }

    fn shard() -> Arc<Shard> {
        let settings = crate::shard::ShardSettings {
            group: "g".to_owned(),
            namespace: "ns".to_owned(),
            identity: "a".to_owned(),
            peer_address: "a:443".to_owned(),
            lease_duration: Duration::from_secs(6),
            allowed_users: vec!["peer".to_owned()],
            token_file: String::new(),
            ca_file: String::new(),
        };
        Arc::new(Shard::new(
            settings,
            Duration::from_secs(15),
            7,
            Default::default(),
        ))
    }

    fn request(user: Option<&str>, query: &str) -> Request {
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = format!("{PATH}?{query}").parse().unwrap();
        if let Some(name) = user {
            req.extensions_mut().insert(User {
                name: name.to_owned(),
                ..User::default()
            });
        }
        req
    }

    async fn body(r: Response<Body>) -> Vec<u8> {
        use http_body_util::BodyExt as _;
        r.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn only_allowed_peers_get_points() {
        let s = shard();
        for user in [None, Some("system:anonymous"), Some("someone")] {
            let r = serve(State(Arc::clone(&s)), request(user, "")).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{user:?}");
        }
        let r = serve(State(s), request(Some("peer"), "epoch=0&since=0")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let d = codec::decode(&body(r).await).unwrap();
        assert!(d.full);
        assert_eq!(d.epoch, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_answers_as_soon_as_the_shard_moves() {
        let s = shard();
        let waiting = tokio::spawn(serve(
            State(Arc::clone(&s)),
            request(Some("peer"), "epoch=7&since=0&wait=30"),
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished());
        s.update_own(vec![(
            "n".to_owned(),
            metrics_server_core::NodeScrape::default(),
        )]);
        let r = waiting.await.unwrap();
        let d = codec::decode(&body(r).await).unwrap();
        assert_eq!((d.full, d.since, d.version), (false, 0, 1));
        assert_eq!(d.upserts.len(), 1);
        // Nothing new: the poll ends empty after its wait.
        let r = serve(State(s), request(Some("peer"), "epoch=7&since=1&wait=2")).await;
        let d = codec::decode(&body(r).await).unwrap();
        assert_eq!((d.version, d.upserts.len()), (1, 0));
    }

    #[test]
    fn poll_queries_parse_and_bound_the_wait() {
        assert_eq!(
            parse_query("epoch=7&since=3&wait=10"),
            PollQuery {
                epoch: 7,
                since: 3,
                wait: Duration::from_secs(10)
            }
        );
        assert_eq!(parse_query("wait=3600").wait, MAX_WAIT);
        assert_eq!(parse_query("epoch=x&bogus"), PollQuery::default());
    }
}
