//! Transactional id expiry (Kafka's `transactional.id.expiration.ms`): ids with no transaction
//! in progress whose state last changed that long ago are forgotten, their tombstones written
//! together. Without it the coordinator's table only grows, up to TRANSACTIONAL_IDS_MAX, after
//! which no new id is served.
#![forbid(unsafe_code)]

use bytes::BytesMut;
use ringtail_engine::log::now_ms;

use super::super::log::encode_tombstone;
use super::super::state::{TxnMetadata, TxnState};
use super::TxnCoordinator;

/// Tombstones written in one append: a pass over a burst of expired ids costs one durable write
/// per this many, not one each (the pass runs in the coordinator's timer, beside timeouts).
const TOMBSTONES_PER_APPEND: usize = 1_000;

impl TxnCoordinator {
    /// Forgets every transactional id with no transaction in progress (Empty, CompleteCommit,
    /// CompleteAbort) whose state last changed `expiration_ms` ago or more: a tombstone in the
    /// log, then out of the table and the produce-side registry. Each id is claimed (no request
    /// of it runs meanwhile) and checked again once claimed. Returns how many were forgotten.
    pub async fn expire_transactional_ids(&self, expiration_ms: u64) -> usize {
        let expiration_ms = i64::try_from(expiration_ms).unwrap_or(i64::MAX);
        let expired = |meta: &TxnMetadata, now: i64| {
            matches!(
                meta.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            ) && now.saturating_sub(meta.update_ms) >= expiration_ms
        };
        let now = now_ms();
        let due: Vec<String> = (self.txns.borrow().iter())
            .filter(|(_, meta)| expired(meta, now))
            .map(|(id, _)| id.clone())
            .collect();
        let mut forgotten = 0;
        for chunk in due.chunks(TOMBSTONES_PER_APPEND) {
            // Claimed and checked with no await in between: the live state, not the listed one.
            let claimed: Vec<_> = chunk
                .iter()
                .filter_map(|transactional_id| {
                    let guard = self.claim(transactional_id).ok()?;
                    let meta = self.get(transactional_id)?;
                    expired(&meta, now_ms()).then_some((transactional_id, meta.producer_id, guard))
                })
                .collect();
            if claimed.is_empty() {
                continue;
            }
            let mut tombstones = BytesMut::new();
            for (transactional_id, _, _) in &claimed {
                tombstones.extend_from_slice(&encode_tombstone(transactional_id, now_ms()));
            }
            // A clone: the log may be swapped (a move between data dirs) meanwhile.
            if let Err(err) = self.log().append(tombstones, 0).await {
                tracing::error!(%err, "writing transactional id tombstones failed");
                break;
            }
            for (transactional_id, producer_id, _guard) in claimed {
                self.registry.forget(producer_id);
                self.txns.borrow_mut().remove(transactional_id);
                forgotten += 1;
            }
        }
        if forgotten > 0 {
            tracing::info!(forgotten, "expired transactional ids");
        }
        forgotten
    }
}
