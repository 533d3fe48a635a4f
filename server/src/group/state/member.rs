//! One member of a classic group as the coordinator knows it.
#![forbid(unsafe_code)]

use bytes::Bytes;

/// One member as the group knows it.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub(super) last_heartbeat_ms: i64,
    pub(super) awaiting_join: bool,
    pub(super) awaiting_sync: bool,
}

impl Member {
    /// A member loaded from `__consumer_offsets` (a Stable group's record): its session starts at
    /// `now_ms`. `client` is (client id, host); `timeouts_ms` is (session, rebalance).
    pub fn restored(
        member_id: String,
        group_instance_id: Option<String>,
        client: (String, String),
        timeouts_ms: (i64, i64),
        protocols: Vec<(String, Bytes)>,
        assignment: Bytes,
        now_ms: i64,
    ) -> Self {
        Self {
            member_id,
            group_instance_id,
            client_id: client.0,
            client_host: client.1,
            session_timeout_ms: timeouts_ms.0,
            rebalance_timeout_ms: timeouts_ms.1,
            protocols,
            assignment,
            last_heartbeat_ms: now_ms,
            awaiting_join: false,
            awaiting_sync: false,
        }
    }
}
