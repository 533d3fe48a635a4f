//! Settings Kafka deployments name and client test suites expect to set: this broker's id, and
//! how long a new classic group waits for more members before its first generation.
//!
//! Flattened into [`crate::config::Args`], so each is also a key of the `--config` TOML file.
#![forbid(unsafe_code)]

use clap::Args as ClapArgs;

/// Kafka's node.id (with its alias broker.id) and group.initial.rebalance.delay.ms.
#[derive(Debug, Clone, ClapArgs)]
pub struct NodeArgs {
    /// This broker's id (Kafka's node.id): the leader, replica, coordinator and controller every
    /// answer names, and the only broker id requests (DescribeConfigs, reassignments) may name.
    /// Nothing on disk records it, so it may change between restarts.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=i32::MAX as i64))]
    pub node_id: u32,

    /// How long a new (Empty) classic group waits for more members before its first join
    /// completes, so members starting together share one generation (Kafka's
    /// group.initial.rebalance.delay.ms, whose default is 3000; ours is shorter so tests and demos
    /// start fast). As in Kafka, a brand-new group's delay is extended by another such delay when
    /// members joined during it, never past the rebalance timeout. 0: the first join completes as
    /// soon as every member joined.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u32).range(0..=i32::MAX as i64))]
    pub group_initial_rebalance_delay_ms: u32,
}

impl NodeArgs {
    /// The id as the protocol's INT32 (the parser bounds it to `0..=i32::MAX`).
    pub fn node_id(&self) -> i32 {
        i32::try_from(self.node_id).unwrap_or(i32::MAX)
    }
}
