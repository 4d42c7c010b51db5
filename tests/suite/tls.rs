//! TLS against real servers: a temporary PostgreSQL with `ssl = on` presenting a certificate
//! from a CA this test generates, and an HTTPS endpoint served here (rustls in front of the fake
//! node). Each `sslmode` is checked for what it must accept and refuse, and for what the report
//! says about the connection.

use std::sync::Arc;

use ceramic_audit::api::NodeApi;
use ceramic_audit::audit::{self, AuditOptions};
use ceramic_audit::config::ClusterConfig;
use ceramic_audit::report::Report;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::common::cluster::config;
use crate::common::composedb::{model_id, pg_model, Row};
use crate::common::http::{FakeNode, Reply};
use crate::common::pg::TempPg;

/// A CA, and a server certificate it signs for `localhost` only (no IP address), so that
/// connecting to 127.0.0.1 is a host-name mismatch.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

async fn audit(cfg: &ClusterConfig) -> Report {
    audit::run(cfg, &AuditOptions::default()).await
}

fn node<'a>(report: &'a Report, name: &str) -> &'a ceramic_audit::report::NodeReport {
    report
        .nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("node {name} in {:?}", report.nodes))
}

#[tokio::test]
async fn postgres_sslmodes_accept_and_refuse_what_libpq_does_and_the_report_says_which() {
    let pki = pki();
    let wrong = pki_ca_only();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    let wrong_ca = dir.path().join("wrong-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("ca.pem");
    std::fs::write(&wrong_ca, &wrong).expect("wrong-ca.pem");
    let tls = TempPg::start_tls(&pki.cert_pem, &pki.key_pem);
    let plain = TempPg::start();
    let model = model_id("tls");
    let rows: Vec<Row> = (0..20).map(|i| Row::new(i, 1)).collect();
    pg_model(&tls, &model, &[], &rows).await;
    pg_model(&plain, &model, &[], &rows).await;
    let at = |host: &str, port: u16, query: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?{query}")
    };
    let ca = ca.display();
    let wrong_ca = wrong_ca.display();

    // verify-full by name: both checks pass, and the report says so; the plain server, asked
    // with `prefer`, is read in plain text, and the report and summary say that too.
    let cfg = config(
        dir.path(),
        &[
            (
                "a",
                at(
                    "localhost",
                    tls.port,
                    &format!("sslmode=verify-full&sslrootcert={ca}"),
                ),
            ),
            ("b", at("127.0.0.1", plain.port, "sslmode=prefer")),
        ],
    );
    let report = audit(&cfg).await;
    assert!(report.complete, "{:?}", report.nodes);
    assert!(report.divergences.is_empty(), "{:?}", report.divergences);
    assert_eq!(
        node(&report, "a").tls.as_deref(),
        Some("encrypted, CA and host checked (verify-full)")
    );
    let b = node(&report, "b").tls.clone().expect("tls of b");
    assert!(b.starts_with("none: sslmode=prefer"), "{b}");
    let summary = ceramic_audit::report::summary::render(&report);
    assert!(
        summary.contains("note: node b: TLS none: sslmode=prefer"),
        "{summary}"
    );

    // A wrong CA, and a host name the certificate does not carry: refused, each saying why.
    let cfg = config(
        dir.path(),
        &[
            (
                "a",
                at(
                    "localhost",
                    tls.port,
                    &format!("sslmode=verify-full&sslrootcert={wrong_ca}"),
                ),
            ),
            (
                "b",
                at(
                    "127.0.0.1",
                    tls.port,
                    &format!("sslmode=verify-full&sslrootcert={ca}"),
                ),
            ),
        ],
    );
    let report = audit(&cfg).await;
    assert!(!report.complete);
    let a = node(&report, "a").error.clone().expect("a refused");
    assert!(
        a.contains("not signed by a CA in sslrootcert") && a.contains("wrong-ca.pem"),
        "{a}"
    );
    let b = node(&report, "b").error.clone().expect("b refused");
    assert!(b.contains("not valid for the host name"), "{b}");

    // verify-ca does not check the name; require checks nothing but encrypts; require against a
    // server without TLS is refused rather than downgraded.
    let cfg = config(
        dir.path(),
        &[
            (
                "a",
                at(
                    "127.0.0.1",
                    tls.port,
                    &format!("sslmode=verify-ca&sslrootcert={ca}"),
                ),
            ),
            ("b", at("127.0.0.1", tls.port, "sslmode=require")),
            ("c", at("127.0.0.1", plain.port, "sslmode=require")),
        ],
    );
    let report = audit(&cfg).await;
    assert_eq!(
        node(&report, "a").tls.as_deref(),
        Some("encrypted, CA checked (verify-ca)"),
        "{:?}",
        node(&report, "a")
    );
    assert_eq!(
        node(&report, "b").tls.as_deref(),
        Some("encrypted, certificate not checked (sslmode=require)")
    );
    let c = node(&report, "c").error.clone().expect("c refused");
    assert!(c.contains("server does not support TLS"), "{c}");
}

fn pki_ca_only() -> String {
    pki().ca_pem
}

#[tokio::test]
async fn a_connection_error_keeps_the_os_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let plain = TempPg::start();
    let cfg = config(
        dir.path(),
        &[
            (
                "a",
                format!("postgres://postgres@127.0.0.1:{closed}/postgres"),
            ),
            ("b", plain.dsn()),
        ],
    );
    let report = audit(&cfg).await;
    let a = node(&report, "a").error.clone().expect("a unreachable");
    assert!(a.contains("Connection refused"), "{a}");
}

/// Terminates TLS with `pki`'s certificate on 127.0.0.1 and forwards the bytes to `backend`.
async fn https_front(pki: &Pki, backend: &str) -> (String, tokio::task::JoinHandle<()>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(pki.cert_pem.as_bytes()).expect("cert")];
    let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let backend = backend.trim_start_matches("http://").to_string();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (format!("localhost:{port}"), task)
}

#[tokio::test]
async fn https_api_urls_are_checked_against_the_given_ca_and_credentials_are_never_printed() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    let wrong_ca = dir.path().join("wrong.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("ca.pem");
    std::fs::write(&wrong_ca, pki_ca_only()).expect("wrong.pem");
    let node = FakeNode::start(|_, _| Reply::Full(200, "Alive!".into())).await;
    let (addr, task) = https_front(&pki, &node.url).await;
    let options = ceramic_audit::api::ApiOptions {
        retries: 0,
        ..Default::default()
    };

    let url = format!("https://ops:s3cret@{addr}");
    let api = NodeApi::with_ca("a", &url, Some(&ca), options.clone()).expect("client");
    api.healthcheck().await.expect("healthy over https");
    let seen = node.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    // ops:s3cret as HTTP basic authentication.
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Basic b3BzOnMzY3JldA==")
    );

    let api = NodeApi::with_ca("a", &url, Some(&wrong_ca), options.clone()).expect("client");
    let e = api.healthcheck().await.expect_err("unknown CA").to_string();
    assert!(e.contains("not signed by a CA"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
    let by_ip = url.replace("localhost", "127.0.0.1");
    let api = NodeApi::with_ca("a", &by_ip, Some(&ca), options.clone()).expect("client");
    let e = api.healthcheck().await.expect_err("wrong host").to_string();
    assert!(e.contains("not valid for the host name"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
    let e = NodeApi::with_ca("a", "gopher://ops:s3cret@x", None, options)
        .err()
        .expect("bad scheme")
        .to_string();
    assert!(!e.contains("s3cret") && e.contains("ops:***@"), "{e}");
    task.abort();
}
