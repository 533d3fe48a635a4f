//! Pending transactional offsets (txn_offsets.rs) and topic deletion, over a real offsets log.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use ringtail_engine::{TopicMeta, TopicRegistry};

use super::coordinator_tests::{coordinator, metadata_with_topic};
use super::CommittedOffset;
use crate::metadata::Metadata;
use crate::txn::marker::{MarkerType, TxnProducer};

fn committed(offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: None,
        commit_ms: 0,
    }
}

/// Publishes the topics `names` (4 partitions each) as the whole metadata, as a topic creation or
/// deletion does: the registry is kept in a directory of its own.
async fn publish_topics(metadata: &Metadata, names: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = TopicRegistry::load(dir.path()).await.unwrap();
    for name in names {
        registry.insert(TopicMeta::new(*name, 4, BTreeMap::new()));
    }
    metadata.publish(&registry).unwrap();
}

fn offsets_of(coordinator: &super::Coordinator, group: &str, topic: &str) -> Vec<Option<i64>> {
    coordinator
        .fetch_offsets(group, Some(vec![(topic.to_string(), vec![0, 1])]))
        .into_iter()
        .map(|(_, _, committed)| committed.map(|c| c.offset))
        .collect()
}

#[compio::test]
async fn a_deleted_topics_pending_transactional_offsets_are_dropped_and_stay_dropped() {
    // Kafka's OffsetMetadataManager.onPartitionsDeleted tombstones the deleted partitions'
    // offsets, committed and pending transactional ones (GroupMetadata.removeOffsets before
    // it): a transaction committed after the topic was deleted (and made again under its name)
    // must not give the new topic the old one's offsets. Other topics' pending offsets stay.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    publish_topics(&metadata, &["t", "u"]).await;
    let (log, first) = coordinator(dir.path(), &metadata).await;
    let producer = TxnProducer {
        producer_id: 7,
        producer_epoch: 0,
    };
    let commits = vec![
        ("t".to_string(), 0, committed(40)),
        ("t".to_string(), 1, committed(41)),
        ("u".to_string(), 0, committed(50)),
    ];
    first
        .txn_commit("g", producer, ("", None, -1), commits)
        .await
        .unwrap();
    first.forget_topic("t").await;
    assert_eq!(
        first
            .pending_txn_partitions("g")
            .into_iter()
            .collect::<Vec<_>>(),
        vec![("u".to_string(), 0)],
        "only the kept topic's offset is pending"
    );
    // The topic made again: the transaction adds an offset of the new one, then commits.
    let again = vec![("t".to_string(), 1, committed(3))];
    first
        .txn_commit("g", producer, ("", None, -1), again)
        .await
        .unwrap();
    first
        .end_txn_offsets(producer, MarkerType::Commit, false)
        .await
        .unwrap();
    assert_eq!(offsets_of(&first, "g", "t"), vec![None, Some(3)]);
    assert_eq!(offsets_of(&first, "g", "u"), vec![Some(50), None]);

    // The same after a restart: the replay of the log does not bring the old offsets back.
    drop(first);
    log.close().await.unwrap();
    drop(log);
    let (_log, second) = coordinator(dir.path(), &metadata).await;
    assert_eq!(offsets_of(&second, "g", "t"), vec![None, Some(3)]);
    assert_eq!(offsets_of(&second, "g", "u"), vec![Some(50), None]);
}

#[compio::test]
async fn a_deletion_before_a_restart_drops_pending_offsets_replayed_later() {
    // The pending offset's record is in the log before the deletion's tombstone: the replay
    // must see it dropped, so the transaction recovered after the restart commits nothing of it,
    // and still gets its marker (the offsets log's last stable offset waits for it).
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (log, first) = coordinator(dir.path(), &metadata).await;
    let producer = TxnProducer {
        producer_id: 8,
        producer_epoch: 0,
    };
    let commits = vec![("t".to_string(), 0, committed(40))];
    first
        .txn_commit("g", producer, ("", None, -1), commits)
        .await
        .unwrap();
    first.forget_topic("t").await;
    drop(first);
    log.close().await.unwrap();
    drop(log);
    let (_log, second) = coordinator(dir.path(), &metadata).await;
    assert!(second.pending_txn_partitions("g").is_empty());
    let log = second.log();
    assert!(log.last_stable_offset() < log.high_watermark());
    second
        .end_txn_offsets(producer, MarkerType::Commit, true)
        .await
        .unwrap();
    assert_eq!(offsets_of(&second, "g", "t"), vec![None, None]);
    assert_eq!(
        log.last_stable_offset(),
        log.high_watermark(),
        "the marker is written although no offset of it is left"
    );
}

#[compio::test]
async fn a_deletion_while_a_txn_offset_commit_is_written_drops_that_offset_too() {
    // TxnOffsetCommit checks its topic exists, then writes the pending offset; a DeleteTopics
    // whose cleanup runs while that write is under way must drop it as well (Kafka's
    // onPartitionsDeleted sees every pending offset of the topic). The offset was put in memory
    // only after its write, so the cleanup missed it and a later COMMIT gave the deleted (or
    // recreated) topic that offset; the replay of the log brought it back too.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (log, first) = coordinator(dir.path(), &metadata).await;
    let producer = TxnProducer {
        producer_id: 9,
        producer_epoch: 0,
    };
    let commits = vec![("t".to_string(), 0, committed(40))];
    {
        let mut writing = std::pin::pin!(first.txn_commit("g", producer, ("", None, -1), commits));
        assert!(
            futures_util::poll!(writing.as_mut()).is_pending(),
            "the write is under way (an fsync) when the deletion runs"
        );
        first.forget_topic("t").await;
        writing.await.unwrap();
    }
    assert!(first.pending_txn_partitions("g").is_empty());
    first
        .end_txn_offsets(producer, MarkerType::Commit, false)
        .await
        .unwrap();
    assert_eq!(offsets_of(&first, "g", "t"), vec![None, None]);
    drop(first);
    log.close().await.unwrap();
    drop(log);
    let (_log, second) = coordinator(dir.path(), &metadata).await;
    assert_eq!(
        offsets_of(&second, "g", "t"),
        vec![None, None],
        "after a restart"
    );
}

#[compio::test]
async fn a_txn_offset_commit_reaching_the_group_coordinator_after_its_topic_is_deleted_stores_nothing(
) {
    // The TxnOffsetCommit handler checks the topic on its shard, then hops to the transaction
    // and group coordinators; a DeleteTopics can remove the topic and run its offsets cleanup
    // (forget_topic) during those hops. The offset was then stored for the deleted topic, kept
    // pending, and a COMMIT gave it (or a topic made again under its name) that offset. Kafka
    // never keeps a deleted partition's offsets. Here the deletion is done (metadata published,
    // cleanup run) before the commit reaches the group coordinator.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    let producer = TxnProducer {
        producer_id: 11,
        producer_epoch: 0,
    };
    publish_topics(&metadata, &[]).await;
    first.forget_topic("t").await;
    let commits = vec![("t".to_string(), 0, committed(40))];
    assert_eq!(
        first
            .txn_commit("g", producer, ("", None, -1), commits)
            .await,
        Err(ResponseError::UnknownTopicOrPartition)
    );
    assert!(first.pending_txn_partitions("g").is_empty());
    first
        .end_txn_offsets(producer, MarkerType::Commit, false)
        .await
        .unwrap();
    assert_eq!(offsets_of(&first, "g", "t"), vec![None, None]);
}
