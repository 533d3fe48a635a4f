//! What a cleaning pass does with a control batch (a transaction marker); the bookkeeping of
//! the transactions it is inside of is [`crate::txn::cleaning`].
#![forbid(unsafe_code)]

use std::path::Path;

use crate::batch;
use crate::cleaner;
use crate::config::LogConfig;
use crate::error::CompactionError;
use crate::txn::cleaning::TxnCleaning;
use crate::txn::ControlMarker;

/// A control batch's fate, as in Kafka's cleaner: kept as it is while a record of its
/// transaction is left before it; once none is, stamped with a delete horizon (KIP-534) if it
/// has none, and dropped by a pass at or after that horizon. Returns the batch to write (if any)
/// and whether an ABORT marker's aborted entry goes from the index (no record left to hide).
///
/// A marker that cannot be read (`path` names its segment) ends the pass with
/// [`CompactionError::UnreadableMarker`]: without it the cleaner cannot tell where its
/// producer's transaction ends, and would take that producer's later committed batches for
/// aborted ones and delete them.
pub(super) fn judge_marker(
    bytes: &[u8],
    header: &batch::BatchHeader,
    path: &Path,
    txn: &mut TxnCleaning,
    now_ms: i64,
    config: &LogConfig,
) -> Result<(Option<Vec<u8>>, bool), CompactionError> {
    let marker = crate::txn::parse_control_marker(bytes).map_err(|err| {
        CompactionError::UnreadableMarker {
            path: path.to_path_buf(),
            base_offset: header.base_offset,
            reason: err.to_string(),
        }
    })?;
    let may_go = txn.on_control_batch(header, marker);
    let entry_dropped = may_go && marker == ControlMarker::Abort;
    if !may_go {
        return Ok((Some(bytes.to_vec()), entry_dropped));
    }
    let rebuilt = match header.delete_horizon_ms() {
        Some(horizon) if now_ms >= horizon => None,
        Some(_) => Some(bytes.to_vec()),
        None => {
            let retention_ms = i64::try_from(config.delete_retention_ms).unwrap_or(i64::MAX);
            match cleaner::decode_batch(bytes) {
                Ok(decoded) => {
                    let keep = vec![true; decoded.records.len()];
                    let horizon = now_ms.saturating_add(retention_ms);
                    cleaner::rebuild(bytes, &decoded, &keep, Some(horizon))?
                }
                // parse_control_marker read it: not expected; kept as it is.
                Err(_) => Some(bytes.to_vec()),
            }
        }
    };
    Ok((rebuilt, entry_dropped))
}
