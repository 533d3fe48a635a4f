//! The records the transaction coordinator keeps in `__transaction_state` (compacted, one
//! partition, every write fsynced), and the replay that rebuilds its table at start.
//!
//! # Byte map of a `__transaction_state` record (uncompressed batches of the coordinator)
//! ```text
//! key   "txn\0<transactional id>"
//! value JSON TxnMetadata: {"producer_id","producer_epoch","timeout_ms","state","partitions":
//!       [[topic, partition], …],"groups":[…],"start_ms","update_ms","last_producer_epoch",
//!       "last_producer_id"}; null (tombstone) deletes; "last_producer_epoch" and
//!       "last_producer_id" are absent from older records (-1)
//! ```
//! The last record of a key wins, so compaction keeps exactly what replay needs.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use bytes::BytesMut;
use ringtail_engine::batch::{
    decode_records, encode_batch, parse_header, ProducerSpec, RecordSpec,
};
use ringtail_engine::{BatchError, PartitionLog};

use super::state::TxnMetadata;

/// Bytes read at a time when the log is replayed at start.
const REPLAY_READ_BYTES: u64 = 1 << 20;

pub fn txn_key(transactional_id: &str) -> Vec<u8> {
    format!("txn\0{transactional_id}").into_bytes()
}

/// One record: the transactional id's whole state, as one batch stamped `now_ms`.
pub fn encode_state(transactional_id: &str, meta: &TxnMetadata, now_ms: i64) -> BytesMut {
    let key = txn_key(transactional_id);
    let value = serde_json::to_vec(meta).expect("serialisable");
    let record = RecordSpec {
        key: Some(&key),
        value: Some(&value),
        timestamp_delta: 0,
    };
    BytesMut::from(&encode_batch(now_ms, &[record], ProducerSpec::default())[..])
}

/// The tombstone of a forgotten transactional id (replay removes it; compaction drops both).
pub fn encode_tombstone(transactional_id: &str, now_ms: i64) -> BytesMut {
    let key = txn_key(transactional_id);
    let record = RecordSpec {
        key: Some(&key),
        value: None,
        timestamp_delta: 0,
    };
    BytesMut::from(&encode_batch(now_ms, &[record], ProducerSpec::default())[..])
}

/// Applies every record of `bytes` (whole batches) to `table`; returns the offset after the last
/// batch, or the position and error of a batch that does not parse.
pub fn replay_batches(
    bytes: &[u8],
    table: &mut BTreeMap<String, TxnMetadata>,
) -> Result<Option<ringtail_engine::Offset>, (usize, BatchError)> {
    let mut position = 0;
    let mut next_offset = None;
    while position < bytes.len() {
        let header = parse_header(&bytes[position..]).map_err(|err| (position, err))?;
        // Checked before anything of the batch is applied: an error leaves only whole batches.
        let batch_next_offset = header
            .checked_next_offset()
            .map_err(|err| (position, err))?;
        let batch = bytes
            .get(position..position.saturating_add(header.total_bytes()))
            .ok_or((
                position,
                BatchError::Truncated {
                    needed_bytes: header.total_bytes(),
                    available_bytes: bytes.len() - position,
                },
            ))?;
        for record in decode_records(batch).unwrap_or_default() {
            apply(table, record.key.unwrap_or_default(), record.value);
        }
        next_offset = Some(batch_next_offset);
        position += header.total_bytes();
    }
    Ok(next_offset)
}

fn apply(table: &mut BTreeMap<String, TxnMetadata>, key: &[u8], value: Option<&[u8]>) {
    let Some(transactional_id) = key
        .strip_prefix(b"txn\0")
        .and_then(|id| std::str::from_utf8(id).ok())
    else {
        return;
    };
    match value.map(serde_json::from_slice::<TxnMetadata>) {
        Some(Ok(meta)) => {
            table.insert(transactional_id.to_string(), meta);
        }
        Some(Err(err)) => {
            tracing::warn!(transactional_id, %err, "skipping an unreadable transaction record");
        }
        None => {
            table.remove(transactional_id);
        }
    }
}

/// Reads the whole log into a table.
pub async fn load(
    log: &PartitionLog,
) -> Result<BTreeMap<String, TxnMetadata>, ringtail_engine::ReadError> {
    let mut table = BTreeMap::new();
    let mut offset = log.log_start_offset();
    let end = log.high_watermark();
    while offset < end {
        let bytes = log.read_bytes(offset, REPLAY_READ_BYTES, true).await?;
        if bytes.is_empty() {
            break;
        }
        let next = replay_batches(&bytes, &mut table).map_err(|(position, err)| {
            ringtail_engine::ReadError::Corrupt {
                path: log.dir().to_path_buf(),
                position: ringtail_engine::Position::new(position as u64),
                reason: err.to_string(),
            }
        })?;
        match next {
            // A log whose batches do not move forward would replay the same bytes forever.
            Some(next) if next > offset => offset = next,
            _ => break,
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::state::TxnState;

    #[test]
    fn the_last_record_of_an_id_wins_at_replay() {
        let mut meta = TxnMetadata::new(9, 1000, 5);
        let mut bytes = encode_state("a", &meta, 0);
        meta.state = TxnState::Ongoing;
        meta.partitions.insert(("t".to_string(), 3));
        bytes.extend_from_slice(&encode_state("a", &meta, 0));
        bytes.extend_from_slice(&encode_state("b", &TxnMetadata::new(10, 1000, 5), 0));
        let mut table = BTreeMap::new();
        replay_batches(&bytes, &mut table).unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table["a"], meta);
        bytes.extend_from_slice(&encode_tombstone("a", 0));
        let mut table = BTreeMap::new();
        replay_batches(&bytes, &mut table).unwrap();
        assert_eq!(
            table.keys().collect::<Vec<_>>(),
            ["b"],
            "a tombstone removes its id"
        );
    }

    #[test]
    fn a_truncated_batch_is_an_error_not_a_panic() {
        let bytes = encode_state("a", &TxnMetadata::new(9, 1000, 5), 0);
        let mut table = BTreeMap::new();
        assert!(replay_batches(&bytes[..bytes.len() - 3], &mut table).is_err());
    }
}
