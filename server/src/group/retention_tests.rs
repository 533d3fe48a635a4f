//! Offset retention over a real offsets log (retention.rs): which groups expire, and that they
//! stay gone after a restart.
#![forbid(unsafe_code)]

use super::coordinator_tests::{consumer_join, coordinator, metadata_with_topic};
use super::CommittedOffset;

const RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

fn committed(offset: i64, commit_ms: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: None,
        commit_ms,
    }
}

#[compio::test]
async fn groups_without_members_expire_a_retention_after_their_last_commit_and_stay_gone() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (log, first) = coordinator(dir.path(), &metadata).await;
    let now = ringtail_engine::log::now_ms();
    let commit = |group: &'static str, offset: i64, commit_ms: i64| {
        let first = std::rc::Rc::clone(&first);
        async move {
            let offsets = vec![("t".to_string(), 0, committed(offset, commit_ms))];
            first.commit(group, ("", None, -1), 8, offsets).await
        }
    };
    // "old" committed long ago, "recent" half a retention after the first pass, "busy" has a
    // member.
    commit("old", 1, now - 2 * RETENTION_MS).await.unwrap();
    commit("recent", 2, now + RETENTION_MS / 2).await.unwrap();
    commit("busy", 3, now - 2 * RETENTION_MS).await.unwrap();
    first
        .consumer_heartbeat("busy".into(), consumer_join(""))
        .await
        .unwrap();
    // The first pass only notes since when each group is without members: none expires before
    // a whole retention after it, however old its commits (the pass keeps that time in memory).
    assert_eq!(first.expire_groups(now, RETENTION_MS).await, 0);
    assert_eq!(
        first
            .expire_groups(now + RETENTION_MS - 1, RETENTION_MS)
            .await,
        0
    );
    assert_eq!(
        first.expire_groups(now + RETENTION_MS, RETENTION_MS).await,
        1
    );
    let offset_of = |coordinator: &super::Coordinator, group: &str| {
        let fetched = coordinator.fetch_offsets(group, Some(vec![("t".to_string(), vec![0])]));
        fetched[0].2.as_ref().map(|committed| committed.offset)
    };
    assert_eq!(offset_of(&first, "old"), None, "expired");
    assert_eq!(
        offset_of(&first, "recent"),
        Some(2),
        "committed within the retention"
    );
    assert_eq!(
        offset_of(&first, "busy"),
        Some(3),
        "a group with members keeps its offsets"
    );
    // A later commit starts its retention again.
    commit("recent", 4, now + RETENTION_MS).await.unwrap();
    let later = now + 2 * RETENTION_MS - 1;
    assert_eq!(first.expire_groups(later, RETENTION_MS).await, 0);
    assert_eq!(offset_of(&first, "recent"), Some(4));

    // The expiry was written: a restart does not bring "old" back.
    drop(first);
    drop(log);
    let (_log, second) = coordinator(dir.path(), &metadata).await;
    assert_eq!(offset_of(&second, "old"), None);
    assert_eq!(offset_of(&second, "recent"), Some(4));
    assert_eq!(offset_of(&second, "busy"), Some(3));
}

#[compio::test]
async fn an_empty_group_without_offsets_goes_at_the_next_pass() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, first) = coordinator(dir.path(), &metadata).await;
    let now = ringtail_engine::log::now_ms();
    // "left" had a member that left without committing; "member" still has one.
    for group in ["left", "member"] {
        first
            .consumer_heartbeat(group.into(), consumer_join("a"))
            .await
            .unwrap();
    }
    let leave = super::consumer::HeartbeatRequest {
        member_epoch: -1,
        ..consumer_join("a")
    };
    first
        .consumer_heartbeat("left".into(), leave)
        .await
        .unwrap();
    let listed = |coordinator: &super::Coordinator| {
        let mut ids: Vec<String> = coordinator.list().into_iter().map(|g| g.group_id).collect();
        ids.sort();
        ids
    };
    assert_eq!(listed(&first), ["left", "member"]);
    assert_eq!(first.expire_groups(now, RETENTION_MS).await, 1);
    assert_eq!(listed(&first), ["member"]);
}
