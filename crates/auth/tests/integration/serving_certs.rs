//! Serving certificates through a real TLS listener: files rotated on disk reach new
//! connections, broken files keep the old pair, and SNI picks the pair by server name.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use metrics_server_auth::serving_certs::Reload;
use metrics_server_auth::{
    DynamicServingCerts, NamedCertKey, ServeOptions, ServingCertFiles, TlsOptions,
    server_config_with_resolver,
};
use metrics_server_test_support::pki::{IssuedCert, PemDir, TestPki};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Accepts any server certificate: these tests look at which one was served, including
/// the default pair answering a name it does not carry.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The leaf the server presents to a fresh client (no session resumption). `sni` `None`
/// dials the IP, which sends no server name.
async fn served_leaf(addr: SocketAddr, sni: Option<&str>) -> Vec<u8> {
    let provider = metrics_server_auth::provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_owned()).expect("dns name"),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("server certificate");
    leaf.as_ref().to_vec()
}

fn der(cert: &IssuedCert) -> Vec<u8> {
    cert.cert_chain()[0].as_ref().to_vec()
}

async fn ok(_req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    Ok(Response::new("ok".to_owned()))
}

/// A TLS listener whose certificates come from `certs`.
async fn listen(certs: &DynamicServingCerts) -> (SocketAddr, CancellationToken) {
    let config = server_config_with_resolver(certs.resolver(), &TlsOptions::default(), vec![])
        .expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(metrics_server_auth::serve(
        listener,
        Arc::new(ArcSwap::new(config)),
        tower::service_fn(ok),
        ServeOptions::default(),
        shutdown.clone(),
    ));
    (addr, shutdown)
}

fn default_files(dir: &PemDir, cert: &IssuedCert, sni: Vec<NamedCertKey>) -> ServingCertFiles {
    let (cert_file, key_file) = dir.write_cert("serving", cert).expect("write");
    ServingCertFiles {
        cert_file,
        key_file,
        sni,
    }
}

#[tokio::test]
async fn a_rotated_serving_pair_reaches_new_connections_without_a_restart() {
    let ca = TestPki::new().expect("ca");
    let first = ca.server_cert(&["127.0.0.1"]).expect("cert");
    let second = ca.server_cert(&["127.0.0.1"]).expect("cert");
    let dir = PemDir::new().expect("dir");
    let certs = DynamicServingCerts::load(default_files(&dir, &first, vec![])).expect("load");
    let (addr, shutdown) = listen(&certs).await;
    let reloader = certs.spawn(Duration::from_millis(20), shutdown.clone());
    assert_eq!(served_leaf(addr, None).await, der(&first));

    // Key first, then certificate, as a non-atomic writer would do it.
    dir.write("serving.key", &second.key_pem).expect("key");
    dir.write("serving.crt", &second.cert_pem).expect("cert");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while served_leaf(addr, None).await != der(&second) {
        assert!(tokio::time::Instant::now() < deadline, "rotation not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    reloader.await.expect("reloader stops");
}

#[tokio::test]
async fn half_written_or_mismatched_files_keep_the_old_pair_until_both_are_good() {
    let ca = TestPki::new().expect("ca");
    let first = ca.server_cert(&["127.0.0.1"]).expect("cert");
    let second = ca.server_cert(&["127.0.0.1"]).expect("cert");
    let dir = PemDir::new().expect("dir");
    let mut certs = DynamicServingCerts::load(default_files(&dir, &first, vec![])).expect("load");
    let (addr, shutdown) = listen(&certs).await;

    // The new certificate next to the old key: not a pair.
    dir.write("serving.crt", &second.cert_pem).expect("cert");
    let err = certs.sync().expect_err("mismatched pair");
    assert!(err.to_string().contains("do not form a pair"), "{err}");
    assert_eq!(served_leaf(addr, None).await, der(&first));

    // A certificate cut off mid-write.
    let half = &second.cert_pem[..second.cert_pem.len() / 2];
    dir.write("serving.crt", half).expect("half");
    certs.sync().expect_err("truncated PEM");
    assert_eq!(served_leaf(addr, None).await, der(&first));

    // An empty key file, then a missing one.
    dir.write("serving.crt", &second.cert_pem).expect("cert");
    dir.write("serving.key", "").expect("empty");
    certs.sync().expect_err("empty key");
    std::fs::remove_file(dir.path().join("serving.key")).expect("rm");
    certs.sync().expect_err("missing key");
    assert_eq!(served_leaf(addr, None).await, der(&first));

    dir.write("serving.key", &second.key_pem).expect("key");
    assert_eq!(certs.sync().expect("good pair"), Reload::Swapped);
    assert_eq!(served_leaf(addr, None).await, der(&second));
    assert_eq!(certs.sync().expect("same files"), Reload::Unchanged);
    shutdown.cancel();
}

/// Default for 127.0.0.1; `explicit` named foo.test by the flag; `derived` answers its own
/// CN bar.test and SAN *.wild.test; `late` claims foo.test and bar.test explicitly but
/// comes after `explicit`.
struct SniSetup {
    dir: PemDir,
    default: IssuedCert,
    explicit: IssuedCert,
    derived: IssuedCert,
    late: IssuedCert,
    files: ServingCertFiles,
}

fn sni_setup() -> SniSetup {
    let ca = TestPki::new().expect("ca");
    let dir = PemDir::new().expect("dir");
    let default = ca.server_cert(&["127.0.0.1"]).expect("cert");
    let explicit = ca
        .server_cert(&["not-used-for-selection.test"])
        .expect("cert");
    let derived = ca.server_cert(&["bar.test", "*.wild.test"]).expect("cert");
    let late = ca.server_cert(&["late.test"]).expect("cert");
    let named = |stem: &str, cert: &IssuedCert, names: &[&str]| {
        let (cert_file, key_file) = dir.write_cert(stem, cert).expect("write");
        NamedCertKey {
            cert_file,
            key_file,
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        }
    };
    let sni = vec![
        named("explicit", &explicit, &["foo.test"]),
        named("derived", &derived, &[]),
        named("late", &late, &["foo.test", "bar.test", "late.test"]),
    ];
    let files = default_files(&dir, &default, sni);
    SniSetup {
        dir,
        default,
        explicit,
        derived,
        late,
        files,
    }
}

#[tokio::test]
async fn sni_picks_the_pair_by_name_with_go_s_wildcard_and_precedence_rules() {
    let s = sni_setup();
    let certs = DynamicServingCerts::load(s.files.clone()).expect("load");
    let (addr, shutdown) = listen(&certs).await;
    let cases: &[(Option<&str>, &IssuedCert)] = &[
        (None, &s.default),
        (Some("foo.test"), &s.explicit),
        (Some("FOO.Test"), &s.explicit),
        // An explicit name beats a name derived from another certificate.
        (Some("bar.test"), &s.late),
        (Some("late.test"), &s.late),
        (Some("x.wild.test"), &s.derived),
        // The wildcard replaces exactly one label.
        (Some("a.b.wild.test"), &s.default),
        (Some("wild.test"), &s.default),
        (Some("unknown.test"), &s.default),
        (Some("not-used-for-selection.test"), &s.default),
    ];
    for (sni, want) in cases {
        assert_eq!(served_leaf(addr, *sni).await, der(want), "SNI {sni:?}");
    }
    shutdown.cancel();
}

#[tokio::test]
async fn sni_pairs_are_hot_reloaded_too() {
    let s = sni_setup();
    let mut certs = DynamicServingCerts::load(s.files.clone()).expect("load");
    let (addr, shutdown) = listen(&certs).await;
    assert_eq!(served_leaf(addr, Some("foo.test")).await, der(&s.explicit));

    let ca = TestPki::new().expect("ca");
    let rotated = ca.server_cert(&["foo.test"]).expect("cert");
    s.dir.write_cert("explicit", &rotated).expect("rotate");
    assert_eq!(certs.sync().expect("reload"), Reload::Swapped);
    assert_eq!(served_leaf(addr, Some("foo.test")).await, der(&rotated));
    assert_eq!(served_leaf(addr, None).await, der(&s.default));

    // A broken SNI pair keeps the whole previous set.
    s.dir.write("derived.key", "garbage").expect("break");
    certs.sync().expect_err("broken SNI key");
    assert_eq!(
        served_leaf(addr, Some("x.wild.test")).await,
        der(&s.derived)
    );
    shutdown.cancel();
}

#[tokio::test]
async fn an_sni_file_that_cannot_be_read_at_startup_is_an_error() {
    let s = sni_setup();
    let mut files = s.files.clone();
    files.sni.push(NamedCertKey {
        cert_file: s.dir.path().join("absent.crt"),
        key_file: s.dir.path().join("absent.key"),
        names: vec![],
    });
    let err = DynamicServingCerts::load(files)
        .map(|_| ())
        .expect_err("missing files");
    assert!(err.to_string().contains("absent.crt"), "{err}");
}

#[tokio::test]
async fn a_client_without_sni_gets_the_pair_named_for_the_local_ip() {
    let ca = TestPki::new().expect("ca");
    let dir = PemDir::new().expect("dir");
    let default = ca.server_cert(&["localhost"]).expect("cert");
    let by_ip = ca.server_cert(&["127.0.0.1"]).expect("cert");
    let named = ca.server_cert(&["named.test"]).expect("cert");
    let (cert_file, key_file) = dir.write_cert("ip", &by_ip).expect("write");
    let (named_cert, named_key) = dir.write_cert("named", &named).expect("write");
    let sni = vec![
        NamedCertKey {
            cert_file,
            key_file,
            names: vec!["127.0.0.1".into()],
        },
        NamedCertKey {
            cert_file: named_cert,
            key_file: named_key,
            names: vec![],
        },
    ];
    assert!(metrics_server_auth::names_an_ip(&sni));
    let certs = DynamicServingCerts::load(default_files(&dir, &default, sni)).expect("load");
    let config = server_config_with_resolver(certs.resolver(), &TlsOptions::default(), vec![])
        .expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(metrics_server_auth::serve(
        listener,
        Arc::new(ArcSwap::new(config)),
        tower::service_fn(ok),
        ServeOptions {
            certs_by_local_ip: Some(certs.resolver()),
            ..ServeOptions::default()
        },
        shutdown.clone(),
    ));
    assert_eq!(served_leaf(addr, None).await, der(&by_ip));
    // A client that does send a name keeps the name-based choice.
    assert_eq!(served_leaf(addr, Some("named.test")).await, der(&named));
    assert_eq!(served_leaf(addr, Some("other.test")).await, der(&default));
    shutdown.cancel();

    // Without the option the local address plays no part.
    let (addr, shutdown) = listen(&certs).await;
    assert_eq!(served_leaf(addr, None).await, der(&default));
    shutdown.cancel();
}
