//! The serving certificate: explicit files, `--cert-dir` generation and reuse.

use std::net::IpAddr;

use metrics_server_auth::{CertSource, Error, ServingCerts, TlsOptions, server_config};
use metrics_server_test_support::pki::{PemDir, TestPki};
use x509_parser::extensions::GeneralName;

fn unspecified() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}

#[test]
fn a_self_signed_pair_is_generated_into_the_cert_dir_and_reused_on_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_dir = dir.path().join("nested/certificates");

    let first = ServingCerts::load_or_generate(&cert_dir, unspecified()).expect("generate");
    assert_eq!(first.source, CertSource::Generated(cert_dir.clone()));
    assert_eq!(first.chain.len(), 2, "cert file is leaf then CA");
    let crt = cert_dir.join("apiserver.crt");
    let key = cert_dir.join("apiserver.key");
    assert!(crt.is_file() && key.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o077, 0, "key must not be group/world readable");
    }

    let (_, leaf) = x509_parser::parse_x509_certificate(first.chain[0].as_ref()).expect("leaf");
    let (_, ca) = x509_parser::parse_x509_certificate(first.chain[1].as_ref()).expect("ca");
    let cn = |c: &x509_parser::certificate::X509Certificate<'_>| {
        c.subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(cn(&leaf).starts_with("localhost@"), "{}", cn(&leaf));
    assert!(cn(&ca).starts_with("localhost-ca@"), "{}", cn(&ca));
    assert_eq!(leaf.issuer(), ca.subject());
    let sans = leaf
        .subject_alternative_name()
        .expect("parse SAN")
        .expect("has SAN")
        .value
        .general_names
        .clone();
    assert!(sans.contains(&GeneralName::DNSName("localhost")));
    assert!(sans.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
    let validity = leaf.validity().time_to_expiration().expect("valid now");
    assert!(validity.whole_days() >= 364, "about one year");

    // It is usable for serving.
    server_config(&first, &TlsOptions::default(), vec![]).expect("server config");

    let second = ServingCerts::load_or_generate(&cert_dir, unspecified()).expect("reuse");
    assert_eq!(second.source, CertSource::Reused(cert_dir.clone()));
    assert_eq!(second.chain, first.chain, "the same certificate is reused");
}

#[test]
fn a_specific_bind_address_becomes_an_ip_san() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs =
        ServingCerts::load_or_generate(dir.path(), IpAddr::from([10, 1, 2, 3])).expect("generate");
    let (_, leaf) = x509_parser::parse_x509_certificate(certs.chain[0].as_ref()).expect("leaf");
    let sans = leaf
        .subject_alternative_name()
        .expect("parse SAN")
        .expect("has SAN")
        .value
        .general_names
        .clone();
    assert!(sans.contains(&GeneralName::IPAddress(&[10, 1, 2, 3])));
}

#[test]
fn a_cert_dir_with_only_one_of_the_pair_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("apiserver.crt"), "x").expect("write");
    let err = ServingCerts::load_or_generate(dir.path(), unspecified())
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("certificate and key must be supplied as a pair"),
        "{err}"
    );
}

#[test]
fn an_unwritable_cert_dir_is_an_error_not_a_panic() {
    // A path below a regular file can never be created, even as root.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    std::fs::write(&file, "x").expect("write");
    let err = ServingCerts::load_or_generate(&file.join("certs"), unspecified())
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
}

#[test]
fn explicit_cert_and_key_files_win_and_keep_an_appended_chain() {
    let pki = TestPki::new().expect("pki");
    let leaf = pki
        .server_cert(&["metrics-server.kube-system.svc"])
        .expect("leaf");
    let pem = PemDir::new().expect("dir");
    let crt = pem
        .write("tls.crt", format!("{}{}", leaf.cert_pem, pki.ca_pem()))
        .expect("crt");
    let key = pem.write("tls.key", &leaf.key_pem).expect("key");
    let cert_dir = tempfile::tempdir().expect("tempdir");
    let certs = ServingCerts::from_flags(Some(&crt), Some(&key), cert_dir.path(), unspecified())
        .expect("load");
    assert_eq!(certs.source, CertSource::Files);
    assert_eq!(certs.chain.len(), 2);
    assert!(
        !cert_dir.path().join("apiserver.crt").exists(),
        "nothing is generated when files are given"
    );
}

#[test]
fn a_garbage_certificate_file_is_a_clear_error() {
    let pem = PemDir::new().expect("dir");
    let crt = pem.write("tls.crt", "not a certificate").expect("crt");
    let key = pem.write("tls.key", "not a key").expect("key");
    let err = ServingCerts::from_files(&crt, &key)
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::BadPem { .. }), "{err}");
}
