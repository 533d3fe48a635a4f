//! Security flags: listeners in Kafka's form, SASL mechanisms and re-authentication.
//!
//! Flattened into [`crate::config::Args`], so each is also a key of the `--config` TOML file.
#![forbid(unsafe_code)]

use clap::Args as ClapArgs;

/// The listener and authentication flags, by their Kafka names.
#[derive(Debug, Clone, ClapArgs)]
pub struct SecurityArgs {
    /// Listeners in Kafka's form: a comma list of NAME://HOST:PORT where NAME is PLAINTEXT, SSL,
    /// SASL_PLAINTEXT or SASL_SSL (e.g. `PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9094`).
    #[arg(long, value_name = "NAME://HOST:PORT,...")]
    pub listeners: Option<String>,

    /// Addresses announced to clients in Metadata, per listener name, in the same form; a
    /// listener not named here announces its bound address.
    #[arg(long, value_name = "NAME://HOST:PORT,...")]
    pub advertised_listeners: Option<String>,

    /// SASL mechanisms offered on SASL listeners (comma list of PLAIN, SCRAM-SHA-256,
    /// SCRAM-SHA-512; Kafka's sasl.enabled.mechanisms).
    #[arg(
        long,
        value_name = "MECHANISMS",
        default_value = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    )]
    pub sasl_mechanisms: String,

    /// A SASL session lasts at most this long: the client must re-authenticate (KIP-368) before
    /// then, or its next request closes the connection. 0: sessions never expire (Kafka's
    /// connections.max.reauth.ms default).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub connections_max_reauth_ms: u64,

    /// The broker's certificate chain (PEM) for SSL and SASL_SSL listeners.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<std::path::PathBuf>,

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert-file.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<std::path::PathBuf>,

    /// CA certificates (PEM) that sign client certificates: with it, clients of SSL listeners
    /// must present a certificate (mutual TLS; Kafka's ssl.client.auth=required), and its subject
    /// becomes the principal (`User:CN=...`, Kafka's default principal builder). SASL_SSL
    /// listeners ask for none: their principal is the SASL login (Kafka ignores ssl.client.auth
    /// there, KIP-684).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca_file: Option<std::path::PathBuf>,

    /// Principals allowed everything whatever the ACLs, in Kafka's super.users form:
    /// `User:admin;User:ops`.
    #[arg(long, value_name = "PRINCIPALS")]
    pub super_users: Option<String>,

    /// What a resource no ACL names allows (Kafka's allow.everyone.if.no.acl.found). Unset:
    /// false for authenticated principals (SASL, client certificates), true for
    /// `User:ANONYMOUS` (PLAINTEXT, TLS without client certificates), so a broker without ACLs
    /// serves unauthenticated listeners as before. Given: that value for every principal.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub allow_everyone_if_no_acl_found: Option<bool>,
}

impl SecurityArgs {
    /// The authorizer's flags, checked.
    pub fn acl_config(&self) -> anyhow::Result<crate::acl::AclConfig> {
        let super_users = match &self.super_users {
            Some(text) => crate::acl::AclConfig::parse_super_users(text)?,
            None => Default::default(),
        };
        Ok(crate::acl::AclConfig {
            super_users,
            allow_everyone_if_no_acl_found: self.allow_everyone_if_no_acl_found,
        })
    }

    /// The TLS config if a listener needs one; a TLS listener without a certificate and key, or
    /// TLS files without a TLS listener, is a configuration mistake named at start.
    pub fn tls_config(
        &self,
        listeners: &[crate::listeners::Listener],
    ) -> anyhow::Result<Option<crate::tls::ListenerTls>> {
        let needed = listeners.iter().find(|l| l.protocol.uses_tls());
        match (needed, &self.tls_cert_file, &self.tls_key_file) {
            (Some(_), Some(cert), Some(key)) => Ok(Some(crate::tls::ListenerTls::new(
                cert,
                key,
                self.tls_client_ca_file.as_deref(),
            )?)),
            (Some(listener), _, _) => {
                anyhow::bail!("listener {listener} needs --tls-cert-file and --tls-key-file")
            }
            (None, None, None) if self.tls_client_ca_file.is_none() => Ok(None),
            (None, _, _) => anyhow::bail!(
                "--tls-* files are given but no SSL or SASL_SSL listener is in --listeners"
            ),
        }
    }
}
