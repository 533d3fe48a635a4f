//! TLS for SSL and SASL_SSL listeners (rustls with the `ring` provider): the server config from
//! PEM files, the handshake of one connection, and the principal of a client certificate.
//!
//! This kernel has no kTLS, so encryption happens in user space: a TLS fetch reads its record
//! bytes from the file and encrypts them (no splice). Plaintext listeners keep zero-copy; see
//! docs/decisions/0009-security-tls-userspace-credential-store.md.
//!
//! # Invariants worth naming
//! - With `--tls-client-ca-file`, a client of an SSL listener without a certificate signed by that
//!   CA never finishes the handshake (Kafka's `ssl.client.auth=required`); SASL_SSL listeners ask
//!   for no certificate (as Kafka, KIP-684).
//! - The handshake is bounded by `--frame-read-timeout-ms`, like any frame.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The TLS configurations of the two kinds of TLS listener.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// SSL listeners: client certificates required when `--tls-client-ca-file` is given.
    pub ssl: Arc<ServerConfig>,
    /// SASL_SSL listeners: never asks for a client certificate (the principal is the SASL
    /// login). Kafka ignores `ssl.client.auth` on SASL_SSL listeners unless it is set for that
    /// listener alone (KIP-684): one mutual-TLS setting must not lock SASL clients out.
    pub sasl_ssl: Arc<ServerConfig>,
}

impl ListenerTls {
    /// Both from `--tls-cert-file`, `--tls-key-file` and `--tls-client-ca-file`.
    pub fn new(cert_file: &Path, key_file: &Path, client_ca_file: Option<&Path>) -> Result<Self> {
        Ok(Self {
            ssl: server_config(cert_file, key_file, client_ca_file)?,
            sasl_ssl: server_config(cert_file, key_file, None)?,
        })
    }

    /// The configuration of a listener speaking `protocol` (a TLS one).
    pub fn for_protocol(&self, protocol: crate::listeners::SecurityProtocol) -> Arc<ServerConfig> {
        match protocol {
            crate::listeners::SecurityProtocol::SaslSsl => Arc::clone(&self.sasl_ssl),
            _ => Arc::clone(&self.ssl),
        }
    }
}

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
                    format!("{name}={}", attribute_value(attribute))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.reverse();
    Some(format!("User:{}", rdns.join(",")))
}

/// An attribute value as RFC 2253 writes it (Java's `X500Principal.getName()`, which Kafka's
/// principal is): a string type decoded and its special characters escaped, so no value can
/// pose as more attributes (`CN=admin\,OU=ops` is one CN, not a CN and an OU); any other type
/// `#` and the hex of its DER encoding, so two different values never read the same.
fn attribute_value(attribute: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    use x509_parser::der_parser::asn1_rs::Tag;
    let value = attribute.attr_value();
    let data = value.data;
    let text = match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::NumericString
        | Tag::Ia5String
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_string),
        Tag::BmpString if data.len() % 2 == 0 => char::decode_utf16(
            data.chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]])),
        )
        .collect::<Result<String, _>>()
        .ok(),
        Tag::UniversalString if data.len() % 4 == 0 => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        // T.61 (Teletex) as Latin-1, as Java reads it.
        Tag::TeletexString => Some(data.iter().map(|byte| char::from(*byte)).collect()),
        _ => None,
    };
    match text {
        Some(text) => escape_rfc2253(&text),
        None => {
            // The DER encoding: a universal primitive tag, the length, the content.
            let mut der = vec![value.tag().0 as u8];
            match u8::try_from(data.len()) {
                Ok(len) if len < 0x80 => der.push(len),
                _ => {
                    let len = (data.len() as u64).to_be_bytes();
                    let skip = len.iter().take_while(|byte| **byte == 0).count();
                    der.push(0x80 | (len.len() - skip) as u8);
                    der.extend_from_slice(&len[skip..]);
                }
            }
            der.extend_from_slice(data);
            let hex: String = der.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("#{hex}")
        }
    }
}

/// RFC 2253 section 2.4: `,` `+` `"` `\` `<` `>` `;` escaped, and a leading `#` or space and a
/// trailing space.
fn escape_rfc2253(text: &str) -> String {
    let last = text.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(text.len());
    for (index, c) in text.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (index == 0 && matches!(c, '#' | ' '))
            || (index == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
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

    /// `openssl req -x509 -subj "/CN=admin,OU=ops"`: one CN whose value holds a comma.
    const COMMA_IN_CN_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIUA3h6kSgtabqZi1AzQGfZKzYKkMAwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMYWRtaW4sT1U9b3BzMCAXDTI2MTIwMTE2MzE1MVoYDzIxMjYx
MTA3MTYzMTUxWjAXMRUwEwYDVQQDDAxhZG1pbixPVT1vcHMwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAR5N7npSEIZ0KJP6rSJXARxC6ghMKXoNxHmPPrbumMJVn7/
Sc9eSNY2RlDhAljeQa18ipwj9f+i6sY+tjwSsVGXo1MwUTAdBgNVHQ4EFgQU2KQH
QBuIi8ar6uHe12dNfpJBFYAwHwYDVR0jBBgwFoAU2KQHQBuIi8ar6uHe12dNfpJB
FYAwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBXY9zSX8JatzHG
JKK0vt44PtxTU0OcGvltUYxNEuT+mQIhAKDYTd3cMI3AM9F7Yz1p6mqj2okH+5jJ
mkiYkEmFxz1w
-----END CERTIFICATE-----
";
    /// `openssl req -x509 -subj "/OU=ops/CN=admin"`: a CN and an OU.
    const CN_AND_OU_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBlDCCATmgAwIBAgIUQu+LN81Vil9iLA+xPjBqYQnYITMwCgYIKoZIzj0EAwIw
HjEMMAoGA1UECwwDb3BzMQ4wDAYDVQQDDAVhZG1pbjAgFw0yNjEyMDExNjMxNTFa
GA8yMTI2MTEwNzE2MzE1MVowHjEMMAoGA1UECwwDb3BzMQ4wDAYDVQQDDAVhZG1p
bjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABHk3uelIQhnQok/qtIlcBHELqCEw
peg3EeY8+tu6YwlWfv9Jz15I1jZGUOECWN5BrXyKnCP1/6Lqxj62PBKxUZejUzBR
MB0GA1UdDgQWBBTYpAdAG4iLxqvq4d7XZ01+kkEVgDAfBgNVHSMEGDAWgBTYpAdA
G4iLxqvq4d7XZ01+kkEVgDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kA
MEYCIQCNgWZrgCXa6ttdo6BUSxQA77/U1xx3M3XZjov920u3dAIhAITJor+f2Ybg
nbYAQYLL+FiSQpfdk8mVAs0LBrnCr3cY
-----END CERTIFICATE-----
";
    /// `openssl req -x509 -subj "/O=acme/CN=alice_a"` with `string_mask = pkix`: the CN is a
    /// BMPString.
    const BMP_ALICE_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBTDCB8wIUA0Y7teICHW3NjpEbGmn8pa3MOTcwCgYIKoZIzj0EAwIwKDENMAsG
A1UEChMEYWNtZTEXMBUGA1UEAx4OAGEAbABpAGMAZQBfAGEwIBcNMjYxMjAxMTYz
MTUxWhgPMjEyNjExMDcxNjMxNTFaMCgxDTALBgNVBAoTBGFjbWUxFzAVBgNVBAMe
DgBhAGwAaQBjAGUAXwBhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeTe56UhC
GdCiT+q0iVwEcQuoITCl6DcR5jz627pjCVZ+/0nPXkjWNkZQ4QJY3kGtfIqcI/X/
ourGPrY8ErFRlzAKBggqhkjOPQQDAgNIADBFAiB/JZO6uuzoW0X5sbDTyrWsn0Kl
G/4oHHgI3y5W4X+kRAIhAPuQIMnUVEY/7s+11g/G6oyat8nxgWMNFzzz/y919SwZ
-----END CERTIFICATE-----
";
    /// The same for `/O=acme/CN=bob_b`.
    const BMP_BOB_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBRDCB6wIUYnk8KWWC3xMXZVo/o0CE3VkQnOMwCgYIKoZIzj0EAwIwJDENMAsG
A1UEChMEYWNtZTETMBEGA1UEAx4KAGIAbwBiAF8AYjAgFw0yNjEyMDExNjMxNTFa
GA8yMTI2MTEwNzE2MzE1MVowJDENMAsGA1UEChMEYWNtZTETMBEGA1UEAx4KAGIA
bwBiAF8AYjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABHk3uelIQhnQok/qtIlc
BHELqCEwpeg3EeY8+tu6YwlWfv9Jz15I1jZGUOECWN5BrXyKnCP1/6Lqxj62PBKx
UZcwCgYIKoZIzj0EAwIDSAAwRQIhANH/E3/Uwcrk+ejrEZ5s3K0KjTv1Jpq7RIRP
IsPQeYnnAiAIqoMiUk8wzriapijze0MDsJZUuspepD3D1TWkeNTh3g==
-----END CERTIFICATE-----
";

    fn principal_of(pem: &str) -> String {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        certificate_principal(&der).unwrap()
    }

    #[test]
    fn distinct_subjects_never_share_a_principal() {
        // A CN holding "," must not read as a CN and an OU (RFC 2253 escapes it, as Kafka's
        // X500Principal.getName() does), and string types other than UTF8/Printable/IA5 are
        // decoded, not all written "#": either way two clients became one principal.
        assert_eq!(principal_of(CN_AND_OU_CERT), "User:CN=admin,OU=ops");
        assert_eq!(principal_of(COMMA_IN_CN_CERT), "User:CN=admin\\,OU=ops");
        assert_eq!(principal_of(BMP_ALICE_CERT), "User:CN=alice_a,O=acme");
        assert_eq!(principal_of(BMP_BOB_CERT), "User:CN=bob_b,O=acme");
        assert_eq!(escape_rfc2253("#a b "), "\\#a b\\ ");
        assert_eq!(escape_rfc2253("x+y;z<>\"\\"), "x\\+y\\;z\\<\\>\\\"\\\\");
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
