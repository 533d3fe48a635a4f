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
}
