//! A group's own `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` (its GROUP
//! config resource) applied by the KIP-848 coordinator: the interval each heartbeat answers, the
//! session each heartbeat (and a restart) starts, a change taken at the next heartbeat, and the
//! broker's values for a group without configs.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ringtail_engine::log::now_ms;
use ringtail_engine::{TopicMeta, TopicRegistry};

use super::group_config::{CONSUMER_HEARTBEAT_INTERVAL_MS, CONSUMER_SESSION_TIMEOUT_MS};
use super::{ConsumerGroup, ConsumerGroupConfig, HeartbeatRequest, TopicCounts};
use crate::group::coordinator_tests::{consumer_join, coordinator};
use crate::metadata::Metadata;

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// The metadata of one topic "t" and the group configs `groups`, as published from a registry.
async fn metadata_with(
    dir: &std::path::Path,
    groups: &[(&str, BTreeMap<String, String>)],
) -> (TopicRegistry, Arc<Metadata>) {
    let mut registry = TopicRegistry::load(dir).await.unwrap();
    registry.insert(TopicMeta::new("t", 4, BTreeMap::new()));
    for (group, set) in groups {
        registry.set_group_configs(group, set.clone());
    }
    let metadata = Metadata::new(ringtail_engine::LogConfig::default());
    metadata.publish(&registry).unwrap();
    (registry, Arc::new(metadata))
}

#[test]
fn a_groups_session_timeout_decides_when_its_silent_member_expires() {
    // The broker's session is 45 s, the group's 50 s: the member outlives the broker's.
    let broker = ConsumerGroupConfig::default();
    let own = configs(&[(CONSUMER_SESSION_TIMEOUT_MS, "50000")]);
    let config = broker.for_group(Some(&own));
    let topics = TopicCounts::from([("t".to_string(), 2)]);
    let mut group = ConsumerGroup::new("g");
    let join = HeartbeatRequest {
        member_id: "m".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 5_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        ..HeartbeatRequest::default()
    };
    group.heartbeat(&join, &topics, &config, 1_000).unwrap();
    assert!(group.tick(1_000 + 45_000).is_empty());
    assert!(group.tick(1_000 + 50_000 - 1).is_empty());
    assert_eq!(group.tick(1_000 + 50_000), vec!["m".to_string()]);
}

#[compio::test]
async fn heartbeats_answer_the_groups_interval_and_start_its_session_and_a_change_applies_next() {
    let dir = tempfile::tempdir().unwrap();
    let own = configs(&[
        (CONSUMER_SESSION_TIMEOUT_MS, "50000"),
        (CONSUMER_HEARTBEAT_INTERVAL_MS, "7000"),
    ]);
    let (mut registry, metadata) = metadata_with(dir.path(), &[("g", own)]).await;
    let (log, first) = coordinator(dir.path(), &metadata).await;

    let before = now_ms();
    let answer = first
        .consumer_heartbeat("g".into(), consumer_join("a"))
        .await
        .unwrap();
    let after = now_ms();
    assert_eq!(answer.heartbeat_interval_ms, 7_000);
    let deadline = first.consumer_group("g").unwrap().members["a"].session_deadline_ms;
    assert!(
        (before + 50_000..=after + 50_000).contains(&deadline),
        "{deadline}"
    );

    // A group without configs has the broker's (ConsumerGroupConfig::default: 45 s, 5 s).
    let other = first
        .consumer_heartbeat("other".into(), consumer_join("b"))
        .await
        .unwrap();
    assert_eq!(other.heartbeat_interval_ms, 5_000);

    // The interval changes: the member's next heartbeat is told the new one, and the session
    // timeout deleted falls back to the broker's for the session that heartbeat starts.
    registry.set_group_configs("g", configs(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "9000")]));
    metadata.publish(&registry).unwrap();
    let beat = HeartbeatRequest {
        member_id: "a".into(),
        member_epoch: answer.member_epoch,
        rebalance_timeout_ms: -1,
        ..HeartbeatRequest::default()
    };
    let before = now_ms();
    let next = first.consumer_heartbeat("g".into(), beat).await.unwrap();
    let after = now_ms();
    assert_eq!(next.heartbeat_interval_ms, 9_000);
    let deadline = first.consumer_group("g").unwrap().members["a"].session_deadline_ms;
    assert!(
        (before + 45_000..=after + 45_000).contains(&deadline),
        "{deadline}"
    );

    // After a restart the members' sessions start over with the group's timeout.
    registry.set_group_configs("g", configs(&[(CONSUMER_SESSION_TIMEOUT_MS, "55000")]));
    metadata.publish(&registry).unwrap();
    drop(first);
    log.close().await.unwrap();
    drop(log);
    let before = now_ms();
    let (_log, second) = coordinator(dir.path(), &metadata).await;
    let after = now_ms();
    let deadline = second.consumer_group("g").unwrap().members["a"].session_deadline_ms;
    assert!(
        (before + 55_000..=after + 55_000).contains(&deadline),
        "{deadline}"
    );
}
