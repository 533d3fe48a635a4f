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
