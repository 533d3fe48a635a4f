//! The result of one run, as written to JSON. Field names are a contract that other scripts read:
//! `produce.{messages,bytes,mb_per_s,msgs_per_s,latency_us}`, `consume.{messages,bytes,mb_per_s,
//! e2e_latency_us}`, `config`, `machine`, `broker_cpu_s`. MB is 10^6 bytes.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use crate::histogram::LatencySummary;
use crate::workload::Workload;

/// Latency percentiles in microseconds, as written to reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl From<LatencySummary> for Percentiles {
    fn from(summary: LatencySummary) -> Self {
        Self {
            count: summary.count,
            p50: summary.p50_us,
            p90: summary.p90_us,
            p99: summary.p99_us,
            p999: summary.p999_us,
            p9999: summary.p9999_us,
            max: summary.max_us,
        }
    }
}

/// What producers got acknowledged during the measured time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProduceSummary {
    /// Acknowledged messages over the whole run (warm-up included), so that it equals the sum of
    /// the partitions' high-watermark growth.
    pub messages: u64,
    /// Value bytes of those messages.
    pub bytes: u64,
    /// Messages acknowledged in the measured window only (the rates below use these).
    pub measured_messages: u64,
    pub measured_bytes: u64,
    /// Seconds the rates are over: the measured duration, or longer when the broker fell behind
    /// a target rate and acknowledged measured messages after its end.
    #[serde(default)]
    pub measured_s: f64,
    pub mb_per_s: f64,
    pub msgs_per_s: f64,
    /// Send (or intended send, under a rate) to acknowledgement.
    pub latency_us: Percentiles,
    /// The first part of `latency_us`, per message: from its (intended) send to its request's
    /// hand-off to the connection (linger, batching, the producer thread running late).
    #[serde(default)]
    pub send_wait_us: Percentiles,
    /// Per Produce request holding a measured message: from its hand-off to the connection to its
    /// answer read, the network both ways and the broker (none under acks=0).
    #[serde(default)]
    pub request_round_trip_us: Percentiles,
    /// Per such request, the part of its round trip spent writing it into the socket (blocked
    /// while the socket's send buffer is full).
    #[serde(default)]
    pub request_write_us: Percentiles,
    /// Messages acknowledged while building the backlog before the run (catch-up scenarios); not
    /// in `messages`, but consumers starting from the log start read them too.
    #[serde(default)]
    pub backlog_messages: u64,
    /// Messages whose produce failed (error code or lost connection); not in `messages`.
    pub failed_messages: u64,
    /// Error name → messages that failed with it.
    pub errors: std::collections::BTreeMap<String, u64>,
}

/// What consumers read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumeSummary {
    /// Messages consumed over the whole run, summed over subscriptions.
    pub messages: u64,
    pub bytes: u64,
    /// Read during the measured window, whenever produced (a catch-up reader's backlog too);
    /// the rates below use these.
    pub measured_messages: u64,
    pub measured_bytes: u64,
    pub mb_per_s: f64,
    pub msgs_per_s: f64,
    /// Produced (intended send time, carried in the record) to consumed, for messages intended
    /// to be sent in the measured window.
    pub e2e_latency_us: Percentiles,
}

/// One second of the run (throughput over time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the start of the run (warm-up included); the sample covers `[t_s - 1, t_s)`.
    pub t_s: f64,
    pub produced_messages: u64,
    pub produced_bytes: u64,
    pub consumed_messages: u64,
    pub consumed_bytes: u64,
    /// The longest produce latency (measured messages) acknowledged in this second: a stall shows
    /// as one second's spike, where the run's percentiles only say that one happened.
    #[serde(default)]
    pub produce_latency_max_us: u64,
}

/// (percentile, microseconds) points of a latency distribution, for charts.
pub type PercentileCurve = Vec<(f64, u64)>;

/// Where it ran: enough to tell two machines apart and to rebuild the loadgen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    /// `git describe --always --dirty` of the loadgen's source tree, or "unknown".
    pub loadgen_commit: String,
    pub loadgen_version: String,
}

/// One run's full result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// What is measured, e.g. "ringtail" or "tansu", or a layout like "ringtail/xfs-loop".
    pub label: String,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    pub produce: ProduceSummary,
    /// The partition moved during the run, with produce latency before and during the move.
    #[serde(default)]
    pub partition_move: Option<crate::partition_move::MoveSummary>,
    pub consume: ConsumeSummary,
    pub config: Workload,
    pub machine: Machine,
    /// CPU seconds (user + system) the broker process used during the run; `None` when the broker
    /// is not a local process.
    pub broker_cpu_s: Option<f64>,
    /// Consumers had not read everything produced when the drain timeout ran out (so
    /// `consume.messages` falls short of what was produced).
    #[serde(default)]
    pub drain_timed_out: bool,
    /// CPU seconds the loadgen itself used (it shares the machine with the broker).
    pub loadgen_cpu_s: f64,
    /// Produced MB per broker CPU-second, when `broker_cpu_s` is known.
    pub produce_mb_per_broker_cpu_s: Option<f64>,
    pub timeline: Vec<TimelinePoint>,
    pub produce_latency_curve: PercentileCurve,
    pub e2e_latency_curve: PercentileCurve,
}

/// The current UTC time as RFC 3339 (seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
