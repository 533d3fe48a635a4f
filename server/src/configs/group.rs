//! A consumer group's configs as DescribeConfigs reports a GROUP resource, as Kafka 4.0's
//! ConfigHelper.createGroupConfigEntry does: every group config (`consumer.session.timeout.ms`,
//! `consumer.heartbeat.interval.ms`) with the group's value and GROUP_CONFIG when the group sets
//! it, otherwise the broker's value and DEFAULT_CONFIG (Kafka fills a group's defaults from the
//! broker's group.consumer.* values); INT, not read-only, not sensitive; the one synonym is the
//! config itself with that source (Kafka names no broker synonym for group configs).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use super::{ConfigSource, ConfigType, Described, Synonym};
use crate::group::consumer::group_config::{
    CONSUMER_HEARTBEAT_INTERVAL_MS, CONSUMER_SESSION_TIMEOUT_MS,
};

/// Every group config of a group whose own configs are `set`, over the broker's session timeout
/// and heartbeat interval.
pub fn describe(
    set: Option<&BTreeMap<String, String>>,
    session_ms: i64,
    interval_ms: i64,
) -> Vec<Described> {
    [
        (
            CONSUMER_SESSION_TIMEOUT_MS,
            session_ms,
            "The timeout to detect client failures when using the consumer group protocol (overrides group.consumer.session.timeout.ms for this group).",
        ),
        (
            CONSUMER_HEARTBEAT_INTERVAL_MS,
            interval_ms,
            "The heartbeat interval given to the members (overrides group.consumer.heartbeat.interval.ms for this group).",
        ),
    ]
    .into_iter()
    .map(|(name, broker_value, documentation)| {
        let own = set.and_then(|set| set.get(name));
        let (value, source) = match own {
            // Kafka describes the parsed INT (ConfigDef.convertToString): " 050000" as "50000".
            Some(value) => (
                value
                    .trim()
                    .parse::<i32>()
                    .map_or_else(|_| value.clone(), |number| number.to_string()),
                ConfigSource::Group,
            ),
            None => (broker_value.to_string(), ConfigSource::Default),
        };
        Described {
            name: name.to_string(),
            value: Some(value.clone()),
            kind: ConfigType::Int,
            source,
            read_only: false,
            sensitive: false,
            documentation,
            synonyms: vec![Synonym {
                name: name.to_string(),
                value: Some(value),
                source,
            }],
        }
    })
    .collect()
}
