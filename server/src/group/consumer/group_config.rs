//! Group configs (KIP-848's GROUP config resources, ConfigResource type 32) as Kafka 4.0's
//! GroupConfig has them for consumer groups: `consumer.session.timeout.ms` and
//! `consumer.heartbeat.interval.ms`, each overriding the broker's
//! `group.consumer.session.timeout.ms` / `group.consumer.heartbeat.interval.ms` for one group,
//! within the broker's `group.consumer.{min,max}.*` bounds. Kafka's share.* and streams.* group
//! configs are not here (Ringtail has no share or streams groups): they are refused as unknown
//! names, as a broker without them would refuse them.
//!
//! The checks are Kafka's (ControllerConfigurationValidator, GroupConfig.validate): every name
//! known, every value an INT of at least 1, the session and interval within the broker's bounds
//! and the session longer than the interval, the group's values taken over the broker's.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

/// A group's member session timeout (Kafka's GroupConfig.CONSUMER_SESSION_TIMEOUT_MS_CONFIG).
pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
/// A group's heartbeat interval (Kafka's GroupConfig.CONSUMER_HEARTBEAT_INTERVAL_MS_CONFIG).
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";
/// Every group config, in Kafka's order.
pub const GROUP_CONFIG_NAMES: [&str; 2] =
    [CONSUMER_SESSION_TIMEOUT_MS, CONSUMER_HEARTBEAT_INTERVAL_MS];

/// The broker's bounds of consumer groups' session timeout and heartbeat interval (Kafka's
/// `group.consumer.{min,max}.session.timeout.ms`, `group.consumer.{min,max}.heartbeat.interval.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerBounds {
    pub min_session_timeout_ms: i64,
    pub max_session_timeout_ms: i64,
    pub min_heartbeat_interval_ms: i64,
    pub max_heartbeat_interval_ms: i64,
}

impl ConsumerBounds {
    /// Kafka's defaults.
    pub const KAFKA: Self = Self {
        min_session_timeout_ms: 45_000,
        max_session_timeout_ms: 60_000,
        min_heartbeat_interval_ms: 5_000,
        max_heartbeat_interval_ms: 15_000,
    };
}

/// A group config's value as Kafka's ConfigDef parses an INT: trimmed, base 10, at least 1.
fn parse_int(name: &str, value: &str) -> Result<i64, String> {
    let number: i32 = value.trim().parse().map_err(|_| {
        format!("Invalid value {value} for configuration {name}: Not a number of type INT")
    })?;
    if number < 1 {
        return Err(format!(
            "Invalid value {number} for configuration {name}: Value must be at least 1"
        ));
    }
    Ok(i64::from(number))
}

/// The session timeout and heartbeat interval of a group: its own configs over the broker's
/// (`session_ms`, `interval_ms`). A saved value that no longer parses (it was checked when set)
/// falls back to the broker's.
pub fn effective(
    overrides: Option<&BTreeMap<String, String>>,
    session_ms: i64,
    interval_ms: i64,
) -> (i64, i64) {
    let of = |name: &str, fallback: i64| {
        overrides
            .and_then(|set| set.get(name))
            .and_then(|value| parse_int(name, value).ok())
            .unwrap_or(fallback)
    };
    (
        of(CONSUMER_SESSION_TIMEOUT_MS, session_ms),
        of(CONSUMER_HEARTBEAT_INTERVAL_MS, interval_ms),
    )
}

/// Checks a group's whole new set of configs as Kafka 4.0 does (GroupConfigManager.validate: the
/// broker's values with the set over them); the error is the message of Kafka's
/// InvalidConfigurationException (INVALID_CONFIG).
pub fn validate(
    set: &BTreeMap<String, String>,
    bounds: &ConsumerBounds,
    session_ms: i64,
    interval_ms: i64,
) -> Result<(), String> {
    if let Some(unknown) = set
        .keys()
        .find(|name| !GROUP_CONFIG_NAMES.contains(&name.as_str()))
    {
        return Err(format!("Unknown group config name: {unknown}"));
    }
    let mut session = session_ms;
    let mut interval = interval_ms;
    // Kafka parses in its ConfigDef's order: the session timeout first.
    if let Some(value) = set.get(CONSUMER_SESSION_TIMEOUT_MS) {
        session = parse_int(CONSUMER_SESSION_TIMEOUT_MS, value)?;
    }
    if let Some(value) = set.get(CONSUMER_HEARTBEAT_INTERVAL_MS) {
        interval = parse_int(CONSUMER_HEARTBEAT_INTERVAL_MS, value)?;
    }
    let bound = |name: &str, below: bool, broker_name: &str| {
        let relation = if below {
            "greater than or equal to"
        } else {
            "less than or equal to"
        };
        Err(format!("{name} must be {relation} {broker_name}"))
    };
    if interval < bounds.min_heartbeat_interval_ms {
        return bound(
            CONSUMER_HEARTBEAT_INTERVAL_MS,
            true,
            "group.consumer.min.heartbeat.interval.ms",
        );
    }
    if interval > bounds.max_heartbeat_interval_ms {
        return bound(
            CONSUMER_HEARTBEAT_INTERVAL_MS,
            false,
            "group.consumer.max.heartbeat.interval.ms",
        );
    }
    if session < bounds.min_session_timeout_ms {
        return bound(
            CONSUMER_SESSION_TIMEOUT_MS,
            true,
            "group.consumer.min.session.timeout.ms",
        );
    }
    if session > bounds.max_session_timeout_ms {
        return bound(
            CONSUMER_SESSION_TIMEOUT_MS,
            false,
            "group.consumer.max.session.timeout.ms",
        );
    }
    if session <= interval {
        return Err(format!(
            "{CONSUMER_SESSION_TIMEOUT_MS} must be greater than {CONSUMER_HEARTBEAT_INTERVAL_MS}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn check(pairs: &[(&str, &str)]) -> Result<(), String> {
        validate(&set(pairs), &ConsumerBounds::KAFKA, 45_000, 5_000)
    }

    #[test]
    fn kafka_accepts_a_group_session_and_interval_within_the_broker_bounds() {
        assert_eq!(check(&[(CONSUMER_SESSION_TIMEOUT_MS, "50000")]), Ok(()));
        assert_eq!(
            check(&[
                (CONSUMER_SESSION_TIMEOUT_MS, " 60000 "),
                (CONSUMER_HEARTBEAT_INTERVAL_MS, "15000")
            ]),
            Ok(())
        );
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn kafka_refuses_unknown_names_non_ints_and_values_out_of_bounds_with_its_messages() {
        let cases = [
            (
                vec![("share.session.timeout.ms", "50000")],
                "Unknown group config name: share.session.timeout.ms",
            ),
            (
                vec![(CONSUMER_SESSION_TIMEOUT_MS, "abc")],
                "Invalid value abc for configuration consumer.session.timeout.ms: Not a number of type INT",
            ),
            (
                vec![(CONSUMER_HEARTBEAT_INTERVAL_MS, "0")],
                "Invalid value 0 for configuration consumer.heartbeat.interval.ms: Value must be at least 1",
            ),
            (
                vec![(CONSUMER_SESSION_TIMEOUT_MS, "44999")],
                "consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms",
            ),
            (
                vec![(CONSUMER_SESSION_TIMEOUT_MS, "60001")],
                "consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms",
            ),
            (
                vec![(CONSUMER_HEARTBEAT_INTERVAL_MS, "4999")],
                "consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms",
            ),
            (
                vec![(CONSUMER_HEARTBEAT_INTERVAL_MS, "15001")],
                "consumer.heartbeat.interval.ms must be less than or equal to group.consumer.max.heartbeat.interval.ms",
            ),
        ];
        for (pairs, message) in cases {
            assert_eq!(check(&pairs), Err(message.to_string()), "{pairs:?}");
        }
    }

    #[test]
    fn the_session_must_outlast_the_interval_with_the_broker_value_for_the_one_not_set() {
        // Wider bounds than Kafka's defaults, so that only the session/interval rule fails.
        let wide = ConsumerBounds {
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 60_000,
            min_heartbeat_interval_ms: 1_000,
            max_heartbeat_interval_ms: 60_000,
        };
        let interval_only = set(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "45000")]);
        assert_eq!(
            validate(&interval_only, &wide, 45_000, 5_000),
            Err(
                "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"
                    .into()
            )
        );
        assert_eq!(validate(&interval_only, &wide, 50_000, 5_000), Ok(()));
    }

    #[test]
    fn a_group_value_overrides_the_broker_value_and_a_missing_one_falls_back() {
        let group = set(&[(CONSUMER_SESSION_TIMEOUT_MS, "50000")]);
        assert_eq!(effective(Some(&group), 45_000, 5_000), (50_000, 5_000));
        assert_eq!(effective(None, 45_000, 5_000), (45_000, 5_000));
        let interval = set(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "7000")]);
        assert_eq!(effective(Some(&interval), 45_000, 5_000), (45_000, 7_000));
    }
}
