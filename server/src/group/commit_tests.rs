//! OffsetCommit's and TxnOffsetCommit's validation (generations, member ids, instance ids) as
//! Kafka's OffsetMetadataManager and its groups answer it, per version.

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use ringtail_engine::{LogConfig, PartitionLog};

use super::consumer::{ConsumerGroupConfig, HeartbeatRequest};
use super::coordinator_tests::{consumer_join, coordinator, metadata_with_topic};
use super::state::JoinRequest;
use super::{CommittedOffset, Coordinator};
use crate::metadata::Metadata;
use crate::txn::marker::TxnProducer;

fn offset(offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: None,
        commit_ms: 0,
    }
}

#[compio::test]
async fn a_commit_with_a_generation_to_a_group_that_does_not_exist_is_group_id_not_found_from_v9() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, coordinator) = coordinator(dir.path(), &metadata).await;
    let commit = |version: i16, generation: i32| {
        let commits = vec![("t".to_string(), 0, offset(5))];
        coordinator.commit("nobody", ("m", None, generation), version, commits)
    };
    assert_eq!(commit(9, 3).await, Err(ResponseError::GroupIdNotFound));
    assert_eq!(commit(10, 0).await, Err(ResponseError::GroupIdNotFound));
    // Before v9 Kafka keeps ILLEGAL_GENERATION for older clients.
    assert_eq!(commit(8, 3).await, Err(ResponseError::IllegalGeneration));
    assert_eq!(commit(2, 1).await, Err(ResponseError::IllegalGeneration));
    assert!(coordinator.fetch_offsets("nobody", None).is_empty());
    // Without a generation (a simple consumer, an admin) the commit creates the group.
    assert_eq!(commit(9, -1).await, Ok(()));
    // Now a group known by its commits (Kafka's empty "simple" group): the member is unknown.
    assert_eq!(commit(9, 3).await, Err(ResponseError::UnknownMemberId));
    assert_eq!(commit(7, 3).await, Err(ResponseError::UnknownMemberId));
    assert_eq!(commit(9, -1).await, Ok(()));
}

#[compio::test]
async fn a_transactional_commit_with_a_generation_to_a_group_that_does_not_exist_is_refused() {
    // Kafka's validateTransactionalOffsetCommit: ILLEGAL_GENERATION for a group that does not
    // exist, UNKNOWN_MEMBER_ID for one known only by its commits; -1 (a producer without the
    // consumer's group metadata) is not checked.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, coordinator) = coordinator(dir.path(), &metadata).await;
    let producer = TxnProducer {
        producer_id: 1,
        producer_epoch: 0,
    };
    let commit = |group: &'static str, generation: i32| {
        let commits = vec![("t".to_string(), 0, offset(3))];
        coordinator.txn_commit(group, producer, ("m", None, generation), commits)
    };
    assert_eq!(
        commit("nobody", 2).await,
        Err(ResponseError::IllegalGeneration)
    );
    let commits = vec![("t".to_string(), 0, offset(1))];
    assert_eq!(
        coordinator
            .commit("simple", ("", None, -1), 9, commits)
            .await,
        Ok(())
    );
    assert_eq!(
        commit("simple", 2).await,
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(commit("nobody", -1).await, Ok(()));
}

/// Publishes the topics `names` (4 partitions each, new ids) as the whole metadata, as a topic
/// creation or deletion does.
async fn publish_topics(metadata: &crate::metadata::Metadata, names: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = ringtail_engine::TopicRegistry::load(dir.path())
        .await
        .unwrap();
    for name in names {
        registry.insert(ringtail_engine::TopicMeta::new(
            *name,
            4,
            std::collections::BTreeMap::new(),
        ));
    }
    metadata.publish(&registry).unwrap();
}

fn offsets_of(coordinator: &super::Coordinator, topic: &str) -> Vec<Option<i64>> {
    coordinator
        .fetch_offsets("simple", Some(vec![(topic.to_string(), vec![0, 1])]))
        .into_iter()
        .map(|(_, _, committed)| committed.map(|c| c.offset))
        .collect()
}

#[compio::test]
async fn an_offset_commit_reaching_the_coordinator_after_its_topic_is_deleted_stores_nothing() {
    // The OffsetCommit handler checks the topic on its shard, then hops to the coordinator; a
    // DeleteTopics can remove the topic and run its offsets cleanup (forget_topic) meanwhile. The
    // offset was then stored for the deleted topic, and a topic made again under the name
    // resumed at it. Kafka never keeps a deleted partition's offsets.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    publish_topics(&metadata, &[]).await;
    first.forget_topic("t").await;
    let commits = vec![("t".to_string(), 0, offset(40))];
    assert_eq!(
        first.commit("simple", ("", None, -1), 8, commits).await,
        Err(ResponseError::UnknownTopicOrPartition)
    );
    publish_topics(&metadata, &["t"]).await;
    assert_eq!(offsets_of(&first, "t"), vec![None, None]);
}

#[compio::test]
async fn a_topic_deleted_and_made_again_while_an_offset_commit_is_written_starts_without_it() {
    // The cleanup runs while the commit's record is written (an fsync): it missed the offset,
    // put in memory after the write, and the topic made again under the name resumed at the
    // deleted one's offset, after a restart too.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (log, first) = coordinator(dir.path(), &metadata).await;
    let commits = vec![("t".to_string(), 0, offset(40))];
    {
        let mut writing = std::pin::pin!(first.commit("simple", ("", None, -1), 8, commits));
        assert!(
            futures_util::poll!(writing.as_mut()).is_pending(),
            "the write is under way (an fsync) when the deletion runs"
        );
        publish_topics(&metadata, &[]).await;
        first.forget_topic("t").await;
        publish_topics(&metadata, &["t"]).await;
        assert_eq!(writing.await, Err(ResponseError::UnknownTopicOrPartition));
    }
    assert_eq!(offsets_of(&first, "t"), vec![None, None]);
    drop(first);
    log.close().await.unwrap();
    drop(log);
    let (_log, second) = coordinator(dir.path(), &metadata).await;
    assert_eq!(
        offsets_of(&second, "t"),
        vec![None, None],
        "after a restart"
    );
}

/// A coordinator whose classic groups complete their first join at once (no initial delay), so a
/// lone member's join is answered without waiting for a timer.
async fn coordinator_without_delay(dir: &Path, metadata: &Arc<Metadata>) -> Rc<Coordinator> {
    let config = LogConfig {
        preallocate: false,
        ..LogConfig::default()
    };
    let (log, _) = PartitionLog::open(&dir.join("__consumer_offsets-0"), config)
        .await
        .unwrap();
    let config = ConsumerGroupConfig {
        classic_initial_rebalance_delay_ms: 0,
        ..ConsumerGroupConfig::default()
    };
    let coordinator = Coordinator::load(log, Arc::clone(metadata), config)
        .await
        .unwrap();
    Rc::new(coordinator)
}

/// A static member ("instance-1") joins the classic group `group_id`; returns its member id and
/// generation.
async fn classic_member(coordinator: &Coordinator, group_id: &str) -> (String, i32) {
    let join = JoinRequest {
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
    };
    let joined = coordinator.join(group_id.into(), join).await;
    assert_eq!(joined.error, None);
    (joined.member_id, joined.generation_id)
}

/// An OffsetCommit of one offset to `group_id` from `member` (id, instance id, generation).
async fn commit_as(
    coordinator: &Coordinator,
    group_id: &str,
    member: (&str, Option<&str>, i32),
    version: i16,
) -> Option<ResponseError> {
    let commits = vec![("t".to_string(), 0, offset(5))];
    let result = coordinator.commit(group_id, member, version, commits).await;
    result.err()
}

/// A TxnOffsetCommit of one offset to `group_id` from `member` (id, instance id, generation).
async fn txn_commit_as(
    coordinator: &Coordinator,
    group_id: &str,
    member: (&str, Option<&str>, i32),
) -> Option<ResponseError> {
    let producer = TxnProducer {
        producer_id: 1,
        producer_epoch: 0,
    };
    let commits = vec![("t".to_string(), 0, offset(6))];
    let result = coordinator
        .txn_commit(group_id, producer, member, commits)
        .await;
    result.err()
}

#[compio::test]
async fn a_commit_without_a_generation_to_an_empty_classic_group_is_kept_whatever_member_it_names()
{
    // Kafka's ClassicGroup.validateOffsetCommit: generation < 0 on an EMPTY group is an admin's
    // or a simple consumer's commit, accepted before the member id or instance id is looked at
    // (KAFKA-14201: a consumer with group.instance.id using assign() sends both).
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let coordinator = coordinator_without_delay(dir.path(), &metadata).await;
    let (member_id, _) = classic_member(&coordinator, "g").await;
    let left = coordinator
        .leave("g", vec![(member_id.clone(), Some("instance-1".into()))])
        .await;
    assert_eq!(left, vec![None]);
    for member in [
        ("someone", None, -1),
        ("someone", Some("instance-9"), -1),
        (member_id.as_str(), Some("instance-1"), -1),
        ("", None, -1),
    ] {
        assert_eq!(
            commit_as(&coordinator, "g", member, 9).await,
            None,
            "{member:?}"
        );
        assert_eq!(
            txn_commit_as(&coordinator, "g", member).await,
            None,
            "{member:?}"
        );
    }
}

#[compio::test]
async fn a_commit_without_a_generation_naming_a_member_of_a_classic_group_checks_it() {
    // Kafka's ClassicGroup.validateOffsetCommit on a group with members and generation -1: no
    // member id and no instance id is UNKNOWN_MEMBER_ID (OffsetCommit) or accepted
    // (TxnOffsetCommit, whose older versions carry neither); a named member is checked as any
    // commit's is: unknown (or an unknown instance) UNKNOWN_MEMBER_ID, an instance now held by
    // another id FENCED_INSTANCE_ID, a known member ILLEGAL_GENERATION (-1 is not its
    // generation).
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let coordinator = coordinator_without_delay(dir.path(), &metadata).await;
    let (member_id, generation) = classic_member(&coordinator, "g").await;
    let member = member_id.as_str();
    let unknown = Some(ResponseError::UnknownMemberId);
    let illegal = Some(ResponseError::IllegalGeneration);
    let fenced = Some(ResponseError::FencedInstanceId);
    for (named, txn_expected) in [
        (("", None, -1), None),
        (("nobody", None, -1), unknown),
        ((member, None, -1), illegal),
        ((member, Some("instance-1"), -1), illegal),
        ((member, Some("instance-9"), -1), unknown),
        (("nobody", Some("instance-1"), -1), fenced),
        (("", Some("instance-1"), -1), fenced),
    ] {
        let expected = if named.0.is_empty() && named.1.is_none() {
            unknown
        } else {
            txn_expected
        };
        let committed = commit_as(&coordinator, "g", named, 9).await;
        assert_eq!(committed, expected, "OffsetCommit from {named:?}");
        let txn_committed = txn_commit_as(&coordinator, "g", named).await;
        assert_eq!(
            txn_committed, txn_expected,
            "TxnOffsetCommit from {named:?}"
        );
    }
    // The member's own generation passes the member check; the group is handing out
    // assignments, which only OffsetCommit waits for.
    let current = (member, Some("instance-1"), generation);
    assert_eq!(
        commit_as(&coordinator, "g", current, 9).await,
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(txn_commit_as(&coordinator, "g", current).await, None);
}

#[compio::test]
async fn commits_without_an_epoch_to_consumer_groups_are_checked_as_kafka_checks_them() {
    // Kafka's ConsumerGroup.validateOffsetCommit: epoch < 0 on a group without members is
    // accepted whatever member it names; on a group with members a TxnOffsetCommit naming no
    // member (-1, "", no instance: KAFKA-18060) is accepted, any other is checked: an unknown
    // member UNKNOWN_MEMBER_ID, a known one with another epoch ILLEGAL_GENERATION
    // (TxnOffsetCommit) or STALE_MEMBER_EPOCH (OffsetCommit). A KIP-848 member's OffsetCommit
    // below v9 is UNSUPPORTED_VERSION.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let coordinator = coordinator_without_delay(dir.path(), &metadata).await;
    // "emptied": its only member left.
    coordinator
        .consumer_heartbeat("emptied".into(), consumer_join("a"))
        .await
        .unwrap();
    let leave = HeartbeatRequest {
        member_id: "a".into(),
        member_epoch: -1,
        ..HeartbeatRequest::default()
    };
    coordinator
        .consumer_heartbeat("emptied".into(), leave)
        .await
        .unwrap();
    let emptied = coordinator.consumer_group("emptied").unwrap();
    assert!(emptied.members.is_empty());
    for member in [("a", None, -1), ("someone", Some("instance-1"), -1)] {
        for version in [8, 9] {
            let committed = commit_as(&coordinator, "emptied", member, version).await;
            assert_eq!(committed, None, "{member:?} v{version}");
        }
        let txn_committed = txn_commit_as(&coordinator, "emptied", member).await;
        assert_eq!(txn_committed, None, "{member:?}");
    }

    let joined = coordinator
        .consumer_heartbeat("c".into(), consumer_join("m"))
        .await
        .unwrap();
    let epoch = joined.member_epoch;
    let unknown = Some(ResponseError::UnknownMemberId);
    for (named, expected) in [
        (("", None, -1), None),
        (("nobody", None, -1), unknown),
        (("m", None, -1), Some(ResponseError::IllegalGeneration)),
        (("", Some("instance-1"), -1), unknown),
        (("m", None, epoch), None),
    ] {
        let txn_committed = txn_commit_as(&coordinator, "c", named).await;
        assert_eq!(txn_committed, expected, "TxnOffsetCommit from {named:?}");
    }
    for (named, version, expected) in [
        (("", None, -1), 9, unknown),
        (("m", None, -1), 9, Some(ResponseError::StaleMemberEpoch)),
        (
            ("m", None, epoch),
            8,
            Some(ResponseError::UnsupportedVersion),
        ),
        (("m", None, epoch), 9, None),
    ] {
        let committed = commit_as(&coordinator, "c", named, version).await;
        assert_eq!(
            committed, expected,
            "OffsetCommit v{version} from {named:?}"
        );
    }
}
