//! Ringtail's storage engine: partitioned logs of Kafka RecordBatch v2 batches on io_uring.
//!
//! What it does: stores producer batches byte for byte (CRC-32C checked), in segments with
//! sparse offset and time indexes; group-commits appends under a flush policy; plans zero-copy
//! reads as file slices; recovers torn tails; deletes old segments by size and age; persists the
//! topic registry.
//!
//! What it does not do: networking or the Kafka wire protocol (that is `ringtail-server`), and
//! cross-thread sharing. The engine is shard-local: a [`log::PartitionLog`] belongs to one shard
//! thread, runs on that thread's io_uring (compio), and is `!Send`. See docs/ARCHITECTURE.md.
#![deny(unsafe_code)]

pub mod batch;
pub mod checksum;
pub mod cleaner;
pub mod clock;
pub mod codec;
pub mod compaction;
pub mod compression;
pub mod config;
pub mod data_dirs;
pub mod disk_space;
pub mod error;
pub mod index;
pub mod ingest;
pub mod install;
// Holds `unsafe` blocks, each with its `// SAFETY:` comment; every other module forbids it.
#[allow(unsafe_code)]
pub mod io;
pub mod log;
pub mod maintenance;
pub mod partition_move;
pub mod placement;
pub mod producer;
pub mod registry;
pub mod segment;
pub mod shard;
pub mod txn;
pub mod units;
mod yielder;
pub use yielder::yield_now;

pub use config::{CleanupPolicy, FlushPolicy, LogConfig};
pub use data_dirs::{DataDirs, DirState};
pub use disk_space::{DiskSpace, DiskWatermarks};
pub use error::{
    AppendError, BatchError, CompactionError, CompressionError, ConfigError, OpenError, ReadError,
};
pub use log::{
    AppendOutcome, AppendTimings, DeleteRecordsError, FileSlice, Isolation, LogStats, PartitionLog,
    ReadPlan, RetentionOutcome,
};
pub use maintenance::MaintenanceSchedule;
pub use registry::{TopicMeta, TopicRegistry};
pub use shard::{partition_owner, shard_runtime, Shard, ShardId, TopicPartition};
pub use units::{Offset, PartitionIndex, Position};
