//! What a run does: every knob of a workload, in one serializable value. The `run` flags, an OMB
//! workload file and a matrix scenario all become a [`Workload`]; the report records it whole, so
//! a result always says exactly what produced it.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Producer acknowledgements (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Acks {
    /// `acks=0`: nothing is acknowledged; a message counts as acknowledged once written to the socket.
    #[serde(rename = "0")]
    None,
    /// `acks=1`: the leader has it.
    #[serde(rename = "1")]
    Leader,
    /// `acks=all` (-1): every in-sync replica has it (on one broker: as the flush policy says).
    #[serde(rename = "all")]
    All,
}

impl Acks {
    /// The value of the Produce request's `acks` field.
    pub fn wire_value(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Batch compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Lz4,
    Zstd,
}

/// How messages are spread over partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionerKind {
    RoundRobin,
    /// A batch's worth to one partition, then the next (the Java client's default for unkeyed).
    Sticky,
    /// murmur2 of the key, as the Java client does; needs `key_cardinality`.
    Murmur2,
}

/// Size of each message's value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MessageSize {
    Fixed {
        bytes: usize,
    },
    /// Uniformly distributed in `[min_bytes, max_bytes]`.
    Uniform {
        min_bytes: usize,
        max_bytes: usize,
    },
}

impl MessageSize {
    pub fn mean_bytes(&self) -> f64 {
        match *self {
            MessageSize::Fixed { bytes } => bytes as f64,
            MessageSize::Uniform {
                min_bytes,
                max_bytes,
            } => (min_bytes + max_bytes) as f64 / 2.0,
        }
    }
}

/// How consumers get their partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsumerMode {
    /// Each consumer of a subscription is assigned a fixed share of the partitions (no group).
    Assign,
    /// Consumers of a subscription join one consumer group and commit offsets.
    Group,
}

/// Where consumers start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The log end when the run starts: consumers read only what this run produces.
    Latest,
    /// The log start: a catch-up consumer reading old data (see `backlog_bytes`).
    Earliest,
}

/// Every knob of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// `host:port` of any broker of the cluster.
    pub bootstrap: String,
    /// Topic names; each gets `partitions` partitions and is created if missing.
    pub topics: Vec<String>,
    pub partitions: i32,
    pub message_size: MessageSize,
    /// Distinct keys; `None`: messages have no key.
    pub key_cardinality: Option<u64>,
    pub partitioner: PartitionerKind,
    /// Producers per topic.
    pub producers: u32,
    /// Consumer groups (subscriptions) per topic; each reads every message (fan-out).
    pub subscriptions: u32,
    /// Consumers in each subscription.
    pub consumers_per_subscription: u32,
    pub consumer_mode: ConsumerMode,
    pub start_from: StartFrom,
    /// Bytes produced before the measured part starts, for catch-up reads (0: none).
    pub backlog_bytes: u64,
    /// The broker's data directories, whose files are dropped from the page cache once the
    /// backlog is built, so catch-up consumers read it from disk (empty: left as it is).
    #[serde(default)]
    pub evict_backlog_dirs: Vec<std::path::PathBuf>,
    /// Measured time.
    pub duration_s: f64,
    /// Time run at load before measuring; not counted in latencies or throughput.
    pub warmup_s: f64,
    /// Target messages per second over all producers; `None`: flat out.
    pub rate_msgs_per_s: Option<f64>,
    pub acks: Acks,
    pub compression: Compression,
    /// How long a producer waits for a batch to fill.
    pub linger_ms: f64,
    /// Largest record batch a producer builds, in bytes, header included.
    pub batch_bytes: usize,
    /// Produce requests a producer has outstanding on one connection.
    pub max_in_flight: usize,
    /// Record bytes a consumer's Fetch asks per partition at most.
    #[serde(default = "fetch_partition_max_bytes_default")]
    pub fetch_partition_max_bytes: i32,
    /// Whether a consumer sends its next Fetch before it reads the records of the last one, as
    /// the Java consumer and librdkafka fetch ahead while the application reads.
    #[serde(default = "fetch_ahead_default")]
    pub fetch_ahead: bool,
    /// The scheduling priority of the consumers' threads.
    #[serde(default)]
    pub consumer_priority: ConsumerPriority,
    /// How long to wait after producing for consumers to catch up.
    pub drain_timeout_s: f64,
    /// Process id of a local broker whose CPU time is reported; `None`: found by the listening
    /// port when the broker runs on this machine, else not reported.
    pub broker_pid: Option<u32>,
    /// A partition of the first topic moved to another data dir during the run (the
    /// partition-move scenario); `None`: nothing moves.
    #[serde(default)]
    pub move_partition: Option<crate::partition_move::MovePlan>,
}

/// The scheduling priority of a run's consumer threads (`--consumer-priority`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerPriority {
    /// The producers' priority, as every thread of the loadgen.
    #[default]
    Normal,
    /// `SCHED_IDLE`, with a yield of the core after each 256 KiB of work
    /// (`client::background`): a consumer runs only when no producer (or broker) thread wants
    /// its core.
    /// For a broker on the same machine as its clients, where a catch-up consumer's copying
    /// stands for work that would run on another machine, and would otherwise take the cores
    /// the producers' latency is measured on (results/cold-send-thread/).
    Idle,
}

/// Record bytes a consumer's Fetch asks per partition unless told: 8 MiB, so one fetch moves many
/// batches (Kafka's clients ask 1 MiB; a benchmark wants fewer, larger round trips).
pub const FETCH_PARTITION_MAX_BYTES_DEFAULT: i32 = 8 << 20;

fn fetch_partition_max_bytes_default() -> i32 {
    FETCH_PARTITION_MAX_BYTES_DEFAULT
}

/// Reports written before the flag existed: their consumers waited for each Fetch's records to be
/// read before sending the next.
fn fetch_ahead_default() -> bool {
    false
}

impl Workload {
    /// Total consumers over all topics and subscriptions.
    pub fn total_consumers(&self) -> u32 {
        self.topic_count() * self.subscriptions * self.consumers_per_subscription
    }

    /// Total producers over all topics.
    pub fn total_producers(&self) -> u32 {
        self.topic_count() * self.producers
    }

    /// The number of topics; a workload names each of its topics, so far fewer than `u32::MAX`.
    fn topic_count(&self) -> u32 {
        u32::try_from(self.topics.len()).expect("a workload's topic count fits in u32")
    }
}

impl Default for Workload {
    /// One topic, one producer, one consumer, 1 KiB messages, flat out, acks=1, 10 s.
    fn default() -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".to_string(),
            topics: vec!["ringtail-loadgen".to_string()],
            partitions: 1,
            message_size: MessageSize::Fixed { bytes: 1024 },
            key_cardinality: None,
            partitioner: PartitionerKind::Sticky,
            producers: 1,
            subscriptions: 1,
            consumers_per_subscription: 1,
            consumer_mode: ConsumerMode::Assign,
            start_from: StartFrom::Latest,
            backlog_bytes: 0,
            evict_backlog_dirs: Vec::new(),
            duration_s: 10.0,
            warmup_s: 0.0,
            rate_msgs_per_s: None,
            acks: Acks::Leader,
            compression: Compression::None,
            linger_ms: 1.0,
            batch_bytes: 1024 * 1024,
            max_in_flight: 5,
            fetch_partition_max_bytes: FETCH_PARTITION_MAX_BYTES_DEFAULT,
            fetch_ahead: true,
            consumer_priority: ConsumerPriority::Normal,
            drain_timeout_s: 30.0,
            broker_pid: None,
            move_partition: None,
        }
    }
}
