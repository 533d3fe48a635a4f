//! Idempotent producers' state: how long a partition remembers a producer that stopped writing.
//!
//! Flattened into [`crate::config::Args`], so each is also a key of the `--config` TOML file.
#![forbid(unsafe_code)]

use clap::Args as ClapArgs;

/// Producer state expiry, by its Kafka names.
#[derive(Debug, Clone, ClapArgs)]
pub struct ProducerStateArgs {
    /// A partition forgets an idempotent producer this long after its last batch's timestamp,
    /// unless it holds an open transaction there (Kafka's producer.id.expiration.ms: 1 day).
    /// Its sequence state, used to spot retried batches, is what every producer id that ever
    /// wrote would otherwise keep in memory and in every snapshot.
    #[arg(long, value_name = "MS", default_value_t = 24 * 60 * 60 * 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub producer_id_expiration_ms: u64,

    /// How often each shard looks for expired producers (Kafka's
    /// producer.id.expiration.check.interval.ms: 10 min).
    #[arg(long, value_name = "MS", default_value_t = 10 * 60 * 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub producer_id_expiration_check_interval_ms: u64,
}
