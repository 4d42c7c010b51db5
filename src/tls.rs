//! TLS for the two kinds of connection the tool opens: Postgres (libpq's `sslmode` and
//! `sslrootcert`, read from the DSN) and the nodes' HTTP APIs (`https://` api_urls).
//!
//! One rustls stack with the `ring` provider serves both. `ring` rather than rustls' default
//! `aws-lc-rs`: aws-lc-rs needs cmake and a long C build, ring builds in seconds and offers every
//! cipher suite Postgres and a TLS-terminating proxy speak. The provider is passed explicitly, so
//! nothing depends on a process-wide default.
//!
//! `sslmode` follows libpq: `disable` plain; `prefer` (libpq's default, and ours when the DSN
//! says nothing) TLS when the server offers it, else plain — and the report says which;
//! `require` TLS without checking the certificate, unless `sslrootcert` is given (then like
//! `verify-ca`, as libpq does); `verify-ca` the chain must lead to the CA; `verify-full` also the
//! host name. Without `sslrootcert` the verifying modes use the system's CA store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            // libpq's `allow` tries plain first; refusing it beats silently downgrading.
            other => {
                return Err(format!(
                    "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                ))
            }
        })
    }
}

/// The TLS settings of one Postgres DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgTls {
    pub mode: SslMode,
    /// `sslrootcert`: the CA bundle (PEM) the server's chain must lead to.
    pub root_cert: Option<PathBuf>,
}

impl PgTls {
    /// What is checked of the server's certificate: the mode libpq would actually apply
    /// (`require` with a root certificate verifies the chain).
    pub fn effective_mode(&self) -> SslMode {
        match self.mode {
            SslMode::Require if self.root_cert.is_some() => SslMode::VerifyCa,
            m => m,
        }
    }
}

/// Splits `sslmode` and `sslrootcert` out of a `postgres://` URL (tokio-postgres knows only
/// `disable|prefer|require` and no `sslrootcert`). Returns the DSN without them, for
/// tokio-postgres, and the settings. Other parameters stay as they are.
pub fn split_pg_dsn(dsn: &str) -> Result<(String, PgTls), String> {
    let mut tls = PgTls {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let Some((base, query)) = dsn.split_once('?') else {
        return Ok((dsn.to_string(), tls));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => tls.mode = SslMode::parse(&percent_decode(value)?)?,
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(percent_decode(value)?)),
            _ => kept.push(pair),
        }
    }
    let dsn = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((dsn, tls))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{s:?}: a `%` must be followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?}: not UTF-8 once decoded"))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide rustls provider, for code that builds a `reqwest::Client`
/// without [`client_config`] (reqwest is built without a provider of its own and would panic).
/// Harmless when a provider is already installed.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The CA certificates of a PEM file, or the system's store when `file` is `None`.
pub fn root_store(file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("CA file {}: not PEM certificates: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "CA file {}: no certificate in it (expected PEM `BEGIN CERTIFICATE`)",
                    path.display()
                ));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(format!(
                    "no CA certificate found in the system store{why} (install ca-certificates, \
                     or name a CA file)"
                ));
            }
        }
    }
    Ok(roots)
}

/// A client configuration: `verify` `None` accepts any certificate (the connection is
/// encrypted, not authenticated); `Some((roots, check_host))` checks the chain, and the host
/// name when `check_host`.
pub fn client_config(verify: Option<(RootCertStore, bool)>) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match verify {
        Some((roots, true)) => builder.with_root_certificates(roots).with_no_client_auth(),
        Some((roots, false)) => {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("TLS setup: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// The rustls configuration a Postgres DSN's settings ask for (`None` for `disable`).
pub fn pg_client_config(tls: &PgTls) -> Result<Option<ClientConfig>, String> {
    let verify = match tls.effective_mode() {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => None,
        SslMode::VerifyCa => Some((root_store(tls.root_cert.as_deref())?, false)),
        SslMode::VerifyFull => Some((root_store(tls.root_cert.as_deref())?, true)),
    };
    client_config(verify).map(Some)
}

/// `verify-ca`: the chain must lead to a trusted CA; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without a CA: encrypted, not authenticated (libpq's behaviour). The
/// handshake signatures are still checked, so the peer holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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

/// An error with every cause in its chain: `error connecting to server: Connection refused (os
/// error 111)` where tokio-postgres and reqwest print only the first part.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    describe_error(e, "the trusted CAs")
}

/// [`error_chain`], and a certificate failure said in words: which check failed and against
/// what. `ca` names where the trusted CAs came from.
pub fn describe_error(e: &(dyn std::error::Error + 'static), ca: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cert_problem = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        if cert_problem.is_none() {
            cert_problem = rustls_error(err).and_then(|r| explain(r, ca));
        }
        cur = err.source();
    }
    let mut message = parts.join(": ");
    if let Some(p) = cert_problem {
        message.push_str(&format!(" ({p})"));
    }
    message
}

/// Connects with the DSN's TLS settings; the connection's driver runs on its own task.
pub async fn connect_pg(
    config: &tokio_postgres::Config,
    tls: &PgTls,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), String> {
    let mut config = config.clone();
    let ca = match &tls.root_cert {
        Some(p) => format!("sslrootcert {}", p.display()),
        None => "the system's CA store".to_string(),
    };
    let describe = |e: tokio_postgres::Error| describe_error(&e, &ca);
    match pg_client_config(tls)? {
        None => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(describe)?;
            // Errors surface on the next query as a closed connection; nothing to do here.
            Ok((
                client,
                tokio::spawn(async move {
                    let _ = connection.await;
                }),
            ))
        }
        Some(rustls_config) => {
            config.ssl_mode(if tls.mode == SslMode::Prefer {
                tokio_postgres::config::SslMode::Prefer
            } else {
                tokio_postgres::config::SslMode::Require
            });
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new(rustls_config);
            let (client, connection) = config.connect(connector).await.map_err(describe)?;
            Ok((
                client,
                tokio::spawn(async move {
                    let _ = connection.await;
                }),
            ))
        }
    }
}

/// `NodeReport::tls` of a Postgres node: what protects the connection, as observed.
pub fn describe_pg_state(tls: &PgTls, encrypted: bool) -> String {
    match (tls.effective_mode(), encrypted) {
        (SslMode::Disable, _) => "none (sslmode=disable)".into(),
        (SslMode::Prefer, false) => {
            "none: sslmode=prefer and the server offers no TLS, so the connection fell back to              plain text"
                .into()
        }
        (SslMode::Prefer | SslMode::Require, true) => format!(
            "encrypted, certificate not checked (sslmode={})",
            tls.mode.as_str()
        ),
        (SslMode::VerifyCa, true) => "encrypted, CA checked (verify-ca)".into(),
        (SslMode::VerifyFull, true) => "encrypted, CA and host checked (verify-full)".into(),
        // tokio-postgres refuses to go on without TLS in these modes; say so if it ever did.
        (m, false) => format!("none, although sslmode={} asked for TLS", m.as_str()),
    }
}

/// The rustls error inside an error, which tokio-rustls wraps in an `io::Error` (hyper-rustls
/// in two), whose `source()` skips it: so it is looked for inside each `io::Error`.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = e;
    loop {
        if let Some(r) = cur.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        let inner = cur.downcast_ref::<std::io::Error>()?.get_ref()?;
        cur = inner;
    }
}

fn explain(e: &rustls::Error, ca: &str) -> Option<String> {
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    Some(match c {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
            format!("the server's certificate is not signed by a CA in {ca}")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the server's certificate is not valid for the host name connected to (the host \
             name is checked by sslmode=verify-full and by https)"
                .to_string()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired".to_string()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (check the clocks)".to_string()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_parameters_are_split_out() {
        let (dsn, tls) = split_pg_dsn(
            "postgres://u@db.example:5432/ceramic?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(
            dsn,
            "postgres://u@db.example:5432/ceramic?connect_timeout=5"
        );
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (dsn, tls) = split_pg_dsn("postgres://u@h/db").unwrap();
        assert_eq!(
            (dsn.as_str(), tls.mode),
            ("postgres://u@h/db", SslMode::Prefer)
        );
        let (_, tls) =
            split_pg_dsn("postgres://u@h/db?sslmode=require&sslrootcert=ca.pem").unwrap();
        assert_eq!(tls.effective_mode(), SslMode::VerifyCa);
        let e = split_pg_dsn("postgres://u@h/db?sslmode=allow").unwrap_err();
        assert!(e.contains("sslmode=allow"), "{e}");
    }
}
