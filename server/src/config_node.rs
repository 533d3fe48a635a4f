//! Settings Kafka deployments name and client test suites expect to set: this broker's id, how
//! long a new classic group waits for more members before its first generation, and the bounds
//! of consumer (KIP-848) groups' session timeout and heartbeat interval (the broker's own and
//! every group config's, `configs/group.rs`).
//!
//! Flattened into [`crate::config::Args`], so each is also a key of the `--config` TOML file.
#![forbid(unsafe_code)]

use anyhow::{bail, Result};
use clap::Args as ClapArgs;

use crate::group::consumer::group_config::ConsumerBounds;
use crate::group::consumer::ConsumerGroupConfig;

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

    /// Consumer (KIP-848) groups: the shortest session timeout, of the broker
    /// (`--group-consumer-session-timeout-ms`) and of a group's `consumer.session.timeout.ms`
    /// (Kafka's group.consumer.min.session.timeout.ms).
    #[arg(long, value_name = "MS", default_value_t = 45_000, value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub group_consumer_min_session_timeout_ms: u32,

    /// Consumer (KIP-848) groups: the longest session timeout (Kafka's
    /// group.consumer.max.session.timeout.ms).
    #[arg(long, value_name = "MS", default_value_t = 60_000, value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub group_consumer_max_session_timeout_ms: u32,

    /// Consumer (KIP-848) groups: the shortest heartbeat interval, of the broker
    /// (`--group-consumer-heartbeat-interval-ms`) and of a group's
    /// `consumer.heartbeat.interval.ms` (Kafka's group.consumer.min.heartbeat.interval.ms).
    #[arg(long, value_name = "MS", default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub group_consumer_min_heartbeat_interval_ms: u32,

    /// Consumer (KIP-848) groups: the longest heartbeat interval (Kafka's
    /// group.consumer.max.heartbeat.interval.ms).
    #[arg(long, value_name = "MS", default_value_t = 15_000, value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub group_consumer_max_heartbeat_interval_ms: u32,
}

impl NodeArgs {
    /// The id as the protocol's INT32 (the parser bounds it to `0..=i32::MAX`).
    pub fn node_id(&self) -> i32 {
        i32::try_from(self.node_id).unwrap_or(i32::MAX)
    }
}

impl NodeArgs {
    /// The group timing flags, checked as Kafka's GroupCoordinatorConfig checks them: the
    /// consumer groups' bounds in order, the broker's session timeout (`session`) and heartbeat
    /// interval (`interval`) within them, the interval shorter than the session; the classic
    /// session bounds (`classic`: Kafka's group.{min,max}.session.timeout.ms) in order.
    pub fn consumer_group_config(
        &self,
        session: u32,
        interval: u32,
        classic: (u32, u32),
    ) -> Result<ConsumerGroupConfig> {
        let checks = [
            (
                "--group-consumer-session-timeout-ms",
                session,
                "--group-consumer-min-session-timeout-ms",
                self.group_consumer_min_session_timeout_ms,
                "--group-consumer-max-session-timeout-ms",
                self.group_consumer_max_session_timeout_ms,
            ),
            (
                "--group-consumer-heartbeat-interval-ms",
                interval,
                "--group-consumer-min-heartbeat-interval-ms",
                self.group_consumer_min_heartbeat_interval_ms,
                "--group-consumer-max-heartbeat-interval-ms",
                self.group_consumer_max_heartbeat_interval_ms,
            ),
        ];
        for (name, value, min_name, min, max_name, max) in checks {
            if min > max {
                bail!("{max_name} ({max}) must not be below {min_name} ({min})");
            }
            if !(min..=max).contains(&value) {
                bail!("{name} ({value}) must be within {min_name} ({min}) and {max_name} ({max})");
            }
        }
        if interval == 0 || interval >= session {
            bail!(
                "--group-consumer-heartbeat-interval-ms ({interval}) must be above 0 and below \
                 --group-consumer-session-timeout-ms ({session})"
            );
        }
        let (min, max) = classic;
        if min > max {
            bail!(
                "--group-min-session-timeout-ms ({min}) must not be above \
                 --group-max-session-timeout-ms ({max})"
            );
        }
        let ms = i64::from;
        Ok(ConsumerGroupConfig {
            session_timeout_ms: ms(session),
            heartbeat_interval_ms: ms(interval),
            classic_min_session_timeout_ms: ms(min),
            classic_max_session_timeout_ms: ms(max),
            classic_initial_rebalance_delay_ms: ms(self.group_initial_rebalance_delay_ms),
            bounds: ConsumerBounds {
                min_session_timeout_ms: ms(self.group_consumer_min_session_timeout_ms),
                max_session_timeout_ms: ms(self.group_consumer_max_session_timeout_ms),
                min_heartbeat_interval_ms: ms(self.group_consumer_min_heartbeat_interval_ms),
                max_heartbeat_interval_ms: ms(self.group_consumer_max_heartbeat_interval_ms),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Args;

    fn parse(flags: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("ringtail").chain(flags.iter().copied())).unwrap()
    }

    #[test]
    fn consumer_group_bounds_have_kafkas_defaults_and_bound_the_broker_values() {
        let groups = parse(&[]).consumer_group_config().unwrap();
        assert_eq!(
            groups.bounds,
            crate::group::consumer::group_config::ConsumerBounds::KAFKA
        );
        // As Kafka's GroupCoordinatorConfig: the broker's own values within the bounds.
        for flags in [
            &["--group-consumer-session-timeout-ms", "6000"][..],
            &["--group-consumer-heartbeat-interval-ms", "20000"],
            &["--group-consumer-min-session-timeout-ms", "70000"],
            &["--group-consumer-max-heartbeat-interval-ms", "4000"],
        ] {
            assert!(parse(flags).consumer_group_config().is_err(), "{flags:?}");
        }
        let short = parse(&[
            "--group-consumer-session-timeout-ms",
            "6000",
            "--group-consumer-min-session-timeout-ms",
            "6000",
            "--group-consumer-heartbeat-interval-ms",
            "1000",
            "--group-consumer-min-heartbeat-interval-ms",
            "1000",
        ])
        .consumer_group_config()
        .unwrap();
        assert_eq!(short.bounds.min_session_timeout_ms, 6_000);
        assert_eq!(short.bounds.min_heartbeat_interval_ms, 1_000);
    }
}
