//! The partition-move scenario's action: during a fixed-rate run, move one busy partition to
//! another data dir of the broker (AlterReplicaLogDirs, as `kafka-reassign-partitions` with
//! `log_dirs` does) and mark when the move ran, so produce latency is reported before and during
//! it. A client only: the broker is asked over the Kafka protocol and watched with
//! DescribeLogDirs until the partition lives in its new dir.
//!
//! # Invariants worth naming
//! - The marks only move forward: unset, then a start, then an end at or after the start.
//! - A message is counted "during" the move when its intended send time falls between the marks
//!   (under a rate, a message delayed by the move's pause is charged to the move).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::connection::Connection;
use crate::client::log_dirs;
use crate::client::ClientError;
use crate::clock::Clock;
use crate::cpu::ProcessCpu;
use crate::histogram::Latencies;
use crate::report::Percentiles;
use crate::run::CpuProbe as _;

/// What the scenario moves, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovePlan {
    /// Partition of the workload's first topic to move.
    pub partition: i32,
    /// Seconds into the measured window at which the move is asked for.
    pub after_measure_start_s: f64,
    /// How long the move may take before the run reports it as failed.
    pub timeout_s: f64,
}

/// Between two looks at a running move.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const UNSET: u64 = u64::MAX;

/// When the move ran, in microseconds on the run's clock; shared with the producers.
#[derive(Debug)]
pub struct MoveMarks {
    start_us: AtomicU64,
    end_us: AtomicU64,
}

impl Default for MoveMarks {
    fn default() -> Self {
        Self {
            start_us: AtomicU64::new(UNSET),
            end_us: AtomicU64::new(UNSET),
        }
    }
}

/// Where a message's intended send time falls relative to the move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovePhase {
    Before,
    During,
    After,
}

impl MoveMarks {
    fn mark_start(&self, at: Duration) {
        assert_eq!(self.start_us.load(Ordering::Relaxed), UNSET, "one move");
        self.start_us
            .store(at.as_micros() as u64, Ordering::Relaxed);
    }

    fn mark_end(&self, at: Duration) {
        let start = self.start_us.load(Ordering::Relaxed);
        assert_ne!(start, UNSET, "a move ends after it started");
        self.end_us
            .store((at.as_micros() as u64).max(start), Ordering::Relaxed);
    }

    fn end_if_open(&self, at: Duration) {
        let open = self.start_us.load(Ordering::Relaxed) != UNSET
            && self.end_us.load(Ordering::Relaxed) == UNSET;
        if open {
            self.mark_end(at);
        }
    }

    /// The phase of a message intended to be sent at `from` (since the run's start).
    pub fn phase_of(&self, from: Duration) -> MovePhase {
        let from_us = from.as_micros() as u64;
        if from_us < self.start_us.load(Ordering::Relaxed) {
            MovePhase::Before
        } else if from_us < self.end_us.load(Ordering::Relaxed) {
            MovePhase::During
        } else {
            MovePhase::After
        }
    }
}

/// Produce latencies split by the move's phases (measured messages only).
#[derive(Default)]
pub struct PhaseLatencies {
    pub before: Latencies,
    pub during: Latencies,
}

impl PhaseLatencies {
    pub fn record_us(&mut self, phase: MovePhase, latency_us: u64) {
        match phase {
            MovePhase::Before => self.before.record_us(latency_us),
            MovePhase::During => self.during.record_us(latency_us),
            MovePhase::After => {}
        }
    }

    pub fn merge(&mut self, other: &PhaseLatencies) {
        self.before.merge(&other.before);
        self.during.merge(&other.during);
    }
}

/// What the move thread saw.
#[derive(Debug, Clone)]
pub struct MoveOutcome {
    pub from_dir: String,
    pub to_dir: String,
    /// Since the run's start.
    pub started: Duration,
    pub took: Option<Duration>,
    pub broker_cpu_s: Option<f64>,
    pub error: Option<String>,
}

/// The move as a report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveSummary {
    pub topic: String,
    pub partition: i32,
    pub from_dir: String,
    pub to_dir: String,
    /// Seconds since the run's start when the move was asked for.
    pub started_s: f64,
    /// Seconds until the partition lived in `to_dir` (`None`: it did not).
    pub move_s: Option<f64>,
    /// Produce latency of measured messages intended before the move, and during it.
    pub produce_latency_before_us: Percentiles,
    pub produce_latency_during_us: Percentiles,
    /// `produce_latency_during_us.p99 / produce_latency_before_us.p99`.
    pub p99_during_over_before: Option<f64>,
    /// Broker CPU seconds used while the move ran.
    pub broker_cpu_during_s: Option<f64>,
    /// How long appends waited at the switch, as the broker logged it (`switch_pause_ms=`);
    /// filled in by the matrix, which has the broker's log.
    pub switch_pause_ms: Option<u64>,
    pub error: Option<String>,
}

impl MoveSummary {
    pub fn new(
        topic: &str,
        plan: &MovePlan,
        outcome: &MoveOutcome,
        phases: &PhaseLatencies,
    ) -> Self {
        let before: Percentiles = phases.before.summary().into();
        let during: Percentiles = phases.during.summary().into();
        Self {
            topic: topic.to_string(),
            partition: plan.partition,
            from_dir: outcome.from_dir.clone(),
            to_dir: outcome.to_dir.clone(),
            started_s: outcome.started.as_secs_f64(),
            move_s: outcome.took.map(|took| took.as_secs_f64()),
            p99_during_over_before: (before.p99 > 0 && during.count > 0)
                .then(|| during.p99 as f64 / before.p99 as f64),
            produce_latency_before_us: before,
            produce_latency_during_us: during,
            broker_cpu_during_s: outcome.broker_cpu_s,
            switch_pause_ms: None,
            error: outcome.error.clone(),
        }
    }
}

/// Starts the move thread: at `at` on the run's clock it asks `bootstrap` (a single broker) to
/// move `topic`-`plan.partition` to a data dir other than its own, marks the start and the end.
pub fn spawn(
    plan: MovePlan,
    bootstrap: String,
    topic: String,
    clock: Clock,
    at: Duration,
    marks: Arc<MoveMarks>,
    broker_pid: Option<u32>,
) -> JoinHandle<Result<MoveOutcome, ClientError>> {
    thread::spawn(move || {
        thread::sleep(at.saturating_sub(clock.elapsed()));
        let cpu = ProcessCpu { broker_pid };
        let mut outcome = MoveOutcome {
            from_dir: String::new(),
            to_dir: String::new(),
            started: clock.elapsed(),
            took: None,
            broker_cpu_s: None,
            error: None,
        };
        let cpu_before = cpu.broker_cpu_s();
        if let Err(error) = run_move(&plan, &bootstrap, &topic, &clock, &marks, &mut outcome) {
            outcome.error = Some(error);
        }
        // Failed or timed out after it started: "during" ends here, not never.
        marks.end_if_open(clock.elapsed());
        outcome.broker_cpu_s = cpu_before
            .zip(cpu.broker_cpu_s())
            .map(|(before, after)| after - before);
        // A failed move is an outcome to report, not an error of the run.
        Ok(outcome)
    })
}

fn run_move(
    plan: &MovePlan,
    bootstrap: &str,
    topic: &str,
    clock: &Clock,
    marks: &MoveMarks,
    outcome: &mut MoveOutcome,
) -> Result<(), String> {
    let mut connection = Connection::connect(bootstrap).map_err(|error| error.to_string())?;
    let (dirs, home) = log_dirs::locate(&mut connection, topic, plan.partition)
        .map_err(|error| error.to_string())?;
    let from = home
        .dir
        .ok_or_else(|| format!("{topic}-{} is in no data dir", plan.partition))?;
    let to = dirs
        .iter()
        .find(|dir| **dir != from)
        .cloned()
        .ok_or_else(|| format!("the broker has one data dir ({from}): nowhere to move to"))?;
    outcome.from_dir = from;
    outcome.to_dir = to.clone();
    outcome.started = clock.elapsed();
    marks.mark_start(outcome.started);
    let asked = Instant::now();
    log_dirs::alter_dir(&mut connection, topic, plan.partition, &to)
        .map_err(|error| error.to_string())?;
    let deadline = asked + Duration::from_secs_f64(plan.timeout_s);
    loop {
        let (_, home) = log_dirs::locate(&mut connection, topic, plan.partition)
            .map_err(|error| error.to_string())?;
        if home.dir.as_deref() == Some(to.as_str()) && home.future_dir.is_none() {
            marks.mark_end(clock.elapsed());
            outcome.took = Some(asked.elapsed());
            return Ok(());
        }
        if home.future_dir.is_none() {
            return Err(format!(
                "the move failed: the partition serves from {:?} (see the broker's log)",
                home.dir
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("still moving after {} s", plan.timeout_s));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_marks() {
        // Unset marks: everything is before; then start and end split the timeline.
        let marks = MoveMarks::default();
        assert_eq!(marks.phase_of(Duration::from_secs(100)), MovePhase::Before);
        marks.mark_start(Duration::from_secs(10));
        assert_eq!(marks.phase_of(Duration::from_secs(9)), MovePhase::Before);
        assert_eq!(marks.phase_of(Duration::from_secs(100)), MovePhase::During);
        marks.mark_end(Duration::from_secs(12));
        assert_eq!(marks.phase_of(Duration::from_secs(11)), MovePhase::During);
        assert_eq!(marks.phase_of(Duration::from_secs(12)), MovePhase::After);
        let mut phases = PhaseLatencies::default();
        phases.record_us(MovePhase::Before, 100);
        phases.record_us(MovePhase::During, 900);
        phases.record_us(MovePhase::After, 5);
        assert_eq!(phases.before.summary().count, 1);
        assert_eq!(phases.during.summary().count, 1);
    }
}
