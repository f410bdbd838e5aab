//! CA files (and the ConfigMap) are re-read; a change swaps the authn config and the TLS
//! config's acceptable issuers without a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics_server_auth::lookup::{self, AuthenticationOptions};
use metrics_server_auth::{CaBundle, ServingCerts, TlsOptions, server_config, tls_reloader};
use metrics_server_test_support::pki::{PemDir, TestPki};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_rotated_client_ca_file_is_picked_up_by_the_reloader() {
    let old_ca = TestPki::new().expect("ca");
    let new_ca = TestPki::new().expect("ca");
    let dir = PemDir::new().expect("dir");
    let path = dir.write("client-ca.crt", old_ca.ca_pem()).expect("write");
    let opts = AuthenticationOptions {
        client_ca_file: Some(path.clone()),
        skip_lookup: true,
        reload_interval: Duration::from_millis(20),
        ..AuthenticationOptions::default()
    };
    let initial = lookup::load(&opts, None).await.expect("load");
    let target = Arc::new(ArcSwap::from_pointee(initial));

    let serving = TestPki::new().expect("ca");
    let leaf = serving.server_cert(&["127.0.0.1"]).expect("leaf");
    let certs = ServingCerts::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes(), "t")
        .expect("certs");
    let tls = Arc::new(ArcSwap::new(
        server_config(
            &certs,
            &TlsOptions::default(),
            target.load().acceptable_issuers(),
        )
        .expect("tls"),
    ));
    let tls_before = tls.load_full();
    let rebuild = tls_reloader(certs, TlsOptions::default(), tls.clone());
    let changes = Arc::new(AtomicUsize::new(0));
    let counted = changes.clone();

    let shutdown = CancellationToken::new();
    let task = lookup::spawn_reloader(
        opts,
        None,
        target.clone(),
        move |cfg| {
            counted.fetch_add(1, Ordering::SeqCst);
            rebuild(cfg);
        },
        shutdown.clone(),
    );

    // Unchanged content triggers nothing.
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(changes.load(Ordering::SeqCst), 0);

    dir.write("client-ca.crt", new_ca.ca_pem()).expect("rotate");
    let expected = CaBundle::from_pem(new_ca.ca_pem().as_bytes(), "new").expect("bundle");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while target.load().client_ca.as_ref() != Some(&expected) {
        assert!(tokio::time::Instant::now() < deadline, "reload not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(changes.load(Ordering::SeqCst), 1);
    assert!(
        !Arc::ptr_eq(&tls_before, &tls.load_full()),
        "TLS config rebuilt"
    );

    // A broken file keeps the last good configuration.
    dir.write("client-ca.crt", "garbage").expect("break");
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(target.load().client_ca.as_ref(), Some(&expected));

    shutdown.cancel();
    task.await.expect("reloader stops");
}
