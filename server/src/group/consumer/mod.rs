//! Consumer groups of the next-generation protocol (KIP-848: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe), beside the classic ones: the broker assigns partitions (`assignor`),
//! each member reconciles towards its target (`member`), the group runs on epochs (`state`), and
//! its state is persisted in `__consumer_offsets` (`record`); a group's own session timeout and
//! heartbeat interval (its GROUP config resource) are checked and resolved in `group_config`. The coordinator's side is in
//! `coordinator.rs`.
#![forbid(unsafe_code)]

pub mod assignor;
pub mod coordinator;
pub mod group_config;
#[cfg(test)]
mod group_config_tests;
mod heartbeat;
pub mod member;
pub mod record;
pub mod state;
mod subscription;

pub use assignor::{Assignment, TopicCounts};
pub use state::{ConsumerGroup, ConsumerGroupConfig, HeartbeatRequest};
