//! The log's state under its `RefCell`, and the accessors that only look at it.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_channel::oneshot;

use super::boundary_cache::BoundaryCache;
use super::types::{AppendOutcome, LogStats};
use crate::batch::BatchHeader;
use crate::config::LogConfig;
use crate::error::AppendError;
use crate::producer::ProducerStateTable;
use crate::segment::Segment;
use crate::txn::{ControlMarker, OpenTransactions};
use crate::units::Offset;

pub(crate) struct PendingAppend {
    /// The record set as iovecs: per batch, its patched first bytes (offset, length, epoch), then
    /// the rest of the producer's bytes, untouched and uncopied.
    pub(crate) records: Vec<Bytes>,
    pub(crate) headers: Vec<BatchHeader>,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

pub(crate) struct LogState {
    pub(crate) config: LogConfig,
    pub(crate) segments: VecDeque<Segment>,
    pub(crate) next_offset: Offset,
    pub(crate) high_watermark: Offset,
    pub(crate) durable_offset: Offset,
    pub(crate) log_start_offset: Offset,
    pub(crate) pending: Vec<PendingAppend>,
    pub(crate) writer_active: bool,
    pub(crate) failure: Option<String>,
    /// The failure was a write refused for space (ENOSPC, EDQUOT) before any sync: the page
    /// cache holds what the files say, so the log may be reopened once space is back
    /// ([`crate::log::out_of_space`]).
    pub(crate) out_of_space: bool,
    pub(crate) closed: bool,
    pub(crate) last_sync_ms: i64,
    pub(crate) stats: LogStats,
    /// Readers parked until the high watermark moves (long-polling fetches).
    pub(crate) data_waiters: Vec<oneshot::Sender<()>>,
    /// Idempotent producers' sequence state.
    pub(crate) producers: ProducerStateTable,
    pub(crate) boundaries: BoundaryCache,
    /// A cleaning pass is running: retention and close wait for it (see [`crate::compaction`]).
    pub(crate) cleaning: bool,
    /// Sealed segments from this offset on have not been cleaned (kept across restarts:
    /// `cleaner_checkpoint.rs`).
    pub(crate) first_dirty_offset: Offset,
    /// The earliest delete horizon (KIP-534) a finished cleaning pass left in the log's batches,
    /// still to come then: a pass at or after it removes tombstones and markers even when no
    /// new bytes are dirty (Kafka's cleaner picks such logs too). Kept across restarts with
    /// the first dirty offset.
    pub(crate) next_delete_horizon_ms: Option<i64>,
    /// What the cleaner checkpoint file holds now.
    pub(crate) kept_cleaner_checkpoint: super::types::CleanerCheckpoint,
    /// A pass met a batch it must not judge ([`crate::error::CompactionError::UnreadableMarker`]):
    /// no more passes until the log is reopened, as Kafka's cleaner skips a partition it marked
    /// uncleanable.
    pub(crate) uncleanable: bool,
    /// Transactions open in this partition, as of the batches written (not merely queued).
    pub(crate) transactions: OpenTransactions,
    /// Markers of control batches queued but not yet written, by base offset: the writer notes
    /// them in order with their batch (`note_run`).
    pub(crate) pending_markers: BTreeMap<Offset, ControlMarker>,
    /// With `write.direct`: the active segment's direct handle and partial last block.
    pub(crate) direct_tail: Option<super::direct_tail::DirectTail>,
    /// The file system refused `O_DIRECT`: this log writes buffered until reopened.
    pub(crate) direct_refused: bool,
    /// With `write.direct`: the active segment's latest runs, for readers at the tail.
    pub(crate) tail_cache: super::tail_cache::TailCache,
    /// The next segment's file, allocated ahead of the roll (`spare.rs`).
    pub(crate) spare: super::types::Spare,
    /// Rolled segments whose seal runs in the background, oldest first (`seal.rs`).
    pub(crate) seals_pending: std::collections::VecDeque<super::types::PendingSeal>,
    /// A task is running the pending seals.
    pub(crate) sealer_active: bool,
    /// The offset of the newest producer snapshot on disk: every segment below it is synced, and
    /// only those may be cleaned (recovery takes a gap above it for lost data: `seal.rs`).
    pub(crate) snapshot_offset: Offset,
    /// A drop behind (`drop.behind.bytes`) is running: the next waits for its turn.
    pub(crate) drop_behind_running: std::rc::Rc<std::cell::Cell<bool>>,
    /// Where readers of the active segment read lately: a drop behind leaves what they have yet
    /// to read, up to `drop.behind.max.bytes` behind the end.
    pub(crate) reader_floor: super::reader_floor::ReaderFloor,
}

impl LogState {
    pub(crate) fn active(&self) -> &Segment {
        self.segments
            .back()
            .expect("a log always has an active segment")
    }

    /// Rebases the live readers' positions on the active segment after a roll (`reader_floor.rs`),
    /// so a roll does not forget a reader a little behind. Returns the active segment's base.
    pub(crate) fn rebase_reader_floor(&mut self) -> Offset {
        let active_base = self.active().base_offset;
        let old_base = self.reader_floor.segment_base();
        if old_base != active_base {
            let index = self.segment_index_for(old_base);
            let active_index = self.segments.len() - 1;
            let shift = (self.segments[index].base_offset == old_base
                && index < active_index
                && active_index - index < super::reader_floor::SEGMENTS_WALKED_MAX)
                .then(|| {
                    self.segments
                        .range(index..active_index)
                        .map(|segment| segment.end().get() as i64)
                        .sum()
                });
            self.reader_floor.rebase(active_base, shift);
        }
        active_base
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .back_mut()
            .expect("a log always has an active segment")
    }

    /// Lets go of the active segment's direct handle and everything the tail cache holds: the
    /// segment rolled, or direct writes were turned off.
    pub(crate) fn drop_direct(&mut self) {
        self.direct_tail = None;
        self.tail_cache.clear();
    }

    /// Index of the segment holding `offset` (the last with base offset <= `offset`).
    pub(crate) fn segment_index_for(&self, offset: Offset) -> usize {
        self.segments
            .partition_point(|segment| segment.base_offset <= offset)
            .saturating_sub(1)
    }
}

/// One partition's log. Create with [`PartitionLog::open`]; shard-local.
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) state: RefCell<LogState>,
    /// Serialises moves of the log start offset, so its file always ends with the largest.
    pub(crate) start_offset_lock: futures_util::lock::Mutex<()>,
}

impl PartitionLog {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        self.state.borrow().config.clone()
    }

    /// Idempotent producers with a batch remembered by this log (Kafka's DescribeProducers).
    pub fn active_producers(&self) -> Vec<crate::producer::ActiveProducer> {
        let state = self.state.borrow();
        state
            .producers
            .active(|producer_id| state.transactions.first_offset(producer_id))
    }

    /// Forgets the idempotent producers whose last batch is `expiration_ms` old and that hold no
    /// open transaction here (see [`ProducerStateTable::expire`]). Returns how many.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: u64) -> usize {
        let mut state = self.state.borrow_mut();
        let LogState {
            producers,
            transactions,
            high_watermark,
            ..
        } = &mut *state;
        // Batches from the high watermark on are queued, not written: the transactions they open
        // are noted with the write (in the same step that moves the high watermark).
        producers.expire(now_ms, expiration_ms, *high_watermark, |producer_id| {
            transactions.contains(producer_id)
        })
    }

    /// Changes the config; takes effect for the next append, roll and retention pass. The tail
    /// cache gives back at once what the new config no longer lets it hold (an idle log would
    /// keep it until its next write otherwise).
    pub fn set_config(&self, config: LogConfig) {
        let mut state = self.state.borrow_mut();
        if config.write_direct {
            state.tail_cache.trim(config.tail_cache_bytes);
        } else {
            state.drop_direct();
        }
        state.config = config;
    }

    /// Offset after the last readable batch (Kafka's high watermark on a single replica).
    pub fn high_watermark(&self) -> Offset {
        self.state.borrow().high_watermark
    }

    /// Resolves once the high watermark is beyond `offset` (at once if it already is): what a
    /// long-polling fetch waits on. The caller bounds the wait with its own timer.
    pub fn wait_for_data_after(
        &self,
        offset: impl Into<Offset>,
    ) -> impl std::future::Future<Output = ()> + 'static {
        let offset = offset.into();
        let receiver = {
            let mut state = self.state.borrow_mut();
            if state.high_watermark > offset || state.closed {
                None
            } else {
                let (sender, receiver) = oneshot::channel();
                park_waiter(&mut state.data_waiters, sender);
                Some(receiver)
            }
        };
        async move {
            if let Some(receiver) = receiver {
                let _ = receiver.await;
            }
        }
    }

    /// The active segment's base offset and logical end (bytes of whole batches written).
    pub fn active_segment_end(&self) -> (Offset, crate::units::Position) {
        let state = self.state.borrow();
        let active = state.active();
        (active.base_offset, active.end())
    }

    /// Offset after the last batch known to be on disk (fdatasync'ed).
    pub fn durable_offset(&self) -> Offset {
        self.state.borrow().durable_offset
    }

    pub fn log_start_offset(&self) -> Offset {
        self.state.borrow().log_start_offset
    }

    /// Bytes of whole batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state
            .borrow()
            .segments
            .iter()
            .map(|segment| segment.size_bytes)
            .sum()
    }

    /// A cleaning pass met a batch it must not judge and left the log alone: no more passes
    /// until it is reopened (Kafka's uncleanable partitions). For metrics an operator alerts on.
    pub fn uncleanable(&self) -> bool {
        self.state.borrow().uncleanable
    }

    pub fn stats(&self) -> LogStats {
        self.state.borrow().stats
    }

    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.state
            .borrow()
            .segments
            .iter()
            .map(|segment| segment.base_offset)
            .collect()
    }
}

/// Parks a long-polling reader's waker. Waiters whose fetch gave up are dropped only when the
/// vector is full, and as much room as is kept is left free after, so a park visits O(1)
/// waiters on average however many wait. Sweeping on every park cost n²/2 visits on the shard's
/// thread: 40,000 waiters (one Fetch naming a partition that often) stalled it 17 s. Returns the
/// waiters this park visited.
fn park_waiter(waiters: &mut Vec<oneshot::Sender<()>>, sender: oneshot::Sender<()>) -> usize {
    let mut visited = 0;
    if waiters.len() == waiters.capacity() {
        visited = waiters.len();
        waiters.retain(|waiter| !waiter.is_canceled());
        let room = waiters.len().max(8);
        waiters.shrink_to(2 * room);
        waiters.reserve(room);
    }
    waiters.push(sender);
    visited
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use crate::config::LogConfig;
    use crate::log::PartitionLog;
    use crate::units::Offset;

    #[test]
    fn a_park_visits_a_bounded_number_of_waiters_on_average() {
        // Half the readers give up before the others come (a fetch answered or timed out), the
        // rest stay: the visits stay linear in the parks either way.
        let mut waiters = Vec::new();
        let mut visited = 0;
        let mut kept = Vec::new();
        for round in 0..4 {
            for index in 0..50_000 {
                let (sender, receiver) = futures_channel::oneshot::channel();
                visited += super::park_waiter(&mut waiters, sender);
                if round % 2 == 1 || index % 2 == 0 {
                    kept.push(receiver);
                }
            }
        }
        let parks = 200_000;
        assert!(
            visited <= 4 * parks,
            "{visited} waiters visited for {parks} parks"
        );
        assert!(waiters.len() < parks, "waiters that gave up are swept");
        assert!(
            waiters
                .iter()
                .filter(|waiter| !waiter.is_canceled())
                .count()
                == kept.len()
        );
    }

    #[compio::test]
    async fn every_parked_reader_still_waiting_is_woken_by_an_append() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = PartitionLog::open(dir.path(), LogConfig::default())
            .await
            .unwrap();
        let given_up: Vec<_> = (0..10_000)
            .map(|_| log.wait_for_data_after(Offset::ZERO))
            .collect();
        drop(given_up);
        let waiting: Vec<_> = (0..10_000)
            .map(|_| log.wait_for_data_after(Offset::ZERO))
            .collect();
        assert!(
            log.state.borrow().data_waiters.len() < 20_000,
            "readers that gave up are swept"
        );
        let batch = crate::batch::encode_uniform_batch(1_000, 1, 10);
        log.append(bytes::Bytes::from(batch), 0).await.unwrap();
        for waiter in waiting {
            assert!(waiter.now_or_never().is_some(), "woken by the append");
        }
    }
}
