//! Consumer (KIP-848) groups in `__consumer_offsets`: the records written when a group changes and
//! replayed at start.
//!
//! # Byte map (keys UTF-8 with NUL separators; values JSON; a null value deletes the key)
//! ```text
//! key "cgroup\0<group>"             value {"version":1,"group_epoch":i32,"assignment_epoch":i32,
//!                                          "subscribed_topics":{"<topic>":partitions}}
//! key "cmember\0<group>\0<member>"  value {"version":1,"member":{member_id, instance_id, rack_id,
//!                                          client_id, client_host, subscribed_topic_names,
//!                                          subscribed_topic_regex, server_assignor,
//!                                          rebalance_timeout_ms, member_epoch,
//!                                          previous_member_epoch, state, assigned, revoking},
//!                                          "target":{"<topic>":[partition]}}
//! ```
//! A member's record carries its target assignment, so a group's state is its group record plus
//! one record per member. Values of a newer `version` are skipped (logged), never misread.
//!
//! # Invariants
//! - Replaying the records written for a group rebuilds the same epochs, members (timers aside)
//!   and target assignment.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::assignor::{Assignment, TopicCounts};
use super::member::ConsumerMember;
use super::state::ConsumerGroup;

/// The version written; replay reads it and every older one.
pub const RECORD_VERSION: u16 = 1;

/// A record for `__consumer_offsets`: key and value (None: tombstone).
pub type Record = (Vec<u8>, Option<Vec<u8>>);

#[derive(Debug, Serialize, Deserialize)]
struct GroupValue {
    version: u16,
    group_epoch: i32,
    assignment_epoch: i32,
    subscribed_topics: TopicCounts,
}

#[derive(Debug, Serialize, Deserialize)]
struct MemberValue {
    version: u16,
    member: ConsumerMember,
    target: Assignment,
}

pub fn group_key(group_id: &str) -> Vec<u8> {
    format!("cgroup\0{group_id}").into_bytes()
}

pub fn member_key(group_id: &str, member_id: &str) -> Vec<u8> {
    format!("cmember\0{group_id}\0{member_id}").into_bytes()
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("plain data serialises")
}

/// The records for what changed since the last call; clears the change set.
pub fn take_records(group: &mut ConsumerGroup) -> Vec<Record> {
    let dirty = std::mem::take(&mut group.dirty);
    let mut records = Vec::with_capacity(dirty.members.len() + 2);
    if dirty.classic_tombstone {
        records.push((crate::group::group_key(&group.group_id), None));
    }
    if dirty.group {
        records.push((group_key(&group.group_id), Some(group_value(group))));
    }
    for member_id in dirty.members {
        let key = member_key(&group.group_id, &member_id);
        let value = group.members.get(&member_id).map(|member| {
            to_json(&MemberValue {
                version: RECORD_VERSION,
                member: member.clone(),
                target: group.target.get(&member_id).cloned().unwrap_or_default(),
            })
        });
        records.push((key, value));
    }
    records
}

fn group_value(group: &ConsumerGroup) -> Vec<u8> {
    to_json(&GroupValue {
        version: RECORD_VERSION,
        group_epoch: group.group_epoch,
        assignment_epoch: group.assignment_epoch,
        subscribed_topics: group.subscribed_topics.clone(),
    })
}

/// Tombstones for a whole group (DeleteGroups).
pub fn tombstones(group: &ConsumerGroup) -> Vec<Record> {
    let mut records: Vec<Record> = group
        .members
        .keys()
        .map(|member_id| (member_key(&group.group_id, member_id), None))
        .collect();
    records.push((group_key(&group.group_id), None));
    records
}

/// Applies one replayed record whose key split at NULs is `parts`; false if not ours.
pub fn apply(
    groups: &mut BTreeMap<String, ConsumerGroup>,
    parts: &[&str],
    value: Option<&[u8]>,
) -> bool {
    match parts {
        ["cgroup", group_id] => {
            match value {
                None => {
                    groups.remove(*group_id);
                }
                Some(value) => match serde_json::from_slice::<GroupValue>(value) {
                    Ok(decoded) if decoded.version <= RECORD_VERSION => {
                        let group = groups
                            .entry(group_id.to_string())
                            .or_insert_with(|| ConsumerGroup::new(*group_id));
                        group.group_epoch = decoded.group_epoch;
                        group.assignment_epoch = decoded.assignment_epoch;
                        group.subscribed_topics = decoded.subscribed_topics;
                        group.subscribed_as_of = None;
                    }
                    other => skip("cgroup", group_id, other.err()),
                },
            }
            true
        }
        ["cmember", group_id, member_id] => {
            match value {
                None => {
                    if let Some(group) = groups.get_mut(*group_id) {
                        group.members.remove(*member_id);
                        group.target.remove(*member_id);
                        group.subscribed_as_of = None;
                    }
                }
                Some(value) => match serde_json::from_slice::<MemberValue>(value) {
                    Ok(decoded)
                        if decoded.version <= RECORD_VERSION
                            && decoded.member.member_id == *member_id =>
                    {
                        let group = groups
                            .entry(group_id.to_string())
                            .or_insert_with(|| ConsumerGroup::new(*group_id));
                        group.target.insert(member_id.to_string(), decoded.target);
                        group.members.insert(member_id.to_string(), decoded.member);
                        group.subscribed_as_of = None;
                    }
                    other => skip("cmember", group_id, other.err()),
                },
            }
            true
        }
        _ => false,
    }
}

fn skip(kind: &str, group_id: &str, err: Option<serde_json::Error>) {
    tracing::warn!(
        kind,
        group_id,
        err = err.map(|err| err.to_string()),
        "skipping an unreadable or newer consumer group record"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::consumer::state::{ConsumerGroupConfig, HeartbeatRequest};

    #[test]
    fn replaying_the_records_rebuilds_the_group() {
        // Paired check: what take_records writes, apply reads back to the same state; tombstones
        // remove it again; a newer version is skipped.
        let mut group = ConsumerGroup::new("g");
        let topics: TopicCounts = [("t".to_string(), 3)].into_iter().collect();
        for id in ["a", "b"] {
            let request = HeartbeatRequest {
                member_id: id.into(),
                subscribed_topic_names: Some(vec!["t".into()]),
                rebalance_timeout_ms: 1000,
                ..HeartbeatRequest::default()
            };
            group
                .heartbeat(&request, &topics, &ConsumerGroupConfig::default(), 0)
                .unwrap();
        }
        let records = take_records(&mut group);
        assert!(
            take_records(&mut group).is_empty(),
            "the change set is cleared"
        );
        let mut replayed = BTreeMap::new();
        for (key, value) in &records {
            let key = std::str::from_utf8(key).unwrap();
            let parts: Vec<&str> = key.split('\0').collect();
            assert!(apply(&mut replayed, &parts, value.as_deref()));
        }
        let back = &replayed["g"];
        assert_eq!(back.group_epoch, group.group_epoch);
        assert_eq!(back.assignment_epoch, group.assignment_epoch);
        assert_eq!(back.target, group.target);
        assert_eq!(back.subscribed_topics, group.subscribed_topics);
        for (id, member) in &group.members {
            assert_eq!(back.members[id].assigned, member.assigned);
            assert_eq!(back.members[id].member_epoch, member.member_epoch);
        }
        let newer =
            br#"{"version":99,"group_epoch":7,"assignment_epoch":7,"subscribed_topics":{}}"#;
        assert!(apply(&mut replayed, &["cgroup", "g"], Some(newer)));
        assert_eq!(replayed["g"].group_epoch, group.group_epoch);
        for (key, value) in tombstones(&group) {
            let key = String::from_utf8(key).unwrap();
            let parts: Vec<&str> = key.split('\0').collect();
            apply(&mut replayed, &parts, value.as_deref());
        }
        assert!(replayed.is_empty());
        assert!(!apply(&mut replayed, &["offset", "g", "t", "0"], None));
    }
}
