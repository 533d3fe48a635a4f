//! Member ids a classic group handed out with MEMBER_ID_REQUIRED (JoinGroup v4+) and that were
//! not used yet: the joiner comes back with its id at once, so only a few are ever due.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use super::MEMBERS_PER_GROUP_MAX;

/// Ids handed out and not yet used, each with its expiry. At most [`MEMBERS_PER_GROUP_MAX`]:
/// a client that asks for ids and never comes back with them (any number of JoinGroups with no
/// member id) would otherwise make the group keep every one for a session timeout.
#[derive(Debug, Clone, Default)]
pub(super) struct PendingMemberIds {
    expiry_ms_by_id: BTreeMap<String, i64>,
}

impl PendingMemberIds {
    /// Keeps `member_id` until `expiry_ms`; when full, the id that expires first is forgotten
    /// (its joiner, if it ever comes back, gets UNKNOWN_MEMBER_ID and asks again).
    pub(super) fn insert(&mut self, member_id: String, expiry_ms: i64) {
        if self.expiry_ms_by_id.len() >= MEMBERS_PER_GROUP_MAX {
            let first_to_expire = self
                .expiry_ms_by_id
                .iter()
                .min_by_key(|(_, expiry_ms)| **expiry_ms)
                .map(|(id, _)| id.clone());
            if let Some(id) = first_to_expire {
                self.expiry_ms_by_id.remove(&id);
            }
        }
        self.expiry_ms_by_id.insert(member_id, expiry_ms);
    }

    /// Uses `member_id` up; whether it was handed out and is still due.
    pub(super) fn take(&mut self, member_id: &str) -> bool {
        self.expiry_ms_by_id.remove(member_id).is_some()
    }

    /// Forgets the ids expired at `now_ms`.
    pub(super) fn expire(&mut self, now_ms: i64) {
        self.expiry_ms_by_id
            .retain(|_, expiry_ms| *expiry_ms > now_ms);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.expiry_ms_by_id.is_empty()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.expiry_ms_by_id.len()
    }
}

impl super::Group {
    /// Whether the group was never joined and holds nothing: no members, no member id handed
    /// out, generation 0 (so never stored). The coordinator forgets such a group (made by a
    /// refused JoinGroup, or one whose handed-out ids expired) so clients can't grow it by one
    /// group per id they try.
    pub fn is_unused(&self) -> bool {
        self.phase == super::GroupPhase::Empty
            && self.members.is_empty()
            && self.pending_member_ids.expiry_ms_by_id.is_empty()
            && self.generation_id == 0
    }
}
