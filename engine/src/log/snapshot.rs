//! Producer snapshots: the idempotent producers' table, written at each roll and at close, read
//! back at open.
#![forbid(unsafe_code)]

use std::path::Path;

use super::files::{list_segments, snapshot_file_name};
use super::state::PartitionLog;
use super::types::OpenReport;
use crate::io;
use crate::producer::ProducerStateTable;
use crate::txn::replay::SnapshotTxnState;
use crate::units::Offset;

impl PartitionLog {
    /// Writes the producer table as of `offset` (everything appended below it) and removes older
    /// snapshots. Called at a roll (offset = new segment base) and at close (offset = end), when no
    /// append is in flight.
    pub(crate) async fn write_producer_snapshot(&self, offset: Offset) -> std::io::Result<()> {
        let bytes = self.encode_producer_snapshot(offset);
        self.store_producer_snapshot(offset, bytes).await
    }

    /// The producer table as of `offset`, encoded (a roll under `flush=none` stores it later:
    /// `seal.rs`).
    pub(crate) fn encode_producer_snapshot(&self, offset: Offset) -> Vec<u8> {
        let state = self.state.borrow();
        let open = state.transactions.pairs_before(offset);
        state.producers.encode_snapshot_with(offset, &open)
    }

    /// Writes an encoded snapshot as of `offset` and removes older snapshots.
    pub(crate) async fn store_producer_snapshot(
        &self,
        offset: Offset,
        bytes: Vec<u8>,
    ) -> std::io::Result<()> {
        io::disk::write_file_atomically(&self.dir.join(snapshot_file_name(offset)), bytes).await?;
        {
            let mut state = self.state.borrow_mut();
            state.snapshot_offset = state.snapshot_offset.max(offset);
        }
        let (_, snapshots) = list_segments(&self.dir)
            .await
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        for older in snapshots.into_iter().filter(|snapshot| *snapshot < offset) {
            io::disk::remove_file(&self.dir.join(snapshot_file_name(older))).await?;
        }
        Ok(())
    }
}

/// The producer table at open: the newest snapshot, then every producer batch recovery scanned
/// past it. A missing or unreadable snapshot only costs idempotence across this restart.
pub(super) async fn rebuild_producers(
    dir: &Path,
    snapshot_offsets: &[Offset],
    next_offset: Offset,
    report: &OpenReport,
) -> (ProducerStateTable, Option<SnapshotTxnState>) {
    let mut table = ProducerStateTable::default();
    let mut transactions = None;
    let mut covered = Offset::new(i64::MIN);
    if let Some(offset) = snapshot_offsets
        .iter()
        .copied()
        .filter(|offset| *offset <= next_offset)
        .max()
    {
        let bytes = io::disk::read(&dir.join(snapshot_file_name(offset)))
            .await
            .ok();
        let decoded = bytes.as_deref().and_then(|bytes| {
            let (table, offset) = ProducerStateTable::decode_snapshot(bytes)?;
            Some((
                table,
                offset,
                ProducerStateTable::decode_snapshot_transactions(bytes)?,
            ))
        });
        match decoded {
            Some((snapshot, snapshot_offset, open)) => {
                table = snapshot;
                covered = snapshot_offset;
                transactions = Some(SnapshotTxnState {
                    offset: snapshot_offset,
                    open,
                });
            }
            None => {
                tracing::warn!(dir = %dir.display(), %offset, "unreadable producer snapshot ignored")
            }
        }
    }
    for (_, recovery) in &report.recovery {
        for header in recovery
            .producer_batches
            .iter()
            .filter(|header| header.base_offset >= covered)
        {
            table.record(header);
        }
    }
    (table, transactions)
}
