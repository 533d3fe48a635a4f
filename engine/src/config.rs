//! Per-log configuration: broker defaults overridden per topic by Kafka-named configs.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;
use crate::ingest::{CompressionType, IngestRules, TimestampType};

/// When appended data is made durable with `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Page cache only; the OS writes back when it likes (Kafka's default). An acknowledged append
    /// survives a process crash but not a power loss.
    None,
    /// A background flush every N milliseconds: at most N ms of acknowledged data is at risk.
    IntervalMs(u64),
    /// `fdatasync` before the append is acknowledged; appends waiting together share one.
    EveryBatch,
}

impl FromStr for FlushPolicy {
    type Err = ConfigError;

    /// Parses `none`, `every_batch` or `<N>ms`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| ConfigError::Invalid {
            name: "flush".into(),
            value: text.into(),
            reason: reason.into(),
        };
        match text {
            "none" => Ok(Self::None),
            "every_batch" => Ok(Self::EveryBatch),
            _ => {
                let digits = text
                    .strip_suffix("ms")
                    .ok_or_else(|| invalid("expected none, every_batch or <N>ms"))?;
                let interval_ms: u64 = digits.parse().map_err(|_| invalid("bad number of ms"))?;
                if interval_ms == 0 {
                    return Err(invalid("interval must be at least 1 ms"));
                }
                Ok(Self::IntervalMs(interval_ms))
            }
        }
    }
}

impl fmt::Display for FlushPolicy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => write!(formatter, "none"),
            Self::IntervalMs(interval_ms) => write!(formatter, "{interval_ms}ms"),
            Self::EveryBatch => write!(formatter, "every_batch"),
        }
    }
}

/// What retention does with old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactDelete,
}

impl FromStr for CleanupPolicy {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts: Vec<&str> = text.split(',').map(str::trim).collect();
        parts.sort_unstable();
        match parts.as_slice() {
            ["delete"] => Ok(Self::Delete),
            ["compact"] => Ok(Self::Compact),
            ["compact", "delete"] => Ok(Self::CompactDelete),
            _ => Err(ConfigError::Invalid {
                name: "cleanup.policy".into(),
                value: text.into(),
                reason: "expected delete, compact or compact,delete".into(),
            }),
        }
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Delete => "delete",
            Self::Compact => "compact",
            Self::CompactDelete => "compact,delete",
        })
    }
}

/// Smallest segment we accept: a few batches, so tests can force rolls.
pub const SEGMENT_BYTES_MIN: u64 = 1024;
/// Positions in a segment are u32 in the index, as in Kafka; segments stay below 2 GiB.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Default of [`LogConfig::writeback_bytes`]: 8 MiB, small enough that a seal's fsync finds
/// little to write at hundreds of MB/s, large enough to cost one submission per 8 MiB.
pub const WRITEBACK_BYTES_DEFAULT: u64 = 8 << 20;

/// Default of [`LogConfig::drop_behind_bytes`]: 256 MiB per partition, well ahead of a consumer
/// that keeps up (64 MiB was not, at 500 MB/s over 4 partitions: decision 0033).
pub const DROP_BEHIND_BYTES_DEFAULT: u64 = 256 << 20;

/// Default of [`LogConfig::drop_behind_max_bytes`]: 0, no reader is waited for. Holding pages
/// for a lagging consumer kept it off the disk but cost the producer 0.88x its throughput on
/// this kind of VM, where a page-cache page not reused is a fresh, dear one (decision 0034).
pub const DROP_BEHIND_MAX_BYTES_DEFAULT: u64 = 0;

/// Default of [`LogConfig::tail_cache_bytes`]: 8 MiB per partition, a few fetches' worth for a
/// consumer that keeps up.
pub const TAIL_CACHE_BYTES_DEFAULT: u64 = 8 << 20;

/// The resolved configuration of one partition log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub index_interval_bytes: u32,
    pub flush: FlushPolicy,
    /// `None`: keep forever.
    pub retention_ms: Option<u64>,
    /// `None`: no size limit.
    pub retention_bytes: Option<u64>,
    /// Largest record batch accepted (Kafka's `max.message.bytes`).
    pub max_message_bytes: u32,
    pub cleanup_policy: CleanupPolicy,
    /// Allocate each segment whole (`segment.bytes`) with `fallocate` before it takes writes,
    /// the next one in the background (`log/spare.rs`), so no write or writeback of the active
    /// segment allocates blocks. Off by default, as in Kafka: it reserves a segment of disk per
    /// partition, and a second for a partition past half its segment.
    pub preallocate: bool,
    /// With `preallocate`: a segment is allocated ahead only while its file system stays at most
    /// this percent used with it (`df`'s count; [`crate::segment::preallocation`]). Broker-wide
    /// (`--preallocate-max-used-percent`), not a topic config.
    pub preallocate_max_used_percent: u8,
    /// Write appends with `pwritev(2)` on the shard thread instead of an io_uring `writev`, which
    /// ext4 and tmpfs hand to an io-wq worker for buffered writes (topic config `write.inline`).
    /// Saves the hand-off (~18% of the broker's produce CPU, results/profile/README.md) but blocks
    /// the shard for the copy into the page cache, and for dirty-page throttling when the kernel
    /// applies it.
    pub write_inline: bool,
    /// Write appends with `O_DIRECT` from aligned buffers, bypassing the page cache
    /// (topic config `write.direct`; [`crate::log::direct`]). Takes precedence over
    /// `write_inline`. Falls back to buffered writes where the file system refuses `O_DIRECT`.
    pub write_direct: bool,
    /// With `write_direct`: bytes of the active segment's tail kept in memory for live consumers
    /// (topic config `tail.cache.bytes`; [`crate::log::tail_cache`]), 0 for none.
    pub tail_cache_bytes: u64,
    /// Dirty bytes of the active segment after which their writeback is started
    /// (`sync_file_range(2)`, not waited for), 0 for never (topic config `writeback.bytes`). A
    /// roll fsyncs the segment it seals before the next append; without this, that fsync finds
    /// up to a whole segment dirty (1 GiB by default) and every producer of the partition waits
    /// for it.
    pub writeback_bytes: u64,
    /// With buffered writes: the log's pages (its active segment's and, across rolls, its newest
    /// rolled segments') more than this many bytes behind the log's end are written back, waited
    /// for (in io-wq, not by the writer) and dropped from the page cache, so the page cache holds
    /// at most about this much of the partition's newest data and later writes reuse the memory
    /// so freed; 0 for never, the kernel's LRU decides
    /// (topic config `drop.behind.bytes`; decision 0033). Readers further behind read cold.
    pub drop_behind_bytes: u64,
    /// How far behind the log's end a drop behind waits for a live reader: pages that a reader
    /// of the last few seconds ([`crate::log`]'s reader floor) has yet to read stay cached up to
    /// this many bytes behind the end, so a consumer a little behind a fast producer is not
    /// pushed onto the cold path (topic config `drop.behind.max.bytes`; decision 0034). At or
    /// below `drop_behind_bytes` (the default is 0) no reader is waited for.
    pub drop_behind_max_bytes: u64,
    /// How long a tombstone (null value) stays in a compacted log: it is removed by the first
    /// cleaning after its batch's max timestamp is older than this (Kafka's `delete.retention.ms`).
    pub delete_retention_ms: u64,
    /// Cleaning starts once the bytes of sealed segments not yet cleaned are at least this share
    /// of all sealed bytes (Kafka's `min.cleanable.dirty.ratio`), in millionths.
    pub min_cleanable_dirty_ratio_ppm: u32,
    /// Producer's time or the broker's append time (Kafka's `message.timestamp.type`).
    pub timestamp_type: TimestampType,
    /// How old a CreateTime timestamp may be (`message.timestamp.before.max.ms`).
    pub timestamp_before_max_ms: i64,
    /// How far ahead a CreateTime timestamp may be (`message.timestamp.after.max.ms`).
    pub timestamp_after_max_ms: i64,
    /// The codec stored batches have (`compression.type`); `Producer` keeps the producer's.
    pub compression: CompressionType,
}

impl LogConfig {
    /// Whether the cleaner keeps only the latest record per key.
    pub fn compacts(&self) -> bool {
        matches!(
            self.cleanup_policy,
            CleanupPolicy::Compact | CleanupPolicy::CompactDelete
        )
    }

    /// What appends do to a producer's batches under this config.
    pub fn ingest_rules(&self) -> IngestRules {
        IngestRules {
            timestamp_type: self.timestamp_type,
            timestamp_before_max_ms: self.timestamp_before_max_ms,
            timestamp_after_max_ms: self.timestamp_after_max_ms,
            compression: self.compression,
            batch_bytes_max: self.max_message_bytes as usize,
        }
    }

    /// Whether retention deletes old segments by size and age.
    pub fn deletes(&self) -> bool {
        matches!(
            self.cleanup_policy,
            CleanupPolicy::Delete | CleanupPolicy::CompactDelete
        )
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            flush: FlushPolicy::None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            max_message_bytes: 1_048_588,
            cleanup_policy: CleanupPolicy::Delete,
            preallocate: false,
            preallocate_max_used_percent: crate::disk_space::PREALLOCATE_MAX_USED_PERCENT_DEFAULT,
            write_inline: false,
            write_direct: false,
            tail_cache_bytes: TAIL_CACHE_BYTES_DEFAULT,
            writeback_bytes: WRITEBACK_BYTES_DEFAULT,
            drop_behind_bytes: DROP_BEHIND_BYTES_DEFAULT,
            drop_behind_max_bytes: DROP_BEHIND_MAX_BYTES_DEFAULT,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio_ppm: 500_000,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            // Kafka 4.0's default (KIP-1030): a clock an hour ahead is a broken clock.
            timestamp_after_max_ms: 3_600_000,
            compression: CompressionType::Producer,
        }
    }
}

/// Topic config names this engine understands, as Kafka spells them (plus `flush`).
pub const TOPIC_CONFIG_NAMES: &[&str] = &[
    "flush",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "index.interval.bytes",
    "cleanup.policy",
    "max.message.bytes",
    "preallocate",
    "write.inline",
    "write.direct",
    "tail.cache.bytes",
    "writeback.bytes",
    "drop.behind.bytes",
    "drop.behind.max.bytes",
    "delete.retention.ms",
    "min.cleanable.dirty.ratio",
    "message.timestamp.type",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "compression.type",
];

impl LogConfig {
    /// Applies topic-level overrides (Kafka config names) on top of `self`.
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut config = self.clone();
        for (name, value) in overrides {
            config.apply(name, value)?;
        }
        Ok(config)
    }

    /// Sets one config by its Kafka name.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            name: name.into(),
            value: value.into(),
            reason: reason.into(),
        };
        let number = || value.parse::<i64>().map_err(|_| invalid("not an integer"));
        match name {
            "flush" => self.flush = value.parse()?,
            "retention.ms" => {
                self.retention_ms =
                    optional_limit(number()?).ok_or_else(|| invalid("must be -1 or >= 0"))?
            }
            // Kafka takes any long here and reads every negative one as "no limit" (its
            // retention.bytes has no validator), so a client's -2 must not be INVALID_CONFIG.
            "retention.bytes" => self.retention_bytes = u64::try_from(number()?).ok(),
            "segment.bytes" => {
                let bytes = u64::try_from(number()?).map_err(|_| invalid("negative"))?;
                if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&bytes) {
                    return Err(invalid("must be between 1024 and 2147483647"));
                }
                self.segment_bytes = bytes;
            }
            "segment.ms" => {
                self.segment_ms = u64::try_from(number()?)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| invalid("must be > 0"))?
            }
            "index.interval.bytes" => {
                self.index_interval_bytes =
                    u32::try_from(number()?).map_err(|_| invalid("out of range"))?
            }
            "max.message.bytes" => {
                self.max_message_bytes = u32::try_from(number()?)
                    .ok()
                    .filter(|b| *b > 0)
                    .ok_or_else(|| invalid("must be > 0"))?
            }
            "cleanup.policy" => self.cleanup_policy = value.parse()?,
            "preallocate" => {
                self.preallocate = value
                    .parse()
                    .map_err(|_| invalid("expected true or false"))?
            }
            "writeback.bytes" => {
                self.writeback_bytes =
                    u64::try_from(number()?).map_err(|_| invalid("must be >= 0"))?
            }
            "drop.behind.bytes" => {
                self.drop_behind_bytes =
                    u64::try_from(number()?).map_err(|_| invalid("must be >= 0"))?
            }
            "drop.behind.max.bytes" => {
                self.drop_behind_max_bytes =
                    u64::try_from(number()?).map_err(|_| invalid("must be >= 0"))?
            }
            "write.inline" => {
                self.write_inline = value
                    .parse()
                    .map_err(|_| invalid("expected true or false"))?
            }
            "tail.cache.bytes" => {
                self.tail_cache_bytes =
                    u64::try_from(number()?).map_err(|_| invalid("must be >= 0"))?
            }
            "write.direct" => {
                self.write_direct = value
                    .parse()
                    .map_err(|_| invalid("expected true or false"))?
            }
            "delete.retention.ms" => {
                self.delete_retention_ms =
                    u64::try_from(number()?).map_err(|_| invalid("must be >= 0"))?
            }
            "min.cleanable.dirty.ratio" => {
                let ratio: f64 = value.parse().map_err(|_| invalid("not a number"))?;
                if !(0.0..=1.0).contains(&ratio) {
                    return Err(invalid("must be between 0 and 1"));
                }
                self.min_cleanable_dirty_ratio_ppm = (ratio * 1e6).round() as u32;
            }
            "message.timestamp.type" => self.timestamp_type = value.parse()?,
            "message.timestamp.before.max.ms" => {
                self.timestamp_before_max_ms = number()?;
                if self.timestamp_before_max_ms < 0 {
                    return Err(invalid("must be >= 0"));
                }
            }
            "message.timestamp.after.max.ms" => {
                self.timestamp_after_max_ms = number()?;
                if self.timestamp_after_max_ms < 0 {
                    return Err(invalid("must be >= 0"));
                }
            }
            "compression.type" => self.compression = value.parse()?,
            _ => return Err(ConfigError::Unknown { name: name.into() }),
        }
        Ok(())
    }

    /// The current value of a config by its Kafka name (for DescribeConfigs).
    pub fn get(&self, name: &str) -> Option<String> {
        let limit = |value: Option<u64>| value.map_or("-1".to_string(), |v| v.to_string());
        Some(match name {
            "flush" => self.flush.to_string(),
            "retention.ms" => limit(self.retention_ms),
            "retention.bytes" => limit(self.retention_bytes),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "cleanup.policy" => self.cleanup_policy.to_string(),
            "preallocate" => self.preallocate.to_string(),
            "write.inline" => self.write_inline.to_string(),
            "write.direct" => self.write_direct.to_string(),
            "tail.cache.bytes" => self.tail_cache_bytes.to_string(),
            "writeback.bytes" => self.writeback_bytes.to_string(),
            "drop.behind.bytes" => self.drop_behind_bytes.to_string(),
            "drop.behind.max.bytes" => self.drop_behind_max_bytes.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.cleanable.dirty.ratio" => {
                (f64::from(self.min_cleanable_dirty_ratio_ppm) / 1e6).to_string()
            }
            "message.timestamp.type" => self.timestamp_type.to_string(),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            "compression.type" => self.compression.to_string(),
            _ => return None,
        })
    }
}

impl LogConfig {
    /// Every config by its Kafka name with its current value, in [`TOPIC_CONFIG_NAMES`] order.
    pub fn get_all(&self) -> Vec<(&'static str, String)> {
        TOPIC_CONFIG_NAMES
            .iter()
            .map(|name| {
                (
                    *name,
                    self.get(name).expect("every listed name has a value"),
                )
            })
            .collect()
    }
}

/// Kafka's convention: -1 means unlimited.
fn optional_limit(value: i64) -> Option<Option<u64>> {
    match value {
        -1 => Some(None),
        v if v >= 0 => Some(Some(v as u64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policy_parses_every_form() {
        // The `--flush` flag and the `flush` topic config share this grammar.
        assert_eq!("none".parse(), Ok(FlushPolicy::None));
        assert_eq!("every_batch".parse(), Ok(FlushPolicy::EveryBatch));
        assert_eq!("250ms".parse(), Ok(FlushPolicy::IntervalMs(250)));
        assert!("0ms".parse::<FlushPolicy>().is_err());
        assert!("fast".parse::<FlushPolicy>().is_err());
        for policy in [
            FlushPolicy::None,
            FlushPolicy::EveryBatch,
            FlushPolicy::IntervalMs(5),
        ] {
            assert_eq!(policy.to_string().parse(), Ok(policy));
        }
    }

    #[test]
    fn any_negative_retention_bytes_is_no_limit_as_in_kafka() {
        let mut config = LogConfig::default();
        for (value, expected) in [("-2", None), ("-1", None), ("0", Some(0)), ("5", Some(5))] {
            let overrides = [("retention.bytes".to_string(), value.to_string())];
            config = config
                .with_overrides(&overrides.into_iter().collect())
                .unwrap();
            assert_eq!(config.retention_bytes, expected, "{value}");
        }
    }

    #[test]
    fn overrides_apply_by_kafka_name_and_read_back() {
        // Every name we accept can be read back as DescribeConfigs will show it.
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "-1".to_string());
        overrides.insert("segment.bytes".to_string(), "4096".to_string());
        overrides.insert("cleanup.policy".to_string(), "delete,compact".to_string());
        let config = LogConfig::default().with_overrides(&overrides).unwrap();
        assert_eq!(config.retention_ms, None);
        assert_eq!(config.segment_bytes, 4096);
        assert_eq!(config.get("cleanup.policy").unwrap(), "compact,delete");
        for name in TOPIC_CONFIG_NAMES {
            let value = config.get(name).unwrap();
            let mut copy = LogConfig::default();
            copy.apply(name, &value).unwrap();
            assert_eq!(copy.get(name).unwrap(), value);
        }
        assert!(matches!(
            LogConfig::default().apply("nope", "1"),
            Err(ConfigError::Unknown { .. })
        ));
        assert!(LogConfig::default().apply("segment.bytes", "10").is_err());
        assert!(LogConfig::default()
            .apply("min.cleanable.dirty.ratio", "1.5")
            .is_err());
        assert_eq!(
            LogConfig::default()
                .get("min.cleanable.dirty.ratio")
                .unwrap(),
            "0.5"
        );
        assert_eq!(
            LogConfig::default().get("delete.retention.ms").unwrap(),
            "86400000"
        );
    }
}
