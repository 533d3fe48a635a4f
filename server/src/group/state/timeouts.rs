//! A classic group's timers: session expiry, and the deadline of the members' SyncGroups once a
//! join completed (Kafka's pending-sync timeout). The join phase's deadline is in `mod.rs`.
#![forbid(unsafe_code)]

use super::{Effect, Group, GroupPhase};

impl Group {
    /// Expires members whose session ran out and completes rebalances whose time is up.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        self.pending_member_ids.expire(now_ms);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| {
                // A member waiting in JoinGroup or SyncGroup sends no heartbeats (librdkafka
                // does not, and cannot on its connection): as in Kafka, it is kept alive until
                // the rebalance ends. The leader it waits for is not, so a dead leader still
                // ends the wait.
                !member.awaiting_join
                    && !member.awaiting_sync
                    && now_ms - member.last_heartbeat_ms > member.session_timeout_ms
            })
            .map(|member| member.member_id.clone())
            .collect();
        let mut effects = Vec::new();
        for member_id in expired {
            tracing::info!(group = %self.group_id, member = %member_id, "session timed out");
            effects.extend(self.remove_member(&member_id, now_ms));
        }
        effects.extend(self.expire_pending_syncs(now_ms));
        effects.extend(self.maybe_complete_join(now_ms));
        effects
    }

    /// The longest rebalance timeout of the members: how long a rebalance waits for them.
    pub(super) fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|member| member.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// A rebalance timeout after the join completed, the members that have not sent their
    /// SyncGroup are removed (the group rebalances): followers parked in SyncGroup are kept
    /// alive without heartbeats, so a leader that heartbeats but never syncs would otherwise
    /// hold them there for ever.
    fn expire_pending_syncs(&mut self, now_ms: i64) -> Vec<Effect> {
        if self.phase != GroupPhase::CompletingRebalance || now_ms < self.rebalance_deadline_ms {
            return Vec::new();
        }
        let late: Vec<String> = self
            .members
            .values()
            .filter(|member| !member.awaiting_sync)
            .map(|member| member.member_id.clone())
            .collect();
        let mut effects = Vec::new();
        for member_id in late {
            tracing::info!(group = %self.group_id, member = %member_id, "no SyncGroup in time");
            effects.extend(self.remove_member(&member_id, now_ms));
        }
        effects
    }
}
