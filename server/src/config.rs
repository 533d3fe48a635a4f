//! The broker's configuration: command-line flags, optionally seeded from a TOML file.
//!
//! Every flag can also be set in the file given by `--config FILE`, under the flag's name without
//! the dashes (`listen = "127.0.0.1:9092"`, `data-dir = ["/d1", "/d2"]`); flags on the command
//! line win over the file.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use ringtail_engine::{FlushPolicy, LogConfig};

use crate::listeners::Listener;

/// Ringtail: a Kafka-compatible broker on a thread-per-core io_uring storage engine.
#[derive(Debug, Clone, Parser)]
#[command(name = "ringtail", version, about, args_override_self = true)]
pub struct Args {
    /// TOML file with any of these flags (names without dashes); command-line flags win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Shorthand for one PLAINTEXT listener: `--listen A:P` is `--listeners PLAINTEXT://A:P`.
    /// Without either, the broker listens on PLAINTEXT://127.0.0.1:9092.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "listeners")]
    pub listen: Option<SocketAddr>,

    /// Host and port clients are told to connect to (Metadata) on the first listener; default:
    /// the listen address. `--advertised-listeners` names each listener.
    #[arg(long, value_name = "HOST:PORT")]
    pub advertised_listener: Option<String>,

    /// Listeners, security flags and SASL (see `config_security.rs`).
    #[command(flatten)]
    pub security: crate::config_security::SecurityArgs,

    /// Expiry of producers' state, transactional ids and group offsets (see `config_expiry.rs`).
    #[command(flatten)]
    pub expiry: crate::config_expiry::ExpiryArgs,

    /// This broker's id and the classic groups' initial rebalance delay (see `config_node.rs`).
    #[command(flatten)]
    pub node: crate::config_node::NodeArgs,

    /// Data directory; repeat for several disks (JBOD): a new partition goes to the one with the
    /// most free space, and `placement.json` in each records where every partition lives.
    #[arg(long = "data-dir", value_name = "DIR", default_value = "./data")]
    pub data_dirs: Vec<PathBuf>,

    /// Shards (threads, each with its own io_uring); default: one per core.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// Pin each shard thread to a core (shard i to core i mod cores), and with it the io-wq
    /// workers of its io_uring, which inherit the pin, so a buffered write's hand-off to its
    /// worker stays on one core. `false` lets the kernel run them wherever a core is free: on
    /// cores shared with clients, a fixed rate of large produce requests then had 0.6x the p99,
    /// and one producer and one consumer flat out went no faster (results/shard-pinning/,
    /// decision 0038).
    #[arg(long, value_name = "true|false", default_value_t = true, action = clap::ArgAction::Set)]
    pub pin_shards: bool,

    /// The shards' CPU time slice (see `thread_slice.rs`).
    #[command(flatten)]
    pub slice: crate::thread_slice::SliceArgs,

    /// Partitions of an auto-created topic, or of CreateTopics with num_partitions = -1.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub default_partitions: i32,

    /// Segment size in bytes before a new segment is rolled (topic config segment.bytes).
    #[arg(long, value_name = "N", default_value_t = 1 << 30)]
    pub segment_bytes: u64,

    /// Durability: none (page cache, Kafka's default), every_batch (fdatasync before the ack,
    /// shared by concurrent appends) or <N>ms (a background fdatasync every N ms). Topic config
    /// `flush`.
    #[arg(long, value_name = "none|every_batch|<N>ms", default_value = "none")]
    pub flush: FlushPolicy,

    /// Delete segments older than this (Kafka's log.retention.ms, the topics' retention.ms);
    /// any negative value keeps forever, 0 is refused (as in Kafka).
    #[arg(long, value_name = "N", default_value_t = 7 * 24 * 3600 * 1000, allow_hyphen_values = true)]
    pub retention_ms: i64,

    /// Delete the oldest segments beyond this many bytes per partition (retention.bytes); -1: no limit.
    #[arg(long, value_name = "N", default_value_t = -1, allow_hyphen_values = true)]
    pub retention_bytes: i64,

    /// Allocate each segment whole (segment.bytes) before it takes writes, the next one in the
    /// background once the active one is half full (topic config `preallocate`): no write or
    /// writeback of the active segment then allocates blocks, which on ext4 with its block
    /// bitmaps out of memory held a partition's producers for up to a second
    /// (results/allocation-stalls/). On by default, unlike Kafka, but only where it costs
    /// neither memory nor room (docs/decisions/0031): never on tmpfs or ramfs, never past half
    /// a file system, and a clean shutdown gives the unwritten rest back.
    #[arg(long, value_name = "true|false", default_value_t = true, action = clap::ArgAction::Set)]
    pub preallocate: bool,

    /// With preallocation: allocate a segment ahead only while its file system stays at most this
    /// percent used with it (as df counts): allocated space counts as used for the disk
    /// watermarks, before anything is written to it.
    #[arg(long, value_name = "PERCENT", default_value_t = ringtail_engine::disk_space::PREALLOCATE_MAX_USED_PERCENT_DEFAULT,
        value_parser = clap::value_parser!(u8).range(0..=100))]
    pub preallocate_max_used_percent: u8,

    /// Write appends with pwritev on the shard thread instead of an io_uring writev (which ext4
    /// hands to an io-wq worker): less CPU per byte, but the shard blocks for the page-cache copy
    /// and for dirty-page throttling (topic config `write.inline`).
    #[arg(long, value_name = "true|false", default_value_t = false, action = clap::ArgAction::Set)]
    pub write_inline: bool,

    /// Write appends with O_DIRECT from aligned buffers, bypassing the page cache (topic config
    /// `write.direct`; docs/decisions/0025): about twice the produce throughput at a third of the
    /// CPU here, but each produce then waits for the disk, which catch-up readers may keep busy.
    #[arg(long, value_name = "true|false", default_value_t = false, action = clap::ArgAction::Set)]
    pub write_direct: bool,

    /// With `--write-direct`: bytes of each partition's most recent writes kept in memory for
    /// consumers at the tail, which would otherwise read them from disk (topic config
    /// `tail.cache.bytes`; at most 512 MiB per shard over all partitions).
    #[arg(long, value_name = "BYTES", default_value_t = ringtail_engine::config::TAIL_CACHE_BYTES_DEFAULT)]
    pub tail_cache_bytes: u64,

    /// Dirty bytes of a partition's active segment after which their writeback is started
    /// (sync_file_range, not waited for), so that the fsync of a segment roll finds little to
    /// write; 0 for never (topic config `writeback.bytes`).
    #[arg(long, value_name = "BYTES", default_value_t = ringtail_engine::config::WRITEBACK_BYTES_DEFAULT)]
    pub writeback_bytes: u64,

    /// With buffered writes: pages of a partition's log (its active segment and the rolled ones
    /// before it) more than this many bytes behind its end are written back, waited for (off
    /// the shard) and dropped from the page cache, so new writes reuse the memory freed (on VMs
    /// that hand idle memory back to the host, fresh page-cache pages cost 2-3x the CPU);
    /// consumers further behind read from disk. 0 for never: the kernel's LRU decides (topic
    /// config `drop.behind.bytes`).
    #[arg(long, value_name = "BYTES", default_value_t = ringtail_engine::config::DROP_BEHIND_BYTES_DEFAULT)]
    pub drop_behind_bytes: u64,

    /// How far behind a partition's end a drop behind waits for a live consumer: the pages a
    /// consumer of the last few seconds may still need stay cached up to this many bytes behind
    /// the end, so a consumer a little behind a fast producer is not pushed onto the cold path.
    /// At or below `--drop-behind-bytes` (the default, 0), no consumer is waited for (topic
    /// config `drop.behind.max.bytes`; off by default: on VMs that hand idle memory back to the
    /// host the pages kept cost the producer more than the consumer's disk reads did).
    #[arg(long, value_name = "BYTES", default_value_t = ringtail_engine::config::DROP_BEHIND_MAX_BYTES_DEFAULT)]
    pub drop_behind_max_bytes: u64,

    /// Largest request frame accepted; a larger one closes the connection before any allocation.
    #[arg(long, value_name = "N", default_value_t = 100 * 1024 * 1024)]
    pub frame_bytes_max: u32,

    /// Spare buffers each shard keeps for request frames of 128 KiB or more, so large Produce
    /// requests are read into warm memory instead of fresh pages that fault in the socket read
    /// (results/frame-pool/). 0 turns the pool off.
    #[arg(long, value_name = "BYTES", default_value_t = 32 * 1024 * 1024)]
    pub frame_pool_bytes: u64,

    /// Create a topic when a client produces to or asks metadata for one that does not exist.
    #[arg(long, value_name = "true|false", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Topics one Metadata request may auto-create; the rest of its unknown names are answered
    /// UNKNOWN_TOPIC_OR_PARTITION (a client naming 100,000 topics must not create them all).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub auto_create_topics_per_request_max: u32,

    /// Partitions created per second, broker-wide, by CreateTopics, CreatePartitions and
    /// auto-creation (Kafka's controller mutation quota, KIP-599). Over it, CreateTopics answers
    /// THROTTLING_QUOTA_EXCEEDED and auto-creation creates nothing. Bursts of one second's worth.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub partition_mutations_per_sec: u32,

    /// Topics the broker holds at most (internal topics included); creating more is refused.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub topics_max: u32,

    /// Partitions, summed over all topics, the broker holds at most; creating more is refused.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub partitions_max: u32,

    /// Largest Fetch response in record bytes, whatever the client asks (Kafka's fetch.max.bytes);
    /// a client's max_bytes <= 0 allows no bytes past the first batch, which is sent whole even
    /// past any limit (KIP-74).
    #[arg(long, value_name = "N", default_value_t = 52_428_800, value_parser = clap::value_parser!(u32).range(1..=1_073_741_824))]
    pub fetch_max_bytes: u32,

    /// Look at the page cache before a fetch's record bytes go out: resident ranges are spliced,
    /// cold ones read in without readahead and dropped behind the reader (`on`); or splice
    /// everything unchecked (`off`, the naive path, for comparison).
    #[arg(long, value_name = "on|off", value_enum, default_value_t = crate::residency::ResidencyCheck::On)]
    pub fetch_residency_check: crate::residency::ResidencyCheck,

    /// Chunks (4 MiB) of a cold fetched range read from disk at once. More keep the disk busier
    /// for a catch-up reader (two read 700-740 MB/s here, as fast as four); every chunk in flight
    /// holds its buffer's share of --fetch-cold-read-memory-bytes.
    #[arg(long, value_name = "N", default_value_t = crate::residency::COLD_READS_IN_FLIGHT_DEFAULT as u8, value_parser = clap::value_parser!(u8).range(1..=crate::residency::COLD_READS_IN_FLIGHT_MAX as i64))]
    pub fetch_cold_reads_in_flight: u8,

    /// How cold chunks are read: `direct` (O_DIRECT into the connection's buffers, no page-cache
    /// pages filled) or `buffered` (through the page cache without readahead, dropped behind).
    /// A file system that refuses O_DIRECT gets buffered reads.
    #[arg(long, value_name = "direct|buffered", value_enum, default_value_t = crate::residency::ColdReadIo::Direct)]
    pub fetch_cold_read_io: crate::residency::ColdReadIo,

    /// The disk priority of direct cold reads: `idle` (IOPRIO_CLASS_IDLE, so a catch-up reader's
    /// reads wait behind live producers' writes and writeback at the block scheduler) or
    /// `normal`. Honoured by the mq-deadline and bfq schedulers, not by `none`.
    #[arg(long, value_name = "idle|normal", value_enum, default_value_t = crate::residency::ColdReadPriority::Normal)]
    pub fetch_cold_read_priority: crate::residency::ColdReadPriority,

    /// Bytes the buffers of cold chunks being read or sent may hold, all connections together
    /// (each chunk holds 6 MiB: 4 MiB read from a huge page boundary). Read-ahead takes at most
    /// half; a chunk with no room is spliced as on the naive path, through the page cache.
    #[arg(long, value_name = "BYTES", default_value_t = crate::residency::COLD_READ_MEMORY_BYTES_DEFAULT, value_parser = clap::value_parser!(u64).range(crate::residency::COLD_READ_MEMORY_BYTES_MIN..=1 << 40))]
    pub fetch_cold_read_memory_bytes: u64,

    /// Which thread writes cold chunks (read from disk for a catch-up reader) to their sockets:
    /// a sender thread per shard, on any core, at a nice value of 0 to 19 (default 10) or at
    /// `idle` priority (SCHED_IDLE: it runs when nothing else wants a core), so the sends leave
    /// the cores to live producers; or `shard` (the shard's own thread, as every other write),
    /// which gives catch-up readers more when producers keep every core busy
    /// (results/cold-send-thread/, results/cold-send-default/).
    #[arg(long, value_name = "shard|idle|NICE", default_value = "10", value_parser = crate::residency::parse_cold_send_priority)]
    pub fetch_cold_send_priority: crate::residency::ColdSendThread,

    /// Paces every cold read of the broker together to this many bytes per second, spread evenly
    /// (0: no pace). A catch-up reader then leaves the disk, and on a VM the host's CPU, to live
    /// producers: results/reader-interference/ found a producer's p99 untouched beside reads
    /// paced to about half the disk's speed, and many times worse above it. Costs catch-up speed.
    /// At least 1 MiB/s, against values that are plainly mistakes (a pace this low still lets a
    /// large fetch outlast a client's request.timeout.ms: the pace is shared by all connections).
    #[arg(long, value_name = "BYTES", default_value_t = 0, value_parser = crate::residency::parse_cold_read_pace)]
    pub fetch_cold_read_bytes_per_sec: u64,

    /// Which shard serves a new connection: the one serving the fewest connections now
    /// (`fewest-connections`), or the one whose listener the kernel's SO_REUSEPORT hash chose
    /// (`accepting-shard`, which put one producer and one consumer on the same shard in 3 of the 9
    /// logged runs of results/connection-placement/, and the consumer fell behind in those).
    #[arg(long, value_name = "fewest-connections|accepting-shard", value_enum, default_value_t = crate::placement::ConnectionPlacement::FewestConnections)]
    pub connection_placement: crate::placement::ConnectionPlacement,

    /// Client connections open at once, broker-wide (Kafka's max.connections); beyond it a new
    /// connection is accepted and closed at once.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_connections: u32,

    /// Client connections open at once from one IP address (Kafka's max.connections.per.ip).
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub max_connections_per_ip: u32,

    /// A connection with no request in flight that sends nothing for this long is closed
    /// (Kafka's connections.max.idle.ms).
    #[arg(long, value_name = "MS", default_value_t = 600_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub connections_max_idle_ms: u64,

    /// A request frame whose bytes do not all arrive within this long of its first byte is
    /// dropped with its connection (slow-read clients, "slowloris").
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub frame_read_timeout_ms: u64,

    /// Request bytes held in memory at once, broker-wide, from frames read until their handlers
    /// finish (Kafka's queued.max.request.bytes), charged as a frame's bytes arrive. A connection
    /// over its share (one frame of --frame-bytes-max) or finding the budget spent is not read
    /// until bytes drain; when frames still being read hold it all, one of them at a time goes
    /// over it. Must be at least --frame-bytes-max.
    #[arg(long, value_name = "N", default_value_t = 512 * 1024 * 1024)]
    pub queued_max_request_bytes: u64,

    /// How often retention and compaction look at every partition, in ms (Kafka's
    /// log.retention.check.interval.ms; Kafka's cleaner has its own backoff, ours shares this tick).
    #[arg(long, value_name = "N", default_value_t = 5 * 60 * 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_cleanup_check_ms: u64,

    /// A data dir at or above this share of its disk used (as `df` counts it) is logged as a
    /// warning (Redpanda's default: 80).
    #[arg(long, value_name = "PERCENT", default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub disk_warn_used_percent: u8,

    /// A data dir at or above this share of its disk used refuses Produce to its partitions with
    /// KAFKA_STORAGE_ERROR (retriable) until space comes back; reads, commits, admin, retention
    /// and compaction go on (Redpanda's default: 95).
    #[arg(long, value_name = "PERCENT", default_value_t = 95, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub disk_limit_used_percent: u8,

    /// A data dir with fewer free bytes than this refuses Produce as above the hard limit; 0: off.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub min_free_bytes: u64,

    /// Bytes a second a partition move between data dirs copies in the background
    /// (AlterReplicaLogDirs; Kafka's replica.alter.log.dirs.io.max.bytes.per.second); 0: unbounded.
    /// The final catch-up, while appends wait, is never slowed.
    #[arg(long, value_name = "BYTES", default_value_t = 100 * 1024 * 1024)]
    pub move_bytes_per_sec: u64,

    /// How often each data dir's free space is read (statvfs) and its watermarks checked.
    #[arg(long, value_name = "MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub disk_check_interval_ms: u64,

    /// Where to serve Prometheus text metrics (/metrics); off unless given (e.g. 127.0.0.1:9644).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,

    /// Consumer (KIP-848) groups: a member that sends no heartbeat for this long is removed
    /// (Kafka's group.consumer.session.timeout.ms).
    #[arg(long, value_name = "MS", default_value_t = 45_000)]
    pub group_consumer_session_timeout_ms: u32,

    /// The shortest session timeout a classic group member may ask for in JoinGroup; a shorter
    /// one is refused with INVALID_SESSION_TIMEOUT (Kafka's group.min.session.timeout.ms).
    #[arg(long, value_name = "MS", default_value_t = 6_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub group_min_session_timeout_ms: u32,

    /// The longest session timeout a classic group member may ask for (Kafka's
    /// group.max.session.timeout.ms): a dead member holds its partitions at most this long.
    #[arg(long, value_name = "MS", default_value_t = 1_800_000, value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub group_max_session_timeout_ms: u32,

    /// Consumer (KIP-848) groups: how often members heartbeat, told to them in every answer
    /// (Kafka's group.consumer.heartbeat.interval.ms).
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    pub group_consumer_heartbeat_interval_ms: u32,

    /// The longest transaction timeout (`transaction.timeout.ms`) a transactional producer may
    /// ask for; a longer one is refused with INVALID_TRANSACTION_TIMEOUT (Kafka's
    /// transaction.max.timeout.ms).
    #[arg(long, value_name = "MS", default_value_t = 900_000, value_parser = clap::value_parser!(i32).range(1..))]
    pub transaction_max_timeout_ms: i32,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// The flags given on the command line or in the config file (clap ids, e.g. `retention_ms`):
    /// DescribeConfigs reports them as STATIC_BROKER_CONFIG, the rest as DEFAULT_CONFIG.
    #[arg(skip)]
    pub explicit_flags: std::collections::BTreeSet<String>,
}

/// Tools that talk to a running broker instead of starting one.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Consumer groups with committed offsets, log ends, lag and owning members (like
    /// kafka-consumer-groups.sh --describe).
    Groups {
        /// The broker to ask.
        #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
        bootstrap: String,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Data dirs with their space and partitions (like kafka-log-dirs.sh --describe).
    LogDirs {
        /// The broker to ask.
        #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
        bootstrap: String,
    },
    /// Moves a partition to another data dir of the broker (AlterReplicaLogDirs) and waits until
    /// it lives there.
    MovePartition {
        /// The broker to ask.
        #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        /// The destination data dir, spelled as the broker's --data-dir.
        #[arg(long, value_name = "DIR")]
        to: String,
        /// Give up waiting after this long (the move goes on in the broker).
        #[arg(long, value_name = "MS", default_value_t = 600_000)]
        wait_ms: u64,
    },
    /// SASL users in a data dir's credential store, managed offline (e.g. the first admin,
    /// before the first start).
    Users {
        #[command(subcommand)]
        action: UsersCommand,
    },
}

/// `ringtail users ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum UsersCommand {
    /// Adds a user, or replaces its credential for that mechanism.
    Add {
        /// The user name (the principal is User:NAME).
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512; PLAIN logins check against either.
        #[arg(long, default_value = "SCRAM-SHA-256")]
        mechanism: String,
        /// Read the password from the first line of standard input (the only way: a password
        /// on the command line would show in `ps`).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Iterations of the salted hash (Kafka's default and minimum is 4096).
        #[arg(long, default_value_t = 4096)]
        iterations: u32,
        /// The broker's (first) data directory, where `credentials.json` lives.
        #[arg(long = "data-dir", value_name = "DIR")]
        data_dir: std::path::PathBuf,
    },
    /// Removes a user's credential for one mechanism.
    Delete {
        name: String,
        #[arg(long, default_value = "SCRAM-SHA-256")]
        mechanism: String,
        #[arg(long = "data-dir", value_name = "DIR")]
        data_dir: std::path::PathBuf,
    },
    /// Lists users and their mechanisms (never a secret).
    List {
        #[arg(long = "data-dir", value_name = "DIR")]
        data_dir: std::path::PathBuf,
    },
}

impl Args {
    /// Parses the command line, seeded from `--config FILE` if given.
    pub fn load() -> Result<Self> {
        let cli: Vec<String> = std::env::args().collect();
        // --help, --version and usage errors print as clap formats them and exit.
        let first = Self::try_parse_from(&cli).unwrap_or_else(|err| err.exit());
        let Some(path) = first.config.clone() else {
            return Ok(Self::parse_noting_explicit(cli));
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut merged = vec![cli[0].clone()];
        merged.extend(toml_to_args(&text, &cli).with_context(|| format!("in {}", path.display()))?);
        merged.extend(cli[1..].iter().cloned());
        Ok(Self::parse_noting_explicit(merged))
    }

    /// Parses `args` and records which flags they give (see [`Args::explicit_flags`]).
    fn parse_noting_explicit(args: Vec<String>) -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command()
            .try_get_matches_from(args)
            .unwrap_or_else(|err| err.exit());
        let mut parsed = Self::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
        parsed.explicit_flags = matches
            .ids()
            .filter(|id| {
                matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|id| id.as_str().to_string())
            .collect();
        parsed
    }

    /// The data dirs' watermarks, checked: the warning must not be above the hard limit.
    pub fn disk_watermarks(&self) -> Result<ringtail_engine::DiskWatermarks> {
        if self.disk_warn_used_percent > self.disk_limit_used_percent {
            bail!(
                "--disk-warn-used-percent ({}) must not be above --disk-limit-used-percent ({})",
                self.disk_warn_used_percent,
                self.disk_limit_used_percent
            );
        }
        Ok(ringtail_engine::DiskWatermarks {
            warn_used_percent: self.disk_warn_used_percent,
            limit_used_percent: self.disk_limit_used_percent,
            min_free_bytes: self.min_free_bytes,
        })
    }

    /// The log config every topic starts from (topic configs override it).
    pub fn log_defaults(&self) -> Result<LogConfig> {
        let mut config = LogConfig {
            flush: self.flush,
            ..LogConfig::default()
        };
        config.apply("segment.bytes", &self.segment_bytes.to_string())?;
        // Kafka's log.retention.ms: every negative value is unlimited, 0 fails its requirement.
        if self.retention_ms == 0 {
            bail!("--retention-ms must be unlimited (-1) or, equal or greater than 1");
        }
        config.apply("retention.ms", &self.retention_ms.max(-1).to_string())?;
        config.apply("retention.bytes", &self.retention_bytes.to_string())?;
        config.apply("preallocate", &self.preallocate.to_string())?;
        config.preallocate_max_used_percent = self.preallocate_max_used_percent;
        config.apply("write.inline", &self.write_inline.to_string())?;
        config.apply("write.direct", &self.write_direct.to_string())?;
        config.apply("tail.cache.bytes", &self.tail_cache_bytes.to_string())?;
        config.apply("writeback.bytes", &self.writeback_bytes.to_string())?;
        config.apply("drop.behind.bytes", &self.drop_behind_bytes.to_string())?;
        config.apply(
            "drop.behind.max.bytes",
            &self.drop_behind_max_bytes.to_string(),
        )?;
        Ok(config)
    }

    /// The listeners to bind: `--listeners`, else `--listen` as a PLAINTEXT listener, else
    /// PLAINTEXT://127.0.0.1:9092.
    pub fn listeners(&self) -> Result<Vec<Listener>> {
        if let Some(text) = &self.security.listeners {
            return Ok(crate::listeners::parse_list(text)?);
        }
        let address = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9092)));
        Ok(vec![Listener::plaintext(address)])
    }

    /// Host and port announced in Metadata for each of `bound` (listener, bound address): its
    /// `--advertised-listeners` entry, else `--advertised-listener` for the first listener, else
    /// the bound address.
    pub fn advertised(&self, bound: &[(Listener, SocketAddr)]) -> Result<Vec<(String, i32)>> {
        let named = match &self.security.advertised_listeners {
            Some(text) => crate::listeners::parse_list(text)?,
            None => Vec::new(),
        };
        if let Some(extra) = named
            .iter()
            .find(|a| !bound.iter().any(|(l, _)| l.protocol == a.protocol))
        {
            bail!("--advertised-listeners names {extra}, which --listeners does not have");
        }
        let legacy = self
            .advertised_listener
            .as_deref()
            .map(|text| -> Result<(String, i32)> {
                let (host, port) = text
                    .rsplit_once(':')
                    .context("--advertised-listener must be HOST:PORT")?;
                let port = port.parse().context("bad port in --advertised-listener")?;
                Ok((host.to_string(), port))
            })
            .transpose()?;
        Ok(bound
            .iter()
            .enumerate()
            .map(|(index, (listener, address))| {
                if let Some(entry) = named.iter().find(|a| a.protocol == listener.protocol) {
                    return (entry.host.clone(), i32::from(entry.port));
                }
                match (&legacy, index) {
                    (Some(legacy), 0) => legacy.clone(),
                    _ => (address.ip().to_string(), i32::from(address.port())),
                }
            })
            .collect())
    }

    /// The group timing flags, checked (`config_node.rs`).
    pub fn consumer_group_config(&self) -> Result<crate::group::consumer::ConsumerGroupConfig> {
        self.node.consumer_group_config(
            self.group_consumer_session_timeout_ms,
            self.group_consumer_heartbeat_interval_ms,
            (
                self.group_min_session_timeout_ms,
                self.group_max_session_timeout_ms,
            ),
        )
    }

    pub fn shard_count(&self) -> usize {
        self.shards
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// Flags whose file values the command line replaces as a group: a repeatable flag, and flags
/// that exclude each other (a file's `listen` must not clash with `--listeners` given by hand).
const CLI_REPLACES: &[&[&str]] = &[&["data-dir"], &["listen", "listeners"]];

fn given_on(cli: &[String], name: &str) -> bool {
    let flag = format!("--{name}");
    cli.iter()
        .any(|arg| *arg == flag || arg.starts_with(&format!("{flag}=")))
}

/// Turns `key = value` lines of a TOML table into `--key value` arguments. A repeatable flag's
/// file values are dropped when the command line gives that flag, so the command line wins.
fn toml_to_args(text: &str, cli: &[String]) -> Result<Vec<String>> {
    let table: toml::Table = text.parse()?;
    let mut args = Vec::new();
    for (key, value) in table {
        let flag = format!("--{key}");
        let values: Vec<String> = match value {
            toml::Value::Array(items) => {
                items.iter().map(scalar_to_string).collect::<Result<_>>()?
            }
            other => vec![scalar_to_string(&other)?],
        };
        if CLI_REPLACES
            .iter()
            .filter(|group| group.contains(&key.as_str()))
            .flat_map(|group| group.iter())
            .any(|name| given_on(cli, name))
        {
            continue;
        }
        if key == "config" {
            bail!("config files do not nest");
        }
        for value in values {
            args.push(format!("{flag}={value}"));
        }
    }
    Ok(args)
}

fn scalar_to_string(value: &toml::Value) -> Result<String> {
    Ok(match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Boolean(flag) => flag.to_string(),
        other => bail!("unsupported value {other}"),
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
