//! The coordinator over a real offsets log: what it writes when a classic generation completes
//! and when a consumer group changes, a restart (a new coordinator on the reopened log) replays.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use ringtail_engine::{LogConfig, PartitionLog, TopicMeta, TopicRegistry};

use super::consumer::{ConsumerGroupConfig, HeartbeatRequest};
use super::state::{GroupPhase, JoinRequest, INITIAL_REBALANCE_DELAY_MS};
use super::{CommittedOffset, Coordinator};
use crate::metadata::Metadata;
use crate::txn::marker::{MarkerType, TxnProducer};

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        preallocate: false,
        ..LogConfig::default()
    }
}

pub(super) async fn metadata_with_topic(dir: &std::path::Path) -> Arc<Metadata> {
    let mut registry = TopicRegistry::load(dir).await.unwrap();
    registry.insert(TopicMeta::new("t", 4, BTreeMap::new()));
    let metadata = Metadata::new(log_config());
    metadata.publish(&registry).unwrap();
    Arc::new(metadata)
}

pub(super) async fn coordinator(
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
        supports_skip_assignment: false,
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
            (joined.member_id.clone(), Some("instance-1".into())),
            joined.generation_id,
            (None, None),
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
        second.heartbeat(
            "classic",
            (&joined.member_id, Some("instance-1")),
            joined.generation_id
        ),
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

pub(super) fn consumer_join(member_id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: member_id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        ..HeartbeatRequest::default()
    }
}

#[compio::test]
async fn a_consumer_heartbeat_whose_write_fails_is_refused_and_its_changes_written_next_time() {
    // b's join can't be written: b is answered an error, and the changes it made (a new group
    // epoch, a target that moves partitions from a to b) are written with the next heartbeat, so
    // a restart finds what was answered rather than a's revocation without the epoch behind it.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (log, first) = coordinator(dir.path(), &metadata).await;
    let a = first
        .consumer_heartbeat("g".into(), consumer_join("a"))
        .await
        .unwrap();
    first.failing_writes.set(1);
    let refused = first
        .consumer_heartbeat("g".into(), consumer_join("b"))
        .await
        .unwrap_err();
    assert_eq!(refused.error, ResponseError::CoordinatorNotAvailable);
    let beat = HeartbeatRequest {
        member_id: "a".into(),
        member_epoch: a.member_epoch,
        rebalance_timeout_ms: -1,
        owned: a.assignment.clone(),
        ..HeartbeatRequest::default()
    };
    let revoking = first.consumer_heartbeat("g".into(), beat).await.unwrap();
    assert_eq!(
        revoking.assignment.as_ref().map(|a| a["t"].len()),
        Some(2),
        "a gives up half of its partitions to b"
    );
    let before = first.consumer_group("g").unwrap();
    drop(first);
    log.close().await.unwrap();
    drop(log);

    let (_log, second) = coordinator(dir.path(), &metadata).await;
    let after = second.consumer_group("g").unwrap();
    assert_eq!(after.group_epoch, before.group_epoch);
    assert_eq!(after.assignment_epoch, before.assignment_epoch);
    assert_eq!(after.target, before.target);
    assert_eq!(
        after.members.keys().collect::<Vec<_>>(),
        vec!["a", "b"],
        "b's join was written with a's heartbeat"
    );
    for (id, member) in &before.members {
        assert_eq!(after.members[id].member_epoch, member.member_epoch);
        assert_eq!(after.members[id].assigned, member.assigned);
        assert_eq!(after.members[id].revoking, member.revoking);
    }
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
            (member_id.clone(), None),
            generation_id,
            (None, None),
            vec![(member_id.clone(), Bytes::from_static(b"assignment"))],
        )
        .await;
    assert_eq!(synced.error, Some(ResponseError::CoordinatorNotAvailable));
    assert!(synced.assignment.is_empty());
    let group = first.describe("classic").unwrap();
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    assert!(group.members[&member_id].assignment.is_empty());
    assert_eq!(
        first.heartbeat("classic", (&member_id, None), generation_id),
        Some(ResponseError::RebalanceInProgress)
    );
}

#[compio::test]
async fn a_refused_consumer_heartbeat_leaves_an_empty_classic_group_alone() {
    // Checked before anything changes: an epoch other than 0 for a group that is no consumer
    // group, and a join the state machine refuses (no subscription).
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    let (member_id, _) = stable_classic_group(&first).await;
    let left = first
        .leave("classic", vec![(member_id.clone(), None)])
        .await;
    assert_eq!(left, vec![None]);
    assert_eq!(first.describe("classic").unwrap().phase, GroupPhase::Empty);
    let mut beat = consumer_join("x");
    beat.member_epoch = 3;
    let refused = first
        .consumer_heartbeat("classic".into(), beat)
        .await
        .unwrap_err();
    assert_eq!(refused.error, ResponseError::GroupIdNotFound);
    let mut no_subscription = consumer_join("x");
    no_subscription.subscribed_topic_names = None;
    let refused = first
        .consumer_heartbeat("classic".into(), no_subscription)
        .await
        .unwrap_err();
    assert_eq!(refused.error, ResponseError::InvalidRequest);
    assert!(first.describe("classic").is_some());
    assert!(first.consumer_group("classic").is_none());
    // An accepted join converts it.
    first
        .consumer_heartbeat("classic".into(), consumer_join("x"))
        .await
        .unwrap();
    assert!(first
        .list()
        .iter()
        .all(|group| group.group_type == "consumer"));
}

#[compio::test]
async fn ids_with_a_nul_byte_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    let refused = first
        .consumer_heartbeat("g\0x".into(), consumer_join("a"))
        .await
        .unwrap_err();
    assert_eq!(refused.error, ResponseError::InvalidRequest);
    let refused = first
        .consumer_heartbeat("g".into(), consumer_join("a\0b"))
        .await
        .unwrap_err();
    assert_eq!(refused.error, ResponseError::InvalidRequest);
    let joined = first.join("g\0x".into(), classic_join()).await;
    assert_eq!(joined.error, Some(ResponseError::InvalidGroupId));
    // An empty id with a session timeout out of range: the id is what Kafka refuses first.
    let mut no_session = classic_join();
    no_session.session_timeout_ms = 0;
    let joined = first.join(String::new(), no_session).await;
    assert_eq!(joined.error, Some(ResponseError::InvalidGroupId));
    let committed = CommittedOffset {
        offset: 1,
        leader_epoch: -1,
        metadata: None,
        commit_ms: 0,
    };
    assert_eq!(
        first
            .commit(
                "g\0x",
                ("", None, -1),
                8,
                vec![("t".into(), 0, committed.clone())]
            )
            .await,
        Err(ResponseError::InvalidGroupId)
    );
    assert_eq!(
        first
            .commit("g", ("", None, -1), 8, vec![("t\0u".into(), 0, committed)])
            .await,
        Err(ResponseError::UnknownTopicOrPartition)
    );
    assert!(first.list().is_empty());
}

#[compio::test]
async fn a_stopped_coordinator_answers_parked_joins_and_writes_nothing_more() {
    // Shutdown: a JoinGroup waiting for the initial delay is answered COORDINATOR_NOT_AVAILABLE at
    // once, and timers or commits after the stop leave the offsets log as it was (it is about to
    // close; a write then would fail with "partition log is closed").
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (log, coordinator) = coordinator(dir.path(), &metadata).await;
    let joining = compio::runtime::spawn({
        let coordinator = Rc::clone(&coordinator);
        async move { coordinator.join("g".into(), classic_join()).await }
    });
    compio::time::sleep(Duration::from_millis(20)).await;
    let end_before = log.high_watermark();
    coordinator.stop();
    let answer = joining.await.unwrap();
    assert_eq!(answer.error, Some(ResponseError::CoordinatorNotAvailable));
    compio::time::sleep(Duration::from_millis(
        INITIAL_REBALANCE_DELAY_MS as u64 + 50,
    ))
    .await;
    coordinator.tick().await;
    let committed = CommittedOffset {
        offset: 1,
        leader_epoch: -1,
        metadata: None,
        commit_ms: 0,
    };
    let refused = coordinator
        .commit(
            "simple",
            ("", None, -1),
            8,
            vec![("t".into(), 0, committed)],
        )
        .await;
    assert_eq!(refused, Err(ResponseError::CoordinatorNotAvailable));
    assert_eq!(
        log.high_watermark(),
        end_before,
        "nothing written after the stop"
    );
    assert!(coordinator.is_stopped());
}

#[compio::test]
async fn replay_refuses_a_batch_that_runs_past_the_bytes_without_panicking() {
    // Found while writing the offsets_replay fuzz target: a batch whose length field runs past
    // the bytes held was sliced unchecked. Now it is an error at its position, after the batches before it applied.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, coordinator) = coordinator(dir.path(), &metadata).await;
    let committed = CommittedOffset {
        offset: 5,
        leader_epoch: 0,
        metadata: None,
        commit_ms: 1,
    };
    let records = vec![(
        super::offsets_log::offset_key("g", "t", 0),
        Some(serde_json::to_vec(&committed).unwrap()),
    )];
    let whole = super::offsets_log::encode_records(&records, 1 << 20, 1);
    let mut bytes = whole.to_vec();
    bytes.extend_from_slice(&whole[..whole.len() - 1]);
    let (position, _) = coordinator.replay_batches(&bytes).unwrap_err();
    assert_eq!(position, whole.len());
    let fetched = coordinator.fetch_offsets("g", Some(vec![("t".to_string(), vec![0])]));
    assert_eq!(
        fetched[0].2.as_ref().map(|committed| committed.offset),
        Some(5)
    );
}

#[compio::test]
async fn pending_transactional_offsets_are_unstable_until_their_marker_and_a_recovered_end_adds_none(
) {
    // KIP-447's view (a group's partitions with pending offsets, over every producer, never
    // another group's), and decision 0022's group side: ending a recovered transaction whose
    // marker already landed appends nothing; one with pending offsets writes its marker.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (log, first) = coordinator(dir.path(), &metadata).await;
    let offset = |offset| CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: None,
        commit_ms: 0,
    };
    let producer = |producer_id| TxnProducer {
        producer_id,
        producer_epoch: 0,
    };
    let (a, b) = (producer(1), producer(2));
    let pending = |group: &str| -> Vec<(String, i32)> {
        first.pending_txn_partitions(group).into_iter().collect()
    };
    let commits = [("g", a, 0, 5), ("g", b, 1, 6), ("h", b, 2, 7)];
    for (group, producer, partition, at) in commits {
        let commit = vec![("t".to_string(), partition, offset(at))];
        first
            .txn_commit(group, producer, ("", None, -1), commit)
            .await
            .unwrap();
    }
    assert_eq!(pending("g"), vec![("t".into(), 0), ("t".into(), 1)]);
    assert_eq!(pending("h"), vec![("t".into(), 2)]);
    assert!(pending("other").is_empty());

    first
        .end_txn_offsets(a, MarkerType::Commit, false)
        .await
        .unwrap();
    assert_eq!(pending("g"), vec![("t".into(), 1)]);
    let end = log.high_watermark();
    first
        .end_txn_offsets(a, MarkerType::Commit, true)
        .await
        .unwrap();
    assert_eq!(
        log.high_watermark(),
        end,
        "a landed marker is not written again"
    );
    first
        .end_txn_offsets(b, MarkerType::Abort, true)
        .await
        .unwrap();
    assert!(log.high_watermark() > end, "a missing marker is written");
    assert!(pending("g").is_empty() && pending("h").is_empty());

    drop(first);
    log.close().await.unwrap();
    drop(log);
    let (_log, second) = coordinator(dir.path(), &metadata).await;
    assert!(second.pending_txn_partitions("g").is_empty());
    let wanted = Some(vec![("t".to_string(), vec![0, 1])]);
    let fetched: Vec<Option<i64>> = second
        .fetch_offsets("g", wanted)
        .into_iter()
        .map(|(_, _, committed)| committed.map(|c| c.offset))
        .collect();
    assert_eq!(
        fetched,
        vec![Some(5), None],
        "committed by a, aborted for b"
    );
}

#[compio::test]
async fn a_join_while_the_group_is_being_deleted_joins_a_new_group() {
    // DeleteGroups checks the group is empty, then waits for its tombstone to be durable: a
    // JoinGroup in that wait must not be parked in a group the deletion then drops (its answer
    // would never come, and the client waits out its whole rebalance timeout).
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    let (member_id, _) = stable_classic_group(&first).await;
    let left = first.leave("classic", vec![(member_id, None)]).await;
    assert_eq!(left, vec![None]);
    let mut deleting = std::pin::pin!(first.delete("classic"));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        deleting.as_mut().poll(&mut context).is_pending(),
        "the deletion waits for its tombstone"
    );
    let joining = compio::runtime::spawn({
        let first = Rc::clone(&first);
        async move { first.join("classic".into(), classic_join()).await }
    });
    // Let the join run up to its wait for the initial rebalance delay.
    compio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(deleting.await, Ok(()));
    compio::time::sleep(Duration::from_millis(
        INITIAL_REBALANCE_DELAY_MS as u64 + 50,
    ))
    .await;
    first.tick().await;
    let group = first.describe("classic").expect("the joiner's group");
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
    let joined = joining.await.unwrap();
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation_id, 1, "a new group's first generation");
}

fn offset(offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: None,
        commit_ms: 0,
    }
}

#[compio::test]
async fn a_commit_while_the_group_is_being_deleted_is_kept_in_memory_as_in_the_log() {
    // The commit's record lands after the deletion's tombstones: it must not be dropped from
    // memory by the deletion, to come back at a restart.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (log, first) = coordinator(dir.path(), &metadata).await;
    let commit = |coordinator: &Rc<Coordinator>, at: i64| {
        let coordinator = Rc::clone(coordinator);
        async move {
            let commits = vec![("t".to_string(), 0, offset(at))];
            coordinator
                .commit("simple", ("", None, -1), 8, commits)
                .await
        }
    };
    assert_eq!(commit(&first, 5).await, Ok(()));
    {
        let mut deleting = std::pin::pin!(first.delete("simple"));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(deleting.as_mut().poll(&mut context).is_pending());
        let committing = compio::runtime::spawn(commit(&first, 9));
        compio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(deleting.await, Ok(()));
        assert_eq!(committing.await.unwrap(), Ok(()));
    }
    let fetched = |coordinator: &Coordinator| {
        let all = coordinator.fetch_offsets("simple", None);
        all.first()
            .and_then(|(_, _, c)| c.as_ref().map(|c| c.offset))
    };
    assert_eq!(fetched(&first), Some(9));
    drop(first);
    log.close().await.unwrap();
    drop(log);
    let (_log, second) = coordinator(dir.path(), &metadata).await;
    assert_eq!(fetched(&second), Some(9));
}

#[compio::test]
async fn a_deletion_whose_tombstones_cannot_be_written_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    let commits = vec![("t".to_string(), 0, offset(5))];
    let committed = first.commit("simple", ("", None, -1), 8, commits).await;
    assert_eq!(committed, Ok(()));
    first.failing_writes.set(1);
    assert_eq!(
        first.delete("simple").await,
        Err(ResponseError::CoordinatorNotAvailable)
    );
    assert_eq!(first.fetch_offsets("simple", None).len(), 1);
}

#[compio::test]
async fn a_consumer_member_joining_while_a_classic_join_takes_the_id_over_keeps_it() {
    // A classic JoinGroup takes an empty consumer group's id over: it writes the consumer
    // group's tombstones, then makes the classic group. A consumer member joining in that wait
    // owns the id (its records follow the tombstones): the classic join is refused, as it would
    // be had the member come first, and the id stays one protocol's.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    let joined = first
        .consumer_heartbeat("x".into(), consumer_join("a"))
        .await;
    assert!(joined.is_ok());
    let leave = HeartbeatRequest {
        member_epoch: -1,
        ..consumer_join("a")
    };
    assert!(first.consumer_heartbeat("x".into(), leave).await.is_ok());
    // Completes a classic join if one was parked (without the check, it would be).
    let ticking = compio::runtime::spawn({
        let first = Rc::clone(&first);
        async move {
            let delay_ms = INITIAL_REBALANCE_DELAY_MS as u64 + 100;
            compio::time::sleep(Duration::from_millis(delay_ms)).await;
            first.tick().await;
        }
    });
    let classic = {
        let mut classic = std::pin::pin!(first.join("x".into(), classic_join()));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(classic.as_mut().poll(&mut context).is_pending());
        let member = first
            .consumer_heartbeat("x".into(), consumer_join("b"))
            .await;
        assert!(member.is_ok());
        classic.await
    };
    assert_eq!(
        classic.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    assert!(first
        .describe("x")
        .is_none_or(|group| group.members.is_empty()));
    assert!(first.consumer_group("x").unwrap().members.contains_key("b"));
    ticking.await.unwrap();
}

#[compio::test]
async fn a_commit_while_its_offset_is_being_deleted_is_kept_in_memory_as_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    let commit = |coordinator: &Rc<Coordinator>, at: i64| {
        let coordinator = Rc::clone(coordinator);
        async move {
            let commits = vec![("t".to_string(), 0, offset(at))];
            coordinator
                .commit("simple", ("", None, -1), 8, commits)
                .await
        }
    };
    assert_eq!(commit(&first, 5).await, Ok(()));
    {
        let partitions = vec![("t".to_string(), 0)];
        let mut deleting = std::pin::pin!(first.delete_offsets("simple", partitions));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(deleting.as_mut().poll(&mut context).is_pending());
        let committing = compio::runtime::spawn(commit(&first, 9));
        compio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(deleting.await, Ok(vec![None]));
        assert_eq!(committing.await.unwrap(), Ok(()));
    }
    let all = first.fetch_offsets("simple", None);
    let offsets: Vec<i64> = all
        .iter()
        .filter_map(|(_, _, c)| c.as_ref())
        .map(|c| c.offset)
        .collect();
    assert_eq!(offsets, vec![9]);
}

#[compio::test]
async fn a_transactional_commit_of_a_fenced_consumer_group_member_is_refused() {
    // KIP-447 over KIP-848: a producer's TxnOffsetCommit carries its consumer's member id and
    // epoch; a zombie's (gone, or an old epoch) must not overwrite the new owner's offsets.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    let joined = first
        .consumer_heartbeat("c".into(), consumer_join("m"))
        .await;
    let epoch = joined.unwrap().member_epoch;
    let producer = TxnProducer {
        producer_id: 1,
        producer_epoch: 0,
    };
    let commit = |member: &'static str, epoch: i32| {
        let commits = vec![("t".to_string(), 0, offset(7))];
        first.txn_commit("c", producer, (member, None, epoch), commits)
    };
    assert_eq!(
        commit("m", epoch + 1).await,
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        commit("gone", epoch).await,
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(commit("m", epoch).await, Ok(()));
}
