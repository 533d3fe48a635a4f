//! OpenMessaging Benchmark (OMB) workload files → [`Workload`]. The YAML is OMB's own format (its
//! `workloads/*.yaml`, read by OMB's `Workload.java`), so published OMB workloads run unchanged;
//! what a file says that the loadgen cannot reproduce comes back as an [`OmbWarning`], never
//! dropped silently.
//!
//! # OMB semantics kept
//! - `producerRate` is messages per second over *all* producers (OMB divides it among workers).
//!   0 or missing makes OMB search for the maximum sustainable rate with a feedback controller;
//!   the loadgen has none, so it runs flat out and says so ([`OmbWarning::RateProbeNotReproduced`]).
//! - `keyDistributor`: `NO_KEY` (the default, and what OMB falls back to for an unknown name) sends
//!   unkeyed messages; `KEY_ROUND_ROBIN` and `RANDOM_NANO` both draw from 10,000 keys
//!   (`KeyDistributor.UNIQUE_COUNT`), placed by murmur2 as the Java client does.
//! - A subscription is a Kafka consumer group in OMB's Kafka driver: consumers join groups.
//! - `consumerBacklogSizeGB` is GiB (OMB multiplies by 1024³) and needs a `producerRate` (OMB
//!   refuses to probe a rate while building a backlog). The loadgen produces the backlog before
//!   the measured part and has consumers read it from the earliest offset.
//! - `warmupDurationMinutes` defaults to 1, as in OMB. `testDurationMinutes` 0 means "forever" in
//!   OMB; here it is refused, since a run must end to be reported.
//!
//! # What the file does not say
//! Everything else — bootstrap address, acks, compression, linger, batch size, in-flight
//! requests, drain timeout — comes from the `base` workload (in OMB those live in the driver
//! file). Topic names are `<first base topic>-<name slug>-<partitions>p-<index>`, so that two
//! workloads with different partition counts never share a topic.
//!
//! # Why serde_norway
//! `serde_yaml` is deprecated and archived. `serde_norway` is the fork its maintainer committed to
//! keep up, with the same API, the same MIT OR Apache-2.0 licence, and wide adoption;
//! `serde_yml` carries RustSec advisories, and `serde_yaml_ng` is MIT-only with fewer releases.
#![forbid(unsafe_code)]

use serde::Deserialize;
use serde_norway::Value;

use crate::workload::{ConsumerMode, MessageSize, PartitionerKind, StartFrom, Workload};

/// Distinct keys OMB's key distributors draw from (`KeyDistributor.UNIQUE_COUNT`).
pub const OMB_KEY_COUNT: u64 = 10_000;
/// Topics a workload may ask for: OMB's largest shipped workloads use a million.
pub const TOPICS_MAX: i64 = 1_000_000;
/// OMB's `consumerBacklogSizeGB` unit: `GB * 1024 * 1024 * 1024`.
const BYTES_PER_OMB_GB: u64 = 1 << 30;
/// OMB's default warm-up (`Workload.warmupDurationMinutes = 1`).
const WARMUP_MINUTES_DEFAULT: i64 = 1;
/// Longest slug of the workload name kept in topic names (Kafka allows 249 characters in all).
const SLUG_CHARS_MAX: usize = 64;

/// Every field of OMB's `Workload.java`; any other key is reported as unknown.
const KNOWN_FIELDS: [&str; 17] = [
    "name",
    "topics",
    "partitionsPerTopic",
    "keyDistributor",
    "messageSize",
    "useRandomizedPayloads",
    "randomBytesRatio",
    "randomizedPayloadPoolSize",
    "payloadFile",
    "subscriptionsPerTopic",
    "producersPerTopic",
    "consumerPerSubscription",
    "producerRate",
    "consumerBacklogSizeGB",
    "backlogDrainRatio",
    "testDurationMinutes",
    "warmupDurationMinutes",
];

/// Why a workload file was refused.
#[derive(Debug, thiserror::Error)]
pub enum OmbError {
    /// Not YAML, or a field of the wrong type (the message has the line and column).
    #[error("not a valid OMB workload: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("an OMB workload is a YAML mapping of fields, not {0}")]
    NotAMapping(&'static str),
    #[error("required field `{0}` is missing")]
    Missing(&'static str),
    #[error("`{field}` is {value}, but must be {expected}")]
    OutOfRange {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("`consumerBacklogSizeGB` needs a `producerRate` above 0 (OMB refuses to probe a rate while building a backlog)")]
    BacklogNeedsRate,
}

/// Something the file says that the loadgen does not reproduce exactly; the run goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OmbWarning {
    #[error("unknown field `{0}` ignored (not a field of OMB's Workload)")]
    UnknownField(String),
    #[error("payloadFile {0:?} not read: the loadgen sends its own payload of messageSize bytes")]
    PayloadFileIgnored(String),
    #[error("randomized payloads (randomBytesRatio {random_bytes_ratio}) not reproduced: the loadgen's payload content is its own, which matters under compression")]
    RandomizedPayloadsNotReproduced { random_bytes_ratio: f64 },
    #[error("keyDistributor {0:?} unknown: using NO_KEY, as OMB does")]
    UnknownKeyDistributor(String),
    #[error("keyDistributor RANDOM_NANO: the same 10000 keys, but in the loadgen's order, not drawn by nanoTime")]
    RandomNanoOrder,
    #[error("producerRate 0: OMB would search for the maximum sustainable rate; the loadgen runs flat out")]
    RateProbeNotReproduced,
    #[error("backlogDrainRatio {0} not reproduced: consumers drain the whole backlog")]
    BacklogDrainRatioIgnored(f64),
}

/// A workload read from an OMB file.
#[derive(Debug, Clone, PartialEq)]
pub struct OmbWorkload {
    /// The file's `name` ("omb" when it has none), e.g. for a report label.
    pub name: String,
    pub workload: Workload,
    pub warnings: Vec<OmbWarning>,
}

/// The fields of OMB's `Workload.java`, as they appear in the YAML.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OmbFile {
    name: Option<String>,
    topics: Option<i64>,
    partitions_per_topic: Option<i64>,
    key_distributor: Option<String>,
    message_size: Option<i64>,
    use_randomized_payloads: Option<bool>,
    random_bytes_ratio: Option<f64>,
    randomized_payload_pool_size: Option<i64>,
    payload_file: Option<String>,
    subscriptions_per_topic: Option<i64>,
    producers_per_topic: Option<i64>,
    consumer_per_subscription: Option<i64>,
    producer_rate: Option<f64>,
    #[serde(rename = "consumerBacklogSizeGB")]
    consumer_backlog_size_gb: Option<i64>,
    backlog_drain_ratio: Option<f64>,
    test_duration_minutes: Option<i64>,
    warmup_duration_minutes: Option<i64>,
}

/// Reads an OMB workload file; `base` supplies every knob the file does not set (see the module
/// doc). Unknown fields and semantics the loadgen does not reproduce come back as warnings.
pub fn workload_from_omb(yaml: &str, base: &Workload) -> Result<OmbWorkload, OmbError> {
    let mut warnings = unknown_fields(yaml)?;
    // Parsed again as the struct, so that a type error points at its line and column.
    let file: OmbFile = serde_norway::from_str(yaml)?;
    let name = file.name.clone().unwrap_or_else(|| "omb".to_string());
    let mut workload = base.clone();
    apply_shape(&file, &name, &mut workload)?;
    apply_keys(&file, &mut workload, &mut warnings);
    apply_payload(&file, &mut workload, &mut warnings)?;
    apply_rate_and_backlog(&file, &mut workload, &mut warnings)?;
    apply_durations(&file, &mut workload)?;
    assert_eq!(workload.topics.len() as i64, file.topics.unwrap_or(0));
    assert!(workload.duration_s > 0.0);
    Ok(OmbWorkload {
        name,
        workload,
        warnings,
    })
}

/// The keys of the top-level mapping that OMB's `Workload` has no field for.
fn unknown_fields(yaml: &str) -> Result<Vec<OmbWarning>, OmbError> {
    let value: Value = serde_norway::from_str(yaml)?;
    let mapping = match value {
        Value::Mapping(mapping) => mapping,
        Value::Null => return Err(OmbError::NotAMapping("an empty document")),
        Value::Sequence(_) => return Err(OmbError::NotAMapping("a list")),
        _ => return Err(OmbError::NotAMapping("a single value")),
    };
    let mut warnings = Vec::new();
    for key in mapping.keys() {
        let key = match key {
            Value::String(key) => key.clone(),
            other => serde_norway::to_string(other)?.trim_end().to_string(),
        };
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            warnings.push(OmbWarning::UnknownField(key));
        }
    }
    Ok(warnings)
}

/// `value` if it lies in `[low, high]`, else a typed error naming the field.
fn in_range(
    field: &'static str,
    value: i64,
    (low, high): (i64, i64),
    expected: &'static str,
) -> Result<i64, OmbError> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(OmbError::OutOfRange {
            field,
            value: value.to_string(),
            expected,
        })
    }
}

fn required(field: &'static str, value: Option<i64>) -> Result<i64, OmbError> {
    value.ok_or(OmbError::Missing(field))
}

/// Topics, partitions, producers and consumers.
fn apply_shape(file: &OmbFile, name: &str, workload: &mut Workload) -> Result<(), OmbError> {
    let topics = in_range(
        "topics",
        required("topics", file.topics)?,
        (1, TOPICS_MAX),
        "1 to 1000000",
    )?;
    let partitions = in_range(
        "partitionsPerTopic",
        required("partitionsPerTopic", file.partitions_per_topic)?,
        (1, i64::from(i32::MAX)),
        "at least 1",
    )?;
    let count = |field, value: Option<i64>, low| -> Result<u32, OmbError> {
        let value = in_range(
            field,
            value.unwrap_or(0),
            (low, i64::from(u32::MAX)),
            "a count",
        )?;
        Ok(u32::try_from(value).expect("range checked"))
    };
    workload.producers = count("producersPerTopic", file.producers_per_topic, 1)?;
    // OMB's int fields default to 0: a workload without consumers only produces.
    workload.subscriptions = count("subscriptionsPerTopic", file.subscriptions_per_topic, 0)?;
    workload.consumers_per_subscription =
        count("consumerPerSubscription", file.consumer_per_subscription, 0)?;
    workload.consumer_mode = ConsumerMode::Group;
    workload.partitions = i32::try_from(partitions).expect("range checked");
    let prefix = base_prefix(workload);
    let slug = slug(name);
    workload.topics = (0..topics)
        .map(|index| format!("{prefix}-{slug}-{partitions}p-{index}"))
        .collect();
    Ok(())
}

fn base_prefix(workload: &Workload) -> String {
    workload
        .topics
        .first()
        .cloned()
        .unwrap_or_else(|| "omb".to_string())
}

/// The workload name as a topic-name fragment: ASCII letters and digits, runs of anything else
/// as one '-', at most [`SLUG_CHARS_MAX`] characters; "omb" when nothing is left.
fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(SLUG_CHARS_MAX);
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "omb".to_string()
    } else {
        slug.to_string()
    }
}

/// `keyDistributor` → key cardinality and partitioner.
fn apply_keys(file: &OmbFile, workload: &mut Workload, warnings: &mut Vec<OmbWarning>) {
    let keyed = match file.key_distributor.as_deref() {
        None | Some("NO_KEY") => false,
        Some("KEY_ROUND_ROBIN") => true,
        Some("RANDOM_NANO") => {
            warnings.push(OmbWarning::RandomNanoOrder);
            true
        }
        Some(other) => {
            warnings.push(OmbWarning::UnknownKeyDistributor(other.to_string()));
            false
        }
    };
    if keyed {
        workload.key_cardinality = Some(OMB_KEY_COUNT);
        workload.partitioner = PartitionerKind::Murmur2;
    } else {
        workload.key_cardinality = None;
        // Unkeyed messages in the Java client go sticky; keep the base's choice unless it
        // needs keys.
        if workload.partitioner == PartitionerKind::Murmur2 {
            workload.partitioner = PartitionerKind::Sticky;
        }
    }
}

/// `messageSize` and the payload fields (whose content the loadgen does not reproduce).
fn apply_payload(
    file: &OmbFile,
    workload: &mut Workload,
    warnings: &mut Vec<OmbWarning>,
) -> Result<(), OmbError> {
    let bytes = in_range(
        "messageSize",
        required("messageSize", file.message_size)?,
        (1, i64::from(i32::MAX)),
        "at least 1 byte",
    )?;
    workload.message_size = MessageSize::Fixed {
        bytes: usize::try_from(bytes).expect("range checked"),
    };
    if let Some(ratio) = file.random_bytes_ratio {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(OmbError::OutOfRange {
                field: "randomBytesRatio",
                value: ratio.to_string(),
                expected: "between 0 and 1",
            });
        }
    }
    if let Some(pool) = file.randomized_payload_pool_size {
        in_range(
            "randomizedPayloadPoolSize",
            pool,
            (0, i64::from(i32::MAX)),
            "a count",
        )?;
    }
    if file.use_randomized_payloads == Some(true) {
        warnings.push(OmbWarning::RandomizedPayloadsNotReproduced {
            random_bytes_ratio: file.random_bytes_ratio.unwrap_or(0.0),
        });
    } else if let Some(path) = &file.payload_file {
        warnings.push(OmbWarning::PayloadFileIgnored(path.clone()));
    }
    Ok(())
}

/// `producerRate`, `consumerBacklogSizeGB` and `backlogDrainRatio`.
fn apply_rate_and_backlog(
    file: &OmbFile,
    workload: &mut Workload,
    warnings: &mut Vec<OmbWarning>,
) -> Result<(), OmbError> {
    let rate = file.producer_rate.unwrap_or(0.0);
    if !(rate.is_finite() && rate >= 0.0) {
        return Err(OmbError::OutOfRange {
            field: "producerRate",
            value: rate.to_string(),
            expected: "messages per second, 0 or more",
        });
    }
    let backlog_gb = in_range(
        "consumerBacklogSizeGB",
        file.consumer_backlog_size_gb.unwrap_or(0),
        (0, i64::from(u32::MAX)),
        "0 or more GiB",
    )?;
    if backlog_gb > 0 && rate == 0.0 {
        return Err(OmbError::BacklogNeedsRate);
    }
    if rate > 0.0 {
        workload.rate_msgs_per_s = Some(rate);
    } else {
        workload.rate_msgs_per_s = None;
        warnings.push(OmbWarning::RateProbeNotReproduced);
    }
    let backlog_gb = u64::try_from(backlog_gb).expect("range checked");
    workload.backlog_bytes = backlog_gb * BYTES_PER_OMB_GB;
    workload.start_from = if backlog_gb > 0 {
        StartFrom::Earliest
    } else {
        StartFrom::Latest
    };
    if let Some(ratio) = file.backlog_drain_ratio {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(OmbError::OutOfRange {
                field: "backlogDrainRatio",
                value: ratio.to_string(),
                expected: "between 0 and 1",
            });
        }
        if ratio != 1.0 {
            warnings.push(OmbWarning::BacklogDrainRatioIgnored(ratio));
        }
    }
    Ok(())
}

/// `testDurationMinutes` (required, above 0) and `warmupDurationMinutes` (default 1).
fn apply_durations(file: &OmbFile, workload: &mut Workload) -> Result<(), OmbError> {
    // A week bounds both: far beyond any benchmark, and well inside f64 seconds.
    const MINUTES_MAX: i64 = 7 * 24 * 60;
    let test = in_range(
        "testDurationMinutes",
        required("testDurationMinutes", file.test_duration_minutes)?,
        (1, MINUTES_MAX),
        "1 to 10080 minutes (OMB's 0, run forever, cannot be reported)",
    )?;
    let warmup = in_range(
        "warmupDurationMinutes",
        file.warmup_duration_minutes
            .unwrap_or(WARMUP_MINUTES_DEFAULT),
        (0, MINUTES_MAX),
        "0 to 10080 minutes",
    )?;
    workload.duration_s = test as f64 * 60.0;
    workload.warmup_s = warmup as f64 * 60.0;
    Ok(())
}

#[cfg(test)]
mod tests;
