//! Fake-clock tests of the consumer group state machine.
#![forbid(unsafe_code)]

use super::super::heartbeat::SUBSCRIBED_TOPICS_MAX;
use super::*;

const CONFIG: ConsumerGroupConfig = ConsumerGroupConfig {
    session_timeout_ms: 1_000,
    heartbeat_interval_ms: 100,
    classic_min_session_timeout_ms: crate::group::SESSION_TIMEOUT_MS_MIN,
    classic_max_session_timeout_ms: crate::group::SESSION_TIMEOUT_MS_MAX,
    classic_initial_rebalance_delay_ms: crate::group::state::INITIAL_REBALANCE_DELAY_MS,
    bounds: ConsumerBounds::KAFKA,
};

fn topics() -> TopicCounts {
    [("t".to_string(), 6)].into_iter().collect()
}

fn join(member_id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: member_id.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 5_000,
        subscribed_topic_names: Some(vec!["t".to_string()]),
        owned: Some(Assignment::new()),
        ..HeartbeatRequest::default()
    }
}

/// A client: what it owns and its epoch, heartbeating as librdkafka does (it revokes what the
/// answer no longer lists and adopts what it lists).
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

impl Client {
    fn new(group: &mut ConsumerGroup, id: &str, now_ms: i64) -> Self {
        let response = group
            .heartbeat(&join(id), &topics(), &CONFIG, now_ms)
            .unwrap();
        Self {
            id: id.to_string(),
            epoch: response.member_epoch,
            owned: response.assignment.unwrap_or_default(),
        }
    }

    fn beat(&mut self, group: &mut ConsumerGroup, now_ms: i64) -> Result<(), HeartbeatError> {
        let request = HeartbeatRequest {
            member_id: self.id.clone(),
            member_epoch: self.epoch,
            rebalance_timeout_ms: -1,
            owned: Some(self.owned.clone()),
            ..HeartbeatRequest::default()
        };
        let response = group.heartbeat(&request, &topics(), &CONFIG, now_ms)?;
        self.epoch = response.member_epoch;
        if let Some(assignment) = response.assignment {
            self.owned = assignment;
        }
        Ok(())
    }

    fn count(&self) -> usize {
        self.owned.values().map(BTreeSet::len).sum()
    }
}

/// Heartbeats every client until the group is Stable, checking that no partition is ever owned
/// by two clients at once.
fn settle(group: &mut ConsumerGroup, clients: &mut [Client], now_ms: i64) {
    for _round in 0..10 {
        for client in clients.iter_mut() {
            client.beat(group, now_ms).unwrap();
            let mut seen = BTreeSet::new();
            for other in clients_owned(group) {
                for partition in other {
                    assert!(seen.insert(partition), "a partition has two owners");
                }
            }
        }
        if group.phase() == ConsumerGroupPhase::Stable {
            return;
        }
    }
    panic!("the group never settled: {group:?}");
}

fn clients_owned(group: &ConsumerGroup) -> Vec<Vec<(String, i32)>> {
    group
        .members
        .values()
        .map(|member| {
            member
                .assigned
                .iter()
                .chain(&member.revoking)
                .flat_map(|(topic, partitions)| partitions.iter().map(|p| (topic.clone(), *p)))
                .collect()
        })
        .collect()
}

#[test]
fn members_share_partitions_and_a_newcomer_waits_for_revocations() {
    // Three members get two partitions each; a fourth joins and only gets a partition once its
    // owner has revoked it, after which the spread is 1, 1, 2, 2.
    let mut group = ConsumerGroup::new("g");
    let mut clients: Vec<Client> = ["a", "b", "c"]
        .iter()
        .map(|id| Client::new(&mut group, id, 0))
        .collect();
    settle(&mut group, &mut clients, 10);
    let mut counts: Vec<usize> = clients.iter().map(Client::count).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![2, 2, 2]);
    let epoch_before = group.group_epoch;
    let newcomer = Client::new(&mut group, "d", 20);
    assert_eq!(group.group_epoch, epoch_before + 1);
    assert_eq!(
        newcomer.count(),
        0,
        "its partitions are still owned by others"
    );
    assert_eq!(group.phase(), ConsumerGroupPhase::Reconciling);
    clients.push(newcomer);
    settle(&mut group, &mut clients, 30);
    let mut counts: Vec<usize> = clients.iter().map(Client::count).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 1, 2, 2]);
    assert!(clients
        .iter()
        .all(|client| client.epoch == group.assignment_epoch));
    assert!(group.dirty.group && group.dirty.members.len() == 4);
}

#[test]
fn a_silent_member_expires_and_the_others_take_its_partitions() {
    // After the session timeout without heartbeats the member is removed; survivors reconcile.
    let mut group = ConsumerGroup::new("g");
    let mut clients: Vec<Client> = ["a", "b"]
        .iter()
        .map(|id| Client::new(&mut group, id, 0))
        .collect();
    settle(&mut group, &mut clients, 0);
    assert!(group.tick(999).is_empty());
    clients[0].beat(&mut group, 900).unwrap();
    assert_eq!(group.tick(1_000), vec!["b".to_string()]);
    clients.truncate(1);
    settle(&mut group, &mut clients, 1_100);
    assert_eq!(clients[0].count(), 6);
    // The removed member's next heartbeat is refused: it must rejoin with epoch 0.
    let stale = HeartbeatRequest {
        member_id: "b".into(),
        member_epoch: 2,
        ..HeartbeatRequest::default()
    };
    let err = group
        .heartbeat(&stale, &topics(), &CONFIG, 1_200)
        .unwrap_err();
    assert_eq!(err.error, ResponseError::UnknownMemberId);
}

#[test]
fn epochs_are_checked_and_a_lost_answer_is_forgiven() {
    // A higher epoch, or a lower one that is not the previous, is fenced; the previous epoch with
    // owned partitions inside the assignment is accepted.
    let mut group = ConsumerGroup::new("g");
    let mut clients = vec![Client::new(&mut group, "a", 0)];
    settle(&mut group, &mut clients, 0);
    clients.push(Client::new(&mut group, "b", 0));
    settle(&mut group, &mut clients, 0);
    let client = &clients[0];
    let member = &group.members["a"];
    assert!(member.previous_member_epoch > 0);
    let (epoch, previous) = (member.member_epoch, member.previous_member_epoch);
    let beat = |epoch: i32, owned: Option<Assignment>| HeartbeatRequest {
        member_id: "a".into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned,
        ..HeartbeatRequest::default()
    };
    let err = group
        .heartbeat(&beat(epoch + 1, None), &topics(), &CONFIG, 1)
        .unwrap_err();
    assert_eq!(err.error, ResponseError::FencedMemberEpoch);
    let ok = group
        .heartbeat(
            &beat(previous, Some(client.owned.clone())),
            &topics(),
            &CONFIG,
            1,
        )
        .unwrap();
    assert_eq!(ok.member_epoch, epoch);
    let err = group
        .heartbeat(&beat(previous, None), &topics(), &CONFIG, 1)
        .unwrap_err();
    assert_eq!(err.error, ResponseError::FencedMemberEpoch);
    // Rejoining with epoch 0 and the same id is a fresh start with the same partitions.
    let rejoined = group.heartbeat(&join("a"), &topics(), &CONFIG, 2).unwrap();
    assert_eq!(rejoined.assignment.unwrap(), client.owned);
}

#[test]
fn leaving_static_members_and_bad_requests() {
    // Epoch -1 leaves; a static member's -2 keeps its partitions until it comes back under a
    // new member id; its instance id can't be taken while in use; bad input is refused.
    let mut group = ConsumerGroup::new("g");
    let mut static_join = join("s1");
    static_join.instance_id = Some("instance".into());
    let first = group
        .heartbeat(&static_join, &topics(), &CONFIG, 0)
        .unwrap();
    assert_eq!(first.assignment.as_ref().map(|a| a["t"].len()), Some(6));
    let mut other = join("s2");
    other.instance_id = Some("instance".into());
    let err = group.heartbeat(&other, &topics(), &CONFIG, 0).unwrap_err();
    assert_eq!(err.error, ResponseError::UnreleasedInstanceId);
    let mut leave = static_join.clone();
    leave.member_epoch = STATIC_LEAVE_EPOCH;
    assert_eq!(
        group
            .heartbeat(&leave, &topics(), &CONFIG, 1)
            .unwrap()
            .member_epoch,
        STATIC_LEAVE_EPOCH
    );
    let epoch = group.group_epoch;
    let back = group.heartbeat(&other, &topics(), &CONFIG, 2).unwrap();
    assert_eq!(back.member_id, "s2");
    assert_eq!(back.assignment.unwrap()["t"].len(), 6);
    assert_eq!(
        group.group_epoch, epoch,
        "a replaced static member does not rebalance"
    );
    assert!(!group.members.contains_key("s1"));
    let mut gone = join("s2");
    gone.member_epoch = LEAVE_EPOCH;
    gone.instance_id = Some("instance".into());
    group.heartbeat(&gone, &topics(), &CONFIG, 3).unwrap();
    assert_eq!(group.phase(), ConsumerGroupPhase::Empty);
    for bad in [
        HeartbeatRequest {
            member_epoch: 0,
            ..HeartbeatRequest::default()
        },
        HeartbeatRequest {
            member_epoch: -3,
            ..join("x")
        },
        HeartbeatRequest {
            server_assignor: Some("sticky".into()),
            ..join("x")
        },
        HeartbeatRequest {
            subscribed_topic_regex: Some("(".into()),
            ..join("x")
        },
        HeartbeatRequest {
            subscribed_topic_names: Some(vec!["t".into(); SUBSCRIBED_TOPICS_MAX + 1]),
            ..join("x")
        },
        HeartbeatRequest {
            member_epoch: 3,
            ..join("")
        },
    ] {
        assert!(group.heartbeat(&bad, &topics(), &CONFIG, 4).is_err());
    }
    assert!(group.members.is_empty());
}

#[test]
fn regex_subscriptions_and_added_partitions_bump_the_group_epoch() {
    // A regex matches whole topic names; partitions added to a subscribed topic are assigned.
    let mut group = ConsumerGroup::new("g");
    let mut request = join("a");
    request.subscribed_topic_names = None;
    request.subscribed_topic_regex = Some("t.*".into());
    let all: TopicCounts = [("t1".to_string(), 2), ("xt".to_string(), 3)]
        .into_iter()
        .collect();
    let first = group.heartbeat(&request, &all, &CONFIG, 0).unwrap();
    assert_eq!(first.assignment.unwrap().keys().collect::<Vec<_>>(), ["t1"]);
    let epoch = group.group_epoch;
    let grown: TopicCounts = [("t1".to_string(), 4)].into_iter().collect();
    let beat = HeartbeatRequest {
        member_id: "a".into(),
        member_epoch: group.members["a"].member_epoch,
        rebalance_timeout_ms: -1,
        ..HeartbeatRequest::default()
    };
    let after = group.heartbeat(&beat, &grown, &CONFIG, 1).unwrap();
    assert_eq!(group.group_epoch, epoch + 1);
    assert_eq!(after.assignment.unwrap()["t1"].len(), 4);
}

#[test]
fn commits_and_fetches_check_member_epochs() {
    // OffsetCommit v9 needs the member's current epoch; admin commits only on an empty group.
    let mut group = ConsumerGroup::new("g");
    assert_eq!(group.check_commit(("", None, -1), 9, false), None);
    let client = Client::new(&mut group, "a", 0);
    assert_eq!(
        group.check_commit(("", None, -1), 9, false),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        group.check_commit(("a", None, client.epoch), 9, false),
        None
    );
    assert_eq!(
        group.check_commit(("a", None, client.epoch - 1), 9, false),
        Some(ResponseError::StaleMemberEpoch)
    );
    // Kafka: a KIP-848 member's OffsetCommit below v9 is UNSUPPORTED_VERSION, whatever epoch.
    assert_eq!(
        group.check_commit(("a", None, client.epoch - 1), 8, false),
        Some(ResponseError::UnsupportedVersion)
    );
    assert_eq!(group.check_fetch(None, -1), None);
    assert_eq!(group.check_fetch(Some("a"), client.epoch), None);
    assert_eq!(
        group.check_fetch(Some("zz"), 1),
        Some(ResponseError::UnknownMemberId)
    );
}
