//! The live transaction coordinator: one per broker, on the shard that owns
//! `__transaction_state` partition 0. Every change of a transactional id's state is written to
//! that log (and fsynced) before it is acted on or answered, so a restart resumes from the last
//! decision: a Prepare* state finishes its markers, an Ongoing one runs until its timeout.
//!
//! One operation at a time per transactional id (`busy`): another one meanwhile is answered
//! CONCURRENT_TRANSACTIONS, which clients retry (as Kafka answers while markers are written).
//!
//! # Invariants worth naming
//! - A marker is written only after its transaction's Prepare* state is durable, and Complete*
//!   only after every marker is.
//! - A transaction found prepared at start (`recovered`) gets a marker only where one is still
//!   missing: a partition still holding an open transaction of its producer, the offsets log
//!   while it holds the producer's pending offsets. So a crash between markers leaves each
//!   marker in the log exactly once. (A live transaction writes every marker: a batch that
//!   passed the produce-side check may still be queued, not yet visible as open.)
//! - A partition whose topic is gone (deleted, or recreated under another id) needs no marker:
//!   it is skipped with a log line, as Kafka does, and the transaction completes.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use ringtail_engine::log::now_ms;
use ringtail_engine::producer::SequenceError;
use ringtail_engine::{AppendError, PartitionLog};

use super::fault;
use super::log::{encode_state, load};
use super::marker::{encode_marker, MarkerType, TxnProducer};
use super::registry::TxnRegistry;
use super::state::{Bump, TxnMetadata, TxnPartition, TxnState};
use crate::shard::ShardContext;

/// Partitions one transaction may add: the bound on what a client can make the coordinator hold.
pub const TXN_PARTITIONS_MAX: usize = 10_000;
/// Transactional ids the coordinator keeps (each InitProducerId with a new one adds one).
pub const TRANSACTIONAL_IDS_MAX: usize = 100_000;

/// A transactional id's state, as DescribeTransactions reports it.
pub type Described = Result<TxnMetadata, ResponseError>;

/// See the module doc.
pub struct TxnCoordinator {
    txns: RefCell<BTreeMap<String, TxnMetadata>>,
    busy: RefCell<BTreeSet<String>>,
    /// Ids that were in a Prepare* state at start, until completed (see the module's invariants).
    recovered: RefCell<BTreeSet<String>>,
    /// The `__transaction_state` log it writes to: swapped when a move between data dirs
    /// reopens it ([`TxnCoordinator::replace_log`]).
    log: RefCell<Rc<PartitionLog>>,
    /// The shard it runs on, to route markers to partition owners (weak: the shard holds us).
    shard: Weak<ShardContext>,
    registry: Arc<TxnRegistry>,
    max_timeout_ms: i32,
    stopped: Cell<bool>,
}

/// Releases a transactional id's `busy` mark when an operation ends (also when cancelled).
struct BusyGuard<'a> {
    busy: &'a RefCell<BTreeSet<String>>,
    transactional_id: String,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.busy.borrow_mut().remove(&self.transactional_id);
    }
}

impl TxnCoordinator {
    /// Rebuilds the table from the log and the produce-side registry from the table.
    pub async fn load(
        log: Rc<PartitionLog>,
        shard: Weak<ShardContext>,
        registry: Arc<TxnRegistry>,
        max_timeout_ms: i32,
    ) -> Result<Self, ringtail_engine::ReadError> {
        let txns = load(&log).await?;
        for (transactional_id, meta) in &txns {
            let ongoing = (meta.state == TxnState::Ongoing).then(|| meta.partitions.clone());
            registry.set(
                transactional_id,
                meta.producer_id,
                meta.producer_epoch,
                ongoing,
            );
        }
        let recovered: BTreeSet<String> = txns
            .iter()
            .filter(|(_, meta)| meta.state.is_prepared())
            .map(|(id, _)| id.clone())
            .collect();
        tracing::info!(
            transactional_ids = txns.len(),
            prepared = recovered.len(),
            "transaction coordinator loaded"
        );
        Ok(Self {
            txns: RefCell::new(txns),
            busy: RefCell::new(BTreeSet::new()),
            recovered: RefCell::new(recovered),
            log: RefCell::new(log),
            shard,
            registry,
            max_timeout_ms,
            stopped: Cell::new(false),
        })
    }

    pub fn stop(&self) {
        self.stopped.set(true);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    fn claim(&self, transactional_id: &str) -> Result<BusyGuard<'_>, ResponseError> {
        if self.stopped.get() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if !self.busy.borrow_mut().insert(transactional_id.to_string()) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(BusyGuard {
            busy: &self.busy,
            transactional_id: transactional_id.to_string(),
        })
    }

    /// Writes a state and, once durable, makes it the live one.
    async fn persist(
        &self,
        transactional_id: &str,
        meta: TxnMetadata,
    ) -> Result<(), ResponseError> {
        if self.stopped.get() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let record_set = encode_state(transactional_id, &meta, now_ms());
        let log = Rc::clone(&self.log.borrow());
        if let Err(err) = log.append(record_set, 0).await {
            tracing::error!(transactional_id, %err, "writing the transaction log failed");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let ongoing = (meta.state == TxnState::Ongoing).then(|| meta.partitions.clone());
        self.registry.set(
            transactional_id,
            meta.producer_id,
            meta.producer_epoch,
            ongoing,
        );
        self.txns
            .borrow_mut()
            .insert(transactional_id.to_string(), meta);
        Ok(())
    }

    /// The `__transaction_state` log writes go to now.
    pub fn log(&self) -> Rc<PartitionLog> {
        Rc::clone(&self.log.borrow())
    }

    /// Points the coordinator at the `__transaction_state` log reopened by a move between data
    /// dirs (or at the source reopened after a failed one): the log it held was closed, and every
    /// state write failed with a retriable error until restart. The table in memory is the log's:
    /// nothing to replay.
    pub fn replace_log(&self, log: Rc<PartitionLog>) {
        *self.log.borrow_mut() = log;
    }

    fn get(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.txns.borrow().get(transactional_id).cloned()
    }

    /// InitProducerId with a transactional id: the producer id and its new epoch. An ongoing
    /// transaction of the previous producer is aborted first (its epoch bumped: the zombie is
    /// fenced). `current`: the id and epoch the producer passes (KIP-360), if any.
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        current: Option<TxnProducer>,
    ) -> Result<TxnProducer, ResponseError> {
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let _guard = self.claim(transactional_id)?;
        let Some(mut meta) = self.get(transactional_id) else {
            if self.txns.borrow().len() >= TRANSACTIONAL_IDS_MAX {
                tracing::warn!(transactional_id, "too many transactional ids");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            let meta = TxnMetadata::new(
                crate::api::init_producer_id::allocate_producer_id(),
                timeout_ms,
                now_ms(),
            );
            let producer = producer_of(&meta);
            self.persist(transactional_id, meta).await?;
            return Ok(producer);
        };
        if let Some(current) = current {
            if meta.check_bump(current)? == Bump::Retry {
                return Ok(producer_of(&meta));
            }
        }
        if meta.state == TxnState::Ongoing {
            let aborting = meta.fenced_abort(now_ms());
            self.persist(transactional_id, aborting.clone()).await?;
            meta = self
                .write_markers_and_complete(transactional_id, aborting)
                .await?;
        } else if meta.state.is_prepared() {
            meta = self
                .write_markers_and_complete(transactional_id, meta)
                .await?;
        }
        // Remembered only for a bump by the producer holding the epoch (no fence in between).
        let by_holder =
            current.is_some_and(|current| current.producer_epoch == meta.producer_epoch);
        let mut next = meta.bumped(
            by_holder,
            crate::api::init_producer_id::allocate_producer_id,
        );
        if next.producer_id != meta.producer_id {
            self.registry.forget(meta.producer_id);
        }
        next.state = TxnState::Empty;
        next.timeout_ms = timeout_ms;
        next.update_ms = now_ms();
        let producer = producer_of(&next);
        self.persist(transactional_id, next).await?;
        Ok(producer)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with `group`).
    pub async fn add(
        &self,
        transactional_id: &str,
        producer: TxnProducer,
        partitions: &[TxnPartition],
        group: Option<&str>,
    ) -> Result<(), ResponseError> {
        require_id(transactional_id)?;
        let _guard = self.claim(transactional_id)?;
        let meta = self
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        meta.check_producer(producer.producer_id, producer.producer_epoch)?;
        if meta.state == TxnState::Ongoing
            && partitions
                .iter()
                .all(|partition| meta.partitions.contains(partition))
            && group.is_none_or(|group| meta.groups.contains(group))
        {
            return Ok(()); // nothing new (a retry): no write
        }
        let next = meta.with_added(partitions, group, now_ms())?;
        if next.partitions.len() > TXN_PARTITIONS_MAX {
            return Err(ResponseError::InvalidRequest);
        }
        self.persist(transactional_id, next).await
    }

    /// AddPartitionsToTxn v4+ with verify_only: whether the partition is in the ongoing
    /// transaction (Kafka ≥ 3.6 brokers ask this before appending a transactional batch); see
    /// [`TxnMetadata::verify`].
    pub fn verify(
        &self,
        transactional_id: &str,
        producer: TxnProducer,
        partition: &TxnPartition,
    ) -> Result<(), ResponseError> {
        require_id(transactional_id)?;
        let meta = self
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        meta.verify(producer.producer_id, producer.producer_epoch, partition)
    }

    /// Checks that `producer` is the current one of a transaction that added `group` (TxnOffsetCommit).
    pub fn check_offsets_producer(
        &self,
        transactional_id: &str,
        producer: TxnProducer,
        group: &str,
    ) -> Result<(), ResponseError> {
        let meta = self
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        meta.check_producer(producer.producer_id, producer.producer_epoch)?;
        if meta.state == TxnState::Ongoing && meta.groups.contains(group) {
            Ok(())
        } else {
            Err(ResponseError::InvalidTxnState)
        }
    }

    /// TxnOffsetCommit: checks the producer as [`Self::check_offsets_producer`] does, then runs
    /// `store` (the group coordinator's write of the pending offsets) while holding the
    /// transactional id, so no EndTxn, timeout or new InitProducerId ends the transaction between
    /// the check and the write (an offset written after its transaction's marker stayed pending
    /// for ever, or was dropped although acknowledged). The outer error is the check's. Busy with
    /// another operation: COORDINATOR_LOAD_IN_PROGRESS, which clients retry on TxnOffsetCommit
    /// (the Java client takes CONCURRENT_TRANSACTIONS there as fatal).
    pub async fn commit_offsets<F, Fut>(
        &self,
        transactional_id: &str,
        producer: TxnProducer,
        group: &str,
        store: F,
    ) -> Result<Result<(), ResponseError>, ResponseError>
    where
        F: FnOnce(Rc<ShardContext>) -> Fut,
        Fut: std::future::Future<Output = Result<(), ResponseError>>,
    {
        let _guard = self.claim(transactional_id).map_err(|error| match error {
            ResponseError::ConcurrentTransactions => ResponseError::CoordinatorLoadInProgress,
            error => error,
        })?;
        self.check_offsets_producer(transactional_id, producer, group)?;
        let shard = self
            .shard
            .upgrade()
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        Ok(store(shard).await)
    }

    /// EndTxn: the decision is written (Prepare*), then the markers, then Complete*.
    pub async fn end(
        &self,
        transactional_id: &str,
        producer: TxnProducer,
        commit: bool,
    ) -> Result<(), ResponseError> {
        require_id(transactional_id)?;
        let _guard = self.claim(transactional_id)?;
        let meta = self
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        meta.check_producer(producer.producer_id, producer.producer_epoch)?;
        let Some(prepared) = meta.ending(commit, now_ms())? else {
            return Ok(());
        };
        self.persist(transactional_id, prepared.clone()).await?;
        // The decision is durable: if a marker can't be written now, the tick retries it, and
        // the client's next operation is answered CONCURRENT_TRANSACTIONS until then.
        if let Err(error) = self
            .write_markers_and_complete(transactional_id, prepared)
            .await
        {
            tracing::warn!(
                transactional_id,
                ?error,
                "markers not all written yet; retrying"
            );
        }
        Ok(())
    }

    /// Writes the markers of a prepared transaction to every partition and group, then records
    /// it complete. Idempotent: after a crash it runs again and writes only the markers still
    /// missing (see the module's invariants).
    async fn write_markers_and_complete(
        &self,
        transactional_id: &str,
        prepared: TxnMetadata,
    ) -> Result<TxnMetadata, ResponseError> {
        assert!(prepared.state.is_prepared());
        fault::markers_written(0);
        let shard = self
            .shard
            .upgrade()
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let marker = MarkerJob {
            producer: producer_of(&prepared),
            marker: if prepared.state == TxnState::PrepareCommit {
                MarkerType::Commit
            } else {
                MarkerType::Abort
            },
            only_where_missing: self.recovered.borrow().contains(transactional_id),
        };
        let partitions: Vec<TxnPartition> = prepared.partitions.iter().cloned().collect();
        let outcomes = write_partition_markers(&shard, &partitions, marker).await;
        let mut written = 0;
        for ((topic, partition), outcome) in partitions.iter().zip(outcomes) {
            match outcome? {
                MarkerOutcome::Written => written += 1,
                MarkerOutcome::TopicGone => tracing::info!(
                    transactional_id,
                    topic,
                    partition,
                    "the partition's topic was deleted: its transaction marker is skipped"
                ),
                MarkerOutcome::AlreadyClosed => tracing::info!(
                    transactional_id,
                    topic,
                    partition,
                    "no open transaction of the producer here after the restart: marker not rewritten"
                ),
                MarkerOutcome::Superseded { current } => tracing::warn!(
                    transactional_id,
                    topic,
                    partition,
                    marker_epoch = marker.producer.producer_epoch,
                    current,
                    "the partition knows the producer at a newer epoch: marker refused, skipped"
                ),
            }
        }
        if !prepared.groups.is_empty() {
            let written_offsets =
                crate::api::groups::on_coordinator(&shard, move |groups| async move {
                    groups
                        .end_txn_offsets(marker.producer, marker.marker, marker.only_where_missing)
                        .await
                })
                .await
                .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
            written_offsets.unwrap_or(Err(ResponseError::CoordinatorNotAvailable))?;
            fault::markers_written(partitions.len() + 1);
        }
        tracing::debug!(transactional_id, written, "transaction markers written");
        let completed = prepared.completed(now_ms());
        self.persist(transactional_id, completed.clone()).await?;
        self.recovered.borrow_mut().remove(transactional_id);
        Ok(completed)
    }

    /// Aborts transactions past their timeout and finishes prepared ones whose markers failed.
    pub async fn tick(&self) {
        let now = now_ms();
        let due: Vec<String> = self
            .txns
            .borrow()
            .iter()
            .filter(|(id, meta)| {
                (meta.timed_out(now) || meta.state.is_prepared())
                    && !self.busy.borrow().contains(*id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for transactional_id in due {
            let Ok(_guard) = self.claim(&transactional_id) else {
                continue;
            };
            // Earlier ids of this list were awaited: the producer may have ended its transaction
            // (and begun another) meanwhile. Act on the live state, never on the one listed: an
            // abort of a stale copy fenced a producer whose commit had succeeded and left its new
            // transaction's partitions open for ever.
            let Some(meta) = self.get(&transactional_id) else {
                continue;
            };
            let now = now_ms();
            if !(meta.timed_out(now) || meta.state.is_prepared()) {
                continue;
            }
            let prepared = if meta.state == TxnState::Ongoing {
                tracing::info!(
                    transactional_id,
                    timeout_ms = meta.timeout_ms,
                    "transaction timed out: aborting"
                );
                let aborting = meta.fenced_abort(now);
                if self
                    .persist(&transactional_id, aborting.clone())
                    .await
                    .is_err()
                {
                    continue;
                }
                aborting
            } else {
                meta
            };
            if let Err(error) = self
                .write_markers_and_complete(&transactional_id, prepared)
                .await
            {
                tracing::warn!(
                    transactional_id,
                    ?error,
                    "markers not all written yet; retrying"
                );
            }
        }
    }

    /// DescribeTransactions: each id's state, or TRANSACTIONAL_ID_NOT_FOUND.
    pub fn describe(&self, transactional_ids: &[String]) -> Vec<(String, Described)> {
        let txns = self.txns.borrow();
        transactional_ids
            .iter()
            .map(|id| {
                let found = txns
                    .get(id)
                    .cloned()
                    .ok_or(ResponseError::TransactionalIdNotFound);
                (id.clone(), found)
            })
            .collect()
    }

    /// ListTransactions: ids whose state and producer id pass the filters (empty: any), and
    /// whose transaction has run longer than `duration_ms` (negative: any).
    pub fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        duration_ms: i64,
    ) -> Vec<(String, i64, TxnState)> {
        let now = now_ms();
        self.txns
            .borrow()
            .iter()
            .filter(|(_, meta)| states.is_empty() || states.contains(&meta.state))
            .filter(|(_, meta)| producer_ids.is_empty() || producer_ids.contains(&meta.producer_id))
            .filter(|(_, meta)| {
                duration_ms < 0 || (meta.start_ms >= 0 && now - meta.start_ms > duration_ms)
            })
            .map(|(id, meta)| (id.clone(), meta.producer_id, meta.state))
            .collect()
    }
}

/// Kafka's coordinator answers INVALID_REQUEST to a request naming an empty transactional id
/// (AddPartitionsToTxn, its verify_only form, AddOffsetsToTxn, EndTxn): no client can have one.
fn require_id(transactional_id: &str) -> Result<(), ResponseError> {
    if transactional_id.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    Ok(())
}

fn producer_of(meta: &TxnMetadata) -> TxnProducer {
    TxnProducer {
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
    }
}

/// What a transaction's markers are and where they may be skipped.
#[derive(Clone, Copy)]
struct MarkerJob {
    producer: TxnProducer,
    marker: MarkerType,
    /// A transaction recovered at start: write only where a marker is still missing.
    only_where_missing: bool,
}

/// What became of one partition's marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkerOutcome {
    Written,
    /// The topic was deleted (or recreated under another id): nothing there to end.
    TopicGone,
    /// A recovered transaction, and the partition holds no open transaction of the producer:
    /// its marker was written before the crash (or the producer wrote nothing there).
    AlreadyClosed,
    /// The partition refused the marker: it knows the producer at a newer epoch (`current`),
    /// which only a batch naming the producer's id outside the coordinator's checks can have
    /// raised (an idempotent batch at an epoch the coordinator never handed out). The producer's
    /// batches at the marker's epoch were refused there since, so nothing of this transaction is
    /// open to end; retrying would stall the transactional id for ever.
    Superseded {
        current: i16,
    },
}

/// Every partition's marker, in `partitions` order: concurrently, or one at a time when a test's
/// kill point counts them ([`fault`]).
async fn write_partition_markers(
    shard: &Rc<ShardContext>,
    partitions: &[TxnPartition],
    job: MarkerJob,
) -> Vec<Result<MarkerOutcome, ResponseError>> {
    if !fault::markers_in_sequence() {
        let writes = partitions
            .iter()
            .map(|(topic, partition)| write_marker(shard, topic.clone(), *partition, job));
        return futures_util::future::join_all(writes).await;
    }
    let mut outcomes = Vec::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        let outcome = write_marker(shard, topic.clone(), *partition, job).await;
        let failed = outcome.is_err();
        outcomes.push(outcome);
        if failed {
            break;
        }
        fault::markers_written(outcomes.len());
    }
    outcomes
}

/// The topic's current metadata, if it still has `partition`.
fn current_partition(
    shard: &ShardContext,
    topic: &str,
    partition: i32,
) -> Option<Arc<crate::metadata::TopicInfo>> {
    shard
        .metadata
        .topic(topic)
        .filter(|info| info.has_partition(partition))
}

/// Appends one marker to a partition through its owner shard (the engine's append path, so it
/// gets an offset and is fsynced as the topic's flush policy says). A deleted topic needs none;
/// a failed append of a topic deleted meanwhile counts as deleted, so the transaction is never
/// stuck on a partition that no longer exists.
async fn write_marker(
    shard: &Rc<ShardContext>,
    topic: String,
    partition: i32,
    job: MarkerJob,
) -> Result<MarkerOutcome, ResponseError> {
    let Some(info) = current_partition(shard, &topic, partition) else {
        return Ok(MarkerOutcome::TopicGone);
    };
    let topic_id = info.topic_id;
    let bytes = bytes::BytesMut::from(&encode_marker(job.producer, job.marker, now_ms())[..]);
    let appended = shard
        .on_owner(&topic, partition, move |owner| async move {
            let log = owner
                .partition_log(&info, partition)
                .await
                .map_err(|err| err.to_string())?;
            let open = log
                .open_transactions()
                .iter()
                .any(|(producer_id, _)| *producer_id == job.producer.producer_id);
            if job.only_where_missing && !open {
                return Ok(MarkerOutcome::AlreadyClosed);
            }
            match log.append(bytes, 0).await {
                Ok(_) => Ok(MarkerOutcome::Written),
                Err(AppendError::Sequence(SequenceError::StaleEpoch { current, .. })) => {
                    Ok(MarkerOutcome::Superseded { current })
                }
                Err(err) => Err(err.to_string()),
            }
        })
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
    appended.or_else(|reason| {
        let same_topic =
            current_partition(shard, &topic, partition).is_some_and(|now| now.topic_id == topic_id);
        if !same_topic {
            return Ok(MarkerOutcome::TopicGone);
        }
        tracing::warn!(
            topic,
            partition,
            reason,
            "writing a transaction marker failed"
        );
        Err(ResponseError::CoordinatorNotAvailable)
    })
}

#[path = "expiry.rs"]
mod expiry;
