//! Producer snapshots: the idempotent producers' table, written at each roll and at close, read
//! back at open.
#![forbid(unsafe_code)]

use std::path::Path;

use super::files::{list_segments, snapshot_file_name};
use super::state::PartitionLog;
use super::types::OpenReport;
use crate::io;
use crate::producer::ProducerStateTable;
use crate::units::Offset;

impl PartitionLog {
    /// Writes the producer table as of `offset` (everything appended below it) and removes older
    /// snapshots. Called at a roll (offset = new segment base) and at close (offset = end), when no
    /// append is in flight.
    pub(crate) async fn write_producer_snapshot(&self, offset: Offset) -> std::io::Result<()> {
        let bytes = self.state.borrow().producers.encode_snapshot(offset);
        io::disk::write_file_atomically(&self.dir.join(snapshot_file_name(offset)), bytes).await?;
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
) -> ProducerStateTable {
    let mut table = ProducerStateTable::default();
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
        match bytes.and_then(|bytes| ProducerStateTable::decode_snapshot(&bytes)) {
            Some((snapshot, snapshot_offset)) => {
                table = snapshot;
                covered = snapshot_offset;
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
    table
}
