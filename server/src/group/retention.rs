//! Offset retention (Kafka's `offsets.retention.minutes`, KIP-211): a group without members whose
//! offsets are all older than the retention, and which has had no member for that long, is
//! deleted with its offsets (tombstones, as DeleteGroups writes them). Without it every group id
//! a client ever committed under stays in memory and in `__consumer_offsets` for ever.
//!
//! A group without members and without offsets is deleted at the first pass that sees it so
//! (Kafka's cleanup does the same, every `offsets.retention.check.interval.ms`).
//!
//! "Without members since" is when a pass first saw the group so (kept in memory only): after a
//! restart the clock starts again at the first pass, so a group is never expired earlier than
//! Kafka would, at most one retention later. A whole group expires at once, by its newest
//! commit; Kafka also drops a standalone group's single partitions one by one, which this does
//! not. A group with pending transactional offsets waits for its transaction to end.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;

use super::Coordinator;

impl Coordinator {
    /// Deletes the groups without members whose newest commit, and whose first sighting without
    /// members, are at least `retention_ms` before `now_ms`. Returns how many were deleted.
    pub async fn expire_groups(&self, now_ms: i64, retention_ms: i64) -> usize {
        let expired = self.groups_due(now_ms, retention_ms);
        let mut deleted = 0;
        for group_id in expired {
            // Checked again inside: a member may have joined while earlier ones were written.
            match self.delete(&group_id).await {
                Ok(()) => {
                    self.memberless_since_ms.borrow_mut().remove(&group_id);
                    deleted += 1;
                }
                Err(error) => {
                    tracing::debug!(group_id, ?error, "an expired group was not deleted")
                }
            }
        }
        if deleted > 0 {
            tracing::info!(
                deleted,
                "groups expired with their offsets (offsets.retention)"
            );
        }
        deleted
    }

    /// Notes which groups are without members (since when) and lists those due.
    fn groups_due(&self, now_ms: i64, retention_ms: i64) -> Vec<String> {
        let offsets = self.offsets.borrow();
        let classic = self.groups.borrow();
        let consumer = self.consumer_groups.borrow();
        let ids: BTreeSet<&String> = (offsets.keys())
            .chain(classic.keys())
            .chain(consumer.keys())
            .collect();
        let mut since = self.memberless_since_ms.borrow_mut();
        since.retain(|group_id, _| ids.contains(group_id));
        let mut due = Vec::new();
        for group_id in ids {
            let has_members = classic
                .get(group_id)
                .is_some_and(|group| !group.members.is_empty())
                || consumer
                    .get(group_id)
                    .is_some_and(|group| !group.members.is_empty());
            if has_members || !self.pending_txn_partitions(group_id).is_empty() {
                since.remove(group_id);
                continue;
            }
            let since_ms = *since.entry(group_id.clone()).or_insert(now_ms);
            // Empty and without offsets: nothing to keep, so it goes at this pass, as Kafka's
            // cleanup removes an empty group that has no offsets.
            if offsets
                .get(group_id)
                .is_none_or(|group_offsets| group_offsets.is_empty())
            {
                due.push(group_id.clone());
                continue;
            }
            let newest_commit_ms = (offsets.get(group_id).into_iter())
                .flat_map(|group_offsets| group_offsets.values())
                .map(|committed| committed.commit_ms)
                .max()
                .unwrap_or(i64::MIN);
            if now_ms.saturating_sub(since_ms.max(newest_commit_ms)) >= retention_ms {
                due.push(group_id.clone());
            }
        }
        due
    }
}
