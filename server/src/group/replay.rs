//! Rebuilding the coordinator from `__consumer_offsets` at start: every record of the log, in
//! order, applied to committed offsets, classic groups and consumer groups (the last record of a
//! key wins; a tombstone deletes it).
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use ringtail_engine::batch::{decode_records, parse_header};
use ringtail_engine::log::now_ms;
use ringtail_engine::BatchError;
use ringtail_engine::PartitionLog;

use super::classic_record::GroupRecord;
use super::consumer::{self, ConsumerGroupConfig};
use super::{CommittedOffset, Coordinator};
use crate::metadata::Metadata;

/// What [`Coordinator::replay_batches`] applied.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    pub records: usize,
    /// The offset after the last batch, if there was one.
    pub next_offset: Option<ringtail_engine::Offset>,
}

/// Bytes read at a time when the offsets log is replayed at start.
const REPLAY_READ_BYTES: u64 = 1 << 20;

impl Coordinator {
    /// Rebuilds groups and offsets from the offsets log.
    pub async fn load(
        log: Rc<PartitionLog>,
        metadata: Arc<Metadata>,
        consumer_config: ConsumerGroupConfig,
    ) -> Result<Self, ringtail_engine::ReadError> {
        let coordinator = Self {
            groups: RefCell::new(BTreeMap::new()),
            join_waiters: RefCell::new(HashMap::new()),
            sync_waiters: RefCell::new(HashMap::new()),
            offsets: RefCell::new(BTreeMap::new()),
            consumer_groups: RefCell::new(BTreeMap::new()),
            pending_txn_offsets: RefCell::new(BTreeMap::new()),
            memberless_since_ms: RefCell::new(HashMap::new()),
            consumer_config,
            metadata,
            topic_counts: RefCell::new(None),
            log: RefCell::new(log),
            stopped: std::cell::Cell::new(false),
            #[cfg(test)]
            failing_writes: std::cell::Cell::new(0),
        };
        let mut offset = coordinator.log().log_start_offset();
        let end = coordinator.log().high_watermark();
        let mut records = 0usize;
        while offset < end {
            let bytes = coordinator
                .log()
                .read_bytes(offset, REPLAY_READ_BYTES, true)
                .await?;
            if bytes.is_empty() {
                break;
            }
            let replayed = coordinator
                .replay_batches(&bytes)
                .map_err(|(position, err)| ringtail_engine::ReadError::Corrupt {
                    path: coordinator.log().dir().to_path_buf(),
                    position: ringtail_engine::Position::new(position as u64),
                    reason: err.to_string(),
                })?;
            records += replayed.records;
            match replayed.next_offset {
                // A log whose batches do not move forward would replay the same bytes forever.
                Some(next) if next > offset => offset = next,
                _ => break,
            }
        }
        coordinator.start_sessions();
        tracing::info!(
            records,
            groups = coordinator.groups.borrow().len(),
            consumer_groups = coordinator.consumer_groups.borrow().len(),
            "group coordinator loaded"
        );
        Ok(coordinator)
    }

    /// Applies every record of `bytes`, whole batches as the log returns them. On a batch that
    /// cannot be parsed or runs past the end, the error and its position (the batches before it
    /// are applied).
    pub(crate) fn replay_batches(&self, bytes: &[u8]) -> Result<Replayed, (usize, BatchError)> {
        let mut replayed = Replayed::default();
        let mut position = 0;
        while position < bytes.len() {
            let header = parse_header(&bytes[position..]).map_err(|err| (position, err))?;
            // Checked before anything of the batch is applied: an error leaves only whole batches.
            let batch_next_offset = header
                .checked_next_offset()
                .map_err(|err| (position, err))?;
            // The header's length comes from disk: a batch cut short is an error, not a panic.
            let batch = bytes
                .get(position..position.saturating_add(header.total_bytes()))
                .ok_or((
                    position,
                    BatchError::Truncated {
                        needed_bytes: header.total_bytes(),
                        available_bytes: bytes.len() - position,
                    },
                ))?;
            // Markers say nothing replay needs: the plain records written with them do
            // (txn_offsets.rs).
            let records = if header.is_control() {
                Vec::new()
            } else {
                decode_records(batch).unwrap_or_default()
            };
            for record in records {
                self.apply_record(record.key.unwrap_or_default(), record.value);
                replayed.records += 1;
            }
            replayed.next_offset = Some(batch_next_offset);
            position += header.total_bytes();
        }
        Ok(replayed)
    }

    /// Sessions start anew: members have until a session timeout from now to heartbeat.
    pub(crate) fn start_sessions(&self) {
        let now = now_ms();
        for group in self.consumer_groups.borrow_mut().values_mut() {
            let config = self
                .consumer_config
                .for_group(self.metadata.group_configs(&group.group_id).as_ref());
            group.start_sessions(&config, now);
        }
    }

    fn apply_record(&self, key: &[u8], value: Option<&[u8]>) {
        let Ok(key) = std::str::from_utf8(key) else {
            return;
        };
        let parts: Vec<&str> = key.split('\0').collect();
        if consumer::record::apply(&mut self.consumer_groups.borrow_mut(), &parts, value) {
            return;
        }
        if super::txn_offsets::apply(&mut self.pending_txn_offsets.borrow_mut(), &parts, value) {
            return;
        }
        match parts.as_slice() {
            ["offset", group, topic, partition] => {
                let Ok(partition) = partition.parse::<i32>() else {
                    return;
                };
                let mut offsets = self.offsets.borrow_mut();
                match value.and_then(|value| serde_json::from_slice::<CommittedOffset>(value).ok())
                {
                    Some(committed) => {
                        offsets
                            .entry(group.to_string())
                            .or_default()
                            .insert((topic.to_string(), partition), committed);
                    }
                    None => {
                        if let Some(group_offsets) = offsets.get_mut(*group) {
                            group_offsets.remove(&(topic.to_string(), partition));
                        }
                    }
                }
            }
            ["group", group] => {
                let mut groups = self.groups.borrow_mut();
                let Some(value) = value else {
                    groups.remove(*group);
                    return;
                };
                // A Stable group comes back with its members; otherwise Empty with its generation.
                match serde_json::from_slice::<GroupRecord>(value)
                    .ok()
                    .and_then(|record| record.restore(group, now_ms()))
                {
                    Some(restored) => {
                        groups.insert(group.to_string(), restored);
                    }
                    None => tracing::warn!(group, "skipping an unreadable or newer group record"),
                }
            }
            _ => {}
        }
    }
}
