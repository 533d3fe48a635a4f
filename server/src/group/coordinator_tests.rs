//! The coordinator over a real offsets log: what it writes when a classic generation completes
//! and when a consumer group changes, a restart (a new coordinator on the reopened log) replays.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use ringtail_engine::{LogConfig, PartitionLog, TopicMeta, TopicRegistry};

use super::consumer::{ConsumerGroupConfig, HeartbeatRequest};
use super::state::{GroupPhase, JoinRequest, INITIAL_REBALANCE_DELAY_MS};
use super::Coordinator;
use crate::metadata::Metadata;

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        preallocate: false,
        ..LogConfig::default()
    }
}

async fn metadata_with_topic(dir: &std::path::Path) -> Arc<Metadata> {
    let mut registry = TopicRegistry::load(dir).await.unwrap();
    registry.insert(TopicMeta::new("t", 4, BTreeMap::new()));
    let metadata = Metadata::new(log_config());
    metadata.publish(&registry).unwrap();
    Arc::new(metadata)
}

async fn coordinator(
    dir: &std::path::Path,
    metadata: &Arc<Metadata>,
) -> (Rc<PartitionLog>, Rc<Coordinator>) {
    let (log, _) = PartitionLog::open(&dir.join("__consumer_offsets-0"), log_config())
        .await
        .unwrap();
    let coordinator = Coordinator::load(
        Rc::clone(&log),
        Arc::clone(metadata),
        ConsumerGroupConfig::default(),
    )
    .await
    .unwrap();
    (log, Rc::new(coordinator))
}

fn classic_join() -> JoinRequest {
    JoinRequest {
        member_id: String::new(),
        group_instance_id: Some("instance-1".into()),
        client_id: "client-1".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 30_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"subscription"))],
        require_known_member_id: false,
    }
}

#[compio::test]
async fn classic_and_consumer_groups_come_back_after_a_restart() {
    // A Stable classic group returns Stable with its member (heartbeats of its generation pass),
    // and a consumer group returns with its epochs, member and assignment.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (log, first) = coordinator(dir.path(), &metadata).await;
    let joining = compio::runtime::spawn({
        let first = Rc::clone(&first);
        async move { first.join("classic".into(), classic_join()).await }
    });
    // A new group waits INITIAL_REBALANCE_DELAY_MS for more members before the join completes.
    compio::time::sleep(Duration::from_millis(
        INITIAL_REBALANCE_DELAY_MS as u64 + 50,
    ))
    .await;
    first.tick().await;
    let joined = joining.await.unwrap();
    assert_eq!(joined.error, None);
    let assignment = Bytes::from_static(b"assignment");
    let synced = first
        .sync(
            "classic".into(),
            joined.member_id.clone(),
            joined.generation_id,
            vec![(joined.member_id.clone(), assignment.clone())],
        )
        .await;
    assert_eq!(synced.assignment, assignment);
    let heartbeat = HeartbeatRequest {
        member_id: "kip848-member".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        ..HeartbeatRequest::default()
    };
    let answer = first
        .consumer_heartbeat("next".into(), heartbeat)
        .await
        .unwrap();
    assert_eq!(answer.assignment.as_ref().map(|a| a["t"].len()), Some(4));
    drop(first);
    log.close().await.unwrap();
    drop(log);

    let (_log, second) = coordinator(dir.path(), &metadata).await;
    let classic = second.describe("classic").unwrap();
    assert_eq!(classic.phase, GroupPhase::Stable);
    assert_eq!(classic.generation_id, joined.generation_id);
    let member = &classic.members[&joined.member_id];
    assert_eq!(member.assignment, assignment);
    assert_eq!(member.group_instance_id.as_deref(), Some("instance-1"));
    assert_eq!(
        second.heartbeat("classic", &joined.member_id, joined.generation_id),
        None
    );
    let consumer = second.consumer_group("next").unwrap();
    let restored = &consumer.members["kip848-member"];
    assert_eq!(restored.member_epoch, answer.member_epoch);
    assert_eq!(Some(&restored.assigned), answer.assignment.as_ref());
    let beat = HeartbeatRequest {
        member_id: "kip848-member".into(),
        member_epoch: answer.member_epoch,
        rebalance_timeout_ms: -1,
        ..HeartbeatRequest::default()
    };
    let again = second
        .consumer_heartbeat("next".into(), beat)
        .await
        .unwrap();
    assert_eq!(again.member_epoch, answer.member_epoch);
}

/// A classic group "classic" that is Stable with one member (its join and sync done).
async fn stable_classic_group(coordinator: &Rc<Coordinator>) -> (String, i32) {
    let joining = compio::runtime::spawn({
        let coordinator = Rc::clone(coordinator);
        async move { coordinator.join("classic".into(), classic_join()).await }
    });
    compio::time::sleep(Duration::from_millis(
        INITIAL_REBALANCE_DELAY_MS as u64 + 50,
    ))
    .await;
    coordinator.tick().await;
    let joined = joining.await.unwrap();
    assert_eq!(joined.error, None);
    (joined.member_id, joined.generation_id)
}

#[compio::test]
async fn a_classic_generation_that_cannot_be_stored_is_refused_and_rebalances() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    let (member_id, generation_id) = stable_classic_group(&first).await;
    first.failing_writes.set(1);
    let synced = first
        .sync(
            "classic".into(),
            member_id.clone(),
            generation_id,
            vec![(member_id.clone(), Bytes::from_static(b"assignment"))],
        )
        .await;
    assert_eq!(synced.error, Some(ResponseError::CoordinatorNotAvailable));
    assert!(synced.assignment.is_empty());
    let group = first.describe("classic").unwrap();
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    assert!(group.members[&member_id].assignment.is_empty());
    assert_eq!(
        first.heartbeat("classic", &member_id, generation_id),
        Some(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn records_are_split_into_batches_under_the_limit() {
    let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..100)
        .map(|i| (format!("key{i}").into_bytes(), Some(vec![b'v'; 1000])))
        .collect();
    let chunks = super::batch_chunks(&records, 10_000);
    assert!(chunks.len() > 1);
    assert_eq!(chunks.iter().map(|chunk| chunk.len()).sum::<usize>(), 100);
    for chunk in &chunks {
        let specs: Vec<ringtail_engine::batch::RecordSpec<'_>> = chunk
            .iter()
            .map(|(key, value)| ringtail_engine::batch::RecordSpec {
                key: Some(key),
                value: value.as_deref(),
                timestamp_delta: 0,
            })
            .collect();
        let batch = ringtail_engine::batch::encode_batch(0, &specs, Default::default());
        assert!(batch.len() <= 10_000, "{} bytes", batch.len());
    }
    assert_eq!(super::batch_chunks(&records[..1], 10).len(), 1);
}
