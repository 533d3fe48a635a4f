//! A classic group in `__consumer_offsets`: the value of key `"group\0<group>"`, written when a
//! generation completes (the leader's SyncGroup stored the assignments) and whenever the group
//! leaves Stable, and loaded at start — as Kafka's GroupMetadataValue.
//!
//! # Byte map (JSON value; a null value deletes the group)
//! ```text
//! {"version":1,                      absent in records written before members were stored (0)
//!  "protocol_type":"consumer"|null, "generation_id":i32,
//!  "protocol_name":str|null, "leader":str|null,
//!  "members":[{"member_id","group_instance_id":str|null,"client_id","client_host",
//!              "session_timeout_ms":i64,"rebalance_timeout_ms":i64,
//!              "protocols":[[name, metadata as hex]], "assignment":hex}]}
//! ```
//! `members` is non-empty only for a Stable group: such a group loads Stable with its members,
//! whose sessions start at load. Otherwise (version 0, or a group mid-rebalance or empty) it loads
//! Empty with its generation and members rejoin. Values of a newer version are ignored.
//!
//! # Invariants
//! - A record with members names a leader among them and a protocol every member supports.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::state::{Group, GroupPhase, Member};

/// The version written; every older one is read.
pub const GROUP_RECORD_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    #[serde(default)]
    pub version: u16,
    pub protocol_type: Option<String>,
    pub generation_id: i32,
    #[serde(default)]
    pub protocol_name: Option<String>,
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default)]
    pub members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    pub protocols: Vec<(String, String)>,
    pub assignment: String,
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

fn from_hex(text: &str) -> Option<Bytes> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Bytes::from)
}

impl GroupRecord {
    /// The record of a group as it is now: members only when Stable.
    pub fn of(group: &Group) -> Self {
        let stable = group.phase == GroupPhase::Stable;
        let members = if stable {
            group
                .members
                .values()
                .map(|member| MemberRecord {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    session_timeout_ms: member.session_timeout_ms,
                    rebalance_timeout_ms: member.rebalance_timeout_ms,
                    protocols: member
                        .protocols
                        .iter()
                        .map(|(name, metadata)| (name.clone(), to_hex(metadata)))
                        .collect(),
                    assignment: to_hex(&member.assignment),
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            version: GROUP_RECORD_VERSION,
            protocol_type: group.protocol_type.clone(),
            generation_id: group.generation_id,
            protocol_name: stable.then(|| group.protocol_name.clone()).flatten(),
            leader: stable.then(|| group.leader.clone()).flatten(),
            members,
        }
    }

    /// The group this record describes, its members' sessions starting at `now_ms`; None for a
    /// record of a newer version.
    pub fn restore(self, group_id: &str, now_ms: i64) -> Option<Group> {
        if self.version > GROUP_RECORD_VERSION {
            return None;
        }
        let mut group = Group::new(group_id);
        group.generation_id = self.generation_id;
        group.protocol_type = self.protocol_type;
        let members: Option<BTreeMap<String, Member>> = self
            .members
            .into_iter()
            .map(|record| {
                let protocols = record
                    .protocols
                    .into_iter()
                    .map(|(name, metadata)| Some((name, from_hex(&metadata)?)))
                    .collect::<Option<Vec<_>>>()?;
                let member = Member::restored(
                    record.member_id.clone(),
                    record.group_instance_id,
                    (record.client_id, record.client_host),
                    (record.session_timeout_ms, record.rebalance_timeout_ms),
                    protocols,
                    from_hex(&record.assignment)?,
                    now_ms,
                );
                Some((record.member_id, member))
            })
            .collect();
        let members = members.unwrap_or_default();
        let consistent = !members.is_empty()
            && self
                .leader
                .as_ref()
                .is_some_and(|l| members.contains_key(l))
            && self.protocol_name.as_ref().is_some_and(|protocol| {
                members
                    .values()
                    .all(|member| member.protocols.iter().any(|(name, _)| name == protocol))
            });
        if consistent {
            group.members = members;
            group.leader = self.leader;
            group.protocol_name = self.protocol_name;
            group.phase = GroupPhase::Stable;
        }
        Some(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::state::JoinRequest;

    fn join(member_id: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 6_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"\x00\x01sub"))],
            require_known_member_id: false,
            supports_skip_assignment: false,
        }
    }

    /// A Stable group of two members with assignments, built through the state machine.
    fn stable_group() -> Group {
        let mut group = Group::new("g");
        group.join(join(""), 0);
        group.join(join(""), 0);
        let effects = group.tick(10_000);
        assert!(!effects.is_empty(), "the join completed");
        let leader = group.leader.clone().unwrap();
        let generation = group.generation_id;
        let assignments: Vec<(String, Bytes)> = group
            .members
            .keys()
            .enumerate()
            .map(|(n, id)| (id.clone(), Bytes::from(vec![n as u8; 3])))
            .collect();
        group.sync(&leader, generation, assignments, 10_000);
        assert_eq!(group.phase, GroupPhase::Stable);
        group
    }

    #[test]
    fn a_stable_group_comes_back_stable_with_its_members() {
        // Paired check: the record written for a Stable group restores the same members,
        // assignments, leader and generation; heartbeats of that generation are accepted and a
        // member that stays silent expires a session timeout after the load.
        let group = stable_group();
        let record = GroupRecord::of(&group);
        let json = serde_json::to_vec(&record).unwrap();
        let back: GroupRecord = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, record);
        let mut restored = back.restore("g", 50_000).unwrap();
        assert_eq!(restored.phase, GroupPhase::Stable);
        assert_eq!(restored.generation_id, group.generation_id);
        assert_eq!(restored.leader, group.leader);
        for (id, member) in &group.members {
            assert_eq!(restored.members[id].assignment, member.assignment);
            assert_eq!(restored.members[id].protocols, member.protocols);
        }
        let ids: Vec<String> = restored.members.keys().cloned().collect();
        assert_eq!(
            restored.heartbeat(&ids[0], group.generation_id, 55_000),
            None
        );
        restored.tick(56_001);
        assert_eq!(restored.members.len(), 1, "the silent member expired");
        assert_eq!(restored.phase, GroupPhase::PreparingRebalance);
    }

    #[test]
    fn old_and_partial_records_load_empty_and_newer_ones_are_skipped() {
        // Version 0 (generation only), a record written mid-rebalance, and garbage members load
        // Empty with the generation; a newer version is not read.
        let old: GroupRecord =
            serde_json::from_str(r#"{"protocol_type":"consumer","generation_id":7}"#).unwrap();
        let group = old.restore("g", 0).unwrap();
        assert_eq!((group.phase, group.generation_id), (GroupPhase::Empty, 7));
        let mut rebalancing = stable_group();
        rebalancing.join(join(""), 20_000);
        let record = GroupRecord::of(&rebalancing);
        assert!(record.members.is_empty());
        assert_eq!(record.restore("g", 0).unwrap().phase, GroupPhase::Empty);
        let mut bad = GroupRecord::of(&stable_group());
        bad.members[0].assignment = "zz".into();
        assert_eq!(
            bad.clone().restore("g", 0).unwrap().phase,
            GroupPhase::Empty
        );
        bad.version = GROUP_RECORD_VERSION + 1;
        assert!(bad.restore("g", 0).is_none());
    }
}
