//! The named scenarios of `ringtail-loadgen matrix`: each is a workload plus the broker settings
//! it needs, run once per broker and disk layout. A fixed-rate scenario takes its rate from the
//! max-produce result measured on the same broker and layout in the same matrix run.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use crate::workload::{Acks, ConsumerMode, ConsumerPriority, MessageSize, StartFrom, Workload};

/// What a scenario's rate is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Rate {
    FlatOut,
    /// This fraction of the max-produce msgs/s measured on the same broker and layout.
    FractionOfMax(f64),
    MsgsPerSecond(f64),
}

/// One named scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// The workload; bootstrap, topic names and durations are filled in per run.
    pub workload: Workload,
    pub rate: Rate,
    /// Broker settings this scenario needs (Ringtail flags, e.g. the flush policy).
    pub ringtail_args: Vec<String>,
    /// The same settings for Apache Kafka (`scripts/kafka-peer.sh run` flags).
    #[serde(default)]
    pub kafka_args: Vec<String>,
    /// Drop the broker's files from the page cache once the backlog is built, so the catch-up
    /// consumer reads it from disk.
    #[serde(default)]
    pub evict_backlog: bool,
}

/// The scenario whose result other scenarios' rates derive from.
pub const MAX_PRODUCE: &str = "max-produce";
/// One producer flat out with one consumer reading everything.
pub const MAX_PRODUCE_CONSUME: &str = "max-produce-consume";

/// Bytes per message in every scenario: 1 KiB, the size the goals are stated in.
const MESSAGE_BYTES: usize = 1024;

fn base() -> Workload {
    Workload {
        message_size: MessageSize::Fixed {
            bytes: MESSAGE_BYTES,
        },
        partitions: 4,
        producers: 1,
        subscriptions: 1,
        consumers_per_subscription: 1,
        acks: Acks::Leader,
        ..Workload::default()
    }
}

/// Moves the one partition of a busy topic to the other data dir during a fixed-rate run
/// (layout `jbod`): produce p99 during the move beside the p99 before it, the switch pause, CPU.
fn partition_move() -> Scenario {
    Scenario {
        name: PARTITION_MOVE.to_string(),
        description: "Partition move: 1 partition, 1 producer at a fixed 5000 msgs/s of 1 KiB over a 500 MB backlog, moved to the other data dir 5 s into the measured time (layout jbod, copy paced at 50 MB/s)".to_string(),
        workload: Workload {
            partitions: 1,
            consumers_per_subscription: 0,
            backlog_bytes: 500_000_000,
            move_partition: Some(crate::partition_move::MovePlan {
                partition: 0,
                after_measure_start_s: 5.0,
                timeout_s: 300.0,
            }),
            ..base()
        },
        rate: Rate::MsgsPerSecond(5000.0),
        ringtail_args: vec!["--move-bytes-per-sec".to_string(), "50000000".to_string()],
        kafka_args: Vec::new(),
        evict_backlog: false,
    }
}

/// The scenario that moves a partition between data dirs.
pub const PARTITION_MOVE: &str = "partition-move";

/// Every scenario, in the order a matrix runs them (max-produce first: others depend on it).
pub fn all() -> Vec<Scenario> {
    let scenario = |name: &str, description: &str, workload: Workload, rate: Rate| Scenario {
        name: name.to_string(),
        description: description.to_string(),
        workload,
        rate,
        ringtail_args: Vec::new(),
        kafka_args: Vec::new(),
        evict_backlog: false,
    };
    let mut scenarios = vec![
        scenario(
            MAX_PRODUCE,
            "Max produce throughput: acks=1, 1 KiB messages, 2 producers flat out, no consumers",
            Workload {
                producers: 2,
                consumers_per_subscription: 0,
                ..base()
            },
            Rate::FlatOut,
        ),
        // Issue 13's throughput goal is stated for this shape: produce >= 1 GB/s while one
        // consumer keeps up.
        scenario(
            MAX_PRODUCE_CONSUME,
            "Max produce with a reader: acks=1, 1 KiB messages, 1 producer flat out and 1 consumer reading everything",
            base(),
            Rate::FlatOut,
        ),
        Scenario {
            ringtail_args: vec!["--flush".to_string(), "every_batch".to_string()],
            // log.flush.interval.messages=1: Kafka fsyncs the log after each appended batch.
            kafka_args: vec!["--flush-messages".to_string(), "1".to_string()],
            ..scenario(
                "durable-produce",
                "Durable produce: acks=all with every batch fsynced before the ack, 1 KiB messages, flat out",
                Workload {
                    producers: 2,
                    consumers_per_subscription: 0,
                    acks: Acks::All,
                    ..base()
                },
                Rate::FlatOut,
            )
        },
        scenario(
            "fixed-rate-latency",
            "Produce latency at half the max: 50% of max-produce's rate (like it, produce only)",
            Workload {
                consumers_per_subscription: 0,
                ..base()
            },
            Rate::FractionOfMax(0.5),
        ),
        scenario(
            "e2e-latency",
            "End-to-end latency: 1 producer at 25% of max-produce's rate, 1 consumer",
            base(),
            Rate::FractionOfMax(0.25),
        ),
        scenario(
            "fan-out",
            "Fan-out: 1 producer at 25% of max, 4 consumer groups each reading everything",
            Workload {
                subscriptions: 4,
                consumer_mode: ConsumerMode::Group,
                ..base()
            },
            Rate::FractionOfMax(0.25),
        ),
        scenario(
            "catch-up",
            "Catch-up read: a consumer starts at the log start of a 1 GB backlog while a producer runs at 25% of max",
            Workload {
                start_from: StartFrom::Earliest,
                backlog_bytes: 1_000_000_000,
                ..base()
            },
            Rate::FractionOfMax(0.25),
        ),
    ];
    scenarios.extend(cold_catch_up());
    scenarios.push(partition_move());
    for partitions in [1, 16, 256, 1024] {
        scenarios.push(scenario(
            &format!("partitions-{partitions}"),
            &format!(
                "{partitions} partition(s): 1 producer (round-robin) and 1 consumer, flat out"
            ),
            Workload {
                partitions,
                partitioner: if partitions == 1 {
                    crate::workload::PartitionerKind::Sticky
                } else {
                    crate::workload::PartitionerKind::RoundRobin
                },
                ..base()
            },
            Rate::FlatOut,
        ));
    }
    scenarios
}

/// Producer rate of the cold catch-up scenarios: the measurements' 50,000 msg/s of 1 KiB
/// (about 8% of the max here), fixed so that the four runs compare.
const COLD_CATCH_UP_MSGS_PER_S: f64 = 50_000.0;

/// The cold catch-up whose reader's client stands for one on another machine.
pub const COLD_CATCH_UP_IDLE_CLIENT: &str = "cold-catch-up-idle-client";

/// The page-cache-aware fetch's scenarios (issue 13): a fixed-rate producer, and a consumer
/// catching up from offset 0 of a backlog dropped from the page cache, with the broker's residency
/// check on and off, and with the check on and the reader's client at idle priority (standing for
/// a client on another machine); and the producer alone beside the same evicted backlog, for its
/// baseline p99.
fn cold_catch_up() -> Vec<Scenario> {
    let workload = Workload {
        partitions: 8,
        start_from: StartFrom::Earliest,
        // Enough that the reader is still behind when the run ends (about 1-1.5 GB/s here, over
        // 12-13 s): with 4 GB it caught up in 3 s and the producer's p99 was mostly measured
        // beside a reader following the tail (results/cold-catch-up-sustained/).
        backlog_bytes: 20_000_000_000,
        ..base()
    };
    let variant = |name: &str, description: &str, workload: Workload, check: &str| Scenario {
        name: name.to_string(),
        description: description.to_string(),
        workload,
        rate: Rate::MsgsPerSecond(COLD_CATCH_UP_MSGS_PER_S),
        ringtail_args: vec!["--fetch-residency-check".to_string(), check.to_string()],
        kafka_args: Vec::new(),
        evict_backlog: true,
    };
    vec![
        variant(
            "cold-catch-up-alone",
            "Baseline of cold-catch-up: the 50k msg/s producer beside an evicted 20 GB backlog nobody reads",
            Workload {
                consumers_per_subscription: 0,
                ..workload.clone()
            },
            "on",
        ),
        variant(
            "cold-catch-up",
            "Cold catch-up: 50k msg/s producer, a consumer from offset 0 of a 20 GB backlog dropped from the page cache (residency check on)",
            workload.clone(),
            "on",
        ),
        // The reader's client here shares the broker's two cores at the producers' priority; a
        // catch-up consumer would normally run on another machine. This variant moves its
        // copying and CRC checks out of the way (`SCHED_IDLE`, yielding every 256 KiB), so the
        // producer's p99 measures mostly the broker's isolation, not the client's CPU
        // (results/cold-send-thread/).
        variant(
            COLD_CATCH_UP_IDLE_CLIENT,
            "cold-catch-up with the reader's client off the producers' way (SCHED_IDLE, yielding every 256 KiB), standing for a client on another machine",
            Workload {
                consumer_priority: ConsumerPriority::Idle,
                ..workload.clone()
            },
            "on",
        ),
        variant(
            "cold-catch-up-naive",
            "cold-catch-up with the broker's residency check off (every range spliced unchecked)",
            workload,
            "off",
        ),
    ]
}

/// Scenarios by name, in matrix order; an unknown name is an error listing the known ones.
pub fn select(names: &[String]) -> Result<Vec<Scenario>, String> {
    let all = all();
    if names.is_empty() {
        return Ok(all);
    }
    for name in names {
        if !all.iter().any(|scenario| &scenario.name == name) {
            let known: Vec<&str> = all.iter().map(|scenario| scenario.name.as_str()).collect();
            return Err(format!(
                "unknown scenario {name:?}; known: {}",
                known.join(", ")
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|scenario| names.contains(&scenario.name))
        .collect())
}

impl Scenario {
    /// The rate this scenario runs at, given max-produce's msgs/s on the same broker and layout.
    pub fn rate_msgs_per_s(
        &self,
        max_produce_msgs_per_s: Option<f64>,
    ) -> Result<Option<f64>, String> {
        match self.rate {
            Rate::FlatOut => Ok(None),
            Rate::MsgsPerSecond(rate) => Ok(Some(rate)),
            Rate::FractionOfMax(fraction) => match max_produce_msgs_per_s {
                Some(max) if max > 0.0 => Ok(Some((max * fraction).max(1.0))),
                _ => Err(format!(
                    "{} runs at {:.0}% of {MAX_PRODUCE}'s rate: run {MAX_PRODUCE} first on the same broker and layout",
                    self.name,
                    fraction * 100.0
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_max_produce_comes_first() {
        let all = all();
        assert_eq!(all[0].name, MAX_PRODUCE);
        let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn selection_keeps_matrix_order_and_refuses_unknown_names() {
        let picked = select(&["partitions-16".into(), MAX_PRODUCE.into()]).unwrap();
        assert_eq!(picked[0].name, MAX_PRODUCE);
        assert_eq!(picked[1].name, "partitions-16");
        assert!(select(&["nope".into()])
            .unwrap_err()
            .contains("max-produce"));
    }

    #[test]
    fn cold_catch_up_runs_differ_only_in_the_check_and_the_reader() {
        // The four runs compare only if nothing else differs: same rate, backlog, eviction.
        let runs = select(&[
            "cold-catch-up-alone".into(),
            "cold-catch-up".into(),
            "cold-catch-up-naive".into(),
            COLD_CATCH_UP_IDLE_CLIENT.into(),
        ])
        .unwrap();
        let [alone, on, idle_client, off] = [&runs[0], &runs[1], &runs[2], &runs[3]];
        for run in [alone, on, idle_client, off] {
            assert!(run.evict_backlog);
            assert_eq!(run.rate, Rate::MsgsPerSecond(COLD_CATCH_UP_MSGS_PER_S));
            assert!(run.workload.backlog_bytes > 0);
        }
        assert_eq!(on.workload, off.workload);
        assert_eq!(on.ringtail_args, ["--fetch-residency-check", "on"]);
        assert_eq!(off.ringtail_args, ["--fetch-residency-check", "off"]);
        assert_eq!(alone.ringtail_args, on.ringtail_args);
        assert_eq!(alone.workload.consumers_per_subscription, 0);
        assert_eq!(on.workload.consumers_per_subscription, 1);
        // The idle-client variant differs from cold-catch-up in its client's priority only.
        assert_eq!(idle_client.name, COLD_CATCH_UP_IDLE_CLIENT);
        assert_eq!(idle_client.ringtail_args, on.ringtail_args);
        assert_eq!(on.workload.consumer_priority, ConsumerPriority::Normal);
        assert_eq!(
            idle_client.workload,
            Workload {
                consumer_priority: ConsumerPriority::Idle,
                ..on.workload.clone()
            }
        );
    }

    #[test]
    fn max_produce_consume_is_one_flat_out_producer_and_one_reader() {
        let run = select(&[MAX_PRODUCE_CONSUME.into()]).unwrap().remove(0);
        assert_eq!(run.rate, Rate::FlatOut);
        assert_eq!(run.workload.producers, 1);
        assert_eq!(run.workload.subscriptions, 1);
        assert_eq!(run.workload.consumers_per_subscription, 1);
        assert_eq!(run.workload.backlog_bytes, 0, "the reader follows the tail");
    }

    #[test]
    fn derived_rates_need_the_max() {
        let fixed = select(&["fixed-rate-latency".into()]).unwrap().remove(0);
        assert_eq!(fixed.rate_msgs_per_s(Some(1000.0)).unwrap(), Some(500.0));
        assert!(fixed.rate_msgs_per_s(None).is_err());
    }
}
