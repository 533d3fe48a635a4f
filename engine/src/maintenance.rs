//! A shard's background work: interval flushes, retention and the compaction task it starts,
//! reopening logs failed for space, giving back spare segments past the preallocation share,
//! producer expiry.
//!
//! The task is stopped, never cancelled: its steps hold a log's writer place across awaits (a
//! segment roll for `retention.ms` takes it and gives it back after its fsyncs), and a step
//! dropped half-way would leave that place taken, so the log's close waited for ever (a shutdown
//! that hung in CI). [`Shard::run_maintenance`] ends between steps once asked to.
#![forbid(unsafe_code)]

use std::rc::Rc;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use tracing::error;

use crate::log::now_ms;
use crate::shard::Shard;

/// How often the maintenance task looks for logs failed for space whose dir has room again.
const SPACE_RECHECK_MS: i64 = 1_000;

/// Periods of a shard's background work ([`Shard::run_maintenance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceSchedule {
    /// Interval flushes are looked at this often.
    pub flush_tick_ms: u64,
    /// Retention, then compaction (Kafka's log.retention.check.interval.ms: 5 min).
    pub retention_check_ms: u64,
    /// Producer expiry (Kafka's producer.id.expiration.check.interval.ms: 10 min).
    pub producer_expiry_check_ms: u64,
    /// A producer's state is forgotten this long after its last batch's timestamp (Kafka's
    /// producer.id.expiration.ms: 1 day).
    pub producer_id_expiration_ms: u64,
}

impl Default for MaintenanceSchedule {
    fn default() -> Self {
        Self {
            flush_tick_ms: 1,
            retention_check_ms: 5 * 60 * 1000,
            producer_expiry_check_ms: 10 * 60 * 1000,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
        }
    }
}

impl Shard {
    /// The shard's background work, run as a task on the shard thread (periods in `schedule`):
    /// interval flushes; retention (Kafka's `log.retention.check.interval.ms`), which then starts
    /// a compaction task if none is running (Kafka's cleaner has its own threads, ours runs on the
    /// shard); producer expiry. Compaction is never awaited here: a long pass must not hold back
    /// the interval flushes, and it yields between batches so flush ticks, appends and fetches
    /// interleave with it (a closing log ends its pass at the next yield).
    ///
    /// Runs until `stop` resolves (sent, or its sender dropped), then returns between two steps:
    /// the caller awaits it before closing the logs rather than dropping it (module doc). An
    /// fsync failure fails its partition only (see `flush_due`) and the task goes on.
    pub async fn run_maintenance(
        self: Rc<Self>,
        schedule: MaintenanceSchedule,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut last_retention_ms = now_ms();
        let mut last_space_check_ms = now_ms();
        let mut last_producer_expiry_ms = now_ms();
        let tick = std::time::Duration::from_millis(schedule.flush_tick_ms.max(1));
        loop {
            let sleep = std::pin::pin!(compio::time::sleep(tick));
            if let Either::Right(_) = select(sleep, &mut stop).await {
                return;
            }
            let now = now_ms();
            self.flush_due(now).await;
            if now - last_space_check_ms >= SPACE_RECHECK_MS {
                last_space_check_ms = now;
                self.reopen_logs_failed_for_space().await;
                self.give_back_spares_past_share().await;
            }
            if now - last_retention_ms >= schedule.retention_check_ms as i64 {
                last_retention_ms = now;
                if let Err(err) = self.enforce_retention().await {
                    // Deleting files can fail (permissions, a busy disk); data is intact: retry later.
                    error!(%err, "retention pass failed");
                }
                self.spawn_compaction();
            }
            if now - last_producer_expiry_ms >= schedule.producer_expiry_check_ms as i64 {
                last_producer_expiry_ms = now;
                self.expire_producers(schedule.producer_id_expiration_ms);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;
    use crate::shard::{ShardId, TopicPartition};

    #[compio::test]
    async fn maintenance_task_flushes_interval_partitions() {
        // The background task is what makes `flush=<N>ms` durable without an append waiting on it.
        let dir = tempfile::tempdir().unwrap();
        let shard = Rc::new(Shard::new(ShardId(0), dir.path()).unwrap());
        let config = LogConfig {
            flush: crate::FlushPolicy::IntervalMs(5),
            ..LogConfig::default()
        };
        let log = shard
            .open_partition(TopicPartition::new("t", 0), config)
            .await
            .unwrap();
        let batch = crate::batch::encode_uniform_batch(0, 3, 10);
        log.append(bytes::BytesMut::from(&batch[..]), 0)
            .await
            .unwrap();
        assert_eq!(log.durable_offset().get(), 0);
        let (_running, stop) = oneshot::channel();
        compio::runtime::spawn(Rc::clone(&shard).run_maintenance(
            MaintenanceSchedule {
                retention_check_ms: 60_000,
                ..MaintenanceSchedule::default()
            },
            stop,
        ))
        .detach();
        for _ in 0..1_000 {
            if log.durable_offset().get() == 3 {
                break;
            }
            compio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert_eq!(log.durable_offset().get(), 3);
        assert_eq!(shard.partitions().len(), 1);
    }

    #[compio::test]
    async fn a_stopped_maintenance_task_ends_between_steps_and_every_log_closes_cleanly() {
        // Each round rolls the expired active segment (retention.ms, timestamps of 1970) and
        // deletes it, so the stop lands in the middle of rolls and deletions at some point of
        // these rounds; the task must end between steps, never leaving a roll half-done.
        let dir = tempfile::tempdir().unwrap();
        let shard = Rc::new(Shard::new(ShardId(0), dir.path()).unwrap());
        let config = LogConfig {
            retention_ms: Some(1),
            ..LogConfig::default()
        };
        let log = shard
            .open_partition(TopicPartition::new("expiring", 0), config)
            .await
            .unwrap();
        let batch = crate::batch::encode_uniform_batch(0, 3, 10);
        for round in 0..20u64 {
            let (stop_sender, stop) = oneshot::channel();
            let schedule = MaintenanceSchedule {
                retention_check_ms: 0,
                ..MaintenanceSchedule::default()
            };
            let task = compio::runtime::spawn(Rc::clone(&shard).run_maintenance(schedule, stop));
            for _ in 0..round % 5 {
                log.append(bytes::BytesMut::from(&batch[..]), 0)
                    .await
                    .unwrap();
                compio::time::sleep(std::time::Duration::from_micros(300 * round)).await;
            }
            drop(stop_sender);
            task.await.expect("the task ended, without a panic");
            assert!(!log.is_failed(), "round {round}");
            assert!(!log.state.borrow().writer_active, "round {round}");
        }
        let end = log.high_watermark();
        assert!(
            log.log_start_offset().get() > 0,
            "retention rolled and deleted the expired segments"
        );
        shard.close().await.unwrap();
        let (reopened, _) = crate::PartitionLog::open(log.dir(), log.config())
            .await
            .unwrap();
        assert_eq!(reopened.high_watermark(), end);
    }
}
