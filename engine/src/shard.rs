//! A shard's share of the partitions, and the background work of those partitions (interval
//! flushes, retention). One `Shard` per core; it is `!Send` and lives on that core's thread.
//!
//! # Invariants
//! - A partition belongs to exactly one shard: [`partition_owner`] is a pure function of the
//!   topic name, partition number and shard count, the same on every thread and every start.
//! - A partition's directory is `<data_dir>/<topic>-<partition>`, as in Kafka, in the data dir
//!   the placement map records ([`crate::data_dirs`]).
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use tracing::{error, info, warn};

use crate::config::LogConfig;
use crate::data_dirs::DataDirs;
use crate::disk_space::DiskWatermarks;
use crate::error::OpenError;
use crate::io;
use crate::log::{now_ms, PartitionLog};
use crate::units::PartitionIndex;

/// Index of a shard (one per core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

/// A topic's partition, by name and number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Rc<str>,
    pub partition: PartitionIndex,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: impl Into<PartitionIndex>) -> Self {
        Self {
            topic: Rc::from(topic),
            partition: partition.into(),
        }
    }
}

/// The shard that owns a partition: consecutive partitions of a topic go to consecutive shards,
/// starting from a shard picked by the topic name's CRC-32C (stable across restarts).
pub fn partition_owner(
    topic: &str,
    partition: impl Into<PartitionIndex>,
    shard_count: u16,
) -> ShardId {
    assert!(shard_count > 0, "at least one shard");
    let start = u64::from(crate::checksum::crc32c(topic.as_bytes()));
    let partition = u64::try_from(partition.into().get()).unwrap_or(0);
    let owner = (start + partition) % u64::from(shard_count);
    ShardId(u16::try_from(owner).expect("below shard_count, a u16"))
}

pub use crate::data_dirs::partition_dir;

/// The io_uring runtime of a shard thread, pinned to `cpu` when given. Pinning matters beyond
/// cache locality: io_uring hands buffered file writes to io-wq worker threads, which inherit the
/// creating thread's affinity, so a pinned shard keeps those hand-offs on its own core instead of
/// paying a cross-CPU wake-up per write (measured in results/engine-criterion/notes.md).
pub fn shard_runtime(cpu: Option<usize>) -> std::io::Result<compio::runtime::Runtime> {
    let mut builder = compio::runtime::Runtime::builder();
    if let Some(cpu) = cpu {
        builder.thread_affinity(std::collections::HashSet::from([cpu]));
    }
    builder.build()
}

/// The partitions one shard owns.
pub struct Shard {
    id: ShardId,
    /// The broker's data dirs (disks), shared by every shard; they say where each partition lives.
    data_dirs: Arc<DataDirs>,
    pub(crate) partitions: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    /// Held while a partition is opened: two tasks opening the same partition at once would
    /// recover the same files twice, each truncating what the other writes.
    pub(crate) open_lock: futures_util::lock::Mutex<()>,
    /// A compaction task ([`Shard::spawn_compaction`]) is running: at most one per shard.
    compacting: Cell<bool>,
    /// Set by [`Shard::close`] under the open lock: no open, move or reopen starts after it.
    closed: Cell<bool>,
}

/// Clears [`Shard::compacting`] however the compaction task ends.
struct CompactingMark<'a>(&'a Cell<bool>);

impl Drop for CompactingMark<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl Shard {
    /// A shard with one data dir of default watermarks (tests and tools; blocking probe).
    pub fn new(id: ShardId, data_dir: impl Into<PathBuf>) -> Result<Self, OpenError> {
        let data_dirs = DataDirs::open(vec![data_dir.into()], DiskWatermarks::default())?;
        Ok(Self::with_data_dirs(id, Arc::new(data_dirs)))
    }

    /// A shard whose partitions live in the broker's data dirs.
    pub fn with_data_dirs(id: ShardId, data_dirs: Arc<DataDirs>) -> Self {
        Self {
            id,
            data_dirs,
            partitions: RefCell::new(HashMap::new()),
            open_lock: futures_util::lock::Mutex::new(()),
            compacting: Cell::new(false),
            closed: Cell::new(false),
        }
    }

    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Whether [`Shard::close`] has begun: logs of the shard must not open again.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub fn data_dirs(&self) -> &Arc<DataDirs> {
        &self.data_dirs
    }

    /// The directory of a partition: its recorded home, or a new one (recorded before use).
    async fn locate_partition(
        &self,
        topic: &str,
        partition: PartitionIndex,
    ) -> Result<PathBuf, OpenError> {
        Ok(self.data_dirs.home_of(topic, partition.get()).await?)
    }

    /// Opens (recovering) or creates a partition's log; returns the open one if already open.
    pub async fn open_partition(
        &self,
        topic_partition: TopicPartition,
        config: LogConfig,
    ) -> Result<Rc<PartitionLog>, OpenError> {
        self.open_partition_if(topic_partition, config, || true)
            .await
    }

    /// [`Self::open_partition`], but only while `still_wanted()` holds once this shard's open lock
    /// is held: a caller that checked its topic still exists before waiting for the lock (behind
    /// a [`Self::delete_partition`] of that topic, say) would otherwise bring the deleted
    /// partition back, a log whose directory is removed under it. Refused: [`OpenError::Deleted`].
    pub async fn open_partition_if(
        &self,
        topic_partition: TopicPartition,
        config: LogConfig,
        still_wanted: impl FnOnce() -> bool,
    ) -> Result<Rc<PartitionLog>, OpenError> {
        if let Some(log) = self.partition(&topic_partition) {
            return Ok(log);
        }
        let _opening = self.open_lock.lock().await;
        // Another task may have opened it while we waited for the lock.
        if let Some(log) = self.partition(&topic_partition) {
            return Ok(log);
        }
        if self.closed.get() {
            return Err(OpenError::ShardClosed);
        }
        if !still_wanted() {
            return Err(OpenError::Deleted {
                topic: topic_partition.topic.to_string(),
                partition: topic_partition.partition.get(),
            });
        }
        let dir = self
            .locate_partition(&topic_partition.topic, topic_partition.partition)
            .await?;
        let (log, _report) = PartitionLog::open(&dir, config).await?;
        self.partitions
            .borrow_mut()
            .insert(topic_partition, Rc::clone(&log));
        Ok(log)
    }

    pub fn partition(&self, topic_partition: &TopicPartition) -> Option<Rc<PartitionLog>> {
        self.partitions.borrow().get(topic_partition).cloned()
    }

    pub fn partitions(&self) -> Vec<(TopicPartition, Rc<PartitionLog>)> {
        let mut all: Vec<_> = self
            .partitions
            .borrow()
            .iter()
            .map(|(topic_partition, log)| (topic_partition.clone(), Rc::clone(log)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Closes a partition and deletes its directory (topic deletion), in its home dir and in
    /// any other dir that is not offline (a copy from before placement was recorded would
    /// otherwise be found again by the next topic of that name). Holds the open lock
    /// throughout, so an open (or a move, or a reopen after space came back) in progress finishes
    /// first and is then closed here, and none starts until the directory is gone.
    pub async fn delete_partition(&self, topic_partition: &TopicPartition) -> std::io::Result<()> {
        let _opening = self.open_lock.lock().await;
        let removed = self.partitions.borrow_mut().remove(topic_partition);
        if let Some(log) = removed {
            log.close_for_delete().await;
        }
        let home = self
            .data_dirs
            .home_index(&topic_partition.topic, topic_partition.partition.get());
        let dirs: Vec<PathBuf> = self
            .data_dirs
            .dirs()
            .iter()
            .enumerate()
            .filter(|(index, dir)| {
                Some(*index) == home || dir.state() != crate::data_dirs::DirState::Offline
            })
            .map(|(_, dir)| {
                partition_dir(
                    dir.path(),
                    &topic_partition.topic,
                    topic_partition.partition,
                )
            })
            .collect();
        io::blocking(move || {
            for dir in dirs {
                match std::fs::remove_dir_all(&dir) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
                    _ => {}
                }
            }
            Ok(())
        })
        .await?;
        let key = (
            topic_partition.topic.to_string(),
            topic_partition.partition.get(),
        );
        self.data_dirs
            .forget(vec![key])
            .await
            .map_err(std::io::Error::other)
    }

    /// The data dir index of an open partition's home.
    pub fn home_index(&self, topic_partition: &TopicPartition) -> Option<usize> {
        self.data_dirs
            .home_index(&topic_partition.topic, topic_partition.partition.get())
    }

    /// Reopens (recovering from disk, as at a restart) each log that failed because a write found
    /// no space, once its data dir takes writes again; a reopen that fails (still no room for the
    /// recovery's index writes) leaves the failed log in place for the next try. Returns how many
    /// logs were reopened.
    pub async fn reopen_logs_failed_for_space(&self) -> usize {
        let mut reopened = 0;
        for (topic_partition, log) in self.partitions() {
            if !log.failed_for_space() {
                continue;
            }
            let Some(index) = self.home_index(&topic_partition) else {
                continue;
            };
            if !self.data_dirs.accepts_produce(index) {
                continue;
            }
            let _opening = self.open_lock.lock().await;
            if self.closed.get() {
                return reopened;
            }
            // Deleted (or moved) while this waited for the lock: not this pass's log any more.
            if !self
                .partition(&topic_partition)
                .is_some_and(|current| Rc::ptr_eq(&current, &log))
            {
                continue;
            }
            let config = log.config();
            // Its tasks stop first: none may write in the directory the reopen recovers.
            log.close_abandoned().await;
            match PartitionLog::open(log.dir(), config).await {
                Ok((fresh, report)) => {
                    info!(topic = %topic_partition.topic, partition = %topic_partition.partition,
                        ?report, "partition log reopened after space (or descriptors) came back");
                    self.partitions.borrow_mut().insert(topic_partition, fresh);
                    reopened += 1;
                }
                Err(err) => {
                    warn!(topic = %topic_partition.topic, partition = %topic_partition.partition,
                        %err, "reopening a log failed for space did not work yet");
                }
            }
        }
        reopened
    }

    /// Removes the ready spares of logs whose data dir is past their preallocation share (as its
    /// last space reading says): a spare is checked against the share only when it is made, and
    /// an idle partition would keep its segment's worth of disk reserved while real data fills
    /// the disk towards the watermarks. Its next roll creates the segment, asking again.
    pub async fn give_back_spares_past_share(&self) -> usize {
        let mut removed = 0;
        for (topic_partition, log) in self.partitions() {
            if !log.spare_ready() {
                continue;
            }
            let Some(index) = self.home_index(&topic_partition) else {
                continue;
            };
            let space = self.data_dirs.dirs()[index].space();
            let max_used_percent = log.config().preallocate_max_used_percent;
            if space.total_bytes == 0 || space.used_percent() <= u64::from(max_used_percent) {
                continue;
            }
            match log.remove_spare().await {
                Ok(()) => removed += 1,
                Err(err) => {
                    warn!(topic = %topic_partition.topic, partition = %topic_partition.partition,
                    %err, "giving back a spare segment past the preallocation share failed")
                }
            }
        }
        removed
    }

    /// Syncs the partitions whose `<N>ms` flush interval is due. A partition whose fsync fails
    /// is failed (read-only until restart, never synced again: the page cache state is unknown)
    /// and the others go on (docs/decisions/0010-fsync-error-read-only.md). Returns how many
    /// failed in this pass.
    pub async fn flush_due(&self, now_ms: i64) -> usize {
        let mut failed = 0;
        for (topic_partition, log) in self.partitions() {
            if let Err(err) = log.sync_if_due(now_ms).await {
                error!(topic = %topic_partition.topic, partition = %topic_partition.partition, %err, "interval fsync failed; the partition is read-only until restart");
                failed += 1;
            }
        }
        failed
    }

    /// Runs retention over every partition of this shard. A partition whose pass fails (a file
    /// it may not delete, a failing data dir) is logged and the others still get theirs: stopping
    /// at the first error left every later partition of the shard growing without bound. The
    /// first error is returned once all were tried.
    pub async fn enforce_retention(&self) -> std::io::Result<()> {
        let now = now_ms();
        let mut first_error = None;
        for (topic_partition, log) in self.partitions() {
            if let Err(err) = log.enforce_retention(now).await {
                error!(topic = %topic_partition.topic, partition = %topic_partition.partition, %err, "retention failed for this partition");
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Compaction over every compacted partition of this shard: rolls active segments older than
    /// `segment.ms` (so a quiet log's tail becomes cleanable), then cleans the logs whose dirty
    /// ratio is reached. A failed pass leaves its log as it was and the next tick tries again,
    /// except after a failed fsync (of a roll or of the pass), which fails the log until restart.
    pub async fn compact_due(&self) {
        let now = now_ms();
        for (topic_partition, log) in self.partitions() {
            if !log.config().compacts() {
                continue;
            }
            if let Err(err) = log.roll_if_due(now).await {
                error!(topic = %topic_partition.topic, partition = %topic_partition.partition, %err, "segment.ms roll failed");
                continue;
            }
            if let Err(err) = log.compact_if_due(now).await {
                error!(topic = %topic_partition.topic, partition = %topic_partition.partition, %err, "compaction failed");
            }
        }
    }

    /// Starts [`Shard::compact_due`] as its own task on the shard thread, unless one is still
    /// running. Returns whether it started one.
    pub fn spawn_compaction(self: &Rc<Self>) -> bool {
        if self.compacting.replace(true) {
            return false;
        }
        let shard = Rc::clone(self);
        compio::runtime::spawn(async move {
            let _running = CompactingMark(&shard.compacting);
            shard.compact_due().await;
        })
        .detach();
        true
    }

    /// Whether a task started by [`Shard::spawn_compaction`] is running.
    pub fn is_compacting(&self) -> bool {
        self.compacting.get()
    }

    /// Forgets, in every partition of this shard, the idempotent producers whose last batch is
    /// `expiration_ms` old and that hold no open transaction (Kafka's producer.id.expiration.ms).
    /// Returns how many were forgotten.
    pub fn expire_producers(&self, expiration_ms: u64) -> usize {
        let now = now_ms();
        let forgotten: usize = self
            .partitions()
            .iter()
            .map(|(_, log)| log.expire_producers(now, expiration_ms))
            .sum();
        if forgotten > 0 {
            info!(forgotten, "expired idempotent producers");
        }
        forgotten
    }

    /// Closes every partition: waits for queued appends, writes indexes, syncs. A partition that
    /// cannot close does not keep the others from closing cleanly; the first error is returned
    /// once all were tried.
    ///
    /// A log that had failed before the close began (a write or fsync error, a full disk) is no
    /// error of the close: its failure was reported when it happened, its requests have been
    /// answered KAFKA_STORAGE_ERROR since, and it is left without the clean-shutdown marker so
    /// the next start recovers it in full. Kafka's shutdown likewise skips the logs of an offline
    /// dir and closes the rest; a stop must not fail for a fault it did not meet.
    ///
    /// Runs under the open lock, so an open, a move's switch or a reopen under way finishes
    /// first (and its log is closed here); none starts afterwards ([`OpenError::ShardClosed`]).
    pub async fn close(&self) -> std::io::Result<()> {
        let _opening = self.open_lock.lock().await;
        self.closed.set(true);
        let mut first_error = None;
        for (topic_partition, log) in self.partitions() {
            let failed_earlier = log.is_failed();
            let closed = log.close().await;
            if let (Err(err), true) = (&closed, failed_earlier) {
                warn!(topic = %topic_partition.topic, partition = %topic_partition.partition, %err, "partition failed before the shutdown; left as it is, recovered in full at the next start");
                continue;
            }
            if let Err(err) = closed {
                error!(topic = %topic_partition.topic, partition = %topic_partition.partition, %err, "partition did not close cleanly; it is recovered in full at the next start");
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shard in `dir` with one compacted partition filled by [`append_compactable_chunks`].
    async fn shard_with_compactable_log(
        dir: &std::path::Path,
        roll_each: bool,
    ) -> (Rc<Shard>, Rc<PartitionLog>) {
        let shard = Rc::new(Shard::new(ShardId(0), dir).unwrap());
        let compact = LogConfig {
            cleanup_policy: crate::CleanupPolicy::Compact,
            ..LogConfig::default()
        };
        let compacted = shard
            .open_partition(TopicPartition::new("compacted", 0), compact)
            .await
            .unwrap();
        append_compactable_chunks(&compacted, roll_each).await;
        (shard, compacted)
    }

    /// 16 appends of 1,000 one-record batches over 16 keys (a long compaction pass), each append
    /// rolled into its own segment with `roll_each`.
    async fn append_compactable_chunks(compacted: &Rc<PartitionLog>, roll_each: bool) {
        for chunk in 0..16u32 {
            let mut records = bytes::BytesMut::new();
            for i in 0..1_000u32 {
                let key = [(i % 16) as u8];
                let value = (chunk * 1_000 + i).to_le_bytes();
                let record = crate::batch::RecordSpec {
                    key: Some(&key),
                    value: Some(&value),
                    timestamp_delta: 0,
                };
                records.extend_from_slice(&crate::batch::encode_batch(
                    1_000,
                    &[record],
                    crate::batch::ProducerSpec::default(),
                ));
            }
            compacted.append(records, 0).await.unwrap();
            if roll_each {
                compacted.roll_now().await.unwrap();
            }
        }
    }

    #[compio::test]
    async fn flush_ticks_and_appends_go_on_while_a_compaction_pass_runs() {
        // Compaction runs as its own task and yields between batches: a flush tick and an append
        // complete while a long pass (thousands of batches) is still in progress, instead of
        // waiting for the whole pass as when maintenance awaited it.
        let dir = tempfile::tempdir().unwrap();
        let (shard, compacted) = shard_with_compactable_log(dir.path(), false).await;
        compacted.roll_now().await.unwrap();
        assert!(compacted.cleaning_due());
        let flushed = shard
            .open_partition(
                TopicPartition::new("flushed", 0),
                LogConfig {
                    flush: crate::FlushPolicy::IntervalMs(1),
                    ..LogConfig::default()
                },
            )
            .await
            .unwrap();
        let cleaning = || compacted.state.borrow().cleaning;
        let (_running, stop) = futures_channel::oneshot::channel();
        compio::runtime::spawn(Rc::clone(&shard).run_maintenance(
            crate::MaintenanceSchedule {
                retention_check_ms: 0,
                ..crate::MaintenanceSchedule::default()
            },
            stop,
        ))
        .detach();
        for _ in 0..10_000 {
            if cleaning() {
                break;
            }
            compio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(cleaning(), "the pass started");
        assert!(!shard.spawn_compaction(), "one compaction task per shard");
        let batch = crate::batch::encode_uniform_batch(0, 3, 10);
        flushed
            .append(bytes::BytesMut::from(&batch[..]), 0)
            .await
            .unwrap();
        assert!(cleaning(), "the append completed while the pass ran");
        while flushed.durable_offset().get() < 3 {
            assert!(cleaning(), "the flush tick came before the pass ended");
            compio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(cleaning(), "flushed while the pass ran");
        for _ in 0..100_000 {
            if !cleaning() && !compacted.cleaning_due() {
                break;
            }
            compio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(!compacted.cleaning_due(), "the pass finished");
        assert!(compacted.stats().compaction_yields > 0);
    }

    #[compio::test]
    async fn closing_a_log_stops_its_compaction_pass() {
        // A shutdown closes every log, and a close waits for a running pass: the pass noticed
        // the close only between segments, after mapping every dirty segment first, so a stop
        // over a large dirty log waited for the whole key mapping. It now ends at its next yield.
        let dir = tempfile::tempdir().unwrap();
        let (shard, compacted) = shard_with_compactable_log(dir.path(), true).await;
        let end = compacted.high_watermark();
        assert!(shard.spawn_compaction());
        for _ in 0..10_000 {
            if compacted.state.borrow().cleaning {
                break;
            }
            compio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(compacted.state.borrow().cleaning, "the pass started");
        compacted.close().await.unwrap();
        assert!(!shard.is_compacting(), "the pass ended with the close");
        // 16 000 batches mapped whole take at least 16 000 / 64 = 250 yields.
        let yields = compacted.stats().compaction_yields;
        assert!(
            yields < 100,
            "the pass ran on for {yields} yields after the close"
        );
        assert_eq!(compacted.high_watermark(), end);
        let (reopened, _) = PartitionLog::open(compacted.dir(), compacted.config())
            .await
            .unwrap();
        assert_eq!(reopened.high_watermark(), end);
    }

    #[compio::test]
    async fn concurrent_opens_of_one_partition_share_one_log() {
        // Two requests racing to open a partition must not recover (and truncate) it twice.
        let dir = tempfile::tempdir().unwrap();
        let shard = Rc::new(Shard::new(ShardId(0), dir.path()).unwrap());
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let shard = Rc::clone(&shard);
                compio::runtime::spawn(async move {
                    shard
                        .open_partition(TopicPartition::new("race", 0), LogConfig::default())
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut logs = Vec::new();
        for open in opens {
            logs.push(open.await.unwrap());
        }
        assert!(logs.windows(2).all(|pair| Rc::ptr_eq(&pair[0], &pair[1])));
        let batch = crate::batch::encode_uniform_batch(0, 2, 10);
        logs[0]
            .append(bytes::BytesMut::from(&batch[..]), 0)
            .await
            .unwrap();
        assert_eq!(logs[3].high_watermark().get(), 2);
    }

    #[test]
    fn owner_is_stable_and_spreads_partitions() {
        // Routing must not change between threads or restarts, and a topic's partitions spread out.
        let owners: Vec<ShardId> = (0..8).map(|p| partition_owner("orders", p, 4)).collect();
        assert_eq!(
            owners,
            (0..8)
                .map(|p| partition_owner("orders", p, 4))
                .collect::<Vec<_>>()
        );
        for shard in 0..4 {
            assert_eq!(owners.iter().filter(|owner| owner.0 == shard).count(), 2);
        }
        assert_eq!(partition_owner("x", 3, 1), ShardId(0));
    }
}
