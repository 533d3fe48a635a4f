//! A partition's log: a directory of segments, with group-committed appends and zero-copy read
//! plans.
//!
//! The log is shard-local (`Rc`, `RefCell`): one thread owns it, so the data path takes no lock.
//! No `RefCell` borrow is ever held across an `.await`.
//!
//! # How an append flows
//! [`PartitionLog::append`] validates the batches (CRC-32C), assigns offsets in place, queues them
//! and waits. One writer task per log drains the queue: everything queued since its last round
//! becomes one vectored write (group commit), followed — under `every_batch` — by one `fdatasync`
//! shared by all of them. Only then are the appends answered, so an acknowledgement means the
//! flush policy's durability point was reached.
//!
//! # Invariants
//! - `log_start_offset <= durable_offset <= high_watermark <= next_offset` (durable only under a
//!   syncing policy; otherwise it trails).
//! - Readers see only whole, written batches: a read plan never reaches past `high_watermark`.
//! - Segments are ordered by base offset and each base offset is the previous segment's end (or
//!   beyond it, once compaction removed a segment's last batches: reads skip to the next base).
//! - After a failed write or fsync the log takes no more appends and is never synced again (page
//!   cache state is unknown; docs/decisions/0010-fsync-error-read-only.md); after a write refused
//!   for space only, the shard may reopen it (`out_of_space.rs`).
#![forbid(unsafe_code)]

mod append;
mod boundary_cache;
mod cleaner_checkpoint;
mod close;
mod direct;
mod direct_tail;
mod drop_behind;
mod files;
mod flush;
mod open;
pub mod out_of_space;
mod read;
mod reader_floor;
mod retention;
mod roll;
mod seal;
mod snapshot;
mod spare;
pub(crate) use spare::SPARE_FILE_NAME;
mod start_offset;
mod state;
pub mod tail_cache;
mod timestamp;
mod txn;
mod types;
mod writer;

pub use crate::clock::now_ms;
pub use append::RECORD_SET_DECOMPRESSED_BYTES_MAX;
pub use cleaner_checkpoint::CLEANER_CHECKPOINT_FILE_NAME;
pub use files::CLEAN_SHUTDOWN_FILE_NAME;
pub use start_offset::{DeleteRecordsError, LOG_START_OFFSET_FILE_NAME};
pub use state::PartitionLog;
pub use types::{
    AppendOutcome, AppendTimings, FileSlice, Isolation, LogStats, OpenReport, PendingAppendOutcome,
    ReadPlan, RetentionOutcome,
};
