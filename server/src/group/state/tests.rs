//! The classic group state machine driven by a fake clock.
#![forbid(unsafe_code)]
use super::*;

fn join_request(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".to_string(),
        protocols: protocols
            .iter()
            .map(|name| (name.to_string(), Bytes::from(format!("meta-{name}"))))
            .collect(),
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

/// Joins with the MEMBER_ID_REQUIRED handshake; returns the member id.
fn handshake(group: &mut Group, now_ms: i64) -> String {
    let (reply, _) = group.join(join_request("", &["range"]), now_ms);
    let Reply::Now(response) = reply else {
        panic!("handshake answers at once")
    };
    assert_eq!(response.error, Some(ResponseError::MemberIdRequired));
    response.member_id
}

fn joined(effects: &[Effect]) -> Vec<&JoinResponse> {
    effects
        .iter()
        .filter_map(|effect| {
            if let Effect::Join(_, response) = effect {
                Some(response)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn a_zero_initial_delay_completes_the_first_join_at_once() {
    // group.initial.rebalance.delay.ms=0, as kafka-go's test broker runs: a lone member's first
    // join is answered right away, generation 1, itself the leader.
    let mut group = Group::new("g");
    group.set_initial_delay_ms(0);
    let id = handshake(&mut group, 0);
    let (reply, _) = group.join(join_request(&id, &["range"]), 10);
    let Reply::Now(response) = reply else {
        panic!("no initial delay: answered at once, got {reply:?}")
    };
    assert_eq!(response.error, None);
    assert_eq!(response.generation_id, 1);
    assert_eq!(response.leader, id);
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
}

#[test]
fn a_configured_initial_delay_holds_the_first_join_until_it_passes() {
    let delay_ms = 2_000;
    let mut group = Group::new("g");
    group.set_initial_delay_ms(delay_ms);
    let id = handshake(&mut group, 0);
    let (reply, _) = group.join(join_request(&id, &["range"]), 10);
    assert_eq!(reply, Reply::Later(id.clone()));
    // Past the default delay, short of the configured one: still waiting.
    assert!(joined(&group.tick(10 + INITIAL_REBALANCE_DELAY_MS + 1)).is_empty());
    assert!(joined(&group.tick(10 + delay_ms - 1)).is_empty());
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    let effects = group.tick(10 + delay_ms);
    let responses = joined(&effects);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].generation_id, 1);
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
}

#[test]
fn members_joining_together_share_a_generation_after_the_initial_delay() {
    // Three consumers starting at once get one generation, one leader, and the leader sees all.
    let mut group = Group::new("g");
    let ids: Vec<String> = (0..3).map(|_| handshake(&mut group, 0)).collect();
    for id in &ids {
        let (reply, effects) = group.join(join_request(id, &["range", "roundrobin"]), 10);
        assert_eq!(
            reply,
            Reply::Later(id.clone()),
            "waits for the initial delay"
        );
        assert!(effects.is_empty());
    }
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    // The first join started the delay; the others joining during it extended it once.
    assert!(joined(&group.tick(INITIAL_REBALANCE_DELAY_MS + 10)).is_empty());
    let effects = group.tick(2 * INITIAL_REBALANCE_DELAY_MS + 10);
    let responses = joined(&effects);
    assert_eq!(responses.len(), 3);
    assert!(responses
        .iter()
        .all(|r| r.generation_id == 1 && r.protocol_name.as_deref() == Some("range")));
    let leader = &responses[0].leader;
    assert_eq!(
        responses.iter().filter(|r| !r.members.is_empty()).count(),
        1
    );
    assert!(responses.iter().all(|r| r.leader == *leader));
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
}

#[test]
fn followers_wait_for_the_leaders_assignment() {
    // SyncGroup: followers park; the leader's assignments release everyone with their share.
    let mut group = Group::new("g");
    let (leader, follower) = joined_group_of_two(&mut group);
    let (reply, _) = group.sync(&follower, 1, Vec::new(), 1_000);
    assert_eq!(reply, Reply::Later(follower.clone()));
    let assignments = vec![
        (leader.clone(), Bytes::from_static(b"L")),
        (follower.clone(), Bytes::from_static(b"F")),
    ];
    let (reply, effects) = group.sync(&leader, 1, assignments, 1_001);
    let Reply::Now(mine) = reply else {
        panic!("leader answered at once")
    };
    assert_eq!(mine.assignment, Bytes::from_static(b"L"));
    assert_eq!(
        effects,
        vec![Effect::Sync(
            follower.clone(),
            SyncResponse {
                error: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from_static(b"F")
            }
        )]
    );
    assert_eq!(group.phase, GroupPhase::Stable);
    assert_eq!(group.heartbeat(&follower, 1, 1_002), None);
    assert_eq!(
        group.heartbeat(&follower, 0, 1_002),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.heartbeat("nobody", 1, 1_002),
        Some(ResponseError::UnknownMemberId)
    );
}

/// Two members joined together, answered generation 1: (leader, follower), CompletingRebalance.
fn joined_group_of_two(group: &mut Group) -> (String, String) {
    let a = handshake(group, 0);
    let b = handshake(group, 0);
    group.join(join_request(&a, &["range"]), 0);
    group.join(join_request(&b, &["range"]), 0);
    let effects = group.tick(1_000);
    let leader = joined(&effects)[0].leader.clone();
    let follower = if leader == a { b } else { a };
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
    (leader, follower)
}

fn stable_group_of_two(group: &mut Group) -> (String, String) {
    let (leader, follower) = joined_group_of_two(group);
    group.sync(&leader, 1, Vec::new(), 1_000);
    group.sync(&follower, 1, Vec::new(), 1_000);
    assert_eq!(group.phase, GroupPhase::Stable);
    (leader, follower)
}

#[test]
fn a_new_member_triggers_a_rebalance_seen_through_heartbeats() {
    // Heartbeats answer REBALANCE_IN_PROGRESS until everyone rejoined; commits of the current
    // generation are taken meanwhile (as Kafka does; librdkafka test 0113), and refused with
    // REBALANCE_IN_PROGRESS only while the new generation's assignments are handed out.
    let mut group = Group::new("g");
    let (leader, follower) = stable_group_of_two(&mut group);
    let c = handshake(&mut group, 2_000);
    let (reply, _) = group.join(join_request(&c, &["range"]), 2_000);
    assert_eq!(reply, Reply::Later(c.clone()));
    assert_eq!(
        group.heartbeat(&leader, 1, 2_001),
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(group.check_commit((&leader, None, 1), false), None);
    group.join(join_request(&leader, &["range"]), 2_002);
    let (reply, effects) = group.join(join_request(&follower, &["range"]), 2_003);
    let mut all = joined(&effects);
    if let Reply::Now(response) = &reply {
        all.push(response);
    }
    assert_eq!(
        all.len(),
        3,
        "everyone is answered when the last member rejoins"
    );
    assert!(all.iter().all(|r| r.generation_id == 2));
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
    assert_eq!(
        group.check_commit((&leader, None, 2), false),
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        group.check_commit((&leader, None, 1), false),
        Some(ResponseError::IllegalGeneration)
    );
}

#[test]
fn members_waiting_for_the_leaders_assignment_are_not_expired_but_a_dead_leader_is() {
    // Followers parked in SyncGroup send no heartbeats; they must outlive their session
    // timeout while they wait. A leader that never syncs expires, and the followers are told
    // to rejoin.
    let mut group = Group::new("g");
    let (leader, follower) = joined_group_of_two(&mut group);
    let (reply, _) = group.sync(&follower, 1, Vec::new(), 1_000);
    assert_eq!(reply, Reply::Later(follower.clone()));
    let effects = group.tick(11_001);
    assert!(
        !group.members.contains_key(&leader),
        "the silent leader expired"
    );
    assert!(
        group.members.contains_key(&follower),
        "the waiting follower stays"
    );
    assert_eq!(
        effects,
        vec![Effect::Sync(
            follower.clone(),
            SyncResponse::error(ResponseError::RebalanceInProgress)
        )]
    );
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    let (reply, _) = group.join(join_request(&follower, &["range"]), 11_100);
    let Reply::Now(response) = reply else {
        panic!("the only member rejoined: answered at once")
    };
    assert_eq!((response.generation_id, response.leader), (2, follower));
}

#[test]
fn a_restarted_static_member_replaces_and_fences_the_old_one() {
    // KIP-345: the same group.instance.id joining with no member id is the instance restarted:
    // it gets a new member id and the group's current generation (no rebalance in Stable); the
    // old member id is fenced everywhere (librdkafka test 0102).
    let mut group = Group::new("g");
    let mut request = join_request("", &["range"]);
    request.group_instance_id = Some("instance-1".into());
    let mut other = join_request("", &["range"]);
    other.group_instance_id = Some("instance-2".into());
    group.join(request.clone(), 0);
    group.join(other, 0);
    let effects = group.tick(1_000);
    let ids: Vec<String> = joined(&effects)
        .iter()
        .map(|r| r.member_id.clone())
        .collect();
    let old = group.static_member("instance-1").unwrap().member_id.clone();
    let leader = group.leader.clone().unwrap();
    let assignments = ids
        .iter()
        .map(|id| (id.clone(), Bytes::from(format!("for-{id}"))))
        .collect();
    group.sync(&leader, 1, assignments, 1_000);
    let follower = ids.iter().find(|id| **id != leader).unwrap().clone();
    group.sync(&follower, 1, Vec::new(), 1_000);
    assert_eq!(group.phase, GroupPhase::Stable);

    let (reply, effects) = group.join(request, 2_000);
    assert!(effects.is_empty());
    let Reply::Now(response) = reply else {
        panic!("a restarted static member gets the current generation at once")
    };
    assert_eq!((response.error, response.generation_id), (None, 1));
    let new = response.member_id.clone();
    assert_ne!(new, old);
    assert_eq!(group.phase, GroupPhase::Stable);
    let (reply, _) = group.sync(&new, 1, Vec::new(), 2_001);
    let Reply::Now(synced) = reply else {
        panic!("Stable: answered at once")
    };
    assert_eq!(synced.assignment, Bytes::from(format!("for-{old}")));
    assert_eq!(
        group.check_instance(&old, Some("instance-1")),
        Some(ResponseError::FencedInstanceId)
    );
    assert_eq!(group.check_instance(&new, Some("instance-1")), None);
    let mut zombie = join_request(&old, &["range"]);
    zombie.group_instance_id = Some("instance-1".into());
    let (reply, _) = group.join(zombie, 2_002);
    let Reply::Now(refused) = reply else {
        panic!("refused at once")
    };
    assert_eq!(refused.error, Some(ResponseError::FencedInstanceId));
    let (error, _) = group.leave(&old, Some("instance-1"), 2_003);
    assert_eq!(error, Some(ResponseError::FencedInstanceId));
    assert_eq!(group.members.len(), 2, "a fenced leave removes nobody");
}

#[test]
fn a_silent_member_is_expired_after_its_session_timeout() {
    // A killed consumer stops heartbeating; after the session timeout the others rebalance
    // without it (a fake clock drives the expiry).
    let mut group = Group::new("g");
    let (leader, follower) = stable_group_of_two(&mut group);
    assert!(group.tick(5_000).is_empty());
    assert_eq!(group.heartbeat(&leader, 1, 9_000), None);
    group.tick(11_500);
    assert!(!group.members.contains_key(&follower), "follower expired");
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    let (reply, effects) = group.join(join_request(&leader, &["range"]), 11_600);
    let response = match reply {
        Reply::Now(response) => response,
        Reply::Later(_) => joined(&effects)[0].clone(),
    };
    assert_eq!(response.generation_id, 2);
    assert_eq!(response.members.len(), 1);
}

#[test]
fn leaving_and_rebalance_deadline_and_protocol_choice() {
    // LeaveGroup empties the group; a member that never rejoins is dropped at the deadline;
    // the chosen protocol is one every member supports.
    let mut group = Group::new("g");
    let (leader, follower) = stable_group_of_two(&mut group);
    let (error, _) = group.leave(&follower, None, 3_000);
    assert_eq!(error, None);
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    let effects = group.tick(3_000 + 30_001);
    assert!(
        joined(&effects).is_empty(),
        "the leader never rejoined: dropped"
    );
    assert_eq!(group.phase, GroupPhase::Empty);
    assert!(!group.members.contains_key(&leader));
    assert_eq!(
        group.check_commit(("", None, -1), false),
        None,
        "simple consumers commit to an empty group"
    );

    let mut mixed = Group::new("m");
    let a = handshake(&mut mixed, 0);
    let b = handshake(&mut mixed, 0);
    mixed.join(join_request(&a, &["cooperative-sticky", "range"]), 0);
    mixed.join(join_request(&b, &["range"]), 0);
    let effects = mixed.tick(1_000);
    assert!(joined(&effects)
        .iter()
        .all(|r| r.protocol_name.as_deref() == Some("range")));
}

#[test]
fn static_members_keep_their_id_across_rejoins() {
    // group.instance.id: a static member gets its id at once (no MEMBER_ID_REQUIRED) and
    // keeps it when it rejoins with it. (A restart, with no member id, is a replacement:
    // a_restarted_static_member_replaces_and_fences_the_old_one.)
    let mut group = Group::new("g");
    let mut request = join_request("", &["range"]);
    request.group_instance_id = Some("instance-1".into());
    let (_, _) = group.join(request.clone(), 0);
    let effects = group.tick(1_000);
    let first_id = joined(&effects)[0].member_id.clone();
    request.member_id = first_id.clone();
    let (reply, _) = group.join(request, 2_000);
    let again = match reply {
        Reply::Now(response) => response.member_id,
        Reply::Later(id) => id,
    };
    assert_eq!(again, first_id);
    let (error, _) = group.leave("", Some("instance-1"), 3_000);
    assert_eq!(error, None);
}

#[test]
fn member_ids_handed_out_and_never_used_are_bounded() {
    // Each JoinGroup v4+ without a member id gets one to come back with (MEMBER_ID_REQUIRED);
    // a client that never comes back must not make the group keep them all until they expire.
    let mut group = Group::new("g");
    let ids: Vec<String> = (0..MEMBERS_PER_GROUP_MAX * 3)
        .map(|_| handshake(&mut group, 0))
        .collect();
    assert!(group.pending_member_ids.len() <= MEMBERS_PER_GROUP_MAX);
    // The latest id handed out is still good: a real client comes back with it at once.
    let latest = ids.last().expect("handed out");
    let (reply, _) = group.join(join_request(latest, &["range"]), 10);
    assert_eq!(reply, Reply::Later(latest.clone()));
}

#[test]
fn a_group_whose_handed_out_ids_expired_is_unused() {
    // The coordinator forgets such a group at its next tick.
    let mut group = Group::new("g");
    handshake(&mut group, 0);
    assert!(!group.is_unused(), "the id handed out is still due");
    group.tick(10_001);
    assert!(group.is_unused());
}

#[test]
fn a_leader_that_heartbeats_but_never_syncs_is_removed_after_the_rebalance_timeout() {
    // As Kafka's pending-sync timeout: members that have not sent their SyncGroup a rebalance
    // timeout after the join completed are removed, so followers parked in SyncGroup are told
    // to rejoin instead of waiting for an assignment that never comes.
    let mut group = Group::new("g");
    let (leader, follower) = joined_group_of_two(&mut group);
    let (reply, _) = group.sync(&follower, 1, Vec::new(), 1_000);
    assert_eq!(reply, Reply::Later(follower.clone()));
    let mut effects = Vec::new();
    // The leader heartbeats within its session (10 s) up to past the rebalance timeout (30 s).
    for now_ms in (2_000..=32_000).step_by(2_000) {
        assert_eq!(group.heartbeat(&leader, 1, now_ms), None);
        effects.extend(group.tick(now_ms));
    }
    assert!(
        !group.members.contains_key(&leader),
        "the leader never synced"
    );
    assert_eq!(
        effects,
        vec![Effect::Sync(
            follower.clone(),
            SyncResponse::error(ResponseError::RebalanceInProgress)
        )]
    );
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
}

#[test]
fn a_member_rejoining_unchanged_while_assignments_are_handed_out_gets_the_generation_back() {
    // Kafka: a JoinGroup with the same metadata in CompletingRebalance is a member whose join
    // answer was lost; it gets the current generation, and the others, parked in SyncGroup,
    // are not sent back to rejoin.
    let mut group = Group::new("g");
    let (leader, follower) = joined_group_of_two(&mut group);
    let (reply, _) = group.sync(&follower, 1, Vec::new(), 1_000);
    assert_eq!(reply, Reply::Later(follower.clone()));
    let (reply, effects) = group.join(join_request(&leader, &["range"]), 1_100);
    let Reply::Now(response) = reply else {
        panic!("answered at once")
    };
    assert_eq!((response.generation_id, response.members.len()), (1, 2));
    assert!(effects.is_empty());
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
}

/// A Stable group of two whose follower left: PreparingRebalance, waiting for the leader alone.
fn rebalancing_after_a_leave(group: &mut Group) -> String {
    let (leader, follower) = stable_group_of_two(group);
    let (error, _) = group.leave(&follower, None, 2_000);
    assert_eq!(error, None);
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    leader
}

#[test]
fn a_rebalance_waits_for_a_member_given_its_id_with_member_id_required() {
    // Kafka (ClassicGroup.hasAllMembersJoined): a member id handed out with MEMBER_ID_REQUIRED
    // makes a pending member, and a rebalance other than the initial one does not complete while
    // one is pending: its joiner comes back with the id at once and is in the same generation.
    let mut group = Group::new("g");
    let leader = rebalancing_after_a_leave(&mut group);
    let newcomer = handshake(&mut group, 2_100);
    let (reply, effects) = group.join(join_request(&leader, &["range"]), 2_200);
    assert_eq!(
        reply,
        Reply::Later(leader.clone()),
        "waits for the pending member"
    );
    assert!(joined(&effects).is_empty());
    assert!(joined(&group.tick(2_300)).is_empty());
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    let (reply, effects) = group.join(join_request(&newcomer, &["range"]), 2_400);
    let mut all = joined(&effects);
    if let Reply::Now(response) = &reply {
        all.push(response);
    }
    assert_eq!(all.len(), 2, "both answered when the pending member joins");
    assert!(all.iter().all(|r| r.generation_id == 2));
    let leaders_view = all.iter().find(|r| !r.members.is_empty()).expect("leader");
    let mut seen: Vec<&str> = leaders_view
        .members
        .iter()
        .map(|(id, _, _)| id.as_str())
        .collect();
    seen.sort_unstable();
    let mut expected = vec![leader.as_str(), newcomer.as_str()];
    expected.sort_unstable();
    assert_eq!(seen, expected);
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
}

#[test]
fn a_pending_member_that_never_joins_stops_blocking_at_its_session_timeout() {
    // Kafka expires a pending member after its session timeout, then completes the join.
    let mut group = Group::new("g");
    let leader = rebalancing_after_a_leave(&mut group);
    let mut request = join_request("", &["range"]);
    request.session_timeout_ms = 3_000;
    let (reply, _) = group.join(request, 2_100);
    let Reply::Now(response) = reply else {
        panic!("handshake answers at once")
    };
    assert_eq!(response.error, Some(ResponseError::MemberIdRequired));
    let (reply, _) = group.join(join_request(&leader, &["range"]), 2_200);
    assert_eq!(reply, Reply::Later(leader.clone()));
    assert!(joined(&group.tick(5_000)).is_empty(), "still pending");
    let effects = group.tick(5_100);
    let responses = joined(&effects);
    assert_eq!(responses.len(), 1, "completed once the pending id expired");
    assert_eq!(responses[0].generation_id, 2);
    assert_eq!(responses[0].members.len(), 1);
    // Its joiner, coming back late, is unknown and asks again.
    let (reply, _) = group.join(join_request(&response.member_id, &["range"]), 5_200);
    let Reply::Now(late) = reply else {
        panic!("answered at once")
    };
    assert_eq!(late.error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn the_initial_rebalance_does_not_wait_for_pending_members() {
    // Kafka's initial rebalance completes when its delay passes, pending members or not.
    let mut group = Group::new("g");
    let a = handshake(&mut group, 0);
    let _pending = handshake(&mut group, 0);
    group.join(join_request(&a, &["range"]), 10);
    let effects = group.tick(INITIAL_REBALANCE_DELAY_MS + 10);
    let responses = joined(&effects);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].generation_id, 1);
}

#[test]
fn a_pending_member_that_leaves_stops_holding_the_rebalance() {
    // Kafka's LeaveGroup removes a pending member (its joiner closed before joining with its
    // id) and completes the join it was holding; it is not UNKNOWN_MEMBER_ID.
    let mut group = Group::new("g");
    let leader = rebalancing_after_a_leave(&mut group);
    let newcomer = handshake(&mut group, 2_100);
    let (reply, _) = group.join(join_request(&leader, &["range"]), 2_200);
    assert_eq!(reply, Reply::Later(leader.clone()));
    let (error, effects) = group.leave(&newcomer, None, 2_300);
    assert_eq!(error, None);
    let responses = joined(&effects);
    assert_eq!(responses.len(), 1, "the leader's join is answered");
    assert_eq!(responses[0].generation_id, 2);
    assert_eq!(responses[0].members.len(), 1);
    // The id is used up: it can't join now.
    let (reply, _) = group.join(join_request(&newcomer, &["range"]), 2_400);
    let Reply::Now(late) = reply else {
        panic!("answered at once")
    };
    assert_eq!(late.error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn a_static_leader_rejoining_with_its_id_in_stable_starts_a_rebalance() {
    // Kafka rebalances when the leader of a Stable group rejoins with its member id, static or
    // not: that is how a leader that saw topics change (new partitions) gets them assigned.
    // Only a restarted static member (no member id) keeps the generation.
    let mut group = Group::new("g");
    let mut request = join_request("", &["range"]);
    request.group_instance_id = Some("instance-1".into());
    group.join(request.clone(), 0);
    let effects = group.tick(1_000);
    let id = joined(&effects)[0].member_id.clone();
    group.sync(&id, 1, vec![(id.clone(), Bytes::from_static(b"a"))], 1_000);
    assert_eq!(group.phase, GroupPhase::Stable);
    request.member_id = id.clone();
    let (reply, effects) = group.join(request, 2_000);
    let response = match reply {
        Reply::Now(response) => response,
        Reply::Later(_) => joined(&effects)[0].clone(),
    };
    assert_eq!((response.error, response.generation_id), (None, 2));
    assert_eq!(response.leader, id);
}

#[test]
fn a_join_with_no_protocol_every_member_supports_is_refused_at_once() {
    // Kafka (ClassicGroup.supportsProtocols): a join into a non-empty group must share a
    // protocol with every member, and be of the group's protocol type, else it is answered
    // INCONSISTENT_GROUP_PROTOCOL at once; the group is left alone (no rebalance that would
    // end with every member refused).
    let mut group = Group::new("g");
    let (leader, _follower) = stable_group_of_two(&mut group);
    let (reply, effects) = group.join(join_request("", &["roundrobin"]), 2_000);
    let Reply::Now(refused) = reply else {
        panic!("refused at once")
    };
    assert_eq!(
        refused.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    assert!(effects.is_empty());
    let mut connect = join_request("", &["range"]);
    connect.protocol_type = "connect".into();
    let (reply, _) = group.join(connect, 2_000);
    let Reply::Now(refused) = reply else {
        panic!("refused at once")
    };
    assert_eq!(
        refused.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    // A member switching to a protocol the others lack is refused too, and stays as it was.
    let (reply, _) = group.join(join_request(&leader, &["roundrobin"]), 2_100);
    let Reply::Now(refused) = reply else {
        panic!("refused at once")
    };
    assert_eq!(
        refused.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    assert_eq!(group.phase, GroupPhase::Stable);
    assert_eq!(group.members.len(), 2);
    // One protocol in common is enough.
    let (reply, _) = group.join(join_request("", &["roundrobin", "range"]), 2_200);
    let Reply::Now(asked) = reply else {
        panic!("answered at once")
    };
    assert_eq!(asked.error, Some(ResponseError::MemberIdRequired));
}

/// A join request with the given rebalance timeout.
fn join_with_timeout(member_id: &str, rebalance_timeout_ms: i64) -> JoinRequest {
    JoinRequest {
        rebalance_timeout_ms,
        ..join_request(member_id, &["range"])
    }
}

#[test]
fn a_member_joining_during_the_initial_delay_extends_it() {
    // Kafka's InitialDelayedJoin: a new member during the delay buys one more delay.
    let mut group = Group::new("g");
    group.set_initial_delay_ms(1_000);
    let first = handshake(&mut group, 0);
    assert_eq!(
        group.join(join_request(&first, &["range"]), 10).0,
        Reply::Later(first.clone())
    );
    let second = handshake(&mut group, 900);
    let (reply, _) = group.join(join_request(&second, &["range"]), 900);
    assert_eq!(reply, Reply::Later(second.clone()));
    assert!(joined(&group.tick(1_010)).is_empty(), "extended by a delay");
    assert!(joined(&group.tick(2_009)).is_empty());
    assert_eq!(group.phase, GroupPhase::PreparingRebalance);
    let effects = group.tick(2_010);
    let responses = joined(&effects);
    assert_eq!(responses.len(), 2);
    assert!(responses.iter().all(|r| r.generation_id == 1));
}

#[test]
fn initial_delay_extensions_stop_at_the_rebalance_timeout() {
    // Delay 1000 ms, rebalance timeout 2500 ms: the delays run 1000, 1000, then 500 ms, and a
    // member joining in the last one extends nothing more.
    let mut group = Group::new("g");
    group.set_initial_delay_ms(1_000);
    let join_at = |group: &mut Group, now_ms: i64| {
        let id = handshake(group, now_ms);
        let (reply, _) = group.join(join_with_timeout(&id, 2_500), now_ms);
        assert_eq!(reply, Reply::Later(id));
    };
    join_at(&mut group, 10);
    join_at(&mut group, 500);
    assert!(joined(&group.tick(1_010)).is_empty());
    join_at(&mut group, 1_500);
    assert!(joined(&group.tick(2_010)).is_empty());
    join_at(&mut group, 2_100);
    assert!(joined(&group.tick(2_509)).is_empty());
    let effects = group.tick(2_510);
    assert_eq!(joined(&effects).len(), 4);
    assert_eq!(group.phase, GroupPhase::CompletingRebalance);
}
