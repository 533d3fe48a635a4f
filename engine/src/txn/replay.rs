//! Recovery of a log's transaction state at open: the open transactions and each segment's
//! aborted-transaction index, from the newest producer snapshot and the log after it, or — when a
//! sealed segment's index is missing or torn — from the whole log.
//!
//! # Invariants
//! - After [`rebuild`], every segment's `aborted` list is exactly what appending its batches in
//!   order would have produced (given the state at the replay's start), and the open
//!   transactions are those of the whole log.
//! - Only batch headers and control batches are read: data records are never decoded.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use tracing::{info, warn};

use super::index_file::{self, Loaded};
use super::{parse_control_marker, AbortedTxn, OpenTransactions};
use crate::batch::{self, HEADER_BYTES};
use crate::segment::Segment;
use crate::units::{Offset, Position};

/// Bytes read at a time when replaying a segment's headers.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// The transaction state a producer snapshot held: everything below `offset` is covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotTxnState {
    pub offset: Offset,
    pub open: Vec<(i64, Offset)>,
}

/// Fills every segment's aborted list and returns the open transactions (see the module doc).
/// `snapshot` is the newest producer snapshot's transaction state, if one was read.
pub async fn rebuild(
    segments: &mut VecDeque<Segment>,
    snapshot: Option<SnapshotTxnState>,
) -> OpenTransactions {
    let damaged = load_indexes(segments, snapshot.as_ref()).await;
    let (mut open, from) = match snapshot {
        Some(snapshot) if !damaged => (
            OpenTransactions::from_pairs(&snapshot.open),
            snapshot.offset,
        ),
        _ => {
            for segment in segments.iter_mut() {
                segment.aborted.clear();
            }
            let from = segments
                .front()
                .map_or(Offset::ZERO, |front| front.base_offset);
            (OpenTransactions::default(), from)
        }
    };
    for segment in segments.iter_mut() {
        if segment.next_offset <= from {
            continue;
        }
        // Entries replayed below are those whose marker lies at or after `from`.
        segment.aborted.retain(|entry| entry.last_offset < from);
        let replayed = replay_segment(segment, from, &mut open).await;
        segment.aborted.extend(replayed);
    }
    if damaged && segments.len() > 1 {
        info!("rebuilt the aborted-transaction indexes from the log");
        let last = segments.len().saturating_sub(1);
        for segment in segments.iter().take(last) {
            if let Err(err) = index_file::store(&segment.files.log_path, &segment.aborted).await {
                // The next open rebuilds again; reads are served from memory meanwhile.
                warn!(path = %segment.files.log_path.display(), %err, "could not rewrite a .txnindex");
            }
        }
    }
    open
}

/// Loads the index of every segment that lies (partly) below the replay's start. Returns true
/// when one is missing or invalid: then the whole log is replayed.
async fn load_indexes(
    segments: &mut VecDeque<Segment>,
    snapshot: Option<&SnapshotTxnState>,
) -> bool {
    let Some(snapshot) = snapshot else {
        // No snapshot: only an empty or single-segment log can be replayed from its start alone,
        // which is what the full replay does anyway.
        return true;
    };
    let mut damaged = false;
    for segment in segments.iter_mut() {
        if segment.base_offset >= snapshot.offset {
            continue;
        }
        let path = &segment.files.log_path;
        match index_file::load(path, segment.base_offset, segment.next_offset).await {
            Loaded::Entries(entries) => segment.aborted = entries,
            Loaded::Missing => {
                info!(path = %path.display(), "no .txnindex: rebuilding from the log");
                damaged = true;
            }
            Loaded::Invalid => {
                warn!(path = %path.display(), "torn or invalid .txnindex: rebuilding from the log");
                damaged = true;
            }
        }
    }
    damaged
}

/// Replays one segment's batches at or after `from`; returns the ABORT entries found. Stops at
/// the first unreadable batch (recovery already cut the log after its last valid batch; a
/// garbled sealed segment is logged, never a panic).
async fn replay_segment(
    segment: &Segment,
    from: Offset,
    open: &mut OpenTransactions,
) -> Vec<AbortedTxn> {
    let mut aborted = Vec::new();
    let file = &segment.files.log;
    let end = segment.size_bytes;
    let mut position = if from > segment.base_offset {
        segment.walk_start_for_offset(from).0.get()
    } else {
        Position::START.get()
    };
    let mut window: Vec<u8> = Vec::new();
    let mut window_start = 0u64;
    while position + (HEADER_BYTES as u64) <= end {
        let window_end = window_start + window.len() as u64;
        if position < window_start || position + HEADER_BYTES as u64 > window_end {
            let len = usize::try_from(end - position)
                .unwrap_or(usize::MAX)
                .min(REPLAY_READ_BYTES);
            match file.read_at_most(position, len).await {
                Ok(bytes) => window = bytes,
                Err(err) => {
                    warn!(path = %segment.files.log_path.display(), %err, "transaction replay stopped: read failed");
                    break;
                }
            }
            window_start = position;
        }
        let at = (position - window_start) as usize;
        let Ok(header) = batch::parse_header(&window[at..]) else {
            break;
        };
        let total = header.total_bytes() as u64;
        if header.batch_length < batch::BATCH_LENGTH_MIN || position + total > end {
            warn!(path = %segment.files.log_path.display(), position, "transaction replay stopped at a bad header");
            break;
        }
        if header.base_offset >= from && header.is_transactional() {
            let marker = if header.is_control() {
                let bytes = match window.get(at..at + total as usize) {
                    Some(bytes) => bytes.to_vec(),
                    None => match file.read_at_most(position, total as usize).await {
                        Ok(bytes) => bytes,
                        Err(_) => break,
                    },
                };
                match parse_control_marker(&bytes) {
                    Ok(marker) => Some(marker),
                    Err(err) => {
                        warn!(path = %segment.files.log_path.display(), position, %err, "control batch skipped");
                        position += total;
                        continue;
                    }
                }
            } else {
                None
            };
            aborted.extend(open.note(&header, marker));
        }
        position += total;
    }
    aborted
}
