//! OffsetCommit's validation against groups without members, per version, as Kafka's
//! OffsetMetadataManager answers it.

use kafka_protocol::error::ResponseError;

use super::coordinator_tests::{coordinator, metadata_with_topic};
use super::CommittedOffset;
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
        coordinator.txn_commit(group, producer, ("m", generation), commits)
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
