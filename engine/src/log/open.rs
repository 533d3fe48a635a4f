//! Opening a log: an interrupted cleaning finished, every segment recovered, the producer table
//! rebuilt, the clean-shutdown marker consumed.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;

use tracing::{info, warn};

use super::boundary_cache::BoundaryCache;
use super::cleaner_checkpoint;
use super::files::{list_segments, remove_leftover_temp_files, CLEAN_SHUTDOWN_FILE_NAME};
use super::snapshot::rebuild_producers;
use super::start_offset;
use super::state::{LogState, PartitionLog};
use super::types::{CleanerCheckpoint, LogStats, OpenReport};
use crate::clock::now_ms;
use crate::config::LogConfig;
use crate::error::OpenError;
use crate::io;
use crate::producer::ProducerStateTable;
use crate::segment::recovery::RecoveryScan;
use crate::segment::{self, Segment};
use crate::units::Offset;

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering every segment.
    pub async fn open(dir: &Path, config: LogConfig) -> Result<(Rc<Self>, OpenReport), OpenError> {
        // A cleaning interrupted by a crash is finished (if it was committed) or undone first.
        crate::install::finish_interrupted(dir).await?;
        remove_leftover_temp_files(dir).await;
        let (base_offsets, snapshot_offsets) = list_segments(dir).await?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE_NAME);
        let clean_shutdown = io::disk::exists(&marker).await;
        let now = now_ms();
        // Segments at or past the newest snapshot are not covered by it (a crash between a roll's
        // new segment and its snapshot leaves one sealed there): their producer batches must all
        // be scanned, not only those after their last index entry.
        let snapshot_floor = snapshot_offsets.iter().copied().max();
        let (mut segments, mut report) = recover_segments(
            dir,
            &base_offsets,
            &config,
            (clean_shutdown, snapshot_floor),
            now,
        )
        .await?;
        if clean_shutdown {
            // From here on a crash must lead to a full check: the removal has to be durable.
            io::disk::remove_file(&marker)
                .await
                .map_err(OpenError::io(&marker))?;
        }
        // The marker's removal, and after a crash the segments' names: a roll's new segment is in
        // the directory only once a seal synced it, and the crash may have dropped that seal.
        io::disk::sync_dir(dir).await.map_err(OpenError::io(dir))?;
        let next_offset = segments
            .back()
            .map_or(Offset::ZERO, |segment| segment.next_offset);
        // A snapshot past the end describes records recovery dropped; left, it would pass for
        // the newest at a later open.
        for &stale in snapshot_offsets
            .iter()
            .filter(|offset| **offset > next_offset)
        {
            let path = dir.join(super::files::snapshot_file_name(stale));
            if let Err(err) = io::disk::remove_file(&path).await {
                warn!(path = %path.display(), %err, "a producer snapshot past the log's end stays");
            }
        }
        let snapshot_offsets: Vec<Offset> = snapshot_offsets
            .into_iter()
            .filter(|offset| *offset <= next_offset)
            .collect();
        let (mut producers, snapshot_txns) =
            rebuild_producers(dir, &snapshot_offsets, next_offset, &report).await;
        let transactions = crate::txn::replay::rebuild(&mut segments, snapshot_txns).await;
        index_uncovered_segments(&segments, snapshot_floor).await?;
        producers.note_open_transactions(|producer_id| transactions.contains(producer_id));
        let persisted_start = start_offset::read_persisted(dir).await;
        let mut state = initial_state(config, segments, producers, transactions, now);
        state.snapshot_offset = snapshot_offsets
            .iter()
            .copied()
            .max()
            .unwrap_or(Offset::ZERO);
        if let Some(persisted_start) = persisted_start {
            // Records lost to a crash may leave the kept start past the end: the log is empty.
            state.log_start_offset = state.log_start_offset.max(persisted_start.min(next_offset));
        }
        if let Some(kept) = cleaner_checkpoint::read_persisted(dir, next_offset).await {
            state.first_dirty_offset = kept.first_dirty_offset;
            state.next_delete_horizon_ms = kept.delete_horizon_ms;
            state.kept_cleaner_checkpoint = kept;
        }
        let log = Self {
            dir: dir.to_path_buf(),
            state: RefCell::new(state),
            start_offset_lock: futures_util::lock::Mutex::new(()),
        };
        // Segments a deletion (retention, DeleteRecords) left behind: their unlink was lost to a
        // crash or failed. The persisted start already hides them; they go now, or at the next
        // retention pass if this fails.
        if let Err(err) = log.delete_segments_below_start().await {
            warn!(dir = %dir.display(), %err, "deleting segments below the log start failed");
        }
        // The segments the log kept, not those recovery found: the deletion may have taken some.
        report.segments = log.segment_count();
        Ok((Rc::new(log), report))
    }
}

/// Recovers each segment, oldest first: the active one in full after a crash, the others from
/// their last index entry (they were fsynced when sealed) unless the newest producer snapshot
/// does not cover them (`snapshot_floor`; none: no snapshot). Creates the first segment of a new
/// log.
async fn recover_segments(
    dir: &Path,
    base_offsets: &[Offset],
    config: &LogConfig,
    (clean_shutdown, snapshot_floor): (bool, Option<Offset>),
    now_ms: i64,
) -> Result<(VecDeque<Segment>, OpenReport), OpenError> {
    let mut segments = VecDeque::with_capacity(base_offsets.len().max(1));
    let mut report = OpenReport {
        clean_shutdown,
        ..OpenReport::default()
    };
    for (index, &base_offset) in base_offsets.iter().enumerate() {
        let is_active = index + 1 == base_offsets.len();
        // A sealed segment the newest producer snapshot does not cover (see `open`) is scanned
        // whole so the producer table gets every batch of it back.
        let uncovered = !is_active && snapshot_floor.is_none_or(|floor| base_offset >= floor);
        let scan = if (is_active && !clean_shutdown) || uncovered {
            RecoveryScan::Full
        } else {
            RecoveryScan::FromLastIndexEntry
        };
        let (mut segment, mut recovery) =
            segment::recovery::recover(dir, base_offset, config, is_active, scan, now_ms).await?;
        let next_base = base_offsets.get(index + 1).copied();
        if uncovered && lost_data_before(&segment, next_base) {
            // A segment whose seal had not run lost bytes the next ones follow (`seal.rs`): what
            // survives must be a prefix of the log, so the later segments go and this one is
            // the active segment again.
            let dropped = &base_offsets[index + 1..];
            warn!(dir = %dir.display(), %base_offset, recovered_end = %segment.next_offset, cut_bytes = recovery.cut_bytes,
                dropped_segments = dropped.len(), "a rolled segment lost data its seal had not synced: dropping the segments after it");
            for &later in dropped {
                remove_segment_files(dir, later).await?;
            }
            drop(segment);
            (segment, recovery) = segment::recovery::recover(
                dir,
                base_offset,
                config,
                true,
                RecoveryScan::Full,
                now_ms,
            )
            .await?;
            report.recovery.push((base_offset, recovery));
            segments.push_back(segment);
            break;
        }
        if recovery.truncated_bytes > 0 || recovery.index_rebuilt {
            info!(
                dir = %dir.display(),
                %base_offset,
                truncated_bytes = recovery.truncated_bytes,
                index_rebuilt = recovery.index_rebuilt,
                "recovered segment"
            );
        }
        report.recovery.push((base_offset, recovery));
        segments.push_back(segment);
    }
    if segments.is_empty() {
        segments.push_back(Segment::create(dir, Offset::ZERO, config, now_ms).await?);
        // A new log's files and its directory's own name must survive a power loss before the
        // first append is acknowledged: an fdatasync of the segment does not make its name
        // durable (found by tests/compat/test_power_loss.py: every acknowledged record of a new
        // partition vanished with its directory).
        sync_new_log_dir(dir).await?;
    }
    report.segments = segments.len();
    Ok((segments, report))
}

/// Writes the `.txnindex` of the rolled segments the newest producer snapshot does not cover:
/// their seal, which writes it, was queued (`flush=none`) and a crash dropped it; recovery synced
/// them (`segment::recovery`) and the replay found their aborted transactions. Without this the
/// `.txnindex` a clean close had written for such a segment while it was active (its entries up
/// to then) was trusted once a later seal's snapshot covered it, and an abort appended after it
/// was lost from the index (found by tests/transactions.rs' model: a read_committed consumer
/// would have been served aborted records).
async fn index_uncovered_segments(
    segments: &VecDeque<Segment>,
    snapshot_floor: Option<Offset>,
) -> Result<(), OpenError> {
    let rolled_count = segments.len().saturating_sub(1);
    for segment in segments.iter().take(rolled_count) {
        if snapshot_floor.is_some_and(|floor| segment.base_offset < floor) {
            continue;
        }
        let log_path = &segment.files.log_path;
        crate::txn::index_file::store(log_path, &segment.aborted)
            .await
            .map_err(OpenError::io(log_path))?;
    }
    Ok(())
}

/// Whether `segment`, rolled but maybe never sealed, lost data: it ends short of the next
/// segment's base. Not the cleaner's gap: it cleans only segments below the newest snapshot
/// (`LogState::snapshot_offset`), which recovery does not check this way.
fn lost_data_before(segment: &Segment, next_base: Option<Offset>) -> bool {
    next_base.is_some_and(|next_base| segment.next_offset < next_base)
}

/// Removes a dropped segment's files; a missing one is fine.
async fn remove_segment_files(dir: &Path, base_offset: Offset) -> Result<(), OpenError> {
    let log_path = dir.join(segment::log_file_name(base_offset));
    for path in [
        log_path.with_extension("index"),
        log_path.with_extension("timeindex"),
        log_path.with_extension("txnindex"),
        log_path.clone(),
    ] {
        match io::disk::remove_file(&path).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(OpenError::io(&path)(err))
            }
            _ => {}
        }
    }
    io::disk::sync_dir(dir).await.map_err(OpenError::io(dir))
}

/// fsyncs a new log's directory (its segment files' names) and its parent (the directory's name).
async fn sync_new_log_dir(dir: &Path) -> Result<(), OpenError> {
    io::disk::sync_dir(dir).await.map_err(OpenError::io(dir))?;
    if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        io::disk::sync_dir(parent)
            .await
            .map_err(OpenError::io(parent))?;
    }
    Ok(())
}

/// The state of a log just opened: everything recovered is readable and durable.
fn initial_state(
    config: LogConfig,
    segments: VecDeque<Segment>,
    producers: ProducerStateTable,
    transactions: crate::txn::OpenTransactions,
    now_ms: i64,
) -> LogState {
    let next_offset = segments
        .back()
        .map_or(Offset::ZERO, |segment| segment.next_offset);
    let log_start_offset = segments
        .front()
        .map_or(Offset::ZERO, |segment| segment.base_offset);
    let preallocations_declined = u64::from(segments.back().is_some_and(|active| {
        active.preallocation == crate::segment::preallocation::Preallocation::Declined
    }));
    LogState {
        config,
        segments,
        next_offset,
        high_watermark: next_offset,
        durable_offset: next_offset,
        log_start_offset,
        pending: Vec::new(),
        writer_active: false,
        failure: None,
        out_of_space: false,
        closed: false,
        last_sync_ms: now_ms,
        stats: LogStats {
            preallocations_declined,
            ..LogStats::default()
        },
        data_waiters: Vec::new(),
        producers,
        boundaries: BoundaryCache::new(),
        cleaning: false,
        first_dirty_offset: log_start_offset,
        next_delete_horizon_ms: None,
        kept_cleaner_checkpoint: CleanerCheckpoint {
            first_dirty_offset: log_start_offset,
            delete_horizon_ms: None,
        },
        uncleanable: false,
        transactions,
        pending_markers: std::collections::BTreeMap::new(),
        direct_tail: None,
        spare: super::types::Spare::Absent,
        seals_pending: VecDeque::new(),
        sealer_active: false,
        snapshot_offset: Offset::ZERO,
        direct_refused: false,
        tail_cache: Default::default(),
        drop_behind_running: Default::default(),
        reader_floor: Default::default(),
    }
}
