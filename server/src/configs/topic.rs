//! Every topic config of Kafka 4.x (4.1's `LogConfig`, internal ones aside) with its type, Kafka's
//! default and validation, its broker-wide name, and whether Ringtail honours it. Two Ringtail
//! configs (`flush`, `write.inline`) join them. A config Ringtail does not honour is still
//! accepted, validated, stored and described, so tools that set it work; docs/COMPATIBILITY.md
//! lists those with the reasons given here.
//!
//! # Invariants
//! - Every `Honoured` name is one the engine's `LogConfig` applies and reads back, and every name
//!   the engine knows is listed here (checked by a test), so the engine never sees an unknown
//!   name and the catalogue never describes a value the engine does not hold.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use ringtail_engine::{ConfigError, LogConfig};

use super::dynamic::BrokerDefaults;
use super::{ConfigSource, ConfigType, Described, Synonym};

/// Whether the engine acts on a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Honoured,
    /// Accepted and stored, with no effect; the reason is documented.
    Ignored(&'static str),
}

/// What a value must satisfy, beyond parsing as its type.
#[derive(Debug, Clone, Copy)]
enum Check {
    Any,
    AtLeast(i64),
    Between(i64, i64),
    /// -1 or a value in the range (compression.gzip.level).
    MinusOneOrBetween(i64, i64),
    Fraction,
    OneOf(&'static [&'static str]),
    /// A list whose items are among these.
    ListOf(&'static [&'static str]),
    /// `*` or `partition:broker` pairs (the replication throttles).
    ThrottledReplicas,
    /// Tiered storage: only `false` (Kafka refuses `true` on a broker without it too).
    OnlyFalse,
}

/// One topic config.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    /// Kafka's default, as DescribeConfigs prints it (used for configs the engine does not hold).
    pub default: &'static str,
    check: Check,
    /// The broker-wide config it falls back to (Kafka's synonym), if any.
    pub broker_name: Option<&'static str>,
    /// The `ringtail` flag (clap id) that sets its broker-wide default, if any.
    pub flag: Option<&'static str>,
    pub support: Support,
    pub documentation: &'static str,
}

const ONE_REPLICA: &str = "a single broker holds the only replica of each partition";
const NO_TIERED_STORAGE: &str = "Ringtail has no tiered storage";
const CODEC_LEVEL: &str = "recompression uses each codec's default level";

macro_rules! def {
    ($name:literal, $kind:ident, $default:literal, $check:expr, $broker:expr, $flag:expr, $support:expr, $doc:literal) => {
        TopicConfigDef {
            name: $name,
            kind: ConfigType::$kind,
            default: $default,
            check: $check,
            broker_name: $broker,
            flag: $flag,
            support: $support,
            documentation: $doc,
        }
    };
}

use Check::*;
use Support::*;

/// The catalogue, in the order DescribeConfigs lists it.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!("cleanup.policy", List, "delete", ListOf(&["compact", "delete"]), Some("log.cleanup.policy"), None, Honoured,
        "delete: old segments are removed by retention.ms and retention.bytes; compact: only the latest record per key is kept; both may be given."),
    def!("compression.type", String, "producer", OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), Some("compression.type"), None, Honoured,
        "Codec of stored batches. producer keeps the producer's; any other value recompresses batches that use a different codec."),
    def!("compression.gzip.level", Int, "-1", MinusOneOrBetween(1, 9), Some("compression.gzip.level"), None, Ignored(CODEC_LEVEL),
        "Level of gzip recompression (compression.type=gzip)."),
    def!("compression.lz4.level", Int, "9", Between(1, 17), Some("compression.lz4.level"), None, Ignored(CODEC_LEVEL),
        "Level of lz4 recompression (compression.type=lz4)."),
    def!("compression.zstd.level", Int, "3", Between(-131_072, 22), Some("compression.zstd.level"), None, Ignored(CODEC_LEVEL),
        "Level of zstd recompression (compression.type=zstd)."),
    def!("delete.retention.ms", Long, "86400000", AtLeast(0), Some("log.cleaner.delete.retention.ms"), None, Honoured,
        "How long a tombstone stays in a compacted log after the cleaner first kept it (its delete horizon)."),
    def!("file.delete.delay.ms", Long, "60000", AtLeast(0), Some("log.segment.delete.delay.ms"), None,
        Ignored("segments are unlinked at once; reads in flight keep their open file handles"),
        "Delay before a deleted segment's files are removed."),
    def!("flush.messages", Long, "9223372036854775807", AtLeast(1), Some("log.flush.interval.messages"), None,
        Ignored("durability is set by the flush topic config (none, every_batch or <N>ms)"),
        "Messages appended between forced fsyncs."),
    def!("flush.ms", Long, "9223372036854775807", AtLeast(0), Some("log.flush.interval.ms"), None,
        Ignored("durability is set by the flush topic config (none, every_batch or <N>ms)"),
        "Milliseconds between forced fsyncs."),
    def!("follower.replication.throttled.replicas", List, "", ThrottledReplicas, None, None, Ignored(ONE_REPLICA),
        "Replicas whose follower-side replication is throttled."),
    def!("index.interval.bytes", Int, "4096", AtLeast(0), Some("log.index.interval.bytes"), None, Honoured,
        "Bytes of batches between two entries of the offset index."),
    def!("leader.replication.throttled.replicas", List, "", ThrottledReplicas, None, None, Ignored(ONE_REPLICA),
        "Replicas whose leader-side replication is throttled."),
    def!("local.retention.bytes", Long, "-2", AtLeast(-2), Some("log.local.retention.bytes"), None, Ignored(NO_TIERED_STORAGE),
        "Bytes kept on local disk when tiered storage is on (-2: retention.bytes)."),
    def!("local.retention.ms", Long, "-2", AtLeast(-2), Some("log.local.retention.ms"), None, Ignored(NO_TIERED_STORAGE),
        "Milliseconds kept on local disk when tiered storage is on (-2: retention.ms)."),
    def!("max.compaction.lag.ms", Long, "9223372036854775807", AtLeast(1), Some("log.cleaner.max.compaction.lag.ms"), None,
        Ignored("the cleaner runs when min.cleanable.dirty.ratio is reached, not by record age"),
        "Longest a record may stay uncompacted."),
    def!("max.message.bytes", Int, "1048588", AtLeast(0), Some("message.max.bytes"), None, Honoured,
        "Largest record batch accepted, in bytes."),
    def!("message.timestamp.after.max.ms", Long, "3600000", AtLeast(0), Some("log.message.timestamp.after.max.ms"), None, Honoured,
        "How far ahead of the broker's clock a CreateTime timestamp may be; later ones are refused with INVALID_TIMESTAMP."),
    def!("message.timestamp.before.max.ms", Long, "9223372036854775807", AtLeast(0), Some("log.message.timestamp.before.max.ms"), None, Honoured,
        "How far behind the broker's clock a CreateTime timestamp may be; older ones are refused with INVALID_TIMESTAMP."),
    def!("message.timestamp.type", String, "CreateTime", OneOf(&["CreateTime", "LogAppendTime"]), Some("log.message.timestamp.type"), None, Honoured,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps each batch with the time the broker appends it."),
    def!("min.cleanable.dirty.ratio", Double, "0.5", Fraction, Some("log.cleaner.min.cleanable.ratio"), None, Honoured,
        "Share of a compacted log's sealed bytes that must be new since the last cleaning before the next."),
    def!("min.compaction.lag.ms", Long, "0", AtLeast(0), Some("log.cleaner.min.compaction.lag.ms"), None,
        Ignored("the cleaner only cleans sealed segments; records are not held back by age"),
        "Shortest time a record stays uncompacted."),
    def!("min.insync.replicas", Int, "1", AtLeast(1), Some("min.insync.replicas"), None, Ignored(ONE_REPLICA),
        "Replicas that must acknowledge an acks=all produce."),
    def!("preallocate", Boolean, "false", Any, Some("log.preallocate"), Some("preallocate"), Honoured,
        "Allocate the active segment's file ahead of its writes."),
    def!("remote.log.copy.disable", Boolean, "false", Any, None, None, Ignored(NO_TIERED_STORAGE),
        "Stop copying segments to tiered storage."),
    def!("remote.log.delete.on.disable", Boolean, "false", Any, None, None, Ignored(NO_TIERED_STORAGE),
        "Delete tiered data when tiered storage is turned off."),
    def!("remote.storage.enable", Boolean, "false", OnlyFalse, None, None, Ignored(NO_TIERED_STORAGE),
        "Tiered storage for this topic; only false is accepted."),
    def!("retention.bytes", Long, "-1", Any, Some("log.retention.bytes"), Some("retention_bytes"), Honoured,
        "Largest size of a partition before its oldest segments are deleted; -1: no limit."),
    def!("retention.ms", Long, "604800000", AtLeast(-1), Some("log.retention.ms"), Some("retention_ms"), Honoured,
        "Age after which a segment is deleted, by its newest timestamp; -1: keep forever."),
    def!("segment.bytes", Int, "1073741824", Between(1024, i32::MAX as i64), Some("log.segment.bytes"), Some("segment_bytes"), Honoured,
        "Size at which the active segment is sealed and a new one rolled (Ringtail accepts from 1024 bytes)."),
    def!("segment.index.bytes", Int, "10485760", AtLeast(4), Some("log.index.size.max.bytes"), None,
        Ignored("index files grow with their segment; there is no preallocated index size"),
        "Size of a segment's offset index file."),
    def!("segment.jitter.ms", Long, "0", AtLeast(0), Some("log.roll.jitter.ms"), None,
        Ignored("segments roll at segment.ms without jitter"),
        "Random reduction of segment.ms, to spread rolls."),
    def!("segment.ms", Long, "604800000", AtLeast(1), Some("log.roll.ms"), None, Honoured,
        "Age at which the active segment is rolled even if not full."),
    def!("unclean.leader.election.enable", Boolean, "false", Any, Some("unclean.leader.election.enable"), None, Ignored(ONE_REPLICA),
        "Allow an out-of-sync replica to become leader."),
    def!("flush", String, "none", Any, None, Some("flush"), Honoured,
        "Ringtail: none (page cache), every_batch (fdatasync before the acknowledgement) or <N>ms (a background fdatasync every N ms)."),
    def!("write.inline", Boolean, "false", Any, None, Some("write_inline"), Honoured,
        "Ringtail: write appends with pwritev on the shard thread instead of an io_uring writev."),
    def!("write.direct", Boolean, "false", Any, None, Some("write_direct"), Honoured,
        "Ringtail: write appends with O_DIRECT, bypassing the page cache; consumers at the tail read from the tail cache (tail.cache.bytes), older data from disk. Takes precedence over write.inline."),
    def!("tail.cache.bytes", Long, "8388608", AtLeast(0), None, Some("tail_cache_bytes"), Honoured,
        "Ringtail: with write.direct, bytes of the partition's most recent writes kept in memory for consumers at the tail (0 for none)."),
    def!("writeback.bytes", Long, "8388608", AtLeast(0), None, Some("writeback_bytes"), Honoured,
        "Ringtail: dirty bytes of the active segment after which their writeback to disk is started (not waited for), so a roll's fsync finds little to write; 0 for never."),
    def!("drop.behind.bytes", Long, "268435456", AtLeast(0), None, Some("drop_behind_bytes"), Honoured,
        "Ringtail: with buffered writes, the active segment's pages more than this many bytes behind the log's end are written back and dropped from the page cache, so new writes reuse the memory; consumers further behind read from disk. 0 for never (the kernel decides)."),
    def!("drop.behind.max.bytes", Long, "0", AtLeast(0), None, Some("drop_behind_max_bytes"), Honoured,
        "Ringtail: how far behind the log's end a drop behind waits for a live consumer: pages a consumer of the last few seconds may still need stay cached up to this many bytes behind the end. At or below drop.behind.bytes (the default, 0) no consumer is waited for."),
];

/// The definition of `name`, if it is a topic config.
pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// Splits a LIST value as Kafka does: comma-separated, items trimmed, empty value = empty list.
pub fn list_items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// IncrementalAlterConfigs' APPEND (`appending`) or SUBTRACT of the items of `given` to or from
/// the LIST value `current`: appended items not yet held go at the end, in order; subtracted
/// ones are removed wherever they are.
pub fn append_or_subtract(current: &str, given: &str, appending: bool) -> String {
    let mut items = list_items(current);
    let given = list_items(given);
    if appending {
        for item in given {
            if !items.contains(&item) {
                items.push(item);
            }
        }
    } else {
        items.retain(|held| !given.contains(held));
    }
    items.join(",")
}

/// Checks `value` against the type and validation of config `name`.
pub fn validate(name: &str, value: &str) -> Result<(), ConfigError> {
    let def = find(name).ok_or_else(|| ConfigError::Unknown { name: name.into() })?;
    let fail = |reason: &str| invalid(name, value, reason);
    let text = value.trim();
    let number = match def.kind {
        ConfigType::Int => Some(
            text.parse::<i32>()
                .map(i64::from)
                .map_err(|_| fail("Not a number of type INT"))?,
        ),
        ConfigType::Long => Some(
            text.parse::<i64>()
                .map_err(|_| fail("Not a number of type LONG"))?,
        ),
        ConfigType::Boolean => {
            if !text.eq_ignore_ascii_case("true") && !text.eq_ignore_ascii_case("false") {
                return Err(fail("Expected value to be either true or false"));
            }
            None
        }
        _ => None,
    };
    match (def.check, number) {
        // Kafka's ConfigDef.Range words.
        (AtLeast(min) | Between(min, _), Some(n)) if n < min => {
            Err(fail(&format!("Value must be at least {min}")))
        }
        (Between(_, max), Some(n)) if n > max => {
            Err(fail(&format!("Value must be no more than {max}")))
        }
        (MinusOneOrBetween(min, max), Some(n)) if n != -1 && !(min..=max).contains(&n) => {
            Err(fail(&format!("must be -1 or between {min} and {max}")))
        }
        (Fraction, _) => match text.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(()),
            _ => Err(fail("must be a number between 0 and 1")),
        },
        (OneOf(allowed), _) if !allowed.contains(&text) => Err(fail(&format!(
            "String must be one of: {}",
            allowed.join(", ")
        ))),
        (ListOf(allowed), _) => {
            match list_items(text).iter().find(|item| !allowed.contains(item)) {
                Some(item) => Err(invalid(
                    name,
                    item,
                    format!("String must be one of: {}", allowed.join(", ")),
                )),
                None => Ok(()),
            }
        }
        (ThrottledReplicas, _) => {
            let pair = |item: &&str| {
                item.split_once(':').is_some_and(|(partition, broker)| {
                    partition.trim().parse::<u32>().is_ok() && broker.trim().parse::<u32>().is_ok()
                })
            };
            let items = list_items(text);
            if text == "*" || items.iter().all(pair) {
                Ok(())
            } else {
                Err(fail("expected * or partition:broker pairs"))
            }
        }
        (OnlyFalse, _) if text.eq_ignore_ascii_case("true") => {
            Err(fail("tiered storage is not available on this broker"))
        }
        _ => Ok(()),
    }
}

/// The effective log config of a topic: every override validated, those the engine honours
/// applied to `defaults`.
pub fn resolve(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<LogConfig, ConfigError> {
    let mut config = defaults.clone();
    for (name, value) in overrides {
        validate(name, value)?;
        let def = find(name).expect("validated");
        if def.support == Honoured {
            let value = match def.kind {
                ConfigType::Boolean => value.trim().to_ascii_lowercase(),
                _ => value.trim().to_string(),
            };
            config.apply(name, &value)?;
        }
    }
    Ok(config)
}

/// The broker-wide value of a topic config: the engine's default for the ones it holds, Kafka's
/// default for the rest.
pub fn broker_value(defaults: &LogConfig, def: &TopicConfigDef) -> String {
    match def.support {
        Honoured => defaults
            .get(def.name)
            .expect("honoured names are the engine's"),
        Ignored(_) => def.default.to_string(),
    }
}

/// The value a topic has for `def`: its override as it was set (a list keeps its order, as
/// Kafka shows it), else the broker-wide value (a dynamic one first).
pub fn topic_value(
    effective: &LogConfig,
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerDefaults,
    def: &TopicConfigDef,
) -> String {
    if let Some(value) = overrides.get(def.name) {
        return value.trim().to_string();
    }
    match def.support {
        Honoured => effective
            .get(def.name)
            .expect("honoured names are the engine's"),
        Ignored(_) => def
            .broker_name
            .and_then(|name| defaults.dynamic.value(name))
            .map_or_else(
                || def.default.to_string(),
                |(value, _)| value.trim().to_string(),
            ),
    }
}

/// Every topic config of a topic, as DescribeConfigs and CreateTopics report them. Synonyms in
/// Kafka's order: the topic's override, the broker-wide name set dynamically on this node, as
/// the cluster-wide default, then its start-up value.
pub fn describe(
    effective: &LogConfig,
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerDefaults,
    explicit_flags: &BTreeSet<String>,
) -> Vec<Described> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let mut synonyms = Vec::with_capacity(2);
            if let Some(value) = overrides.get(def.name) {
                synonyms.push(Synonym {
                    name: def.name.to_string(),
                    value: Some(value.clone()),
                    source: ConfigSource::Topic,
                });
            }
            if let Some(broker_name) = def.broker_name {
                synonyms.extend(defaults.dynamic.synonyms(broker_name, false));
            }
            let broker_source = if def.flag.is_some_and(|flag| explicit_flags.contains(flag)) {
                ConfigSource::StaticBroker
            } else {
                ConfigSource::Default
            };
            synonyms.push(Synonym {
                name: def.broker_name.unwrap_or(def.name).to_string(),
                value: Some(broker_value(&defaults.start_up, def)),
                source: broker_source,
            });
            Described {
                name: def.name.to_string(),
                value: Some(topic_value(effective, overrides, defaults, def)),
                kind: def.kind,
                source: synonyms[0].source,
                read_only: false,
                sensitive: false,
                documentation: def.documentation,
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "topic_tests.rs"]
mod tests;
