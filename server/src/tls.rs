//! TLS for SSL and SASL_SSL listeners (rustls with the `ring` provider): the server config from
//! PEM files, the handshake of one connection, and the principal of a client certificate.
//!
//! This kernel has no kTLS, so encryption happens in user space: a TLS fetch reads its record
//! bytes from the file and encrypts them (no splice). Plaintext listeners keep zero-copy; see
//! docs/decisions/0009-security-tls-userspace-credential-store.md.
//!
//! # Invariants worth naming
//! - With `--tls-client-ca-file`, a client without a certificate signed by that CA never finishes
//!   the handshake (Kafka's `ssl.client.auth=required`).
//! - The handshake is bounded by `--frame-read-timeout-ms`, like any frame.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The listener TLS configuration from `--tls-cert-file`, `--tls-key-file` and, for mutual TLS,
/// `--tls-client-ca-file`.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("reading the private key in {}", key_file.display()))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca_file)? {
                roots
                    .add(cert)
                    .with_context(|| format!("a CA certificate in {}", ca_file.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .with_context(|| format!("the certificate in {}", cert_file.display()))?;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing the certificates in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

/// Kafka's default principal of a client certificate: `User:` and the subject's distinguished
/// name in RFC 2253 order (most specific first, `CN=client,OU=eng,O=acme`). `None` if the
/// certificate cannot be parsed (the handshake verified it, so this does not happen in practice).
pub fn certificate_principal(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type();
                    let name = x509_parser::objects::oid2abbrev(oid, registry)
                        .map_or_else(|_| oid.to_id_string(), str::to_string);
                    let value = attribute.as_str().unwrap_or("#");
                    format!("{name}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.reverse();
    Some(format!("User:{}", rdns.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl req -x509 -subj "/C=US/O=ringtail-tests/OU=eng/CN=client-app"` (P-256).
    const CLIENT_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIB6TCCAY+gAwIBAgIUMmzdPrbbru8UJdwBMRCO3VhvRnkwCgYIKoZIzj0EAwIw
STELMAkGA1UEBhMCVVMxFzAVBgNVBAoMDnJpbmd0YWlsLXRlc3RzMQwwCgYDVQQL
DANlbmcxEzARBgNVBAMMCmNsaWVudC1hcHAwIBcNMjYxMTMwMTU0NDU0WhgPMjEy
NjExMDYxNTQ0NTRaMEkxCzAJBgNVBAYTAlVTMRcwFQYDVQQKDA5yaW5ndGFpbC10
ZXN0czEMMAoGA1UECwwDZW5nMRMwEQYDVQQDDApjbGllbnQtYXBwMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAENzxXLfkxn0gJyAlkZZJeKvtD17qXp7AmAOMoPLWY
8FV+AEqPl7bTVUC/yaX7VcwEwpytcKtIREKzwEgQJZDEtqNTMFEwHQYDVR0OBBYE
FBIMW4s9KY+klOErqYmbSyF1yRCgMB8GA1UdIwQYMBaAFBIMW4s9KY+klOErqYmb
SyF1yRCgMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgQStg3KBB
qfJ9H3/ywqPrxySIgtzm0ZDAhucqcTwzudYCIQCec3A+Lbcpq0JUrNsS/UOFI8p3
W1qc0Z9HP6e3TzBm4g==
-----END CERTIFICATE-----
";

    #[test]
    fn the_principal_is_the_subject_most_specific_first() {
        // Kafka's default principal builder: X500Principal.getName() (RFC 2253 order).
        let der = CertificateDer::from_pem_slice(CLIENT_CERT.as_bytes()).unwrap();
        assert_eq!(
            certificate_principal(&der).as_deref(),
            Some("User:CN=client-app,OU=eng,O=ringtail-tests,C=US")
        );
        assert_eq!(certificate_principal(b"not a certificate"), None);
    }

    #[test]
    fn missing_or_bad_pem_files_are_named() {
        // A wrong path or a file without a certificate stops the start with the file's name.
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = server_config(&empty, &empty, None).unwrap_err();
        assert!(format!("{err:#}").contains("empty.pem"), "{err:#}");
        let missing = dir.path().join("missing.pem");
        assert!(server_config(&missing, &missing, None).is_err());
    }
}
