//! Regex subscriptions resolved once per group, principal and view version: the same results as
//! resolving at every heartbeat, without the walk over every topic when nothing changed.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ringtail_engine::{TopicMeta, TopicRegistry};

use super::super::assignor::TopicCounts;
use super::super::state::{ConsumerGroupConfig, HeartbeatRequest};
use super::super::ConsumerGroup;
use super::TopicView;
use crate::acl::Identity;
use crate::group::coordinator_tests::{consumer_join, coordinator, metadata_with_topic};

const CONFIG: ConsumerGroupConfig = ConsumerGroupConfig {
    session_timeout_ms: 60_000,
    heartbeat_interval_ms: 100,
    classic_min_session_timeout_ms: crate::group::SESSION_TIMEOUT_MS_MIN,
    classic_max_session_timeout_ms: crate::group::SESSION_TIMEOUT_MS_MAX,
    classic_initial_rebalance_delay_ms: crate::group::state::INITIAL_REBALANCE_DELAY_MS,
    bounds: super::super::group_config::ConsumerBounds::KAFKA,
};

fn counts(topics: &[(&str, i32)]) -> TopicCounts {
    topics
        .iter()
        .map(|(name, n)| (name.to_string(), *n))
        .collect()
}

fn regex_join(member_id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: member_id.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 5_000,
        subscribed_topic_regex: Some("t.*".into()),
        ..HeartbeatRequest::default()
    }
}

fn beat(group: &ConsumerGroup, member_id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: member_id.to_string(),
        member_epoch: group.members[member_id].member_epoch,
        rebalance_timeout_ms: -1,
        ..HeartbeatRequest::default()
    }
}

fn identity(principal: &str) -> Option<Identity> {
    Some(Identity::new(principal, "127.0.0.1".parse().unwrap()))
}

fn subscribed(group: &ConsumerGroup) -> Vec<&str> {
    group.subscribed_topics.keys().map(String::as_str).collect()
}

#[test]
fn a_regex_is_resolved_once_per_principal_until_the_topics_or_the_acls_change() {
    let mut group = ConsumerGroup::new("g");
    let no_secret = |_: &Identity, topic: &str| topic != "t-secret";
    let everything = |_: &Identity, _: &str| true;
    let view = |counts, describable, version| TopicView {
        counts,
        describable,
        version: Some(version),
    };
    let first = counts(&[("t1", 2), ("x", 1)]);
    let v1 = view(&first, &everything, (1, 1));
    // Two members of one principal share a resolution; another principal has its own.
    for (member, who) in [
        ("a", "User:alice"),
        ("b", "User:alice"),
        ("c", "User:carol"),
    ] {
        group
            .heartbeat_as(&regex_join(member), identity(who), &v1, &CONFIG, 0)
            .unwrap();
    }
    assert_eq!(group.regex_cache.resolutions(), 2);
    for now in 1..=10 {
        for (member, who) in [
            ("a", "User:alice"),
            ("b", "User:alice"),
            ("c", "User:carol"),
        ] {
            let request = beat(&group, member);
            group
                .heartbeat_as(&request, identity(who), &v1, &CONFIG, now)
                .unwrap();
        }
    }
    assert_eq!(
        group.regex_cache.resolutions(),
        2,
        "nothing changed: no resolution again"
    );
    assert_eq!(subscribed(&group), ["t1"]);

    // A topic created: the next heartbeat resolves again and subscribes to it.
    let created = counts(&[("t1", 2), ("t2", 3), ("t-secret", 1), ("x", 1)]);
    let v2 = view(&created, &everything, (2, 1));
    let epoch = group.group_epoch;
    group
        .heartbeat_as(&beat(&group, "a"), identity("User:alice"), &v2, &CONFIG, 20)
        .unwrap();
    assert_eq!(group.regex_cache.resolutions(), 4);
    assert_eq!(subscribed(&group), ["t-secret", "t1", "t2"]);
    assert!(group.group_epoch > epoch);
    let assigned: usize = group
        .target
        .values()
        .flat_map(|a| a.values())
        .map(|p| p.len())
        .sum();
    assert_eq!(assigned, 2 + 3 + 1);

    // An ACL change: re-resolved, the topic no principal may describe now leaves.
    let v3 = view(&created, &no_secret, (2, 2));
    group
        .heartbeat_as(&beat(&group, "b"), identity("User:alice"), &v3, &CONFIG, 21)
        .unwrap();
    assert_eq!(group.regex_cache.resolutions(), 6);
    assert_eq!(subscribed(&group), ["t1", "t2"]);

    // A topic deleted: it leaves the subscription and the target assignment.
    let deleted = counts(&[("t2", 3), ("x", 1)]);
    let v4 = view(&deleted, &no_secret, (3, 2));
    group
        .heartbeat_as(&beat(&group, "c"), identity("User:carol"), &v4, &CONFIG, 22)
        .unwrap();
    assert_eq!(subscribed(&group), ["t2"]);
    assert!(group
        .target
        .values()
        .all(|assignment| assignment.keys().all(|topic| topic == "t2")));
    for _ in 0..5 {
        for (member, who) in [
            ("a", "User:alice"),
            ("b", "User:alice"),
            ("c", "User:carol"),
        ] {
            let request = beat(&group, member);
            group
                .heartbeat_as(&request, identity(who), &v4, &CONFIG, 23)
                .unwrap();
        }
    }
    assert_eq!(group.regex_cache.resolutions(), 8);
}

#[test]
fn an_untracked_view_resolves_every_time() {
    // Without a version (no way to know what changed) nothing is reused.
    let mut group = ConsumerGroup::new("g");
    let topics = counts(&[("t1", 1)]);
    group
        .heartbeat(&regex_join("a"), &topics, &CONFIG, 0)
        .unwrap();
    let before = group.regex_cache.resolutions();
    group
        .heartbeat(&beat(&group, "a"), &topics, &CONFIG, 1)
        .unwrap();
    assert!(group.regex_cache.resolutions() > before);
}

#[compio::test]
async fn the_coordinator_picks_up_created_and_deleted_topics_at_the_next_heartbeat() {
    // Through the coordinator: the metadata's version tells the groups' caches what changed.
    let dir = tempfile::tempdir().unwrap();
    let metadata = metadata_with_topic(dir.path()).await;
    let (_log, coordinator) = coordinator(dir.path(), &metadata).await;
    let mut join = consumer_join("m");
    join.subscribed_topic_names = None;
    join.subscribed_topic_regex = Some("t.*".into());
    let joined = coordinator
        .consumer_heartbeat("g".into(), join)
        .await
        .unwrap();
    let topics_of = |group: &ConsumerGroup| -> Vec<String> {
        group.subscribed_topics.keys().cloned().collect()
    };
    assert_eq!(topics_of(&coordinator.consumer_group("g").unwrap()), ["t"]);
    let heartbeat = |epoch| HeartbeatRequest {
        member_id: joined.member_id.clone(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        ..HeartbeatRequest::default()
    };
    let publish = |names: &[&str]| {
        let registry_dir = tempfile::tempdir().unwrap();
        let metadata = Arc::clone(&metadata);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        async move {
            let mut registry = TopicRegistry::load(registry_dir.path()).await.unwrap();
            for name in names {
                registry.insert(TopicMeta::new(&name, 2, BTreeMap::new()));
            }
            metadata.publish(&registry).unwrap();
        }
    };
    publish(&["t", "t-new", "other"]).await;
    let answer = coordinator
        .consumer_heartbeat("g".into(), heartbeat(joined.member_epoch))
        .await
        .unwrap();
    assert_eq!(
        topics_of(&coordinator.consumer_group("g").unwrap()),
        ["t", "t-new"]
    );
    publish(&["t-new"]).await;
    coordinator
        .consumer_heartbeat("g".into(), heartbeat(answer.member_epoch))
        .await
        .unwrap();
    let group = coordinator.consumer_group("g").unwrap();
    assert_eq!(topics_of(&group), ["t-new"]);
    let target = &group.target[&joined.member_id];
    assert_eq!(target.keys().collect::<Vec<_>>(), ["t-new"]);
}

#[test]
fn a_regex_matches_internal_topics_and_names_starting_with_underscores_as_kafka() {
    let mut group = ConsumerGroup::new("g");
    let everything = |_: &Identity, _: &str| true;
    let topics = counts(&[
        ("__consumer_offsets", 50),
        ("__transaction_state", 50),
        ("__user-topic", 1),
        ("t1", 1),
    ]);
    let view = TopicView {
        counts: &topics,
        describable: &everything,
        version: Some((1, 1)),
    };
    let join = HeartbeatRequest {
        subscribed_topic_regex: Some(".*".into()),
        ..regex_join("a")
    };
    group
        .heartbeat_as(&join, identity("User:alice"), &view, &CONFIG, 0)
        .unwrap();
    assert_eq!(
        subscribed(&group),
        [
            "__consumer_offsets",
            "__transaction_state",
            "__user-topic",
            "t1"
        ]
    );
}

#[test]
fn the_subscribed_topics_are_recomputed_only_when_members_or_the_view_change() {
    // The group's subscribed topics are kept between heartbeats (not rebuilt from every member
    // at each), and after each step they are what a full walk over the members finds.
    let mut group = ConsumerGroup::new("g");
    let everything = |_: &Identity, _: &str| true;
    let no_t2 = |_: &Identity, topic: &str| topic != "t2";
    fn view<'a>(
        counts: &'a TopicCounts,
        describable: super::Describable<'a>,
        version: (u64, u64),
    ) -> TopicView<'a> {
        TopicView {
            counts,
            describable,
            version: Some(version),
        }
    }
    let first = counts(&[("a", 1), ("b", 2), ("t1", 3), ("x", 1)]);
    let v1 = view(&first, &everything, (1, 1));
    let check = |group: &mut ConsumerGroup, view: &TopicView<'_>, expected: &[&str]| {
        let walked = group.subscribed_topic_counts(view);
        assert_eq!(group.subscribed_topics, walked, "kept set = full walk");
        assert_eq!(subscribed(group), expected);
    };
    let names = |member: &str, epoch: i32, topics: &[&str]| HeartbeatRequest {
        member_id: member.to_string(),
        member_epoch: epoch,
        rebalance_timeout_ms: 5_000,
        subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
        ..HeartbeatRequest::default()
    };
    let alice = || identity("User:alice");
    let beat_all = |group: &mut ConsumerGroup, view: &TopicView<'_>, now: i64| {
        for member in group.members.keys().cloned().collect::<Vec<_>>() {
            let request = beat(group, &member);
            group
                .heartbeat_as(&request, alice(), view, &CONFIG, now)
                .unwrap();
        }
    };

    // A member joins by name.
    group
        .heartbeat_as(&names("m1", 0, &["a"]), alice(), &v1, &CONFIG, 0)
        .unwrap();
    check(&mut group, &v1, &["a"]);
    let walks = group.subscribed_walks;
    beat_all(&mut group, &v1, 1);
    assert_eq!(group.subscribed_walks, walks, "nothing changed: no walk");

    // Another joins by regex.
    group
        .heartbeat_as(&regex_join("m2"), alice(), &v1, &CONFIG, 2)
        .unwrap();
    check(&mut group, &v1, &["a", "t1"]);

    // The first changes its subscription.
    let epoch = group.members["m1"].member_epoch;
    group
        .heartbeat_as(&names("m1", epoch, &["b"]), alice(), &v1, &CONFIG, 3)
        .unwrap();
    check(&mut group, &v1, &["b", "t1"]);
    let walks = group.subscribed_walks;
    beat_all(&mut group, &v1, 4);
    assert_eq!(group.subscribed_walks, walks, "nothing changed: no walk");

    // A topic created: the regex resolves it at the next heartbeat.
    let created = counts(&[("a", 1), ("b", 2), ("t1", 3), ("t2", 1), ("x", 1)]);
    let v2 = view(&created, &everything, (2, 1));
    beat_all(&mut group, &v2, 5);
    check(&mut group, &v2, &["b", "t1", "t2"]);

    // The ACLs change: the regex no longer matches what the principal can't describe.
    let v3 = view(&created, &no_t2, (2, 2));
    beat_all(&mut group, &v3, 6);
    check(&mut group, &v3, &["b", "t1"]);

    // The regex member's principal changes: it matches what the new one may describe.
    let only_alice_sees_t2 =
        |who: &Identity, topic: &str| who.principal() == "User:alice" || topic != "t2";
    let v4 = view(&created, &only_alice_sees_t2, (2, 3));
    beat_all(&mut group, &v4, 7);
    check(&mut group, &v4, &["b", "t1", "t2"]);
    let request = beat(&group, "m2");
    group
        .heartbeat_as(&request, identity("User:bob"), &v4, &CONFIG, 7)
        .unwrap();
    assert_eq!(subscribed(&group), ["b", "t1"], "bob may not see t2");
    let v3 = view(&created, &no_t2, (2, 4));

    // The regex member leaves: its topics go at the next heartbeat.
    let leave = HeartbeatRequest {
        member_id: "m2".into(),
        member_epoch: super::super::state::LEAVE_EPOCH,
        ..HeartbeatRequest::default()
    };
    group
        .heartbeat_as(&leave, alice(), &v3, &CONFIG, 7)
        .unwrap();
    beat_all(&mut group, &v3, 8);
    check(&mut group, &v3, &["b"]);
    let walks = group.subscribed_walks;
    beat_all(&mut group, &v3, 9);
    assert_eq!(group.subscribed_walks, walks, "nothing changed: no walk");
}
