//! A static member restarted under a new member id (KIP-345) in a Stable group, answered as
//! Kafka's updateStaticMemberThenRebalanceOrCompleteJoin does (KIP-814's skip_assignment).
#![forbid(unsafe_code)]
use super::*;

/// A JoinGroup of `instance` with `member_id` ("" when restarted), of JoinGroup v9+ when
/// `skip_assignment`.
fn static_join(
    instance: &str,
    member_id: &str,
    metadata: &'static [u8],
    skip_assignment: bool,
) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: Some(instance.to_string()),
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".to_string(),
        protocols: vec![("range".to_string(), Bytes::from_static(metadata))],
        require_known_member_id: true,
        supports_skip_assignment: skip_assignment,
    }
}

/// Static members "i1" and "i2" joined together and synced: Stable at generation 1. Returns
/// (leader, follower), with their instance ids.
fn stable_static_group(group: &mut Group) -> ((String, String), (String, String)) {
    group.join(static_join("i1", "", b"m1", true), 0);
    group.join(static_join("i2", "", b"m2", true), 0);
    group.tick(1_000);
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
    let leader = group.leader.clone().unwrap();
    let assignments = group
        .members
        .keys()
        .map(|id| (id.clone(), Bytes::from(format!("for-{id}"))))
        .collect();
    group.sync(&leader, 1, assignments, 1_000);
    let follower = group
        .members
        .keys()
        .find(|id| **id != leader)
        .unwrap()
        .clone();
    group.sync(&follower, 1, Vec::new(), 1_000);
    assert_eq!(group.phase, GroupPhase::Stable);
    let instance_of = |id: &String| group.members[id].group_instance_id.clone().unwrap();
    (
        (leader.clone(), instance_of(&leader)),
        (follower.clone(), instance_of(&follower)),
    )
}

fn answered_now(reply: Reply<JoinResponse>) -> JoinResponse {
    match reply {
        Reply::Now(response) => response,
        Reply::Later(id) => panic!("a restarted static member is answered at once, {id} waits"),
    }
}

#[test]
fn a_restarted_static_leader_of_v9_is_told_to_skip_the_assignment() {
    // KIP-814: the leader restarted under a new id gets the current generation, itself as
    // leader, the members (so it can watch their subscriptions) and skip_assignment, so it does
    // not compute an assignment nobody would receive; the group stays Stable.
    let mut group = Group::new("g");
    let ((old, instance), (follower, _)) = stable_static_group(&mut group);
    let (reply, effects) = group.join(static_join(&instance, "", b"m1", true), 2_000);
    assert!(effects.is_empty());
    let response = answered_now(reply);
    let new = response.member_id.clone();
    assert_ne!(new, old);
    assert_eq!(
        (
            response.error,
            response.generation_id,
            response.leader.as_str()
        ),
        (None, 1, new.as_str())
    );
    assert!(response.skip_assignment);
    let mut members: Vec<&str> = response.members.iter().map(|m| m.0.as_str()).collect();
    members.sort_unstable();
    let mut expected = vec![new.as_str(), follower.as_str()];
    expected.sort_unstable();
    assert_eq!(members, expected);
    assert_eq!(group.phase, GroupPhase::Stable);
    // The old id is fenced; the new one syncs to the assignment the old one had.
    assert_eq!(
        group.check_instance(&old, Some(&instance)),
        Some(ResponseError::FencedInstanceId)
    );
    let (reply, _) = group.sync(&new, 1, Vec::new(), 2_001);
    let Reply::Now(synced) = reply else {
        panic!("Stable: answered at once")
    };
    assert_eq!(synced.assignment, Bytes::from(format!("for-{old}")));
}

#[test]
fn a_restarted_static_leader_before_v9_is_answered_the_old_leader_id() {
    // Before JoinGroup v9 there is no skip_assignment: Kafka names the leader as it was before
    // the replacement (the old id), so the restarted leader does not take itself for the leader
    // and computes no assignment; no members are sent.
    let mut group = Group::new("g");
    let ((old, instance), _) = stable_static_group(&mut group);
    let (reply, _) = group.join(static_join(&instance, "", b"m1", false), 2_000);
    let response = answered_now(reply);
    assert_ne!(response.member_id, old);
    assert_eq!(
        (
            response.error,
            response.generation_id,
            response.leader.as_str()
        ),
        (None, 1, old.as_str())
    );
    assert!(!response.skip_assignment);
    assert!(response.members.is_empty());
    assert_eq!(group.leader.as_deref(), Some(response.member_id.as_str()));
}

#[test]
fn a_restarted_static_follower_gets_the_generation_without_members() {
    let mut group = Group::new("g");
    let ((leader, _), (old, instance)) = stable_static_group(&mut group);
    for skip in [true, false] {
        let (reply, _) = group.join(static_join(&instance, "", b"m2", skip), 2_000);
        let response = answered_now(reply);
        assert_eq!(
            (response.generation_id, response.leader.as_str()),
            (1, leader.as_str())
        );
        assert!(!response.skip_assignment && response.members.is_empty());
        assert_ne!(response.member_id, old);
    }
}

#[test]
fn a_restarted_static_leader_with_new_metadata_keeps_the_generation_if_the_protocol_stays() {
    // Kafka rebalances for a restarted static member only if the group's protocol would change;
    // its new metadata (a changed subscription) is kept and shown to the leader.
    let mut group = Group::new("g");
    let ((_, instance), _) = stable_static_group(&mut group);
    let (reply, effects) = group.join(static_join(&instance, "", b"changed", true), 2_000);
    assert!(effects.is_empty());
    let response = answered_now(reply);
    assert_eq!(
        (response.generation_id, group.phase),
        (1, GroupPhase::Stable)
    );
    let own = response.members.iter().find(|m| m.0 == response.member_id);
    assert_eq!(
        own.map(|m| m.2.clone()),
        Some(Bytes::from_static(b"changed"))
    );
}
