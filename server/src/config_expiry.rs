//! How long the broker remembers clients that stopped: an idempotent producer's state in each
//! partition, a transactional id at the transaction coordinator, a group's committed offsets at
//! the group coordinator. Each is state any client can create at will.
//!
//! Flattened into [`crate::config::Args`], so each is also a key of the `--config` TOML file.
#![forbid(unsafe_code)]

use clap::Args as ClapArgs;

/// The largest value of Kafka's INT configs here (they are described as Int). Above it, and
/// above `i64::MAX` for the others, the timers' `as i64` casts could turn a period negative (a
/// pass every tick).
const INT_MS_MAX: u64 = i32::MAX as u64;
const LONG_MS_MAX: u64 = i64::MAX as u64;

/// Producer, transactional id and offset expiry, by their Kafka names.
#[derive(Debug, Clone, ClapArgs)]
pub struct ExpiryArgs {
    /// A partition forgets an idempotent producer this long after its last batch's timestamp,
    /// unless it holds an open transaction there (Kafka's producer.id.expiration.ms: 1 day).
    /// Its sequence state, used to spot retried batches, is what every producer id that ever
    /// wrote would otherwise keep in memory and in every snapshot.
    #[arg(long, value_name = "MS", default_value_t = 24 * 60 * 60 * 1000, value_parser = clap::value_parser!(u64).range(1..=INT_MS_MAX))]
    pub producer_id_expiration_ms: u64,

    /// How often each shard looks for expired producers (Kafka's
    /// producer.id.expiration.check.interval.ms: 10 min).
    #[arg(long, value_name = "MS", default_value_t = 10 * 60 * 1000, value_parser = clap::value_parser!(u64).range(1..=INT_MS_MAX))]
    pub producer_id_expiration_check_interval_ms: u64,

    /// The transaction coordinator forgets a transactional id this long after its last
    /// transaction ended (or its InitProducerId, if it began none), unless a transaction is in
    /// progress (Kafka's transactional.id.expiration.ms: 7 days). A forgotten id's next
    /// InitProducerId gets a new producer id.
    #[arg(long, value_name = "MS", default_value_t = 7 * 24 * 60 * 60 * 1000, value_parser = clap::value_parser!(u64).range(1..=INT_MS_MAX))]
    pub transactional_id_expiration_ms: u64,

    /// How often the coordinator looks for expired transactional ids (Kafka's
    /// transaction.remove.expired.transaction.cleanup.interval.ms: 1 hour).
    #[arg(long, value_name = "MS", default_value_t = 60 * 60 * 1000, value_parser = clap::value_parser!(u64).range(1..=INT_MS_MAX))]
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,

    /// A group without members is deleted with its committed offsets once its newest commit, and
    /// the moment it was last seen with members, are this old (Kafka's offsets.retention.minutes:
    /// 7 days).
    #[arg(long, value_name = "MINUTES", default_value_t = 7 * 24 * 60, value_parser = clap::value_parser!(u32).range(1..=i64::from(i32::MAX)))]
    pub offsets_retention_minutes: u32,

    /// How often the group coordinator looks for expired groups (Kafka's
    /// offsets.retention.check.interval.ms: 10 min).
    #[arg(long, value_name = "MS", default_value_t = 10 * 60 * 1000, value_parser = clap::value_parser!(u64).range(1..=LONG_MS_MAX))]
    pub offsets_retention_check_interval_ms: u64,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Args;

    #[test]
    fn expiry_flags_stay_within_kafkas_int_range() {
        // Kafka's four are INT configs (DescribeConfigs says so); a larger period was taken and
        // cast to i64 by the timers, where 2^63 and above turned negative: a pass every tick.
        let flags = [
            "--producer-id-expiration-ms",
            "--producer-id-expiration-check-interval-ms",
            "--transactional-id-expiration-ms",
            "--transaction-remove-expired-transaction-cleanup-interval-ms",
        ];
        for flag in flags {
            let max = i32::MAX.to_string();
            assert!(
                Args::try_parse_from(["ringtail", flag, &max]).is_ok(),
                "{flag}"
            );
            for too_big in ["2147483648", "9223372036854775808"] {
                assert!(
                    Args::try_parse_from(["ringtail", flag, too_big]).is_err(),
                    "{flag} {too_big}"
                );
            }
        }
        let flag = "--offsets-retention-check-interval-ms";
        assert!(Args::try_parse_from(["ringtail", flag, "9223372036854775807"]).is_ok());
        assert!(Args::try_parse_from(["ringtail", flag, "9223372036854775808"]).is_err());
    }
}
